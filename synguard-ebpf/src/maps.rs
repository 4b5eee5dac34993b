//! Every map the program uses. Layouts come from `synguard_common::maps` and `policy`, names
//! from `synguard_common::names`; the loader pins the shared ones under
//! /sys/fs/bpf/synguard/<iface>/.

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use synguard_common::{
    conns::{CONN_FILTER_WORDS, CONN_SLOTS, ConnsState, HANDSHAKE_CPU_SLOTS},
    maps::{
        BOUND_ENTRIES, BoundKey, CLOSING_FILTER_WORDS, CLOSING_SLOTS, Config, Counter,
        LOCAL_MAP_ENTRIES, ModeState, PORT_SLOTS, PortTable, REFRESH_SLOTS, RP_ROUTES, ReadyState,
        SynWindow,
    },
    policy::{
        AddrKey, FLOOD_EVENT_BYTES, LIST_SLOTS, Policy, REFLECT_SLOTS, ReflectState, SOURCE_SLOTS,
        SourceState,
    },
    reason::{EVENT_SLOTS, REASON_SLOTS},
    reqsk::CookieSecret,
};

use synguard_ebpf::{sg_global, sg_map};

use crate::workspace::Workspace;

sg_map! {
    /// `synguard_own_xdp`, loaded and inserted by the loader in own-cookie mode.
    OWN_PROG => static SG_OWN_PROG_MB: ProgramArray = ProgramArray::with_max_entries(1, 0);
}

sg_map! {
    /// Per CPU: the packet's parsed headers, hand-over and reply buffers, and the clocks
    /// (`workspace`).
    WORKSPACE => static SG_WORKSPACE: PerCpuArray<Workspace> =
        PerCpuArray::with_max_entries(1, 0);
}

sg_global! {
    /// Own cookies' key, written only by the loader (`synguard_common::reqsk::CookieSecret`).
    COOKIE_SECRET => static SG_COOKIE_SECRET: CookieSecret;
}

sg_global! {
    CONFIG => static SG_CONFIG: Config;
}

sg_global! {
    /// Whether each port is protected (`decide::port_protected`), by port number.
    PORTS => static SG_PORTS: PortTable;
}

sg_global! {
    /// Written by the programs too (`decide::track_rate`).
    MODE => static SG_MODE: ModeState;
}

sg_global! {
    READY => static SG_READY: ReadyState;
}

sg_map! {
    SYN_WINDOW => static SG_SYN_WINDOW: PerCpuArray<SynWindow> =
        PerCpuArray::with_max_entries(1, 0);
}

sg_map! {
    /// Last time a SYN went to the kernel per (port, family), see `decide::refresh_due`.
    REFRESH => static SG_REFRESH: Array<u64> = Array::with_max_entries(REFRESH_SLOTS, 0);
}

sg_map! {
    VERDICTS => static SG_VERDICTS: PerCpuArray<Counter> =
        PerCpuArray::with_max_entries(REASON_SLOTS, 0);
}

sg_map! {
    EVENTS => static SG_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(EVENT_SLOTS, 0);
}

sg_global! {
    /// Who gets dropped (see `policy`).
    POLICY => static SG_POLICY: Policy;
}

sg_map! {
    ALLOW_V4 => static SG_ALLOW_V4: LpmTrie<[u8; 4], u32> =
        LpmTrie::with_max_entries(LIST_SLOTS, 0);
}

sg_map! {
    ALLOW_V6 => static SG_ALLOW_V6: LpmTrie<[u8; 16], u32> =
        LpmTrie::with_max_entries(LIST_SLOTS, 0);
}

sg_map! {
    BLOCK_V4 => static SG_BLOCK_V4: LpmTrie<[u8; 4], u32> =
        LpmTrie::with_max_entries(LIST_SLOTS, 0);
}

sg_map! {
    BLOCK_V6 => static SG_BLOCK_V6: LpmTrie<[u8; 16], u32> =
        LpmTrie::with_max_entries(LIST_SLOTS, 0);
}

sg_map! {
    /// The main routing table's IPv4 routes, for the reverse-path check
    /// (`classify::reverse_path`); written by the loader, `RP_ROUTE_*` kinds.
    RP_V4 => static SG_RP_V4: LpmTrie<[u8; 4], u32> =
        LpmTrie::with_max_entries(RP_ROUTES, 0);
}

sg_map! {
    /// The host's own IPv4 addresses and local prefixes, where the config's slots cannot hold
    /// them (`Config::local_v4_n` is `LOCAL_IN_MAP`): `classify::not_ours`. Written by the
    /// loader; the value is unused.
    LOCAL_V4 => static SG_LOCAL_V4: LpmTrie<[u8; 4], u8> =
        LpmTrie::with_max_entries(LOCAL_MAP_ENTRIES, 0);
}

sg_map! {
    /// [`SG_LOCAL_V4`] for IPv6.
    LOCAL_V6 => static SG_LOCAL_V6: LpmTrie<[u8; 16], u8> =
        LpmTrie::with_max_entries(LOCAL_MAP_ENTRIES, 0);
}

sg_map! {
    /// Listeners bound to particular addresses, for ports whose listeners are all bound while
    /// the host's addresses are in the trie (`PORT_BOUND_ONLY_*`): `decide::listening`. Written
    /// by the loader; the value is unused.
    BOUND => static SG_BOUND: HashMap<BoundKey, u8> =
        HashMap::with_max_entries(BOUND_ENTRIES, 0);
}

sg_map! {
    /// Per-source SYN limiter state, least recently used evicted.
    SOURCES => static SG_SOURCES: LruHashMap<AddrKey, SourceState> =
        LruHashMap::with_max_entries(SOURCE_SLOTS, 0);
}

sg_map! {
    /// SYN-ACKs per destination prefix.
    REFLECT => static SG_REFLECT: LruHashMap<AddrKey, ReflectState> =
        LruHashMap::with_max_entries(REFLECT_SLOTS, 0);
}

sg_map! {
    /// Monitor mode: what would have been done, per reason (same layout as `SG_VERDICTS`).
    MONITOR => static SG_MONITOR: PerCpuArray<Counter> =
        PerCpuArray::with_max_entries(REASON_SLOTS, 0);
}

sg_map! {
    /// Flood start and end events for the loader.
    FLOOD_EVENTS => static SG_FLOOD_EVENTS: RingBuf = RingBuf::with_byte_size(FLOOD_EVENT_BYTES, 0);
}

sg_map! {
    /// SYNs per protected port, per CPU (the loader derives per-port rates from it).
    PORT_SYNS => static SG_PORT_SYNS: PerCpuArray<u64> =
        PerCpuArray::with_max_entries(PORT_SLOTS, 0);
}

sg_map! {
    /// The connection table's stamps (`synguard_common::conns`). Mappable: the loader stamps
    /// every socket it finds through a memory map of the table rather than a syscall each.
    CONNS => static SG_CONNS: Array<u32> = Array::with_max_entries(CONN_SLOTS, BPF_F_MMAPABLE);
}

sg_map! {
    /// The connection table's filter (`synguard_common::conns::conn_filter_slot`), mappable
    /// like the table.
    CONNS_FILTER => static SG_CONNS_FILTER: Array<u64> =
        Array::with_max_entries(CONN_FILTER_WORDS, BPF_F_MMAPABLE);
}

sg_global! {
    /// The loader's promise about the connection table.
    CONNS_STATE => static SG_CONNS_STATE: ConnsState;
}

sg_map! {
    /// Per CPU: the own-cookie handshakes whose final ACK this CPU passed marked
    /// (`conns::handshake_here`).
    HANDSHAKES => static SG_HANDSHAKES: PerCpuArray<u64> =
        PerCpuArray::with_max_entries(HANDSHAKE_CPU_SLOTS, 0);
}

sg_map! {
    /// The recently-closed table's filter (`synguard_common::maps::closing_filter_slot`).
    CLOSING_FILTER => static SG_CLOSING_FILTER: Array<u64> =
        Array::with_max_entries(CLOSING_FILTER_WORDS, 0);
}

sg_map! {
    /// When the client of a real connection last sent a FIN, or the kernel created a request
    /// socket: buckets of `CLOSING_WAYS` slots by 4-tuple hash
    /// (`synguard_common::maps::closing_entry`; see `closing.rs`).
    CLOSING => static SG_CLOSING: Array<u64> = Array::with_max_entries(CLOSING_SLOTS, 0);
}

/// `p`, with the promise that it is 8-byte aligned, which lets LLVM read and write the
/// value's fields a word at a time (it cannot know the alignment of a pointer a helper
/// returned, and for BPF it splits every access it cannot prove aligned into bytes).
///
/// Only for values of array maps: the kernel lays them out at 8-byte alignment
/// (`array_map_alloc` rounds the element size up to 8; per-CPU values come from
/// `bpf_map_alloc_percpu` with 8-byte alignment).
#[inline(always)]
pub fn aligned<T>(p: *mut T) -> *mut T {
    // SAFETY: true for every array map value, see above.
    unsafe { core::hint::assert_unchecked((p as usize).is_multiple_of(8)) };
    p
}
