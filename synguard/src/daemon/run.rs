//! `synguard run`, once configured: attach to every interface, control the cookie mode, serve
//! metrics, follow flood events, reload on SIGHUP, until a signal; then detach or hand over.

use anyhow::Context as _;
use log::{info, warn};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    config::{RunArgs, RunConfig},
    daemon::{
        events::{self, FloodWatcher},
        guard::Guard,
        logs, metrics, mode, reload,
    },
    state::paths,
};

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

struct Signals {
    int: Signal,
    term: Signal,
    usr1: Signal,
    hup: Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Self> {
        let on = |kind, name| signal(kind).with_context(|| format!("cannot handle {name}"));
        Ok(Signals {
            int: on(SignalKind::interrupt(), "SIGINT")?,
            term: on(SignalKind::terminate(), "SIGTERM")?,
            usr1: on(SignalKind::user_defined1(), "SIGUSR1")?,
            hup: on(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}

/// Flood-event readers for every interface whose program has them.
fn flood_watchers(cfg: &RunConfig) -> Vec<FloodWatcher> {
    let mut floods = Vec::new();
    for iface in &cfg.ifaces {
        let pin_dir = paths::pin_dir(&cfg.pin_base, iface);
        match FloodWatcher::open(&pin_dir, &cfg.run_dir, iface) {
            Ok(Some(w)) => floods.push(w),
            Ok(None) => {}
            Err(e) => warn!("{iface}: flood events unavailable: {e:#}"),
        }
    }
    floods
}

/// Guards every configured interface until a signal; returns the process exit status.
pub async fn run(cfg: &RunConfig, args: &RunArgs) -> anyhow::Result<i32> {
    // Register the handlers before attaching, so a signal during setup is not lost.
    let mut signals = Signals::register()?;
    // Whatever happens from here, dropping `guard` undoes what was done.
    let mut guard = Guard::new();
    let mut controllers = Vec::new();
    let mut loggers = Vec::new();
    for iface in &cfg.ifaces {
        let (controller, logger) = guard
            .start(cfg, iface)
            .with_context(|| format!("cannot guard {iface}"))?;
        controllers.push(controller);
        if let Some(l) = logger {
            loggers.push(logs::watch(l)?);
        }
    }
    // The policy goes in before the first packet could need it... and after the maps exist.
    reload::apply_policy(cfg, None).context("cannot apply the policy")?;
    let mut floods = flood_watchers(cfg);
    let metrics = match cfg.metrics_addr {
        Some(addr) => Some(metrics::spawn(addr, cfg.pin_base.clone(), cfg.ifaces.clone()).await?),
        None => None,
    };

    let mut current = cfg.clone();
    let mut own_watch = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut tick = tokio::time::interval(mode::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            _ = signals.int.recv() => break Ok(Exit::Detach("SIGINT")),
            _ = signals.term.recv() => break Ok(Exit::Detach("SIGTERM")),
            _ = signals.usr1.recv() => break Ok(Exit::HandOver),
            _ = signals.hup.recv() => match reload::reload(&current, args) {
                Ok(next) => {
                    guard.rotate_secrets(&next);
                    current = next;
                }
                Err(e) => warn!("SIGHUP: {e:#}"),
            },
            _ = tick.tick() => controllers.iter_mut().for_each(|c| c.tick()),
            _ = own_watch.tick() => guard.watch_own(),
            r = logs::forward(&mut loggers) => {
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
    events::drain_all(&mut floods);
    drop(floods);
    if let Some(m) = metrics {
        m.abort();
    }
    logs::flush(&mut loggers);
    drop(loggers);
    drop(controllers);
    finish(outcome, guard, cfg)
}

/// Hands over or detaches; an error is not a hand-over: it leaves the host as it was before.
fn finish(outcome: anyhow::Result<Exit>, guard: Guard, cfg: &RunConfig) -> anyhow::Result<i32> {
    match outcome {
        Ok(Exit::HandOver) => {
            info!("SIGUSR1: handing over to the next synguard run (exit {HAND_OVER_EXIT})");
            guard.hand_over();
            Ok(HAND_OVER_EXIT)
        }
        Ok(Exit::Detach(signal)) => {
            info!("{signal}: shutting down");
            drop(guard);
            // Detached: nothing of this instance stays behind, its flood history included.
            for iface in &cfg.ifaces {
                let _ = std::fs::remove_file(paths::history(&cfg.run_dir, iface));
            }
            Ok(0)
        }
        Err(e) => Err(e),
    }
}
