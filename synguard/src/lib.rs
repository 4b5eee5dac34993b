//! synguard's loader: attaches the XDP program, configures it through maps, reads its counters.
//!
//! One job per module: `cli` (arguments), `config` (validation), `sysctl` (kernel settings),
//! `nic` (interface facts), `loader` (load/attach/pin and undo), `mode` (cookie-mode controller), `stats` (counters),
//! `diagnose` (explaining kernel errors), `run` (the long-running commands).
pub mod cli;
pub mod config;
pub mod diagnose;
pub mod loader;
pub mod mode;
pub mod nic;
pub mod objects;
pub mod policy;
pub mod run;
pub mod stats;
pub mod sysctl;
