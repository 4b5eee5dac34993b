//! End-to-end tests in the lab. They need root (namespaces, XDP) and run one at a time:
//! `cargo xtask test` runs them with `--test-threads=1` and passes the synguard binary in
//! `SYNGUARD_BIN`. Each test builds its own lab, which is torn down when the test ends, passes or
//! panics.

use std::time::Duration;

use anyhow::{Context as _, Result};
use synguard_common::reason::{Event, Reason};
use synguard_lab::lab::hping::Flood;
use synguard_lab::lab::kstats;
use synguard_lab::lab::synguard_proc::{self, Stats};
use synguard_lab::lab::tcp_info::TcpInfo;
use synguard_lab::lab::traffic::Transfer;
use synguard_lab::lab::{Lab, netns};

mod common;
use common::e2e::{
    SERVER_WAIT, ack_flood, check_client_options, check_server_options, kernel_wscale, syn_flood,
    table_maybes, wait_for_stats,
};
use common::{Fixture, assert_no_failures, ops::wait_log_within, require_root};

const PORTS: &str = "80,443";
const MIB: u64 = 1 << 20;

/// Small transfers, with 1 MiB each way on every 50th connection.
fn mixed_transfer(i: usize) -> Transfer {
    if i.is_multiple_of(50) {
        Transfer {
            upload: MIB,
            download: MIB,
        }
    } else {
        Transfer {
            upload: 1000,
            download: 1000,
        }
    }
}

/// Harness check without synguard: the kernel alone, with cookies always on, sees every flood
/// packet, and legit connections still work. This pins down the flood runner and the counters
/// the synguard tests rely on.
#[test]
fn kernel_alone_sees_every_flood_packet() -> Result<()> {
    let fx = Fixture::new()?;
    let ns = &fx.lab.server.ns;
    ns.sysctl("net.ipv4.tcp_syncookies", "2")?;
    let v4 = fx.batch(false, 50, mixed_transfer)?;
    let v6 = fx.batch(true, 50, mixed_transfer)?;
    let wscale = kernel_wscale(&fx)?;
    check_client_options(&v4, wscale);
    check_client_options(&v6, wscale);
    let conns = fx.server.wait_for(101, SERVER_WAIT)?;
    let infos: Vec<TcpInfo> = conns.iter().map(|c| c.info).collect();
    check_server_options(&infos, wscale);
    let big = conns
        .iter()
        .filter(|c| c.received == MIB && c.sent == MIB)
        .count();
    assert_eq!(big, 2, "1 MiB transfers that completed both ways");

    let k0 = fx.kstats()?;
    let client = fx.continuous()?;
    let syn = fx.flood(syn_flood(20_000))?;
    let ack = fx.flood(ack_flood(10_000))?;
    let legit = client.stop();
    let k1 = fx.kstats()?;
    eprintln!("kernel: {}", k1.summary(&k0));
    assert_no_failures("legit during kernel-only flood", &legit);
    // Every SYN (flood and legit) got a kernel cookie; hping3's count is what left the attacker.
    let sent = k1.delta(&k0, kstats::SYNCOOKIES_SENT);
    assert!(
        sent >= syn.sent(),
        "kernel sent {sent} cookies for {} flood SYNs",
        syn.sent()
    );
    // Every bogus ACK reached the kernel's cookie check and failed it.
    let failed = k1.delta(&k0, kstats::SYNCOOKIES_FAILED);
    assert!(
        failed >= ack.sent(),
        "kernel failed {failed} cookies for {} flood ACKs",
        ack.sent()
    );
    let accepted = k1.delta(&k0, kstats::SYNCOOKIES_RECV);
    assert!(
        accepted >= legit.ok,
        "{accepted} cookie ACKs accepted for {} connections",
        legit.ok
    );
    Ok(())
}

/// Always mode: every handshake gets an XDP cookie, and the connections still negotiate
/// timestamps, SACK and the kernel's own window scale, over IPv4 and IPv6, and move data.
#[test]
fn always_mode_keeps_tcp_options_and_data() -> Result<()> {
    let fx = Fixture::new()?;
    let ns = &fx.lab.server.ns;
    let wscale = kernel_wscale(&fx)?;
    let ts_before = ns.sysctl_get("net.ipv4.tcp_timestamps")?;
    let cookies_before = ns.sysctl_get("net.ipv4.tcp_syncookies")?;
    let sg = fx.synguard(&["--ports", PORTS, "--mode", "always"])?;
    assert_eq!(ns.sysctl_get("net.ipv4.tcp_timestamps")?, "2");
    assert_eq!(ns.sysctl_get("net.ipv4.tcp_syncookies")?, "2");

    let seen_before = fx.server.connections().len();
    let k0 = fx.kstats()?;
    let s0 = sg.stats()?;
    let v4 = fx.batch(false, 200, mixed_transfer)?;
    let v6 = fx.batch(true, 200, mixed_transfer)?;
    let s1 = sg.stats()?;
    let k1 = fx.kstats()?;
    eprintln!("kernel: {}", k1.summary(&k0));

    check_client_options(&v4, wscale);
    check_client_options(&v6, wscale);
    let conns = fx.server.wait_for(seen_before + 400, SERVER_WAIT)?;
    let new: Vec<_> = conns[seen_before..].to_vec();
    assert_eq!(
        new.len(),
        400,
        "server accepted {} of 400 connections",
        new.len()
    );
    for c in &new {
        assert!(
            c.error.is_none(),
            "server side of {}: {:?}",
            c.peer,
            c.error
        );
    }
    let infos: Vec<TcpInfo> = new.iter().map(|c| c.info).collect();
    check_server_options(&infos, wscale);
    let big = new
        .iter()
        .filter(|c| c.received == MIB && c.sent == MIB)
        .count();
    assert_eq!(big, 8, "1 MiB transfers that completed both ways");

    let cookies = s1.delta(&s0, Reason::TxSynAckCookie);
    let refresh = s1.delta(&s0, Reason::PassSynListenerRefresh);
    // A client port reused for a 4-tuple that closed moments ago goes to the kernel on purpose
    // (the server may hold it in TIME_WAIT): with ~400 ephemeral ports drawn, a few collide.
    let reused = s1.delta(&s0, Reason::PassSynRecentClose);
    eprintln!(
        "synguard: {cookies} cookie SYN-ACKs, {refresh} refresh SYNs, {reused} recently closed"
    );
    let to_kernel = refresh + reused;
    assert!(
        cookies + to_kernel >= 400,
        "{cookies} cookies + {refresh} refresh + {reused} recently closed SYNs < 400 SYNs"
    );
    assert!(cookies >= 400 - to_kernel.min(400));
    // Connections answered from XDP are created from the cookie in their final ACK.
    let cookie_acks = s1.delta(&s0, Reason::PassCookieAck);
    assert!(
        cookie_acks + refresh >= 400,
        "{cookie_acks} cookie ACKs passed"
    );
    let recv = k1.delta(&k0, kstats::SYNCOOKIES_RECV);
    assert!(recv + refresh >= 400, "kernel accepted {recv} cookies");

    let status = sg.stop()?;
    assert!(status.success(), "synguard run exit: {status}");
    assert_eq!(ns.sysctl_get("net.ipv4.tcp_timestamps")?, ts_before);
    assert_eq!(ns.sysctl_get("net.ipv4.tcp_syncookies")?, cookies_before);
    Ok(())
}

/// Always mode under bounded SYN and ACK floods: legit clients keep connecting, the flood stays
/// out of the kernel, and synguard's counters match what the attacker sent.
#[test]
fn always_mode_absorbs_syn_and_ack_floods() -> Result<()> {
    let fx = Fixture::new()?;
    let sg = fx.synguard(&["--ports", PORTS, "--mode", "always"])?;
    let k0 = fx.kstats()?;
    let s0 = sg.stats()?;
    let client = fx.continuous()?;
    let syn = fx.flood(syn_flood(100_000))?;
    let ack = fx.flood(ack_flood(50_000))?;
    let legit = client.stop();
    let s1 = sg.stats()?;
    let k1 = fx.kstats()?;
    eprintln!("kernel: {}", k1.summary(&k0));
    let cookies = s1.delta(&s0, Reason::TxSynAckCookie);
    let refresh = s1.delta(&s0, Reason::PassSynListenerRefresh);
    let to_kernel = s1.delta(&s0, Reason::PassSynToKernel);
    let dropped = s1.delta(&s0, Reason::DropAckBadCookie);
    eprintln!(
        "synguard: {cookies} cookies, {refresh} refresh, {to_kernel} to kernel, {dropped} bad ACKs"
    );
    assert_no_failures("legit during floods", &legit);

    assert_eq!(
        to_kernel, 0,
        "always mode passed SYNs to the kernel unconditionally"
    );
    // The program counts SYNs per protected port: port 80 saw the whole flood.
    let port80 = |s: &Stats| s.ports.get("80").map_or(0, |p| p.total);
    assert!(
        port80(&s1) - port80(&s0) >= syn.sent(),
        "port 80 SYNs {} < flood {}",
        port80(&s1) - port80(&s0),
        syn.sent()
    );
    // Every SYN is answered from XDP, or is one of the few refresh SYNs, or a legit reconnect on
    // a 4-tuple the server may still hold in TIME_WAIT (those go to the kernel); legit SYNs (and
    // their rare retransmissions) come on top of the flood's.
    let attempts = legit.ok + legit.failed;
    let recent_close = s1.delta(&s0, Reason::PassSynRecentClose);
    assert!(
        recent_close <= attempts,
        "{recent_close} recently-closed SYNs, {attempts} legit"
    );
    let syns = cookies + refresh + recent_close;
    assert!(
        syns >= syn.sent() + legit.ok,
        "{syns} SYNs counted, {} flood + {} legit sent",
        syn.sent(),
        legit.ok
    );
    assert!(
        syns <= syn.sent() + 4 * attempts,
        "{syns} SYNs counted: more than were sent"
    );
    // Every flood ACK is dropped but the few the connection table lets pass as "maybe"
    // (`table_maybes`); a handful of stray legit ACKs may join them.
    assert!(
        dropped + table_maybes(ack.sent()) >= ack.sent(),
        "{dropped} bad ACKs dropped, {} sent",
        ack.sent()
    );
    assert!(
        dropped <= ack.sent() + 5,
        "{dropped} bad ACKs dropped, only {} sent",
        ack.sent()
    );

    // The kernel saw only the refresh SYNs: a few per second of flood, not the flood.
    let kernel_cookies = k1.delta(&k0, kstats::SYNCOOKIES_SENT);
    let flood_secs = (syn.elapsed + ack.elapsed).as_secs() + 1;
    assert!(
        kernel_cookies <= refresh,
        "kernel sent {kernel_cookies} cookies, {refresh} SYNs passed"
    );
    assert!(
        kernel_cookies <= 5 * flood_secs + 10,
        "kernel sent {kernel_cookies} cookies"
    );
    assert!(
        k1.delta(&k0, kstats::SYNCOOKIES_FAILED) <= table_maybes(ack.sent()),
        "bogus ACKs reached the kernel"
    );
    assert!(sg.stop()?.success());
    Ok(())
}

/// Auto mode: quiet traffic goes to the kernel; a flood turns cookies on; after the flood and
/// the hold time they go off again; legit clients connect throughout. While they are on,
/// `tcp_syncookies` changed behind synguard's back is set back.
#[test]
fn auto_mode_switches_cookies_on_and_off() -> Result<()> {
    let fx = Fixture::new()?;
    let ns = &fx.lab.server.ns;
    let sg = fx.synguard(&[
        "--ports",
        PORTS,
        "--mode",
        "auto",
        "--syn-threshold",
        "2000",
        "--hold",
        "2",
    ])?;
    let s0 = sg.stats()?;
    assert!(!s0.cookies_active, "cookies active before any flood");
    fx.batch(false, 25, mixed_transfer)?;
    fx.batch(true, 25, mixed_transfer)?;
    let s1 = sg.stats()?;
    assert!(
        s1.delta(&s0, Reason::PassSynToKernel) >= 50,
        "quiet SYNs not passed: {s1:?}"
    );
    assert_eq!(
        s1.delta(&s0, Reason::TxSynAckCookie),
        0,
        "cookies sent while quiet"
    );
    assert_eq!(ns.sysctl_get("net.ipv4.tcp_syncookies")?, "1");

    let client = fx.continuous()?;
    let flood = Flood::start(&fx.lab.attacker, syn_flood(60_000))?;
    let on = wait_for_stats(&sg, syn_flood(60_000).deadline(), |s| s.cookies_active)?;
    assert!(on.event_delta(&s0, Event::CookieModeOn) >= 1);
    assert_eq!(
        ns.sysctl_get("net.ipv4.tcp_syncookies")?,
        "2",
        "cookies on, sysctl not flipped"
    );
    // Changed behind synguard's back while cookies are on: set back within a second (the flood
    // and the hold keep them on for longer).
    ns.sysctl("net.ipv4.tcp_syncookies", "1")?;
    wait_log_within(
        &sg,
        "net.ipv4.tcp_syncookies was changed to 1",
        Duration::from_secs(3),
    )
    .context("not set back")?;
    assert_eq!(ns.sysctl_get("net.ipv4.tcp_syncookies")?, "2");
    let report = flood.wait(&fx.lab.attacker)?;
    eprintln!("flood sent {} at {:.0} pps", report.sent(), report.pps());
    let off = wait_for_stats(&sg, Duration::from_secs(15), |s| !s.cookies_active)?;
    let legit = client.stop();
    assert_no_failures("legit across the mode switch", &legit);
    assert!(
        off.delta(&s0, Reason::TxSynAckCookie) > 0,
        "no cookies sent during the flood"
    );
    assert!(off.event_delta(&s0, Event::CookieModeOff) >= 1);
    assert_eq!(
        ns.sysctl_get("net.ipv4.tcp_syncookies")?,
        "1",
        "sysctl not restored"
    );

    // The flood's start and end reached the loader as events and are in `status`.
    let out = synguard_proc::run_once(
        &synguard_proc::binary()?,
        &fx.lab.server.ns.path(),
        &["status", "--iface", &fx.lab.server.ifname, "--json"],
    )?;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let events = status["interfaces"][0]["flood_events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(
        kinds.windows(2).any(|w| w == ["start", "end"]),
        "flood events in status: {kinds:?}"
    );
    // A start names the port whose SYN tripped it; an end that the loader decided on the clock
    // (no SYN in the window that would have decided it) names none (0).
    assert!(
        events
            .iter()
            .all(|e| e["port"] == 80 || e["port"] == 443 || (e["kind"] == "end" && e["port"] == 0)),
        "{events:?}"
    );

    // Quiet again: SYNs go back to the kernel.
    let s2 = sg.stats()?;
    fx.batch(false, 10, mixed_transfer)?;
    let s3 = sg.stats()?;
    assert!(s3.delta(&s2, Reason::PassSynToKernel) >= 10);
    assert_eq!(s3.delta(&s2, Reason::TxSynAckCookie), 0);
    assert!(sg.stop()?.success());
    Ok(())
}

/// Teardown leaves nothing behind: no namespace of this lab, no process inside one.
#[test]
fn lab_teardown_removes_namespaces() -> Result<()> {
    require_root();
    let lab = Lab::new()?;
    let id = lab.id.clone();
    let flood = Flood::start(&lab.attacker, syn_flood(1_000_000))?;
    let hping = flood_pid(&flood);
    // The lab kills what runs in its namespaces; the flood handle then only reaps hping3.
    drop(lab);
    drop(flood);
    let left: Vec<_> = netns::lab_namespaces()?
        .into_iter()
        .filter(|n| n.starts_with(&id))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{hping}")).exists(),
        "hping3 survived"
    );
    Ok(())
}

fn flood_pid(flood: &Flood) -> u32 {
    flood.pid().expect("flood is running")
}
