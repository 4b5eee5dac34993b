//! What synguard's XDP program and its loader share: the reason codes every packet is counted
//! under, the layout of every map, and the pure packet logic (checksums, TCP flag classification,
//! option parsing and encoding, the kernel's cookie timestamp format) that the XDP program calls
//! and host unit tests exercise.
//!
//! Everything here is `no_std` and allocation-free so that it compiles for `bpfel-unknown-none`.
//! Functions that run in the XDP program take fixed-size arrays and index them with constants or
//! checked `get`s: a Rust bounds-check panic path makes the verifier fail ("last insn is not an
//! exit or jmp").
#![no_std]

pub mod btf;
pub mod checksum;
pub mod conns;
pub mod cookie;
pub mod divide;
pub mod host;
pub mod lab;
pub mod maps;
pub mod names;
pub mod own_cookie;
pub mod policy;
pub mod reason;
pub mod reqsk;
pub mod siphash;
pub mod synack_words;
pub mod tai;
pub mod tcp;
#[cfg(test)]
mod testrand;
pub mod tick;
