//! TC ingress for drivers that carry no XDP metadata (`synguard_own_check`): the valid cookie
//! ACK arrives unmarked, so this program checks the cookie again before handing the handshake
//! to the kernel (`own_tc::assign`). Every other packet to a protected port pays the parse and,
//! for a pure ACK of a connection the connection table does not vouch for, the hash, which is
//! why the loader attaches this program only once the XDP program has found the driver without
//! metadata (docs/own-cookies.md).
//!
//! Handles IPv4 and IPv6 with up to four extension headers, untagged or behind the VLAN tag the
//! kernel leaves in the frame (`own_tc::l3`).

use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use synguard_common::{
    conns::ConnLookup,
    maps::{HOST_NO_TIMESTAMPS, cookies_own, flow_hash_of},
    own_cookie::{self, Flow},
    reqsk::{self, META_MAGIC, OwnAckMeta},
    tcp::{ACK, RST, SYN},
};

use crate::{
    decide,
    maps::{SG_CONFIG, SG_COOKIE_SECRET},
    own_tc::{self, load},
    parse::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, is_v6_ext},
};

#[inline(always)]
pub fn handle(ctx: &TcContext) -> i32 {
    if let Some((m, hash, table)) = check(ctx) {
        own_tc::assign(ctx, m);
        if table == ConnLookup::Handoff {
            // The segments behind this ACK, which may also carry a valid cookie, pass: the
            // kernel discards a second handshake for one connection.
            crate::conns::handed_over(hash);
        }
    }
    TC_ACT_OK
}

/// The IP header's facts the check needs: (IPv6, where the IP header starts, offset of TCP
/// from the IP header, the source and destination addresses as words in network order, IPv4's
/// in the first two).
#[inline(always)]
fn ip(ctx: &TcContext) -> Option<(bool, u32, u32, [u32; 8])> {
    let (proto, l2) = own_tc::l3(ctx)?;
    match proto {
        ETH_P_IP => {
            let h = load::<20>(ctx, l2)?;
            let b = &h.0;
            // Not TCP, or a fragment: not a handshake ACK of ours.
            if b[0] >> 4 != 4 || b[9] != IPPROTO_TCP || (b[6] & 0x3f) | b[7] != 0 {
                return None;
            }
            let ihl = (b[0] & 0xf) as u32 * 4;
            if ihl < 20 {
                return None;
            }
            let addrs = [h.u32_ne(12), h.u32_ne(16), 0, 0, 0, 0, 0, 0];
            Some((false, l2, ihl, addrs))
        }
        ETH_P_IPV6 => {
            let h = load::<40>(ctx, l2)?;
            let tcp = v6_tcp(ctx, h.0[6], l2 + 40)?;
            let w = |i| h.u32_ne(i);
            let addrs = [w(8), w(12), w(16), w(20), w(24), w(28), w(32), w(36)];
            Some((true, l2, tcp - l2, addrs))
        }
        _ => None,
    }
}

/// Where TCP starts after the IPv6 header (`off`) and up to four hop-by-hop, routing and
/// destination-options headers, as the XDP parser walks them (`parse::ipv6`: an unrolled,
/// fixed sequence for the verifier); None for a fragment, another protocol or more headers.
#[inline(always)]
fn v6_tcp(ctx: &TcContext, nh: u8, off: u32) -> Option<u32> {
    let (nh, off) = v6_ext(ctx, nh, off)?;
    let (nh, off) = v6_ext(ctx, nh, off)?;
    let (nh, off) = v6_ext(ctx, nh, off)?;
    let (nh, off) = v6_ext(ctx, nh, off)?;
    (nh == IPPROTO_TCP).then_some(off)
}

/// One extension header: (next header, offset after it); anything else as it is.
#[inline(always)]
fn v6_ext(ctx: &TcContext, nh: u8, off: u32) -> Option<(u8, u32)> {
    if !is_v6_ext(nh) {
        return Some((nh, off));
    }
    let e = load::<2>(ctx, off)?.0;
    Some((e[0], off + (e[1] as u32 + 1) * 8))
}

/// The request socket's attributes for a handshake ACK with a valid cookie, with its
/// 4-tuple's hash and what the connection table says about it.
#[inline(always)]
fn check(ctx: &TcContext) -> Option<(OwnAckMeta, u64, ConnLookup)> {
    let (ipv6, l2, tcp_off, a) = ip(ctx)?;
    let th = load::<20>(ctx, l2 + tcp_off)?;
    let flags = th.0[13];
    if flags & ACK == 0 || flags & (SYN | RST) != 0 {
        return None;
    }
    let ports = u32::from_be(th.u32_ne(0));
    let (sport, dport) = ((ports >> 16) as u16, ports as u16);
    if !decide::port_protected(dport) {
        return None;
    }
    // A connection the table vouches for is no handshake: its packets skip the hash. So do the
    // segments behind a handshake's final ACK once that ACK was handed over (`handle`).
    let hash = flow_hash_of(ipv6, &a, sport, dport);
    let clocks = crate::workspace::clocks()?;
    let table = crate::conns::lookup_hash(hash, clocks);
    if table == ConnLookup::Maybe {
        return None;
    }
    let cfg = SG_CONFIG.get();
    let secret = SG_COOKIE_SECRET.get();
    if !cookies_own(cfg.cookies) {
        return None;
    }
    let flow = Flow::from_words(ipv6, &a.map(u32::from_be), ports);
    let client_isn = u32::from_be(th.u32_ne(4)).wrapping_sub(1);
    let isn = u32::from_be(th.u32_ne(8)).wrapping_sub(1);
    let now = clocks.now_ns();
    let slot = own_cookie::slot_of(clocks.tai_ns(now));
    let opts = match own_cookie::check(&secret.current, &flow, client_isn, isn, slot) {
        Some(o) => o,
        None if secret.previous_valid(slot) => {
            own_cookie::check(&secret.previous, &flow, client_isn, isn, slot)?
        }
        None => return None,
    };
    let doff = (th.0[12] >> 4) as u32 * 4;
    let ts = if cfg.cookies & HOST_NO_TIMESTAMPS == 0 && doff >= 32 {
        let o = load::<{ reqsk::ACK_TS_HEAD }>(ctx, l2 + tcp_off + 20)?;
        reqsk::ack_timestamp(&o.0, reqsk::ACK_TS_HEAD)
    } else {
        None
    };
    let meta = OwnAckMeta {
        attrs: reqsk::req_attrs(&opts, ipv6, cfg.wscale as u8, ts),
        tcp_off: tcp_off as u16,
        ipv6: ipv6 as u8,
        _pad: 0,
        magic: META_MAGIC,
    };
    Some((meta, hash, table))
}
