//! End to end with jumbo frames: the lab's links at MTU 9000, the real TCP stack on both ends.
//! synguard's programs are multi-buffer XDP programs (`xdp.frags`), so a veth at that MTU takes
//! them in native mode (with single-buffer programs the driver refuses, ERANGE, and synguard
//! used to fall back to skb mode), and segments longer than a page reach them split over
//! buffers. Root, one at a time (`cargo xtask test`).

use std::time::Duration;

use anyhow::{Result, ensure};
use synguard_common::reason::Reason;
use synguard_lab::lab::{
    synguard_proc::{Stats, Synguard},
    tcp_info::TS_SACK_WSCALE,
    traffic::ConnReport,
};

mod common;
use common::{Fixture, ops::wait_log_within};

const MIB: u64 = 1 << 20;
const JUMBO: u32 = 9000;
/// A page's buffer: frames longer than this reach XDP in more than one buffer.
const PAGE: u64 = 4096;

/// `n` connections to the server over IPv4 or IPv6, each moving `bytes` both ways, with the
/// stats before and after; every one must succeed, on both ends.
fn batch(
    fx: &Fixture,
    sg: &Synguard,
    v6: bool,
    n: usize,
    bytes: u64,
) -> Result<(Vec<ConnReport>, Stats, Stats)> {
    let before = sg.stats()?;
    let reports = fx.exchange(v6, n, bytes)?;
    for r in &reports {
        ensure!(
            r.info.has(TS_SACK_WSCALE),
            "ipv6={v6}: {}",
            r.info.summary()
        );
    }
    Ok((reports, before, sg.stats()?))
}

/// The established segments synguard passed between two samples: (packets, average bytes).
fn established(before: &Stats, after: &Stats) -> (u64, u64) {
    let get = |s: &Stats| {
        s.verdicts
            .get(Reason::PassEstablished.name())
            .map_or((0, 0), |v| (v.packets, v.bytes))
    };
    let (p1, b1) = get(after);
    let (p0, b0) = get(before);
    let packets = p1.saturating_sub(p0);
    (packets, b1.saturating_sub(b0) / packets.max(1))
}

/// Segments of several buffers passed whole as established, none taken for malformed.
fn check_jumbo_segments(before: &Stats, after: &Stats) -> Result<()> {
    ensure!(
        after.delta(before, Reason::PassMalformedIp) == 0,
        "passed as malformed: {}",
        after.delta(before, Reason::PassMalformedIp)
    );
    let (packets, avg) = established(before, after);
    // A MiB each way in segments of ~9000 bytes one way and ACKs the other.
    ensure!(
        packets > 0 && avg > PAGE,
        "established segments: {packets}, {avg} bytes on average (want more than a page)"
    );
    eprintln!("established segments: {packets}, {avg} bytes on average");
    Ok(())
}

/// Each connection's MSS toward the server (the SYN-ACK's MSS less the timestamp option).
fn check_client_mss(reports: &[ConnReport], want: u32) -> Result<()> {
    for r in reports {
        ensure!(
            r.info.snd_mss == want,
            "client MSS {}, want {want}",
            r.info.snd_mss
        );
    }
    Ok(())
}

/// Started on links at MTU 9000 with own cookies answering every SYN: attached in native mode,
/// every handshake completes with window scaling, SACK and timestamps, and the segments pass
/// whole. Over IPv6 the SYN-ACK offers the client's 8940 (the cookie's MSS table has it) and
/// the client sends full jumbo segments; over IPv4 the cookie's table ends at 1460, as the
/// kernel's does.
#[test]
fn on_jumbo_links_synguard_attaches_natively_and_cookie_handshakes_complete() -> Result<()> {
    let fx = Fixture::new()?;
    fx.lab.set_mtu(JUMBO)?;
    let sg = fx.synguard(&["--ports", "80", "--mode", "always", "--cookies", "own"])?;
    let line = wait_log_within(&sg, "attached to", Duration::from_secs(10))?;
    ensure!(line.contains("(native XDP)"), "{line}");
    let status = fx.cli(&["status", "--iface", fx.iface()])?;
    ensure!(
        // Over IPv4 the cookie's MSS table ends at 1460.
        status.contains("MSS at most 1460 (IPv4) / 8940 (IPv6)"),
        "status at MTU 9000:\n{status}"
    );
    let (reports, s0, s1) = batch(&fx, &sg, true, 3, MIB)?;
    check_client_mss(&reports, 8940 - 12)?;
    check_jumbo_segments(&s0, &s1)?;
    let (reports, s2, s3) = batch(&fx, &sg, false, 3, MIB)?;
    check_client_mss(&reports, 1460 - 12)?;
    ensure!(
        s3.delta(&s0, Reason::TxSynAckCookie) >= 6,
        "SYN-ACKs from XDP: {}",
        s3.delta(&s0, Reason::TxSynAckCookie)
    );
    ensure!(s3.delta(&s2, Reason::PassMalformedIp) == 0, "malformed");
    assert!(sg.stop()?.success());
    Ok(())
}

/// The MTU raised to 9000 under a running synguard (a host moved to jumbo frames, auto mode, no
/// flood: the kernel answers the SYNs): the change goes through, the daemon follows it, and the
/// connections' jumbo segments pass whole.
#[test]
fn raising_the_mtu_to_jumbo_under_a_running_synguard_works() -> Result<()> {
    let fx = Fixture::new()?;
    let sg = fx.synguard(&["--ports", "80"])?;
    wait_log_within(&sg, "attached to", Duration::from_secs(10))?;
    fx.lab.set_mtu(JUMBO)?;
    let line = wait_log_within(&sg, "MTU 1500 -> 9000", Duration::from_secs(5))?;
    eprintln!("{line}");
    let (reports, s0, s1) = batch(&fx, &sg, false, 3, MIB)?;
    check_client_mss(&reports, 8960 - 12)?;
    check_jumbo_segments(&s0, &s1)?;
    ensure!(
        s1.delta(&s0, Reason::PassSynToKernel) >= 3,
        "SYNs to the kernel: {}",
        s1.delta(&s0, Reason::PassSynToKernel)
    );
    assert!(sg.stop()?.success());
    Ok(())
}
