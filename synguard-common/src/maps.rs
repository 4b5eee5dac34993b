//! Layout of every map the XDP program and the loader share. All types are `#[repr(C)]` with
//! explicit padding fields so that no byte is uninitialised (the verifier and `aya::Pod` both
//! need that) and so the layout is the same on both sides.

/// Map names (all of them, policy maps included), as declared in the XDP program and pinned
/// under the instance directory.
pub use crate::names;

/// Every SYN to a protected port gets a cookie.
pub const MODE_ALWAYS: u32 = 1;
/// Cookies only while the SYN rate to protected ports is above the thresholds.
pub const MODE_AUTO: u32 = 2;

/// `PortConfig::flags` bit: the port is protected.
pub const PORT_PROTECTED: u32 = 1;
/// `PortConfig::flags` bits: nothing listens on the port over IPv4 / IPv6, so the host answers
/// a SYN to it with a RST, not a SYN-ACK (set by the loader from the namespace's listening
/// sockets; neither set: a listener is assumed, as by a loader that does not set them).
pub const PORT_NO_LISTENER_V4: u32 = 2;
pub const PORT_NO_LISTENER_V6: u32 = 4;

/// `PortConfig::flags` bits 8-15 (IPv4) and 16-23 (IPv6): the family's listeners on the port
/// are each bound to one address, and none to the address in slot `i` of `Config::local_v4` /
/// `local_v6` (bit 8 + `i` / 16 + `i`). The host answers a SYN to that address with a RST
/// (`__inet_lookup_listener` matches a bound listener by address), so the program leaves it to
/// the kernel like a SYN to a port nothing listens on. Set by the loader against the address
/// list the config map holds; where the list is not known, none are set.
pub const PORT_NO_LISTENER_AT_V4: u32 = 0xff << 8;
pub const PORT_NO_LISTENER_AT_V6: u32 = 0xff << 16;
const _: () = assert!(
    LOCAL_ADDRS == 8,
    "one byte of port flags per family's address slots"
);

/// `PortConfig::flags` bits 24 (IPv4) and 25 (IPv6): the family's addresses are in the
/// program's trie (`LOCAL_IN_MAP`: no slots to name) and the port's listeners over the family
/// are all bound to particular addresses, so a SYN reaches one only where its destination and
/// port are in `SG_BOUND` ([`BoundKey`]); at another address the host resets it. Set by the
/// loader with the map's entries, which it writes first.
pub const PORT_BOUND_ONLY_V4: u32 = 1 << 24;
pub const PORT_BOUND_ONLY_V6: u32 = 1 << 25;

/// The `PORT_BOUND_ONLY_*` bit of a family.
#[inline(always)]
pub const fn port_bound_only(ipv6: bool) -> u32 {
    if ipv6 {
        PORT_BOUND_ONLY_V6
    } else {
        PORT_BOUND_ONLY_V4
    }
}

/// Every listener bit of a port's flags (`PORT_NO_LISTENER_*`, `PORT_BOUND_ONLY_*`).
pub const PORT_LISTENER_BITS: u32 = PORT_NO_LISTENER_V4
    | PORT_NO_LISTENER_V6
    | PORT_NO_LISTENER_AT_V4
    | PORT_NO_LISTENER_AT_V6
    | PORT_BOUND_ONLY_V4
    | PORT_BOUND_ONLY_V6;

/// `SG_BOUND`'s key: a listener bound to `addr` (an IPv4 address in its first four bytes, the
/// rest zero) on `port`, over the family `ipv6` says (0 or 1). For ports with a
/// `PORT_BOUND_ONLY_*` bit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundKey {
    pub addr: [u8; 16],
    pub port: u16,
    pub ipv6: u8,
    pub _pad: u8,
}

/// The most entries of `SG_BOUND`: bound listeners of protected ports on hosts whose addresses
/// are in the trie. Past it the loader sets no `PORT_BOUND_ONLY_*` bit (any listener counts).
pub const BOUND_ENTRIES: u32 = 1 << 14;

/// The `PORT_NO_LISTENER_*` bit of a family.
#[inline(always)]
pub const fn port_no_listener(ipv6: bool) -> u32 {
    if ipv6 {
        PORT_NO_LISTENER_V6
    } else {
        PORT_NO_LISTENER_V4
    }
}

/// The `PORT_NO_LISTENER_AT_*` bits of a family for address slots `slots` (bit `i`: slot `i`,
/// as `host::dst_slots_v4` / `dst_slots_v6` give them; bits past the slots are ignored).
#[inline(always)]
pub const fn port_no_listener_at(ipv6: bool, slots: u32) -> u32 {
    (slots & 0xff) << listener_slots_shift(ipv6)
}

/// The address slots a port's `flags` name in its family's `PORT_NO_LISTENER_AT_*` bits: the
/// inverse of [`port_no_listener_at`].
pub const fn port_no_listener_slots(ipv6: bool, flags: u32) -> u32 {
    (flags >> listener_slots_shift(ipv6)) & 0xff
}

#[inline(always)]
const fn listener_slots_shift(ipv6: bool) -> u32 {
    if ipv6 { 16 } else { 8 }
}

/// TCP port numbers: the entries of [`PortTable`] and of [`names::PORT_SYNS`].
pub const PORT_SLOTS: u32 = 65536;
/// Entries in [`names::REFRESH`]: one per port and address family.
pub const REFRESH_SLOTS: u32 = PORT_SLOTS * 2;

/// Length of one flood-detection window. Rates are counted per CPU per window and summed over
/// CPUs when a window closes.
pub const SYN_WINDOW_NS: u64 = 100_000_000;
/// Windows per second, to turn a window count into packets per second.
pub const WINDOWS_PER_SEC: u64 = 1_000_000_000 / SYN_WINDOW_NS;
/// Upper bound on CPUs the XDP program sums rate windows over (bounded loop).
pub const MAX_CPUS: u32 = 64;

/// The single entry of [`names::CONFIG`], written by the loader, read per packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// [`MODE_ALWAYS`] or [`MODE_AUTO`]; anything else passes every SYN to the kernel.
    pub mode: u32,
    /// Window scale the kernel uses for its listeners (`tcp_select_initial_window`); the SYN-ACK
    /// must advertise the same one.
    pub wscale: u32,
    /// Largest MSS the SYN-ACK advertises over IPv4 (interface MTU - 40).
    pub mss_v4: u32,
    /// Largest MSS the SYN-ACK advertises over IPv6 (interface MTU - 60).
    pub mss_v6: u32,
    /// Non-zero when the kernel accepts ECN from a cookie (`net.ipv4.tcp_ecn` != 0); see
    /// `cookie_ecn_ok`.
    pub ecn: u32,
    /// Auto mode: cookies turn on when the SYN rate reaches this many per second.
    pub syn_on_pps: u32,
    /// Auto mode: cookies turn off after the rate stayed below this for `hold_ns`.
    pub syn_off_pps: u32,
    /// CPUs to sum rate windows over (possible CPUs, at most [`MAX_CPUS`]).
    pub nr_cpus: u32,
    /// Receive space the kernel starts a cookie connection with (`tcp_rmem[1]` through
    /// `tcp_win_from_space`), as recorded in the run info; the program reads what follows from
    /// it, `synack_windows`.
    pub rcv_space: u32,
    /// [`COOKIES_KERNEL`] or [`COOKIES_OWN`]: whose SYN cookies answer SYNs.
    pub cookies: u32,
    pub hold_ns: u64,
    /// While cookies are active, one SYN per listener per this period goes to the kernel.
    pub refresh_ns: u64,
    /// The interface's own MAC address, from the loader: SYNs to any other destination MAC are
    /// not the host's (`host::mac_class`). All zero: unknown, every unicast frame counts as ours.
    pub own_mac: [u8; 6],
    /// Non-zero when the interface is a loopback device: there, 127.0.0.0/8 and a source equal
    /// to the destination are normal (`host::martian_v4` / `martian_v6` do not apply them).
    pub loopback: u8,
    /// Non-zero when the interface takes IPv4 segments from the host's own addresses
    /// (`net.ipv4.conf.{all,IFACE}.accept_local`); 0, the kernel's default (and what a loader
    /// that wrote this byte as padding says), makes such a source a martian
    /// (`host::src_local_v4`).
    pub accept_local: u8,
    /// Byte offset of `snt_isn` in the kernel's `struct tcp_request_sock`, from its BTF (the
    /// loader reads it with `btf::member_offset`). 0: unknown, ACKs to request sockets pass.
    pub reqsk_isn_off: u32,
    /// The multiplier that places `local_v4` and `local_v6` in their pairs of slots
    /// (`host::local_pair`), chosen by the loader so that no pair holds three addresses
    /// (`host::local_salt`).
    pub local_salt: u32,
    /// The SYN-ACK's window for each cookie MSS class, IPv4's four then IPv6's
    /// ([`crate::cookie::synack_windows`] of `rcv_space`): bounds the window so the client never
    /// sends past what the kernel's `tcp_select_initial_window` will accept. Computed by the
    /// loader, so that no SYN pays for a division.
    pub synack_windows: [u16; 8],
    /// The host's own addresses, which a segment to a protected port must be addressed to
    /// (`host::dst_local_v4` / `dst_local_v6`; a host that forwards sees others' too): how
    /// many there are plus one, per family; [`LOCAL_IN_MAP`] when they are in `SG_LOCAL_V4` /
    /// `SG_LOCAL_V6` instead (more than [`LOCAL_ADDRS`], or an AnyIP prefix); 0 when not known
    /// (a loopback device, or more than [`LOCAL_MAP_ENTRIES`]), and then every destination
    /// counts as the host's.
    pub local_v4_n: u32,
    pub local_v6_n: u32,
    /// IPv4 addresses as the header's words (`u32::from_ne_bytes` of the address's bytes).
    pub local_v4: [u32; LOCAL_ADDRS],
    /// IPv6 addresses, each as four such words.
    pub local_v6: [[u32; 4]; LOCAL_ADDRS],
}

/// The most addresses of one family [`Config`] holds for the destination check.
pub const LOCAL_ADDRS: usize = 8;

/// [`Config::local_v4_n`] / `local_v6_n`: the family's addresses and local prefixes are in the
/// LPM trie `SG_LOCAL_V4` / `SG_LOCAL_V6`, one entry each (a host's address as a full-length
/// prefix, an AnyIP route as its own prefix; the value is unused), because the config's slots
/// cannot hold them. A lookup per address checked instead of two compares.
pub const LOCAL_IN_MAP: u32 = u32::MAX;
/// The most entries of each of those tries: a node whose service addresses are all on one
/// interface (`kube-ipvs0`) holds one per service. Past it, the family is not known.
pub const LOCAL_MAP_ENTRIES: u32 = 1 << 16;

/// SYN-ACKs carry the kernel's cookies (`bpf_tcp_raw_gen_syncookie_*`, docs/kernel-cookies.md).
pub const COOKIES_KERNEL: u32 = 0;
/// SYN-ACKs carry synguard's own cookies; the TC program hands valid handshakes to the kernel
/// (`crate::own_cookie`, docs/own-cookies.md).
pub const COOKIES_OWN: u32 = 1;
/// Flags above the mode byte of [`Config::cookies`], for both kinds of cookies: options the
/// host's TCP has switched off (`net.ipv4.tcp_timestamps`, `tcp_sack`, `tcp_window_scaling` = 0).
/// The SYN-ACK does not offer them: `bpf_sk_assign_tcp_reqsk` refuses a request socket that asks
/// for them (own cookies), and the kernel's `cookie_timestamp_decode` refuses a cookie whose
/// timestamp carries them, so the client's final ACK got a RST (the kernel's cookies; `tcp_sack=0`
/// was a common mitigation of CVE-2019-11477). The kernel's cookies never get the timestamp
/// flag: synguard itself keeps `tcp_timestamps` on while they are in use.
pub const HOST_NO_TIMESTAMPS: u32 = 1 << 8;
pub const HOST_NO_SACK: u32 = 1 << 9;
pub const HOST_NO_WSCALE: u32 = 1 << 10;
/// More flags of [`Config::cookies`]: the interface's reverse-path filter (`rp_filter`,
/// `fib_validate_source`) as the program applies it to IPv4 SYNs, against the main routing table
/// the loader copies into `SG_RP_V4` ([`RP_ROUTE_HERE`] ...; docs/host-checks.md). Strict: a SYN
/// whose source is routed out of another interface, or not at all, is the kernel's to drop.
/// Neither flag (0, what an older loader writes): not checked.
pub const HOST_RP_STRICT: u32 = 1 << 11;
/// Loose: a SYN whose source has no unicast route is the kernel's to drop.
pub const HOST_RP_LOOSE: u32 = 1 << 12;
/// `SG_RP_V4`'s values, by the kind of route to a source: not unicast (blackhole, unreachable,
/// prohibit), unicast out of another interface only, unicast with a next hop out of this one.
pub const RP_ROUTE_BLOCKED: u32 = 0;
pub const RP_ROUTE_ELSEWHERE: u32 = 1;
pub const RP_ROUTE_HERE: u32 = 2;
/// The most routes `SG_RP_V4` holds; a main table with more is not checked.
pub const RP_ROUTES: u32 = 1024;

/// Whether the reverse-path filter that `flags` (a [`Config::cookies`]) names lets an IPv4
/// segment through whose source's longest-matching route is of kind `route` (`None`: no route).
/// Strict wins where both flags are set.
#[inline(always)]
pub const fn reverse_path_ok(flags: u32, route: Option<u32>) -> bool {
    let need = if flags & HOST_RP_STRICT != 0 {
        RP_ROUTE_HERE
    } else if flags & HOST_RP_LOOSE != 0 {
        RP_ROUTE_ELSEWHERE
    } else {
        return true;
    };
    match route {
        Some(kind) => kind >= need,
        None => false,
    }
}

/// The mode byte of [`Config::cookies`]: [`COOKIES_KERNEL`] or [`COOKIES_OWN`].
pub const COOKIES_KIND: u32 = 0xff;

/// Whether [`Config::cookies`] says own cookies.
#[inline(always)]
pub const fn cookies_own(cookies: u32) -> bool {
    cookies & COOKIES_KIND == COOKIES_OWN
}

/// One port's entry in [`PortTable`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortConfig {
    pub flags: u32,
}

/// The single value of [`names::PORTS`]: a [`PortConfig`] per TCP port number, by port (a
/// global the programs index directly, `names::GLOBALS`; the loader reads and writes it whole).
pub type PortTable = [PortConfig; PORT_SLOTS as usize];
const _: () = assert!(core::mem::size_of::<PortTable>() == 4 * PORT_SLOTS as usize);

/// The single entry of [`names::MODE`]: auto mode's decision, shared by all CPUs. Written by the
/// XDP program when a SYN closes a window, and by the loader only to turn cookies off when the
/// hold ran out with no SYN to close one ([`ModeState::hold_expired`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModeState {
    /// Non-zero while the SYN rate calls for cookies (auto mode).
    pub cookies_wanted: u32,
    pub _pad: u32,
    /// The programs' clock (`bpf_ktime_get_coarse_ns`) when cookies were last turned on.
    pub wanted_since_ns: u64,
    /// Last time the summed SYN rate was at or above `syn_off_pps`.
    pub last_above_ns: u64,
    /// Summed SYN rate of the last closed window, packets per second.
    pub last_rate_pps: u64,
    /// Mode switches so far (on and off).
    pub switches: u64,
}

impl ModeState {
    /// Auto mode's off rule: cookies are on and the rate has not reached `syn_off_pps` for
    /// `hold_ns`. The program applies it when a SYN closes a window; the loader applies it on
    /// its own clock, so that cookies go off after a flood also when no SYN comes at all.
    #[inline(always)]
    pub fn hold_expired(&self, hold_ns: u64, now_ns: u64) -> bool {
        self.cookies_wanted != 0 && now_ns.wrapping_sub(self.last_above_ns) >= hold_ns
    }
}

/// Whether the mode calls for cookies: always, or auto mode while the SYN rate wants them
/// (`cookies_wanted`, [`ModeState`]). The program answers with a cookie only then, and with the
/// kernel's cookies also only while the loader says the kernel is ready ([`ReadyState`]); own
/// cookies are ready from the start.
#[inline(always)]
pub fn cookies_called_for(mode: u32, cookies_wanted: bool) -> bool {
    mode == MODE_ALWAYS || (mode == MODE_AUTO && cookies_wanted)
}

/// How long a cookie the kernel sent itself stays valid, rounded up: it is checked against the
/// minute it was made in, which may be up to `MAX_SYNCOOKIE_AGE` (2) minutes old
/// (`check_tcp_syn_cookie`, net/ipv4/syncookies.c), so at most three minutes.
pub const KERNEL_COOKIE_LIFE_NS: u64 = 4 * 60 * 1_000_000_000;

/// Own cookies: whether an ACK without an own cookie may still carry a valid cookie the kernel
/// sent itself, so that the kernel's check (another hash) is worth running before it is
/// dropped. With own cookies the kernel answers a SYN itself only while the program passes SYNs
/// to it: auto mode with cookies off (`state`), the kernel not yet ready (`kernel_ready`), or
/// monitor mode. Once auto mode has had cookies on for a kernel cookie's life, and in always
/// mode, no such cookie can still be valid. (A SYN on a 4-tuple in TIME_WAIT also reaches the
/// kernel, which answers it with a cookie only while a listener's queue overflows, which the
/// SYNs synguard answers do not fill; docs/own-cookies.md.)
/// `state` is auto mode's ([`ModeState`]), asked for only in auto mode (a map lookup the other
/// modes skip); none there: possible.
#[inline(always)]
pub fn kernel_cookies_possible<'a>(
    mode: u32,
    state: impl FnOnce() -> Option<&'a ModeState>,
    kernel_ready: bool,
    monitor: bool,
    now_ns: u64,
) -> bool {
    if monitor || !kernel_ready {
        return true;
    }
    match mode {
        MODE_ALWAYS => false,
        MODE_AUTO => state().is_none_or(|s| {
            s.cookies_wanted == 0 || now_ns.wrapping_sub(s.wanted_since_ns) < KERNEL_COOKIE_LIFE_NS
        }),
        _ => true,
    }
}

/// The single entry of [`names::READY`]. Written only by the loader: whether the kernel accepts
/// cookie ACKs right now (`net.ipv4.tcp_syncookies=2`, see docs/kernel-cookies.md). Cookies are
/// sent only while this is set, so no client gets a cookie the kernel would refuse.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadyState {
    pub kernel_ready: u32,
    pub _pad: u32,
    /// The programs' clock (CLOCK_MONOTONIC_COARSE) when the loader last set `kernel_ready`. Listener
    /// refresh stamps older than this are stale: the first SYN after it goes to the kernel.
    pub ready_since_ns: u64,
}

impl ReadyState {
    /// The loader's word to the program: cookies may (or may not) be sent from `since_ns` on.
    pub const fn new(ready: bool, since_ns: u64) -> Self {
        ReadyState {
            kernel_ready: ready as u32,
            _pad: 0,
            ready_since_ns: since_ns,
        }
    }
}

/// The per-CPU entry of [`names::SYN_WINDOW`]: SYNs to protected ports this CPU saw.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynWindow {
    /// Start of the current window, aligned to [`SYN_WINDOW_NS`].
    pub start_ns: u64,
    pub count: u64,
    /// Start of the previous (closed) window and its count.
    pub prev_start_ns: u64,
    pub prev_count: u64,
}

impl SynWindow {
    /// SYNs this CPU counted in the window that starts at `closed`: its previous window, or its
    /// current one if it has not rolled over since. Zero for a CPU whose windows are older (it
    /// saw no SYN since), so a rate built from this decays with time, not with traffic.
    #[inline(always)]
    pub fn count_in(&self, closed: u64) -> u64 {
        if self.prev_start_ns == closed {
            self.prev_count
        } else if self.start_ns == closed {
            self.count
        } else {
            0
        }
    }
}

/// Start of the last window that closed by `now_ns`.
#[inline(always)]
pub fn last_closed_window(now_ns: u64) -> u64 {
    (now_ns - now_ns % SYN_WINDOW_NS).saturating_sub(SYN_WINDOW_NS)
}

/// SYNs per second in the last closed window at `now_ns`, summed over the CPUs' windows: the
/// rate the program compares with the thresholds, as anyone reading the map sees it now.
pub fn syn_rate_at(windows: &[SynWindow], now_ns: u64) -> u64 {
    let closed = last_closed_window(now_ns);
    windows.iter().map(|w| w.count_in(closed)).sum::<u64>() * WINDOWS_PER_SEC
}

/// Per-CPU verdict counter, one per [`crate::reason::Reason`] (xdp-tools' `datarec`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// How long the kernel keeps a TIME_WAIT socket (`TCP_TIMEWAIT_LEN`, include/net/tcp.h).
pub const TIME_WAIT_NS: u64 = 60_000_000_000;
/// How long a recently-closed record counts: TIME_WAIT and a margin, because the TIME_WAIT
/// socket's timer may fire late by up to its timer-wheel level's granularity (kernel/time/
/// timer.c: 512 jiffies for a 60 s timeout, ~2 s at HZ=250), and a SYN that meets the socket
/// then must reach the kernel too. Below the filter's period ([`CLOSING_GEN_SHIFT`]).
pub const CLOSING_RECORD_NS: u64 = TIME_WAIT_NS + 4_000_000_000;
/// Slots of [`names::CLOSING`], a power of two.
pub const CLOSING_SLOTS: u32 = 1 << 20;

/// The recently-closed table is set-associative: a 64-bit hash of the 4-tuple picks a bucket of
/// [`CLOSING_WAYS`] slots (one cache line), any of which may hold its record: the hash's upper
/// 32 bits as a tag and the time in units of 2^30 ns (~1.07 s). A false "recently closed" only
/// sends that SYN to the kernel, which is always safe; a lost record (all slots of the bucket
/// taken by other live records) can leave a client to wait out the server's TIME_WAIT, as
/// without the table.
pub const CLOSING_TIME_SHIFT: u32 = 30;

/// Slots per bucket of the recently-closed table. Direct-mapped, the table lost a record
/// whenever another close landed in its slot within the minute: with n live records, n in 2^20
/// closes (132 of about 38 000 in a 10-minute soak with ~4 000 live), and a client that reused
/// such a 4-tuple within TIME_WAIT got a cookie whose ACK the TIME_WAIT socket swallowed (it
/// stalled, established on its side). With eight ways a record is lost only when eight other
/// live records share its bucket.
pub const CLOSING_WAYS: u32 = 8;

/// 64-bit mix of an IPv6 4-tuple (source and destination address words, ports), for the slot
/// and tag. Plain steps rather than an iterator chain: LLVM turned the chain into a BPF
/// subprogram reading the caller's stack through a pointer, which the verifier refused. Two
/// 32-bit words per step: each step is a multiply the next one waits for, and a chain of nine
/// cost about a tenth of the SYN path.
#[inline(always)]
pub fn flow_hash(saddr: &[u32; 4], daddr: &[u32; 4], sport: u16, dport: u16) -> u64 {
    let pair = |a: u32, b: u32| (a as u64) << 32 | b as u64;
    let mut h = FLOW_SEED;
    h = flow_mix(h, pair(ports(sport, dport), saddr[0]));
    h = flow_mix(h, pair(saddr[1], saddr[2]));
    h = flow_mix(h, pair(saddr[3], daddr[0]));
    h = flow_mix(h, pair(daddr[1], daddr[2]));
    h = flow_mix(h, daddr[3] as u64);
    flow_finish(h)
}

/// [`flow_hash`] of an IPv4 4-tuple: the ports and the source in one step, the destination in a
/// second.
#[inline(always)]
pub fn flow_hash_v4(saddr: u32, daddr: u32, sport: u16, dport: u16) -> u64 {
    let h = flow_mix(FLOW_SEED, (ports(sport, dport) as u64) << 32 | saddr as u64);
    flow_finish(flow_mix(h, daddr as u64))
}

/// [`flow_hash`] or [`flow_hash_v4`] by family, of the addresses as a header's words in memory
/// order, source then destination (IPv4's in `a[0]` and `a[1]`).
#[inline(always)]
pub fn flow_hash_of(ipv6: bool, a: &[u32; 8], sport: u16, dport: u16) -> u64 {
    if ipv6 {
        flow_hash(
            &[a[0], a[1], a[2], a[3]],
            &[a[4], a[5], a[6], a[7]],
            sport,
            dport,
        )
    } else {
        flow_hash_v4(a[0], a[1], sport, dport)
    }
}

const FLOW_SEED: u64 = 0x243f_6a88_85a3_08d3;

/// The ports as one word. They get a place of their own: XORed into an address word, different
/// (address, port) pairs gave the same input and the same hash.
#[inline(always)]
fn ports(sport: u16, dport: u16) -> u32 {
    ((sport as u32) << 16) | dport as u32
}

/// splitmix64-style mixing: cheap, and good enough to spread slots.
#[inline(always)]
fn flow_mix(h: u64, w: u64) -> u64 {
    let h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

#[inline(always)]
fn flow_finish(mut h: u64) -> u64 {
    h ^= h >> 32;
    h.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 31)
}

/// The recently-closed table's filter: one byte per filter slot saying in which period of
/// 2^[`CLOSING_GEN_SHIFT`] ns (~68.7 s, longer than TIME_WAIT) a close was last recorded in it.
/// A SYN whose filter slot names neither this period nor the one before has no record, and
/// skips the table: under a flood of random 4-tuples, reading the 8 MiB table was a cache miss
/// per SYN, about a third of a SYN's live cost (docs/measuring.md); the 64 KiB filter stays in
/// the cache. 2^16 slots, eight to a word of [`names::CLOSING_FILTER`].
pub const CLOSING_FILTER_WORDS: u32 = 1 << 13;
pub const CLOSING_GEN_SHIFT: u32 = 36;

/// (word, byte in it) of the filter slot of a 4-tuple's hash: bits 20..36, apart from the
/// table's slot (bits 0..20) and the tag (bits 32..64), so that the filter spreads closes that
/// share a table slot.
#[inline(always)]
pub const fn closing_filter_slot(hash: u64) -> (u32, u32) {
    let i = (hash >> 20) as u32 & 0xffff;
    (i >> 3, i & 7)
}

/// The period a close at `now_ns` is filed under (wraps every 256 periods, ~4.9 hours; a value
/// that comes round again only sends SYNs to the table, as without the filter).
#[inline(always)]
pub const fn closing_gen(now_ns: u64) -> u8 {
    (now_ns >> CLOSING_GEN_SHIFT) as u8
}

/// Whether a filter slot holding `filed` may have a record that still counts at `now_ns`: a
/// close of this period or the one before (a period is longer than a record counts, so a
/// record from two periods back has expired). An empty slot (0) reads as period 0, which only
/// sends SYNs to the table.
#[inline(always)]
pub const fn closing_filter_hit(filed: u8, now_ns: u64) -> bool {
    closing_gen(now_ns).wrapping_sub(filed) <= 1
}

/// (first slot of the 4-tuple's bucket, entry) to record a close at `now_ns`.
#[inline(always)]
pub fn closing_entry(hash: u64, now_ns: u64) -> (u32, u64) {
    let bucket = (hash as u32) & (CLOSING_SLOTS - 1) & !(CLOSING_WAYS - 1);
    let entry = (hash >> 32) << 32 | (now_ns >> CLOSING_TIME_SHIFT) & 0xffff_ffff;
    (bucket, entry)
}

/// Which way of its bucket (`way(i)`: the entry in way `i`) a record of `hash` at `now_ns`
/// goes to, and whether that loses another flow's live record: the flow's own record, else an
/// empty or expired way, else the oldest record. A constant number of steps (the verifier).
#[inline(always)]
pub fn closing_way(way: impl Fn(u32) -> u64, hash: u64, now_ns: u64) -> (u32, bool) {
    let mut free = None;
    let (mut oldest, mut oldest_age) = (0, 0u64);
    let now = (now_ns >> CLOSING_TIME_SHIFT) & 0xffff_ffff;
    for i in 0..CLOSING_WAYS {
        let e = way(i);
        if e != 0 && e >> 32 == hash >> 32 {
            return (i, false);
        }
        if free.is_none() && !replaces_live_record(e, hash, now_ns) {
            free = Some(i);
        }
        let age = now.wrapping_sub(e & 0xffff_ffff) & 0xffff_ffff;
        if age > oldest_age {
            (oldest, oldest_age) = (i, age);
        }
    }
    match free {
        Some(i) => (i, false),
        None => (oldest, true),
    }
}

/// [`CLOSING_RECORD_NS`] in the records' units, with one unit of slack: the stamp is truncated.
pub const CLOSING_RECORD_UNITS: u64 = (CLOSING_RECORD_NS >> CLOSING_TIME_SHIFT) + 1;

/// Whether `entry` records a close of this flow (`hash`) within [`CLOSING_RECORD_NS`].
#[inline(always)]
pub fn closed_within_time_wait(entry: u64, hash: u64, now_ns: u64) -> bool {
    if entry == 0 || entry >> 32 != hash >> 32 {
        return false;
    }
    let then = entry & 0xffff_ffff;
    let now = (now_ns >> CLOSING_TIME_SHIFT) & 0xffff_ffff;
    now.wrapping_sub(then) & 0xffff_ffff <= CLOSING_RECORD_UNITS
}

/// Whether writing a close of `hash` at `now_ns` over `old` loses another flow's record that is
/// still within the TIME_WAIT period.
#[inline(always)]
pub fn replaces_live_record(old: u64, hash: u64, now_ns: u64) -> bool {
    if old == 0 || old >> 32 == hash >> 32 {
        return false;
    }
    // The old record, read as if it were this flow's: same age test.
    closed_within_time_wait((hash >> 32) << 32 | (old & 0xffff_ffff), hash, now_ns)
}

/// Index of a listener's refresh stamp in [`names::REFRESH`].
pub const fn refresh_slot(port: u16, ipv6: bool) -> u32 {
    (port as u32) * 2 + ipv6 as u32
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], made only of integers, with no implicit padding
    // (checked by the size assertions below).
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::PortConfig {}
    unsafe impl aya::Pod for super::BoundKey {}
    unsafe impl aya::Pod for super::ModeState {}
    unsafe impl aya::Pod for super::ReadyState {}
    unsafe impl aya::Pod for super::SynWindow {}
    unsafe impl aya::Pod for super::Counter {}
}

// No implicit padding anywhere: the sizes are the sums of the fields.
const _: () = assert!(
    core::mem::size_of::<Config>() == 10 * 4 + 2 * 8 + 16 + 16 + 2 * 4 + LOCAL_ADDRS * (4 + 16)
);
const _: () = assert!(core::mem::size_of::<PortConfig>() == 4);
const _: () = assert!(core::mem::size_of::<BoundKey>() == 16 + 2 + 1 + 1);
const _: () = assert!(core::mem::size_of::<ModeState>() == 2 * 4 + 4 * 8);
const _: () = assert!(core::mem::size_of::<ReadyState>() == 2 * 4 + 8);
const _: () = assert!(core::mem::size_of::<SynWindow>() == 4 * 8);
const _: () = assert!(core::mem::size_of::<Counter>() == 2 * 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reverse_path_filter_as_the_kernel_applies_it() {
        let cases = [
            (0, None, true),
            (0, Some(RP_ROUTE_BLOCKED), true),
            (HOST_RP_STRICT, Some(RP_ROUTE_HERE), true),
            (HOST_RP_STRICT, Some(RP_ROUTE_ELSEWHERE), false),
            (HOST_RP_STRICT, Some(RP_ROUTE_BLOCKED), false),
            (HOST_RP_STRICT, None, false),
            (HOST_RP_LOOSE, Some(RP_ROUTE_HERE), true),
            (HOST_RP_LOOSE, Some(RP_ROUTE_ELSEWHERE), true),
            (HOST_RP_LOOSE, Some(RP_ROUTE_BLOCKED), false),
            (HOST_RP_LOOSE, None, false),
            (
                HOST_RP_STRICT | HOST_RP_LOOSE,
                Some(RP_ROUTE_ELSEWHERE),
                false,
            ),
        ];
        for (flags, route, ok) in cases {
            assert_eq!(reverse_path_ok(flags, route), ok, "{flags:#x} {route:?}");
        }
    }

    #[test]
    fn overwriting_a_live_record_of_another_flow_is_told() {
        let now = 1_000 * 1_000_000_000;
        let (a, b) = (0x1111_2222_0000_0005u64, 0x3333_4444_0000_0005u64);
        let (slot_a, rec_a) = closing_entry(a, now);
        let (slot_b, _) = closing_entry(b, now + 1);
        assert_eq!(slot_a, slot_b, "the two flows share a bucket");
        assert!(replaces_live_record(rec_a, b, now + 1));
        // Its own record, an empty slot, or a record older than TIME_WAIT: nothing lost.
        assert!(!replaces_live_record(rec_a, a, now + 1));
        assert!(!replaces_live_record(0, b, now));
        assert!(!replaces_live_record(rec_a, b, now + 2 * TIME_WAIT_NS));
    }

    /// A record goes to its own flow's way, else a free or expired one; only a bucket full of
    /// other live records loses one, the oldest.
    #[test]
    fn a_bucket_loses_a_record_only_when_every_way_is_live() {
        let s = 1_000_000_000u64;
        let now = 5_000 * s;
        let flow = |i: u64| (0x1000 + i) << 32 | 0x40;
        let mut ways = [0u64; CLOSING_WAYS as usize];
        let h = flow(99);
        assert_eq!(closing_way(|i| ways[i as usize], h, now), (0, false));
        for (i, w) in ways.iter_mut().enumerate() {
            // Way 3 holds the oldest live record, way 5 an expired one.
            let at = match i {
                3 => now - 50 * s,
                5 => now - 2 * TIME_WAIT_NS,
                _ => now - (i as u64) * s,
            };
            *w = closing_entry(flow(i as u64), at).1;
        }
        assert_eq!(closing_way(|i| ways[i as usize], h, now), (5, false));
        ways[5] = closing_entry(flow(5), now).1;
        assert_eq!(closing_way(|i| ways[i as usize], h, now), (3, true));
        // The flow's own record, wherever it is, is rewritten.
        ways[6] = closing_entry(h, now - 10 * s).1;
        assert_eq!(closing_way(|i| ways[i as usize], h, now), (6, false));
        // Far more live records than ways over the table: no bucket overflows while each
        // holds at most its ways.
        let (b0, _) = closing_entry(h, now);
        assert_eq!(b0 % CLOSING_WAYS, 0);
        assert!(b0 < CLOSING_SLOTS);
    }

    #[test]
    fn syn_rate_decays_when_no_window_closes() {
        let w = SYN_WINDOW_NS;
        // CPU 0 rolled into window 11 (window 10 had 5 SYNs); CPU 1 still sits in window 10.
        let cpus = [
            SynWindow {
                start_ns: 11 * w,
                count: 1,
                prev_start_ns: 10 * w,
                prev_count: 5,
            },
            SynWindow {
                start_ns: 10 * w,
                count: 2,
                prev_start_ns: 9 * w,
                prev_count: 9,
            },
        ];
        assert_eq!(syn_rate_at(&cpus, 11 * w + 1), 7 * WINDOWS_PER_SEC);
        // A window later nothing closed window 11 on CPU 1: only CPU 0's one SYN counts.
        assert_eq!(syn_rate_at(&cpus, 12 * w), WINDOWS_PER_SEC);
        // Silence: no CPU has a window that closed a moment ago.
        assert_eq!(syn_rate_at(&cpus, 13 * w), 0);
        assert_eq!(syn_rate_at(&cpus, 1000 * w), 0);
        assert_eq!(syn_rate_at(&[], 5), 0);
    }

    #[test]
    fn hold_expires_on_the_clock() {
        let m = ModeState {
            cookies_wanted: 1,
            last_above_ns: 1_000,
            ..Default::default()
        };
        assert!(!m.hold_expired(500, 1_499));
        assert!(m.hold_expired(500, 1_500));
        let off = ModeState {
            cookies_wanted: 0,
            ..m
        };
        assert!(!off.hold_expired(500, 10_000), "nothing to turn off");
    }

    #[test]
    fn refresh_slots_cover_every_port_and_family() {
        assert_eq!(refresh_slot(0, false), 0);
        assert_eq!(refresh_slot(0, true), 1);
        assert_eq!(refresh_slot(65535, true), REFRESH_SLOTS - 1);
    }

    #[test]
    fn kernel_cookies_are_checked_only_while_the_kernel_may_have_sent_them() {
        let now = 1_000 * 1_000_000_000;
        let on_since = |ago: u64| ModeState {
            cookies_wanted: 1,
            wanted_since_ns: now - ago,
            ..Default::default()
        };
        let off = ModeState::default();
        // Always mode: the kernel answers no SYN.
        assert!(!kernel_cookies_possible(
            MODE_ALWAYS,
            || Some(&off),
            true,
            false,
            now
        ));
        // Auto mode: while cookies are off, and for a cookie's life after they went on.
        assert!(kernel_cookies_possible(
            MODE_AUTO,
            || Some(&off),
            true,
            false,
            now
        ));
        let young = on_since(KERNEL_COOKIE_LIFE_NS - 1);
        let old = on_since(KERNEL_COOKIE_LIFE_NS);
        assert!(kernel_cookies_possible(
            MODE_AUTO,
            || Some(&young),
            true,
            false,
            now
        ));
        assert!(!kernel_cookies_possible(
            MODE_AUTO,
            || Some(&old),
            true,
            false,
            now
        ));
        // Every SYN goes to the kernel: monitor mode, a kernel not ready, cookies off.
        assert!(kernel_cookies_possible(
            MODE_ALWAYS,
            || Some(&off),
            true,
            true,
            now
        ));
        assert!(kernel_cookies_possible(
            MODE_ALWAYS,
            || Some(&off),
            false,
            false,
            now
        ));
        assert!(kernel_cookies_possible(0, || Some(&off), true, false, now));
        // Auto mode without its state: possible.
        assert!(kernel_cookies_possible(
            MODE_AUTO,
            || None,
            true,
            false,
            now
        ));
    }

    #[test]
    fn closing_table_records_and_expires() {
        let h = flow_hash(&[1, 2, 3, 4], &[5, 6, 7, 8], 40000, 80);
        let other = flow_hash(&[1, 2, 3, 4], &[5, 6, 7, 8], 40001, 80);
        assert_ne!(h, other);
        assert_ne!(flow_hash_v4(1, 5, 40000, 80), flow_hash_v4(1, 5, 40001, 80));
        assert_ne!(flow_hash_v4(1, 5, 40000, 80), flow_hash_v4(5, 1, 40000, 80));
        let now = 1_000_000_000_000;
        let (slot, entry) = closing_entry(h, now);
        assert!(slot < CLOSING_SLOTS);
        assert!(closed_within_time_wait(entry, h, now));
        assert!(closed_within_time_wait(entry, h, now + 59_000_000_000));
        assert!(closed_within_time_wait(entry, h, now + 63_000_000_000));
        assert!(!closed_within_time_wait(entry, h, now + 67_000_000_000));
        assert!(
            !closed_within_time_wait(entry, other, now),
            "another flow's tag"
        );
        assert!(!closed_within_time_wait(0, h, now), "an empty slot");
    }

    #[test]
    fn flow_hashes_spread_over_the_slots() {
        extern crate std;
        let mut seen = std::collections::HashSet::new();
        for port in 0..4096u16 {
            let h = flow_hash_v4(0xc6120002, 0xc6120001, 32768 + port, 80);
            seen.insert(closing_entry(h, 0).0);
        }
        assert!(
            seen.len() > 4000,
            "{} distinct slots for 4096 ports",
            seen.len()
        );
    }

    #[test]
    fn spoofed_tuples_do_not_match_recorded_closes() {
        extern crate std;
        // Closes of one client, then every port of two other sources in the same /24: with a
        // 32-bit tag a false match should essentially never happen.
        let w = |last: u8| u32::from_ne_bytes([198, 18, 0, last]);
        let srv = w(1);
        let now = 5_000_000_000_000;
        let mut table = std::collections::HashMap::new();
        for i in 0..2000u16 {
            let h = flow_hash_v4(w(2), srv, 33000 + 2 * i, 80);
            let (slot, e) = closing_entry(h, now);
            table.insert(slot, e);
        }
        let mut hits = 0;
        for sport in 0..=u16::MAX {
            for src in [72, 200] {
                let h = flow_hash_v4(w(src), srv, sport, 80);
                let (slot, _) = closing_entry(h, now);
                if table
                    .get(&slot)
                    .is_some_and(|e| closed_within_time_wait(*e, h, now))
                {
                    hits += 1;
                }
            }
        }
        assert_eq!(hits, 0);
    }

    #[test]
    fn window_math() {
        assert_eq!(WINDOWS_PER_SEC, 10);
    }

    /// A close filed at any moment is found by the filter for at least the TIME_WAIT period,
    /// whatever the phase; a filter slot only ever moves to later periods.
    #[test]
    fn the_closing_filter_finds_every_close_within_time_wait() {
        const S: u64 = 1_000_000_000;
        let period = 1u64 << CLOSING_GEN_SHIFT;
        assert!(period > CLOSING_RECORD_NS + (1 << CLOSING_TIME_SHIFT));
        for t in [
            0,
            1,
            period - 1,
            period,
            3 * period + 12_345,
            255 * period + S,
            256 * period,
        ] {
            let g = closing_gen(t);
            let mut now = t;
            while now <= t + CLOSING_RECORD_NS {
                assert!(
                    closing_filter_hit(g, now),
                    "closed at {t}, checked at {now}"
                );
                // A later close in the same slot keeps it found.
                assert!(closing_filter_hit(closing_gen(now), now));
                now += S / 2;
            }
            assert!(!closing_filter_hit(g, t + 2 * period), "{t}");
        }
        let (w, b) = closing_filter_slot(u64::MAX);
        assert!(w < CLOSING_FILTER_WORDS && b < 8);
    }
}
