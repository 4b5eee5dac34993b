//! The flood runs' packet generator: `lab_gen` (synguard-ebpf/src/bin/lab.rs) run with
//! `BPF_PROG_TEST_RUN` in XDP live-frames mode from a thread inside the attacker's namespace.
//! Each run of the program writes a whole SYN or ACK frame and returns XDP_TX, which the kernel
//! turns into a transmit out of the attacker's veth (the `ingress_ifindex` we pass).
//!
//! Two routes ([`Route`]): across the lab's bridge (out of the attacker's veth), or straight into
//! the server's veth (out of its bridge-side peer), as a NIC's receive ring would deliver them.
//! While it sends, `lab_gen` is also attached to an idle device
//! ([`crate::lab::topology::IDLE_DEV`]): a program the XDP dispatcher already holds does not make
//! each `BPF_PROG_TEST_RUN` call wait out RCU grace periods (docs/measuring.md, "The RCU wait of
//! each TestRun call").
//!
//! hping3 sends ~0.23 M SYN/s here; live frames offer 3-5 M frames/s straight into the server's
//! ring from one real-time CPU: about what the XDP_DROP floor absorbs on one CPU, more than
//! anything that costs the server more per frame (docs/measuring.md, "What limits the offered
//! rate"). Several sending threads: [`crate::flood::senders`]. Bounds: sources only from
//! 198.18.0.128/25 (enforced in the program itself and here), destination inside 198.18.0.0/24,
//! a frame count and a duration that are both capped, and a stop flag checked between calls.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use aya::{
    Ebpf,
    maps::{Array, PerCpuArray, PerCpuValues},
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use serde::Serialize;

use synguard_common::{
    lab::{GenConfig, MIX_ACK, MIX_BOTH, MIX_SYN},
    names::lab::{LAB_GEN, LAB_GEN_SEQ},
};

pub use crate::flood::senders::GenFlood;

/// Ethernet + IPv4 + TCP, no options: what `lab_gen` writes.
pub use synguard_common::lab::GEN_LEN;
/// Upper bound on one flood's frame count, whatever the caller asks.
pub const MAX_COUNT: u64 = 100_000_000;
/// Upper bound on one flood's duration.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// Frames per `BPF_PROG_TEST_RUN` call: big enough that the ~20 us per call is noise, small
/// enough (tens of ms at full rate) that a stop request is seen promptly.
const FRAMES_PER_CALL: u64 = 32_768;
/// Live-frames batch size: frames per page-pool batch, and per flush, which wakes the receiving
/// veth; 256 is the kernel's maximum (`TEST_XDP_MAX_BATCH`). Against 32 it costs the sender and
/// the receiving thread less per frame at the same share of frames arriving (docs/measuring.md,
/// "The live-frames generator").
pub const BATCH: u32 = 256;
const XDP_TX: u32 = 3;

/// What the frames are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    Syn,
    Ack,
    /// SYN and ACK alternating.
    Mixed,
}

impl Mix {
    fn code(self) -> u8 {
        match self {
            Mix::Syn => MIX_SYN,
            Mix::Ack => MIX_ACK,
            Mix::Mixed => MIX_BOTH,
        }
    }
}

/// Which way the frames reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Out of the attacker's veth, across the bridge, into the server's veth: skb and bridge
    /// cost on the way (on the sending CPU).
    Bridge,
    /// XDP_TX out of the server veth's bridge-side peer: straight into the server's receive
    /// ring, no skb before the server's XDP program.
    Direct,
}

/// One generator flood.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GenSpec {
    pub mix: Mix,
    pub route: Route,
    /// Number of distinct source addresses, a power of two in 1..=128: 198.18.0.128 upwards.
    pub sources: u8,
    pub dst: Ipv4Addr,
    pub dport: u16,
    /// Frames to send at most.
    pub count: u64,
    /// Time to send for at most.
    pub duration: Duration,
}

impl GenSpec {
    /// Checks the bounds the lab promises: destination in 198.18.0.0/24, sources in the /25 pool,
    /// count and duration capped.
    pub fn validate(&self) -> Result<()> {
        let [a, b, c, _] = self.dst.octets();
        ensure!(
            (a, b, c) == (198, 18, 0),
            "generator target {} is outside 198.18.0.0/24",
            self.dst
        );
        ensure!(
            self.sources.is_power_of_two() && self.sources <= 128,
            "sources must be a power of two in 1..=128, not {}",
            self.sources
        );
        ensure!(
            (1..=MAX_COUNT).contains(&self.count),
            "frame count {} not in 1..={MAX_COUNT}",
            self.count
        );
        ensure!(
            !self.duration.is_zero() && self.duration <= MAX_DURATION,
            "duration {:?} not in (0, {MAX_DURATION:?}]",
            self.duration
        );
        Ok(())
    }
}

/// The fixed part of every frame: MACs, IPv4 header without addresses' per-frame parts, TCP
/// destination port and window. `lab_gen` overwrites source address, IP id, ports' source,
/// sequence and acknowledgment numbers, flags and both checksums.
pub fn template(src_mac: [u8; 6], dst_mac: [u8; 6], dst: Ipv4Addr, dport: u16) -> [u8; GEN_LEN] {
    let mut f = [0u8; GEN_LEN];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64; // TTL
    ip[9] = 6; // TCP
    ip[16..20].copy_from_slice(&dst.octets());
    let tcp = &mut f[34..54];
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    f
}

/// Parses "02:5e:00:00:00:01".
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    ensure!(parts.len() == 6, "bad MAC {s}");
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC {s}"))?;
    }
    Ok(mac)
}

/// `lab_gen` loaded and configured.
pub struct Generator {
    ebpf: Ebpf,
    batch: u32,
}

impl Generator {
    pub fn load() -> Result<Generator> {
        let mut ebpf = Ebpf::load(synguard::objects::lab()).context("loading the lab object")?;
        let prog: &mut Xdp = ebpf
            .program_mut("lab_gen")
            .context("no lab_gen program in the lab object")?
            .try_into()
            .context("lab_gen is not an XDP program")?;
        prog.load().context("loading lab_gen")?;
        Ok(Generator { ebpf, batch: BATCH })
    }

    /// Sets what the next frames are.
    pub fn configure(&mut self, spec: &GenSpec, template: [u8; GEN_LEN]) -> Result<()> {
        spec.validate()?;
        let cfg = GenConfig {
            template,
            mix: spec.mix.code(),
            source_mask: spec.sources - 1,
            _pad: [0; 8],
        };
        let mut map: Array<_, GenConfig> =
            Array::try_from(self.ebpf.map_mut(LAB_GEN).context("no LAB_GEN map")?)?;
        map.set(0, cfg, 0).context("writing LAB_GEN")?;
        Ok(())
    }

    /// Attaches `lab_gen` to `dev` (a down, idle device of the calling thread's namespace) until
    /// the generator is dropped: the XDP dispatcher then holds the program, and test runs of it
    /// stop waiting for RCU grace periods.
    pub fn register_on(&mut self, dev: &str) -> Result<()> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut("lab_gen")
            .ok_or_else(|| anyhow!("no lab_gen"))?
            .try_into()?;
        prog.attach(dev, XdpMode::Driver)
            .with_context(|| format!("attaching lab_gen to the idle {dev}"))?;
        Ok(())
    }

    /// Frames per live-frames batch (and per flush into the receiving ring), at most 256
    /// (`TEST_XDP_MAX_BATCH` in net/bpf/test_run.c).
    pub fn set_batch(&mut self, batch: u32) -> Result<()> {
        ensure!(
            (1..=256).contains(&batch),
            "live-frames batch {batch} not in 1..=256"
        );
        self.batch = batch;
        Ok(())
    }

    /// Starts every CPU's frame counter at `cpu << 40`: threads sending on different CPUs then
    /// send different flows (ports and sequence numbers derive from the counter), not the same
    /// sequence twice.
    pub fn seed_counters(&mut self) -> Result<()> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
        let mut map: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map_mut(LAB_GEN_SEQ)
                .context("no LAB_GEN_SEQ map")?,
        )?;
        let values: Vec<u64> = (0..cpus as u64).map(|c| c << 40).collect();
        map.set(0, PerCpuValues::try_from(values)?, 0)
            .context("writing LAB_GEN_SEQ")?;
        Ok(())
    }

    fn prog(&self) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program("lab_gen")
            .ok_or_else(|| anyhow!("no lab_gen"))?
            .try_into()?)
    }

    /// Runs the program `n` times on a scratch buffer (no live frames, nothing is sent) and
    /// returns each frame it wrote: what the live flood would send.
    pub fn render(&self, n: usize) -> Result<Vec<Vec<u8>>> {
        let prog = self.prog()?;
        (0..n)
            .map(|_| {
                let data = [0u8; GEN_LEN];
                let mut out = vec![0u8; GEN_LEN + 64];
                let r = prog
                    .test_run(TestRunOptions {
                        data_in: Some(&data),
                        data_out: Some(&mut out),
                        ..Default::default()
                    })
                    .context("test-running lab_gen")?;
                ensure!(
                    r.return_value == XDP_TX,
                    "lab_gen returned {}",
                    r.return_value
                );
                out.truncate(r.data_size_out as usize);
                Ok(out)
            })
            .collect()
    }

    /// Sends live frames out of `ifindex` (an interface of the calling thread's namespace) until
    /// `spec.count` frames are sent, `spec.duration` is up or `stop` is set.
    pub fn send_live(&self, ifindex: u32, spec: &GenSpec, stop: &AtomicBool) -> Result<GenReport> {
        spec.validate()?;
        let prog = self.prog()?;
        let data = [0u8; GEN_LEN];
        let ctx = xdp_md(ifindex, GEN_LEN as u32);
        let start = Instant::now();
        let cpu0 = thread_cpu_s();
        let (mut sent, mut calls) = (0u64, 0u64);
        while sent < spec.count && start.elapsed() < spec.duration && !stop.load(Ordering::Relaxed)
        {
            let n = (spec.count - sent).min(FRAMES_PER_CALL);
            prog.test_run(TestRunOptions {
                data_in: Some(&data),
                ctx_in: Some(&ctx),
                repeat: n as u32,
                attrs: TestRunAttrs::new().xdp_live_frames(self.batch),
                ..Default::default()
            })
            .context("BPF_PROG_TEST_RUN with live frames")?;
            sent += n;
            calls += 1;
        }
        let elapsed = start.elapsed();
        Ok(GenReport {
            sent,
            calls,
            elapsed_s: elapsed.as_secs_f64(),
            pps: sent as f64 / elapsed.as_secs_f64().max(1e-9),
            cpu_s: thread_cpu_s() - cpu0,
            threads: 1,
        })
    }
}

/// `struct xdp_md` as `BPF_PROG_TEST_RUN` takes it: data, data_end, data_meta, ingress_ifindex,
/// rx_queue_index, egress_ifindex. Live frames need the ingress interface: XDP_TX goes out of it.
fn xdp_md(ifindex: u32, len: u32) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&len.to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// What a flood sent, by the generator's own count.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct GenReport {
    pub sent: u64,
    /// `BPF_PROG_TEST_RUN` calls made.
    pub calls: u64,
    pub elapsed_s: f64,
    /// The generator's own send rate.
    pub pps: f64,
    /// CPU time the sending threads used (`CLOCK_THREAD_CPUTIME_ID`): with `elapsed_s`, whether
    /// the generator had its CPUs to itself or was preempted.
    pub cpu_s: f64,
    /// Sending threads.
    pub threads: usize,
}

impl GenReport {
    /// Two reports of one flood side by side (threads) or one after the other (windows): frames
    /// and CPU time add up, `elapsed_s` is `elapsed` of the whole.
    pub fn merge(&self, other: &GenReport, elapsed_s: f64) -> GenReport {
        let sent = self.sent + other.sent;
        GenReport {
            sent,
            calls: self.calls + other.calls,
            elapsed_s,
            pps: sent as f64 / elapsed_s.max(1e-9),
            cpu_s: self.cpu_s + other.cpu_s,
            threads: self.threads.max(other.threads),
        }
    }

    /// The generator's CPU time per frame sent, in ns.
    pub fn cpu_ns_per_frame(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.cpu_s * 1e9 / self.sent as f64)
    }
}

/// CPU time of the calling thread so far, in seconds.
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Schedules the calling thread SCHED_FIFO at `priority` (1-99): ahead of every ordinary task on
/// its CPU, behind real-time threads of a higher priority (the server's receive thread).
pub fn set_realtime(priority: i32) -> Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: a valid sched_param for the calling thread (pid 0); no memory is shared.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        anyhow::bail!(
            "SCHED_FIFO {priority} for the generator: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).context("CPU index out of range")?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .with_context(|| format!("pinning to CPU {cpu}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GenSpec {
        GenSpec {
            mix: Mix::Syn,
            route: Route::Bridge,
            sources: 128,
            dst: Ipv4Addr::new(198, 18, 0, 1),
            dport: 80,
            count: 1000,
            duration: Duration::from_secs(1),
        }
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(spec().validate().is_ok());
        let mut s = spec();
        s.dst = Ipv4Addr::new(10, 0, 0, 1);
        assert!(s.validate().is_err());
        let mut s = spec();
        s.sources = 3;
        assert!(s.validate().is_err());
        s.sources = 0;
        assert!(s.validate().is_err());
        let mut s = spec();
        s.count = MAX_COUNT + 1;
        assert!(s.validate().is_err());
        let mut s = spec();
        s.duration = MAX_DURATION + Duration::from_secs(1);
        assert!(s.validate().is_err());
    }

    #[test]
    fn xdp_md_layout() {
        let ctx = xdp_md(7, 54);
        assert_eq!(u32::from_ne_bytes(ctx[4..8].try_into().unwrap()), 54);
        assert_eq!(u32::from_ne_bytes(ctx[12..16].try_into().unwrap()), 7);
    }

    #[test]
    fn parses_macs() {
        assert_eq!(
            parse_mac("02:5e:00:00:00:0a").unwrap(),
            [2, 0x5e, 0, 0, 0, 10]
        );
        assert!(parse_mac("02:5e").is_err());
    }
}
