//! A veth's receive path on a kernel thread of its own (threaded NAPI), pinned to one CPU.
//!
//! A veth polls its receive ring (where its XDP program runs) in NAPI, and without threaded NAPI
//! that poll is scheduled on the CPU that *sent* the frame (`__veth_xdp_flush` ->
//! `napi_schedule`): the generator's CPU. RPS moves only what XDP passes on. With
//! `/sys/class/net/<dev>/threaded` set, the poll (XDP and the whole stack behind it) runs in a
//! kthread `napi/<dev>-<id>` that can be pinned, and whose CPU time is the receive path's cost,
//! whatever else the machine runs (docs/measuring.md, "CPUs and busy time").

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::lab::netns::{Netns, run_checked};

/// SCHED_FIFO priority of real-time NAPI threads: ahead of whatever else the lab runs
/// real-time (the flood generator's senders, flood::layout).
pub const REALTIME_PRIO: i32 = 50;

/// Kernel thread names are cut to 15 characters (TASK_COMM_LEN - 1).
const COMM_MAX: usize = 15;

/// The NAPI kthreads of one device.
#[derive(Clone, Debug)]
pub struct NapiThreads {
    pub dev: String,
    pub pids: Vec<i32>,
    /// The distinct CPUs they run on.
    pub cpus: Vec<usize>,
}

/// Switches `dev` (in `ns`) to threaded NAPI, pins its poll threads to `cpu` and, with
/// `realtime`, schedules them SCHED_FIFO: ahead of the machine's other work, as a NIC's interrupt
/// and softirq would be (the kernel's real-time throttling still leaves other tasks 5% of the
/// CPU). The device must already poll in NAPI: a veth does once it has an XDP program or GRO on.
pub fn thread_napi(ns: &Netns, dev: &str, cpu: usize, realtime: bool) -> Result<NapiThreads> {
    thread_napi_on(ns, dev, &[cpu], realtime)
}

/// [`thread_napi`] for a device with several receive queues: one NAPI thread per queue, queue
/// i's pinned to `cpus[i]` (round robin when there are more threads than CPUs).
pub fn thread_napi_on(
    ns: &Netns,
    dev: &str,
    cpus: &[usize],
    realtime: bool,
) -> Result<NapiThreads> {
    anyhow::ensure!(!cpus.is_empty(), "no CPU for the NAPI threads of {dev}");
    let before = napi_pids()?;
    let file = format!("/sys/class/net/{dev}/threaded");
    // `ip netns exec` mounts the namespace's own /sys, where the device lives.
    run_checked(std::process::Command::new("ip").args([
        "netns",
        "exec",
        ns.name(),
        "sh",
        "-c",
        &format!("echo 1 > {file}"),
    ]))
    .with_context(|| format!("switching {dev} to threaded NAPI"))?;
    let prefix: String = format!("napi/{dev}-").chars().take(COMM_MAX).collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut pids = loop {
        let new: Vec<i32> = napi_pids()?
            .difference(&before)
            .copied()
            .filter(|pid| comm(*pid).is_some_and(|c| c.starts_with(&prefix)))
            .collect();
        if !new.is_empty() {
            break new;
        }
        if Instant::now() > deadline {
            bail!("no NAPI thread appeared for {dev}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Threads of one device are created together, one per entry of the device's NAPI list,
    // which the kernel keeps sorted by NAPI ID, highest first (`netif_napi_dev_list_add`,
    // net/core/dev.c): a veth adds its queues' NAPIs in queue order, each at the head, so the
    // last queue's thread is created first. Descending pid order is queue order.
    pids.sort_unstable_by(|a, b| b.cmp(a));
    for (i, &pid) in pids.iter().enumerate() {
        let cpu = cpus[i % cpus.len()];
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).context("CPU index out of range")?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set)
            .with_context(|| format!("pinning NAPI thread {pid} of {dev}"))?;
        if realtime {
            let param = libc::sched_param {
                sched_priority: REALTIME_PRIO,
            };
            // SAFETY: a valid sched_param for a pid; no memory is shared.
            if unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &param) } != 0 {
                bail!(
                    "SCHED_FIFO for NAPI thread {pid}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    let mut on: Vec<usize> = cpus.iter().take(pids.len()).copied().collect();
    on.sort_unstable();
    on.dedup();
    Ok(NapiThreads {
        dev: dev.to_string(),
        pids,
        cpus: on,
    })
}

impl NapiThreads {
    /// CPUs the threads are pinned to.
    pub fn cpus(&self) -> usize {
        self.cpus.len()
    }

    /// CPU time these threads have used so far, in seconds.
    pub fn cpu_s(&self) -> Result<f64> {
        let mut total = 0.0;
        for &pid in &self.pids {
            total +=
                process_cpu_s(pid).with_context(|| format!("NAPI thread {pid} of {}", self.dev))?;
        }
        Ok(total)
    }
}

/// CPU time (user + system) a process or thread has used so far, in seconds.
pub fn process_cpu_s(pid: i32) -> Result<f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    let ticks = parse_cpu_ticks(&stat).context("parsing /proc/PID/stat")?;
    Ok(ticks as f64 / hz)
}

/// utime + stime of a /proc/PID/stat line (fields 14 and 15; the command name in parentheses
/// may hold spaces, so counting starts after its closing parenthesis).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is f[0], so field N is f[N - 3].
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Pids of every NAPI kthread on the machine.
fn napi_pids() -> Result<BTreeSet<i32>> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir("/proc").context("reading /proc")? {
        let Ok(pid) = e?.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if comm(pid).is_some_and(|c| c.starts_with("napi/")) {
            out.insert(pid);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_after_the_command_name() {
        let stat = "42 (napi/a b-8) S 2 0 0 0 -1 2129984 0 0 0 0 17 25 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(42));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }
}
