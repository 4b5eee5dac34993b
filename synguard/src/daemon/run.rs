//! `synguard run`, once configured: attach to every interface, control the cookie mode, serve
//! metrics, follow flood events, reload on SIGHUP, until a signal; then detach or hand over.

use anyhow::Context as _;
use log::{info, warn};
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    config::{RunArgs, RunConfig},
    daemon::{
        cookie_backend::MapBackend,
        events::{self, FloodWatcher},
        guard::Guard,
        logs, metrics,
        mode::{self, Controller},
        reload,
    },
    datapath::load::ProgramLogger,
    host::notify::{Notifier, NotifyError},
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

    // Only now is every program attached and configured: what `Type=notify` waits for.
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        warn!("{e:#}; not notifying the service manager");
        Notifier::for_address(None).expect("no address is always valid")
    });
    tell(notifier.ready(&service_status(cfg)));
    let mut serving = Serving {
        signals: &mut signals,
        notifier: &notifier,
        controllers: &mut controllers,
        loggers: &mut loggers,
        floods: &mut floods,
    };
    let outcome = serving.until_signal(cfg, args).await;
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
    logs::flush(&mut loggers);
    drop(loggers);
    drop(controllers);
    finish(outcome, guard, cfg)
}

/// What the running loop works on.
struct Serving<'a> {
    signals: &'a mut Signals,
    notifier: &'a Notifier,
    controllers: &'a mut Vec<Controller<MapBackend>>,
    loggers: &'a mut Vec<AsyncFd<ProgramLogger>>,
    floods: &'a mut Vec<FloodWatcher>,
}

impl Serving<'_> {
    /// Controls the modes, follows logs and flood events and reloads on SIGHUP, until a signal
    /// says to stop (or reading the program's output fails).
    async fn until_signal(&mut self, cfg: &RunConfig, args: &RunArgs) -> anyhow::Result<Exit> {
        let mut current = cfg.clone();
        let mut tick = tokio::time::interval(mode::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.signals.int.recv() => return Ok(Exit::Detach("SIGINT")),
                _ = self.signals.term.recv() => return Ok(Exit::Detach("SIGTERM")),
                _ = self.signals.usr1.recv() => return Ok(Exit::HandOver),
                _ = self.signals.hup.recv() => {
                    tell(self.notifier.reloading());
                    match reload::reload(&current, args) {
                        Ok(next) => current = next,
                        Err(e) => warn!("SIGHUP: {e:#}"),
                    }
                    tell(self.notifier.ready(&service_status(&current)));
                }
                _ = tick.tick() => for c in self.controllers.iter_mut() {
                    if let Some(end) = c.tick() {
                        events::loader_event(self.floods, c.iface(), end);
                    }
                },
                r = logs::forward(self.loggers) => {
                    if let Err(e) = r {
                        return Err(anyhow::Error::from(e).context("reading the XDP program's log"));
                    }
                }
                r = events::watch(self.floods) => {
                    if let Err(e) = r {
                        return Err(anyhow::Error::from(e).context("reading flood events"));
                    }
                }
            }
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
