//! synguard's loader: attaches the XDP program, configures it through maps, reads its counters.
//!
//! One job per module: `cli` (arguments), `config` (validation), `config_file` (the TOML file and
//! flags over it), `sysctl` (kernel settings), `nic` (interface facts), `pin` (state on bpffs and
//! its schema), `link` (the pinned XDP link: attach or replace), `loader` (load/configure/pin and
//! undo, per interface), `mode` (cookie-mode controller), `stats` (counters), `status`, `metrics`
//! (Prometheus), `events` (flood start/end from the program), `detach` (clean-up after a crash), `logging`, `doctor` (host tuning), `diagnose` (explaining kernel
//! errors), `notify` (readiness and status to systemd), `generate` (man
//! pages and completions), `policy` (allow/block lists, limits, top sources), `lists` (their commands), `reload`
//! (applying configuration through the maps), `run` (the long-running
//! commands).
pub mod cli;
pub mod config;
pub mod config_file;
pub mod detach;
pub mod diagnose;
pub mod doctor;
pub mod events;
pub mod generate;
pub mod link;
pub mod lists;
pub mod loader;
pub mod logging;
pub mod metrics;
pub mod mode;
pub mod nic;
pub mod notify;
pub mod objects;
pub mod pin;
pub mod policy;
pub mod reload;
pub mod run;
pub mod stats;
pub mod status;
pub mod sysctl;
