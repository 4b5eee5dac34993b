//! Every map the program uses. Layouts and names come from `synguard_common::maps`; the loader
//! pins the shared ones under /sys/fs/bpf/synguard/<iface>/.

use crate::synack::Scratch;
use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
};
use synguard_common::{
    maps::{
        Config, Counter, ModeState, PORT_SLOTS, PortConfig, REFRESH_SLOTS, ReadyState, SynWindow,
    },
    reason::{EVENT_SLOTS, REASON_SLOTS},
};

#[map(name = "SG_CONFIG")]
pub static SG_CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map(name = "SG_PORTS")]
pub static SG_PORTS: Array<PortConfig> = Array::with_max_entries(PORT_SLOTS, 0);

#[map(name = "SG_MODE")]
pub static SG_MODE: Array<ModeState> = Array::with_max_entries(1, 0);

#[map(name = "SG_READY")]
pub static SG_READY: Array<ReadyState> = Array::with_max_entries(1, 0);

#[map(name = "SG_SYN_WINDOW")]
pub static SG_SYN_WINDOW: PerCpuArray<SynWindow> = PerCpuArray::with_max_entries(1, 0);

/// Last time a SYN went to the kernel per (port, family), see `decide::refresh_due`.
#[map(name = "SG_REFRESH")]
pub static SG_REFRESH: Array<u64> = Array::with_max_entries(REFRESH_SLOTS, 0);

/// Reply-building buffers, see `synack::Scratch`.
#[map(name = "SG_SCRATCH")]
pub static SG_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "SG_VERDICTS")]
pub static SG_VERDICTS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(REASON_SLOTS, 0);

#[map(name = "SG_EVENTS")]
pub static SG_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(EVENT_SLOTS, 0);
