//! What exercises synguard's real XDP program as root. Two subsystems, imports running one way
//! (`flood` -> `lab`; `testrun` stands alone):
//! - [`testrun`]: the compiled program run through `BPF_PROG_TEST_RUN` on crafted frames, no
//!   attachment: the packet fixture tests and the per-path benchmark (`synguard-bench`).
//! - [`lab`] and [`flood`]: **the lab** is a server, a client and an attacker in network
//!   namespaces joined by a bridge ([`lab::Lab`]); in it run real TCP traffic, bounded hping3
//!   floods, the server kernel's counters and a handle on a running `synguard` (the end-to-end
//!   tests and `synguard-demo`). [`flood`] measures defences under floods in fresh labs: the
//!   live-frames generator, scenarios, measurement, report and charts (`synguard-flood`,
//!   `cargo xtask lab`).
//! - [`fuzz`]: a structure-aware fuzzer that runs the program through `testrun` on generated
//!   and mutated frames and judges each verdict with an independent oracle (`synguard-fuzz`,
//!   `cargo xtask fuzz`); it keeps an idle XDP program attached in a lab namespace
//!   ([`lab::idle_xdp`]) so that each run is fast.
//!
//! "Lab" means that namespace topology and nothing else; the `lab_*` XDP programs in
//! `synguard-ebpf/src/bin/lab.rs` are the ones this crate loads into it or into `testrun`.
//!
//! Only the benchmarking ranges inside namespaces the lab creates are ever addressed
//! (198.18.0.0/24 and 2001:2::/64); see [`lab::topology`].

pub mod flood;
pub mod fuzz;
pub mod lab;
pub mod testrun;
