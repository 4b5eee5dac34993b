//! Fixture tables for the drop policy: allow/block lists, the per-source SYN limit, the
//! reflection cap, monitor mode and flood events, on the compiled XDP program through
//! BPF_PROG_TEST_RUN. Frames are crafted, never sent anywhere; their addresses are still kept in
//! the lab's benchmarking ranges.
//!
//! Needs root; run through `cargo xtask test`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use synguard_common::{
    maps::SYN_WINDOW_NS,
    policy::{FLOOD_END, FLOOD_START, Policy, rate_to_gcra},
    reason::{Event, Reason},
    tcp::{ACK, FIN, SYN},
};
use synguard_lab::testrun::{
    fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX},
    frames::{self, Segment, Tags},
};

mod common;
use common::PORT;

fn fixture() -> Fixture {
    common::testrun_fixture(&[PORT])
}

fn v4(last: u8) -> [u8; 4] {
    [198, 18, 0, last]
}

/// 2001:2:0:<net>::<host>
fn v6(net: u16, host: u16) -> [u8; 16] {
    Ipv6Addr::new(0x2001, 2, 0, net, 0, 0, 0, host).octets()
}

fn seg(flags: u8, sport: u16) -> Segment {
    let mut s = Segment::syn(sport, PORT, 1000, frames::linux_syn_options(1460, 77, 7));
    s.flags = flags;
    if flags & ACK != 0 {
        s.ack = 4242;
        s.options.clear();
    }
    s
}

fn frame_v4(src: [u8; 4], flags: u8) -> Vec<u8> {
    frames::tcp_v4(
        src,
        frames::SERVER_V4,
        Tags::None,
        (frames::CLIENT_MAC, frames::SERVER_MAC),
        &seg(flags, 40000 + src[3] as u16),
    )
}

fn frame_v6(src: [u8; 16], flags: u8) -> Vec<u8> {
    frames::tcp_v6(
        src,
        frames::SERVER_V6,
        Tags::None,
        (frames::CLIENT_MAC, frames::SERVER_MAC),
        &seg(flags, 40000 + src[15] as u16),
    )
}

/// Runs `frame` and checks the action and that a passed frame is untouched.
fn expect(f: &Fixture, frame: &[u8], action: u32, what: &str) {
    let out = f.run(frame).unwrap();
    assert_eq!(out.action, action, "{what}");
    if action == XDP_PASS {
        assert_eq!(out.frame, frame, "{what}: passed frames are untouched");
    }
}

#[test]
fn block_list_drops_first_and_allow_list_bypasses_everything() {
    let mut f = fixture();
    f.list_add(false, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), 28)
        .unwrap();
    f.list_add(true, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 64)), 26)
        .unwrap();
    // Listed in both: the block list wins.
    f.list_add(true, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 4)), 32)
        .unwrap();
    f.list_add(
        false,
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0)),
        64,
    )
    .unwrap();
    f.list_add(
        true,
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 7, 0, 0, 0, 0)),
        64,
    )
    .unwrap();
    f.set_policy(Policy {
        allow_v4: 2,
        block_v4: 1,
        allow_v6: 1,
        block_v6: 1,
        ..Default::default()
    })
    .unwrap();

    let table: Vec<(Vec<u8>, u32, Reason, &str)> = vec![
        (
            frame_v4(v4(2), SYN),
            XDP_DROP,
            Reason::DropBlocklisted,
            "blocked SYN",
        ),
        (
            frame_v4(v4(2), ACK),
            XDP_DROP,
            Reason::DropBlocklisted,
            "blocked ACK",
        ),
        (
            frame_v4(v4(4), SYN),
            XDP_DROP,
            Reason::DropBlocklisted,
            "in both lists",
        ),
        (
            frame_v4(v4(70), SYN),
            XDP_PASS,
            Reason::PassAllowlisted,
            "allowed SYN: to the kernel",
        ),
        (
            frame_v4(v4(70), ACK),
            XDP_PASS,
            Reason::PassAllowlisted,
            "allowed bogus ACK: no cookie check",
        ),
        (
            frame_v4(v4(200), SYN),
            XDP_TX,
            Reason::TxSynAckCookie,
            "unlisted SYN: cookie",
        ),
        (
            frame_v4(v4(200), ACK),
            XDP_DROP,
            Reason::DropAckBadCookie,
            "unlisted bogus ACK",
        ),
        (
            frame_v6(v6(0, 2), SYN),
            XDP_DROP,
            Reason::DropBlocklisted,
            "blocked /64",
        ),
        (
            frame_v6(v6(7, 9), SYN),
            XDP_PASS,
            Reason::PassAllowlisted,
            "allowed /64",
        ),
        (
            frame_v6(v6(8, 9), SYN),
            XDP_TX,
            Reason::TxSynAckCookie,
            "unlisted IPv6",
        ),
    ];
    for (frame, action, reason, what) in &table {
        let before = f.verdict(*reason).unwrap();
        expect(&f, frame, *action, what);
        assert_eq!(
            f.verdict(*reason).unwrap(),
            before + 1,
            "{what}: {reason:?}"
        );
    }
}

#[test]
fn empty_lists_are_not_consulted() {
    // Entries present but the policy says the lists are empty: the program skips them (the
    // loader keeps the counts in step with the tries).
    let mut f = fixture();
    f.list_add(false, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), 24)
        .unwrap();
    expect(&f, &frame_v4(v4(2), SYN), XDP_TX, "block list not in use");
}

#[test]
fn sources_over_their_rate_are_dropped_then_blocked() {
    let mut f = fixture();
    // 1 SYN/s, a burst of 3, blocked for an hour after going over.
    let (cost, burst) = rate_to_gcra(1, 3);
    f.set_policy(Policy {
        src_cost_ns: cost,
        src_burst_ns: burst,
        src_block_ns: 3_600_000_000_000,
        ..Default::default()
    })
    .unwrap();
    for i in 0..3 {
        expect(&f, &frame_v4(v4(9), SYN), XDP_TX, &format!("burst SYN {i}"));
    }
    expect(&f, &frame_v4(v4(9), SYN), XDP_DROP, "over the rate");
    assert_eq!(f.verdict(Reason::DropSourceRate).unwrap(), 1);
    assert_eq!(f.event(Event::SourceBlocked).unwrap(), 1);
    expect(&f, &frame_v4(v4(9), SYN), XDP_DROP, "blocked");
    assert_eq!(f.verdict(Reason::DropSourceBlocked).unwrap(), 1);
    // Another source is unaffected; ACKs are not SYNs and are not limited.
    expect(&f, &frame_v4(v4(10), SYN), XDP_TX, "another source");
    expect(
        &f,
        &frame_v4(v4(9), ACK),
        XDP_DROP,
        "ACK goes to the cookie check",
    );
    assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 1);

    // IPv6 sources share one bucket per /64.
    for host in [2u16, 3, 4] {
        expect(
            &f,
            &frame_v6(v6(5, host), SYN),
            XDP_TX,
            "same /64, within burst",
        );
    }
    expect(
        &f,
        &frame_v6(v6(5, 99), SYN),
        XDP_DROP,
        "same /64, over the rate",
    );
    expect(&f, &frame_v6(v6(6, 2), SYN), XDP_TX, "another /64");
}

#[test]
fn without_a_block_time_only_the_excess_is_dropped() {
    let mut f = fixture();
    // 10 SYN/s, burst 1: a second SYN at once is over; 100 ms later one conforms again.
    let (cost, burst) = rate_to_gcra(10, 1);
    f.set_policy(Policy {
        src_cost_ns: cost,
        src_burst_ns: burst,
        ..Default::default()
    })
    .unwrap();
    expect(&f, &frame_v4(v4(11), SYN), XDP_TX, "first");
    expect(&f, &frame_v4(v4(11), SYN), XDP_DROP, "second at once");
    std::thread::sleep(std::time::Duration::from_millis(150));
    expect(&f, &frame_v4(v4(11), SYN), XDP_TX, "after the interval");
    assert_eq!(f.verdict(Reason::DropSourceBlocked).unwrap(), 0);
    assert_eq!(f.event(Event::SourceBlocked).unwrap(), 0);
}

#[test]
fn syn_acks_to_one_destination_prefix_are_capped() {
    let mut f = fixture();
    let (cost, burst) = rate_to_gcra(1, 2);
    f.set_policy(Policy {
        reflect_cost_ns: cost,
        reflect_burst_ns: burst,
        ..Default::default()
    })
    .unwrap();
    // Three different spoofed sources in one /24: two SYN-ACKs, then the cap.
    expect(&f, &frame_v4(v4(130), SYN), XDP_TX, "first to the /24");
    expect(&f, &frame_v4(v4(131), SYN), XDP_TX, "second to the /24");
    expect(&f, &frame_v4(v4(132), SYN), XDP_DROP, "capped");
    assert_eq!(f.verdict(Reason::DropReflectionCap).unwrap(), 1);
    // Another /24 has its own allowance.
    expect(&f, &frame_v4([198, 19, 0, 5], SYN), XDP_TX, "another /24");
    // IPv6: per /48.
    expect(&f, &frame_v6(v6(1, 1), SYN), XDP_TX, "first to the /48");
    expect(&f, &frame_v6(v6(2, 1), SYN), XDP_TX, "second to the /48");
    expect(&f, &frame_v6(v6(3, 1), SYN), XDP_DROP, "capped /48");
}

#[test]
fn monitor_mode_decides_everything_and_passes_everything() {
    let mut f = fixture();
    f.list_add(false, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 50)), 32)
        .unwrap();
    f.set_policy(Policy {
        monitor: 1,
        block_v4: 1,
        ..Default::default()
    })
    .unwrap();
    // A SYN whose TCP checksum is wrong: the answer's own check would drop it, and monitor
    // mode makes that check too rather than count it as answered.
    let mut corrupt = frame_v4(v4(3), SYN);
    corrupt[14 + 20 + 16] ^= 0x5a;
    let table: [(Vec<u8>, Reason); 5] = [
        (frame_v4(v4(2), SYN), Reason::TxSynAckCookie),
        (frame_v4(v4(2), ACK), Reason::DropAckBadCookie),
        (frame_v4(v4(2), SYN | FIN), Reason::DropSynFin),
        (frame_v4(v4(50), SYN), Reason::DropBlocklisted),
        (corrupt, Reason::DropBadTcpChecksum),
    ];
    for (frame, would) in &table {
        expect(&f, frame, XDP_PASS, &format!("monitor: would {would:?}"));
        assert_eq!(f.would(*would).unwrap(), 1, "{would:?}");
    }
    assert_eq!(f.verdict(Reason::PassMonitor).unwrap(), table.len() as u64);
    // Nothing was really answered or dropped.
    assert_eq!(f.verdict(Reason::TxSynAckCookie).unwrap(), 0);
    assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 0);
    assert_eq!(f.event(Event::CookieSent).unwrap(), 0);
    // A pass stays an ordinary pass, not counted as monitored.
    let unprotected = frames::client_syn_v4(
        Tags::None,
        &Segment::syn(40000, 8080, 1, frames::linux_syn_options(1460, 1, 7)),
    );
    expect(&f, &unprotected, XDP_PASS, "unprotected port");
    assert_eq!(f.verdict(Reason::PassMonitor).unwrap(), table.len() as u64);
}

#[test]
fn flood_start_and_end_are_events_and_syns_are_counted_per_port() {
    let mut f = fixture();
    f.set_config(common::eager_auto_mode()).unwrap();
    let syn = frame_v4(v4(2), SYN);
    let gap = std::time::Duration::from_millis(20);
    let deadline = std::time::Duration::from_secs(5);
    f.drive_until(&syn, gap, deadline, |f| {
        Ok(f.event(Event::CookieModeOn)? == 1)
    })
    .unwrap();
    // Quiet for longer than two windows and the hold time: the next SYN turns cookies off.
    std::thread::sleep(std::time::Duration::from_nanos(3 * SYN_WINDOW_NS));
    f.run(&syn).unwrap();
    assert_eq!(f.event(Event::CookieModeOff).unwrap(), 1);
    let syns = f.port_syns(PORT).unwrap();
    let events = f.flood_events().unwrap();
    let kinds: Vec<u32> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [FLOOD_START, FLOOD_END], "{events:?}");
    assert_eq!(events[0].port, PORT as u32);
    assert!(events[0].rate_pps >= 10, "{events:?}");
    assert!(events[1].time_ns > events[0].time_ns);
    assert!(syns >= 3, "{syns} SYNs counted for port {PORT}");
    assert_eq!(syns, f.event(Event::SynProtected).unwrap());
    assert_eq!(f.port_syns(443).unwrap(), 0);
}

#[test]
fn the_loaders_list_code_drives_the_program() {
    use synguard::policy::{Cidr, ListKind, PolicyError, PolicyMaps};
    let mut f = fixture();
    let mut maps = PolicyMaps::new(|name| f.take_map(name)).unwrap();
    let net: Cidr = "198.18.0.0/28".parse().unwrap();
    let net6: Cidr = "2001:2::/64".parse().unwrap();
    maps.add(ListKind::Block, net).unwrap();
    maps.add(ListKind::Block, net6).unwrap();
    maps.add(ListKind::Allow, "198.18.0.64/26".parse().unwrap())
        .unwrap();
    let p = maps.policy().unwrap();
    assert_eq!(
        (p.block_v4, p.block_v6, p.allow_v4, p.allow_v6),
        (1, 1, 1, 0)
    );
    assert_eq!(maps.list(ListKind::Block).unwrap(), vec![net, net6]);
    // Effective on the next packet.
    expect(&f, &frame_v4(v4(2), SYN), XDP_DROP, "blocked after add");
    expect(
        &f,
        &frame_v6(v6(0, 2), SYN),
        XDP_DROP,
        "blocked /64 after add",
    );
    expect(&f, &frame_v4(v4(70), SYN), XDP_PASS, "allowed after add");
    maps.del(ListKind::Block, net).unwrap();
    expect(&f, &frame_v4(v4(2), SYN), XDP_TX, "answered after del");
    assert_eq!(maps.policy().unwrap().block_v4, 0, "recounted");
    let e = maps.del(ListKind::Block, net).unwrap_err();
    assert!(matches!(e, PolicyError::NotListed(..)), "{e}");
    assert!(
        e.to_string()
            .contains("198.18.0.0/28 is not in the block list"),
        "{e}"
    );
}
