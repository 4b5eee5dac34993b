//! synguard's lab. Everything here needs root.
//! - Packet fixtures: the compiled XDP program run through BPF_PROG_TEST_RUN on crafted frames
//!   (`fixture`, `frames`), the per-path benchmark built on them (`bench`) and a structure-aware
//!   fuzzer with an independent oracle (`fuzz`).
//! - A namespace lab: a server, a client and an attacker in network namespaces joined by a
//!   bridge, real TCP traffic with TCP_INFO checks, bounded hping3 floods, the server kernel's
//!   TCP counters, and a handle on a running `synguard`.
//!
//! Only the benchmarking ranges inside namespaces the lab creates are ever addressed
//! (198.18.0.0/24 and 2001:2::/64); see `topology`.

pub mod bench;
pub mod chart;
pub mod defence;
pub mod fixture;
pub mod flood;
pub mod frames;
pub mod fuzz;
pub mod generator;
pub mod idle_xdp;
pub mod kstats;
pub mod measure;
pub mod netns;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod synguard_proc;
pub mod topology;
pub mod traffic;

pub use topology::Lab;
