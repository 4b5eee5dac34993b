//! TC ingress for drivers that carry no XDP metadata (`synguard_own_check`): the valid cookie
//! ACK arrives unmarked, so this program checks the cookie again before handing the handshake
//! to the kernel (`own_tc::assign`). Every other packet to a protected port pays the parse and,
//! for a pure ACK, the hash, which is why the loader attaches this program only once the XDP
//! program has found the driver without metadata (docs/own-cookies.md).
//!
//! Handles untagged frames with IPv4 or IPv6 without extension headers.

use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use synguard_common::{
    maps::{OWN_NO_TIMESTAMPS, cookies_own},
    own_cookie::{self, Flow},
    reqsk::{self, META_MAGIC, OwnAckMeta},
    tcp::{ACK, RST, SYN},
};

use crate::{
    decide,
    maps::{SG_CONFIG, SG_COOKIE_SECRET},
    own_tc::{self, load},
};

const ETH_LEN: u32 = 14;

#[inline(always)]
pub fn handle(ctx: &TcContext) -> i32 {
    if let Some(m) = check(ctx) {
        own_tc::assign(ctx, m);
    }
    TC_ACT_OK
}

/// The IP header's facts the check needs: (IPv6, offset of TCP from the IP header, flow
/// addresses as bytes).
#[inline(always)]
fn ip(ctx: &TcContext) -> Option<(bool, u32, [u8; 32])> {
    let et = load::<2>(ctx, 12)?;
    let mut addrs = [0u8; 32];
    match u16::from_be_bytes(et) {
        0x0800 => {
            let h = load::<20>(ctx, ETH_LEN)?;
            // Not TCP, or a fragment: not a handshake ACK of ours.
            if h[0] >> 4 != 4 || h[9] != 6 || (h[6] & 0x3f) | h[7] != 0 {
                return None;
            }
            let ihl = (h[0] & 0xf) as u32 * 4;
            if ihl < 20 {
                return None;
            }
            addrs[..8].copy_from_slice(&h[12..20]);
            Some((false, ihl, addrs))
        }
        0x86dd => {
            let h = load::<40>(ctx, ETH_LEN)?;
            if h[6] != 6 {
                return None;
            }
            addrs.copy_from_slice(&h[8..40]);
            Some((true, 40, addrs))
        }
        _ => None,
    }
}

#[inline(always)]
fn check(ctx: &TcContext) -> Option<OwnAckMeta> {
    let (ipv6, tcp_off, a) = ip(ctx)?;
    let th = load::<20>(ctx, ETH_LEN + tcp_off)?;
    if th[13] & ACK == 0 || th[13] & (SYN | RST) != 0 {
        return None;
    }
    let sport = u16::from_be_bytes([th[0], th[1]]);
    let dport = u16::from_be_bytes([th[2], th[3]]);
    if !decide::port_protected(dport) {
        return None;
    }
    let cfg = SG_CONFIG.get(0)?;
    let secret = SG_COOKIE_SECRET.get(0)?;
    if !cookies_own(cfg.cookies) {
        return None;
    }
    let flow = if ipv6 {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&a[..16]);
        d.copy_from_slice(&a[16..]);
        Flow::v6(&s, &d, sport, dport)
    } else {
        Flow::v4(
            [a[0], a[1], a[2], a[3]],
            [a[4], a[5], a[6], a[7]],
            sport,
            dport,
        )
    };
    let client_isn = u32::from_be_bytes([th[4], th[5], th[6], th[7]]).wrapping_sub(1);
    let isn = u32::from_be_bytes([th[8], th[9], th[10], th[11]]).wrapping_sub(1);
    let slot = own_cookie::slot_of(crate::clock::now_ns());
    let opts = match own_cookie::check(&secret.current, &flow, client_isn, isn, slot) {
        Some(o) => o,
        None if secret.previous_valid(slot) => {
            own_cookie::check(&secret.previous, &flow, client_isn, isn, slot)?
        }
        None => return None,
    };
    let doff = (th[12] >> 4) as u32 * 4;
    let ts = if cfg.cookies & OWN_NO_TIMESTAMPS == 0 && doff >= 32 {
        let o = load::<12>(ctx, ETH_LEN + tcp_off + 20)?;
        let mut opts40 = [0u8; 40];
        opts40[..12].copy_from_slice(&o);
        reqsk::ack_timestamp(&opts40, 12)
    } else {
        None
    };
    Some(OwnAckMeta {
        attrs: reqsk::req_attrs(&opts, ipv6, cfg.wscale as u8, ts),
        tcp_off: tcp_off as u16,
        ipv6: ipv6 as u8,
        _pad: 0,
        magic: META_MAGIC,
    })
}
