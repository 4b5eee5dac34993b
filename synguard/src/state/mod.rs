//! What synguard keeps on disk between processes: where every file lives (`paths`), the
//! per-interface lock (`lock`), the run-info file (`run_info`) and which interfaces have state
//! (`ifaces`). Below the datapath: no BPF here, only files.

pub mod ifaces;
pub mod lock;
pub mod paths;
pub mod run_info;
