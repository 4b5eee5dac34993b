//! Fixture tables for the cookie handshake: the compiled synguard XDP program run by the kernel
//! (BPF_PROG_TEST_RUN) on crafted SYNs and ACKs. Asserts verdicts, exact output bytes (expected
//! frames are built with etherparse, whose checksum code is independent of synguard's) and
//! counters.
//!
//! Needs root (loading BPF programs); run through `cargo xtask test`.

use std::time::Duration;

use synguard_common::{
    maps::SYN_WINDOW_NS,
    reason::{Event, Reason},
    tcp::{ACK, FIN},
};
use synguard_lab::testrun::{
    fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX, default_config, loopback_config},
    frames::{self, *},
};

mod common;
use common::PORT;
use common::syn::*;

fn fixture() -> Fixture {
    common::testrun_fixture(&[PORT, 443])
}

#[test]
fn syn_gets_an_exact_cookie_synack_and_its_ack_is_accepted() {
    let mut f = fixture();
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
        // The variants share 4-tuples, whose packets pass for a moment after a valid final
        // ACK (`conn_handshake_stamp`): each variant is a later handshake.
        f.clear_conn(&ack).unwrap();
    }
    assert_eq!(f.verdict(Reason::TxSynAckCookie).unwrap(), sent);
    assert_eq!(f.verdict(Reason::PassCookieAck).unwrap(), sent);
    assert_eq!(f.event(Event::CookieSent).unwrap(), sent);
    assert_eq!(f.event(Event::CookieAckAccepted).unwrap(), sent);
    assert_eq!(f.event(Event::SynProtected).unwrap(), sent);
}

/// A host with SACK and window scaling switched off (`HOST_NO_*` flags from the loader): the
/// SYN-ACK offers neither, in its options or in the TSval the kernel's `cookie_timestamp_decode`
/// reads back, which refuses a cookie carrying an option the host has off (the client's final ACK
/// would get a RST). Exactly the SYN-ACK of a client that asked for neither.
#[test]
fn options_the_host_switched_off_are_not_offered_with_kernel_cookies() {
    use synguard_common::maps::{COOKIES_KERNEL, HOST_NO_SACK, HOST_NO_WSCALE};
    let mut cfg = default_config();
    cfg.cookies = COOKIES_KERNEL | HOST_NO_SACK | HOST_NO_WSCALE;
    let f = Fixture::new(cfg, &[PORT, 443]).unwrap();
    for ipv6 in [false, true] {
        let syn = Syn::linux(Tags::None, ipv6);
        let out = f.run(&syn.frame()).unwrap();
        assert_eq!(out.action, XDP_TX, "ipv6={ipv6}");
        let (cookie, tsval) = cookie_and_tsval(&out.frame, syn.tags);
        let ts = tsval.expect("timestamps stay on");
        let asked_for_neither = Syn {
            sack: false,
            wscale: None,
            ..syn
        };
        assert_eq!(
            ts & 0x3f,
            asked_for_neither.expected_ts_bits(),
            "ipv6={ipv6}"
        );
        assert_eq!(
            out.frame,
            asked_for_neither.expected_synack(cookie, ts),
            "ipv6={ipv6}"
        );
    }
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
    f.set_config(common::eager_auto_mode()).unwrap();
    let syn = Syn::linux(Tags::None, false).frame();

    assert_eq!(f.run(&syn).unwrap().action, XDP_PASS);
    assert_eq!(f.verdict(Reason::PassSynToKernel).unwrap(), 1);
    // The second SYN in one 100 ms window (20 SYN/s) turns cookies on at once, inside the
    // window, and is itself answered with one.
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
fn a_syn_reusing_a_recently_closed_connection_goes_to_the_kernel() {
    // A real connection on loopback: BPF_PROG_TEST_RUN runs XDP on this netns's loopback, so
    // the program's socket lookup finds it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_server, _) = listener.accept().unwrap();
    let cport = client.local_addr().unwrap().port();
    let cfg = loopback_config();
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
