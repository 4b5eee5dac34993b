//! The connection table: which 4-tuples to protected ports may belong to a socket of the host,
//! so that the XDP program can tell an ACK that belongs to none (an ACK flood) without the
//! kernel's socket lookup, and pass the packets of live connections without it too
//! (docs/connection-table.md).
//!
//! A direct-mapped array of stamps, indexed by [`conn_slot`] of the 4-tuple's
//! [`crate::maps::flow_hash`]. Two writers stamp it: the `synguard_conns` sock_ops program when
//! a connection is established or closes or the kernel creates a request socket, and the
//! loader, which stamps every socket it finds in `/proc/net/tcp{,6}` each [`CONN_REFRESH_NS`]
//! and empties the slots no socket stamped for [`CONN_TTL_NS`] ([`conn_expired`]). Only an
//! established socket's stamp lets its packets pass without the socket lookup; the others
//! ([`conn_ask_stamp`]) ask for it. A stamp carries 16 bits of the hash: a packet of another
//! 4-tuple in the same slot gets the socket lookup, as without the table. The table may say "none" only for an empty slot, and only while
//! [`ConnsState::valid_until_ns`] lies ahead: the loader sets it to the start of its last
//! complete pass plus [`CONN_TTL_NS`], when every socket alive at that start carries a stamp at
//! least that recent. If the loader stops (or is late), the table stops being trusted and every
//! ACK it does not vouch for goes through the socket lookup again.

/// Slots of the table (a power of two): 8 MiB, since an array map keeps each value 8-byte
/// aligned (`array_map_alloc` rounds the value size up), also in its mappable area.
pub const CONN_SLOTS: u32 = 1 << 20;
/// Stamps count units of 2^30 ns (~1.07 s) of the programs' clock (`bpf_ktime_get_coarse_ns`).
pub const CONN_TIME_SHIFT: u32 = 30;
/// How long a slot keeps a stamp no socket renews before the loader's pass empties it.
pub const CONN_TTL_NS: u64 = 60_000_000_000;
/// How often the loader stamps every socket it finds.
pub const CONN_REFRESH_NS: u64 = 10_000_000_000;

/// The loader's promise about the table, one entry of [`crate::names::CONNS_STATE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnsState {
    /// Until then (programs' clock), a slot without a live stamp means no socket. 0: never.
    pub valid_until_ns: u64,
    /// Sockets stamped by the loader's last complete pass (shown by `status`).
    pub last_pass_sockets: u64,
}

/// The table slot of a 4-tuple's hash. Bits 40..60: the recently-closed table takes the low
/// bits (`maps::closing_entry`), so the two tables do not collide on the same flows.
#[inline(always)]
pub const fn conn_slot(hash: u64) -> u32 {
    (hash >> 40) as u32 & (CONN_SLOTS - 1)
}

// A stamp: the 4-tuple's tag in bits 31..16 (hash bits 16..31, apart from the slot's), the time
// in bits 15..1 (units of 2^CONN_TIME_SHIFT ns, wrapping every ~9.7 hours, never 0), the kind
// in bit 0 (1: ask the socket lookup, [`conn_ask_stamp`]). 0: an empty slot.
const KIND_ASK: u32 = 1;
const TIME_BITS: u32 = 15;
const TIME_MASK: u32 = (1 << TIME_BITS) - 1;

#[inline(always)]
const fn tag(hash: u64) -> u32 {
    (hash as u32) & 0xffff_0000
}

#[inline(always)]
const fn units(now_ns: u64) -> u32 {
    let u = (now_ns >> CONN_TIME_SHIFT) as u32 & TIME_MASK;
    if u == 0 { 1 } else { u }
}

/// The stamp of an established (or closing, or TIME_WAIT) socket of the 4-tuple hashed `hash`
/// at `now_ns` (never 0).
#[inline(always)]
pub const fn conn_stamp(hash: u64, now_ns: u64) -> u32 {
    tag(hash) | units(now_ns) << 1
}

/// A stamp that asks for the socket lookup on the 4-tuple's packets: a request socket's (a
/// handshake the kernel answered itself: the lookup tells its final ACK, the kernel's ISN + 1,
/// from an ACK flood's guess at it, `DropAckBadRequest`), a TIME_WAIT socket's, a closed
/// connection's (a new handshake on its 4-tuple must not pass as the old connection).
#[inline(always)]
pub const fn conn_ask_stamp(hash: u64, now_ns: u64) -> u32 {
    conn_stamp(hash, now_ns) | KIND_ASK
}

/// Whether the loader's pass may empty a slot stamped `stamp` at `now_ns`: no socket has
/// stamped it for [`CONN_TTL_NS`], while every live socket is stamped again each pass. One unit
/// of slack: the time is truncated (and 0 is written as 1). The pass empties a slot only if it
/// still holds the stamp it read (compare-and-swap), so a stamp the sock_ops program writes
/// meanwhile survives.
#[inline(always)]
pub const fn conn_expired(stamp: u32, now_ns: u64) -> bool {
    let age = units(now_ns).wrapping_sub(stamp >> 1 & TIME_MASK) & TIME_MASK;
    stamp != 0 && age > (CONN_TTL_NS >> CONN_TIME_SHIFT) as u32 + 1
}

/// What the table says about a 4-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnLookup {
    /// This 4-tuple's stamp: maybe a socket. The packet passes to the kernel.
    Maybe,
    /// This 4-tuple's "ask" stamp ([`conn_ask_stamp`]), or another 4-tuple's stamp in its
    /// slot: the socket lookup decides.
    Ask,
    /// No stamp, and the loader's promise holds: no socket.
    None,
    /// No stamp, but the table cannot be trusted now: the socket lookup decides.
    Unknown,
}

/// The table's answer for a 4-tuple hashed `hash` whose slot holds `stamp`. Its own stamp
/// counts however old: the pass empties expired slots, and a stale "maybe" only passes a
/// packet to the kernel. So the clock (`now_ns`, called at most once) is read only for an
/// empty slot, where the loader's promise is checked: live connections' packets need no clock.
#[inline(always)]
pub fn conn_lookup(
    stamp: u32,
    hash: u64,
    state: &ConnsState,
    now_ns: impl FnOnce() -> u64,
) -> ConnLookup {
    if stamp == 0 {
        if now_ns() < state.valid_until_ns {
            ConnLookup::None
        } else {
            ConnLookup::Unknown
        }
    } else if stamp & 0xffff_0000 != tag(hash) || stamp & KIND_ASK != 0 {
        ConnLookup::Ask
    } else {
        ConnLookup::Maybe
    }
}

/// The kernel's TCP socket states (include/net/tcp_states.h), as `/proc/net/tcp` prints them.
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    /// A listening socket, which has no peer.
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
}

/// The stamp the loader's pass gives a socket it read in state `state` (`TCP_*`,
/// include/net/tcp_states.h) at `now_ns`: a socket that still carries its connection (up to
/// the close of both sides) passes on its stamp; the others ask for the socket lookup
/// (`SYN_SENT`, `SYN_RECV` and `NEW_SYN_RECV` request sockets, `TIME_WAIT`, `CLOSE`).
#[inline(always)]
pub const fn conn_pass_stamp(hash: u64, state: u8, now_ns: u64) -> u32 {
    use tcp_state::*;
    match state {
        ESTABLISHED | FIN_WAIT1 | FIN_WAIT2 | CLOSE_WAIT | LAST_ACK | CLOSING => {
            conn_stamp(hash, now_ns)
        }
        _ => conn_ask_stamp(hash, now_ns),
    }
}

/// Whether the pass that started at `started_ns` may replace the slot's stamp `current` with
/// `new`: not when `new` would let packets pass on a 4-tuple whose close the sock_ops program
/// stamped after the pass began (the pass read the socket before it closed). Anything else it
/// may: its stamps are at least as recent as what they replace, and a stamp in the slot for
/// another 4-tuple only turns into "ask the lookup" for that one.
#[inline(always)]
pub const fn conn_pass_may_write(current: u32, new: u32, started_ns: u64) -> bool {
    let closed_since = current & KIND_ASK != 0
        && current & 0xffff_0000 == new & 0xffff_0000
        && (current >> 1 & TIME_MASK).wrapping_sub(units(started_ns)) & TIME_MASK
            <= (CONN_TTL_NS >> CONN_TIME_SHIFT) as u32;
    !(closed_since && new & KIND_ASK == 0)
}

/// The promise a complete pass that started at `started_ns` makes (every socket alive then was
/// stamped at or after it, and every one established since was stamped by the sock_ops
/// program).
#[inline(always)]
pub const fn conns_valid_until(started_ns: u64) -> u64 {
    started_ns + CONN_TTL_NS
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), two u64 fields, no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::ConnsState {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;
    const H: u64 = 0x0123_4567_89ab_cdef;

    #[test]
    fn a_stamp_expires_after_its_ttl_and_no_sooner() {
        for t0 in [
            1_000 * SEC,
            0,
            (TIME_MASK as u64) << CONN_TIME_SHIFT,
            10 * 3_600 * SEC,
        ] {
            for s in [conn_stamp(H, t0), conn_ask_stamp(H, t0)] {
                assert_ne!(s, 0);
                assert!(!conn_expired(s, t0));
                assert!(!conn_expired(s, t0 + CONN_TTL_NS));
                assert!(conn_expired(s, t0 + CONN_TTL_NS + 3 * SEC), "{t0}");
            }
        }
        assert!(!conn_expired(0, 100 * CONN_TTL_NS));
        assert_ne!(conn_stamp(0, 0), 0);
    }

    /// The loader's promise: a socket alive when a pass started was stamped at or after that
    /// start, and no pass empties its slot while the promise holds, whatever the truncation.
    #[test]
    fn no_stamp_written_after_the_start_expires_while_trusted() {
        for start in [
            0,
            1,
            SEC - 1,
            5 * SEC + 7,
            (1 << 30) - 1,
            1 << 30,
            12_345 * SEC + 999,
        ] {
            let until = conns_valid_until(start);
            for stamped_after in [0, 1, SEC / 2, 3 * SEC, CONN_TTL_NS - 1] {
                let s = conn_ask_stamp(H, start + stamped_after);
                let mut now = start + stamped_after;
                while now < until {
                    assert!(!conn_expired(s, now), "{start} {now}");
                    now += SEC / 3;
                }
            }
        }
    }

    #[test]
    fn an_empty_slot_is_no_socket_only_while_trusted() {
        let state = ConnsState {
            valid_until_ns: 100 * SEC,
            last_pass_sockets: 0,
        };
        assert_eq!(conn_lookup(0, H, &state, || 99 * SEC), ConnLookup::None);
        assert_eq!(conn_lookup(0, H, &state, || 100 * SEC), ConnLookup::Unknown);
        assert_eq!(
            conn_lookup(0, H, &ConnsState::default(), || 5),
            ConnLookup::Unknown
        );
    }

    /// Any stamp is answered without the clock: this 4-tuple's (however old) is a "maybe";
    /// a request socket's or another 4-tuple's sends the packet to the socket lookup.
    #[test]
    fn a_stamp_is_a_maybe_only_for_its_own_established_socket() {
        let state = ConnsState::default();
        let clock = || -> u64 { unreachable!("no clock for a stamped slot") };
        let old = conn_stamp(H, 10 * SEC);
        assert_eq!(conn_lookup(old, H, &state, clock), ConnLookup::Maybe);
        let req = conn_ask_stamp(H, 10 * SEC);
        assert_eq!(conn_lookup(req, H, &state, clock), ConnLookup::Ask);
        // Same slot, another tag.
        let other = H ^ 0x0001_0000;
        assert_eq!(conn_slot(other), conn_slot(H));
        assert_eq!(conn_lookup(old, other, &state, clock), ConnLookup::Ask);
    }

    #[test]
    fn the_pass_stamps_live_connections_and_asks_for_the_rest() {
        let t = 500 * SEC;
        for state in [1, 4, 5, 8, 9, 11] {
            assert_eq!(conn_pass_stamp(H, state, t), conn_stamp(H, t), "{state}");
        }
        for state in [2, 3, 6, 7, 12] {
            assert_eq!(
                conn_pass_stamp(H, state, t),
                conn_ask_stamp(H, t),
                "{state}"
            );
        }
    }

    /// A close the sock_ops program stamped after the pass began is not undone by the pass's
    /// older view of the socket; everything else the pass may write.
    #[test]
    fn the_pass_does_not_undo_a_close_it_did_not_see() {
        let start = 700 * SEC;
        let est = conn_stamp(H, start);
        let closed_after = conn_ask_stamp(H, start + SEC / 2);
        assert!(!conn_pass_may_write(closed_after, est, start));
        // A close before the pass began (the socket is not in its lists, or is again).
        let closed_before = conn_ask_stamp(H, start - 5 * SEC);
        assert!(conn_pass_may_write(closed_before, est, start));
        // Another 4-tuple's close, an ask stamp, an empty or established slot.
        assert!(conn_pass_may_write(
            conn_ask_stamp(H ^ 0x0001_0000, start + SEC),
            est,
            start
        ));
        assert!(conn_pass_may_write(
            closed_after,
            conn_ask_stamp(H, start),
            start
        ));
        assert!(conn_pass_may_write(0, est, start));
        assert!(conn_pass_may_write(conn_stamp(H, start - SEC), est, start));
    }

    #[test]
    fn slots_stay_in_range_and_differ_from_the_closing_tables() {
        assert!(conn_slot(H) < CONN_SLOTS);
        assert_ne!(conn_slot(H), (H as u32) & (crate::maps::CLOSING_SLOTS - 1));
    }
}
