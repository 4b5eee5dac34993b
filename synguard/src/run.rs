//! The two long-running commands: `run` (attach, control, wait for a signal, clean up) and
//! `stats` (sample the pinned counters every interval).

use std::{
    io::{self, Write as _},
    time::Duration,
};

use anyhow::{Context as _, bail};
use log::info;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    cli::{RunArgs, StatsArgs},
    config::RunConfig,
    loader::{Instance, ProgramLogger},
    mode,
    stats::{self, Report},
};

/// Waits until the program's log ring buffer has records and forwards them to `log`; never
/// returns when there is no log map, so `select!` simply ignores it.
async fn forward_logs(logger: &mut Option<AsyncFd<ProgramLogger>>) -> io::Result<()> {
    match logger {
        Some(fd) => {
            let mut guard = fd.readable_mut().await?;
            guard.get_inner_mut().flush();
            guard.clear_ready();
            Ok(())
        }
        None => std::future::pending().await,
    }
}

pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let cfg = RunConfig::from_args(args)?;
    // Register the handlers before attaching, so a signal during setup is not lost.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;

    let started = Instance::start(&cfg)?;
    let mut instance = started.instance;
    let mut controller = started.controller;
    let mut logger = match started.logger {
        // SAFETY: the logger owns its ring buffer's fd; it stays open and unchanged until the
        // AsyncFd (which owns the logger) is dropped.
        Some(l) => Some(
            unsafe { AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)
                .context("cannot watch the XDP program's log buffer")?,
        ),
        None => None,
    };

    let mut tick = tokio::time::interval(mode::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            _ = sigint.recv() => break Ok("SIGINT"),
            _ = sigterm.recv() => break Ok("SIGTERM"),
            _ = tick.tick() => controller.tick(),
            r = forward_logs(&mut logger) => {
                if let Err(e) = r {
                    break Err(anyhow::Error::from(e).context("reading the XDP program's log"));
                }
            }
        }
    };
    if let Ok(signal) = outcome {
        info!("{signal}: shutting down");
    }
    // Drain what the program logged last before the ring buffer goes away.
    if let Some(fd) = logger.as_mut() {
        fd.get_mut().flush();
    }
    drop(logger);
    instance.shutdown();
    outcome.map(|_| ())
}

pub async fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        bail!("--interval must be a positive number of seconds");
    }
    if args.count == Some(0) {
        bail!("--count must be at least 1");
    }
    let dir = stats::find_instance(&args.pin_base, args.iface.as_deref())?;
    let interval = Duration::from_secs_f64(args.interval);
    let mut prev = None;
    let mut printed = 0u64;
    loop {
        let sample = stats::read_sample(&dir)?;
        let report = Report::new(prev.as_ref(), &sample);
        let text = if args.json {
            report.to_json() + "\n"
        } else {
            report.to_text() + "\n"
        };
        let mut out = io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            // A closed pipe (`synguard stats | head`) is the reader saying "enough".
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("cannot write to stdout"),
        }
        drop(out);
        printed += 1;
        if args.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        prev = Some(sample);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
