//! synguard's XDP program. A packet's way through it reads top to bottom in [`handle`]:
//! parse -> classify -> decide -> act -> count. Each step has its own module.
//!
//! The program fails open on its own errors (the packet passes, counted under an `Err*`
//! reason), never on policy.
#![no_std]
#![no_main]

mod ack;
mod count;
mod decide;
mod maps;
mod parse;
mod synack;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_ns, macros::xdp, programs::XdpContext,
};
use synguard_common::{
    maps::Config,
    reason::{Event, Reason, Verdict},
    tcp::{FlagClass, classify},
};

use crate::{decide::SynAction, maps::SG_CONFIG, parse::Packet};

#[xdp]
pub fn synguard(ctx: XdpContext) -> u32 {
    let len = parse::frame_len(&ctx);
    let reason = handle(&ctx);
    count::verdict(reason, len);
    match reason.verdict() {
        Verdict::Pass => xdp_action::XDP_PASS,
        Verdict::Tx => xdp_action::XDP_TX,
        Verdict::Drop => xdp_action::XDP_DROP,
    }
}

#[inline(always)]
fn handle(ctx: &XdpContext) -> Reason {
    // Parse.
    let pkt = match parse::parse(ctx) {
        Ok(pkt) => pkt,
        Err(reason) => return reason,
    };
    // Classify.
    if !decide::port_protected(pkt.dport()) {
        return Reason::PassUnprotectedPort;
    }
    let Some(cfg) = SG_CONFIG.get(0) else {
        return Reason::ErrConfig;
    };
    // Decide and act.
    match classify(pkt.flags()) {
        FlagClass::Syn => syn(ctx, &pkt, cfg),
        FlagClass::Ack => ack::check(ctx, &pkt),
        FlagClass::SynAck => Reason::PassSynAck,
        FlagClass::Rst => Reason::PassRst,
        FlagClass::SynFin => Reason::DropSynFin,
        FlagClass::SynRst => Reason::DropSynRst,
        FlagClass::NoFlags => Reason::DropNoFlags,
        FlagClass::NoAck => Reason::DropNoAck,
    }
}

#[inline(always)]
fn syn(ctx: &XdpContext, pkt: &Packet, cfg: &Config) -> Reason {
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    match decide::syn_action(ctx, cfg, pkt.dport(), pkt.ipv6, now) {
        SynAction::ToKernel => Reason::PassSynToKernel,
        SynAction::Refresh => Reason::PassSynListenerRefresh,
        SynAction::Cookie => match synack::answer(ctx, pkt, cfg, now) {
            Ok(()) => {
                count::event(Event::CookieSent);
                Reason::TxSynAckCookie
            }
            Err(reason) => reason,
        },
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
