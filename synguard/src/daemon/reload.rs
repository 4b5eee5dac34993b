//! Applying configuration to running programs through their pinned maps: the policy at start
//! (with the list entries added at run time, `state::runtime_lists`), and a changed file on
//! `synguard reload` (through the control socket, which gets the outcome back) or SIGHUP.
//! Nothing is re-attached and no counter is touched. What a map cannot carry (interfaces, cookie mode, XDP mode, window scale,
//! metrics address, log format) needs a restart: a reload says so and keeps the running value.

use std::{
    path::Path,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use anyhow::{Context as _, Result};
use log::{info, warn};
use synguard_common::maps::{Config, names};

use crate::{
    config::{Cidr, ListKind, RunArgs, RunConfig, file},
    datapath::{conns, maps, policy, ports},
    host::clock,
    state::{
        paths::{self, Key},
        run_info::RunInfo,
        runtime_lists::RuntimeLists,
    },
};

/// The last reload's outcome and time, for the metrics endpoint. Starts as the start-up:
/// successful, now.
#[derive(Debug)]
pub struct LastReload {
    ok: AtomicBool,
    unix_s: AtomicU64,
}

impl Default for LastReload {
    fn default() -> Self {
        LastReload {
            ok: AtomicBool::new(true),
            unix_s: AtomicU64::new(clock::unix_s()),
        }
    }
}

impl LastReload {
    pub fn record(&self, ok: bool) {
        self.ok.store(ok, Ordering::Relaxed);
        self.unix_s.store(clock::unix_s(), Ordering::Relaxed);
    }

    /// (successful, unix seconds).
    pub fn get(&self) -> (bool, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.unix_s.load(Ordering::Relaxed),
        )
    }
}

/// A configuration's list plus the entries added at run time.
fn with_runtime(file: &[Cidr], runtime: &RuntimeLists, kind: ListKind) -> Vec<Cidr> {
    let mut out = file.to_vec();
    out.extend(
        runtime
            .entries(kind)
            .into_iter()
            .filter(|c| !file.contains(c)),
    );
    out
}

/// Writes the configuration's policy (limits, lists, and the list entries added at run time)
/// to every instance. `previous`: the configuration applied before, whose list entries are
/// removed if this one drops them (unless they were also added at run time).
pub fn apply_policy(cfg: &RunConfig, keys: &[Key], previous: Option<&RunConfig>) -> Result<()> {
    for key in keys {
        let runtime = RuntimeLists::load(&cfg.run_dir, key).unwrap_or_else(|e| {
            warn!("{key}: runtime list entries not restored: {e}");
            RuntimeLists::default()
        });
        let lists = |c: &RunConfig| {
            (
                with_runtime(&c.allow, &runtime, ListKind::Allow),
                with_runtime(&c.block, &runtime, ListKind::Block),
            )
        };
        let now = lists(cfg);
        let before = previous.map(lists).unwrap_or_default();
        let dir = paths::pin_dir(&cfg.pin_base, key);
        let mut maps =
            policy::open_pinned(&dir).with_context(|| format!("{key}: opening the policy maps"))?;
        maps.apply(&cfg.limits, (&now.0, &now.1), (&before.0, &before.1))
            .with_context(|| format!("{key}: applying the policy"))?;
        let restored = runtime.allow.len() + runtime.block.len();
        if previous.is_none() && restored > 0 {
            info!(
                "{key}: restored {} allowed and {} blocked prefixes added at run time",
                runtime.allow.len(),
                runtime.block.len()
            );
        }
    }
    let l = &cfg.limits;
    info!(
        "policy: per-source {}, reflection cap {}, {} allowed and {} blocked prefixes{}",
        if l.source_rate == 0 {
            "unlimited".to_string()
        } else {
            format!(
                "{} SYN/s (burst {}, block {} s)",
                l.source_rate, l.source_burst, l.source_block_secs
            )
        },
        if l.reflect_rate == 0 {
            "off".to_string()
        } else {
            format!("{} SYN-ACK/s per /24 or /48", l.reflect_rate)
        },
        cfg.allow.len(),
        cfg.block.len(),
        if l.monitor { ", MONITOR ONLY" } else { "" }
    );
    Ok(())
}

/// Thresholds and hold time into the config map, ports into the port table.
fn apply_settings(dir: &Path, cfg: &RunConfig) -> Result<()> {
    let mut config = maps::array::<Config>(dir, names::CONFIG)?;
    let mut c = config.get(&0, 0)?;
    c.syn_on_pps = cfg.syn_on_pps;
    c.syn_off_pps = cfg.syn_off_pps;
    c.hold_ns = cfg.hold.as_nanos() as u64;
    config.set(0, c, 0)?;
    let table = maps::open(dir, names::PORTS)?;
    ports::sync(ports::data(&table)?, &cfg.ports, true)?;
    Ok(())
}

/// Updates the run-info file with what a reload changed, so `status` shows what is in effect.
fn record(cfg: &RunConfig, key: &Key) {
    let Some(mut info) = RunInfo::load(&cfg.run_dir, key) else {
        return;
    };
    info.ports = cfg.ports.clone();
    info.syn_on_pps = cfg.syn_on_pps;
    info.syn_off_pps = cfg.syn_off_pps;
    info.hold_s = cfg.hold.as_secs_f64();
    if let Err(e) = info.write(&cfg.run_dir, key) {
        warn!("{key}: cannot record the reload in the run-info file: {e}");
    }
}

/// Settings a running program cannot change, named when the new file changes them.
fn needs_restart(old: &RunConfig, new: &RunConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.ifaces != new.ifaces {
        out.push("interfaces");
    }
    if old.mode != new.mode {
        out.push("mode");
    }
    if old.xdp != new.xdp {
        out.push("xdp_mode");
    }
    if old.wscale != new.wscale {
        out.push("wscale");
    }
    if old.cookies != new.cookies {
        out.push("cookies");
    }
    if old.own_tc != new.own_tc {
        out.push("own_tc");
    }
    if old.metrics_addr != new.metrics_addr {
        out.push("metrics_addr");
    }
    if old.log_format != new.log_format {
        out.push("log_format");
    }
    out
}

/// What a reload did: the configuration now in effect, and the changed settings that need a
/// restart (they keep their running value).
pub struct Reloaded {
    pub config: RunConfig,
    pub needs_restart: Vec<&'static str>,
}

/// Re-reads the configuration `run` was started with and applies it to the instances `keys`.
/// A configuration that does not validate changes nothing (the error says why).
pub fn reload(current: &RunConfig, args: &RunArgs, keys: &[Key]) -> Result<Reloaded> {
    let new = file::resolve(args).context("reload refused, nothing changed")?;
    let fixed = needs_restart(current, &new);
    if !fixed.is_empty() {
        warn!(
            "reload: {} changed; that takes a restart (SIGUSR1 hands over without a gap), the \
             running value stays",
            fixed.join(", ")
        );
    }
    let effective = RunConfig {
        ifaces: current.ifaces.clone(),
        mode: current.mode,
        xdp: current.xdp,
        wscale: current.wscale,
        cookies: current.cookies,
        own_tc: current.own_tc,
        metrics_addr: current.metrics_addr,
        log_format: current.log_format,
        ..new
    };
    let added = effective.ports.iter().any(|p| !current.ports.contains(p));
    for key in keys {
        let dir = paths::pin_dir(&effective.pin_base, key);
        if added {
            // Connections to a port about to be protected were never stamped: no promise
            // until the next pass (`daemon::conns`), which the caller runs at once.
            conns::distrust(&dir).with_context(|| format!("{key}: connection table"))?;
        }
        apply_settings(&dir, &effective)
            .with_context(|| format!("{key}: applying thresholds and ports"))?;
    }
    apply_policy(&effective, keys, Some(current))?;
    for key in keys {
        record(&effective, key);
    }
    info!(
        "reloaded: ports {:?}, thresholds on {} / off {} SYN/s, hold {:?}",
        effective.ports, effective.syn_on_pps, effective.syn_off_pps, effective.hold
    );
    Ok(Reloaded {
        config: effective,
        needs_restart: fixed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CookieMode;

    fn cfg() -> RunConfig {
        RunConfig::from_settings(&crate::config::Settings {
            ifaces: vec!["eth0".into()],
            ports: Some(crate::config::Ports::File(vec![80])),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn restart_only_settings_are_named() {
        let a = cfg();
        let mut b = a.clone();
        assert!(needs_restart(&a, &b).is_empty());
        b.syn_on_pps = 5;
        b.ports = vec![22, 80];
        assert!(needs_restart(&a, &b).is_empty(), "maps carry these");
        b.mode = CookieMode::Always;
        b.ifaces = vec!["eth1".into()];
        assert_eq!(needs_restart(&a, &b), ["interfaces", "mode"]);
        b.cookies = crate::config::Cookies::Kernel;
        assert_eq!(needs_restart(&a, &b), ["interfaces", "mode", "cookies"]);
        // The secret file is re-read on reload, not a restart matter.
        b.cookie_secret_file = Some("/k".into());
        assert_eq!(needs_restart(&a, &b), ["interfaces", "mode", "cookies"]);
    }

    #[test]
    fn runtime_entries_join_the_file_lists_once() {
        let (a, b): (Cidr, Cidr) = (
            "192.0.2.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        );
        let mut runtime = RuntimeLists::default();
        runtime.add(ListKind::Block, a);
        runtime.add(ListKind::Block, b);
        assert_eq!(with_runtime(&[a], &runtime, ListKind::Block), [a, b]);
        assert_eq!(with_runtime(&[a], &runtime, ListKind::Allow), [a]);
    }
}
