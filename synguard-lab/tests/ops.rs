//! Operating synguard: restarts during a flood, kill -9 followed by `run` or `detach`, two
//! interfaces in one process, the Prometheus endpoint and `status --json`. Root, namespaces and
//! real traffic, like `e2e.rs`; run with `--test-threads=1`.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use nix::sys::signal::Signal;
use synguard_common::reason::{Event, REASONS, Reason};
use synguard_lab::flood::{Flood, FloodKind, FloodSpec};
use synguard_lab::kstats::{self, KStats};
use synguard_lab::synguard_proc::{self, Stats, Synguard};
use synguard_lab::topology::{SERVER_V4, spoof_addr};
use synguard_lab::traffic::{self, Continuous, ContinuousStats, Server, Transfer};
use synguard_lab::{Lab, netns::Netns};

const PORT: u16 = 80;
const PIN_BASE: &str = "/sys/fs/bpf/synguard";
const RUN_DIR: &str = "/run/synguard";
/// Where the hand-over exit status comes from (`synguard::daemon::run::HAND_OVER_EXIT`).
const HAND_OVER_EXIT: i32 = 75;

fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the ops tests need root");
}

/// A lab with a server on port 80 (IPv4 and IPv6). Declared before the guard of every test, so
/// the guard's `detach` runs while the namespaces still exist.
struct Fixture {
    /// Held for its listeners; dropped (stopped) with the fixture.
    _server: Server,
    lab: Lab,
}

impl Fixture {
    fn new() -> Result<Fixture> {
        require_root();
        let lab = Lab::new()?;
        let server = Server::start(&lab.server.ns, &[addr(false), addr(true)])?;
        Ok(Fixture {
            _server: server,
            lab,
        })
    }

    fn ns(&self) -> &Netns {
        &self.lab.server.ns
    }

    fn iface(&self) -> &str {
        &self.lab.server.ifname
    }

    fn synguard(&self, args: &[&str]) -> Result<Synguard> {
        Synguard::start(&bin()?, self.ns(), self.iface(), args)
    }

    /// `synguard <args>` in the server namespace; its stdout, or an error with its stderr.
    fn cli(&self, args: &[&str]) -> Result<String> {
        let out = synguard_proc::run_once(&bin()?, &self.ns().path(), args)?;
        ensure!(
            out.status.success(),
            "synguard {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn status(&self) -> Result<serde_json::Value> {
        let text = self.cli(&["status", "--json", "--iface", self.iface()])?;
        let v: serde_json::Value = serde_json::from_str(text.trim()).context("status --json")?;
        Ok(v["interfaces"][0].clone())
    }

    fn stats(&self, iface: &str) -> Result<Stats> {
        synguard_proc::stats_once(&bin()?, &self.ns().path(), iface)
    }

    fn connections(&self, n: usize) -> Result<()> {
        for v6 in [false, true] {
            for (i, r) in traffic::run_batch(&self.lab.client.ns, addr(v6), n, small)?
                .into_iter()
                .enumerate()
            {
                r.with_context(|| format!("connection {i} to {}", addr(v6)))?;
            }
        }
        Ok(())
    }

    fn sysctl(&self, key: &str) -> Result<String> {
        self.ns().sysctl_get(key)
    }

    fn kstats(&self) -> Result<KStats> {
        KStats::read(self.ns())
    }
}

/// Removes whatever synguard left for these interfaces (pins live on the host's bpffs, not in
/// the lab's namespaces), also when a test fails half-way.
struct Cleanup<'a> {
    ns: &'a Netns,
    ifaces: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for iface in &self.ifaces {
            let left = Path::new(PIN_BASE).join(iface).exists()
                || Path::new(RUN_DIR).join(format!("{iface}.json")).exists();
            if left && let Ok(bin) = bin() {
                let _ =
                    synguard_proc::run_once(&bin, &self.ns.path(), &["detach", "--iface", iface]);
            }
        }
    }
}

fn cleanup<'a>(fx: &'a Fixture, ifaces: &[&str]) -> Cleanup<'a> {
    Cleanup {
        ns: fx.ns(),
        ifaces: ifaces.iter().map(|s| s.to_string()).collect(),
    }
}

fn bin() -> Result<std::path::PathBuf> {
    synguard_proc::binary()
}

fn addr(v6: bool) -> SocketAddr {
    synguard_lab::topology::server_addr(v6, PORT)
}

fn small(_: usize) -> Transfer {
    Transfer {
        upload: 1000,
        download: 1000,
    }
}

fn assert_no_failures(what: &str, s: &ContinuousStats) {
    eprintln!("{what}: {} ok, {} failed", s.ok, s.failed);
    assert!(s.ok > 0, "{what}: no legit connection completed");
    assert_eq!(
        s.failed, 0,
        "{what}: legit connections failed: {:?}",
        s.last_error
    );
}

/// Polls `f` every 100 ms until it returns Some, for at most `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A taken-over directory is readable from the start (the old program is live), so the new
/// `run` is known to be done only when it says so.
fn wait_log(sg: &Synguard, needle: &str) -> Result<()> {
    wait_for(needle, Duration::from_secs(20), || {
        sg.log_text().contains(needle).then_some(())
    })
    .with_context(|| format!("run log:\n{}", sg.log_text()))
}

fn pins_of(iface: &str) -> std::path::PathBuf {
    Path::new(PIN_BASE).join(iface)
}

fn xdp_attached(ns: &Netns, iface: &str) -> Result<bool> {
    let out = ns.ip(&["-j", "link", "show", "dev", iface])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v[0].get("xdp").is_some())
}

/// A restart (hand-over, then a new `run`) in the middle of a SYN flood: the pinned link keeps
/// the old program answering until the new one replaces it in one step, so the kernel sees only
/// the refresh SYNs, every legit connection completes, and the counters go on from where they
/// were.
#[test]
fn restart_during_flood_leaves_no_gap() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let args = ["--ports", "80,443", "--mode", "always"];
    let first = fx.synguard(&args)?;
    let s0 = first.stats()?;
    let k0 = fx.kstats()?;
    let client = Continuous::start(
        &fx.lab.client.ns,
        vec![addr(false), addr(true)],
        Duration::from_millis(20),
    )?;
    let started = Instant::now();
    let flood = Flood::start(
        &fx.lab.attacker,
        FloodSpec {
            kind: FloodKind::Syn,
            dst: SERVER_V4,
            port: PORT,
            count: 250_000,
            interval_us: 20,
            spoof: Some(spoof_addr(72)),
        },
    )?;
    std::thread::sleep(Duration::from_millis(800));
    let before = first.stats()?;
    let status = first.signal_and_wait(Signal::SIGUSR1)?;
    assert_eq!(status.code(), Some(HAND_OVER_EXIT), "hand-over exit status");
    ensure!(
        xdp_attached(fx.ns(), fx.iface())?,
        "program gone after the hand-over"
    );
    let second = fx.synguard(&args)?;
    wait_log(&second, "replaced the running program")?;
    let after_restart = second.stats()?;
    let report = flood.wait(&fx.lab.attacker)?;
    let legit = client.stop();
    let s1 = second.stats()?;
    let k1 = fx.kstats()?;
    let secs = started.elapsed().as_secs() + 1;
    eprintln!("kernel: {}", k1.summary(&k0));
    eprintln!(
        "synguard: SYNs to the kernel: {} (cookies off) {} (refresh) {} (recently closed)",
        s1.delta(&s0, Reason::PassSynToKernel),
        s1.delta(&s0, Reason::PassSynListenerRefresh),
        s1.delta(&s0, Reason::PassSynRecentClose)
    );
    eprintln!(
        "synguard: {} cookie ACKs passed, {} bad ACKs dropped, {} established",
        s1.delta(&s0, Reason::PassCookieAck),
        s1.delta(&s0, Reason::DropAckBadCookie),
        s1.delta(&s0, Reason::PassEstablished)
    );
    assert_no_failures("legit across the restart", &legit);

    // Counters continue: never below what the first program had counted.
    for r in [Reason::TxSynAckCookie, Reason::PassEstablished] {
        assert!(
            after_restart.packets(r) >= before.packets(r),
            "{} went back from {} to {} across the restart",
            r.name(),
            before.packets(r),
            after_restart.packets(r)
        );
    }
    let cookies = s1.delta(&s0, Reason::TxSynAckCookie);
    let refresh = s1.delta(&s0, Reason::PassSynListenerRefresh);
    assert!(
        cookies + refresh >= report.sent(),
        "{cookies} cookies + {refresh} refresh counted, {} flood SYNs sent: some were not seen",
        report.sent()
    );
    assert_eq!(s1.delta(&s0, Reason::PassSynToKernel), 0);
    // The kernel answered only the refresh SYNs (about one per listener per second).
    let kernel_cookies = k1.delta(&k0, kstats::SYNCOOKIES_SENT);
    assert!(
        kernel_cookies <= 5 * secs + 10,
        "kernel sent {kernel_cookies} cookies in {secs} s: flood SYNs reached it"
    );
    assert!(second.stop()?.success());
    ensure!(
        !pins_of(fx.iface()).exists(),
        "pins left after a clean stop"
    );
    Ok(())
}

/// kill -9 leaves the program protecting from its pinned link; the next `run` takes it over
/// (counters kept) and, when it stops, restores the settings the killed one changed.
#[test]
fn kill9_then_run_adopts() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let original_ts = fx.sysctl("net.ipv4.tcp_timestamps")?;
    let original_sc = fx.sysctl("net.ipv4.tcp_syncookies")?;
    let first = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    fx.connections(5)?;
    let s0 = first.stats()?;
    first.signal_and_wait(Signal::SIGKILL)?;

    let st = fx.status()?;
    assert_eq!(st["attached"], true, "{st}");
    assert_eq!(st["process_running"], false, "{st}");
    // Still protecting: cookies go on without a process.
    fx.connections(5)?;
    let s1 = fx.stats(fx.iface())?;
    assert!(
        s1.delta(&s0, Reason::TxSynAckCookie) >= 10,
        "no cookies after kill -9"
    );

    let second = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    wait_log(&second, "taking over from synguard pid")?;
    wait_log(&second, "replaced the running program")?;
    let s2 = second.stats()?;
    assert!(s2.packets(Reason::TxSynAckCookie) >= s1.packets(Reason::TxSynAckCookie));
    fx.connections(5)?;
    assert!(second.stop()?.success());
    assert_eq!(fx.sysctl("net.ipv4.tcp_timestamps")?, original_ts);
    assert_eq!(fx.sysctl("net.ipv4.tcp_syncookies")?, original_sc);
    ensure!(
        !pins_of(fx.iface()).exists(),
        "pins left after a clean stop"
    );
    ensure!(!xdp_attached(fx.ns(), fx.iface())?, "XDP still attached");
    Ok(())
}

/// kill -9 then `detach`: program, pins and run-info gone, kernel settings restored, and the
/// kernel alone serves connections again.
#[test]
fn kill9_then_detach_cleans_up() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let original_ts = fx.sysctl("net.ipv4.tcp_timestamps")?;
    let original_sc = fx.sysctl("net.ipv4.tcp_syncookies")?;
    let sg = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    assert_eq!(fx.sysctl("net.ipv4.tcp_syncookies")?, "2");
    sg.signal_and_wait(Signal::SIGKILL)?;
    ensure!(
        xdp_attached(fx.ns(), fx.iface())?,
        "kill -9 removed the program"
    );

    fx.cli(&["detach", "--iface", fx.iface()])?;
    ensure!(!xdp_attached(fx.ns(), fx.iface())?, "XDP still attached");
    ensure!(!pins_of(fx.iface()).exists(), "pins left");
    ensure!(
        !Path::new(RUN_DIR)
            .join(format!("{}.json", fx.iface()))
            .exists(),
        "run-info left"
    );
    assert_eq!(fx.sysctl("net.ipv4.tcp_timestamps")?, original_ts);
    assert_eq!(fx.sysctl("net.ipv4.tcp_syncookies")?, original_sc);
    let st = fx.status()?;
    assert_eq!(st["attached"], false, "{st}");
    fx.connections(5)?;
    // A second detach finds nothing and says so without failing.
    fx.cli(&["detach", "--iface", fx.iface()])?;
    Ok(())
}

/// One process guards two interfaces: both attached, each counting its own traffic.
#[test]
fn two_interfaces_one_process() -> Result<()> {
    let fx = Fixture::new()?;
    // A second link between server and client: a veth created in the server namespace with
    // its peer moved straight into the client's (no device in the host namespace).
    let second = format!("{}b", fx.iface());
    let second = &second[second.len().saturating_sub(15)..];
    fx.ns().ip(&[
        "link",
        "add",
        second,
        "type",
        "veth",
        "peer",
        "name",
        second,
        "netns",
        fx.lab.client.ns.name(),
    ])?;
    let (srv2, cli2) = (Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2));
    fx.ns()
        .ip(&["addr", "add", &format!("{srv2}/24"), "dev", second])?;
    fx.ns().ip(&["link", "set", second, "up"])?;
    fx.lab
        .client
        .ns
        .ip(&["addr", "add", &format!("{cli2}/24"), "dev", second])?;
    fx.lab.client.ns.ip(&["link", "set", second, "up"])?;
    let server2 = Server::start(fx.ns(), &[SocketAddr::new(srv2.into(), PORT)])?;
    let _clean = cleanup(&fx, &[fx.iface(), second]);

    // Auto mode with a high threshold: SYNs go to the kernel, so the second link needs no XDP
    // program on its peer (XDP_TX on veth does, see the platform notes).
    let sg = fx.synguard(&[
        "--iface",
        second,
        "--ports",
        "80",
        "--syn-threshold",
        "100000",
    ])?;
    let a0 = fx.stats(fx.iface())?;
    let b0 = wait_for("the second interface", Duration::from_secs(20), || {
        fx.stats(second).ok()
    })?;
    fx.connections(5)?;
    for (i, r) in traffic::run_batch(
        &fx.lab.client.ns,
        SocketAddr::new(srv2.into(), PORT),
        7,
        small,
    )?
    .into_iter()
    .enumerate()
    {
        r.with_context(|| format!("connection {i} over {second}"))?;
    }
    let a1 = fx.stats(fx.iface())?;
    let b1 = fx.stats(second)?;
    assert_eq!(
        a1.delta(&a0, Reason::PassSynToKernel),
        10,
        "first interface SYNs"
    );
    assert_eq!(
        b1.delta(&b0, Reason::PassSynToKernel),
        7,
        "second interface SYNs"
    );
    ensure!(
        xdp_attached(fx.ns(), second)?,
        "second interface not attached"
    );
    server2.stop();
    assert!(sg.stop()?.success());
    for iface in [fx.iface(), second] {
        ensure!(!xdp_attached(fx.ns(), iface)?, "{iface} still attached");
        ensure!(!pins_of(iface).exists(), "{iface}: pins left");
    }
    Ok(())
}

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
            "synguard_packets_total{{iface=\"{iface}\",reason=\"{}\",verdict=\"{verdict}\"}}",
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
            &format!("synguard_cookies_sent_total{{iface=\"{iface}\"}}")
        ),
        Some(stats.event(Event::CookieSent))
    );
    assert_eq!(
        metric(
            &text,
            &format!("synguard_cookies_accepted_total{{iface=\"{iface}\"}}")
        ),
        Some(stats.event(Event::CookieAckAccepted))
    );
    assert_eq!(
        metric(
            &text,
            &format!("synguard_cookies_active{{iface=\"{iface}\"}}")
        ),
        Some(1)
    );
    assert_eq!(
        metric(
            &text,
            &format!("synguard_mode{{iface=\"{iface}\",mode=\"always\"}}")
        ),
        Some(1)
    );
    assert!(text.contains("synguard_build_info{version=\""));
    assert!(sg.stop()?.success());
    Ok(())
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
