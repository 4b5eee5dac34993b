//! The two long-running commands: `run` (attach to every interface, control, serve metrics,
//! wait for a signal, then detach or hand over) and `stats` (sample the pinned counters).

use std::{
    io::{self, Write as _},
    task::Poll,
    time::Duration,
};

use anyhow::{Context as _, bail};
use log::{info, warn};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    cli::{RunArgs, StatsArgs},
    config::RunConfig,
    events::{self, FloodWatcher},
    loader::{Instance, ProgramLogger},
    metrics, mode,
    notify::{Notifier, NotifyError},
    reload,
    stats::{self, Report},
    sysctl::{SyncookieVotes, SysctlSaver, Sysctls},
};

/// Waits until one of the programs' log ring buffers has records and forwards them to `log`;
/// never returns when there are none, so `select!` simply ignores it.
async fn forward_logs(loggers: &mut [AsyncFd<ProgramLogger>]) -> io::Result<()> {
    if loggers.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for fd in loggers.iter_mut() {
            match fd.poll_read_ready_mut(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

fn watch_logger(logger: ProgramLogger) -> anyhow::Result<AsyncFd<ProgramLogger>> {
    // SAFETY: the logger owns its ring buffer's fd; it stays open and unchanged until the
    // AsyncFd (which owns the logger) is dropped.
    unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("cannot watch the XDP program's log buffer")
}

/// How `run` ends.
enum Exit {
    /// SIGINT/SIGTERM: detach and restore the kernel settings.
    Detach(&'static str),
    /// SIGUSR1: leave everything attached for the next `run` to take over.
    HandOver,
}

/// The exit status after a hand-over, so a supervisor can tell it from a stop (systemd:
/// `RestartForceExitStatus=75`). EX_TEMPFAIL: "try again", which is what the successor does.
pub const HAND_OVER_EXIT: i32 = 75;

/// Guards every configured interface until a signal; returns the process exit status.
pub async fn run(cfg: &RunConfig, args: &RunArgs) -> anyhow::Result<i32> {
    // Register the handlers before attaching, so a signal during setup is not lost.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).context("cannot handle SIGUSR1")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;

    let sysctls = Sysctls::default();
    let mut saver = SysctlSaver::new(sysctls.clone());
    let votes = SyncookieVotes::new(sysctls);
    let mut instances = Vec::new();
    let mut controllers = Vec::new();
    let mut loggers = Vec::new();
    for iface in &cfg.ifaces {
        let started = match Instance::start(cfg, iface, &mut saver, votes.clone()) {
            Ok(s) => s,
            Err(e) => {
                // Undo the interfaces already taken, then the settings.
                drop(instances);
                restore(&mut saver);
                return Err(anyhow::Error::from(e).context(format!("cannot guard {iface}")));
            }
        };
        instances.push(started.instance);
        controllers.push(started.controller);
        if let Some(l) = started.logger {
            loggers.push(watch_logger(l)?);
        }
    }
    // The policy goes in before the first packet could need it... and after the maps exist.
    if let Err(e) = reload::apply_policy(cfg, None) {
        drop(instances);
        restore(&mut saver);
        return Err(e.context("cannot apply the policy"));
    }
    let mut current = cfg.clone();
    let mut floods = Vec::new();
    for iface in &cfg.ifaces {
        match FloodWatcher::open(&cfg.pin_base.join(iface), &cfg.run_dir, iface) {
            Ok(Some(w)) => floods.push(w),
            Ok(None) => {}
            Err(e) => warn!("{iface}: flood events unavailable: {e:#}"),
        }
    }
    let metrics = match cfg.metrics_addr {
        Some(addr) => Some(metrics::spawn(addr, cfg.pin_base.clone(), cfg.ifaces.clone()).await?),
        None => None,
    };

    // Only now is every program attached and configured: what `Type=notify` waits for.
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        warn!("{e:#}; not notifying the service manager");
        Notifier::for_address(None).expect("no address is always valid")
    });
    tell(notifier.ready(&service_status(cfg)));

    let mut tick = tokio::time::interval(mode::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            _ = sigint.recv() => break Ok(Exit::Detach("SIGINT")),
            _ = sigterm.recv() => break Ok(Exit::Detach("SIGTERM")),
            _ = sigusr1.recv() => break Ok(Exit::HandOver),
            _ = sighup.recv() => {
                tell(notifier.reloading());
                match reload::reload(&current, args) {
                    Ok(next) => current = next,
                    Err(e) => warn!("SIGHUP: {e:#}"),
                }
                tell(notifier.ready(&service_status(&current)));
            }
            _ = tick.tick() => controllers.iter_mut().for_each(|c| c.tick()),
            r = forward_logs(&mut loggers) => {
                if let Err(e) = r {
                    break Err(anyhow::Error::from(e).context("reading the XDP program's log"));
                }
            }
            r = events::watch(&mut floods) => {
                if let Err(e) = r {
                    break Err(anyhow::Error::from(e).context("reading flood events"));
                }
            }
        }
    };
    tell(notifier.stopping(match &outcome {
        Ok(Exit::HandOver) => "handing over to the next synguard run",
        Ok(Exit::Detach(_)) => "detaching",
        Err(_) => "failed, detaching",
    }));
    events::drain_all(&mut floods);
    drop(floods);
    if let Some(m) = metrics {
        m.abort();
    }
    // Drain what the programs logged last before the ring buffers go away.
    for fd in loggers.iter_mut() {
        fd.get_mut().flush();
    }
    drop(loggers);
    drop(controllers);
    match outcome {
        Ok(Exit::HandOver) => {
            info!("SIGUSR1: handing over to the next synguard run (exit {HAND_OVER_EXIT})");
            instances.into_iter().for_each(Instance::hand_over);
            Ok(HAND_OVER_EXIT)
        }
        Ok(Exit::Detach(signal)) => {
            info!("{signal}: shutting down");
            drop(instances);
            // Detached: nothing of this instance stays behind, its flood history included.
            for iface in &cfg.ifaces {
                let _ = std::fs::remove_file(events::history_path(&cfg.run_dir, iface));
            }
            restore(&mut saver);
            Ok(0)
        }
        Err(e) => {
            // An error is not a hand-over: leave the host as it was before synguard.
            drop(instances);
            restore(&mut saver);
            Err(e)
        }
    }
}

/// The one-line summary `systemctl status` shows.
fn service_status(cfg: &RunConfig) -> String {
    let ports: Vec<String> = cfg.ports.iter().map(u16::to_string).collect();
    format!(
        "guarding {} on ports {} (cookies {}{})",
        cfg.ifaces.join(", "),
        ports.join(","),
        cfg.mode.name(),
        if cfg.limits.monitor {
            ", monitor only: every packet passes"
        } else {
            ""
        }
    )
}

/// A failed notification must not stop the protection; systemd reports the missing readiness.
fn tell(result: Result<(), NotifyError>) {
    if let Err(e) = result {
        warn!("{:#}", anyhow::Error::from(e));
    }
}

/// Only once no program sends cookies may the kernel stop accepting them.
fn restore(saver: &mut SysctlSaver) {
    for e in saver.restore() {
        warn!("{:#}", anyhow::Error::from(e));
    }
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
