//! Fixture tables: the compiled synguard XDP program run by the kernel (BPF_PROG_TEST_RUN) on
//! crafted frames. Asserts verdicts, exact output bytes (expected frames are built here with
//! etherparse, whose checksum code is independent of synguard's) and counters.
//!
//! Needs root (loading BPF programs); run through `cargo xtask test`.

use std::time::Duration;

use etherparse::{IpNumber, Ipv4HeaderSlice, SlicedPacket, TcpOptionElement, TransportSlice};
use synguard_common::{
    maps::{Config, MODE_AUTO, SYN_WINDOW_NS},
    reason::{Event, REASONS, Reason},
    tcp::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG},
};
use synguard_lab::{
    fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX, default_config},
    frames::{self, *},
};

const PORT: u16 = 80;
const CLIENT_PORT: u16 = 40000;
const ISN: u32 = 0x1234_5678;

fn fixture() -> Fixture {
    Fixture::new(default_config(), &[PORT, 443]).expect("load synguard (needs root)")
}

/// The kernel's cookie MSS tables (`msstab` in net/ipv4/syncookies.c and net/ipv6/syncookies.c):
/// the cookie carries the largest entry not above the client's MSS (the first entry if none).
fn cookie_mss(client: u16, ipv6: bool) -> u16 {
    let table: [u16; 4] = if ipv6 {
        [1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60]
    } else {
        [536, 1300, 1440, 1460]
    };
    *table
        .iter()
        .rev()
        .find(|&&m| client >= m)
        .unwrap_or(&table[0])
}

fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain libc call with a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// A client SYN as the fixtures send it.
struct Syn {
    tags: Tags,
    ipv6: bool,
    mss: Option<u16>,
    tsval: Option<u32>,
    sack: bool,
    wscale: Option<u8>,
    ecn: bool,
}

impl Syn {
    fn linux(tags: Tags, ipv6: bool) -> Self {
        Syn {
            tags,
            ipv6,
            mss: Some(1460),
            tsval: Some(0x0a0b_0c0d),
            sack: true,
            wscale: Some(7),
            ecn: false,
        }
    }

    fn options(&self) -> Vec<TcpOptionElement> {
        let mut o = Vec::new();
        if let Some(m) = self.mss {
            o.push(TcpOptionElement::MaximumSegmentSize(m));
        }
        if self.sack {
            o.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
        }
        if let Some(t) = self.tsval {
            o.push(TcpOptionElement::Timestamp(t, 0));
        }
        if let Some(w) = self.wscale {
            o.push(TcpOptionElement::Noop);
            o.push(TcpOptionElement::WindowScale(w));
        }
        o
    }

    fn segment(&self) -> Segment {
        let mut s = Segment::syn(CLIENT_PORT, PORT, ISN, self.options());
        if self.ecn {
            s.flags |= ECE | CWR;
        }
        s
    }

    fn frame(&self) -> Vec<u8> {
        if self.ipv6 {
            client_syn_v6(self.tags, &self.segment())
        } else {
            client_syn_v4(self.tags, &self.segment())
        }
    }

    /// The SYN-ACK synguard must send, given the cookie and TSval it chose (the two values that
    /// depend on the kernel's secret and clock; both are checked separately).
    fn expected_synack(&self, cookie: u32, tsval: u32) -> Vec<u8> {
        let cfg = default_config();
        let cmss = cookie_mss(self.mss.unwrap_or(0), self.ipv6);
        let default_mss = if self.ipv6 { 1220 } else { 536 };
        let cap = if self.ipv6 { cfg.mss_v6 } else { cfg.mss_v4 } as u16;
        let mss = cmss.min(self.mss.unwrap_or(default_mss)).min(cap);
        let mut opts = vec![TcpOptionElement::MaximumSegmentSize(mss)];
        let with_ts = self.tsval.is_some();
        if let Some(client_ts) = self.tsval {
            if self.sack {
                opts.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
            } else {
                opts.push(TcpOptionElement::Noop);
                opts.push(TcpOptionElement::Noop);
            }
            opts.push(TcpOptionElement::Timestamp(tsval, client_ts));
            if self.wscale.is_some() {
                opts.push(TcpOptionElement::Noop);
                opts.push(TcpOptionElement::WindowScale(cfg.wscale as u8));
            }
        }
        let window = (65535 / cmss as u32 * cmss as u32) as u16;
        let mut seg = Segment {
            sport: PORT,
            dport: CLIENT_PORT,
            seq: cookie,
            ack: ISN.wrapping_add(1),
            flags: SYN | ACK,
            window,
            options: opts,
            payload: Vec::new(),
        };
        if self.ecn && with_ts {
            seg.flags |= ECE;
        }
        let macs = (SERVER_MAC, CLIENT_MAC);
        if self.ipv6 {
            tcp_v6(SERVER_V6, CLIENT_V6, self.tags, macs, &seg)
        } else {
            // Built by hand below rather than by `tcp_v4`: the SYN-ACK's IPv4 ID is 0 and DF set,
            // which `tcp_v4` also does; TTL 64.
            tcp_v4(SERVER_V4, CLIENT_V4, self.tags, macs, &seg)
        }
    }

    /// The TSval's low six bits, as `cookie_init_timestamp` encodes the client's options.
    fn expected_ts_bits(&self) -> u32 {
        let ws = self.wscale.map(|w| w as u32).unwrap_or(0xf);
        let ecn = self.ecn && self.tsval.is_some();
        ws | (self.sack as u32) << 4 | (ecn as u32) << 5
    }
}

fn l2_len(tags: Tags) -> usize {
    match tags {
        Tags::None => 14,
        Tags::Dot1q(_) => 18,
        Tags::QinQ(..) => 22,
    }
}

/// (cookie, TSval if any) read from a SYN-ACK frame.
fn cookie_and_tsval(frame: &[u8], tags: Tags) -> (u32, Option<u32>) {
    let p = SlicedPacket::from_ethernet(frame).expect("SYN-ACK parses");
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("SYN-ACK has no TCP header");
    };
    let ts = tcp.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::Timestamp(v, _)) => Some(v),
        _ => None,
    });
    let _ = tags;
    (tcp.sequence_number(), ts)
}

/// Verifies IPv4 header and TCP checksums of a frame with etherparse's own code.
fn assert_checksums(frame: &[u8]) {
    let p = SlicedPacket::from_ethernet(frame).expect("frame parses");
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("no TCP");
    };
    match p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let hs = Ipv4HeaderSlice::from_slice(h.slice()).unwrap();
            assert_eq!(
                hs.to_header().calc_header_checksum(),
                hs.header_checksum(),
                "IPv4 header checksum"
            );
            let c = tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap();
            assert_eq!(c, tcp.checksum(), "TCP checksum over IPv4");
        }
        Some(etherparse::NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let c = tcp.calc_checksum_ipv6(h.source(), h.destination()).unwrap();
            assert_eq!(c, tcp.checksum(), "TCP checksum over IPv6");
        }
        other => panic!("unexpected network layer {other:?}"),
    }
}

/// The final ACK of a client that got `synack`: seq ISN+1, ack cookie+1, echoing the TSval.
fn final_ack(syn: &Syn, synack: &[u8]) -> Vec<u8> {
    let (cookie, tsval) = cookie_and_tsval(synack, syn.tags);
    let mut opts = Vec::new();
    if let Some(ts) = tsval {
        opts.push(TcpOptionElement::Noop);
        opts.push(TcpOptionElement::Noop);
        opts.push(TcpOptionElement::Timestamp(syn.tsval.unwrap() + 1, ts));
    }
    let seg = Segment {
        sport: CLIENT_PORT,
        dport: PORT,
        seq: ISN.wrapping_add(1),
        ack: cookie.wrapping_add(1),
        flags: ACK,
        window: 502,
        options: opts,
        payload: Vec::new(),
    };
    if syn.ipv6 {
        client_syn_v6(syn.tags, &seg)
    } else {
        client_syn_v4(syn.tags, &seg)
    }
}

#[test]
fn syn_gets_an_exact_cookie_synack_and_its_ack_is_accepted() {
    let f = fixture();
    let tag_cases = [Tags::None, Tags::Dot1q(100), Tags::QinQ(200, 300)];
    let mut variants = Vec::new();
    for ipv6 in [false, true] {
        for tags in tag_cases {
            variants.push(Syn::linux(tags, ipv6));
            // No timestamp: MSS only, no window scaling, no SACK.
            variants.push(Syn {
                tsval: None,
                ..Syn::linux(tags, ipv6)
            });
        }
        // Timestamp without SACK and without window scale.
        variants.push(Syn {
            sack: false,
            wscale: None,
            ..Syn::linux(Tags::None, ipv6)
        });
        // No options at all: the default MSS.
        variants.push(Syn {
            mss: None,
            tsval: None,
            sack: false,
            wscale: None,
            ..Syn::linux(Tags::None, ipv6)
        });
        // ECN requested with a timestamp: ECE on the SYN-ACK, ECN bit in the TSval.
        variants.push(Syn {
            ecn: true,
            ..Syn::linux(Tags::Dot1q(7), ipv6)
        });
        // Client window scale above 14: the kernel clamps it.
        variants.push(Syn {
            wscale: Some(14),
            mss: Some(1300),
            ..Syn::linux(Tags::None, ipv6)
        });
    }
    let mut sent = 0;
    for syn in &variants {
        let frame = syn.frame();
        let before_ms = monotonic_ms();
        let out = f.run(&frame).unwrap();
        let what = format!(
            "ipv6={} tags={:?} mss={:?} ts={:?} sack={} ws={:?} ecn={}",
            syn.ipv6, syn.tags, syn.mss, syn.tsval, syn.sack, syn.wscale, syn.ecn
        );
        assert_eq!(out.action, XDP_TX, "{what}");
        sent += 1;
        assert_checksums(&out.frame);
        let (cookie, tsval) = cookie_and_tsval(&out.frame, syn.tags);
        assert_eq!(tsval.is_some(), syn.tsval.is_some(), "{what}");
        if let Some(ts) = tsval {
            assert_eq!(
                ts & 0x3f,
                syn.expected_ts_bits(),
                "TSval option bits, {what}"
            );
            let now = monotonic_ms() as u32;
            assert!(
                ts <= now && before_ms as u32 - ts < 128,
                "TSval {ts} is the kernel's ms clock ({before_ms}..{now}), {what}"
            );
        }
        let want = syn.expected_synack(cookie, tsval.unwrap_or(0));
        assert_eq!(out.frame, want, "SYN-ACK bytes, {what}");
        assert_eq!(out.frame[..l2_len(syn.tags)].len(), l2_len(syn.tags));

        // The client's final ACK carries a cookie the kernel's own checker accepts.
        let ack = final_ack(syn, &out.frame);
        let a = f.run(&ack).unwrap();
        assert_eq!(a.action, XDP_PASS, "final ACK, {what}");
        assert_eq!(a.frame, ack, "a passed frame is untouched");
    }
    assert_eq!(f.verdict(Reason::TxSynAckCookie).unwrap(), sent);
    assert_eq!(f.verdict(Reason::PassCookieAck).unwrap(), sent);
    assert_eq!(f.event(Event::CookieSent).unwrap(), sent);
    assert_eq!(f.event(Event::CookieAckAccepted).unwrap(), sent);
    assert_eq!(f.event(Event::SynProtected).unwrap(), sent);
}

#[test]
fn ack_with_a_wrong_cookie_is_dropped() {
    let f = fixture();
    let syn = Syn::linux(Tags::None, false);
    let out = f.run(&syn.frame()).unwrap();
    assert_eq!(out.action, XDP_TX);
    let good = final_ack(&syn, &out.frame);
    let mut cases = Vec::new();
    // Ack number off by one, and a random one: bogus ACKs of an ACK flood.
    for delta in [1u32, 0x1000_0000] {
        let (cookie, _) = cookie_and_tsval(&out.frame, syn.tags);
        let seg = Segment {
            sport: CLIENT_PORT,
            dport: PORT,
            seq: ISN.wrapping_add(1),
            ack: cookie.wrapping_add(1).wrapping_add(delta),
            flags: ACK,
            window: 502,
            options: vec![],
            payload: vec![],
        };
        cases.push(client_syn_v4(Tags::None, &seg));
        cases.push(client_syn_v6(Tags::QinQ(1, 2), &seg));
    }
    // Right ack number, wrong sequence number (the cookie hashes the client's ISN).
    let mut wrong_seq = good.clone();
    let seq_at = 14 + 20 + 4;
    wrong_seq[seq_at + 3] ^= 1;
    let frame = refresh_v4_checksum(wrong_seq);
    cases.push(frame);
    for c in &cases {
        let r = f.run(c).unwrap();
        assert_eq!(r.action, XDP_DROP);
    }
    assert_eq!(
        f.verdict(Reason::DropAckBadCookie).unwrap(),
        cases.len() as u64
    );
    assert_eq!(f.verdict(Reason::PassCookieAck).unwrap(), 0);
}

/// Recomputes the TCP checksum of an untagged IPv4 frame after a test edited it.
fn refresh_v4_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let c = {
        let p = SlicedPacket::from_ethernet(&frame).unwrap();
        let (Some(TransportSlice::Tcp(tcp)), Some(etherparse::NetSlice::Ipv4(ip))) =
            (p.transport, p.net)
        else {
            panic!("not an IPv4 TCP frame")
        };
        tcp.calc_checksum_ipv4(ip.header().source(), ip.header().destination())
            .unwrap()
    };
    frame[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&c.to_be_bytes());
    frame
}

/// A segment to the protected port with these flags.
fn flagged(flags: u8, ipv6: bool) -> Vec<u8> {
    let mut seg = Segment::syn(CLIENT_PORT, PORT, ISN, vec![]);
    seg.flags = flags;
    seg.ack = if flags & ACK != 0 { 99 } else { 0 };
    if ipv6 {
        client_syn_v6(Tags::None, &seg)
    } else {
        client_syn_v4(Tags::None, &seg)
    }
}

#[test]
fn flag_table() {
    let f = fixture();
    let table: [(u8, u32, Reason); 9] = [
        (SYN | FIN, XDP_DROP, Reason::DropSynFin),
        (SYN | RST, XDP_DROP, Reason::DropSynRst),
        (SYN | FIN | PSH | URG, XDP_DROP, Reason::DropSynFin),
        (0, XDP_DROP, Reason::DropNoFlags),
        (FIN | PSH | URG, XDP_DROP, Reason::DropNoAck),
        (FIN, XDP_DROP, Reason::DropNoAck),
        (RST, XDP_PASS, Reason::PassRst),
        (RST | ACK, XDP_PASS, Reason::PassRst),
        (SYN | ACK, XDP_PASS, Reason::PassSynAck),
    ];
    for ipv6 in [false, true] {
        for (flags, action, reason) in table {
            let before = f.verdict(reason).unwrap();
            let frame = flagged(flags, ipv6);
            let out = f.run(&frame).unwrap();
            assert_eq!(out.action, action, "flags {flags:#04x} ipv6={ipv6}");
            assert_eq!(f.verdict(reason).unwrap(), before + 1, "{reason:?}");
            if action == XDP_PASS {
                assert_eq!(out.frame, frame);
            }
        }
    }
}

#[test]
fn traffic_that_is_not_ours_passes_untouched() {
    let f = fixture();
    let mut cases: Vec<(Vec<u8>, Reason)> = Vec::new();
    // SYN to a port that is not protected.
    let seg = Segment::syn(CLIENT_PORT, 8080, ISN, linux_syn_options(1460, 1, 7));
    cases.push((client_syn_v4(Tags::None, &seg), Reason::PassUnprotectedPort));
    cases.push((
        client_syn_v6(Tags::Dot1q(5), &seg),
        Reason::PassUnprotectedPort,
    ));
    // ARP.
    let mut arp = frames::l2(CLIENT_MAC, SERVER_MAC, Tags::None, 0x0806);
    arp.extend_from_slice(&[0u8; 28]);
    cases.push((arp, Reason::PassNotIp));
    // UDP to port 80.
    let mut udp = frames::l2(CLIENT_MAC, SERVER_MAC, Tags::None, 0x0800);
    let ip = etherparse::Ipv4Header::new(8, 64, IpNumber::UDP, CLIENT_V4, SERVER_V4).unwrap();
    ip.write(&mut udp).unwrap();
    udp.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 8, 0, 0]);
    cases.push((udp, Reason::PassNotTcp));
    for (frame, reason) in &cases {
        let before = f.verdict(*reason).unwrap();
        let out = f.run(frame).unwrap();
        assert_eq!(out.action, XDP_PASS, "{reason:?}");
        assert_eq!(&out.frame, frame, "{reason:?}");
        assert_eq!(f.verdict(*reason).unwrap(), before + 1, "{reason:?}");
    }
}

#[test]
fn malformed_and_fragmented_frames_pass_counted_never_answered() {
    let f = fixture();
    let syn = Syn::linux(Tags::None, false).frame();
    let syn6 = Syn::linux(Tags::None, true).frame();
    let mut cases: Vec<(&str, Vec<u8>, Reason)> = Vec::new();

    // Truncations at every layer.
    cases.push((
        "VLAN tag cut",
        {
            let mut v = frames::l2(CLIENT_MAC, SERVER_MAC, Tags::None, 0x8100);
            v.extend_from_slice(&[0, 1]);
            v
        },
        Reason::PassMalformedL2,
    ));
    cases.push((
        "IPv4 header cut",
        syn[..14 + 12].to_vec(),
        Reason::PassMalformedIp,
    ));
    cases.push((
        "IPv6 header cut",
        syn6[..14 + 30].to_vec(),
        Reason::PassMalformedIp,
    ));
    cases.push((
        "TCP header cut",
        syn[..14 + 20 + 10].to_vec(),
        Reason::PassMalformedIp,
    ));
    // IP total length says more than the frame holds.
    let mut long = syn.clone();
    long[14 + 2] = 0x05;
    cases.push((
        "IPv4 total length past the frame",
        long,
        Reason::PassMalformedIp,
    ));
    // IHL below 5.
    let mut ihl = syn.clone();
    ihl[14] = 0x44;
    cases.push(("IPv4 IHL 4", ihl, Reason::PassMalformedIp));
    // Version field wrong.
    let mut ver = syn.clone();
    ver[14] = 0x65;
    cases.push(("IPv4 frame with version 6", ver, Reason::PassMalformedIp));
    // TCP data offset below 5, and past the IP payload.
    let mut doff = syn.clone();
    doff[14 + 20 + 12] = 0x40;
    cases.push(("TCP doff 4", doff, Reason::PassMalformedTcp));
    let mut doff = syn.clone();
    doff[14 + 20 + 12] = 0xf0;
    cases.push((
        "TCP doff 15 past the packet",
        doff,
        Reason::PassMalformedTcp,
    ));
    // IPv4 fragments: first (MF) and later (offset).
    let mut mf = syn.clone();
    mf[14 + 6] |= 0x20;
    cases.push(("IPv4 first fragment", mf, Reason::PassFragment));
    let mut off = syn.clone();
    off[14 + 7] = 0x10;
    cases.push(("IPv4 later fragment", off, Reason::PassFragment));
    // IPv6 fragment header.
    let seg = Syn::linux(Tags::None, true).segment();
    let frag_hdr = [6u8, 0, 0, 1, 0, 0, 0, 1];
    cases.push((
        "IPv6 fragment header",
        client_v6_ext(&seg, &frag_hdr, IpNumber::IPV6_FRAGMENTATION_HEADER),
        Reason::PassFragment,
    ));
    // Five destination-options headers: more than the program walks.
    let mut ext = Vec::new();
    for i in 0..5 {
        let next = if i == 4 { 6 } else { 60 };
        ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    cases.push((
        "IPv6 with five extension headers",
        client_v6_ext(&seg, &ext, IpNumber::IPV6_DESTINATION_OPTIONS),
        Reason::PassIpv6ExtLimit,
    ));
    // Three VLAN tags: not a frame we parse.
    let mut three = frames::l2(CLIENT_MAC, SERVER_MAC, Tags::QinQ(1, 2), 0x8100);
    three.extend_from_slice(&[0, 3, 0x08, 0x00]);
    three.extend_from_slice(&syn[14..]);
    cases.push(("three VLAN tags", three, Reason::PassNotIp));

    for (what, frame, reason) in &cases {
        let before = f.verdict(*reason).unwrap();
        let out = f.run(frame).unwrap();
        assert_eq!(out.action, XDP_PASS, "{what}");
        assert_eq!(&out.frame, frame, "{what}: passed frames are untouched");
        assert_eq!(
            f.verdict(*reason).unwrap(),
            before + 1,
            "{what}: {reason:?}"
        );
    }
    assert_eq!(f.verdict(Reason::TxSynAckCookie).unwrap(), 0);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let f = fixture();
    let syn = Syn::linux(Tags::Dot1q(9), true);
    let seg = syn.segment();
    // Hop-by-hop, routing (type 0 with no addresses, segments left 0), destination options.
    let mut ext = Vec::new();
    ext.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]);
    ext.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
    ext.extend_from_slice(&[6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let frame = tcp_v6_ext(
        CLIENT_V6,
        SERVER_V6,
        Tags::Dot1q(9),
        (CLIENT_MAC, SERVER_MAC),
        &seg,
        &ext,
        IpNumber::IPV6_HEADER_HOP_BY_HOP,
    );
    let out = f.run(&frame).unwrap();
    assert_eq!(out.action, XDP_TX);
    assert_checksums(&out.frame);
    // The reply has no extension headers.
    let (cookie, ts) = cookie_and_tsval(&out.frame, syn.tags);
    assert_eq!(out.frame, syn.expected_synack(cookie, ts.unwrap()));
}

#[test]
fn syn_with_payload_and_ip_options_gets_a_clean_synack() {
    let f = fixture();
    let syn = Syn::linux(Tags::None, false);
    let mut seg = syn.segment();
    seg.payload = vec![0xab; 300];
    let frame = client_syn_v4(Tags::None, &seg);
    let out = f.run(&frame).unwrap();
    assert_eq!(out.action, XDP_TX);
    let (cookie, ts) = cookie_and_tsval(&out.frame, syn.tags);
    assert_eq!(out.frame, syn.expected_synack(cookie, ts.unwrap()));

    // IPv4 options (a 4-byte NOP/EOL block): the reply carries none.
    let mut tcp = syn.segment().header();
    let mut ip = frames::ipv4_header(CLIENT_V4, SERVER_V4, tcp.header_len(), 64);
    ip.options = [1u8, 1, 1, 0][..].try_into().unwrap();
    ip.total_len = (24 + tcp.header_len()) as u16;
    ip.header_checksum = ip.calc_header_checksum();
    tcp.checksum = tcp.calc_checksum_ipv4(&ip, &[]).unwrap();
    let mut frame = frames::l2(CLIENT_MAC, SERVER_MAC, Tags::None, 0x0800);
    ip.write(&mut frame).unwrap();
    tcp.write(&mut frame).unwrap();
    let out = f.run(&frame).unwrap();
    assert_eq!(out.action, XDP_TX);
    let (cookie, ts) = cookie_and_tsval(&out.frame, syn.tags);
    assert_eq!(out.frame, syn.expected_synack(cookie, ts.unwrap()));
}

#[test]
fn no_cookies_until_the_kernel_is_ready_then_one_refresh_per_listener() {
    let mut f = fixture();
    f.set_ready(false, 0).unwrap();
    let syn = Syn::linux(Tags::None, false).frame();
    let syn6 = Syn::linux(Tags::None, true).frame();
    let out = f.run(&syn).unwrap();
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(out.frame, syn);
    assert_eq!(f.verdict(Reason::PassSynToKernel).unwrap(), 1);

    // Ready now, refresh every 10 s: the first SYN per (port, family) goes to the kernel.
    let mut cfg = default_config();
    cfg.refresh_ns = 10_000_000_000;
    f.set_config(cfg).unwrap();
    f.set_ready(true, monotonic_ms() * 1_000_000).unwrap();
    let seq = [
        (&syn, XDP_PASS),
        (&syn, XDP_TX),
        (&syn6, XDP_PASS),
        (&syn6, XDP_TX),
        (&syn, XDP_TX),
    ];
    for (frame, action) in seq {
        assert_eq!(f.run(frame).unwrap().action, action);
    }
    assert_eq!(f.verdict(Reason::PassSynListenerRefresh).unwrap(), 2);
    assert_eq!(f.verdict(Reason::TxSynAckCookie).unwrap(), 3);
}

#[test]
fn auto_mode_passes_quiet_syns_and_turns_cookies_on_under_a_flood() {
    let mut f = fixture();
    let mut cfg = default_config();
    cfg.mode = MODE_AUTO;
    // One SYN in a window is 10 SYN/s: on at 10, off below 10 after 1 ms.
    cfg.syn_on_pps = 10;
    cfg.syn_off_pps = 10;
    cfg.hold_ns = 1_000_000;
    f.set_config(cfg).unwrap();
    let syn = Syn::linux(Tags::None, false).frame();

    assert_eq!(f.run(&syn).unwrap().action, XDP_PASS);
    assert_eq!(f.verdict(Reason::PassSynToKernel).unwrap(), 1);
    // Once a closed window held a SYN (10 SYN/s), the next window's first SYN turns cookies on
    // and is itself answered with one.
    let action = f
        .drive_until(
            &syn,
            Duration::from_millis(20),
            Duration::from_secs(5),
            |f| Ok(f.event(Event::CookieModeOn)? == 1),
        )
        .unwrap();
    assert_eq!(action, XDP_TX, "the SYN that turned cookies on got one");
    // After two empty windows the rate has been below the off threshold for longer than the hold
    // time: cookies off, the SYN goes to the kernel.
    std::thread::sleep(Duration::from_nanos(3 * SYN_WINDOW_NS));
    assert_eq!(f.run(&syn).unwrap().action, XDP_PASS);
    assert_eq!(f.event(Event::CookieModeOff).unwrap(), 1);
}

#[test]
fn every_packet_lands_in_exactly_one_verdict_counter() {
    let f = fixture();
    let frames = [
        Syn::linux(Tags::None, false).frame(),
        Syn::linux(Tags::QinQ(1, 2), true).frame(),
        flagged(SYN | FIN, false),
        flagged(ACK, true),
        flagged(RST, false),
    ];
    let mut bytes = 0;
    for fr in &frames {
        f.run(fr).unwrap();
        bytes += fr.len() as u64;
    }
    let total: u64 = f.verdicts().unwrap().iter().sum();
    assert_eq!(total, frames.len() as u64);
    let counted_bytes: u64 = REASONS.iter().map(|r| f.counter(*r).unwrap().bytes).sum();
    assert_eq!(counted_bytes, bytes, "bytes are counted as received");
}

#[test]
fn a_syn_reusing_a_recently_closed_connection_goes_to_the_kernel() {
    // A real connection on loopback: BPF_PROG_TEST_RUN runs XDP on this netns's loopback, so
    // the program's socket lookup finds it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_server, _) = listener.accept().unwrap();
    let cport = client.local_addr().unwrap().port();
    let cfg = Config {
        loopback: 1,
        ..default_config()
    };
    let f = Fixture::new(cfg, &[port]).expect("load synguard (needs root)");
    let lo = [127, 0, 0, 1];
    let seg = |sport: u16, flags: u8| Segment {
        sport,
        dport: port,
        seq: 1,
        ack: 1,
        flags,
        window: 512,
        options: vec![],
        payload: vec![],
    };
    let frame = |s: &Segment| frames::tcp_v4(lo, lo, Tags::None, (CLIENT_MAC, SERVER_MAC), s);
    let syn = |sport: u16| {
        frame(&Segment::syn(
            sport,
            port,
            77,
            frames::linux_syn_options(1460, 5, 7),
        ))
    };

    // The client closes: its FIN belongs to a socket and passes.
    let fin = frame(&seg(cport, FIN | ACK));
    assert_eq!(f.run(&fin).unwrap().action, XDP_PASS);
    assert_eq!(f.verdict(Reason::PassEstablished).unwrap(), 1);
    // A new handshake on the same 4-tuple reaches the kernel as a SYN, where a TIME_WAIT socket
    // would be recycled.
    let again = syn(cport);
    let out = f.run(&again).unwrap();
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(out.frame, again);
    assert_eq!(f.verdict(Reason::PassSynRecentClose).unwrap(), 1);
    // Any other 4-tuple still gets a cookie.
    let other = cport.wrapping_add(1).max(1024);
    assert_eq!(f.run(&syn(other)).unwrap().action, XDP_TX);
    // A FIN with no socket behind it (spoofed) is an ACK-flood packet and records nothing.
    let spoofed = 61000;
    assert_eq!(
        f.run(&frame(&seg(spoofed, FIN | ACK))).unwrap().action,
        XDP_DROP
    );
    assert_eq!(f.run(&syn(spoofed)).unwrap().action, XDP_TX);
    drop(client);
}
