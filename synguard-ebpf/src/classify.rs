//! Step 2, classify: is the segment for this host at all, and from a source the host's stack
//! would accept? Frames for another MAC pass untouched (the kernel discards them: not
//! `PACKET_HOST`); martian sources are dropped. The rules are pure functions in
//! `synguard_common::host`.

use aya_ebpf::programs::XdpContext;
use synguard_common::{
    host::{MacClass, mac_class, martian_v4, martian_v6},
    maps::Config,
    reason::Reason,
};

use crate::parse::{self, Packet};

/// The reason a segment to a protected port is not the host's business, if it is not.
#[inline(always)]
pub fn not_ours(ctx: &XdpContext, pkt: &Packet, cfg: &Config) -> Option<Reason> {
    let dst: [u8; 6] = parse::load(ctx, 0)?;
    if mac_class(&dst, &cfg.own_mac) != MacClass::Host {
        return Some(Reason::PassNotForHost);
    }
    let martian = if pkt.ipv6 {
        let ip = pkt.ip6();
        martian_v6(sub16(ip, 8), sub16(ip, 24), cfg.loopback != 0)
    } else {
        let ip = pkt.ip4();
        martian_v4(sub4(ip, 12), sub4(ip, 16), cfg.loopback != 0)
    };
    martian.then_some(Reason::DropMartianSource)
}

#[inline(always)]
fn sub16(ip: &[u8; 40], at: usize) -> &[u8; 16] {
    ip[at..at + 16].try_into().unwrap_or(&[0; 16])
}

#[inline(always)]
fn sub4(ip: &[u8; 20], at: usize) -> &[u8; 4] {
    ip[at..at + 4].try_into().unwrap_or(&[0; 4])
}
