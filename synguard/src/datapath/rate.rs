//! The SYN rate as the program counts it (`SG_SYN_WINDOW`), read at a given moment: windows that
//! closed a while ago count for nothing, so the rate falls to zero within two windows of the last
//! SYN (`synguard_common::maps::syn_rate_at`). Every rate synguard shows comes from here, never
//! from the program's `last_rate_pps`, which only moves when a SYN arrives.

use std::path::Path;

use aya::maps::{MapData, MapError, PerCpuArray};
use synguard_common::maps::{SynWindow, names, syn_rate_at};

use crate::datapath::maps::{self, PinnedMapError};

/// SYNs per second to protected ports at `now_ns` (the programs' clock).
pub fn syn_rate(windows: &PerCpuArray<MapData, SynWindow>, now_ns: u64) -> Result<u64, MapError> {
    let per_cpu = windows.get(&0, 0)?;
    Ok(syn_rate_at(&per_cpu, now_ns))
}

/// [`syn_rate`] of the instance pinned in `dir`.
pub fn read_syn_rate(dir: &Path, now_ns: u64) -> Result<u64, PinnedMapError> {
    let windows = maps::per_cpu_array::<SynWindow>(dir, names::SYN_WINDOW)?;
    syn_rate(&windows, now_ns).map_err(PinnedMapError::read(dir, names::SYN_WINDOW))
}
