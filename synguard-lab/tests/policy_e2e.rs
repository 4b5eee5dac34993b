//! The drop policy end to end, in the lab with real TCP and the real command line:
//! list changes take effect on the next packet (IPv4 and IPv6), a flooding source is limited and
//! blocked while another client connects normally, monitor mode passes everything while
//! counting, and a reload changes thresholds and lists without detaching or losing counters.
//! Root; run through `cargo xtask test`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use synguard_common::reason::{Event, Reason};
use synguard_lab::lab::hping::{Flood, FloodKind, FloodSpec};
use synguard_lab::lab::kstats::{self, KStats};
use synguard_lab::lab::topology::{SERVER_V4, spoof_addr};
use synguard_lab::lab::traffic::Continuous;

mod common;
use common::{Fixture, PORT, addr};

impl Fixture {
    /// One connection from the client; whether it was established within a second.
    fn connects(&self, v6: bool) -> Result<bool> {
        let a = addr(v6);
        self.lab
            .client
            .ns
            .enter(move || TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
    }
}

/// A bounded hping3 SYN flood to port 80 from the attacker's own address or a spoofed one.
fn syn_flood(
    fx: &Fixture,
    count: u64,
    interval_us: u32,
    spoof: Option<std::net::Ipv4Addr>,
) -> Result<Flood> {
    Flood::start(
        &fx.lab.attacker,
        FloodSpec {
            kind: FloodKind::Syn,
            dst: SERVER_V4,
            port: PORT,
            count,
            interval_us,
            spoof,
        },
    )
}

#[test]
fn list_changes_take_effect_on_the_next_packet() -> Result<()> {
    let fx = Fixture::new()?;
    let sg = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    let iface = fx.lab.server.ifname.clone();
    assert!(fx.connects(false)? && fx.connects(true)?, "before any list");

    fx.cli(&["block", "add", "198.18.0.2/32", "--iface", &iface])?;
    assert!(!fx.connects(false)?, "IPv4 client blocked at once");
    assert!(fx.connects(true)?, "IPv6 not in the list");
    fx.cli(&["block", "add", "2001:2::/64"])?;
    assert!(!fx.connects(true)?, "IPv6 /64 blocked at once");
    let listed = fx.cli(&["block", "list", "--json"])?;
    assert!(
        listed.contains("198.18.0.2/32") && listed.contains("2001:2::/64"),
        "{listed}"
    );

    fx.cli(&["block", "del", "198.18.0.2/32"])?;
    fx.cli(&["block", "del", "2001:2::/64"])?;
    assert!(
        fx.connects(false)? && fx.connects(true)?,
        "unblocked at once"
    );

    // Allowed: SYNs go to the kernel untouched, no cookie.
    let before = sg.stats()?;
    fx.cli(&["allow", "add", "198.18.0.0/24"])?;
    assert!(fx.connects(false)?);
    let after = sg.stats()?;
    assert!(after.delta(&before, Reason::PassAllowlisted) >= 1);
    assert_eq!(after.delta(&before, Reason::TxSynAckCookie), 0);

    // Refused with what was expected.
    let e = fx
        .cli(&["block", "add", "198.18.0.1/24"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("host bits") && e.contains("198.18.0.0/24"),
        "{e}"
    );
    let e = fx
        .cli(&["block", "del", "203.0.113.0/24"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not in the block list"), "{e}");
    assert!(sg.stop()?.success());
    Ok(())
}

#[test]
fn a_flooding_source_is_limited_and_blocked_while_another_connects() -> Result<()> {
    let fx = Fixture::new()?;
    let sg = fx.synguard(&[
        "--ports",
        "80",
        "--mode",
        "always",
        "--source-rate",
        "100",
        "--source-block",
        "60",
    ])?;
    let s0 = sg.stats()?;
    let client = Continuous::start(
        &fx.lab.client.ns,
        vec![addr(false)],
        Duration::from_millis(20),
    )?;
    // From the attacker's own address: one source, far over 100 SYN/s.
    let flood = syn_flood(&fx, 20_000, 50, None)?;
    let report = flood.wait(&fx.lab.attacker)?;
    let legit = client.stop();
    let s1 = sg.stats()?;
    eprintln!(
        "flood {} SYNs; legit {} ok {} failed; rate-dropped {} blocked {}",
        report.sent(),
        legit.ok,
        legit.failed,
        s1.delta(&s0, Reason::DropSourceRate),
        s1.delta(&s0, Reason::DropSourceBlocked)
    );
    assert!(legit.ok > 0 && legit.failed == 0, "{:?}", legit.last_error);
    assert!(s1.delta(&s0, Reason::DropSourceRate) >= 1);
    assert!(s1.delta(&s0, Reason::DropSourceBlocked) > report.sent() / 2);
    assert!(s1.event_delta(&s0, Event::SourceBlocked) >= 1);
    // The attacker got at most its burst of cookies before the block.
    assert!(s1.delta(&s0, Reason::TxSynAckCookie) < legit.ok * 2 + 200);

    let top: serde_json::Value = serde_json::from_str(&fx.cli(&["top", "--json"])?)?;
    let blocked: Vec<&str> = top["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["source"].as_str())
        .collect();
    assert_eq!(blocked, ["198.18.0.3"], "{top}");
    assert!(top["blocked"][0]["blocked_for_s"].as_u64().unwrap() > 0);
    assert!(sg.stop()?.success());
    Ok(())
}

#[test]
fn monitor_mode_passes_everything_while_counting() -> Result<()> {
    let fx = Fixture::new()?;
    let sg = fx.synguard(&["--ports", "80", "--mode", "always", "--monitor"])?;
    let (s0, k0) = (sg.stats()?, KStats::read(&fx.lab.server.ns)?);
    let client = Continuous::start(
        &fx.lab.client.ns,
        vec![addr(false)],
        Duration::from_millis(20),
    )?;
    let flood = syn_flood(&fx, 5_000, 100, Some(spoof_addr(80)))?;
    let report = flood.wait(&fx.lab.attacker)?;
    let legit = client.stop();
    let (s1, k1) = (sg.stats()?, KStats::read(&fx.lab.server.ns)?);
    assert!(legit.failed == 0 && legit.ok > 0, "{:?}", legit.last_error);
    // Nothing was answered or dropped in XDP: the flood reached the kernel, which answered it
    // with its own cookies (tcp_syncookies=2 while attached).
    assert_eq!(s1.delta(&s0, Reason::TxSynAckCookie), 0);
    assert!(s1.delta(&s0, Reason::PassMonitor) >= report.sent());
    assert!(k1.delta(&k0, kstats::SYNCOOKIES_SENT) >= report.sent() * 9 / 10);
    assert!(sg.stop()?.success());
    Ok(())
}

#[test]
fn reload_changes_thresholds_and_lists_without_detaching() -> Result<()> {
    let fx = Fixture::new()?;
    let iface = fx.lab.server.ifname.clone();
    let file = std::env::temp_dir().join(format!("{}-synguard.toml", fx.lab.id));
    let write = |threshold: u32, block: &str| {
        std::fs::write(
            &file,
            format!(
                "interfaces = [\"{iface}\"]\nports = [80, 443]\nmode = \"auto\"\n\
                 syn_threshold = {threshold}\nblock = [{block}]\n"
            ),
        )
    };
    write(5000, "")?;
    let sg = fx.synguard(&["--config", &file.to_string_lossy()])?;
    let st0 = fx.status()?;
    assert_eq!(st0["syn_threshold"], 5000);
    assert!(fx.connects(false)?);
    let s0 = sg.stats()?;

    write(777, "\"198.18.0.2/32\"")?;
    fx.cli(&["reload"])?;
    // Thresholds and ports are written first, the lists last: wait for the last.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fx
        .cli(&["block", "list", "--json"])?
        .contains("198.18.0.2/32")
    {
        ensure!(
            Instant::now() < deadline,
            "reload not applied: {}",
            fx.status()?
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st1 = fx.status()?;
    assert_eq!(st1["syn_threshold"], 777);
    assert_eq!(st1["program_id"], st0["program_id"], "no re-attach");
    assert_eq!(st1["syn_off_threshold"], 388);
    assert!(!fx.connects(false)?, "the file's block list is in force");
    let s1 = sg.stats()?;
    assert!(s1.totals.pass >= s0.totals.pass, "counters kept");
    assert!(s1.delta(&s0, Reason::DropBlocklisted) >= 1);

    // A broken file changes nothing.
    std::fs::write(&file, "ports = [70000]\n")?;
    ensure!(fx.cli(&["reload"]).is_err(), "a refused reload succeeded");
    assert_eq!(fx.status()?["syn_threshold"], 777);
    assert!(
        sg.log_text().contains("reload refused"),
        "{}",
        sg.log_text()
    );

    // Dropped from the file on the next reload: removed.
    write(777, "")?;
    fx.cli(&["reload"])?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fx.connects(false)? {
        ensure!(
            Instant::now() < deadline,
            "block list entry not removed by reload"
        );
    }
    assert!(sg.stop()?.success());
    std::fs::remove_file(&file)?;
    Ok(())
}
