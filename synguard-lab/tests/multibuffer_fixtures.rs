//! Jumbo frames on crafted input (BPF_PROG_TEST_RUN): synguard's XDP programs are multi-buffer
//! ones (`xdp.frags`), and a frame longer than the first buffer reaches them split over several
//! buffers, here as on a veth or a NIC with a jumbo MTU (the kernel's test run puts what does not
//! fit in the first page's buffer into further pages). Such frames must meet the same verdicts as
//! short ones, come out byte for byte as they came when they pass, and be counted with every
//! byte. Root (`cargo xtask test`).

use etherparse::{IpNumber, UdpHeader};
use synguard::host::clock::monotonic_ns;
use synguard_common::{
    maps::Config,
    reason::{Event, Reason},
    tcp::ACK,
};
use synguard_lab::testrun::{
    fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX, default_config},
    frames::{self, *},
};

mod common;
use common::syn::*;
use common::{PORT, own_config};

const HOUR: u64 = 3_600_000_000_000;
/// More than a page: the kernel's test run keeps at most a page's buffer (less head- and
/// tailroom) in the first buffer and puts the rest in fragments.
const JUMBO_PAYLOAD: usize = 8900;

fn fixture(cfg: Config) -> Fixture {
    common::testrun_fixture_with_secret(cfg)
}

/// A data segment of the client's connection, `len` bytes of payload, no cookie in its ack.
fn data_segment(ipv6: bool, len: usize) -> Vec<u8> {
    let seg = Segment {
        sport: CLIENT_PORT,
        dport: PORT,
        seq: ISN.wrapping_add(1),
        ack: 0x0bad_c0de,
        flags: ACK,
        window: 502,
        options: vec![],
        payload: vec![0x5a; len],
    };
    if ipv6 {
        client_syn_v6(Tags::None, &seg)
    } else {
        client_syn_v4(Tags::None, &seg)
    }
}

/// A Linux client's SYN carrying a jumbo payload (TCP Fast Open data, say), and its frame.
fn jumbo_syn(ipv6: bool) -> (Syn, Vec<u8>) {
    let syn = Syn::linux(Tags::None, ipv6);
    let mut seg = syn.segment();
    seg.payload = vec![0xab; JUMBO_PAYLOAD];
    let frame = if ipv6 {
        client_syn_v6(Tags::None, &seg)
    } else {
        client_syn_v4(Tags::None, &seg)
    };
    (syn, frame)
}

#[test]
fn a_jumbo_segment_of_a_connection_passes_whole_and_a_stray_one_is_dropped() {
    for (name, cfg) in [("kernel", default_config()), ("own", own_config())] {
        let mut f = fixture(cfg);
        f.set_conns_state(monotonic_ns() + HOUR).unwrap();
        for ipv6 in [false, true] {
            let frame = data_segment(ipv6, JUMBO_PAYLOAD);
            // No connection, no cookie: an ACK flood's packet, however long.
            let out = f.run(&frame).unwrap();
            assert_eq!(out.action, XDP_DROP, "{name} ipv6={ipv6}");
            f.stamp_conn(&frame, monotonic_ns()).unwrap();
            let out = f.run(&frame).unwrap();
            assert_eq!(out.action, XDP_PASS, "{name} ipv6={ipv6}");
            assert!(out.frame == frame, "{name} ipv6={ipv6}: frame changed");
        }
        let frames: u64 = [false, true]
            .iter()
            .map(|&v6| data_segment(v6, JUMBO_PAYLOAD).len() as u64)
            .sum();
        let est = f.counter(Reason::PassEstablished).unwrap();
        assert_eq!((est.packets, est.bytes), (2, frames), "{name}: every byte");
        let bad = f.counter(Reason::DropAckBadCookie).unwrap();
        assert_eq!((bad.packets, bad.bytes), (2, frames), "{name}: every byte");
        assert_eq!(f.verdict(Reason::PassMalformedIp).unwrap(), 0, "{name}");
    }
}

#[test]
fn a_syn_carrying_a_jumbo_payload_gets_the_same_synack_as_a_bare_one() {
    for ipv6 in [false, true] {
        let f = fixture(default_config());
        let (syn, frame) = jumbo_syn(ipv6);
        let out = f.run(&frame).unwrap();
        assert_eq!(out.action, XDP_TX, "ipv6={ipv6}");
        let (cookie, ts) = cookie_and_tsval(&out.frame, syn.tags);
        assert_eq!(
            out.frame,
            syn.expected_synack(cookie, ts.unwrap()),
            "ipv6={ipv6}"
        );
        let c = f.counter(Reason::TxSynAckCookie).unwrap();
        assert_eq!(
            (c.packets, c.bytes),
            (1, frame.len() as u64),
            "the SYN's bytes"
        );
    }
}

#[test]
fn own_cookies_answer_a_jumbo_syn_and_accept_its_jumbo_final_ack() {
    let mut f = fixture(own_config());
    for ipv6 in [false, true] {
        let (syn, frame) = jumbo_syn(ipv6);
        let out = f.run(&frame).unwrap();
        assert_eq!(out.action, XDP_TX, "ipv6={ipv6}");
        assert_checksums(&out.frame);
        // The reply is the SYN-ACK alone, in the first buffer.
        assert_eq!(out.frame.len(), f.run(&syn.frame()).unwrap().frame.len());
        // The handshake's last ACK carrying a jumbo segment of data: passed on to TC, whole.
        let ack = data_after_handshake(&syn, &out.frame, 0, JUMBO_PAYLOAD);
        let out = f.run(&ack).unwrap();
        assert_eq!(out.action, XDP_PASS, "ipv6={ipv6}");
        // Behind the mark for TC in the metadata area (the test run's output starts there).
        assert!(out.frame.ends_with(&ack), "ipv6={ipv6}: frame changed");
        f.clear_conn(&ack).unwrap();
    }
    assert_eq!(f.verdict(Reason::PassCookieAck).unwrap(), 2);
    assert_eq!(f.event(Event::OwnCookieAckMarked).unwrap(), 2);
    assert_eq!(f.verdict(Reason::TxSynAckCookie).unwrap(), 4);
}

/// A SYN whose first buffer ends right after its headers, shorter than its SYN-ACK (which
/// always carries an MSS option; this SYN has none): the reply cannot be written there, so the
/// SYN goes to the kernel untouched, counted as the program's own limit.
#[test]
fn a_jumbo_syn_whose_first_buffer_cannot_hold_the_reply_goes_to_the_kernel() {
    let f = fixture(own_config());
    let syn = Syn {
        mss: None,
        sack: false,
        ..Syn::linux(Tags::None, false)
    };
    let mut seg = syn.segment();
    seg.payload = vec![0xab; JUMBO_PAYLOAD];
    let frame = client_syn_v4(Tags::None, &seg);
    let headers = 14 + 20 + seg.header().header_len();
    let out = match f.run_split(&frame, headers as u32) {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "skipped: this kernel's test run does not take a first buffer shorter than a \
                 page ({e:#})"
            );
            return;
        }
    };
    assert_eq!(out.action, XDP_PASS);
    assert!(out.frame == frame, "frame changed");
    assert_eq!(f.verdict(Reason::ErrSynShortBuffer).unwrap(), 1);
    assert_eq!(f.verdict(Reason::TxSynAckCookie).unwrap(), 0);
}

/// A SYN whose buffers after the first hold no part of its IP packet, only bytes behind it (an
/// Ethernet trailer here; a header-split NIC's data buffer behind a SYN's headers): the
/// SYN-ACK is the same as for the bare SYN, with none of those bytes behind it. The program
/// had measured such a frame by its first buffer, and its reply went out with the trailer's
/// bytes beyond the first buffer (found by the fuzzer's split frames).
#[test]
fn a_syn_with_a_trailer_in_its_other_buffers_gets_a_synack_without_it() {
    for cookies in [default_config(), own_config()] {
        for ipv6 in [false, true] {
            let f = fixture(cookies);
            let syn = Syn::linux(Tags::None, ipv6);
            let bare = syn.frame();
            let reply = f.run(&bare).unwrap().frame;
            for (trailer, first) in [(1, 0), (6, 3), (JUMBO_PAYLOAD, 100)] {
                let mut frame = bare.clone();
                frame.resize(bare.len() + trailer, 0xee);
                let first = (bare.len() + first) as u32;
                let out = match f.run_split(&frame, first) {
                    Ok(out) => out,
                    Err(e) => {
                        eprintln!(
                            "skipped: this kernel's test run does not take a first buffer \
                             shorter than a page ({e:#})"
                        );
                        return;
                    }
                };
                let what = format!("ipv6={ipv6}, {trailer} trailing bytes, first buffer {first}");
                assert_eq!(out.action, XDP_TX, "{what}");
                assert_checksums(&out.frame);
                assert_eq!(
                    out.frame.len(),
                    reply.len(),
                    "{what}: reply with trailing bytes"
                );
            }
        }
    }
}

#[test]
fn a_jumbo_datagram_passes_whole_and_counted_whole() {
    let f = fixture(default_config());
    let payload = vec![0x11u8; JUMBO_PAYLOAD];
    let udp = UdpHeader::with_ipv4_checksum(
        5353,
        PORT,
        &frames::ipv4_header(CLIENT_V4, SERVER_V4, 8 + payload.len(), 64),
        &payload,
    )
    .unwrap();
    let mut ip = frames::ipv4_header(CLIENT_V4, SERVER_V4, 8 + payload.len(), 64);
    ip.protocol = IpNumber::UDP;
    ip.header_checksum = ip.calc_header_checksum();
    let mut frame = frames::l2(CLIENT_MAC, SERVER_MAC, Tags::None, 0x0800);
    ip.write(&mut frame).unwrap();
    udp.write(&mut frame).unwrap();
    frame.extend_from_slice(&payload);
    let out = f.run(&frame).unwrap();
    assert_eq!(out.action, XDP_PASS);
    assert!(out.frame == frame, "frame changed");
    let c = f.counter(Reason::PassNotTcp).unwrap();
    assert_eq!((c.packets, c.bytes), (1, frame.len() as u64));
}

#[test]
fn a_jumbo_frame_shorter_than_its_ip_length_is_malformed() {
    let f = fixture(default_config());
    let mut frame = data_segment(false, JUMBO_PAYLOAD);
    // Claims 100 bytes more than the frame holds, all buffers counted.
    let total = u16::from_be_bytes([frame[16], frame[17]]) + 100;
    frame[16..18].copy_from_slice(&total.to_be_bytes());
    set_ipv4_header_checksum(&mut frame[14..34]);
    let out = f.run(&frame).unwrap();
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(f.verdict(Reason::PassMalformedIp).unwrap(), 1);
}

/// RFC 1071 over a 20-byte IPv4 header, written into its checksum field.
fn set_ipv4_header_checksum(h: &mut [u8]) {
    h[10..12].copy_from_slice(&[0, 0]);
    let mut sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}
