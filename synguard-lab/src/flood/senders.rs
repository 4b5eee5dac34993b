//! A generator flood on one or more sending threads, each pinned to a CPU, all running the same
//! loaded `lab_gen` (flood::generator). One program, attached once to the idle device, serves
//! every thread; each CPU's frame counter starts elsewhere, so the threads send different flows.
//!
//! Why several threads: one sending CPU offers about as many frames per second as one receiving
//! CPU absorbs with XDP_DROP (docs/measuring.md, "What limits the offered rate"), so a flood that
//! saturates the server needs the time the server's own CPU leaves over too. A sender on the
//! server's CPU runs below the server's real-time receive thread: it only fills what that thread
//! leaves idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};

use crate::flood::generator::{
    GenReport, GenSpec, Generator, Route, parse_mac, pin_to_cpu, set_realtime, template,
};
use crate::lab::topology::{IDLE_DEV, Lab};

/// Where and how the flood is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Senders {
    /// One sending thread per entry, pinned to that CPU (`None`: not pinned).
    pub cpus: Vec<Option<usize>>,
    /// Live-frames batch (frames per flush into the receiving ring).
    pub batch: u32,
    /// SCHED_FIFO priority of the sending threads on these CPUs (docs/measuring.md, "CPUs and
    /// busy time"); others stay ordinary tasks.
    pub realtime: Vec<(usize, i32)>,
}

impl Senders {
    /// One thread, the default batch.
    pub fn one(cpu: Option<usize>) -> Senders {
        Senders {
            cpus: vec![cpu],
            batch: crate::flood::generator::BATCH,
            realtime: Vec::new(),
        }
    }
}

type SendThread = JoinHandle<Result<Result<GenReport>>>;

/// A generator flood running on threads of its own in the sending namespace.
pub struct GenFlood {
    stop: Arc<AtomicBool>,
    threads: Vec<SendThread>,
    started: Instant,
}

impl GenFlood {
    /// Starts sending on one thread, from the attacker's MAC and pool to the server, by
    /// `spec.route`. `cpu` pins the sending thread (on 2 cores the generator and the server's
    /// receive path must not share one, docs/measuring.md).
    pub fn start(lab: &Lab, spec: GenSpec, cpu: Option<usize>) -> Result<GenFlood> {
        GenFlood::start_with(lab, spec, &Senders::one(cpu))
    }

    /// Starts sending on every thread of `senders`; `spec.count` is split between them.
    pub fn start_with(lab: &Lab, spec: GenSpec, senders: &Senders) -> Result<GenFlood> {
        spec.validate()?;
        anyhow::ensure!(!senders.cpus.is_empty(), "a flood needs a sending thread");
        let tpl = template(
            parse_mac(lab.attacker.mac)?,
            parse_mac(lab.server.mac)?,
            spec.dst,
            spec.dport,
        );
        let (ns, ifname) = match spec.route {
            Route::Bridge => (&lab.attacker.ns, lab.attacker.ifname.clone()),
            Route::Direct => (lab.bridge_ns(), lab.server_peer()),
        };
        let batch = senders.batch;
        // Loaded and attached to the idle device inside the namespace (netlink resolves the
        // device there); the attachment is a BPF link, released when the last thread drops it.
        let generator = ns.enter(move || -> Result<Generator> {
            let mut generator = Generator::load()?;
            generator.configure(&spec, tpl)?;
            generator.set_batch(batch)?;
            generator.seed_counters()?;
            generator.register_on(IDLE_DEV)?;
            Ok(generator)
        })??;
        let generator = Arc::new(generator);
        let stop = Arc::new(AtomicBool::new(false));
        let n = senders.cpus.len() as u64;
        let mut flood = GenFlood {
            stop: stop.clone(),
            threads: Vec::new(),
            started: Instant::now(),
        };
        for (i, &cpu) in senders.cpus.iter().enumerate() {
            let mut part = spec;
            part.count = spec.count / n + u64::from((i as u64) < spec.count % n);
            if part.count == 0 {
                continue;
            }
            let (generator, stop, ifname) = (generator.clone(), stop.clone(), ifname.clone());
            let prio = senders
                .realtime
                .iter()
                .find(|(c, _)| Some(*c) == cpu)
                .map(|(_, p)| *p);
            flood
                .threads
                .push(ns.spawn("lab-gen", move || -> Result<GenReport> {
                    if let Some(cpu) = cpu {
                        pin_to_cpu(cpu)?;
                    }
                    if let Some(prio) = prio {
                        set_realtime(prio)?;
                    }
                    let ifindex = nix::net::if_::if_nametoindex(ifname.as_str())
                        .with_context(|| format!("no interface {ifname} to send from"))?;
                    generator.send_live(ifindex, &part, &stop)
                })?);
        }
        Ok(flood)
    }

    /// Stops sending now and reports.
    pub fn stop(mut self) -> Result<GenReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits for the flood to end by itself (count or duration) and reports.
    pub fn wait(mut self) -> Result<GenReport> {
        self.join()
    }

    /// Joins every thread (also after the first failure) and adds their reports up.
    fn join(&mut self) -> Result<GenReport> {
        anyhow::ensure!(!self.threads.is_empty(), "generator already joined");
        let mut reports = Vec::new();
        let mut first_err = None;
        for t in self.threads.drain(..) {
            match t.join().map_err(|_| anyhow!("generator thread panicked")) {
                Ok(Ok(Ok(r))) => reports.push(r),
                Ok(Ok(Err(e))) | Ok(Err(e)) | Err(e) => {
                    self.stop.store(true, Ordering::Relaxed);
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        // Threads start one after the other: the flood lasted from the first start to the last
        // end, which the longest thread's own time approaches from below.
        let elapsed = reports
            .iter()
            .map(|r| r.elapsed_s)
            .fold(0.0, f64::max)
            .max(1e-9)
            .min(self.started.elapsed().as_secs_f64());
        let total = reports
            .iter()
            .fold(GenReport::default(), |acc, r| acc.merge(r, elapsed));
        Ok(GenReport {
            threads: reports.len(),
            ..total
        })
    }
}

impl Drop for GenFlood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
