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
    /// The number of the pass whose promise this is ([`conn_filter_fresh`]).
    pub pass_no: u64,
}

/// The table's filter: one 16-bit pass number per 32 slots (64 KiB, four to a word of
/// [`crate::names::CONNS_FILTER`]). Whoever stamps a slot writes, after the stamp, the number
/// of the pass under way (the published [`ConnsState::pass_no`] + 1): the loader's pass its own,
/// the programs (sock_ops, XDP, TC) the published one + 1. So, while a promise holds, every live socket's
/// filter entry is fresh ([`conn_filter_fresh`]), and an ACK whose entry is not has no socket,
/// known without a read of the 8 MiB table, which under a flood of
/// random 4-tuples was a cache miss per ACK (docs/measuring.md).
pub const CONN_FILTER_WORDS: u32 = 1 << 13;

/// (word, 16-bit lane) of the filter entry of a 4-tuple's hash: its table slot / 32.
#[inline(always)]
pub const fn conn_filter_slot(hash: u64) -> (u32, u32) {
    let i = conn_slot(hash) >> 5;
    (i >> 2, i & 3)
}

/// The entry in `lane` of a filter word as loaded: the lanes are the word's 16-bit halves in
/// memory order, where the writers store them (byte offset 2 x lane; little-endian words, as
/// on the BPF target `bpfel` and the hosts the loader runs on).
#[inline(always)]
pub const fn conn_filter_read(word: u64, lane: u32) -> u16 {
    (word >> ((lane & 3) * 16)) as u16
}

/// Pass numbers as filter entries cycle through 1..=65535; 0 is an entry never written.
const FILTER_CYCLE: u64 = 0xffff;

/// The filter entry a writer puts after its stamp while pass `published` is the promised one:
/// the number of the pass under way, `published + 1`, in the cycle of entries.
#[inline(always)]
pub const fn conn_filter_entry(published: u64) -> u16 {
    mod_cycle(published) as u16 + 1
}

/// `x % FILTER_CYCLE` without a division: 2^16 is 1 modulo 0xffff, so `x` is congruent to the
/// sum of its 16-bit digits (the Internet checksum's end-around carry). Codegen workaround:
/// BPF has no multiply-high for LLVM to divide by a constant with, so `%` stayed a `BPF_MOD`,
/// which the x86 JIT makes a `div` (saving and restoring two registers around it) on the way
/// of every ACK to a protected port (`conn_filter_fresh`).
#[inline(always)]
const fn mod_cycle(x: u64) -> u64 {
    // At most 4 x 0xffff, then at most 0xffff + 3: one subtraction finishes it.
    let s = (x & 0xffff) + (x >> 16 & 0xffff) + (x >> 32 & 0xffff) + (x >> 48);
    let s = (s & 0xffff) + (s >> 16);
    if s >= FILTER_CYCLE {
        s - FILTER_CYCLE
    } else {
        s
    }
}

/// Passes a filter entry stays fresh: a stamp's life in passes, so that a socket the pass's
/// reading of `/proc/net/tcp` missed (it can skip sockets where it resumes between reads) keeps
/// its entry as long as it keeps its stamp.
pub const CONN_FILTER_PASSES: u16 = (CONN_TTL_NS / CONN_REFRESH_NS) as u16;
const _: () = assert!(CONN_FILTER_PASSES >= 6);

/// Passes an entry may be ahead of the reader's view of the promise: a writer that read the
/// next promise before this reader did.
const FILTER_AHEAD: u64 = 2;

/// Whether a filter entry may belong to a live socket under the promise of pass `published`:
/// written during the pass under way or one of the [`CONN_FILTER_PASSES`] before it, or by a
/// writer that already saw a later promise. A never-written entry (0) or an older one: no
/// socket stamped a slot of this entry in a stamp's life.
#[inline(always)]
pub const fn conn_filter_fresh(entry: u16, published: u64) -> bool {
    if entry == 0 {
        return false;
    }
    let (cur, e) = (conn_filter_entry(published) as u64, entry as u64);
    let behind = (cur + FILTER_CYCLE - e) % FILTER_CYCLE;
    let ahead = (e + FILTER_CYCLE - cur) % FILTER_CYCLE;
    behind <= CONN_FILTER_PASSES as u64 || ahead <= FILTER_AHEAD
}

/// The table slot of a 4-tuple's hash. Bits 40..60: the recently-closed table takes the low
/// bits (`maps::closing_entry`), so the two tables do not collide on the same flows.
#[inline(always)]
pub const fn conn_slot(hash: u64) -> u32 {
    (hash >> 40) as u32 & (CONN_SLOTS - 1)
}

// A stamp: the 4-tuple's tag in bits 31..16 (hash bits 16..31, apart from the slot's), a time
// in bits 15..2 (never 0), the kind in bits 1..0. 0: an empty slot. Pass and ask stamps count
// time in units of 2^CONN_TIME_SHIFT ns (wrapping every ~4.9 hours); handshake stamps in units
// of 2^HANDSHAKE_TIME_SHIFT ns (wrapping every ~69 s), since they matter for a moment only.
const KIND_MASK: u32 = 3;
/// An established (or closing) connection: its packets pass on the stamp alone.
const KIND_PASS: u32 = 0;
/// The socket lookup decides ([`conn_ask_stamp`]).
const KIND_ASK: u32 = 1;
/// A handshake the XDP program has just validated and passed ([`conn_handshake_stamp`]).
const KIND_HANDSHAKE: u32 = 2;
/// The same, still to be handed to the kernel by the TC program that checks cookies again.
const KIND_HANDOFF: u32 = 3;
const TIME_BITS: u32 = 14;
const TIME_MASK: u32 = (1 << TIME_BITS) - 1;
const TAG_MASK: u32 = 0xffff_0000;
/// Handshake stamps count units of 2^22 ns (~4.2 ms).
const HANDSHAKE_TIME_SHIFT: u32 = 22;
/// How long a handshake stamp lets its 4-tuple's packets pass: 24 units, ~100 ms. Long enough
/// for the segments that reach XDP before the stack has processed the validated ACK (the same
/// NAPI poll, sub-millisecond); shorter than the shortest retransmission timeout (200 ms,
/// `TCP_RTO_MIN`), so that a segment the client sends again because the host did not take the
/// handshake (its accept queue full) is checked again rather than passed.
const HANDSHAKE_UNITS: u32 = 24;

#[inline(always)]
const fn tag(hash: u64) -> u32 {
    (hash as u32) & TAG_MASK
}

#[inline(always)]
const fn units_of(now_ns: u64, shift: u32) -> u32 {
    let u = (now_ns >> shift) as u32 & TIME_MASK;
    if u == 0 { 1 } else { u }
}

#[inline(always)]
const fn units(now_ns: u64) -> u32 {
    units_of(now_ns, CONN_TIME_SHIFT)
}

#[inline(always)]
const fn stamp_units(stamp: u32) -> u32 {
    stamp >> 2 & TIME_MASK
}

#[inline(always)]
const fn is_handshake(stamp: u32) -> bool {
    stamp & KIND_HANDSHAKE != 0
}

/// Age in its own units of a stamp at `now_ns`, modulo the time's wrap.
#[inline(always)]
const fn age(stamp: u32, now_ns: u64) -> u32 {
    let shift = if is_handshake(stamp) {
        HANDSHAKE_TIME_SHIFT
    } else {
        CONN_TIME_SHIFT
    };
    units_of(now_ns, shift).wrapping_sub(stamp_units(stamp)) & TIME_MASK
}

/// The stamp of an established (or closing, or TIME_WAIT) socket of the 4-tuple hashed `hash`
/// at `now_ns` (never 0).
#[inline(always)]
pub const fn conn_stamp(hash: u64, now_ns: u64) -> u32 {
    tag(hash) | units(now_ns) << 2 | KIND_PASS
}

/// A stamp that asks for the socket lookup on the 4-tuple's packets: a request socket's (a
/// handshake the kernel answered itself: the lookup tells its final ACK, the kernel's ISN + 1,
/// from an ACK flood's guess at it, `DropAckBadRequest`), a TIME_WAIT socket's, a closed
/// connection's (a new handshake on its 4-tuple must not pass as the old connection).
#[inline(always)]
pub const fn conn_ask_stamp(hash: u64, now_ns: u64) -> u32 {
    tag(hash) | units(now_ns) << 2 | KIND_ASK
}

/// The stamp the XDP program writes when it passes a handshake's final ACK on a valid cookie.
/// The client's next segments often follow that ACK into the same NAPI poll, and the XDP
/// program sees them all before the stack has made the connection from the ACK (the stack
/// gets the poll's packets as a batch, `gro_normal_list`, and runs TC ingress for the whole
/// batch before IP, `__netif_receive_skb_list_core`): without this stamp, a segment with data
/// before it carries no valid cookie (its sequence number moved on) and was dropped, and the
/// first data segment was handed over as a second handshake, which the kernel discards
/// (`tcp_v4_syn_recv_sock` finds the first child). For [`HANDSHAKE_UNITS`] the 4-tuple's
/// packets pass; by then the sock_ops program has stamped the connection established.
/// `handoff`: an own cookie's handshake, which the TC program that checks cookies again
/// (`synguard_own_check`, drivers without XDP metadata), where attached, is still to hand to
/// the kernel ([`ConnLookup::Handoff`]).
#[inline(always)]
pub const fn conn_handshake_stamp(hash: u64, now_ns: u64, handoff: bool) -> u32 {
    let kind = if handoff {
        KIND_HANDOFF
    } else {
        KIND_HANDSHAKE
    };
    tag(hash) | units_of(now_ns, HANDSHAKE_TIME_SHIFT) << 2 | kind
}

/// Slots per CPU of the record of own-cookie handshakes whose final ACK a CPU passed marked
/// ([`crate::names::HANDSHAKES`]).
pub const HANDSHAKE_CPU_SLOTS: u32 = 1 << 10;

/// The 4-tuple's slot in a CPU's record of handshakes (the hash's low bits: the connection
/// table uses the high ones).
#[inline(always)]
pub const fn handshake_cpu_slot(hash: u64) -> u32 {
    hash as u32 & (HANDSHAKE_CPU_SLOTS - 1)
}

/// The stamp that records that the TC program handed over the handshake of a
/// [`ConnLookup::Handoff`] stamp `stamp`: its time, no longer waiting.
#[inline(always)]
pub const fn conn_handed_over(stamp: u32) -> u32 {
    stamp & !KIND_MASK | KIND_HANDSHAKE
}

/// Whether the loader's pass may empty a slot stamped `stamp` at `now_ns`: no socket has
/// stamped it for [`CONN_TTL_NS`], while every live socket is stamped again each pass (one unit
/// of slack: the time is truncated, and 0 is written as 1); a handshake stamp once its moment
/// is over. The pass empties a slot only if it still holds the stamp it read
/// (compare-and-swap), so a stamp the sock_ops program writes meanwhile survives.
#[inline(always)]
pub const fn conn_expired(stamp: u32, now_ns: u64) -> bool {
    let limit = if is_handshake(stamp) {
        HANDSHAKE_UNITS
    } else {
        (CONN_TTL_NS >> CONN_TIME_SHIFT) as u32 + 1
    };
    stamp != 0 && age(stamp, now_ns) > limit
}

/// What the table says about a 4-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnLookup {
    /// This 4-tuple's stamp: maybe a socket. The packet passes to the kernel.
    Maybe,
    /// This 4-tuple's handshake, validated by the XDP program moments ago and still to be
    /// handed to the kernel by the TC program that checks cookies again: the XDP program
    /// passes the packet as for [`ConnLookup::Maybe`]; that TC program hands it over.
    Handoff,
    /// This 4-tuple's "ask" stamp ([`conn_ask_stamp`]), a handshake stamp whose moment is
    /// over, or another 4-tuple's stamp in its slot: the socket lookup decides.
    Ask,
    /// No stamp, and the loader's promise holds: no socket.
    None,
    /// No stamp, but the table cannot be trusted now: the socket lookup decides.
    Unknown,
}

/// The table's answer for a 4-tuple hashed `hash` whose slot holds `stamp`. Its own pass stamp
/// counts however old: the pass empties expired slots, and a stale "maybe" only passes a
/// packet to the kernel. So the clock (`now_ns`) and the table's state (`state`, the loader's
/// promise; none: not trusted) are asked for, at most once each, only for an empty slot, and
/// the clock for a handshake stamp: live connections' packets need neither (each is a map
/// lookup in the program).
#[inline(always)]
pub fn conn_lookup<'a>(
    stamp: u32,
    hash: u64,
    state: impl FnOnce() -> Option<&'a ConnsState>,
    now_ns: impl FnOnce() -> u64,
) -> ConnLookup {
    if stamp == 0 {
        return match state() {
            Some(s) if now_ns() < s.valid_until_ns => ConnLookup::None,
            _ => ConnLookup::Unknown,
        };
    }
    if stamp & TAG_MASK != tag(hash) {
        return ConnLookup::Ask;
    }
    match stamp & KIND_MASK {
        KIND_PASS => ConnLookup::Maybe,
        KIND_ASK => ConnLookup::Ask,
        kind => {
            if age(stamp, now_ns()) > HANDSHAKE_UNITS {
                ConnLookup::Ask
            } else if kind == KIND_HANDOFF {
                ConnLookup::Handoff
            } else {
                ConnLookup::Maybe
            }
        }
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
    let closed_since = current & KIND_MASK == KIND_ASK
        && current & TAG_MASK == new & TAG_MASK
        && stamp_units(current).wrapping_sub(units(started_ns)) & TIME_MASK
            <= (CONN_TTL_NS >> CONN_TIME_SHIFT) as u32;
    !(closed_since && new & KIND_MASK != KIND_ASK)
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
    // SAFETY: repr(C), three u64 fields, no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::ConnsState {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;
    const H: u64 = 0x0123_4567_89ab_cdef;

    #[test]
    fn the_cycle_without_a_division_is_the_remainder() {
        let mut rng = crate::testrand::Rng::new(7);
        let edges = [
            0,
            1,
            0xfffe,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            u64::MAX - 1,
            u64::MAX,
        ];
        for x in edges.into_iter().chain((0..200_000).map(|_| rng.next())) {
            assert_eq!(mod_cycle(x), x % FILTER_CYCLE, "{x:#x}");
        }
        for x in 0..3 * FILTER_CYCLE {
            assert_eq!(mod_cycle(x), x % FILTER_CYCLE, "{x:#x}");
        }
    }

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
            pass_no: 0,
        };
        assert_eq!(
            conn_lookup(0, H, || Some(&state), || 99 * SEC),
            ConnLookup::None
        );
        assert_eq!(
            conn_lookup(0, H, || Some(&state), || 100 * SEC),
            ConnLookup::Unknown
        );
        let never_trusted = ConnsState::default();
        assert_eq!(
            conn_lookup(0, H, || Some(&never_trusted), || 5),
            ConnLookup::Unknown
        );
        // No state to read: not trusted.
        assert_eq!(conn_lookup(0, H, || None, || 5), ConnLookup::Unknown);
    }

    /// Any stamp is answered without the clock: this 4-tuple's (however old) is a "maybe";
    /// a request socket's or another 4-tuple's sends the packet to the socket lookup.
    #[test]
    fn a_stamp_is_a_maybe_only_for_its_own_established_socket() {
        let state = ConnsState::default();
        let clock = || -> u64 { unreachable!("no clock for a stamped slot") };
        let old = conn_stamp(H, 10 * SEC);
        assert_eq!(
            conn_lookup(old, H, || Some(&state), clock),
            ConnLookup::Maybe
        );
        // A live stamp needs neither the table's state nor the clock.
        let never =
            || -> Option<&'static ConnsState> { unreachable!("state asked for a live stamp") };
        let no_clock = || -> u64 { unreachable!("clock read for a live stamp") };
        assert_eq!(conn_lookup(old, H, never, no_clock), ConnLookup::Maybe);
        let req = conn_ask_stamp(H, 10 * SEC);
        assert_eq!(conn_lookup(req, H, || Some(&state), clock), ConnLookup::Ask);
        // Same slot, another tag.
        let other = H ^ 0x0001_0000;
        assert_eq!(conn_slot(other), conn_slot(H));
        assert_eq!(
            conn_lookup(old, other, || Some(&state), clock),
            ConnLookup::Ask
        );
    }

    /// A handshake stamp passes its own 4-tuple's packets for its moment only, then sends them
    /// to the socket lookup; the TC program that checks cookies again sees its handoff.
    #[test]
    fn a_handshake_stamp_passes_for_a_moment_then_asks() {
        let state = ConnsState::default();
        let ms = 1_000_000u64;
        for t0 in [
            0,
            1_000 * SEC + 3,
            ((TIME_MASK as u64) << HANDSHAKE_TIME_SHIFT) - 1,
            9 * 3_600 * SEC,
        ] {
            for (handoff, fresh) in [(false, ConnLookup::Maybe), (true, ConnLookup::Handoff)] {
                let s = conn_handshake_stamp(H, t0, handoff);
                assert_ne!(s, 0);
                for dt in [0, ms, 50 * ms, 95 * ms] {
                    assert_eq!(
                        conn_lookup(s, H, || Some(&state), || t0 + dt),
                        fresh,
                        "{t0} {dt}"
                    );
                    assert!(!conn_expired(s, t0 + dt));
                }
                for dt in [110 * ms, 199 * ms, 5 * SEC, 30 * SEC] {
                    assert_eq!(
                        conn_lookup(s, H, || Some(&state), || t0 + dt),
                        ConnLookup::Ask,
                        "{t0} {dt}"
                    );
                    assert!(conn_expired(s, t0 + dt), "{t0} {dt}");
                }
                assert_eq!(
                    conn_lookup(s, H ^ 0x0001_0000, || Some(&state), || t0),
                    ConnLookup::Ask
                );
            }
            let handed = conn_handed_over(conn_handshake_stamp(H, t0, true));
            assert_eq!(handed, conn_handshake_stamp(H, t0, false));
            assert_eq!(
                conn_lookup(handed, H, || Some(&state), || t0),
                ConnLookup::Maybe
            );
        }
    }

    /// The kinds and times never bleed into each other or into the tag.
    #[test]
    fn stamps_of_each_kind_differ() {
        let t = 12_345 * SEC;
        let all = [
            conn_stamp(H, t),
            conn_ask_stamp(H, t),
            conn_handshake_stamp(H, t, false),
            conn_handshake_stamp(H, t, true),
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a & TAG_MASK, tag(H));
            for b in &all[i + 1..] {
                assert_ne!(a & KIND_MASK, b & KIND_MASK);
            }
        }
        // The daemon may write a pass stamp over a handshake stamp (it saw the socket).
        assert!(conn_pass_may_write(all[2], all[0], t));
        assert!(conn_pass_may_write(all[3], all[0], t));
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

    /// An entry written under pass P's promise (P + 1) stays fresh for a stamp's life in
    /// passes after it; numbers wrap at 2^16.
    #[test]
    fn filter_entries_stay_fresh_while_they_can_belong_to_a_live_socket() {
        for p in [0u64, 1, 65_533, 65_534, 65_535, 65_536, 1 << 40] {
            let e = conn_filter_entry(p);
            assert_ne!(e, 0, "{p}");
            for later in 0..=CONN_FILTER_PASSES as u64 {
                assert!(conn_filter_fresh(e, p + later), "{p} +{later}");
            }
            assert!(
                !conn_filter_fresh(e, p + CONN_FILTER_PASSES as u64 + 1),
                "{p}"
            );
            // A writer that saw the next promise before the reader did (pass numbers count up
            // from 0 and never wrap).
            if p > FILTER_AHEAD {
                for earlier in 1..=FILTER_AHEAD {
                    assert!(conn_filter_fresh(e, p - earlier), "{p} -{earlier}");
                }
                assert!(!conn_filter_fresh(e, p - FILTER_AHEAD - 1), "{p}");
            }
            // Never written: no socket, whatever the pass.
            assert!(!conn_filter_fresh(0, p), "{p}");
        }
        let (w, lane) = conn_filter_slot(u64::MAX);
        assert!(w < CONN_FILTER_WORDS && lane < 4);
    }

    /// A lane read from the word is what a 16-bit store at byte 2 x lane put there.
    #[test]
    fn a_filter_lane_is_the_16_bit_store_at_its_offset() {
        let lanes: [u16; 4] = [0x1111, 0xabcd, 0x0001, 0xfffe];
        let mut bytes = [0u8; 8];
        for (i, l) in lanes.iter().enumerate() {
            bytes[2 * i..2 * i + 2].copy_from_slice(&l.to_le_bytes());
        }
        let word = u64::from_le_bytes(bytes);
        for (i, &l) in lanes.iter().enumerate() {
            assert_eq!(conn_filter_read(word, i as u32), l, "lane {i}");
        }
    }

    #[test]
    fn slots_stay_in_range_and_differ_from_the_closing_tables() {
        assert!(conn_slot(H) < CONN_SLOTS);
        assert_ne!(conn_slot(H), (H as u32) & (crate::maps::CLOSING_SLOTS - 1));
        // A CPU's record of handshakes: every slot reachable, each from the hash's low bits.
        for i in 0..u64::from(HANDSHAKE_CPU_SLOTS) {
            assert_eq!(handshake_cpu_slot(H << 10 | i), i as u32);
        }
    }
}
