//! `synguard-demo`: builds the lab, protects the server with `synguard run`, keeps legit
//! clients connecting, floods the server with a short bounded hping3 SYN flood, and prints what
//! synguard and the clients see each second, then a summary. Tears the lab down at the end, on
//! error and on Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Parser;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use synguard_common::reason::{Event, Reason};
use synguard_lab::lab::hping::{Flood, FloodKind, FloodReport, FloodSpec};
use synguard_lab::lab::kstats::{self, KStats};
use synguard_lab::lab::synguard_proc::{self, Stats, Synguard};
use synguard_lab::lab::topology::{SERVER_V4, SERVER_V6, spoof_addr};
use synguard_lab::lab::traffic::{Continuous, ContinuousStats, Server, percentile};
use synguard_lab::lab::{Lab, netns};

#[derive(Parser)]
#[command(
    name = "synguard-demo",
    about = "Live SYN-flood demo in the lab (needs root)"
)]
struct Args {
    /// The synguard binary (default: $SYNGUARD_BIN, else `synguard` next to this binary).
    #[arg(long)]
    synguard: Option<PathBuf>,
    /// `auto` (cookies only during the flood) or `always`.
    #[arg(long, default_value = "auto")]
    mode: String,
    /// Whose SYN cookies: `auto` (synguard's default: its own where the kernel has
    /// `bpf_sk_assign_tcp_reqsk`, the kernel's otherwise), `own` or `kernel`.
    #[arg(long, default_value = "auto")]
    cookies: String,
    /// SYN rate that turns cookies on in auto mode.
    #[arg(long, default_value_t = 2000)]
    syn_threshold: u32,
    /// Seconds of quiet traffic before and after the flood.
    #[arg(long, default_value_t = 4)]
    quiet_secs: u64,
    /// Seconds of flood (hping3 is stopped after this).
    #[arg(long, default_value_t = 10)]
    flood_secs: u64,
    /// Microseconds between flood packets (hping3 -i uN).
    #[arg(long, default_value_t = 10)]
    flood_interval_us: u32,
    /// Run without synguard (the kernel's own cookies alone), for comparison.
    #[arg(long)]
    kernel_only: bool,
}

const PORT: u16 = 80;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM end the demo loop instead of the process, so the lab is torn down.
fn catch_signals() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(sig, &action) }.context("installing signal handler")?;
    }
    Ok(())
}

fn main() -> Result<()> {
    env_logger_init();
    let args = Args::parse();
    catch_signals()?;
    let bin = match &args.synguard {
        Some(p) => p.clone(),
        None => synguard_proc::binary()?,
    };
    let result = demo(&args, &bin);
    let left = netns::lab_namespaces()?
        .into_iter()
        .filter(|n| n.starts_with(&format!("sgl-{}-", std::process::id())))
        .count();
    println!("lab torn down ({left} namespaces left)");
    result
}

fn env_logger_init() {
    // The lab logs through `log`; the demo prints its own lines, so warnings go to stderr plainly.
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                eprintln!("{}: {}", r.level(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
}

fn demo(args: &Args, bin: &std::path::Path) -> Result<()> {
    println!("building the lab (server 198.18.0.1 / 2001:2::1, client .2, attacker .3) ...");
    let lab = Lab::new()?;
    let server = Server::start(
        &lab.server.ns,
        &[
            SocketAddr::new(SERVER_V4.into(), PORT),
            SocketAddr::new(SERVER_V6.into(), PORT),
        ],
    )?;
    let sg = if args.kernel_only {
        println!("no synguard: the server kernel's own SYN cookies only");
        None
    } else {
        let threshold = args.syn_threshold.to_string();
        let sg = Synguard::start(
            bin,
            &lab.server.ns,
            &lab.server.ifname,
            &[
                "--ports",
                "80,443",
                "--mode",
                &args.mode,
                // Always given: without it the lab's helper picks the kernel's cookies for the
                // tests written before own cookies existed.
                "--cookies",
                &args.cookies,
                "--syn-threshold",
                &threshold,
                "--hold",
                "2",
            ],
        )?;
        println!(
            "synguard run --mode {} --cookies {} attached to the server's interface",
            args.mode, args.cookies
        );
        if let Some(choice) = cookie_choice(&sg.log_text()) {
            println!("  {choice}");
        }
        Some(sg)
    };
    let k0 = KStats::read(&lab.server.ns)?;
    let s0 = sg.as_ref().map(Synguard::stats).transpose()?;
    let client = Continuous::start(
        &lab.client.ns,
        vec![
            SocketAddr::new(SERVER_V4.into(), PORT),
            SocketAddr::new(SERVER_V6.into(), PORT),
        ],
        Duration::from_millis(20),
    )?;
    let flood = run_timeline(args, &lab, sg.as_ref(), &client)?;
    let legit = client.stop();
    let s1 = sg.as_ref().map(Synguard::stats).transpose()?;
    let k1 = KStats::read(&lab.server.ns)?;
    drop(server);
    summary(&k0, &k1, &legit, flood.as_ref());
    if let (Some(s0), Some(s1)) = (&s0, &s1) {
        synguard_summary(s0, s1);
    }
    if let Some(sg) = sg {
        println!("synguard run exited: {}", sg.stop()?);
    }
    Ok(())
}

/// The line in which `synguard run` says whose cookies it uses and why, without its log prefix.
fn cookie_choice(log: &str) -> Option<&str> {
    log.lines()
        .filter_map(|l| l.split_once("] ").map(|(_, msg)| msg))
        .find(|msg| msg.contains("own cookies (") || msg.contains("kernel cookies"))
}

/// Quiet, flood, quiet; one stats line per second. Returns the flood's report if it ran.
fn run_timeline(
    args: &Args,
    lab: &Lab,
    sg: Option<&Synguard>,
    client: &Continuous,
) -> Result<Option<FloodReport>> {
    let start = Instant::now();
    let flood_at = Duration::from_secs(args.quiet_secs);
    let flood_end = flood_at + Duration::from_secs(args.flood_secs);
    let end = flood_end + Duration::from_secs(args.quiet_secs);
    let mut flood: Option<Flood> = None;
    let mut report = None;
    let mut seen = client.snapshot();
    let mut kseen = KStats::read(&lab.server.ns)?;
    let mut sg_seen = sg.map(Synguard::stats).transpose()?;
    header();
    let mut tick = start;
    while start.elapsed() < end && !INTERRUPTED.load(Ordering::Relaxed) {
        let t = start.elapsed();
        if t >= flood_at && t < flood_end && flood.is_none() && report.is_none() {
            println!("--- hping3 SYN flood from the attacker (spoofing 198.18.0.200) ---");
            flood = Some(Flood::start(&lab.attacker, flood_spec(args))?);
        }
        let running = flood.as_mut().is_some_and(Flood::is_running);
        if let Some(f) = flood.take_if(|_| t >= flood_end || !running) {
            let r = f.stop(&lab.attacker)?;
            println!(
                "--- flood over: {} SYNs in {:.1?} ({:.0} pps) ---",
                r.sent(),
                r.elapsed,
                r.pps()
            );
            report = Some(r);
        }
        tick += Duration::from_secs(1);
        // Pacing the display, not synchronising anything.
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        let now = client.snapshot();
        let know = KStats::read(&lab.server.ns)?;
        let stats = sg.map(Synguard::stats).transpose()?;
        let kernel_cookies = know.delta(&kseen, kstats::SYNCOOKIES_SENT);
        let rates = stats.as_ref().zip(sg_seen.as_ref());
        line(t, rates, kernel_cookies, &seen, &now);
        (seen, kseen, sg_seen) = (now, know, stats);
    }
    if let Some(f) = flood {
        report = Some(f.stop(&lab.attacker)?);
    }
    Ok(report)
}

fn flood_spec(args: &Args) -> FloodSpec {
    let nominal = args.flood_secs * 1_000_000 / u64::from(args.flood_interval_us.max(1));
    FloodSpec {
        kind: FloodKind::Syn,
        dst: SERVER_V4,
        port: PORT,
        count: nominal.clamp(1, synguard_lab::lab::hping::MAX_COUNT),
        interval_us: args.flood_interval_us,
        spoof: Some(spoof_addr(72)),
    }
}

const COLUMNS: [&str; 11] = [
    "t/s", "xdp", "syn/s", "cookie/s", "drop/s", "pass/s", "kernel/s", "legit ok", "fail",
    "p50 ms", "p99 ms",
];

fn header() {
    let cols: Vec<String> = COLUMNS.iter().map(|c| format!("{c:>9}")).collect();
    println!("{}", cols.join(""));
    println!(
        "  (kernel/s: SYN cookies the server's own TCP stack sent, i.e. SYNs that reached it)"
    );
}

/// Packets per second of the verdicts whose names start with `prefix`, between two samples.
fn rate(now: &Stats, before: &Stats, prefix: &str) -> f64 {
    let secs = now.time_ns.saturating_sub(before.time_ns) as f64 / 1e9;
    let packets = |s: &Stats| -> u64 {
        s.verdicts
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.packets)
            .sum()
    };
    if secs > 0.0 {
        packets(now).saturating_sub(packets(before)) as f64 / secs
    } else {
        0.0
    }
}

/// One line per second; synguard's columns are "-" without synguard. `s` is (this sample, the
/// previous one): each `stats --count 1` sample stands alone, so rates come from the two.
fn line(
    t: Duration,
    s: Option<(&Stats, &Stats)>,
    kernel_cookies: u64,
    before: &ContinuousStats,
    now: &ContinuousStats,
) {
    let fresh = &now.latencies_us[before.latencies_us.len().min(now.latencies_us.len())..];
    let ms = |p: f64| {
        percentile(fresh, p).map_or("-".to_string(), |us| format!("{:.2}", us as f64 / 1000.0))
    };
    let sg: [String; 5] = match s {
        Some((s, before)) => [
            if s.cookies_active { "ON" } else { "off" }.to_string(),
            s.syn_rate_pps.to_string(),
            format!("{:.0}", rate(s, before, "tx_")),
            format!("{:.0}", rate(s, before, "drop_")),
            format!("{:.0}", rate(s, before, "pass_")),
        ],
        None => std::array::from_fn(|_| "-".to_string()),
    };
    let cols = [
        t.as_secs().to_string(),
        sg[0].clone(),
        sg[1].clone(),
        sg[2].clone(),
        sg[3].clone(),
        sg[4].clone(),
        kernel_cookies.to_string(),
        (now.ok - before.ok).to_string(),
        (now.failed - before.failed).to_string(),
        ms(50.0),
        ms(99.0),
    ];
    let cols: Vec<String> = cols.iter().map(|c| format!("{c:>9}")).collect();
    println!("{}", cols.join(""));
}

fn summary(k0: &KStats, k1: &KStats, legit: &ContinuousStats, flood: Option<&FloodReport>) {
    println!("\n=== summary ===");
    if let Some(f) = flood {
        println!(
            "flood: {} SYNs sent by hping3 in {:.1?} ({:.0} pps)",
            f.sent(),
            f.elapsed,
            f.pps()
        );
    }
    let us = |p| {
        legit
            .latency_percentile_us(p)
            .map_or("-".into(), |v: u64| format!("{:.2} ms", v as f64 / 1000.0))
    };
    println!(
        "legit clients: {} connections ok, {} failed; connect p50 {}, p99 {}",
        legit.ok,
        legit.failed,
        us(50.0),
        us(99.0)
    );
    if let Some(e) = &legit.last_error {
        println!("  last failure: {e}");
    }
    println!("server kernel: {}", k1.summary(k0));
    println!(
        "SYNs that reached the server's TCP stack (kernel cookies sent): {}",
        k1.delta(k0, kstats::SYNCOOKIES_SENT)
    );
}

fn synguard_summary(s0: &Stats, s1: &Stats) {
    for r in [
        Reason::TxSynAckCookie,
        Reason::PassSynListenerRefresh,
        Reason::PassSynToKernel,
        Reason::PassCookieAck,
        Reason::PassEstablished,
        Reason::DropAckBadCookie,
    ] {
        println!("synguard {:<26} {:>10}", r.name(), s1.delta(s0, r));
    }
    for e in [Event::CookieModeOn, Event::CookieModeOff] {
        println!(
            "synguard event {:<20} {:>10}",
            e.name(),
            s1.event_delta(s0, e)
        );
    }
}
