//! Step 4b, act on an ACK to a protected port: established traffic passes; a handshake's last
//! ACK passes if its cookie is valid, or, for a handshake the kernel answered itself (a request
//! socket), if it acknowledges the kernel's ISN; anything else is an ACK flood and is dropped.
//!
//! A cookie check alone would drop every established flow's ACKs (their ack numbers are no
//! cookies), so whether a socket exists is settled first: by the connection table
//! (`conns.rs`, docs/connection-table.md) where it can vouch for a connection or for the
//! absence of one, otherwise by the kernel's socket lookup (`bpf_skc_lookup_tcp`).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{
        BPF_F_CURRENT_NETNS, BPF_TCP_LISTEN, BPF_TCP_NEW_SYN_RECV, bpf_sock_tuple,
        bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1, bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2,
        iphdr, ipv6hdr, tcphdr,
    },
    helpers::generated::{
        bpf_probe_read_kernel, bpf_sk_release, bpf_skc_lookup_tcp, bpf_skc_to_tcp_request_sock,
        bpf_tcp_raw_check_syncookie_ipv4, bpf_tcp_raw_check_syncookie_ipv6,
    },
    programs::XdpContext,
};
use synguard_common::{
    conns::ConnLookup,
    maps::{Config, cookies_own},
    reason::{Event, Reason},
    tcp::FIN,
};

use crate::{clock::Clocks, count, parse::Packet};

/// What the socket lookup found for a segment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    /// No socket, or only a listener.
    Nothing,
    /// An established or TIME_WAIT socket (or a request socket whose ISN cannot be read).
    Socket,
    /// A request socket: one of the kernel's own half-open handshakes (auto mode before a flood
    /// is detected, or a listener refresh SYN). `true`: the ACK acknowledges its ISN.
    Request(bool),
}

#[inline(always)]
pub fn check(ctx: &XdpContext, pkt: &Packet, cfg: &Config, clocks: &mut Clocks) -> Reason {
    // The connection table first: it answers for almost every ACK without the kernel's
    // socket lookup (~45 ns when a socket is found, ~75 ns when not, docs/measuring.md). Its
    // "maybe" passes to the kernel; a request socket's, a closed connection's or another
    // 4-tuple's stamp, and an empty slot while the table is not trusted, go to the lookup.
    // One hash of the 4-tuple for the table's read, a FIN's record and a handshake's stamp.
    let hash = pkt.flow_hash();
    let found = match crate::conns::lookup_hash(hash, clocks) {
        ConnLookup::Maybe => Found::Socket,
        // Behind an own cookie's final ACK: passes where the ACK passed (`handshake_here`).
        ConnLookup::Handoff if crate::conns::handshake_here(hash) => Found::Socket,
        ConnLookup::Handoff => find_socket(ctx, pkt, cfg.reqsk_isn_off),
        ConnLookup::None => {
            count::event(Event::AckLookupSkipped);
            Found::Nothing
        }
        ConnLookup::Ask | ConnLookup::Unknown => find_socket(ctx, pkt, cfg.reqsk_isn_off),
    };
    match found {
        Found::Socket => {
            if pkt.flags() & FIN != 0 {
                // A real connection's client is closing: the server may keep a TIME_WAIT socket
                // for this 4-tuple for up to 60 s. Only FINs of connections that have a socket
                // get here, so spoofed FINs cannot fill the table.
                crate::closing::remember(hash, clocks.now_ns());
            }
            return Reason::PassEstablished;
        }
        Found::Request(true) => return Reason::PassEstablished,
        // `tcp_check_req` answers an ACK whose ack number is not the request socket's ISN + 1
        // with an RST (an ACK flood after a SYN flood from the same source hits them).
        Found::Request(false) => return Reason::DropAckBadRequest,
        Found::Nothing => {}
    }
    if cookies_own(cfg.cookies) {
        // Here rather than behind the tail call that own SYNs take (`own_entry.rs`): the check
        // fits in this program's verification (about 3 k more instructions), and the bench's
        // own bogus ACK fell from 74-75 to 67-70 ns, the valid one from 68 to 60.
        return crate::own::check_ack(ctx, pkt, cfg, clocks, hash);
    }
    if kernel_cookie_valid(pkt) {
        count::event(Event::CookieAckAccepted);
        crate::conns::stamp_handshake(hash, clocks.now_ns(), false);
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

/// The socket the segment belongs to, other than a listener: established, time-wait, or a
/// request socket of a handshake the kernel itself answered (they all live in the established
/// hash, which `bpf_skc_lookup_tcp` searches before the listeners).
#[inline(always)]
fn find_socket(ctx: &XdpContext, pkt: &Packet, isn_off: u32) -> Found {
    let ack = pkt.ack();
    // The tuple's ports are in network order, as in the frame.
    let (sport, dport) = (pkt.sport().to_be(), pkt.dport().to_be());
    // Each family passes its own member of `bpf_sock_tuple` and its size: the helper reads only
    // that many bytes. Verifier workaround: building the union and copying it made LLVM store
    // the undefined bytes of the other member from an uninitialised register ("R3 !read_ok").
    let a = pkt.addresses();
    if pkt.ipv6 {
        let mut t = bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2 {
            saddr: [a[0], a[1], a[2], a[3]],
            daddr: [a[4], a[5], a[6], a[7]],
            sport,
            dport,
        };
        let size = core::mem::size_of_val(&t) as u32;
        lookup(
            ctx,
            &mut t as *mut _ as *mut bpf_sock_tuple,
            size,
            ack,
            isn_off,
        )
    } else {
        let mut t = bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1 {
            saddr: a[0],
            daddr: a[1],
            sport,
            dport,
        };
        let size = core::mem::size_of_val(&t) as u32;
        lookup(
            ctx,
            &mut t as *mut _ as *mut bpf_sock_tuple,
            size,
            ack,
            isn_off,
        )
    }
}

/// `bpf_skc_lookup_tcp` in the device's netns, and for a request socket whether `ack`
/// acknowledges its ISN.
#[inline(always)]
fn lookup(
    ctx: &XdpContext,
    tuple: *mut bpf_sock_tuple,
    size: u32,
    ack: u32,
    isn_off: u32,
) -> Found {
    // SAFETY: helper call with a stack tuple of `size` initialised bytes; the returned socket
    // is released before returning, and nothing read from it is used after that.
    unsafe {
        let sk = bpf_skc_lookup_tcp(
            ctx.ctx as *mut c_void,
            tuple,
            size,
            BPF_F_CURRENT_NETNS as u64,
            0,
        );
        if sk.is_null() {
            return Found::Nothing;
        }
        let state = (*sk).state;
        let found = if state == BPF_TCP_LISTEN {
            Found::Nothing
        } else if state == BPF_TCP_NEW_SYN_RECV && isn_off != 0 {
            match request_isn(sk as *mut c_void, isn_off) {
                Some(isn) => Found::Request(ack == isn.wrapping_add(1)),
                None => Found::Socket,
            }
        } else {
            Found::Socket
        };
        bpf_sk_release(sk as *mut c_void);
        found
    }
}

/// The ISN the kernel sent in its SYN-ACK for this request socket (`tcp_request_sock.snt_isn`,
/// at the offset the loader read from the kernel's BTF). Verifier workaround: the offset is not
/// a constant, so the field is read with `bpf_probe_read_kernel` rather than a direct load
/// through the BTF pointer (which needs a constant offset). `None`: fail open.
///
/// # Safety
/// `sk` must be a socket from `bpf_skc_lookup_tcp`, not yet released.
#[inline(always)]
unsafe fn request_isn(sk: *mut c_void, isn_off: u32) -> Option<u32> {
    // SAFETY: helper calls; the caller holds the socket reference.
    unsafe {
        let req = bpf_skc_to_tcp_request_sock(sk);
        if req.is_null() {
            return None;
        }
        let off = (isn_off & 0xfff) as usize;
        let mut isn = 0u32;
        let r = bpf_probe_read_kernel(
            &mut isn as *mut u32 as *mut c_void,
            4,
            (req as *const u8).add(off) as *const c_void,
        );
        (r == 0).then_some(isn)
    }
}
