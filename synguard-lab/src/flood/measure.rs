//! One measured run: a fresh lab, one defence, one scenario. Legitimate clients connect
//! continuously and one established connection streams data while the flood runs; a sampler
//! records the rates over time. Everything the lab started is stopped when the run returns, also on
//! error (every piece is an RAII guard, the lab last).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::flood::bulk::Bulk;
use crate::flood::defence::{Active, Defence, PORT};
use crate::flood::generator::{GenReport, GenSpec};
use crate::flood::layout::Layout;
pub use crate::flood::layout::{SENDER_CPU, SERVER_CPU};
use crate::flood::sampler::{CpuTimes, Sample, Sampler, sample_at};
use crate::flood::scenario::{Engine, Scenario, Timeline};
use crate::flood::senders::GenFlood;
use crate::lab::hping::{Flood, FloodKind, FloodSpec};
use crate::lab::kstats::{self, KStats};
use crate::lab::napi::{NapiThreads, process_cpu_s};
use crate::lab::ringstats::RingStats;
use crate::lab::synguard_proc::Stats;
use crate::lab::topology::{Lab, spoof_addr};
use crate::lab::traffic::{Continuous, Server, percentile};
use crate::lab::xdpstats::{self, ProgRun, StatsOn};

/// How long each part of a run lasts.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RunConfig {
    pub lead: Duration,
    pub flood: Duration,
    pub tail: Duration,
}

/// The metric names every run reports (the JSON's contract).
/// - `offered_pps`: what the generator (or hping3) sent per second;
/// - `server_rx_pps`: what arrived at the server's interface per second (what it absorbed);
/// - `replies_pps`: what came back to the attacker (answered SYNs);
/// - `xdp_ns_per_pkt`: run_time_ns / run_cnt of the server's XDP program over the flood;
/// - `server_ns_per_pkt`: the server receive thread's CPU time per arrived frame (XDP, and the
///   stack for whatever XDP passes);
/// - `server_cpu_pct`: those threads' CPU time over the flood's wall time, per server CPU;
/// - `daemon_cpu_pct`: `synguard run`'s own CPU time over the flood time (synguard only);
/// - `lost_ring_pps`: flood frames per second that did not fit into the server's receive rings;
/// - `lost_sender_pps`: bridge route, frames per second lost before the bridge (the attacker
///   veth's peer ring);
/// - `replies_lost_pps`: the server's XDP_TX replies per second that did not fit into its peer's
///   ring;
/// - `gen_ns_per_frame`, `gen_cpu_pct`: the generator threads' CPU time per frame sent and over
///   the flood time (above 100 with two threads): whether the sender or the CPU it got limited
///   `offered_pps`;
/// - `legit_cps`: legitimate connections completed (handshake, 1000 bytes each way, close) per
///   second of the flood: what the one paced client got done. Where the server cannot keep up
///   it completes a handful, each after retransmissions, and `connect_p50_ms` and
///   `connect_p99_ms` then describe those few (`connect_samples`), not the flood's effect.
pub const METRICS: [&str; 21] = [
    "offered_pps",
    "server_rx_pps",
    "replies_pps",
    "drops_pps",
    "xdp_ns_per_pkt",
    "server_ns_per_pkt",
    "legit_attempts",
    "legit_success_pct",
    "legit_cps",
    "connect_samples",
    "connect_p50_ms",
    "connect_p99_ms",
    "established_mbps",
    "server_cpu_pct",
    "daemon_cpu_pct",
    "sender_cpu_pct",
    "lost_ring_pps",
    "lost_sender_pps",
    "replies_lost_pps",
    "gen_ns_per_frame",
    "gen_cpu_pct",
];

#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Values of [`METRICS`]; `None` when undefined (latency with no successful connection).
    pub metrics: BTreeMap<String, Option<f64>>,
    /// synguard's drops per second by reason during the flood (empty for other defences).
    pub drops_by_reason: BTreeMap<String, f64>,
    /// Growth of the server kernel's counters over the flood.
    pub kernel: BTreeMap<String, u64>,
    pub generator: Option<GenReport>,
    pub windows_s: Vec<(f64, f64)>,
    pub timeline: Vec<Sample>,
    /// Connect latencies (us) of the legitimate clients during the flood.
    pub latencies_us: Vec<u64>,
}

/// Runs one scenario against one defence in a fresh lab.
pub fn run(
    scenario: &Scenario,
    defence: Defence,
    layout: Layout,
    cfg: &RunConfig,
    synguard_bin: &Path,
    interrupted: &AtomicBool,
) -> Result<RunResult> {
    let mut lab = Lab::with_server_queues(layout.queues()).context("building the lab")?;
    lab.sink_replies()?;
    // The generator's XDP_TX frames leave the attacker's veth only into a peer with XDP. This
    // attached program also keeps each BPF_PROG_TEST_RUN call from waiting out RCU grace periods
    // (~20 ms per call without any XDP program attached, docs/measuring.md).
    let _atk_peer = lab.attach_peer_pass("atk")?;
    let server_rx = lab.server_receive_threads(layout.server_cpus())?;
    let active = defence.apply(&lab, synguard_bin)?;
    let addr = SocketAddr::from((lab.server.v4, PORT));
    let server = Server::start(&lab.server.ns, &[addr])?;
    // Established before the flood, after the defence (SYNPROXY kills earlier ones).
    let bulk_bytes = Arc::new(AtomicU64::new(0));
    let bulk = Bulk::start(&lab.client.ns, addr, bulk_bytes.clone())?;
    let clients = Continuous::start(&lab.client.ns, vec![addr], Duration::from_millis(10))?;
    let timeline = Timeline::new(scenario, cfg.lead, cfg.flood, cfg.tail);
    let sampler = Sampler::start(&lab, bulk_bytes)?;
    let out = drive(
        &lab,
        (scenario, layout),
        &timeline,
        &active,
        &clients,
        &server_rx,
        interrupted,
    )?;
    let samples = sampler.stop()?;
    let after_cl = clients.stop();
    drop(bulk);
    drop(server);
    drop(active);
    let latencies =
        after_cl.latencies_us[out.clients_before.latencies_us.len()..out.latency_end].to_vec();
    let drops = drops_by_reason(out.sg_before.as_ref(), out.sg_after.as_ref(), out.send_s);
    Ok(RunResult {
        metrics: metrics(&out, &timeline, &samples, &latencies, &drops),
        drops_by_reason: drops,
        kernel: kernel_deltas(&out.k_before, &out.k_after),
        generator: out.generator,
        windows_s: timeline
            .windows
            .iter()
            .map(|(a, b)| (a.as_secs_f64(), b.as_secs_f64()))
            .collect(),
        timeline: samples,
        latencies_us: latencies,
    })
}

/// The values of [`METRICS`] for one run.
fn metrics(
    out: &Driven,
    timeline: &Timeline,
    samples: &[Sample],
    latencies: &[u64],
    drops: &BTreeMap<String, f64>,
) -> BTreeMap<String, Option<f64>> {
    let span = timeline.span();
    let (s0, s1) = (
        sample_at(samples, span.0.as_secs_f64()),
        sample_at(samples, span.1.as_secs_f64()),
    );
    let before_cl = &out.clients_before;
    let attempts = (out.clients_end.ok + out.clients_end.failed)
        .saturating_sub(before_cl.ok + before_cl.failed);
    let ok = out.clients_end.ok.saturating_sub(before_cl.ok);
    let span_s = (span.1 - span.0).as_secs_f64();
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Option<f64>| m.insert(k.to_string(), v);
    put("offered_pps", Some(out.offered_pps));
    put("server_rx_pps", Some(out.arrived_pps));
    put(
        "replies_pps",
        Some(out.replies as f64 / out.send_s.max(1e-9)),
    );
    // Drops by reason come from synguard's counters: other defences have none to read.
    let drops_total = out
        .sg_after
        .is_some()
        .then(|| drops.values().fold(0.0, |a, b| a + b));
    put("drops_pps", drops_total);
    put(
        "xdp_ns_per_pkt",
        out.xdp.and_then(|(a, b)| b.ns_per_run_since(&a)),
    );
    put(
        "server_ns_per_pkt",
        (out.arrived > 0).then(|| out.server_thread_s * 1e9 / out.arrived as f64),
    );
    put("legit_attempts", Some(attempts as f64));
    put(
        "legit_success_pct",
        Some(if attempts == 0 {
            0.0
        } else {
            100.0 * ok as f64 / attempts as f64
        }),
    );
    put("legit_cps", Some(ok as f64 / span_s.max(1e-9)));
    put("connect_samples", Some(latencies.len() as f64));
    put(
        "connect_p50_ms",
        percentile(latencies, 50.0).map(|u| u as f64 / 1000.0),
    );
    put(
        "connect_p99_ms",
        percentile(latencies, 99.0).map(|u| u as f64 / 1000.0),
    );
    put(
        "established_mbps",
        Some(s1.bulk_bytes.saturating_sub(s0.bulk_bytes) as f64 * 8.0 / 1e6 / span_s),
    );
    put(
        "server_cpu_pct",
        Some(100.0 * out.server_thread_s / out.server_wall_s.max(1e-9) / out.server_cpus as f64),
    );
    put(
        "daemon_cpu_pct",
        out.daemon_s
            .map(|s| 100.0 * s / out.server_wall_s.max(1e-9)),
    );
    put("sender_cpu_pct", Some(out.cpu_busy[SENDER_CPU]));
    for (k, v) in loss_metrics(out) {
        put(k, v);
    }
    m
}

/// Where frames were lost and what the generator's CPU time bought (see [`METRICS`]).
fn loss_metrics(out: &Driven) -> [(&'static str, Option<f64>); 5] {
    let per_s = |n: u64| Some(n as f64 / out.send_s.max(1e-9));
    let (r0, r1) = &out.rings;
    // The peer's transmit drops include its redirected frames the ring refused
    // (`veth_get_stats64` adds the server queues' `peer_tq_xdp_xmit_err`): not added again.
    let lost = |r: &Rings| r.server_peer.tx_dropped() + r.server.rx_drops();
    let generator = out.generator.as_ref();
    [
        ("lost_ring_pps", per_s(lost(r1).saturating_sub(lost(r0)))),
        (
            "lost_sender_pps",
            per_s(
                r1.attacker
                    .xmit_errors()
                    .saturating_sub(r0.attacker.xmit_errors()),
            ),
        ),
        (
            "replies_lost_pps",
            per_s(r1.server.tx_errors().saturating_sub(r0.server.tx_errors())),
        ),
        (
            "gen_ns_per_frame",
            generator.and_then(GenReport::cpu_ns_per_frame),
        ),
        (
            "gen_cpu_pct",
            generator.map(|g| 100.0 * g.cpu_s / out.send_s.max(1e-9)),
        ),
    ]
}

/// The server's receive path (RPS) on its own CPU, away from the generator
/// (docs/veth-and-nics.md, "RPS").
/// `ip netns exec` mounts the namespace's own /sys, where the veth's queue lives.
pub fn steer_receive(lab: &Lab) -> Result<()> {
    let mask = format!("{:x}", 1u32 << SERVER_CPU);
    let file = format!("/sys/class/net/{}/queues/rx-0/rps_cpus", lab.server.ifname);
    crate::lab::netns::run_checked(std::process::Command::new("ip").args([
        "netns",
        "exec",
        lab.server.ns.name(),
        "sh",
        "-c",
        &format!("echo {mask} > {file}"),
    ]))
    .context("setting RPS on the server's interface")?;
    Ok(())
}

/// What happened while the flood ran.
struct Driven {
    /// Seconds the generator (or hping3) sent: what every rate of the flood is divided by.
    send_s: f64,
    /// The server's replies to the flood, as [`crate::flood::sampler::Sample::replies`] counts
    /// them, from just before to just after the flood.
    replies: u64,
    offered_pps: f64,
    /// Frames the server's interface received while the flood ran, per second of sending.
    arrived_pps: f64,
    arrived: u64,
    /// CPUs the server's receive threads are pinned to.
    server_cpus: usize,
    generator: Option<GenReport>,
    clients_before: crate::lab::traffic::ContinuousStats,
    clients_end: crate::lab::traffic::ContinuousStats,
    latency_end: usize,
    sg_before: Option<Stats>,
    sg_after: Option<Stats>,
    k_before: KStats,
    k_after: KStats,
    cpu_busy: Vec<f64>,
    /// The server's XDP program's counters at the flood's start and end (none attached: `None`).
    xdp: Option<(ProgRun, ProgRun)>,
    /// The veths' ring counters at the flood's start and end.
    rings: (Rings, Rings),
    /// CPU seconds of the server's receive threads over the flood, and the wall time that
    /// covered.
    server_thread_s: f64,
    server_wall_s: f64,
    /// CPU seconds of `synguard run` over the flood, when it is the defence.
    daemon_s: Option<f64>,
}

/// Waits out the lead-in, floods each window, snapshots the counters at the flood's ends, waits
/// out the tail.
fn drive(
    lab: &Lab,
    (scenario, layout): (&Scenario, Layout),
    timeline: &Timeline,
    active: &Active,
    clients: &Continuous,
    server_rx: &NapiThreads,
    interrupted: &AtomicBool,
) -> Result<Driven> {
    let t0 = Instant::now();
    sleep_until(t0 + timeline.lead, interrupted)?;
    // Run-time statistics only while the flood runs (lab::xdpstats): off again when `stats`
    // drops, on every way out of this function.
    let stats = StatsOn::enable()?;
    let prog = xdpstats::attached_prog_id(&lab.server.ns, &lab.server.ifname)?;
    let xdp0 = prog.map(xdpstats::read).transpose()?;
    let daemon = active.synguard_pid().map(|p| p as i32);
    let daemon0 = daemon.map(process_cpu_s).transpose()?;
    // The server's intake and its receive threads' CPU time, read together right before and
    // right after the flood: per-packet cost and busy share cover the same frames and time.
    let k_before = KStats::read(&lab.server.ns)?;
    let replies0 = replies(lab)?;
    let (thread0, wall0) = (server_rx.cpu_s()?, Instant::now());
    let sg_before = active.synguard_stats()?;
    let clients_before = clients.snapshot();
    let cpu0 = CpuTimes::read()?;
    let rings0 = Rings::read(lab)?;
    let (mut sent, mut busy_s) = (0u64, 0f64);
    let mut generator: Option<GenReport> = None;
    for &(start, end) in &timeline.windows {
        sleep_until(t0 + start, interrupted)?;
        let (n, secs, report) = flood_window(lab, scenario, layout, end - start, interrupted)?;
        sent += n;
        busy_s += secs;
        generator = match (generator, report) {
            (Some(g), Some(r)) => Some(g.merge(&r, g.elapsed_s + r.elapsed_s)),
            (g, r) => g.or(r),
        };
    }
    let server_thread_s = server_rx.cpu_s()? - thread0;
    let server_wall_s = wall0.elapsed().as_secs_f64();
    let k_after = KStats::read(&lab.server.ns)?;
    let replies = replies(lab)?.saturating_sub(replies0);
    let cpu_busy = CpuTimes::read()?.busy_pct_since(&cpu0);
    let rings = (rings0, Rings::read(lab)?);
    let daemon_s = match (daemon, daemon0) {
        (Some(pid), Some(t0)) => Some(process_cpu_s(pid)? - t0),
        _ => None,
    };
    let xdp1 = prog.map(xdpstats::read).transpose()?;
    drop(stats);
    let clients_end = clients.snapshot();
    let sg_after = active.synguard_stats()?;
    sleep_until(t0 + timeline.total, interrupted)?;
    let arrived = k_after.delta(&k_before, &format!("Dev.{}.RxPackets", lab.server.ifname));
    Ok(Driven {
        send_s: busy_s,
        replies,
        offered_pps: sent as f64 / busy_s.max(1e-9),
        arrived_pps: arrived as f64 / busy_s.max(1e-9),
        arrived,
        server_cpus: server_rx.cpus(),
        generator,
        latency_end: clients_end.latencies_us.len(),
        clients_before,
        clients_end,
        sg_before,
        sg_after,
        k_before,
        k_after,
        cpu_busy,
        xdp: xdp0.zip(xdp1),
        rings,
        server_thread_s,
        server_wall_s,
        daemon_s,
    })
}

/// Frames the server sent to anyone but the client so far (flood::sampler, `replies`).
fn replies(lab: &Lab) -> Result<u64> {
    let peer = KStats::read(lab.bridge_ns())?.get(&format!("Dev.{}.RxPackets", lab.server_peer()));
    let client = KStats::read(&lab.client.ns)?.get(&format!("Dev.{}.RxPackets", lab.client.ifname));
    Ok(peer.saturating_sub(client))
}

/// The ring counters of the veths a flood crosses (lab::ringstats).
struct Rings {
    /// The server's bridge-side peer: direct-route frames and skbs from the bridge that did not
    /// fit into the server's rings (`tx_dropped` counts both; `xmit_errors` the frames alone).
    server_peer: RingStats,
    /// The server's veth: skbs that did not fit into its rings by its own count (`rx_drops`),
    /// its XDP_TX replies that did not fit into its peer's (`tx_errors`).
    server: RingStats,
    /// The attacker's veth: bridge-route frames that did not fit into its peer's ring, lost
    /// before the bridge (`xmit_errors`).
    attacker: RingStats,
}

impl Rings {
    fn read(lab: &Lab) -> Result<Rings> {
        Ok(Rings {
            server_peer: RingStats::read(lab.bridge_ns(), &lab.server_peer())?,
            server: RingStats::read(&lab.server.ns, &lab.server.ifname)?,
            attacker: RingStats::read(&lab.attacker.ns, &lab.attacker.ifname)?,
        })
    }
}

/// Floods for `len`: returns frames sent, seconds spent and the generator's report.
fn flood_window(
    lab: &Lab,
    scenario: &Scenario,
    layout: Layout,
    len: Duration,
    interrupted: &AtomicBool,
) -> Result<(u64, f64, Option<GenReport>)> {
    match scenario.engine {
        Engine::Generator {
            mix,
            route,
            sources,
        } => {
            let spec = GenSpec {
                mix,
                route,
                sources,
                dst: lab.server.v4,
                dport: PORT,
                // Bounded well above what this machine can send in `len`.
                count: (len.as_secs_f64() * 20e6) as u64,
                duration: len,
            };
            let flood = GenFlood::start_with(lab, spec, &layout.senders(route))?;
            let r = flood.wait()?;
            anyhow::ensure!(!interrupted.load(Ordering::Relaxed), "interrupted");
            Ok((r.sent, r.elapsed_s, Some(r)))
        }
        Engine::Hping => {
            let spec = FloodSpec {
                kind: FloodKind::Syn,
                dst: lab.server.v4,
                port: PORT,
                count: crate::lab::hping::MAX_COUNT,
                interval_us: 1,
                spoof: Some(spoof_addr(0)),
            };
            let flood = Flood::start(&lab.attacker, spec)?;
            if let Some(pid) = flood.pid() {
                pin_pid(pid, SENDER_CPU)?;
            }
            sleep_until(Instant::now() + len, interrupted)?;
            let r = flood.stop(&lab.attacker)?;
            Ok((r.sent(), r.elapsed.as_secs_f64(), None))
        }
    }
}

/// Pins a process (hping3) to one CPU.
pub fn pin_pid(pid: u32, cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid as i32), &set)
        .context("pinning hping3")
}

/// Sleeps until `t`, in short steps so Ctrl-C ends the run promptly.
fn sleep_until(t: Instant, interrupted: &AtomicBool) -> Result<()> {
    while Instant::now() < t {
        anyhow::ensure!(!interrupted.load(Ordering::Relaxed), "interrupted");
        std::thread::sleep((t - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

fn drops_by_reason(
    before: Option<&Stats>,
    after: Option<&Stats>,
    secs: f64,
) -> BTreeMap<String, f64> {
    let (Some(before), Some(after)) = (before, after) else {
        return BTreeMap::new();
    };
    after
        .verdicts
        .iter()
        .filter(|(name, _)| name.starts_with("drop_"))
        .map(|(name, v)| {
            let was = before.verdicts.get(name).map_or(0, |b| b.packets);
            (name.clone(), v.packets.saturating_sub(was) as f64 / secs)
        })
        .filter(|(_, pps)| *pps > 0.0)
        .collect()
}

fn kernel_deltas(before: &KStats, after: &KStats) -> BTreeMap<String, u64> {
    [
        kstats::SYNCOOKIES_SENT,
        kstats::SYNCOOKIES_RECV,
        kstats::SYNCOOKIES_FAILED,
        kstats::LISTEN_DROPS,
        kstats::PASSIVE_OPENS,
        kstats::SERVER_RX_DROP,
        "Tcp.OutRsts",
    ]
    .iter()
    .map(|k| (k.to_string(), after.delta(before, k)))
    .collect()
}
