//! The recently-closed table (`synguard_common::maps::closing_entry`): 4-tuples whose SYNs
//! must reach the kernel rather than be answered with a cookie, because the kernel holds (or
//! may hold) state for them that a cookie handshake would collide with:
//! - a TIME_WAIT socket, after the client's FIN: `tcp_timewait_state_process` recycles it only
//!   for a SYN, and would swallow a cookie handshake's ACK;
//! - a request socket, after the kernel answered a SYN itself (auto mode with cookies off, or a
//!   listener refresh): a retransmission of that SYN (its SYN-ACK was lost or late) answered
//!   with a cookie would give the client a second ISN, and its ACK of that one is not the
//!   request socket's (`ack::check`, `DropAckBadRequest`) for as long as the request socket
//!   lives (up to a minute of SYN-ACK retransmissions): the client, established on its side,
//!   stalls. The kernel itself answers a retransmitted SYN with its request socket's SYN-ACK.
//!
//! Records go in at a FIN of a live connection (`ack::check`) and at a request socket's
//! creation (the sock_ops program, `conns::on_sock_ops`); a SYN checks them ([`recent`]).

use synguard_common::{
    maps::{
        CLOSING_WAYS, closed_within_time_wait, closing_entry, closing_filter_hit,
        closing_filter_slot, closing_gen, closing_way,
    },
    reason::Event,
};

use crate::{
    count,
    maps::{SG_CLOSING, SG_CLOSING_FILTER},
};

/// Records that the 4-tuple hashed `hash` (`synguard_common::maps::flow_hash`) has kernel state
/// a SYN must reach, at `now` (the coarse clock), for TIME_WAIT and a margin
/// (`CLOSING_RECORD_NS`).
#[inline(always)]
pub fn remember(hash: u64, now: u64) {
    let (bucket, entry) = closing_entry(hash, now);
    let (word, byte) = closing_filter_slot(hash);
    if let Some(w) = SG_CLOSING_FILTER.get_ptr_mut(word) {
        // SAFETY: one byte inside the map value (byte < 8); a racing CPU files the same or a
        // later period.
        unsafe { *(w as *mut u8).add((byte & 7) as usize) = closing_gen(now) };
    }
    let way = |i: u32| SG_CLOSING.get(bucket + i).copied().unwrap_or(0);
    let (i, replaces) = closing_way(way, hash, now);
    if replaces {
        count::event(Event::CloseRecordReplaced);
    }
    if let Some(p) = SG_CLOSING.get_ptr_mut(bucket + i) {
        // SAFETY: array value pointer; a racing writer at worst replaces this record.
        unsafe { *p = entry };
    }
}

/// Whether the 4-tuple hashed `hash` has a record that still counts (`CLOSING_RECORD_NS`).
#[inline(always)]
pub fn recent(hash: u64, now: u64) -> bool {
    // The filter first: a flood's random 4-tuples find no record there and never touch the
    // 8 MiB table, whose every read was a cache miss (`closing_filter_slot`).
    let (word, byte) = closing_filter_slot(hash);
    let filed = match SG_CLOSING_FILTER.get(word) {
        Some(w) => (*w >> ((byte & 7) * 8)) as u8,
        None => 0,
    };
    if !closing_filter_hit(filed, now) {
        return false;
    }
    let (bucket, _) = closing_entry(hash, now);
    (0..CLOSING_WAYS).any(|i| {
        SG_CLOSING
            .get(bucket + i)
            .is_some_and(|e| closed_within_time_wait(*e, hash, now))
    })
}
