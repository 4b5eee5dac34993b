//! synguard's XDP program. A packet's way through it reads top to bottom in [`handle`]:
//! parse -> classify -> decide -> act -> count. Each step has its own module.
//!
//! The program fails open on its own errors (the packet passes, counted under an `Err*`
//! reason), never on policy.
#![no_std]
#![no_main]
// BPF inline assembly: unaligned packet loads in one instruction (`parse::copy_words`).
#![feature(asm_experimental_arch)]

mod ack;
mod classify;
mod clock;
mod closing;
mod conns;
mod count;
mod decide;
mod frame_write;
mod maps;
mod own;
mod own_entry;
mod own_tc;
mod own_tc_check;
mod parse;
mod policy;
mod synack;
mod verify;
mod workspace;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, sock_ops, xdp},
    programs::{SockOpsContext, TcContext, XdpContext},
};
use synguard_common::{
    maps::{Config, cookies_own},
    policy::Policy,
    reason::{Event, Reason, Verdict},
    tcp::{FlagClass, classify},
};

use crate::{
    clock::Clocks,
    decide::SynAction,
    maps::{SG_CONFIG, SG_POLICY},
    parse::Packet,
    synack::Scratch,
    workspace::{HandOver, Workspace},
};

// Inlined into the entry point the macro generates: a BPF-to-BPF call costs a call and a return,
// and on kernels with return-thunk mitigations (SRSO "Safe RET") a return is not cheap.
//
// `frags`: loaded with `BPF_F_XDP_HAS_FRAGS` (Linux 5.18), so that the program attaches to an
// interface whose MTU is larger than a page's buffer (jumbo frames) and sees such frames as
// multi-buffer ones (`parse.rs`). Without it a driver refuses native XDP at such an MTU. Every
// program in one program array must agree on it (`bpf_prog_map_compatible`), so
// `synguard_own_xdp`, and the lab's programs that share an array with these, carry it too.
#[xdp(frags)]
#[inline(always)]
pub fn synguard(ctx: XdpContext) -> u32 {
    let mut len = parse::frame_len(&ctx);
    let mut monitor = None;
    let reason = handle(&ctx, &mut len, &mut monitor);
    finish(reason, len, monitor)
}

/// Own cookies' SYN step, tail-called from `synguard` (`own_entry.rs`).
#[xdp(frags)]
#[inline(always)]
pub fn synguard_own_xdp(ctx: XdpContext) -> u32 {
    let mut len = parse::frame_len(&ctx);
    let (reason, monitor) = own_entry::handle(&ctx, &mut len);
    finish(reason, len, monitor)
}

/// Step 5, count, and the XDP action. `monitor`: monitor mode's flag as the packet's way
/// decided by it (`synguard_own_xdp`: never, the frame is a SYN-ACK by then); None where
/// nothing read it yet (parsing's verdicts), and the policy's is read here.
#[inline(always)]
fn finish(mut reason: Reason, len: u64, monitor: Option<bool>) -> u32 {
    // Monitor mode: every decision was made (and nothing rewritten, see `syn`), but anything
    // other than a pass is only counted as what would have happened.
    if reason.verdict() != Verdict::Pass && monitoring(monitor) {
        count::would(reason, len);
        reason = Reason::PassMonitor;
    }
    count::verdict(reason, len);
    match reason.verdict() {
        Verdict::Pass => xdp_action::XDP_PASS,
        Verdict::Tx => xdp_action::XDP_TX,
        Verdict::Drop => xdp_action::XDP_DROP,
    }
}

/// Steps 1-4 for a frame whose first buffer is `len` bytes long (`parse` makes it the whole
/// frame's length when it learns that). `monitor` gets monitor mode's flag as the decision
/// read it, for step 5.
#[inline(always)]
fn handle(ctx: &XdpContext, len: &mut u64, monitor: &mut Option<bool>) -> Reason {
    // Parse, and classify by port first: traffic to other ports pays nothing more (not even
    // the workspace's lookup or the headers' copy).
    let at = match parse::locate(ctx, len) {
        Ok(at) => at,
        Err(reason) => return reason,
    };
    if !decide::port_protected(at.dport) {
        return Reason::PassUnprotectedPort;
    }
    let Some(ws) = workspace::get() else {
        return Reason::ErrConfig;
    };
    let Workspace {
        pkt,
        hand,
        reply,
        clocks,
        ..
    } = ws;
    parse::copy(&at, *len, pkt);
    let pkt: &Packet = pkt;
    // Classify the rest.
    let (cfg, pol) = (SG_CONFIG.get(), SG_POLICY.get());
    // Read once, for the decision and the verdict alike: a SYN decided in monitor mode is left
    // as it came and must pass, not go out by XDP_TX because the flag changed meanwhile (the
    // loader writes it while packets run); one answered outside it is a SYN-ACK by then and
    // must go out. Volatile: LLVM may read a field behind a shared reference again.
    // SAFETY: a field of the global's value.
    let mon = unsafe { core::ptr::read_volatile(&pol.monitor) } != 0;
    *monitor = Some(mon);
    if let Some(reason) = classify::not_ours(ctx, pkt, cfg) {
        return reason;
    }
    // Decide and act, by flags. The lists come first for every packet; a SYN meets them in
    // `syn`, right after it is counted for flood detection.
    let class = classify(pkt.flags());
    if class != FlagClass::Syn
        && let Some(reason) = policy::lists(pkt, pol)
    {
        return reason;
    }
    match class {
        FlagClass::Syn => syn(
            ctx,
            Syn {
                pkt,
                hand,
                reply,
                clocks,
            },
            cfg,
            pol,
            mon,
        ),
        FlagClass::Ack => ack::check(ctx, pkt, cfg, clocks),
        FlagClass::SynAck => Reason::PassSynAck,
        FlagClass::Rst => Reason::PassRst,
        FlagClass::SynFin => Reason::DropSynFin,
        FlagClass::SynRst => Reason::DropSynRst,
        FlagClass::NoFlags => Reason::DropNoFlags,
        FlagClass::NoAck => Reason::DropNoAck,
    }
}

/// A SYN in this CPU's workspace: the parsed packet and where its answer is prepared.
struct Syn<'a> {
    pkt: &'a Packet,
    hand: &'a mut HandOver,
    reply: &'a mut Scratch,
    clocks: &'a mut Clocks,
}

#[inline(always)]
fn monitoring(known: Option<bool>) -> bool {
    match known {
        Some(m) => m,
        None => SG_POLICY.get().monitor != 0,
    }
}

#[inline(always)]
fn syn(ctx: &XdpContext, syn: Syn, cfg: &Config, pol: &Policy, monitor: bool) -> Reason {
    let pkt = syn.pkt;
    let now = syn.clocks.now_ns();
    let wanted = decide::observe_syn(ctx, cfg, pkt.dport(), now);
    if let Some(reason) = policy::lists(pkt, pol) {
        return reason;
    }
    // Before the limit: SYNs the host drops anyway take no place in its table.
    if let Some(reason) = classify::reverse_path(pkt, cfg) {
        return reason;
    }
    if let Some(reason) = policy::source_limit(pkt, pol, now) {
        return reason;
    }
    // Nothing listens, on the port or at this address: the host's answer is a RST
    // (`tcp_v4_send_reset`), not a SYN-ACK. Before `syn_action`, so that such a SYN does not
    // take the listener refresh of the second: the listener that starts next would miss it and
    // refuse the kernel's cookies meanwhile.
    if !decide::listening(pkt, cfg) {
        return Reason::PassSynNoListener;
    }
    match decide::syn_action(cfg, wanted, pkt.dport(), pkt.ipv6, now, monitor) {
        SynAction::ToKernel => Reason::PassSynToKernel,
        // Own cookies need no "recently overflowed" listener: no refresh SYN for the kernel.
        SynAction::Refresh if !cookies_own(cfg.cookies) => Reason::PassSynListenerRefresh,
        SynAction::Refresh | SynAction::Cookie => {
            let hash = pkt.flow_hash();
            if closing::recent(hash, now) {
                return Reason::PassSynRecentClose;
            }
            // A live connection's 4-tuple: the host answers with a challenge ACK
            // (`tcp_validate_incoming`), which a cookie SYN-ACK must not pre-empt.
            if conns::live(hash, now) {
                return Reason::PassSynLiveConn;
            }
            if let Err(reason) = verify::ip_header(ctx, pkt) {
                return reason;
            }
            if let Some(reason) = policy::reflection_cap(pkt, pol, now) {
                return reason;
            }
            if monitor {
                // Would answer; the frame stays as it is and passes (see `synguard`). The
                // answer's own check that drops a SYN, its TCP checksum, is made here too, so
                // that a corrupt SYN counts as what would happen to it.
                return match synack::check_only(ctx, pkt, syn.reply) {
                    Ok(()) => Reason::TxSynAckCookie,
                    Err(reason) => reason,
                };
            }
            answer(ctx, syn, cfg, now)
        }
    }
}

#[inline(always)]
fn answer(ctx: &XdpContext, syn: Syn, cfg: &Config, now: u64) -> Reason {
    if cookies_own(cfg.cookies) {
        return own_entry::hand_over(ctx, syn.hand, now);
    }
    match synack::answer(ctx, syn.pkt, syn.reply, syn.clocks, cfg, now, None) {
        Ok(()) => {
            count::event(Event::CookieSent);
            Reason::TxSynAckCookie
        }
        Err(reason) => reason,
    }
}

/// TC ingress: hands the kernel the handshakes whose own cookie the XDP program validated
/// (`own_tc.rs`). Attached only in own-cookie mode.
#[classifier]
#[inline(always)]
pub fn synguard_own(ctx: TcContext) -> i32 {
    own_tc::handle(&ctx)
}

/// TC ingress for drivers without XDP metadata: checks the cookie again (`own_tc_check.rs`).
/// Attached in place of `synguard_own` only when the driver turned out to need it.
#[classifier]
#[inline(always)]
pub fn synguard_own_check(ctx: TcContext) -> i32 {
    own_tc_check::handle(&ctx)
}

/// sock_ops on the root cgroup: stamps the connection table (`conns.rs`) when connections to
/// protected ports are established and when the kernel answers a SYN itself.
#[sock_ops]
#[inline(always)]
pub fn synguard_conns(ctx: SockOpsContext) -> u32 {
    conns::on_sock_ops(&ctx);
    1
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
