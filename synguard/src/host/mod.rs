//! The machine synguard runs on: kernel settings (`sysctl`), interface facts (`nic`), clocks
//! (`clock`), network namespaces (`netns`), the BPF filesystem (`bpffs`), errors on paths
//! (`io`), the SYN-flood tuning `doctor` checks (`tuning`) and fault injection for tests (`fault`).
//! Imports only `config`.

pub mod bpffs;
pub mod clock;
pub mod fault;
pub mod io;
pub mod netns;
pub mod nic;
pub mod sysctl;
pub mod tuning;
