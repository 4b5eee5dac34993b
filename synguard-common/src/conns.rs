//! The connection table: which 4-tuples to protected ports may belong to a socket of the host,
//! so that the XDP program can tell an ACK that belongs to none (an ACK flood) without the
//! kernel's socket lookup, and pass the packets of live connections without it too
//! (docs/connection-table.md).
//!
//! A direct-mapped array of time stamps, indexed by [`conn_slot`] of the 4-tuple's
//! [`crate::maps::flow_hash`]. Two writers stamp it: the `synguard_conns` sock_ops program when
//! a connection is established or the kernel creates a request socket, and the loader, which
//! stamps every socket it finds in `/proc/net/tcp{,6}` each [`CONN_REFRESH_NS`] and empties the
//! slots no socket stamped for [`CONN_TTL_NS`] ([`conn_expired`]). A slot shared
//! by two connections only makes the table say "maybe" for both, which sends the ACK to the
//! kernel's lookup, as without the table. The table may say "none" only while
//! [`ConnsState::valid_until_ns`] lies ahead: the loader sets it to the start of its last
//! complete pass plus [`CONN_TTL_NS`], when every socket alive at that start carries a stamp at
//! least that recent. If the loader stops (or is late), the table stops being trusted and every
//! ACK goes through the socket lookup again.

/// Slots of the table (a power of two): 4 MiB of stamps.
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

/// A stamp: the time unit in the upper 31 bits, the kind in bit 0.
const KIND_REQUEST: u32 = 1;

/// The stamp of an established (or closing, or TIME_WAIT) socket at `now_ns`: never 0, which
/// marks an empty slot.
#[inline(always)]
pub const fn conn_stamp(now_ns: u64) -> u32 {
    let units = (now_ns >> CONN_TIME_SHIFT) as u32 & (u32::MAX >> 1);
    (if units == 0 { 1 } else { units }) << 1
}

/// The stamp of a request socket (a handshake the kernel answered itself) at `now_ns`. Its
/// ACKs go through the socket lookup, which tells the final ACK (the kernel's ISN + 1) from an
/// ACK flood's guess at it (`ack::check`, `DropAckBadRequest`).
#[inline(always)]
pub const fn conn_request_stamp(now_ns: u64) -> u32 {
    conn_stamp(now_ns) | KIND_REQUEST
}

/// Whether the loader's pass may empty a slot stamped `stamp` at `now_ns`: no socket has
/// stamped it for [`CONN_TTL_NS`], while every live socket is stamped again each pass. One unit
/// of slack: stamps are truncated. The pass empties a slot only if it still holds the stamp it
/// read (compare-and-swap), so a stamp the sock_ops program writes meanwhile survives.
#[inline(always)]
pub const fn conn_expired(stamp: u32, now_ns: u64) -> bool {
    let (then, now) = (stamp >> 1, conn_stamp(now_ns) >> 1);
    stamp != 0
        && now.wrapping_sub(then) & (u32::MAX >> 1) > (CONN_TTL_NS >> CONN_TIME_SHIFT) as u32 + 1
}

/// What the table says about a 4-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnLookup {
    /// A stamp: maybe a socket. The packet passes to the kernel.
    Maybe,
    /// A request socket's stamp: the socket lookup decides (see [`conn_request_stamp`]).
    Request,
    /// No stamp, and the loader's promise holds: no socket.
    None,
    /// No stamp, but the table cannot be trusted now: ask the kernel (`bpf_skc_lookup_tcp`).
    Unknown,
}

/// The table's answer for a slot holding `stamp`. Any stamp counts, however old: the pass
/// empties expired slots ([`conn_expired`]), and a stale "maybe" only passes a packet to the
/// kernel. So the clock (`now_ns`, called at most once) is read only for an empty slot, where
/// the loader's promise is checked: the packets of live connections need no clock.
#[inline(always)]
pub fn conn_lookup(stamp: u32, state: &ConnsState, now_ns: impl FnOnce() -> u64) -> ConnLookup {
    if stamp & KIND_REQUEST != 0 {
        ConnLookup::Request
    } else if stamp != 0 {
        ConnLookup::Maybe
    } else if now_ns() < state.valid_until_ns {
        ConnLookup::None
    } else {
        ConnLookup::Unknown
    }
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

    #[test]
    fn a_stamp_expires_after_its_ttl_and_no_sooner() {
        let t0 = 1_000 * SEC;
        let s = conn_stamp(t0);
        assert!(!conn_expired(s, t0));
        assert!(!conn_expired(s, t0 + CONN_TTL_NS));
        assert!(conn_expired(s, t0 + CONN_TTL_NS + 3 * SEC));
        assert!(!conn_expired(0, t0 + 100 * CONN_TTL_NS));
        assert_ne!(conn_stamp(0), 0);
        let r = conn_request_stamp(t0);
        assert!(!conn_expired(r, t0 + CONN_TTL_NS));
        assert!(conn_expired(r, t0 + CONN_TTL_NS + 3 * SEC));
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
                let s = conn_request_stamp(start + stamped_after);
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
        assert_eq!(conn_lookup(0, &state, || 99 * SEC), ConnLookup::None);
        assert_eq!(conn_lookup(0, &state, || 100 * SEC), ConnLookup::Unknown);
        assert_eq!(
            conn_lookup(0, &ConnsState::default(), || 5),
            ConnLookup::Unknown
        );
        // Any stamp is a "maybe", without reading the clock.
        let old = conn_stamp(10 * SEC);
        assert_eq!(
            conn_lookup(old, &state, || unreachable!()),
            ConnLookup::Maybe
        );
        assert_eq!(
            conn_lookup(conn_request_stamp(10 * SEC), &state, || unreachable!()),
            ConnLookup::Request
        );
    }

    #[test]
    fn slots_stay_in_range_and_differ_from_the_closing_tables() {
        let h = 0xfedc_ba98_7654_3210u64;
        assert!(conn_slot(h) < CONN_SLOTS);
        assert_ne!(conn_slot(h), (h as u32) & (crate::maps::CLOSING_SLOTS - 1));
    }
}
