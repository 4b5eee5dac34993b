//! Own cookies' entry: `synguard` parses (into this CPU's workspace, `workspace.rs`) and decides
//! as always, then for a SYN to answer it hands the parsed packet over and tail-calls
//! `synguard_own_xdp` (`SG_OWN_PROG_MB`), which answers with an own cookie. An ACK without a
//! socket is checked in `synguard` itself (`ack.rs`).
//!
//! At a take-over the new `synguard_own_xdp` takes the pinned `SG_OWN_PROG_MB` slot while the
//! old `synguard` may still run for an instant. When the workspace's layout is the same, the
//! pinned map is shared and the hand-over works across builds; when it changed, the new program
//! reads its own fresh workspace, whose `kind` is zero on every CPU the new `synguard` has not
//! run on yet (a CPU finishes the old program's batch before it runs the new one), and the
//! packet passes as `ErrConfig`: fail open for that instant. A build from before multi-buffer
//! programs had its own array (`SG_OWN_PROG`, docs/veth-and-nics.md): its program keeps
//! tail-calling through that one until the link is swapped.
//!
//! Verifier workaround: both kinds of SYN answer in one program went past the 1 M-instruction
//! limit (every parse outcome verified through both). A tail-called program is verified on its
//! own, and what it reads from the workspace is one unknown state, not thousands
//! (docs/verifier.md).

use aya_ebpf::programs::XdpContext;
use synguard_common::reason::{Event, Reason};

use crate::{
    count,
    maps::{SG_CONFIG, SG_OWN_PROG_MB},
    synack,
    workspace::{self, HandOver},
};

/// `HandOver::kind` of a SYN to answer (zero, a fresh workspace's or a consumed one's, is no
/// step).
const SYN: u64 = 1;

/// Hands the SYN parsed into this CPU's workspace to `synguard_own_xdp` to answer, with the
/// clock's reading `now_ns`; returns only when the tail call failed (no program in
/// `SG_OWN_PROG_MB`): the packet passes, counted as a configuration error (fail open).
#[inline(always)]
pub fn hand_over(ctx: &XdpContext, hand: &mut HandOver, now_ns: u64) -> Reason {
    hand.kind = SYN;
    hand.now_ns = now_ns;
    // SAFETY: tail call on our own context; on success it does not return.
    unsafe { SG_OWN_PROG_MB.tail_call(ctx, 0) };
    Reason::ErrConfig
}

/// `synguard_own_xdp`'s step, and monitor mode's flag where it is known. `len`, the frame's
/// first buffer as it came, becomes the SYN's whole length once the hand-over is found (for the
/// byte counters; `parse` measured it, and the frame is resized below). `synguard` hands a SYN
/// over only to be answered, never in monitor mode (`syn` returns before), and the frame is a
/// SYN-ACK by now, which must go out as one.
#[inline(always)]
pub fn handle(ctx: &XdpContext, len: &mut u64) -> (Reason, Option<bool>) {
    let cfg = SG_CONFIG.get();
    let Some(ws) = workspace::get() else {
        return (Reason::ErrConfig, None);
    };
    if ws.hand.kind != SYN {
        return (Reason::ErrConfig, None);
    }
    // Consumed: only a hand-over made for this packet can name a step.
    ws.hand.kind = 0;
    let (pkt, now) = (&ws.pkt, ws.hand.now_ns);
    *len = pkt.frame_len();
    match synack::answer(
        ctx,
        pkt,
        &mut ws.reply,
        &mut ws.clocks,
        cfg,
        now,
        Some(&raw mut ws.opts),
    ) {
        Ok(()) => {
            count::event(Event::CookieSent);
            (Reason::TxSynAckCookie, Some(false))
        }
        Err(reason) => (reason, Some(false)),
    }
}
