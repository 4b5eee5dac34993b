//! Step 4b, act on an ACK to a protected port: established traffic passes; a handshake's last
//! ACK passes if its cookie is valid; anything else is an ACK flood and is dropped.
//!
//! A cookie check alone would drop every established flow's ACKs (their ack numbers are no
//! cookies), so the socket lookup comes first (platform notes: ~150 ns lookup, ~17 ns check).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, BPF_TCP_LISTEN, bpf_sock_tuple, iphdr, ipv6hdr, tcphdr},
    helpers::generated::{
        bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_raw_check_syncookie_ipv4,
        bpf_tcp_raw_check_syncookie_ipv6,
    },
    programs::XdpContext,
};
use synguard_common::reason::{Event, Reason};

use crate::{count, parse::Packet};

#[inline(always)]
pub fn check(ctx: &XdpContext, pkt: &Packet) -> Reason {
    if has_socket(ctx, pkt) {
        return Reason::PassEstablished;
    }
    let ip = pkt.ip.as_ptr() as *mut c_void;
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
    if r == 0 {
        count::event(Event::CookieAckAccepted);
        Reason::PassCookieAck
    } else {
        Reason::DropAckBadCookie
    }
}

/// Whether the segment belongs to a socket other than a listener: established, time-wait, or a
/// request socket of a handshake the kernel itself answered (they all live in the established
/// hash, which `bpf_skc_lookup_tcp` searches before the listeners).
#[inline(always)]
fn has_socket(ctx: &XdpContext, pkt: &Packet) -> bool {
    // SAFETY: an all-zero tuple is a valid value of this plain C union.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let size = if pkt.ipv6 {
        let t = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
        for i in 0..4 {
            let s = 8 + i * 4;
            let d = 24 + i * 4;
            t.saddr[i] =
                u32::from_ne_bytes([pkt.ip[s], pkt.ip[s + 1], pkt.ip[s + 2], pkt.ip[s + 3]]);
            t.daddr[i] =
                u32::from_ne_bytes([pkt.ip[d], pkt.ip[d + 1], pkt.ip[d + 2], pkt.ip[d + 3]]);
        }
        t.sport = u16::from_ne_bytes([pkt.tcp[0], pkt.tcp[1]]);
        t.dport = u16::from_ne_bytes([pkt.tcp[2], pkt.tcp[3]]);
        core::mem::size_of_val(t)
    } else {
        let t = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
        t.saddr = u32::from_ne_bytes([pkt.ip[12], pkt.ip[13], pkt.ip[14], pkt.ip[15]]);
        t.daddr = u32::from_ne_bytes([pkt.ip[16], pkt.ip[17], pkt.ip[18], pkt.ip[19]]);
        t.sport = u16::from_ne_bytes([pkt.tcp[0], pkt.tcp[1]]);
        t.dport = u16::from_ne_bytes([pkt.tcp[2], pkt.tcp[3]]);
        core::mem::size_of_val(t)
    };
    // SAFETY: helper call with a stack tuple of `size` bytes; the returned socket is released.
    unsafe {
        let sk = bpf_skc_lookup_tcp(
            ctx.ctx as *mut c_void,
            &mut tuple,
            size as u32,
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
