//! `synguard run`, once configured: attach to every interface, control the cookie mode, serve
//! metrics, follow flood events, reload on request (control socket) or SIGHUP, until a signal;
//! then detach or hand over.

use anyhow::Context as _;
use log::{info, warn};
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{Signal, SignalKind, signal};

use std::sync::Arc;

use crate::{
    config::{RunArgs, RunConfig},
    daemon::{
        conns,
        control::{self, Control, Outcome, Reply},
        cookie_backend::MapBackend,
        events::{self, FloodWatcher},
        guard::Guard,
        instance::host_follow,
        logs, metrics,
        mode::{self, Controller},
        reload::{self, LastReload},
    },
    datapath::load::ProgramLogger,
    host::notify::{Notifier, NotifyError},
    state::paths::{self, Key},
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

/// How often own cookies' health (XDP metadata reaching TC) is checked.
const OWN_WATCH: std::time::Duration = std::time::Duration::from_secs(5);

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
fn flood_watchers(cfg: &RunConfig, keys: &[Key]) -> Vec<FloodWatcher> {
    let mut floods = Vec::new();
    for key in keys {
        let pin_dir = paths::pin_dir(&cfg.pin_base, key);
        match FloodWatcher::open(&pin_dir, &cfg.run_dir, key) {
            Ok(Some(w)) => floods.push(w),
            Ok(None) => {}
            Err(e) => warn!("{key}: flood events unavailable: {e:#}"),
        }
    }
    floods
}

/// Reloads, records the outcome for the metrics, and says what came of it.
fn reload_now(current: &mut RunConfig, args: &RunArgs, keys: &[Key], last: &LastReload) -> Reply {
    let pid = std::process::id();
    match reload::reload(current, args, keys) {
        Ok(done) => {
            last.record(true);
            *current = done.config;
            let c = &*current;
            Reply {
                pid,
                outcome: if done.needs_restart.is_empty() {
                    Outcome::Applied
                } else {
                    Outcome::NeedsRestart
                },
                message: format!(
                    "ports {:?}, thresholds on {} / off {} SYN/s, hold {:?}, {} allowed and {} \
                     blocked prefixes from the file",
                    c.ports,
                    c.syn_on_pps,
                    c.syn_off_pps,
                    c.hold,
                    c.allow.len(),
                    c.block.len()
                ),
                restart: done.needs_restart.iter().map(|s| s.to_string()).collect(),
            }
        }
        Err(e) => {
            last.record(false);
            warn!("reload: {e:#}");
            Reply {
                pid,
                outcome: Outcome::Refused,
                message: format!("{e:#}"),
                restart: Vec::new(),
            }
        }
    }
}

/// The metrics endpoint, when an address is configured.
async fn serve_metrics(
    cfg: &RunConfig,
    keys: &[Key],
    last_reload: &Arc<LastReload>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = cfg.metrics_addr else {
        return Ok(None);
    };
    let dirs = keys
        .iter()
        .map(|k| (k.iface().to_string(), paths::pin_dir(&cfg.pin_base, k)))
        .collect();
    Ok(Some(metrics::spawn(addr, dirs, last_reload.clone()).await?))
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
    let keys = guard.keys();
    // The policy goes in before the first packet could need it... and after the maps exist.
    reload::apply_policy(cfg, &keys, None).context("cannot apply the policy")?;
    let mut floods = flood_watchers(cfg, &keys);
    let last_reload = Arc::new(LastReload::default());
    let metrics = serve_metrics(cfg, &keys, &last_reload).await?;
    let mut control =
        Control::bind(&cfg.run_dir, &keys).context("cannot open the control socket")?;

    // Only now is every program attached and configured: what `Type=notify` waits for.
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        warn!("{e:#}; not notifying the service manager");
        Notifier::for_address(None).expect("no address is always valid")
    });
    tell(notifier.ready(&service_status(cfg)));
    let mut serving = Serving {
        signals: &mut signals,
        notifier: &notifier,
        guard: &mut guard,
        control: &mut control,
        keys: &keys,
        last_reload: &last_reload,
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
    drop(control);
    events::drain_all(&mut floods);
    drop(floods);
    if let Some(m) = metrics {
        m.abort();
    }
    logs::flush(&mut loggers);
    drop(loggers);
    drop(controllers);
    finish(outcome, guard, cfg, &keys)
}

/// What the running loop works on.
struct Serving<'a> {
    signals: &'a mut Signals,
    notifier: &'a Notifier,
    guard: &'a mut Guard,
    control: &'a mut Control,
    keys: &'a [Key],
    last_reload: &'a LastReload,
    controllers: &'a mut Vec<Controller<MapBackend>>,
    loggers: &'a mut Vec<AsyncFd<ProgramLogger>>,
    floods: &'a mut Vec<FloodWatcher>,
}

impl Serving<'_> {
    /// Controls the modes, follows logs and flood events and reloads on request (control socket)
    /// or SIGHUP, until a signal says to stop (or reading the program's output fails).
    async fn until_signal(&mut self, cfg: &RunConfig, args: &RunArgs) -> anyhow::Result<Exit> {
        let mut current = cfg.clone();
        let mut tick = tokio::time::interval(mode::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut own_watch = tokio::time::interval(OWN_WATCH);
        let mut host_watch = tokio::time::interval(host_follow::PERIOD);
        host_watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: the pass that makes the table trusted.
        let mut conns_pass = tokio::time::interval(conns::PERIOD);
        conns_pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.signals.int.recv() => return Ok(Exit::Detach("SIGINT")),
                _ = self.signals.term.recv() => return Ok(Exit::Detach("SIGTERM")),
                _ = self.signals.usr1.recv() => return Ok(Exit::HandOver),
                _ = self.signals.hup.recv() => {
                    self.reload(&mut current, args);
                }
                (stream, request) = self.control.next() => {
                    let reply = match request.as_str() {
                        control::RELOAD => self.reload(&mut current, args),
                        other => Reply::unknown(other),
                    };
                    control::answer(stream, &reply).await;
                }
                _ = tick.tick() => self.tick_controllers(),
                _ = own_watch.tick() => self.guard.watch_own(),
                _ = host_watch.tick() => {
                    self.guard.keep_settings();
                    self.guard.follow_host(&current).map_err(|lost| {
                        anyhow::anyhow!(
                            "{lost}: the XDP program went with the device; exiting with an error \
                             so that the service manager starts synguard again, which attaches \
                             anew"
                        )
                    })?;
                    // After the host: the per-address bits follow the address list just written.
                    self.guard.follow_listeners();
                }
                _ = conns_pass.tick() => self.guard.refresh_conns(&current.ports),
                r = logs::forward(self.loggers) => {
                    if let Err(e) = r {
                        return Err(anyhow::Error::from(e).context("reading the XDP program's log"));
                    }
                }
                r = events::watch(self.floods) => {
                    if let Err(e) = r {
                        return Err(anyhow::Error::from(e).context("reading flood events"));
                    }
                    // A flood started or ended: follow the program now rather than at the next
                    // tick (until the loader marks the kernel ready, SYNs still go to the kernel).
                    self.tick_controllers();
                }
            }
        }
    }
}

impl Serving<'_> {
    /// Lets each mode controller follow its program; a flood that ended on the clock (no SYN
    /// decided it) is recorded as a flood event by the loader.
    fn tick_controllers(&mut self) {
        for c in self.controllers.iter_mut() {
            if let Some(end) = c.tick() {
                events::loader_event(self.floods, c.iface(), end);
            }
        }
    }

    /// A reload, told to the service manager while it runs.
    fn reload(&mut self, current: &mut RunConfig, args: &RunArgs) -> Reply {
        tell(self.notifier.reloading());
        let reply = reload_now(current, args, self.keys, self.last_reload);
        if !matches!(reply.outcome, Outcome::Refused) {
            // Own cookies: each reload takes the next secret (re-read from the file if one is
            // configured); the previous one stays valid for the handshakes under way.
            self.guard.rotate_secrets(current);
            // A port just protected has connections no pass stamped yet: the reload withdrew
            // the promise; this pass gives it again.
            self.guard.refresh_conns(&current.ports);
        }
        tell(self.notifier.ready(&service_status(current)));
        reply
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
fn finish(
    outcome: anyhow::Result<Exit>,
    guard: Guard,
    cfg: &RunConfig,
    keys: &[Key],
) -> anyhow::Result<i32> {
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
            for key in keys {
                let _ = std::fs::remove_file(paths::history(&cfg.run_dir, key));
            }
            Ok(0)
        }
        Err(e) => Err(e),
    }
}
