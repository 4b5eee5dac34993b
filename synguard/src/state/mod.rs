//! What synguard keeps on disk between processes: where every file lives and how an instance is
//! keyed (`paths`), the per-instance lock (`lock`), the run-info file (`run_info`), the list
//! entries added at run time (`runtime_lists`) and which instances a command acts on (`scope`).
//! Below the datapath: no BPF here, only files.

pub mod lock;
pub mod paths;
pub mod run_info;
pub mod runtime_lists;
pub mod scope;
