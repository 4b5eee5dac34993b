//! Own cookies in XDP (docs/own-cookies.md): the SYN-ACK's ISN from `synguard_common::own_cookie`
//! instead of the kernel's generator, and the returning ACK checked here; a valid one passes
//! with the request socket's attributes in the XDP metadata, where the TC program `synguard_own`
//! (`own_tc.rs`) finds them and calls `bpf_sk_assign_tcp_reqsk`.

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_meta, programs::XdpContext};
use synguard_common::{
    maps::{Config, HOST_NO_TIMESTAMPS, kernel_cookies_possible},
    own_cookie::{self, CookieOpts, Flow},
    reason::{Event, Reason},
    reqsk::{self, CookieSecret, META_LEN, META_MAGIC, OwnAckMeta},
    tcp::{self, SynOptions},
};

use crate::{
    clock::Clocks,
    count,
    maps::{SG_COOKIE_SECRET, SG_MODE, SG_POLICY, SG_READY},
    parse::Packet,
};

/// The client-to-server 4-tuple as the cookie's hash input.
#[inline(always)]
fn flow(pkt: &Packet) -> Flow {
    Flow::from_words(
        pkt.ipv6,
        &pkt.addresses().map(u32::from_be),
        pkt.tcp_word(0),
    )
}

/// `opts` as read back from this CPU's workspace (`Workspace::opts`). Verifier workaround: the
/// option walk leaves one state per path through it (each with its own knowledge of every
/// field); a value read from map memory is one unknown state, so what follows the walk is
/// verified once rather than once per path (docs/verifier.md). Volatile: LLVM must not forward
/// the store to the load.
///
/// # Safety
/// `slot` must be this CPU's `Workspace::opts` (`own_entry::handle`), touched by nothing
/// else meanwhile.
#[inline(always)]
pub unsafe fn settle(slot: *mut SynOptions, opts: SynOptions) -> SynOptions {
    // SAFETY: the caller's.
    unsafe {
        core::ptr::write_volatile(slot, opts);
        core::ptr::read_volatile(slot)
    }
}

/// The own cookie for a SYN with options `opts`: (ISN, its MSS class). `tai_ns`: CLOCK_TAI
/// (`Clocks::tai_ns`), whose slot the cookie carries.
#[inline(always)]
pub fn syn_isn(pkt: &Packet, opts: &SynOptions, ecn: bool, tai_ns: u64) -> (u32, u8) {
    let secret = SG_COOKIE_SECRET.get();
    let o = CookieOpts {
        mss_class: own_cookie::mss_class(opts.mss, pkt.ipv6),
        wscale: opts.wscale,
        sack: opts.sack_permitted,
        ecn,
    };
    let isn = own_cookie::make(
        &secret.current,
        &flow(pkt),
        pkt.seq(),
        own_cookie::slot_of(tai_ns),
        &o,
    );
    (isn, o.mss_class)
}

/// The options of a valid cookie under the current key, or the previous one while it lasts, at
/// CLOCK_TAI's `tai_ns`.
#[inline(always)]
fn check_cookie(secret: &CookieSecret, pkt: &Packet, tai_ns: u64) -> Option<CookieOpts> {
    let f = flow(pkt);
    let client_isn = pkt.seq().wrapping_sub(1);
    let isn = pkt.ack().wrapping_sub(1);
    let slot = own_cookie::slot_of(tai_ns);
    if let Some(o) = own_cookie::check(&secret.current, &f, client_isn, isn, slot) {
        return Some(o);
    }
    if secret.previous_valid(slot) {
        return own_cookie::check(&secret.previous, &f, client_isn, isn, slot);
    }
    None
}

/// `maps::kernel_cookies_possible` from the program's mode, readiness and monitor flag.
#[inline(always)]
fn kernel_may_have_sent(cfg: &Config, now_ns: u64) -> bool {
    kernel_cookies_possible(
        cfg.mode,
        || Some(SG_MODE.get()),
        SG_READY.get().kernel_ready != 0,
        SG_POLICY.get().monitor != 0,
        now_ns,
    )
}

/// Step 4b for an ACK without a socket, in own mode: a valid cookie passes marked for the TC
/// program; anything else is dropped as an ACK flood. `hash`: the 4-tuple's
/// (`Packet::flow_hash`, which `ack::check` took for the connection table), for the table's
/// stamps.
#[inline(always)]
pub fn check_ack(
    ctx: &XdpContext,
    pkt: &Packet,
    cfg: &Config,
    clocks: &mut Clocks,
    hash: u64,
) -> Reason {
    let secret = SG_COOKIE_SECRET.get();
    let now_ns = clocks.now_ns();
    let Some(opts) = check_cookie(secret, pkt, clocks.tai_ns(now_ns)) else {
        // A cookie the kernel sent itself (its SYN queue overflowed while SYNs still went to
        // it: auto mode before a flood is detected) is the kernel's to check, while one can
        // still be valid: a sustained flood's bogus ACKs are spared the kernel's hash.
        if kernel_may_have_sent(cfg, now_ns) && crate::ack::kernel_cookie_valid(pkt) {
            count::event(Event::CookieAckAccepted);
            crate::conns::stamp_handshake(hash, now_ns, false);
            return Reason::PassCookieAck;
        }
        return Reason::DropAckBadCookie;
    };
    let ts = if cfg.cookies & HOST_NO_TIMESTAMPS != 0 {
        None
    } else {
        ack_timestamp(ctx, pkt)
    };
    let meta = OwnAckMeta {
        attrs: reqsk::req_attrs(&opts, pkt.ipv6, cfg.wscale as u8, ts),
        tcp_off: (pkt.tcp_off() - pkt.l2_len()) as u16,
        ipv6: pkt.ipv6 as u8,
        _pad: 0,
        magic: META_MAGIC,
    };
    if write_meta(ctx, &meta) {
        count::event(Event::OwnCookieAckMarked);
    } else {
        // The driver carries no XDP metadata (`bpf_xdp_adjust_meta` refused): the TC program
        // finds nothing and the kernel answers this ACK with a RST, unless the TC program that
        // checks cookies again is attached (docs/own-cookies.md).
        count::event(Event::OwnMetaUnsupported);
    }
    // Waiting for a handoff: the TC program that checks cookies again (drivers without
    // metadata, or `--own-tc check`) hands over what this stamp names; the metadata one
    // ignores the table (the segments behind this ACK pass unmarked on this CPU,
    // `conns::handshake_here`).
    crate::conns::stamp_own_handshake(hash, now_ns);
    count::event(Event::CookieAckAccepted);
    Reason::PassCookieAck
}

/// The ACK's timestamp option, if it has one where `reqsk::ack_timestamp` looks. Its bytes are
/// read straight from the frame (`parse::load`): a `bpf_xdp_load_bytes` call cost more.
#[inline(always)]
fn ack_timestamp(ctx: &XdpContext, pkt: &Packet) -> Option<(u32, u32)> {
    let olen = pkt.tcp_len().checked_sub(20)?;
    if olen < reqsk::ACK_TS_HEAD as u64 {
        return None;
    }
    let head = crate::parse::load::<{ reqsk::ACK_TS_HEAD }>(ctx, pkt.tcp_off() + 20)?;
    reqsk::ack_timestamp(&head, olen as usize)
}

/// Puts `meta` in front of the frame; false when the driver does not support metadata.
#[inline(always)]
fn write_meta(ctx: &XdpContext, meta: &OwnAckMeta) -> bool {
    // SAFETY: helper call on our own context; packet pointers are re-read below.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, -(META_LEN as i32)) } != 0 {
        return false;
    }
    // SAFETY: reading the context's pointers.
    let (meta_start, data) = unsafe { ((*ctx.ctx).data_meta as usize, (*ctx.ctx).data as usize) };
    if meta_start + META_LEN > data {
        return false;
    }
    // SAFETY: META_LEN bytes between data_meta and data, checked above.
    unsafe { core::ptr::write_unaligned(meta_start as *mut OwnAckMeta, *meta) };
    true
}

/// Whether this SYN's client negotiated ECN in a way the kernel accepts (RFC 3168: ECE and CWR
/// both on the SYN; `net.ipv4.tcp_ecn` allows it, `cookie_ecn_ok`).
#[inline(always)]
pub fn syn_ecn(pkt: &Packet, cfg: &Config) -> bool {
    cfg.ecn != 0 && pkt.flags() & (tcp::ECE | tcp::CWR) == (tcp::ECE | tcp::CWR)
}
