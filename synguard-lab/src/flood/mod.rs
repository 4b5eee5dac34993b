//! Flood runs: every selected [`scenario`] against every selected [`defence`], each run in a
//! fresh lab ([`measure`]; [`sampler`] records in the background, [`bulk`] keeps an established
//! connection streaming), floods from the live-frames [`generator`] or hping3, then the
//! [`report`] (table, ratios, JSON) and the [`chart`]s. Driven by [`runner`] for
//! `synguard-flood` / `cargo xtask lab`. [`soak`] is the long mixed run (`--soak`).

pub mod bulk;
pub mod chart;
pub mod defence;
pub mod generator;
pub mod layout;
pub mod measure;
pub mod report;
pub mod runner;
pub mod sampler;
pub mod scenario;
pub mod senders;
pub mod soak;
pub mod soak_probe;
pub mod soak_verdict;
