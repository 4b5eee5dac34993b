//! Every map the program uses. Layouts and names come from `synguard_common::maps`; the loader
//! pins the shared ones under /sys/fs/bpf/synguard/<iface>/.

use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use synguard_common::{
    maps::{
        CLOSING_SLOTS, Config, Counter, ModeState, PORT_SLOTS, PortConfig, REFRESH_SLOTS,
        ReadyState, SynWindow,
    },
    policy::{
        AddrKey, FLOOD_EVENT_BYTES, LIST_SLOTS, Policy, REFLECT_SLOTS, ReflectState, SOURCE_SLOTS,
        SourceState,
    },
    reason::{EVENT_SLOTS, REASON_SLOTS},
};

use crate::synack::Scratch;

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

/// Who gets dropped (see `policy`).
#[map(name = "SG_POLICY")]
pub static SG_POLICY: Array<Policy> = Array::with_max_entries(1, 0);

#[map(name = "SG_ALLOW_V4")]
pub static SG_ALLOW_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(LIST_SLOTS, 0);

#[map(name = "SG_ALLOW_V6")]
pub static SG_ALLOW_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(LIST_SLOTS, 0);

#[map(name = "SG_BLOCK_V4")]
pub static SG_BLOCK_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(LIST_SLOTS, 0);

#[map(name = "SG_BLOCK_V6")]
pub static SG_BLOCK_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(LIST_SLOTS, 0);

/// Per-source SYN limiter state, least recently used evicted.
#[map(name = "SG_SOURCES")]
pub static SG_SOURCES: LruHashMap<AddrKey, SourceState> =
    LruHashMap::with_max_entries(SOURCE_SLOTS, 0);

/// SYN-ACKs per destination prefix.
#[map(name = "SG_REFLECT")]
pub static SG_REFLECT: LruHashMap<AddrKey, ReflectState> =
    LruHashMap::with_max_entries(REFLECT_SLOTS, 0);

/// Monitor mode: what would have been done, per reason (same layout as `SG_VERDICTS`).
#[map(name = "SG_MONITOR")]
pub static SG_MONITOR: PerCpuArray<Counter> = PerCpuArray::with_max_entries(REASON_SLOTS, 0);

/// Flood start and end events for the loader.
#[map(name = "SG_FLOOD_EVENTS")]
pub static SG_FLOOD_EVENTS: RingBuf = RingBuf::with_byte_size(FLOOD_EVENT_BYTES, 0);

/// SYNs per protected port, per CPU (the loader derives per-port rates from it).
#[map(name = "SG_PORT_SYNS")]
pub static SG_PORT_SYNS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PORT_SLOTS, 0);

/// When the client of a real connection last sent a FIN: a direct-mapped table by 4-tuple hash
/// (`synguard_common::maps::closing_entry`; see `ack::check`).
#[map(name = "SG_CLOSING")]
pub static SG_CLOSING: Array<u64> = Array::with_max_entries(CLOSING_SLOTS, 0);
