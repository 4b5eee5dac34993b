//! What a run records in the background: the interfaces' packet counters every
//! [`SAMPLE_EVERY`] on a thread of its own, and per-CPU busy time from idle time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;

use crate::lab::netns::Netns;
use crate::lab::topology::Lab;

const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// One sample of cumulative counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Sample {
    pub t_s: f64,
    /// Frames the server's interface received.
    pub server_rx: u64,
    /// The server's replies to the flood (SYN-ACKs for SYN floods, RSTs for ACK floods without a
    /// defence, the XDP_TX floor's echoes): frames the server sent to anyone but the client,
    /// counted where they leave its veth (the bridge-side peer, where `lab_sink` ends them).
    pub replies: u64,
    pub bulk_bytes: u64,
}

/// The last sample at or before `t` (the first if none).
pub fn sample_at(samples: &[Sample], t: f64) -> Sample {
    samples
        .iter()
        .rev()
        .find(|s| s.t_s <= t)
        .or(samples.first())
        .copied()
        .unwrap_or_default()
}

/// Per-CPU idle time from /proc/stat. Busy time is derived from idle time and the wall clock:
/// /proc/stat under-counts bursty softirq time on this kernel (docs/measuring.md).
pub struct CpuTimes {
    at: Instant,
    idle_ticks: Vec<u64>,
}

impl CpuTimes {
    pub fn read() -> Result<CpuTimes> {
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        Ok(CpuTimes {
            at: Instant::now(),
            idle_ticks: parse_idle(&text),
        })
    }

    pub fn busy_pct_since(&self, before: &CpuTimes) -> Vec<f64> {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let wall = (self.at - before.at).as_secs_f64().max(1e-9);
        self.idle_ticks
            .iter()
            .zip(&before.idle_ticks)
            .map(|(a, b)| {
                let idle = a.saturating_sub(*b) as f64 / hz;
                (100.0 * (1.0 - idle / wall)).clamp(0.0, 100.0)
            })
            .collect()
    }
}

/// idle + iowait ticks of each "cpuN" line.
fn parse_idle(stat: &str) -> Vec<u64> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0)
        })
        .collect()
}

/// Samples the counters every [`SAMPLE_EVERY`] on its own thread.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<Sample>>>>,
}

impl Sampler {
    pub fn start(lab: &Lab, bulk_bytes: Arc<AtomicU64>) -> Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let open = |ns: &Netns| {
            std::fs::File::open(ns.path()).with_context(|| format!("opening {}", ns.name()))
        };
        let (srv, br, cli) = (
            open(&lab.server.ns)?,
            open(lab.bridge_ns())?,
            open(&lab.client.ns)?,
        );
        let (srv_if, peer_if, cli_if) = (
            lab.server.ifname.clone(),
            lab.server_peer(),
            lab.client.ifname.clone(),
        );
        let t0 = Instant::now();
        let thread = std::thread::Builder::new()
            .name("lab-sampler".into())
            .spawn(move || -> Result<Vec<Sample>> {
                let mut out = Vec::new();
                while !stop2.load(Ordering::Relaxed) {
                    out.push(Sample {
                        t_s: t0.elapsed().as_secs_f64(),
                        server_rx: rx_packets(&srv, &srv_if)?,
                        replies: rx_packets(&br, &peer_if)?
                            .saturating_sub(rx_packets(&cli, &cli_if)?),
                        bulk_bytes: bulk_bytes.load(Ordering::Relaxed),
                    });
                    std::thread::sleep(SAMPLE_EVERY);
                }
                Ok(out)
            })?;
        Ok(Sampler {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) -> Result<Vec<Sample>> {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().context("sampler joined")?;
        t.join().map_err(|_| anyhow!("sampler panicked"))?
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Receive packets of `iface` in the namespace at `ns` (/proc/thread-self/net/dev shows the
/// namespace of the reading thread, which `setns`es into it first).
fn rx_packets(ns: &std::fs::File, iface: &str) -> Result<u64> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").context("reading net/dev")?;
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim() == iface)
        .and_then(|(_, cols)| cols.split_whitespace().nth(1)?.parse().ok())
        .with_context(|| format!("no {iface} in net/dev"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_ticks_per_cpu() {
        let stat = "cpu  10 0 10 100 5 0 0\ncpu0 5 0 5 50 2 0 0\ncpu1 5 0 5 50 3 0 0\nintr 1\n";
        assert_eq!(parse_idle(stat), vec![52, 53]);
    }

    #[test]
    fn samples_by_time() {
        let s = |t: f64, rx: u64| Sample {
            t_s: t,
            server_rx: rx,
            ..Default::default()
        };
        let v = [s(0.0, 1), s(1.0, 5), s(2.0, 9)];
        assert_eq!(sample_at(&v, 1.5).server_rx, 5);
        assert_eq!(sample_at(&v, -1.0).server_rx, 1);
    }
}
