//! Checks a SYN-ACK against the SYN it answers, with etherparse's own parsing and checksum code:
//! addresses, ports, VLAN tags, ack, flags, both checksums, options, MSS, TS echo, window scale,
//! and the cookie's own part: the kernel's option bits in the TSval, or an own cookie's ISN.
//! Also builds the client's final ACK for it.

use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};
use synguard_common::{
    maps::{Config, HOST_NO_SACK, HOST_NO_TIMESTAMPS, HOST_NO_WSCALE},
    own_cookie::{self, CookieOpts, Flow},
    reqsk::META_MAGIC,
    siphash::Key,
    tcp::*,
};

use super::generate::{pseudo_sum, sum16};
use super::model::{ClientOpts, Syn};
use crate::testrun::own_slots;

/// The kernel's cookie MSS tables (`msstab`, net/ipv4/syncookies.c and net/ipv6/syncookies.c),
/// which own cookies keep as classes too (the README, "Own cookies").
fn mss_table(ipv6: bool) -> [u16; 4] {
    if ipv6 {
        [1220, 1420, 1440, 8940]
    } else {
        [536, 1300, 1440, 1460]
    }
}

/// The cookie's MSS for a client's: its class (index in the table) and value, the largest entry
/// not above the client's (the first entry below them all).
fn cookie_mss(client: u16, ipv6: bool) -> (u8, u16) {
    let t = mss_table(ipv6);
    let class = t.iter().rposition(|&m| client >= m).unwrap_or(0);
    (class as u8, t[class])
}

/// The client's options the reply may take up: none the host's TCP has switched off
/// (`HOST_NO_*` in `Config::cookies`, the README's "Kernel settings"), since the host would
/// refuse them when the final ACK comes back.
fn host_kept(mut o: ClientOpts, cfg: &Config) -> ClientOpts {
    let off = |flag: u32| cfg.cookies & flag != 0;
    if off(HOST_NO_TIMESTAMPS) {
        o.tsval = None;
    }
    if off(HOST_NO_SACK) {
        o.sack = false;
    }
    if off(HOST_NO_WSCALE) {
        o.wscale = None;
    }
    o
}

/// The client's MSS, or what it may assume without the option (RFC 9293: 536 over IPv4;
/// IPv6's minimum MTU less headers: 1220).
fn client_mss(o: &ClientOpts, ipv6: bool) -> u16 {
    o.mss.unwrap_or(if ipv6 { 1220 } else { 536 })
}

/// Whether the SYN asks for ECN (ECE and CWR) and we offer it.
fn ecn_asked(syn: &Syn, cfg: &Config) -> bool {
    cfg.ecn != 0 && syn.flags & (ECE | CWR) == ECE | CWR
}

/// Whose cookie the SYN-ACK must carry.
#[derive(Clone, Copy, Debug)]
pub enum Cookie<'a> {
    /// The kernel's: window scale, SACK and ECN only inside a timestamp, as its option bits.
    Kernel,
    /// synguard's own under `key`, made in one of the time slots `slots` (first..=last,
    /// `testrun::own_slots`): the options in the ISN, with or without a timestamp.
    Own { key: &'a Key, slots: [u32; 2] },
}

macro_rules! ensure {
    ($c:expr, $($t:tt)*) => { if !$c { return Err(format!($($t)*)); } };
}

/// What the reply said: (cookie, the SYN-ACK's TSval if any).
pub type Answer = (u32, Option<u32>);

/// Checks the whole SYN-ACK; returns what the client's final ACK needs.
pub fn check(syn: &Syn, out: &[u8], cfg: &Config, cookie: Cookie) -> Result<Answer, String> {
    let l2 = syn.l2.len();
    let p = SlicedPacket::from_ethernet(out).map_err(|e| format!("reply does not parse: {e}"))?;
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        return Err("reply has no TCP header".into());
    };
    let ip_len = headers(syn, out, &p.net, &tcp)?;
    ensure!(
        out.len() == l2 + ip_len + tcp.slice().len(),
        "trailing bytes after the SYN-ACK"
    );
    ensure!(
        tcp.source_port() == syn.dport && tcp.destination_port() == syn.sport,
        "ports"
    );
    ensure!(
        tcp.acknowledgment_number() == syn.seq.wrapping_add(1),
        "ack is not seq + 1"
    );
    let flags = out[l2 + ip_len + 13];
    options(syn, &tcp, flags, cfg, cookie)
}

/// Ethernet, VLAN tags and the IP header, and the TCP checksum over it: returns the IP header's
/// length.
fn headers(
    syn: &Syn,
    out: &[u8],
    net: &Option<NetSlice<'_>>,
    tcp: &etherparse::TcpSlice<'_>,
) -> Result<usize, String> {
    let l2 = syn.l2.len();
    ensure!(out.len() >= l2, "reply shorter than its L2 header");
    ensure!(
        out[..6] == syn.l2[6..12],
        "destination MAC is not the client's"
    );
    ensure!(out[6..12] == syn.l2[..6], "source MAC is not ours");
    ensure!(
        out[12..l2] == syn.l2[12..],
        "VLAN tags or ethertype changed"
    );
    let tcp_len = tcp.slice().len();
    Ok(match net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            ensure!(!syn.ipv6, "IPv4 reply to an IPv6 SYN");
            ensure!(h.ihl() == 5, "reply has IP options");
            ensure!(
                h.source() == syn.dst[..] && h.destination() == syn.src[..],
                "IPv4 addresses"
            );
            let hh = h.to_header();
            ensure!(
                hh.calc_header_checksum() == h.header_checksum(),
                "IPv4 header checksum"
            );
            ensure!(h.protocol() == etherparse::IpNumber::TCP, "protocol");
            ensure!(h.total_len() as usize == 20 + tcp_len, "IPv4 total length");
            let c = tcp
                .calc_checksum_ipv4(h.source(), h.destination())
                .map_err(|e| e.to_string())?;
            ensure!(c == tcp.checksum(), "TCP checksum over IPv4");
            20
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            ensure!(syn.ipv6, "IPv6 reply to an IPv4 SYN");
            ensure!(
                h.source() == syn.dst[..] && h.destination() == syn.src[..],
                "IPv6 addresses"
            );
            ensure!(
                h.next_header() == etherparse::IpNumber::TCP,
                "reply has extension headers"
            );
            ensure!(
                h.payload_length() as usize == tcp_len,
                "IPv6 payload length"
            );
            let c = tcp
                .calc_checksum_ipv6(h.source(), h.destination())
                .map_err(|e| e.to_string())?;
            ensure!(c == tcp.checksum(), "TCP checksum over IPv6");
            40
        }
        _ => return Err("reply has no IP header".into()),
    })
}

/// Flags, MSS, window, timestamp echo, SACK, window scale, and the cookie's own part.
fn options(
    syn: &Syn,
    tcp: &etherparse::TcpSlice<'_>,
    flags: u8,
    cfg: &Config,
    cookie: Cookie,
) -> Result<Answer, String> {
    let o = host_kept(syn.opts, cfg);
    let own = matches!(cookie, Cookie::Own { .. });
    // ECN survives a kernel cookie only through the timestamp; an own cookie keeps it itself.
    let ecn = ecn_asked(syn, cfg) && (own || o.tsval.is_some());
    let want_flags = SYN | ACK | if ecn { ECE } else { 0 };
    ensure!(
        flags == want_flags,
        "flags {flags:#04x}, want {want_flags:#04x}"
    );
    let client = client_mss(&o, syn.ipv6);
    let cap = match if syn.ipv6 { cfg.mss_v6 } else { cfg.mss_v4 } {
        0 => u16::MAX,
        c => c as u16,
    };
    let (class, cmss) = cookie_mss(client, syn.ipv6);
    let want_mss = cmss.min(client).min(cap);
    let (mut mss, mut ts, mut sack, mut ws) = (None, None, false, None);
    for opt in tcp.options_iterator() {
        match opt.map_err(|e| format!("reply options: {e}"))? {
            TcpOptionElement::MaximumSegmentSize(m) => mss = Some(m),
            TcpOptionElement::Timestamp(v, e) => ts = Some((v, e)),
            TcpOptionElement::SelectiveAcknowledgementPermitted => sack = true,
            TcpOptionElement::WindowScale(w) => ws = Some(w),
            _ => {}
        }
    }
    ensure!(
        mss == Some(want_mss),
        "MSS {mss:?}, want {want_mss} (client {:?})",
        o.mss
    );
    ensure!(mss.unwrap_or(0) <= client, "MSS above the client's");
    let want_window = (65535 / cmss as u32 * cmss as u32) as u16;
    ensure!(
        tcp.window_size() == want_window,
        "window {}",
        tcp.window_size()
    );
    match (o.tsval, ts) {
        (None, None) if !own => {
            ensure!(
                !sack && ws.is_none(),
                "SACK or window scale without a timestamp"
            );
        }
        (None, None) => {}
        (Some(client_ts), Some((tsval, tsecr))) => {
            ensure!(
                tsecr == client_ts,
                "TS echo {tsecr:#x}, want {client_ts:#x}"
            );
            let bits =
                o.wscale.map(u32::from).unwrap_or(0xf) | (o.sack as u32) << 4 | (ecn as u32) << 5;
            ensure!(
                own || tsval & 0x3f == bits,
                "TSval option bits {:#x}, want {bits:#x}",
                tsval & 0x3f
            );
        }
        (c, r) => return Err(format!("timestamp: client {c:?}, reply {r:?}")),
    }
    // What the options kept: all of them with a timestamp or an own cookie, else MSS only.
    if own || o.tsval.is_some() {
        ensure!(sack == o.sack, "SACK-permitted {sack}, client {}", o.sack);
        let want_ws = o.wscale.map(|_| cfg.wscale as u8);
        ensure!(ws == want_ws, "window scale {ws:?}, want {want_ws:?}");
    }
    let isn = tcp.sequence_number();
    if let Cookie::Own { key, slots } = cookie {
        let kept = CookieOpts {
            mss_class: class,
            wscale: o.wscale,
            sack: o.sack,
            ecn,
        };
        let flow = own_flow(syn);
        let cookie = |slot| own_cookie::make(key, &flow, syn.seq, slot, &kept);
        ensure!(
            own_slots::made_in(slots, isn, cookie),
            "ISN {isn:#010x} is not the own cookie of {kept:?} in slots {slots:?}"
        );
    }
    Ok((isn, ts.map(|t| t.0)))
}

/// The SYN's 4-tuple as the own cookie's hash input.
fn own_flow(syn: &Syn) -> Flow {
    if syn.ipv6 {
        let a = |v: &[u8]| <[u8; 16]>::try_from(v).expect("16-byte IPv6 address");
        Flow::v6(&a(&syn.src), &a(&syn.dst), syn.sport, syn.dport)
    } else {
        let a = |v: &[u8]| <[u8; 4]>::try_from(v).expect("4-byte IPv4 address");
        Flow::v4(a(&syn.src), a(&syn.dst), syn.sport, syn.dport)
    }
}

/// The XDP metadata in front of an own-cookie final ACK (`final_ack`) once it passed, for the
/// TC program: the request socket's attributes as the oracle reads them from the SYN and the
/// reply, written out field by field in the order of the kernel's `struct bpf_tcp_req_attrs`
/// and then ours (`synguard_common::reqsk::OwnAckMeta`), host byte order.
pub fn own_meta(syn: &Syn, answer: Answer, cfg: &Config) -> Vec<u8> {
    let o = host_kept(syn.opts, cfg);
    let (_, mss) = cookie_mss(client_mss(&o, syn.ipv6), syn.ipv6);
    // The final ACK echoes the reply's TSval and sends the client's next one (`final_ack`).
    let ts = match (answer.1, o.tsval) {
        (Some(ecr), Some(v)) => Some((v.wrapping_add(1), ecr)),
        _ => None,
    };
    let ecn = ecn_asked(syn, cfg);
    let (tsval, tsecr) = ts.unwrap_or((0, 0));
    let mut m = Vec::new();
    m.extend(tsval.to_ne_bytes());
    m.extend(tsecr.to_ne_bytes());
    m.extend(mss.to_ne_bytes());
    m.push(o.wscale.map_or(0, |_| cfg.wscale as u8)); // rcv_wscale
    m.push(o.wscale.unwrap_or(0)); // snd_wscale
    m.push(ecn as u8);
    m.push(o.wscale.is_some() as u8);
    m.push(o.sack as u8);
    m.push(ts.is_some() as u8);
    m.extend([0; 4]); // usec_ts_ok, reserved
    m.extend((if syn.ipv6 { 40u16 } else { 20 }).to_ne_bytes()); // TCP from the IP header
    m.extend([syn.ipv6 as u8, 0]);
    m.extend(META_MAGIC.to_ne_bytes());
    m
}

/// The client's final ACK for an answered SYN: seq ISN+1, ack cookie+1 (`ack_delta` added to
/// the ack to tamper with it), echoing the SYN-ACK's TSval. Same L2 header, plain IP header.
pub fn final_ack(syn: &Syn, answer: Answer, ack_delta: u32) -> Vec<u8> {
    let (cookie, tsval) = answer;
    let mut t = Vec::new();
    t.extend(syn.sport.to_be_bytes());
    t.extend(syn.dport.to_be_bytes());
    t.extend(syn.seq.wrapping_add(1).to_be_bytes());
    t.extend((cookie.wrapping_add(1) ^ ack_delta).to_be_bytes());
    let opts: Vec<u8> = match (tsval, syn.opts.tsval) {
        (Some(ecr), Some(v)) => {
            let mut o = vec![1, 1, 8, 10];
            o.extend(v.wrapping_add(1).to_be_bytes());
            o.extend(ecr.to_be_bytes());
            o
        }
        _ => Vec::new(),
    };
    t.push((((20 + opts.len()) / 4) as u8) << 4);
    t.push(ACK);
    t.extend(502u16.to_be_bytes());
    t.extend([0, 0, 0, 0]);
    t.extend(opts);
    let c = !sum16(&t, pseudo_sum(&syn.src, &syn.dst, t.len())) as u16;
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = syn.l2.clone();
    if syn.ipv6 {
        f.extend([0x60, 0, 0, 0]);
        f.extend((t.len() as u16).to_be_bytes());
        f.extend([6, 64]);
    } else {
        let mut h = vec![0x45, 0];
        h.extend(((20 + t.len()) as u16).to_be_bytes());
        h.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
        h.extend(&syn.src);
        h.extend(&syn.dst);
        let c = !sum16(&h, 0) as u16;
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(h);
        f.extend(t);
        return f;
    }
    f.extend(&syn.src);
    f.extend(&syn.dst);
    f.extend(t);
    f
}
