//! Fixture tables for everything that is not a cookie handshake: the compiled synguard XDP
//! program run by the kernel (BPF_PROG_TEST_RUN) on flag combinations, foreign and malformed
//! traffic and IPv6 extension headers, with the verdict counters each packet lands in.
//!
//! Needs root (loading BPF programs); run through `cargo xtask test`.

use etherparse::IpNumber;
use synguard_common::{
    reason::{REASONS, Reason},
    tcp::{ACK, FIN, PSH, RST, SYN, URG},
};
use synguard_lab::testrun::{
    fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX},
    frames::{self, *},
};

mod common;
use common::PORT;
use common::syn::*;

fn fixture() -> Fixture {
    common::testrun_fixture(&[PORT, 443])
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
