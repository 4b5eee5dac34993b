//! Step 4b, act on an ACK to a protected port: established traffic passes; a handshake's last
//! ACK passes if its cookie is valid; anything else is an ACK flood and is dropped.
//!
//! A cookie check alone would drop every established flow's ACKs (their ack numbers are no
//! cookies), so the socket lookup comes first (docs/kernel-cookies.md: ~150 ns lookup, ~17 ns
//! check).

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_ktime_get_ns;
use aya_ebpf::{
    bindings::{
        BPF_F_CURRENT_NETNS, BPF_TCP_LISTEN, bpf_sock_tuple,
        bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1, bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2,
        iphdr, ipv6hdr, tcphdr,
    },
    helpers::generated::{
        bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_raw_check_syncookie_ipv4,
        bpf_tcp_raw_check_syncookie_ipv6,
    },
    programs::XdpContext,
};
use synguard_common::{
    maps::{Config, closed_within_time_wait, closing_entry, cookies_own},
    reason::{Event, Reason},
    tcp::FIN,
};

use crate::{count, maps::SG_CLOSING, parse::Packet};

#[inline(always)]
pub fn check(ctx: &XdpContext, pkt: &Packet, cfg: &Config) -> Reason {
    if has_socket(ctx, pkt) {
        if pkt.flags() & FIN != 0 {
            remember_close(pkt);
        }
        return Reason::PassEstablished;
    }
    if cookies_own(cfg.cookies) {
        return crate::own_entry::hand_over(ctx, pkt, crate::own_entry::ACK);
    }
    if kernel_cookie_valid(pkt) {
        count::event(Event::CookieAckAccepted);
        Reason::PassCookieAck
    } else {
        Reason::DropAckBadCookie
    }
}

/// Whether the ACK carries a cookie the kernel's own checker accepts
/// (`bpf_tcp_raw_check_syncookie_ipv4/6`).
#[inline(always)]
pub fn kernel_cookie_valid(pkt: &Packet) -> bool {
    let ip = &pkt.ip as *const _ as *mut c_void;
    let th = pkt.tcp.as_ptr() as *mut tcphdr;
    // SAFETY: helper calls reading the stack copies of the IP (20 or 40 bytes) and TCP (20
    // bytes) headers.
    let r = unsafe {
        if pkt.ipv6 {
            bpf_tcp_raw_check_syncookie_ipv6(ip as *mut ipv6hdr, th)
        } else {
            bpf_tcp_raw_check_syncookie_ipv4(ip as *mut iphdr, th)
        }
    };
    r == 0
}

/// A real connection's client is closing: the server may keep a TIME_WAIT socket for this
/// 4-tuple for up to 60 s, and a new handshake on the same 4-tuple must then reach the kernel as
/// a SYN (`tcp_timewait_state_process` recycles the TIME_WAIT socket only for a SYN); see
/// `closed_recently`. Only FINs of connections that have a socket get here, so spoofed FINs
/// cannot fill the map.
#[inline(always)]
fn remember_close(pkt: &Packet) {
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let (slot, entry) = closing_entry(pkt.flow_hash(), now);
    if let Some(p) = SG_CLOSING.get_ptr_mut(slot) {
        // SAFETY: array value pointer; a racing writer at worst replaces this record.
        unsafe { *p = entry };
    }
}

/// Whether the client of this SYN's 4-tuple sent a FIN within the TIME_WAIT period.
#[inline(always)]
pub fn closed_recently(pkt: &Packet, now: u64) -> bool {
    let hash = pkt.flow_hash();
    let (slot, _) = closing_entry(hash, now);
    match SG_CLOSING.get(slot) {
        Some(entry) => closed_within_time_wait(*entry, hash, now),
        None => false,
    }
}

/// Whether the segment belongs to a socket other than a listener: established, time-wait, or a
/// request socket of a handshake the kernel itself answered (they all live in the established
/// hash, which `bpf_skc_lookup_tcp` searches before the listeners).
#[inline(always)]
fn has_socket(ctx: &XdpContext, pkt: &Packet) -> bool {
    let (sport, dport) = (
        u16::from_ne_bytes([pkt.tcp[0], pkt.tcp[1]]),
        u16::from_ne_bytes([pkt.tcp[2], pkt.tcp[3]]),
    );
    // Each family passes its own member of `bpf_sock_tuple` and its size: the helper reads only
    // that many bytes. Verifier workaround: building the union and copying it made LLVM store
    // the undefined bytes of the other member from an uninitialised register ("R3 !read_ok").
    if pkt.ipv6 {
        let ip = pkt.ip6();
        let word = |at: usize| u32::from_ne_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
        let mut t = bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2 {
            saddr: [word(8), word(12), word(16), word(20)],
            daddr: [word(24), word(28), word(32), word(36)],
            sport,
            dport,
        };
        let size = core::mem::size_of_val(&t) as u32;
        lookup(ctx, &mut t as *mut _ as *mut bpf_sock_tuple, size)
    } else {
        let ip = pkt.ip4();
        let mut t = bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1 {
            saddr: u32::from_ne_bytes([ip[12], ip[13], ip[14], ip[15]]),
            daddr: u32::from_ne_bytes([ip[16], ip[17], ip[18], ip[19]]),
            sport,
            dport,
        };
        let size = core::mem::size_of_val(&t) as u32;
        lookup(ctx, &mut t as *mut _ as *mut bpf_sock_tuple, size)
    }
}

/// `bpf_skc_lookup_tcp` in the device's netns: true for a socket that is not a listener.
#[inline(always)]
fn lookup(ctx: &XdpContext, tuple: *mut bpf_sock_tuple, size: u32) -> bool {
    // SAFETY: helper call with a stack tuple of `size` initialised bytes; the returned socket
    // is released before returning.
    unsafe {
        let sk = bpf_skc_lookup_tcp(
            ctx.ctx as *mut c_void,
            tuple,
            size,
            BPF_F_CURRENT_NETNS as u64,
            0,
        );
        if sk.is_null() {
            return false;
        }
        let state = (*sk).state;
        bpf_sk_release(sk as *mut c_void);
        state != BPF_TCP_LISTEN
    }
}
