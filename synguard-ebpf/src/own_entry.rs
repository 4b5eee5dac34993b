//! Own cookies' entry: `synguard` parses (into the per-CPU `SG_OWN_HANDOFF`) and decides as
//! always, then for a SYN to answer it hands the parsed packet over and tail-calls
//! `synguard_own_xdp` (`SG_OWN_PROG`), which answers with an own cookie. An ACK without a socket
//! is checked in `synguard` itself (`ack.rs`); the ACK step here serves a take-over from a build
//! that still handed ACKs over: the new `synguard_own_xdp` takes the pinned `SG_OWN_PROG` slot
//! while the old `synguard` may still run for an instant, and its ACKs are checked, not passed.
//!
//! Verifier workaround: both kinds of SYN answer in one program went past the 1 M-instruction
//! limit (every parse outcome verified through both). A tail-called program is verified on its
//! own, and what it reads from the handoff map is one unknown state, not thousands
//! (docs/verifier.md).

use aya_ebpf::programs::XdpContext;
use synguard_common::{
    reason::{Event, Reason},
    tcp::SynOptions,
};

use crate::{
    count,
    maps::{SG_CONFIG, SG_OWN_HANDOFF, SG_OWN_PROG},
    own,
    parse::Packet,
    synack,
};

pub const SYN: u64 = 1;
pub const ACK: u64 = 2;

/// The parsed packet and which step `synguard_own_xdp` is to take; `opts` is where the SYN's
/// options pass through memory (`own::settle`).
#[repr(C, align(8))]
pub struct Handoff {
    pkt: Packet,
    kind: u64,
    pub opts: SynOptions,
}

/// Where `synguard` parses each packet (`parse::parse`): in map memory, for the rest of the path
/// and for `synguard_own_xdp`.
#[inline(always)]
pub fn packet_slot() -> Option<&'static mut Packet> {
    let h = crate::maps::aligned(SG_OWN_HANDOFF.get_ptr_mut(0)?);
    // SAFETY: this CPU's slot; XDP does not nest on a CPU, and only `synguard` writes it, once
    // per packet, before anything reads it.
    unsafe { Some(&mut (*h).pkt) }
}

/// Hands the parsed packet (`packet_slot`) to `synguard_own_xdp`; returns only when the tail call
/// failed (no program in `SG_OWN_PROG`): the packet passes, counted as a configuration error
/// (fail open).
#[inline(always)]
pub fn hand_over(ctx: &XdpContext, kind: u64) -> Reason {
    let Some(h) = SG_OWN_HANDOFF.get_ptr_mut(0) else {
        return Reason::ErrConfig;
    };
    // SAFETY: this CPU's slot; XDP does not nest on a CPU and the tail-called program runs on
    // the same CPU before anything else can.
    unsafe {
        (*h).kind = kind;
        SG_OWN_PROG.tail_call(ctx, 0);
    }
    Reason::ErrConfig
}

/// `synguard_own_xdp`'s step, and monitor mode's flag where it is known: `synguard` hands a
/// SYN over only to be answered, never in monitor mode (`syn` returns before), and the frame is
/// a SYN-ACK by now, which must go out as one.
#[inline(always)]
pub fn handle(ctx: &XdpContext) -> (Reason, Option<bool>) {
    let (Some(h), Some(cfg)) = (SG_OWN_HANDOFF.get_ptr_mut(0), SG_CONFIG.get(0)) else {
        return (Reason::ErrConfig, None);
    };
    let h = crate::maps::aligned(h);
    // SAFETY: this CPU's slot (see `hand_over`). References to `pkt` and `kind` only: `opts`
    // is written through its own pointer while `pkt` is borrowed (`own::settle`).
    let (pkt, kind, opts) = unsafe { (&(*h).pkt, (*h).kind, &raw mut (*h).opts) };
    let now = crate::clock::now_ns();
    match kind {
        SYN => match synack::answer(ctx, pkt, cfg, now, Some(opts)) {
            Ok(()) => {
                count::event(Event::CookieSent);
                (Reason::TxSynAckCookie, Some(false))
            }
            Err(reason) => (reason, Some(false)),
        },
        ACK => (own::check_ack(ctx, pkt, cfg, now), None),
        _ => (Reason::ErrConfig, None),
    }
}
