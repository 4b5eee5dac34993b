//! The oracle's own reading of a frame: what the host's stack and synguard's documented policy
//! make of it. Written from the kernel's rules and the README, not from the XDP program's code;
//! checksums through etherparse-free 16-bit sums (`generate::sum16`).

use synguard_common::{reason::Reason, tcp::*};

/// How the oracle reads a flags byte (RFC 9293 and the README's table, written apart from
/// `synguard_common::tcp::classify`).
#[derive(Clone, Copy)]
enum Class {
    Syn,
    SynAck,
    SynFin,
    SynRst,
    Rst,
    Ack,
    NoFlags,
    NoAck,
}

fn class(f: u8) -> Class {
    let syn = f & SYN != 0;
    match () {
        _ if syn && f & FIN != 0 => Class::SynFin,
        _ if syn && f & RST != 0 => Class::SynRst,
        _ if syn && f & ACK != 0 => Class::SynAck,
        _ if syn => Class::Syn,
        _ if f & RST != 0 => Class::Rst,
        _ if f & ACK != 0 => Class::Ack,
        _ if f & (FIN | PSH | URG) == 0 => Class::NoFlags,
        _ => Class::NoAck,
    }
}

use super::generate::{PROTECTED, pseudo_sum, sum16};
use super::{
    conns::{Conns, Tuple},
    policies::Policies,
};
use crate::testrun::frames::{SERVER_MAC, SERVER_V4, SERVER_V6};

/// What the oracle knows beyond the frame: the batch's lists and limits and its live
/// connections, with their state (a copy is charged for a frame that meets neither), its
/// listeners, the host's addresses its configuration lists, and its reverse-path filter.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// Whether the batch's mode answers SYNs: always mode, or auto mode with cookies called
    /// for; auto mode without leaves every SYN to the kernel.
    pub cookies_on: bool,
    pub policies: Policies,
    pub conns: Conns,
    pub listeners: Listeners,
    pub locals: Locals,
    pub reverse_path: ReversePath,
}

/// The routes every batch's program holds for the reverse-path check (`SG_RP_V4`), with their
/// kind: here, out of another interface, blackholed; 198.18.0.224/27 has none. The generator's
/// IPv4 sources fall in all four.
pub const ROUTES: [([u8; 4], u32, RouteKind); 3] = [
    ([198, 18, 0, 0], 25, RouteKind::Here),
    ([198, 18, 0, 128], 26, RouteKind::Elsewhere),
    ([198, 18, 0, 192], 27, RouteKind::Blocked),
];

/// A route's kind for the reverse-path filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    Here,
    Elsewhere,
    Blocked,
}

/// The batch's reverse-path filter as its configuration names it: off, strict or loose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReversePath {
    #[default]
    Off,
    Strict,
    Loose,
}

impl ReversePath {
    /// Whether the kernel drops an IPv4 segment from `src` (`__fib_validate_source`): strict
    /// wants the longest-matching route out of this interface, loose a unicast one; no route
    /// fails both. IPv6 has no such filter.
    fn drops(self, ipv6: bool, src: &[u8]) -> bool {
        if ipv6 || self == ReversePath::Off {
            return false;
        }
        let bits = |a: &[u8]| u32::from_be_bytes([a[0], a[1], a[2], a[3]]);
        let kind = ROUTES
            .iter()
            .filter(|(net, len, _)| (bits(src) ^ bits(net)) >> (32 - len) == 0)
            .max_by_key(|(_, len, _)| *len)
            .map(|&(_, _, k)| k);
        let passes = matches!(
            (self, kind),
            (ReversePath::Strict, Some(RouteKind::Here))
                | (
                    ReversePath::Loose,
                    Some(RouteKind::Here | RouteKind::Elsewhere)
                )
        );
        !passes
    }
}

/// The batch's listeners: the protected ports' `PORT_NO_LISTENER_*` bits as the program's port
/// table has them (per-address ones set by the loader's `Listening::no_listener_flags`), and,
/// for the oracle, the ports whose listeners of a family are all bound to particular addresses,
/// with those addresses: the host resets SYNs to its other addresses.
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    pub bits: Vec<(u16, u32)>,
    pub bound: Vec<(u16, bool, Vec<Vec<u8>>)>,
    /// `SG_BOUND`'s entries for the bits' `PORT_BOUND_ONLY_*` (the loader's own
    /// `Listening::bound_keys`).
    pub keys: Vec<synguard_common::maps::BoundKey>,
}

/// The host's own addresses as the batch's configuration lists them, each family's `None` where
/// the list is not known (every destination is then the host's, and no source is).
#[derive(Clone, Debug, Default)]
pub struct Locals {
    pub v4: Option<Family>,
    pub v6: Option<Family>,
}

/// One family's own addresses and local prefixes.
#[derive(Clone, Debug, Default)]
pub struct Family {
    pub addrs: Vec<Vec<u8>>,
    pub prefixes: Vec<(Vec<u8>, u8)>,
}

impl Family {
    fn holds(&self, a: &[u8]) -> bool {
        self.addrs.iter().any(|x| x == a) || self.prefixes.iter().any(|(p, len)| within(a, p, *len))
    }
}

/// Whether `a` is inside `prefix/len`, bit by bit (the program asks an LPM trie).
fn within(a: &[u8], prefix: &[u8], len: u8) -> bool {
    a.len() == prefix.len()
        && (0..usize::from(len)).all(|bit| {
            let m = 0x80 >> (bit % 8);
            a[bit / 8] & m == prefix[bit / 8] & m
        })
}

impl Locals {
    /// The addresses `cfg` lists in its slots, read as plain lists (the program finds them by
    /// their salted pairs; the oracle by looking through all of them).
    pub fn of(cfg: &synguard_common::maps::Config) -> Self {
        use std::net::IpAddr;
        let addrs = synguard::host::addrs::LocalAddrs::from_config(cfg);
        let bytes = |a: IpAddr| match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let list = |slots: Option<Vec<Option<IpAddr>>>| {
            slots.map(|s| Family {
                addrs: s.into_iter().flatten().map(bytes).collect(),
                prefixes: Vec::new(),
            })
        };
        Locals {
            v4: list(addrs.slots_v4()),
            v6: list(addrs.slots_v6()),
        }
    }

    fn family(&self, ipv6: bool) -> Option<&Family> {
        if ipv6 {
            self.v6.as_ref()
        } else {
            self.v4.as_ref()
        }
    }

    /// Whether a segment to `dst` is the host's (not one it would forward).
    fn takes(&self, ipv6: bool, dst: &[u8]) -> bool {
        self.family(ipv6).is_none_or(|f| f.holds(dst))
    }

    /// Whether `src` is another of the host's own addresses (a martian source on a NIC).
    fn own(&self, ipv6: bool, src: &[u8]) -> bool {
        self.family(ipv6).is_some_and(|f| f.holds(src))
    }

    /// The listed addresses but the server's, and the ninth address of each local prefix, for
    /// the generator's destinations.
    pub fn others(&self) -> (Vec<[u8; 4]>, Vec<[u8; 16]>) {
        let of = |f: &Option<Family>, server: &[u8]| -> Vec<Vec<u8>> {
            let Some(f) = f else { return Vec::new() };
            let inside = f.prefixes.iter().map(|(p, _)| {
                let mut a = p.clone();
                if let Some(last) = a.last_mut() {
                    *last |= 9;
                }
                a
            });
            f.addrs
                .iter()
                .filter(|a| a[..] != *server)
                .cloned()
                .chain(inside)
                .collect()
        };
        (
            of(&self.v4, &SERVER_V4)
                .iter()
                .filter_map(|a| a[..].try_into().ok())
                .collect(),
            of(&self.v6, &SERVER_V6)
                .iter()
                .filter_map(|a| a[..].try_into().ok())
                .collect(),
        )
    }
}

impl World {
    /// Whether something listens on `port` over the family, at `dst` (the host resets a SYN
    /// otherwise).
    fn listening(&self, port: u16, ipv6: bool, dst: &[u8]) -> bool {
        let bit = synguard_common::maps::port_no_listener(ipv6);
        let l = &self.listeners;
        // Bound listeners are told apart where the host's addresses are known: by slot, or
        // (the family in the trie) by `SG_BOUND`.
        let bound_elsewhere = self.locals.family(ipv6).is_some()
            && l.bound
                .iter()
                .any(|(p, v6, at)| *p == port && *v6 == ipv6 && !at.iter().any(|a| a == dst));
        !l.bits.iter().any(|&(p, b)| p == port && b & bit != 0) && !bound_elsewhere
    }
}

/// What the program must do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this reason (and its action).
    Exactly(Reason),
    /// A SYN the host accepts: a correct SYN-ACK.
    SynAck,
    /// An ACK with no socket behind it: a valid cookie passes, anything else is dropped.
    CookieCheck,
}

/// The parts of a client SYN the reply is checked against.
#[derive(Clone, Debug)]
pub struct Syn {
    pub l2: Vec<u8>,
    pub ipv6: bool,
    pub src: Vec<u8>,
    pub dst: Vec<u8>,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub flags: u8,
    pub opts: ClientOpts,
}

/// The client's options as the kernel reads them (`tcp_parse_options` for a SYN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientOpts {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack: bool,
    pub tsval: Option<u32>,
}

pub fn client_opts(b: &[u8]) -> ClientOpts {
    let mut o = ClientOpts::default();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0 => break,
            1 => i += 1,
            kind => {
                if i + 1 >= b.len() {
                    break;
                }
                let len = b[i + 1] as usize;
                if len < 2 || i + len > b.len() {
                    break;
                }
                let a = &b[i + 2..i + len];
                match (kind, len) {
                    (2, 4) if a != [0, 0] => o.mss = Some(u16::from_be_bytes([a[0], a[1]])),
                    (3, 3) => o.wscale = Some(a[0].min(14)),
                    (4, 2) => o.sack = true,
                    (8, 10) => o.tsval = Some(u32::from_be_bytes([a[0], a[1], a[2], a[3]])),
                    _ => {}
                }
                i += len;
            }
        }
    }
    o
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn martian(ipv6: bool, src: &[u8], dst: &[u8]) -> bool {
    if src == dst {
        return true;
    }
    if ipv6 {
        let a = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(src).unwrap());
        a.is_multicast() || a.is_unspecified() || a.is_loopback() || a.to_ipv4_mapped().is_some()
    } else {
        src[0] == 0 || src[0] == 127 || src[0] >= 224
    }
}

/// The model: the expected outcome, and the SYN when one is to be answered. `world`: the
/// batch's lists, limits and connections, whose state the frame is charged to.
pub fn expect(f: &[u8], world: &mut World) -> (Expect, Option<Syn>) {
    match walk(f, world) {
        Ok(r) => r,
        Err(reason) => (Expect::Exactly(reason), None),
    }
}

/// Where the frame's fixed TCP header ends and where its options end, when it parses down to
/// TCP. Every decision reads the headers up to the first; a SYN's answer (its checksum, which
/// covers no data the README says is not checked, and the options it keeps) up to the second.
pub fn tcp_ends(f: &[u8]) -> Option<(usize, usize)> {
    let h = headers(f).ok()?;
    Some((h.tcp + 20, h.tcp + (f[h.tcp + 12] >> 4) as usize * 4))
}

/// The frame's 4-tuple, as the client sent it.
fn tuple(f: &[u8], h: &Headers) -> Tuple {
    Tuple {
        src: h.src.clone(),
        dst: h.dst.clone(),
        sport: be16(f, h.tcp),
        dport: be16(f, h.tcp + 2),
    }
}

/// Where a frame's headers are, once it parsed down to TCP.
struct Headers {
    l2_end: usize,
    ipv6: bool,
    tcp: usize,
    ip_end: usize,
    src: Vec<u8>,
    dst: Vec<u8>,
}

/// Ethernet and up to two VLAN tags: (ethertype, end of L2).
fn l2(f: &[u8]) -> Result<(u16, usize), Reason> {
    if f.len() < 14 {
        return Err(Reason::PassMalformedL2);
    }
    let mut off = 12;
    let mut proto = be16(f, off);
    for _ in 0..2 {
        if proto == 0x8100 || proto == 0x88a8 {
            off += 4;
            if f.len() < off + 2 {
                return Err(Reason::PassMalformedL2);
            }
            proto = be16(f, off);
        }
    }
    Ok((proto, off + 2))
}

/// IPv6 with up to four hop-by-hop/routing/destination-options headers: (TCP offset, IP end).
fn ipv6(f: &[u8], ip: usize) -> Result<(usize, usize), Reason> {
    use Reason::*;
    if f.len() < ip + 40 || f[ip] >> 4 != 6 || ip + 40 + be16(f, ip + 4) as usize > f.len() {
        return Err(PassMalformedIp);
    }
    let mut nh = f[ip + 6];
    let mut at = ip + 40;
    for _ in 0..4 {
        if matches!(nh, 0 | 43 | 60) {
            if f.len() < at + 2 {
                return Err(PassMalformedIp);
            }
            nh = f[at];
            at += (f[at + 1] as usize + 1) * 8;
        }
    }
    match nh {
        0 | 43 | 60 => Err(PassIpv6ExtLimit),
        44 => Err(PassFragment),
        6 => Ok((at, ip + 40 + be16(f, ip + 4) as usize)),
        _ => Err(PassNotTcp),
    }
}

/// IPv4 with options: (TCP offset, IP end).
fn ipv4(f: &[u8], ip: usize) -> Result<(usize, usize), Reason> {
    use Reason::*;
    if f.len() < ip + 20 {
        return Err(PassMalformedIp);
    }
    let ihl = (f[ip] & 0xf) as usize * 4;
    let total = be16(f, ip + 2) as usize;
    if f[ip] >> 4 != 4 || ihl < 20 || total < ihl || ip + total > f.len() {
        return Err(PassMalformedIp);
    }
    if be16(f, ip + 6) & 0x3fff != 0 {
        return Err(PassFragment);
    }
    if f[ip + 9] != 6 {
        return Err(PassNotTcp);
    }
    Ok((ip + ihl, ip + total))
}

/// Down to a TCP header whose data offset fits the IP packet.
fn headers(f: &[u8]) -> Result<Headers, Reason> {
    let (proto, l2_end) = l2(f)?;
    let ip = l2_end;
    let (ipv6, (tcp, ip_end)) = match proto {
        0x0800 => (false, ipv4(f, ip)?),
        0x86dd => (true, ipv6(f, ip)?),
        _ => return Err(Reason::PassNotIp),
    };
    let (src, dst) = if ipv6 {
        (f[ip + 8..ip + 24].to_vec(), f[ip + 24..ip + 40].to_vec())
    } else {
        (f[ip + 12..ip + 16].to_vec(), f[ip + 16..ip + 20].to_vec())
    };
    if f.len() < tcp + 20 {
        return Err(Reason::PassMalformedTcp);
    }
    let doff = (f[tcp + 12] >> 4) as usize * 4;
    if doff < 20 || tcp + doff > ip_end {
        return Err(Reason::PassMalformedTcp);
    }
    Ok(Headers {
        l2_end,
        ipv6,
        tcp,
        ip_end,
        src,
        dst,
    })
}

fn walk(f: &[u8], world: &mut World) -> Result<(Expect, Option<Syn>), Reason> {
    use Reason::*;
    let h = headers(f)?;
    let dport = be16(f, h.tcp + 2);
    if !PROTECTED.contains(&dport) {
        return Err(PassUnprotectedPort);
    }
    if f[0] & 1 != 0 || f[..6] != SERVER_MAC {
        return Err(PassNotForHost);
    }
    // To another address through the host's MAC: the host would forward it.
    if !world.locals.takes(h.ipv6, &h.dst) {
        return Err(PassNotLocal);
    }
    // From another of the host's own addresses: a martian (the batches keep `accept_local` 0).
    if martian(h.ipv6, &h.src, &h.dst) || world.locals.own(h.ipv6, &h.src) {
        return Err(DropMartianSource);
    }
    let flags = f[h.tcp + 13];
    let class = class(flags);
    if !matches!(class, Class::Syn)
        && let Some(r) = world.policies.listed(&h.src)
    {
        return Err(r);
    }
    let tuple = tuple(f, &h);
    if matches!(class, Class::Ack) && world.conns.is_live(&tuple) {
        world.conns.ack(&tuple, flags & FIN != 0);
        return Err(PassEstablished);
    }
    let expect = match class {
        Class::Syn => return syn(f, h, &tuple, world).map(|s| (Expect::SynAck, Some(s))),
        Class::Ack => Expect::CookieCheck,
        Class::SynAck => Expect::Exactly(PassSynAck),
        Class::Rst => Expect::Exactly(PassRst),
        Class::SynFin => Expect::Exactly(DropSynFin),
        Class::SynRst => Expect::Exactly(DropSynRst),
        Class::NoFlags => Expect::Exactly(DropNoFlags),
        Class::NoAck => Expect::Exactly(DropNoAck),
    };
    Ok((expect, None))
}

/// A SYN the host accepts (both checksums; TCP only without payload, as the README says) and
/// the policies let through, and what its answer is checked against. The lists and the source's
/// limit come before the checksums, the reflection cap between them (`policies`).
fn syn(f: &[u8], h: Headers, tuple: &Tuple, world: &mut World) -> Result<Syn, Reason> {
    let tcp = h.tcp;
    let pol = &world.policies;
    if let Some(r) = pol.listed(&h.src) {
        return Err(r);
    }
    // A source the kernel's reverse-path filter drops is its to drop, before any limit.
    if world.reverse_path.drops(h.ipv6, &h.src) {
        return Err(Reason::PassReversePath);
    }
    if let Some(r) = world.policies.charge_source(&h.src) {
        return Err(r);
    }
    // Nothing listens, on the port or at this address: the host resets it.
    if !world.listening(tuple.dport, h.ipv6, &tuple.dst) {
        return Err(Reason::PassSynNoListener);
    }
    // Auto mode before a flood: the kernel answers every SYN itself.
    if !world.cookies_on {
        return Err(Reason::PassSynToKernel);
    }
    // A close recorded for the 4-tuple: the host may hold its TIME_WAIT socket. A live
    // connection's: the host answers with a challenge ACK.
    if world.conns.recently_closed(tuple) {
        return Err(Reason::PassSynRecentClose);
    }
    if world.conns.is_live(tuple) {
        return Err(Reason::PassSynLiveConn);
    }
    if !h.ipv6 && sum16(&f[h.l2_end..tcp], 0) != 0xffff {
        return Err(Reason::DropBadIpChecksum);
    }
    if let Some(r) = world.policies.charge_reflect(&h.src) {
        return Err(r);
    }
    let doff = (f[tcp + 12] >> 4) as usize * 4;
    let seg = &f[tcp..h.ip_end];
    if seg.len() == doff {
        let pseudo = pseudo_sum(&h.src, &h.dst, seg.len());
        let field = be16(f, tcp + 16);
        if sum16(seg, pseudo) != 0xffff && field != pseudo as u16 {
            return Err(Reason::DropBadTcpChecksum);
        }
    }
    Ok(Syn {
        l2: f[..h.l2_end].to_vec(),
        ipv6: h.ipv6,
        src: h.src,
        dst: h.dst,
        sport: be16(f, tcp),
        dport: be16(f, tcp + 2),
        seq: u32::from_be_bytes([f[tcp + 4], f[tcp + 5], f[tcp + 6], f[tcp + 7]]),
        flags: f[tcp + 13],
        opts: client_opts(&f[tcp + 20..tcp + doff]),
    })
}
