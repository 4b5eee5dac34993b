//! Bounded hping3 floods from the attacker namespace. Every flood has a packet count (`-c`), a
//! send interval (`-i uN`) and an outer deadline after which hping3 is killed. Destinations must
//! be inside the lab's 198.18.0.0/24; spoofed sources only from the pool 198.18.0.128/25 (never
//! `--rand-source`, which spoofs arbitrary public addresses).

use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::lab::topology::{Node, in_spoof_pool};

/// Upper bound on one flood's packet count, whatever the caller asks.
pub const MAX_COUNT: u64 = 2_000_000;
/// Upper bound on how long one flood may run before it is killed.
pub const MAX_DURATION: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodKind {
    /// `-S`: bare SYNs.
    Syn,
    /// `-A`: bare ACKs with random sequence numbers (no handshake behind them).
    Ack,
}

#[derive(Clone, Copy, Debug)]
pub struct FloodSpec {
    pub kind: FloodKind,
    pub dst: Ipv4Addr,
    pub port: u16,
    pub count: u64,
    /// Microseconds between packets (`-i uN`); hping3's real rate is lower (usleep granularity).
    pub interval_us: u32,
    /// Source address to spoof (must be in the spoof pool); `None` sends from the attacker's own.
    pub spoof: Option<Ipv4Addr>,
}

impl FloodSpec {
    /// The hping3 arguments, after checking that the flood stays inside the lab.
    pub fn args(&self) -> Result<Vec<String>> {
        let [a, b, c, _] = self.dst.octets();
        ensure!(
            (a, b, c) == (198, 18, 0),
            "flood target {} is outside 198.18.0.0/24",
            self.dst
        );
        ensure!(
            (1..=MAX_COUNT).contains(&self.count),
            "flood count {} not in 1..={MAX_COUNT}",
            self.count
        );
        let mut args = vec![
            "-q".to_string(),
            match self.kind {
                FloodKind::Syn => "-S",
                FloodKind::Ack => "-A",
            }
            .to_string(),
            "-p".into(),
            self.port.to_string(),
            "-c".into(),
            self.count.to_string(),
            "-i".into(),
            format!("u{}", self.interval_us),
        ];
        if let Some(src) = self.spoof {
            ensure!(
                in_spoof_pool(src.octets()),
                "spoofed source {src} is outside the pool 198.18.0.128/25"
            );
            args.extend(["-a".to_string(), src.to_string()]);
        }
        args.push(self.dst.to_string());
        Ok(args)
    }

    /// How long the flood may take before it is killed: hping3's usleep-paced sending is slower
    /// than the nominal interval, so allow a wide margin, within [`MAX_DURATION`].
    pub fn deadline(&self) -> Duration {
        let nominal = Duration::from_micros(self.count * u64::from(self.interval_us.max(1)));
        (nominal * 4 + Duration::from_secs(10)).min(MAX_DURATION)
    }
}

/// What a finished flood sent.
#[derive(Clone, Debug)]
pub struct FloodReport {
    /// From hping3's closing statistics ("N packets tramitted"), when it printed them.
    pub hping_sent: Option<u64>,
    /// Growth of the attacker's interface tx counter over the flood (includes the odd ARP/ND frame).
    pub tx_packets: u64,
    pub elapsed: Duration,
    /// hping3 hit the deadline and was killed.
    pub killed: bool,
}

impl FloodReport {
    /// Best figure for packets sent: hping3's own count, else the interface counter.
    pub fn sent(&self) -> u64 {
        self.hping_sent.unwrap_or(self.tx_packets)
    }

    /// Average rate over the flood.
    pub fn pps(&self) -> f64 {
        self.sent() as f64 / self.elapsed.as_secs_f64().max(1e-6)
    }
}

/// A running hping3. Killed on drop if still running.
pub struct Flood {
    child: Option<Child>,
    spec: FloodSpec,
    started: Instant,
    tx_before: u64,
}

impl Flood {
    pub fn start(attacker: &Node, spec: FloodSpec) -> Result<Flood> {
        let args = spec.args()?;
        let tx_before = attacker.tx_packets()?;
        // nsenter execs hping3, so the child's pid is hping3's.
        let child = attacker
            .ns
            .command("hping3")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting hping3")?;
        Ok(Flood {
            child: Some(child),
            spec,
            started: Instant::now(),
            tx_before,
        })
    }

    /// hping3's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether hping3 is still sending.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for hping3 to finish (killing it at the deadline) and reports what it sent.
    pub fn wait(self, attacker: &Node) -> Result<FloodReport> {
        let deadline = self.started + self.spec.deadline();
        self.finish(attacker, deadline)
    }

    /// Waits like [`Flood::wait`] and also says when the attacker's interface last sent a frame
    /// (its counter polled every 50 ms while hping3 runs). hping3 may stay up to a second after
    /// its last packet, waiting for replies, so its exit does not date the flood's end.
    pub fn wait_dating_end(mut self, attacker: &Node) -> Result<(FloodReport, Instant)> {
        let deadline = self.started + self.spec.deadline();
        let mut last = (attacker.tx_packets()?, Instant::now());
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let sent = attacker.tx_packets()?;
            if sent != last.0 {
                last = (sent, Instant::now());
            }
        }
        Ok((self.finish(attacker, deadline)?, last.1))
    }

    /// Stops hping3 now (if it still runs) and reports what it sent.
    pub fn stop(self, attacker: &Node) -> Result<FloodReport> {
        self.finish(attacker, Instant::now())
    }

    fn finish(mut self, attacker: &Node, deadline: Instant) -> Result<FloodReport> {
        let mut child = self.child.take().context("flood already finished")?;
        let mut killed = false;
        while child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                stop_child(&mut child);
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let elapsed = self.started.elapsed();
        let out = child
            .wait_with_output()
            .context("collecting hping3 output")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(FloodReport {
            hping_sent: parse_sent(&text),
            tx_packets: attacker.tx_packets()?.saturating_sub(self.tx_before),
            elapsed,
            killed,
        })
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
            let _ = child.wait();
        }
    }
}

/// SIGINT first (hping3 then prints its statistics), SIGKILL if it is still there a second later.
fn stop_child(child: &mut Child) {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGINT);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
}

/// hping3's closing line: "100 packets tramitted, 0 packets received, 100% packet loss" (sic).
fn parse_sent(output: &str) -> Option<u64> {
    output
        .lines()
        .find(|l| l.contains("packets tramitted") || l.contains("packets transmitted"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FloodSpec {
        FloodSpec {
            kind: FloodKind::Syn,
            dst: Ipv4Addr::new(198, 18, 0, 1),
            port: 80,
            count: 10,
            interval_us: 100,
            spoof: Some(Ipv4Addr::new(198, 18, 0, 200)),
        }
    }

    #[test]
    fn builds_bounded_args() {
        let args = spec().args().unwrap();
        assert_eq!(
            args.join(" "),
            "-q -S -p 80 -c 10 -i u100 -a 198.18.0.200 198.18.0.1"
        );
        assert!(!args.iter().any(|a| a.contains("rand")));
    }

    #[test]
    fn refuses_targets_and_sources_outside_the_lab() {
        let mut s = spec();
        s.dst = Ipv4Addr::new(10, 0, 0, 1);
        assert!(s.args().is_err());
        let mut s = spec();
        s.spoof = Some(Ipv4Addr::new(198, 18, 0, 2));
        assert!(s.args().is_err());
        let mut s = spec();
        s.count = 0;
        assert!(s.args().is_err());
        s.count = MAX_COUNT + 1;
        assert!(s.args().is_err());
    }

    #[test]
    fn deadline_is_bounded() {
        let mut s = spec();
        s.count = MAX_COUNT;
        s.interval_us = 1000;
        assert_eq!(s.deadline(), MAX_DURATION);
    }

    #[test]
    fn parses_hping_statistics() {
        let out = "--- 198.18.0.1 hping statistic ---\n\
                   100000 packets tramitted, 0 packets received, 100% packet loss\n";
        assert_eq!(parse_sent(out), Some(100000));
        assert_eq!(parse_sent("nothing"), None);
    }
}
