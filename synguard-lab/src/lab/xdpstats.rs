//! The kernel's run-time statistics of the XDP program attached to a lab interface: run_time_ns
//! and run_cnt, which the kernel keeps only while BPF statistics are on (docs/measuring.md,
//! "bpf_stats under real traffic").
//!
//! Statistics are switched on with `BPF_ENABLE_STATS`, which returns a file descriptor: they stay
//! on while it is open and go off when it closes, also when the process dies. That is the same
//! global switch `kernel.bpf_stats_enabled` flips (one per machine, not per namespace), counted
//! by reference: the sysctl's own value is never written, and other users of the switch keep
//! theirs. While it is on, every BPF program on the machine pays two clock reads per run, so the
//! lab holds it only around a measurement.

use std::os::fd::OwnedFd;

use anyhow::{Context as _, Result, anyhow};

use crate::lab::netns::Netns;

/// BPF run-time statistics, on while this lives.
pub struct StatsOn {
    _fd: OwnedFd,
}

impl StatsOn {
    pub fn enable() -> Result<StatsOn> {
        let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .context("BPF_ENABLE_STATS (run-time statistics)")?;
        Ok(StatsOn { _fd: fd })
    }
}

/// One reading of a program's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgRun {
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

impl ProgRun {
    /// Nanoseconds per run between two readings; `None` without runs.
    pub fn ns_per_run_since(&self, before: &ProgRun) -> Option<f64> {
        let runs = self.run_cnt.checked_sub(before.run_cnt)?;
        let ns = self.run_time_ns.checked_sub(before.run_time_ns)?;
        (runs > 0).then(|| ns as f64 / runs as f64)
    }

    pub fn runs_since(&self, before: &ProgRun) -> u64 {
        self.run_cnt.saturating_sub(before.run_cnt)
    }
}

/// The id of the XDP program attached to `dev` in `ns`, if any (`ip -j -d link show`).
pub fn attached_prog_id(ns: &Netns, dev: &str) -> Result<Option<u32>> {
    let out = ns.ip(&["-j", "-d", "link", "show", "dev", dev])?;
    let json: serde_json::Value = serde_json::from_str(&out).context("parsing ip -j output")?;
    Ok(json[0]["xdp"]["prog"]["id"].as_u64().map(|id| id as u32))
}

/// The program's counters now (`bpftool -j prog show id N`).
pub fn read(prog_id: u32) -> Result<ProgRun> {
    let id = prog_id.to_string();
    let out = crate::lab::netns::run_checked(
        std::process::Command::new("bpftool").args(["-j", "prog", "show", "id", &id]),
    )?;
    parse_bpftool(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| anyhow!("no run counters for program {prog_id} (statistics off?)"))
}

/// run_time_ns and run_cnt of `bpftool -j prog show id N`; a program that never ran since
/// statistics went on has neither field.
fn parse_bpftool(json: &str) -> Option<ProgRun> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("id")?;
    Some(ProgRun {
        run_time_ns: v["run_time_ns"].as_u64().unwrap_or(0),
        run_cnt: v["run_cnt"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_from_bpftool() {
        let r = parse_bpftool(r#"{"id":7,"type":"xdp","run_time_ns":3000,"run_cnt":10}"#);
        assert_eq!(
            r,
            Some(ProgRun {
                run_time_ns: 3000,
                run_cnt: 10
            })
        );
        let idle = parse_bpftool(r#"{"id":7,"type":"xdp"}"#).unwrap();
        assert_eq!(idle.run_cnt, 0);
        assert_eq!(parse_bpftool("[]"), None);
    }

    #[test]
    fn ns_per_run() {
        let a = ProgRun {
            run_time_ns: 1000,
            run_cnt: 10,
        };
        let b = ProgRun {
            run_time_ns: 5000,
            run_cnt: 30,
        };
        assert_eq!(b.ns_per_run_since(&a), Some(200.0));
        assert_eq!(a.ns_per_run_since(&a), None);
        assert_eq!(b.runs_since(&a), 20);
    }
}
