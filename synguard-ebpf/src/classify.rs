//! Step 2, classify: is the segment for this host at all, and from a source the host's stack
//! would accept? Frames for another MAC pass untouched (the kernel discards them: not
//! `PACKET_HOST`), and so do segments to an address that is not the host's (the kernel forwards
//! them); martian sources are dropped. The rules are pure functions in `synguard_common::host`.
//! A SYN's source also meets the kernel's reverse-path filter here ([`reverse_path`]).

use aya_ebpf::{maps::lpm_trie::Key, programs::XdpContext};
use synguard_common::{
    host::{
        MacClass, dst_local_v4, dst_local_v6, dst_slots_v4, dst_slots_v6, mac_class, martian_v4,
        martian_v6, src_local_v4, src_local_v6,
    },
    maps::{Config, HOST_RP_LOOSE, HOST_RP_STRICT, LOCAL_IN_MAP, reverse_path_ok},
    reason::Reason,
};

use crate::{
    maps::{SG_LOCAL_V4, SG_LOCAL_V6, SG_RP_V4},
    parse::{self, Packet},
};

/// The reason a segment to a protected port is not the host's business, if it is not.
#[inline(always)]
pub fn not_ours(ctx: &XdpContext, pkt: &Packet, cfg: &Config) -> Option<Reason> {
    let dst: [u8; 6] = parse::load(ctx, 0)?;
    if mac_class(&dst, &cfg.own_mac) != MacClass::Host {
        return Some(Reason::PassNotForHost);
    }
    let a = pkt.addresses();
    let (src6, dst6) = ([a[0], a[1], a[2], a[3]], [a[4], a[5], a[6], a[7]]);
    let local = if pkt.ipv6 {
        own_v6(&dst6, cfg, false)
    } else {
        own_v4(a[1], cfg, false)
    };
    if !local {
        return Some(Reason::PassNotLocal);
    }
    // A source that is another of the host's own addresses: a martian to the kernel (IPv4,
    // unless `accept_local`), and dropped like LAND (IPv6); the host talks to itself only on a
    // loopback device.
    let loopback = cfg.loopback != 0;
    let martian = if pkt.ipv6 {
        let ip = pkt.ip6();
        martian_v6(sub16(ip, 8), sub16(ip, 24), loopback) || (!loopback && own_v6(&src6, cfg, true))
    } else {
        let ip = pkt.ip4();
        martian_v4(sub4(ip, 12), sub4(ip, 16), loopback)
            || (!loopback && cfg.accept_local == 0 && own_v4(a[0], cfg, true))
    };
    martian.then_some(Reason::DropMartianSource)
}

/// Whether `addr` (the header's word) is one of the host's own IPv4 addresses as `cfg` holds
/// them: in its slots (`host::dst_local_v4`, `src_local_v4`) or, where they did not fit
/// (`LOCAL_IN_MAP`), in `SG_LOCAL_V4`. `src`: asked of a source, which a list not known never
/// matches (a destination always does: fail open).
#[inline(always)]
fn own_v4(addr: u32, cfg: &Config, src: bool) -> bool {
    let n = cfg.local_v4_n;
    if n == LOCAL_IN_MAP {
        in_local_map_v4(addr)
    } else if src {
        src_local_v4(addr, n, cfg.local_salt, &cfg.local_v4)
    } else {
        dst_local_v4(addr, n, cfg.local_salt, &cfg.local_v4)
    }
}

/// [`own_v4`] for IPv6: `addr` as four header words.
#[inline(always)]
fn own_v6(addr: &[u32; 4], cfg: &Config, src: bool) -> bool {
    let n = cfg.local_v6_n;
    if n == LOCAL_IN_MAP {
        in_local_map_v6(addr)
    } else if src {
        src_local_v6(addr, n, cfg.local_salt, &cfg.local_v6)
    } else {
        dst_local_v6(addr, n, cfg.local_salt, &cfg.local_v6)
    }
}

/// Whether `addr` (the header's word) is in `SG_LOCAL_V4`: one of the host's addresses or
/// inside one of its local prefixes, where the config's slots could not hold them
/// (`LOCAL_IN_MAP`). The kernel's own test is the same longest-prefix match on its local table
/// (`ip_route_input_slow`: `RTN_LOCAL`).
#[inline(always)]
fn in_local_map_v4(addr: u32) -> bool {
    SG_LOCAL_V4.get(Key::new(32, addr.to_ne_bytes())).is_some()
}

/// [`in_local_map_v4`] for IPv6: `addr` as four header words.
#[inline(always)]
fn in_local_map_v6(addr: &[u32; 4]) -> bool {
    // SAFETY: same size, every bit pattern of either is valid.
    let bytes = unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(*addr) };
    SG_LOCAL_V6.get(Key::new(128, bytes)).is_some()
}

/// The kernel's reverse-path filter, for an IPv4 SYN about to be answered: a source the host
/// drops in `fib_validate_source` (strict `rp_filter`: routed out of another interface or not
/// at all; loose: no unicast route) is passed to it unanswered, as `Config::cookies`'
/// `HOST_RP_*` flags say and the main table's routes in `SG_RP_V4` show. Passed, not dropped:
/// a stale or empty copy of the table then costs the kernel's own check, never a SYN the host
/// would answer. Off (no flag) for IPv6, which has no such filter, and where the loader found
/// that every source passes.
#[inline(always)]
pub fn reverse_path(pkt: &Packet, cfg: &Config) -> Option<Reason> {
    let flags = cfg.cookies & (HOST_RP_STRICT | HOST_RP_LOOSE);
    if flags == 0 || pkt.ipv6 {
        return None;
    }
    let src = pkt.addresses()[0].to_ne_bytes();
    let route = SG_RP_V4.get(Key::new(32, src)).copied();
    (!reverse_path_ok(flags, route)).then_some(Reason::PassReversePath)
}

/// The address-list slots that hold the segment's destination (`host::dst_slots_v4`), for the
/// per-address listener check (`decide::listening`), which asks only on a port that has
/// per-address listener bits.
#[inline(always)]
pub fn dst_slots(pkt: &Packet, cfg: &Config) -> u32 {
    let a = pkt.addresses();
    if pkt.ipv6 {
        dst_slots_v6(
            &[a[4], a[5], a[6], a[7]],
            cfg.local_v6_n,
            cfg.local_salt,
            &cfg.local_v6,
        )
    } else {
        dst_slots_v4(a[1], cfg.local_v4_n, cfg.local_salt, &cfg.local_v4)
    }
}

#[inline(always)]
fn sub16(ip: &[u8; 40], at: usize) -> &[u8; 16] {
    ip[at..at + 16].try_into().unwrap_or(&[0; 16])
}

#[inline(always)]
fn sub4(ip: &[u8; 20], at: usize) -> &[u8; 4] {
    ip[at..at + 4].try_into().unwrap_or(&[0; 4])
}
