//! Applying configuration to running programs through their pinned maps: the policy at start,
//! and a changed file on SIGHUP (`synguard reload` sends it). Nothing is re-attached and no
//! counter is touched. What a map cannot carry (interfaces, cookie mode, XDP mode, window scale,
//! metrics address, log format) needs a restart: a reload says so and keeps the running value.

use std::path::Path;

use anyhow::{Context as _, Result};
use log::{info, warn};
use synguard_common::maps::{Config, PortConfig, names};

use crate::{
    config::{RunArgs, RunConfig, file},
    datapath::{config_map::sync_ports, maps, policy},
    state::paths,
};

/// Writes the configuration's policy (limits, lists) to every interface. `previous`: the
/// configuration applied before, whose list entries are removed if this one drops them.
pub fn apply_policy(cfg: &RunConfig, previous: Option<&RunConfig>) -> Result<()> {
    let before = previous.map_or((&[][..], &[][..]), |p| (&p.allow[..], &p.block[..]));
    for iface in &cfg.ifaces {
        let dir = paths::pin_dir(&cfg.pin_base, iface);
        let mut maps = policy::open_pinned(&dir)
            .with_context(|| format!("{iface}: opening the policy maps"))?;
        maps.apply(&cfg.limits, (&cfg.allow, &cfg.block), before)
            .with_context(|| format!("{iface}: applying the policy"))?;
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

/// Thresholds and hold time into the config map, ports into the port map.
fn apply_settings(dir: &Path, cfg: &RunConfig) -> Result<()> {
    let mut config = maps::array::<Config>(dir, names::CONFIG)?;
    let mut c = config.get(&0, 0)?;
    c.syn_on_pps = cfg.syn_on_pps;
    c.syn_off_pps = cfg.syn_off_pps;
    c.hold_ns = cfg.hold.as_nanos() as u64;
    config.set(0, c, 0)?;
    let mut ports = maps::array::<PortConfig>(dir, names::PORTS)?;
    sync_ports(&mut ports, &cfg.ports, true)?;
    Ok(())
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
    if old.metrics_addr != new.metrics_addr {
        out.push("metrics_addr");
    }
    if old.log_format != new.log_format {
        out.push("log_format");
    }
    out
}

/// Re-reads the configuration `run` was started with and applies it; returns what is now in
/// effect. A configuration that does not validate changes nothing.
pub fn reload(current: &RunConfig, args: &RunArgs) -> Result<RunConfig> {
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
        metrics_addr: current.metrics_addr,
        log_format: current.log_format,
        ..new
    };
    for iface in &effective.ifaces {
        apply_settings(&paths::pin_dir(&effective.pin_base, iface), &effective)
            .with_context(|| format!("{iface}: applying thresholds and ports"))?;
    }
    apply_policy(&effective, Some(current))?;
    info!(
        "reloaded: ports {:?}, thresholds on {} / off {} SYN/s, hold {:?}",
        effective.ports, effective.syn_on_pps, effective.syn_off_pps, effective.hold
    );
    Ok(effective)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CookieMode;

    fn cfg() -> RunConfig {
        RunConfig::from_settings(&crate::config::Settings {
            ifaces: vec!["eth0".into()],
            ports: Some(vec![80]),
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
}
