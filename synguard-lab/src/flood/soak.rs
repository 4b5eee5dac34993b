//! `cargo xtask lab --soak [--duration 600s]`: a long mixed flood with legitimate traffic against
//! synguard in auto mode with its policy on, in one fresh lab. Every [`PERIOD`] the same cycle of
//! floods runs ([`CYCLE`]: SYN, bogus ACK, hping3 SYN, mixed, from the lab's attacker subnet
//! only) and one line reports legitimate success, memory, CPU, map occupancy and counters
//! ([`soak_probe`] reads, [`soak_verdict`] judges). The run ends with one verdict line per
//! property. Every wait is bounded; every piece is an RAII guard (floods, clients, server,
//! synguard, the lab's namespaces and the processes in them, by PID), dropped on any exit.
//!
//! [`soak_probe`]: crate::flood::soak_probe
//! [`soak_verdict`]: crate::flood::soak_verdict

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

use crate::flood::defence::PORT;
use crate::flood::generator::{self, GenFlood, GenSpec, Mix, Route};
use crate::flood::measure::{SENDER_CPU, pin_pid, steer_receive};
use crate::flood::soak_probe::{self as probe, Occupancy};
use crate::flood::soak_verdict::{self as verdict, Accounting, Bounds, Probe, Verdict};
use crate::lab::hping::{self, Flood, FloodKind, FloodSpec};
use crate::lab::kstats::KStats;
use crate::lab::synguard_proc::{Stats, Synguard};
use crate::lab::topology::{Lab, spoof_addr};
use crate::lab::traffic::{Continuous, ContinuousStats, Server, percentile};
use synguard_common::maps::CLOSING_SLOTS;
use synguard_common::policy::{REFLECT_SLOTS, SOURCE_SLOTS};
use synguard_common::reason::Event;

/// One report line, one flood cycle.
pub const PERIOD: Duration = Duration::from_secs(30);
pub const DEFAULT_DURATION: Duration = Duration::from_secs(600);
/// Auto mode with the policy on. The threshold is far below any flood and far above the
/// legitimate clients' SYN rate; the source rate lets a legitimate client through (about 100
/// SYN/s at most) and cuts each flood source; the reflection cap binds under the generator's 128
/// sources. The block list covers the top 8 pool addresses, the allow list an unused one.
pub const SYNGUARD_ARGS: [&str; 16] = [
    "--ports",
    "80",
    "--mode",
    "auto",
    "--syn-threshold",
    "2000",
    "--hold",
    "1",
    "--source-rate",
    "500",
    "--reflect-cap",
    "40000",
    "--block",
    "198.18.0.248/29",
    "--allow",
    "198.18.0.4/32",
];
const LISTS: (usize, usize) = (1, 1);
/// Minimum legitimate success. The IPv4 clients share the flood's /24, so the reflection cap
/// also drops some of their SYNs: they retry (1 s) and must still get through.
const MIN_SUCCESS_PCT: f64 = 99.0;
/// Time for retransmissions and closes to settle before the final accounting.
const SETTLE: Duration = Duration::from_secs(3);

/// What one slice of the cycle sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Phase {
    Gen(Mix),
    /// hping3 SYNs from one pool address, a different one every cycle.
    Hping,
    Quiet,
}

/// The cycle: (phase, start, end) in seconds into the period. Quiet gaps let auto mode switch
/// off and on again (hold 1 s) every cycle.
pub const CYCLE: [(Phase, u64, u64); 6] = [
    (Phase::Gen(Mix::Syn), 0, 8),
    (Phase::Quiet, 8, 11),
    (Phase::Gen(Mix::Ack), 11, 19),
    (Phase::Hping, 19, 22),
    (Phase::Gen(Mix::Mixed), 22, 27),
    (Phase::Quiet, 27, 30),
];

/// Parses "600s", "10m", "90" (seconds).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = match s.strip_suffix('s') {
        Some(n) => (n, 1),
        None => match s.strip_suffix('m') {
            Some(n) => (n, 60),
            None => (s, 1),
        },
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("duration {s:?}: expected e.g. 600s, 10m or 90"))?;
    ensure!(n > 0, "duration {s:?} must be positive");
    Ok(Duration::from_secs(n * unit))
}

/// Runs the soak and prints its lines; returns the verdicts (the caller fails if one fails).
/// `cookies`: synguard's `--cookies` value (the lab's default is the kernel's).
pub fn run(
    duration: Duration,
    cookies: &str,
    synguard_bin: &Path,
    stop: &AtomicBool,
) -> Result<Vec<Verdict>> {
    // Growth is judged by comparing halves: at least two periods after the baseline.
    ensure!(
        duration >= 2 * PERIOD,
        "a soak needs at least {}s (two report periods)",
        2 * PERIOD.as_secs()
    );
    let lab = Lab::new().context("building the lab")?;
    let _atk_peer = lab.attach_peer_pass("atk")?;
    steer_receive(&lab)?;
    let args = [&SYNGUARD_ARGS[..], &["--cookies", cookies]].concat();
    let sg = Synguard::start(synguard_bin, &lab.server.ns, &lab.server.ifname, &args)?;
    let pid = sg.pid().context("synguard has no pid")?;
    let v4 = SocketAddr::from((lab.server.v4, PORT));
    let v6 = SocketAddr::from((lab.server.v6, PORT));
    let server = Server::start(&lab.server.ns, &[v4, v6])?;
    let soak = Soak::new(&lab, &sg, pid)?;
    eprintln!(
        "soak: {}s of floods with legitimate traffic, synguard {}",
        duration.as_secs(),
        args.join(" ")
    );
    let base = soak.probe(0.0, &ContinuousStats::default(), 0, 0)?;
    println!(
        "{} (baseline)",
        verdict::period_line(&base, &base, &bounds())
    );
    let clients = Continuous::start(&lab.client.ns, vec![v4, v6], Duration::from_millis(10))?;
    let probes = soak.periods(base, &clients, duration, stop)?;
    let cl = clients.stop();
    let acct = soak.finish(&cl, stop)?;
    let alive = probe::alive(pid);
    drop(server);
    let clean = alive && sg.stop().is_ok_and(|s| s.success());
    Ok(verdict::verdicts(&probes, &acct, &cl, clean, &bounds()))
}

fn bounds() -> Bounds {
    Bounds {
        source_slots: SOURCE_SLOTS.into(),
        reflect_slots: REFLECT_SLOTS.into(),
        closing_slots: CLOSING_SLOTS.into(),
        allow: LISTS.0,
        block: LISTS.1,
        min_success_pct: MIN_SUCCESS_PCT,
        rss_slack_kib: verdict::RSS_SLACK_KIB,
    }
}

/// The running soak: the lab, the daemon, and the baseline every figure is counted from.
struct Soak<'a> {
    lab: &'a Lab,
    sg: &'a Synguard,
    pid: u32,
    pins: std::path::PathBuf,
    /// Counters before any traffic, and the interface's receive counter around them.
    stats0: Stats,
    rx0: (u64, u64),
    /// The server kernel's counters before any traffic.
    k0: KStats,
}

impl<'a> Soak<'a> {
    fn new(lab: &'a Lab, sg: &'a Synguard, pid: u32) -> Result<Soak<'a>> {
        let before = probe::rx_packets(&lab.server)?;
        let stats0 = sg.stats()?;
        let after = probe::rx_packets(&lab.server)?;
        Ok(Soak {
            lab,
            sg,
            pid,
            pins: probe::pin_dir(&lab.server)?,
            stats0,
            rx0: (before, after),
            k0: KStats::read(&lab.server.ns)?,
        })
    }

    /// Runs the cycles, one probe and one line after each; returns the probes, `base` first.
    fn periods(
        &self,
        base: Probe,
        clients: &Continuous,
        duration: Duration,
        stop: &AtomicBool,
    ) -> Result<Vec<Probe>> {
        let mut probes = vec![base];
        let t0 = Instant::now();
        let (mut offered, mut lat_seen) = (0, 0);
        for cycle in 0..duration.as_secs().div_ceil(PERIOD.as_secs()) {
            let start = t0 + PERIOD * cycle as u32;
            let end = (start + PERIOD).min(t0 + duration);
            offered += self.cycle(cycle, start, end, stop)?;
            let cl = clients.snapshot();
            let p = self.probe(t0.elapsed().as_secs_f64(), &cl, lat_seen, offered)?;
            lat_seen = cl.latencies_us.len();
            let prev = &probes[probes.len() - 1];
            println!("{}", verdict::period_line(&p, prev, &bounds()));
            probes.push(p);
        }
        Ok(probes)
    }

    /// After the clients stopped: lets the traffic settle, then the final accounting, with every
    /// counter's growth and the server kernel's on their own lines.
    fn finish(&self, cl: &ContinuousStats, stop: &AtomicBool) -> Result<Accounting> {
        if let Some(e) = &cl.last_error {
            println!("soak legit: last failure: {e}");
        }
        sleep_until(Instant::now() + SETTLE, stop)?;
        let (acct, end) = self.accounting()?;
        println!("{}", counters_line(&self.stats0, &end));
        let k = KStats::read(&self.lab.server.ns)?;
        println!(
            "soak kernel: {} OutRsts=+{}",
            k.summary(&self.k0),
            k.delta(&self.k0, "Tcp.OutRsts")
        );
        Ok(acct)
    }

    /// Runs the cycle's phases from `start` until `end`; returns the flood frames sent.
    fn cycle(&self, n: u64, start: Instant, end: Instant, stop: &AtomicBool) -> Result<u64> {
        let mut sent = 0;
        for (phase, a, b) in CYCLE {
            let from = start + Duration::from_secs(a);
            let to = (start + Duration::from_secs(b)).min(end);
            if from >= to {
                continue;
            }
            sleep_until(from, stop)?;
            sent += self.phase(phase, n, to, stop)?;
        }
        sleep_until(end, stop)?;
        Ok(sent)
    }

    /// Floods (or not) until `to`; returns the frames sent.
    fn phase(&self, phase: Phase, cycle: u64, to: Instant, stop: &AtomicBool) -> Result<u64> {
        let len = to.saturating_duration_since(Instant::now());
        let lab = self.lab;
        match phase {
            Phase::Quiet => sleep_until(to, stop).map(|()| 0),
            Phase::Gen(mix) => {
                let spec = GenSpec {
                    mix,
                    route: Route::Bridge,
                    sources: 128,
                    dst: lab.server.v4,
                    dport: PORT,
                    // Well above what this machine sends in `len`, within the generator's cap.
                    count: ((len.as_secs_f64() * 20e6) as u64).clamp(1, generator::MAX_COUNT),
                    duration: len.max(Duration::from_millis(1)),
                };
                let flood = GenFlood::start(lab, spec, Some(SENDER_CPU))?;
                let waited = sleep_until(to, stop);
                let sent = flood.stop()?.sent;
                waited.map(|()| sent)
            }
            Phase::Hping => {
                let spec = FloodSpec {
                    kind: FloodKind::Syn,
                    dst: lab.server.v4,
                    port: PORT,
                    count: hping::MAX_COUNT,
                    interval_us: 1,
                    // Pool addresses below the blocked /29, one per cycle.
                    spoof: Some(spoof_addr((cycle % 120) as u8)),
                };
                let flood = Flood::start(&lab.attacker, spec)?;
                if let Some(pid) = flood.pid() {
                    pin_pid(pid, SENDER_CPU)?;
                }
                let waited = sleep_until(to, stop);
                let sent = flood.stop(&lab.attacker)?.sent();
                waited.map(|()| sent)
            }
        }
    }

    /// One probe: clients' totals, the daemon's memory and CPU, the maps, the counters.
    fn probe(
        &self,
        t_s: f64,
        cl: &ContinuousStats,
        lat_from: usize,
        offered: u64,
    ) -> Result<Probe> {
        let occ: Occupancy = probe::occupancy(&self.pins)?;
        let s = self.sg.stats()?;
        let d = |v: u64, v0: u64| v.saturating_sub(v0);
        let s0 = &self.stats0;
        let ev = |e: Event| s.event_delta(s0, e);
        let lat = &cl.latencies_us[lat_from.min(cl.latencies_us.len())..];
        Ok(Probe {
            t_s,
            legit_ok: cl.ok,
            legit_failed: cl.failed,
            connect_p99_ms: percentile(lat, 99.0).map(|u| u as f64 / 1e3),
            rss_kib: probe::rss_kib(self.pid)?,
            cpu_s: probe::cpu_s(self.pid)?,
            sources: occ.sources,
            reflect: occ.reflect,
            closing_used: occ.closing_used,
            closing_live: occ.closing_live,
            allow: occ.allow,
            block: occ.block,
            event_lost: ev(Event::FloodEventLost),
            source_tracked: ev(Event::SourceTracked),
            close_replaced: ev(Event::CloseRecordReplaced),
            pass: d(s.totals.pass, s0.totals.pass),
            tx: d(s.totals.tx, s0.totals.tx),
            drop: d(s.totals.drop, s0.totals.drop),
            cookies: ev(Event::CookieSent),
            mode_on: ev(Event::CookieModeOn),
            offered,
        })
    }

    /// Sum of every verdict counter's growth against the interface's, both read around.
    fn accounting(&self) -> Result<(Accounting, Stats)> {
        let before = probe::rx_packets(&self.lab.server)?;
        let s = self.sg.stats()?;
        let after = probe::rx_packets(&self.lab.server)?;
        let total = |st: &Stats| st.verdicts.values().map(|v| v.packets).sum::<u64>();
        let counted = total(&s).checked_sub(total(&self.stats0));
        let Some(counted) = counted else {
            bail!("verdict counters went backwards");
        };
        let acct = Accounting {
            counted,
            rx_min: before.saturating_sub(self.rx0.1),
            rx_max: after.saturating_sub(self.rx0.0),
        };
        Ok((acct, s))
    }
}

/// The growth of every verdict counter and event over the soak, nonzero ones only.
fn counters_line(before: &Stats, after: &Stats) -> String {
    let grew = |now: u64, was: u64| (now > was).then(|| now - was);
    let reasons = after.verdicts.iter().filter_map(|(name, v)| {
        let was = before.verdicts.get(name).map_or(0, |b| b.packets);
        grew(v.packets, was).map(|d| format!("{name}=+{d}"))
    });
    let events = after.events.iter().filter_map(|(name, e)| {
        let was = before.events.get(name).map_or(0, |b| b.total);
        grew(e.total, was).map(|d| format!("{name}=+{d}"))
    });
    format!(
        "soak counters: {} | events: {}",
        reasons.collect::<Vec<_>>().join(" "),
        events.collect::<Vec<_>>().join(" ")
    )
}

/// Sleeps until `t` in short steps, so SIGINT/SIGTERM ends the soak promptly.
fn sleep_until(t: Instant, stop: &AtomicBool) -> Result<()> {
    while Instant::now() < t {
        ensure!(!stop.load(Ordering::Relaxed), "interrupted");
        std::thread::sleep((t - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("600s").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
    }

    #[test]
    fn the_cycle_fits_one_period_in_order() {
        let mut t = 0;
        for (_, a, b) in CYCLE {
            assert_eq!(a, t, "phases are contiguous");
            assert!(b >= a);
            t = b;
        }
        assert_eq!(t, PERIOD.as_secs());
    }
}
