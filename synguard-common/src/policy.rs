//! Who gets dropped: the layout of the policy maps (allow/block lists, per-source limits, the
//! reflection cap, monitor mode) and the pure logic the XDP program applies with them.

/// Map names (the one table in [`crate::names`]).
pub use crate::names;

/// Entries in each allow/block trie.
pub const LIST_SLOTS: u32 = 16384;
/// Sources tracked by the per-source limiter (least recently used are evicted).
pub const SOURCE_SLOTS: u32 = 65536;
/// Destination prefixes tracked by the reflection cap.
pub const REFLECT_SLOTS: u32 = 16384;
/// Bytes of the flood-event ring buffer.
pub const FLOOD_EVENT_BYTES: u32 = 64 * 1024;

/// Address families in keys.
pub const FAMILY_V4: u32 = 4;
pub const FAMILY_V6: u32 = 6;

/// The single entry of [`names::POLICY`]. All zero (the default) means: no lists, no limits, no
/// cap, acting for real.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Non-zero: decide everything, count what would have been done, pass every packet.
    pub monitor: u32,
    /// Number of entries in each list; an empty list is not looked up at all (LPM lookups cost
    /// tens of nanoseconds, and every packet to a protected port would pay them).
    pub allow_v4: u32,
    pub allow_v6: u32,
    pub block_v4: u32,
    pub block_v6: u32,
    pub _pad: u32,
    /// Per-source SYN limit: nanoseconds of credit one SYN costs (1e9 / rate); 0 = no limit.
    pub src_cost_ns: u64,
    /// Per-source burst: the most credit a source can bank (burst * cost).
    pub src_burst_ns: u64,
    /// How long a source that went over its rate stays blocked; 0 = only its excess is dropped.
    pub src_block_ns: u64,
    /// Reflection cap: nanoseconds one SYN-ACK to a destination prefix costs; 0 = no cap.
    pub reflect_cost_ns: u64,
    pub reflect_burst_ns: u64,
}

/// Key of the per-source limiter and of the reflection cap: an IPv4 address or an IPv6 prefix,
/// masked by [`source_key`] / [`reflect_key`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub family: u32,
    pub addr: [u8; 16],
}

/// Value of the per-source limiter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceState {
    /// GCRA theoretical arrival time of the next SYN, the programs' clock.
    pub tat_ns: u64,
    /// Dropped while `now` is before this.
    pub blocked_until_ns: u64,
    /// SYNs seen from this source, and how many were dropped (for `synguard top`).
    pub syns: u64,
    pub dropped: u64,
}

/// Value of the reflection cap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReflectState {
    pub tat_ns: u64,
    /// SYNs dropped because of the cap.
    pub capped: u64,
}

/// A flood start or end, sent to the loader through [`names::FLOOD_EVENTS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodEvent {
    /// [`FLOOD_START`] or [`FLOOD_END`].
    pub kind: u32,
    /// Destination port of the SYN whose window closed the decision.
    pub port: u32,
    /// SYNs per second to all protected ports, all CPUs, over the last closed window.
    pub rate_pps: u64,
    /// The programs' clock at the decision.
    pub time_ns: u64,
}

impl FloodEvent {
    /// Decodes an event as the program wrote it into the ring buffer (native byte order, the
    /// `repr(C)` layout); `None` for a record too short to be one.
    pub fn from_bytes(b: &[u8]) -> Option<FloodEvent> {
        let u32_at = |at: usize| Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?));
        let u64_at = |at: usize| Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?));
        Some(FloodEvent {
            kind: u32_at(0)?,
            port: u32_at(4)?,
            rate_pps: u64_at(8)?,
            time_ns: u64_at(16)?,
        })
    }
}

pub const FLOOD_START: u32 = 1;
pub const FLOOD_END: u32 = 2;

/// Generic cell rate algorithm (a token bucket with one number): a SYN at `now` conforms if the
/// theoretical arrival time is no more than `burst - cost` ahead of `now`. Returns the new
/// theoretical arrival time if it conforms, `None` if it does not (the state is then unchanged).
#[inline(always)]
pub fn gcra(tat: u64, now: u64, cost: u64, burst: u64) -> Option<u64> {
    let tat = if tat > now { tat } else { now };
    let ahead = tat - now;
    if ahead + cost > burst.max(cost) {
        None
    } else {
        Some(tat + cost)
    }
}

/// Per-source key: the IPv4 address, or the IPv6 /64 (one customer's network; a source picks any
/// address in it at will). `w`: the address as the header's words in memory order, IPv4's in
/// the first (the XDP program reads them as whole words from the parsed header).
#[inline(always)]
pub fn source_key(ipv6: bool, w: &[u32; 4]) -> AddrKey {
    if ipv6 {
        key(FAMILY_V6, [w[0], w[1], 0, 0])
    } else {
        key(FAMILY_V4, [w[0], 0, 0, 0])
    }
}

/// Reflection-cap key: the destination's /24 (IPv4) or /48 (IPv6), `w` as in [`source_key`]. A
/// victim cannot be hit harder by spreading spoofed sources over its network.
#[inline(always)]
pub fn reflect_key(ipv6: bool, w: &[u32; 4]) -> AddrKey {
    // The first bytes in memory order: a mask of the low bytes of a native-endian word.
    let first = lower_bytes;
    if ipv6 {
        key(FAMILY_V6, [w[0], w[1] & first(2), 0, 0])
    } else {
        key(FAMILY_V4, [w[0] & first(3), 0, 0, 0])
    }
}

/// A mask of the first `n` bytes of a word as it lies in memory.
#[inline(always)]
const fn lower_bytes(n: u32) -> u32 {
    u32::from_ne_bytes(match n {
        1 => [0xff, 0, 0, 0],
        2 => [0xff, 0xff, 0, 0],
        3 => [0xff, 0xff, 0xff, 0],
        _ => [0xff; 4],
    })
}

/// A key built from whole words: building it from bytes into a zeroed key made LLVM clear the
/// rest with a call to a byte-wise `memset` in the XDP program (docs/verifier.md, "No zeroing
/// that LLVM turns into `memset`").
#[inline(always)]
fn key(family: u32, w: [u32; 4]) -> AddrKey {
    AddrKey {
        family,
        // SAFETY: same size, every bit pattern of either is valid.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(w) },
    }
}

/// (cost, burst) in nanoseconds for a rate of `per_sec` with `burst` events banked; (0, 0), i.e.
/// no limit, for a rate of 0.
pub fn rate_to_gcra(per_sec: u64, burst: u64) -> (u64, u64) {
    if per_sec == 0 {
        return (0, 0);
    }
    let cost = (1_000_000_000 / per_sec).max(1);
    (cost, cost.saturating_mul(burst.max(1)))
}

/// What (cost, burst) from [`rate_to_gcra`] enforces: events per second and events banked;
/// (0, 0) for no limit. A rate whose cost was rounded down reads back as the slightly higher
/// rate the program really allows.
pub fn gcra_to_rate(cost: u64, burst: u64) -> (u64, u64) {
    if cost == 0 {
        return (0, 0);
    }
    (1_000_000_000 / cost, burst / cost)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), integers only, no implicit padding (sizes asserted below).
    unsafe impl aya::Pod for super::Policy {}
    unsafe impl aya::Pod for super::AddrKey {}
    unsafe impl aya::Pod for super::SourceState {}
    unsafe impl aya::Pod for super::ReflectState {}
    unsafe impl aya::Pod for super::FloodEvent {}
}

const _: () = assert!(core::mem::size_of::<Policy>() == 6 * 4 + 5 * 8);
const _: () = assert!(core::mem::size_of::<AddrKey>() == 4 + 16);
const _: () = assert!(core::mem::size_of::<SourceState>() == 4 * 8);
const _: () = assert!(core::mem::size_of::<ReflectState>() == 2 * 8);
const _: () = assert!(core::mem::size_of::<FloodEvent>() == 2 * 4 + 2 * 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_parameters_read_back_as_the_rate() {
        for (rate, burst) in [(1, 1), (7, 3), (1000, 50), (100_000, 1)] {
            let (c, b) = rate_to_gcra(rate, burst);
            assert_eq!(gcra_to_rate(c, b), (rate, burst), "{rate}/s burst {burst}");
        }
        assert_eq!(gcra_to_rate(0, 0), (0, 0));
        // 1e9 / 300000 rounds down to 3333 ns: the program allows 300030 per second.
        let (c, b) = rate_to_gcra(300_000, 1);
        assert_eq!(gcra_to_rate(c, b), (300_030, 1));
    }

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let (cost, burst) = rate_to_gcra(10, 3); // 10/s, 3 banked: 100 ms a SYN
        assert_eq!((cost, burst), (100_000_000, 300_000_000));
        let mut tat = 0;
        let now = 5_000_000_000;
        for i in 0..3 {
            tat = gcra(tat, now, cost, burst).unwrap_or_else(|| panic!("SYN {i} of the burst"));
        }
        assert_eq!(gcra(tat, now, cost, burst), None, "fourth SYN at once");
        // 100 ms later one more conforms, then none again.
        let later = now + cost;
        tat = gcra(tat, later, cost, burst).expect("after one interval");
        assert_eq!(gcra(tat, later, cost, burst), None);
        // After a long quiet time the whole burst is back, not more.
        let much_later = later + 60_000_000_000;
        for _ in 0..3 {
            tat = gcra(tat, much_later, cost, burst).unwrap();
        }
        assert_eq!(gcra(tat, much_later, cost, burst), None);
    }

    #[test]
    fn a_burst_below_one_event_still_lets_one_through() {
        assert!(gcra(0, 10, 100, 0).is_some());
        assert_eq!(rate_to_gcra(0, 5), (0, 0));
        assert_eq!(rate_to_gcra(3_000_000_000, 1).0, 1);
    }

    #[test]
    fn flood_events_decode_from_their_bytes() {
        let ev = FloodEvent {
            kind: FLOOD_END,
            port: 443,
            rate_pps: 123_456,
            time_ns: 9_999,
        };
        // SAFETY: FloodEvent is repr(C) plain old data without padding (size asserted above).
        let bytes: [u8; 24] = unsafe { core::mem::transmute(ev) };
        assert_eq!(FloodEvent::from_bytes(&bytes), Some(ev));
        assert_eq!(FloodEvent::from_bytes(&bytes[..23]), None);
    }

    /// An address's bytes as the words the XDP program reads them as (memory order).
    fn words(a: &[u8; 16]) -> [u32; 4] {
        let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
        [w(0), w(4), w(8), w(12)]
    }

    #[test]
    fn keys_mask_to_the_prefix() {
        let a = [0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9];
        let k = source_key(true, &words(&a));
        assert_eq!(k.family, FAMILY_V6);
        assert_eq!(&k.addr[..8], &a[..8]);
        assert_eq!(&k.addr[8..], &[0; 8]);
        let r = reflect_key(true, &words(&a));
        assert_eq!(&r.addr[..6], &a[..6]);
        assert_eq!(&r.addr[6..], &[0; 10]);
        let v4 = words(&[198, 18, 0, 77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            source_key(false, &v4).addr,
            [198, 18, 0, 77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(reflect_key(false, &v4).addr[..4], [198, 18, 0, 0]);
        assert_eq!(source_key(false, &v4).family, FAMILY_V4);
    }
}
