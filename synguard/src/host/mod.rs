//! The machine synguard runs on: kernel settings (`sysctl`), interface facts (`nic`), clocks
//! (`clock`), network namespaces (`netns`) and the SYN-flood tuning `doctor` checks (`tuning`).

pub mod bpffs;
pub mod clock;
pub mod netns;
pub mod nic;
pub mod secret;
pub mod sysctl;
pub mod tuning;
