//! Observing synguard from outside: the Prometheus endpoint (checked by promtool and against
//! `stats`), `status --json`, and rates that decay with time after a flood. Root, namespaces and real traffic; run with
//! `--test-threads=1`.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use synguard_common::reason::{Event, REASONS, Reason};
use synguard_lab::lab::hping::{Flood, FloodKind, FloodSpec};
use synguard_lab::lab::netns::Netns;
use synguard_lab::lab::synguard_proc::Stats;
use synguard_lab::lab::topology::{SERVER_V4, spoof_addr};

mod common;
use common::Fixture;
use common::ops::*;

/// GET /metrics from inside the server namespace.
fn scrape(ns: &Netns, addr: SocketAddr) -> Result<String> {
    ns.enter(move || -> Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
        ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
        Ok(body.to_string())
    })?
}

fn metric(text: &str, name_and_labels: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

/// The endpoint passes promtool's checks, and its numbers are `synguard stats --json`'s.
#[test]
fn metrics_pass_promtool_and_match_stats() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let maddr: SocketAddr = "127.0.0.1:9724".parse()?;
    let sg = fx.synguard(&[
        "--ports",
        "80",
        "--mode",
        "always",
        "--metrics-addr",
        "127.0.0.1:9724",
    ])?;
    fx.connections(10)?;

    // Counters move with stray traffic (neighbour discovery): compare when two scrapes agree.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (text, stats) = loop {
        let a = scrape(fx.ns(), maddr)?;
        let stats = sg.stats()?;
        let b = scrape(fx.ns(), maddr)?;
        if a == b {
            break (a, stats);
        }
        if Instant::now() > deadline {
            bail!("metrics never settled");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let file = std::env::temp_dir().join(format!("{}-metrics.txt", fx.lab.id));
    std::fs::write(&file, &text)?;
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file)?)
        .output()
        .context("running promtool (Debian package prometheus; cargo xtask setup installs it)")?;
    let _ = std::fs::remove_file(&file);
    ensure!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let iface = fx.iface();
    for r in REASONS {
        let verdict = match r.verdict() {
            synguard_common::reason::Verdict::Pass => "pass",
            synguard_common::reason::Verdict::Tx => "tx",
            synguard_common::reason::Verdict::Drop => "drop",
        };
        let labels = format!(
            "synguard_packets_total{{device=\"{iface}\",reason=\"{}\",verdict=\"{verdict}\"}}",
            r.name()
        );
        assert_eq!(metric(&text, &labels), Some(stats.packets(r)), "{labels}");
    }
    // 20 connections: each SYN got a cookie, or was one of the kernel's refresh SYNs.
    assert!(
        stats.packets(Reason::TxSynAckCookie) + stats.packets(Reason::PassSynListenerRefresh) >= 20
    );
    assert_eq!(
        metric(
            &text,
            &format!("synguard_cookies_sent_total{{device=\"{iface}\"}}")
        ),
        Some(stats.event(Event::CookieSent))
    );
    assert_eq!(
        metric(
            &text,
            &format!("synguard_cookies_accepted_total{{device=\"{iface}\"}}")
        ),
        Some(stats.event(Event::CookieAckAccepted))
    );
    assert_eq!(
        metric(
            &text,
            &format!("synguard_cookies_active{{device=\"{iface}\"}}")
        ),
        Some(1)
    );
    assert_eq!(
        metric(
            &text,
            &format!("synguard_mode{{device=\"{iface}\",mode=\"always\"}}")
        ),
        Some(1)
    );
    assert!(text.contains("synguard_build_info{version=\""));
    assert!(sg.stop()?.success());
    check_monitoring_files(&text)
}

/// The metric families a scrape describes (`# TYPE name kind`).
fn families(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `synguard_*` name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("synguard_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// The Grafana dashboard and the alert rules name only metrics that /metrics serves, the rules
/// pass promtool, and the README's metrics table lists every family served.
fn check_monitoring_files(scraped: &str) -> Result<()> {
    let served = families(scraped);
    let dashboard = std::fs::read_to_string(repo_file("monitoring/grafana-dashboard.json"))?;
    let dash: serde_json::Value = serde_json::from_str(&dashboard).context("dashboard JSON")?;
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    ensure!(
        exprs.len() >= 10,
        "only {} queries in the dashboard",
        exprs.len()
    );
    let rules_path = repo_file("monitoring/synguard-rules.yml");
    let rules = std::fs::read_to_string(&rules_path)?;
    for (what, text) in exprs
        .iter()
        .map(|e| ("dashboard", e.as_str()))
        .chain([("alert rules", rules.as_str())])
    {
        let names = metric_names(text);
        ensure!(
            !names.is_empty() || what == "dashboard",
            "{what}: no metric"
        );
        for name in names {
            ensure!(
                served.contains(&name),
                "{what} names {name}, which /metrics does not serve"
            );
        }
    }
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules_path)
        .output()
        .context("running promtool")?;
    ensure!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let readme = std::fs::read_to_string(repo_file("README.md"))?;
    for name in &served {
        ensure!(
            readme.contains(&format!("| `{name}`")),
            "the README's metrics table misses {name}"
        );
    }
    Ok(())
}

/// Every query of the dashboard (panel targets and annotations).
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v.as_str() {
                    Some(e) if k == "expr" => out.push(e.to_string()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}

/// `status --json` says what runs where, with the settings and kernel changes.
#[test]
fn status_json_fields() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let sg = fx.synguard(&[
        "--ports",
        "80,443",
        "--mode",
        "auto",
        "--syn-threshold",
        "400",
        "--hold",
        "2",
    ])?;
    let st = fx.status()?;
    eprintln!("{st:#}");
    assert_eq!(st["iface"], fx.iface());
    assert_eq!(st["attached"], true);
    assert_eq!(st["process_running"], true);
    assert_eq!(st["pid"], sg.pid().unwrap());
    assert!(st["program_id"].as_u64().unwrap() > 0);
    assert_eq!(st["xdp_mode"], "native");
    assert_eq!(st["mode"], "auto");
    assert_eq!(st["cookies_active"], false);
    assert_eq!(st["ports"], serde_json::json!([80, 443]));
    assert_eq!(st["syn_threshold"], 400);
    assert_eq!(st["syn_off_threshold"], 200);
    assert_eq!(st["hold_s"], 2.0);
    assert_eq!(st["attach"], "fresh");
    let changed: Vec<&str> = st["sysctl_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(changed.contains(&"net.ipv4.tcp_timestamps"), "{changed:?}");
    assert!(st["errors"].as_array().unwrap().is_empty(), "{st}");
    assert!(sg.stop()?.success());
    let st = fx.status()?;
    assert_eq!(st["attached"], false);
    Ok(())
}

/// Auto mode after a flood that simply stops: no SYN comes to make the program look again, yet
/// within the hold time (plus a bounded margin) cookies go off, `tcp_syncookies` is back to its
/// value before the flood, and every rate shown (status, stats, metrics) is zero.
#[test]
fn auto_mode_ends_on_time_after_a_flood() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let idle = fx.sysctl("net.ipv4.tcp_syncookies")?;
    let maddr: SocketAddr = "127.0.0.1:9725".parse()?;
    let hold = Duration::from_secs(2);
    let sg = fx.synguard(&[
        "--ports",
        "80",
        "--mode",
        "auto",
        "--syn-threshold",
        "2000",
        "--hold",
        "2",
        "--metrics-addr",
        "127.0.0.1:9725",
    ])?;
    let spec = FloodSpec {
        kind: FloodKind::Syn,
        dst: SERVER_V4,
        port: common::PORT,
        count: 60_000,
        interval_us: 20,
        spoof: Some(spoof_addr(74)),
    };
    let (report, ended) =
        Flood::start(&fx.lab.attacker, spec)?.wait_dating_end(&fx.lab.attacker)?;
    eprintln!("flood: {} SYNs, {:.0} pps", report.sent(), report.pps());
    ensure!(!report.killed, "hping3 did not finish within its deadline");
    let st = fx.status()?;
    assert_eq!(
        st["cookies_active"], true,
        "the flood turned cookies on: {st}"
    );
    assert_eq!(fx.sysctl("net.ipv4.tcp_syncookies")?, "2");

    // Silence from here on. Off within hold + margin (two windows, the tick, reading status).
    let margin = Duration::from_millis(1500);
    let off = wait_for(
        "cookies off",
        (hold + margin).saturating_sub(ended.elapsed()),
        || {
            let st = fx.status().ok()?;
            (st["cookies_active"] == false).then_some(st)
        },
    )?;
    let took = ended.elapsed();
    eprintln!("cookies off {took:?} after the flood's last SYN: {off}");
    // The hold starts at the last window at or above the off threshold, about when the flood ended.
    assert!(
        took + Duration::from_millis(300) >= hold,
        "off before the hold: {took:?}"
    );
    assert_eq!(off["mode"], "auto");
    assert_eq!(off["syn_rate_pps"], 0);
    assert_eq!(fx.sysctl("net.ipv4.tcp_syncookies")?, idle);
    let ends = off["flood_events"].as_array().unwrap();
    assert_eq!(ends.last().unwrap()["kind"], "end", "{ends:?}");

    let stats = fx.cli(&[
        "stats",
        "--iface",
        fx.iface(),
        "--json",
        "--count",
        "2",
        "--interval",
        "0.5",
    ])?;
    let last = Stats::parse(stats.lines().last().context("no stats line")?)?;
    assert_eq!(last.syn_rate_pps, 0);
    assert!(!last.cookies_active);
    assert_eq!(last.ports["80"].rate, 0.0, "{stats}");
    assert_eq!(last.event(Event::CookieModeOff), 1, "the off is counted");
    let text = scrape(fx.ns(), maddr)?;
    let iface = fx.iface();
    assert_eq!(
        metric(
            &text,
            &format!("synguard_syn_rate_per_second{{device=\"{iface}\"}}")
        ),
        Some(0)
    );
    assert_eq!(
        metric(
            &text,
            &format!("synguard_cookies_active{{device=\"{iface}\"}}")
        ),
        Some(0)
    );
    assert!(sg.stop()?.success());
    Ok(())
}

/// `status` shows what the maps hold, not the start-up arguments: monitor mode, lists, limits,
/// and the ports after a reload changed them.
#[test]
fn status_shows_what_the_maps_enforce() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let iface = fx.iface().to_string();
    let file = std::env::temp_dir().join(format!("{}-status.toml", fx.lab.id));
    let write = |ports: &str| {
        std::fs::write(
            &file,
            format!(
                "interfaces = [\"{iface}\"]\nports = [{ports}]\nmode = \"always\"\n\
                 monitor = true\nsource_rate = 50\nsource_burst = 10\n\
                 block = [\"198.18.0.200/32\"]\nmetrics_addr = \"127.0.0.1:9726\"\n"
            ),
        )
    };
    write("80")?;
    let sg = fx.synguard(&["--config", &file.to_string_lossy()])?;
    let st = fx.status()?;
    eprintln!("{st:#}");
    assert_eq!(st["mode"], "always");
    assert_eq!(st["monitor"], true);
    assert_eq!(st["ports"], serde_json::json!([80]));
    assert_eq!(st["lists"]["block_v4"], 1);
    assert_eq!(st["limits"]["source_rate_pps"], 50);
    assert_eq!(st["limits"]["source_burst"], 10);
    assert_eq!(st["metrics_addr"], "127.0.0.1:9726");
    assert!(st["netns"].as_u64().is_some_and(|n| n > 0), "{st}");
    let text = fx.cli(&["status", "--iface", &iface])?;
    assert!(text.contains("MONITOR ONLY"), "{text}");
    assert!(text.contains("metrics 127.0.0.1:9726"), "{text}");

    write("80, 8080")?;
    fx.cli(&["reload"])?;
    wait_for(
        "the reloaded ports in status",
        Duration::from_secs(5),
        || {
            let st = fx.status().ok()?;
            (st["ports"] == serde_json::json!([80, 8080])).then_some(())
        },
    )?;
    let text = fx.cli(&["status", "--iface", &iface])?;
    assert!(text.contains("ports [80, 8080]"), "{text}");
    assert!(sg.stop()?.success());
    std::fs::remove_file(&file)?;
    Ok(())
}
