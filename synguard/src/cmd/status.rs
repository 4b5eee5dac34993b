//! `synguard status`: what synguard does on each interface, from the pinned state (kernel truth)
//! and the run-info file (what the loader decided). Works whether or not a `run` process is
//! alive: after a kill -9 the program keeps protecting, and status says so.

use std::{
    collections::BTreeMap,
    io,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clap::Args;
use serde::Serialize;
use synguard_common::maps::{Config, ReadyState, names};

use crate::{
    config::{DEFAULT_PIN_BASE, DEFAULT_RUN_DIR},
    daemon::events::{self, FloodRecord},
    datapath::{counters, link, maps, pins},
    host::clock::mono_to_unix,
    host::{netns, nic},
    state::{
        lock,
        paths::{self, Key},
        run_info::{RecordedChange, RunInfo},
        scope,
    },
};

#[derive(Debug, Serialize)]
pub struct IfaceStatus {
    pub iface: String,
    /// The interface index the instance is keyed by (None for the earlier release's layout).
    pub ifindex: Option<u32>,
    /// The network namespace's inode (`/proc/self/ns/net`): status shows only the caller's.
    pub netns: Option<u64>,
    /// The earlier release's flat layout (taken over by the next `run`).
    pub legacy: bool,
    /// The program is attached through synguard's pinned link.
    pub attached: bool,
    pub program_id: Option<u32>,
    /// "native" or "skb", as attached.
    pub xdp_mode: Option<String>,
    /// A `synguard run` process holds the interface.
    pub process_running: bool,
    pub pid: Option<u32>,
    pub started_unix_s: Option<u64>,
    /// "fresh" or "replaced" (took over a running program without a gap).
    pub attach: Option<String>,
    /// "auto" or "always".
    pub mode: Option<String>,
    pub cookies_active: Option<bool>,
    /// When cookies last switched on or off (unix seconds).
    pub cookies_since_unix_s: Option<u64>,
    pub syn_rate_pps: Option<u64>,
    pub mode_switches: Option<u64>,
    pub ports: Vec<u16>,
    pub syn_threshold: Option<u32>,
    pub syn_off_threshold: Option<u32>,
    pub hold_s: Option<f64>,
    /// The last flood starts and ends, oldest first.
    pub flood_events: Vec<FloodRecord>,
    /// Kernel settings synguard changed (name, old, new, why).
    pub sysctl_changes: Vec<RecordedChange>,
    /// What `detach` restores.
    pub sysctl_originals: BTreeMap<String, u64>,
    /// Problems reading the state, if any.
    pub errors: Vec<String>,
}

/// Instances of this network namespace with state: pin directories and run-info files. An
/// interface asked for by name is shown (as not attached) even without state.
fn known(args: &StatusArgs) -> io::Result<Vec<Key>> {
    let found = scope::select(&args.pin_base, &args.run_dir, args.iface.as_deref())?;
    match &args.iface {
        Some(iface) if found.is_empty() => {
            let ns = netns::current_inode()?;
            Ok(vec![match nic::check_interface(iface) {
                Ok(index) => Key::scoped(ns, iface, index),
                Err(_) => Key::Legacy {
                    iface: iface.clone(),
                },
            }])
        }
        _ => Ok(found),
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this interface [default: every instance in this network namespace].
    #[arg(long)]
    pub iface: Option<String>,
    /// One JSON object: {"interfaces": [...]}.
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

pub fn of_instance(args: &StatusArgs, key: &Key) -> IfaceStatus {
    let dir = paths::pin_dir(&args.pin_base, key);
    let mut errors = Vec::new();
    let info = RunInfo::read(&paths::run_info(&args.run_dir, key)).unwrap_or_else(|e| {
        errors.push(format!("run-info: {e}"));
        None
    });
    let program_id = link::program_id(&dir.join(pins::LINK)).ok();
    let sample = if dir.exists() {
        counters::read_sample(&dir)
            .map_err(|e| errors.push(format!("{:#}", anyhow::Error::from(e))))
            .ok()
    } else {
        None
    };
    let ready_since = sample.as_ref().and_then(|_| {
        maps::read_single::<ReadyState>(&dir, names::READY)
            .ok()
            .map(|r| r.ready_since_ns)
    });
    let live = sample
        .as_ref()
        .and_then(|_| maps::read_single::<Config>(&dir, names::CONFIG).ok());
    let info = info.as_ref();
    IfaceStatus {
        iface: key.iface().to_string(),
        ifindex: key.ifindex(),
        netns: match key {
            Key::Scoped { netns, .. } => Some(*netns),
            Key::Legacy { .. } => info.and_then(|i| i.netns.as_deref().and_then(netns::inode_of)),
        },
        legacy: key.is_legacy(),
        attached: program_id.is_some(),
        program_id,
        xdp_mode: info.map(|i| i.xdp_mode.clone()),
        process_running: lock::is_held(&args.run_dir, key),
        pid: info.map(|i| i.pid),
        started_unix_s: info.map(|i| i.started_unix_s),
        attach: info.map(|i| i.attach.clone()),
        mode: sample.as_ref().map(|s| s.mode_name().to_string()),
        cookies_active: sample.as_ref().map(|s| s.cookies_active),
        cookies_since_unix_s: ready_since.filter(|&t| t != 0).and_then(mono_to_unix),
        syn_rate_pps: sample.as_ref().map(|s| s.mode_state.last_rate_pps),
        mode_switches: sample.as_ref().map(|s| s.mode_state.switches),
        ports: info.map(|i| i.ports.clone()).unwrap_or_default(),
        // The live values (a reload changes them in the map), else what the loader recorded.
        syn_threshold: live.map(|c| c.syn_on_pps).or(info.map(|i| i.syn_on_pps)),
        syn_off_threshold: live.map(|c| c.syn_off_pps).or(info.map(|i| i.syn_off_pps)),
        hold_s: live
            .map(|c| c.hold_ns as f64 / 1e9)
            .or(info.map(|i| i.hold_s)),
        flood_events: events::read_history(&paths::history(&args.run_dir, key)),
        sysctl_changes: info.map(|i| i.sysctl_changes.clone()).unwrap_or_default(),
        sysctl_originals: info.map(|i| i.sysctl_originals.clone()).unwrap_or_default(),
        errors,
    }
}

/// One flood record, with how long ago it was.
fn flood_line(r: &FloodRecord) -> String {
    let when = SystemTime::UNIX_EPOCH + Duration::from_millis(r.unix_ms);
    let ago = SystemTime::now()
        .duration_since(when)
        .map(|d| format!("{} s ago", d.as_secs()))
        .unwrap_or_else(|_| "just now".into());
    format!(
        "  flood {} {ago}: {} SYN/s (port {})",
        r.kind, r.rate_pps, r.port
    )
}

fn text(s: &IfaceStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let state = match (s.attached, s.process_running) {
        (true, true) => "attached, synguard running".to_string(),
        (true, false) => "attached, no synguard process (the pinned program keeps protecting; \
                          `synguard run` takes it over, `synguard detach` removes it)"
            .to_string(),
        (false, true) => "not attached, synguard starting".to_string(),
        (false, false) => "not attached".to_string(),
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "{}: {state}\n  ifindex {}, network namespace {}{}",
        s.iface,
        opt(s.ifindex.map(|v| v.to_string())),
        opt(s.netns.map(|v| v.to_string())),
        if s.legacy {
            " (state of an earlier release: `synguard run` takes it over)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  program id {}, {} XDP, pid {}, {} mode",
        opt(s.program_id.map(|v| v.to_string())),
        opt(s.xdp_mode.clone()),
        opt(s.pid.map(|v| v.to_string())),
        opt(s.mode.clone())
    );
    let since = s.cookies_since_unix_s.map(|t| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
    });
    let _ = writeln!(
        out,
        "  cookies {} since {}, SYN rate {} pps, {} mode switches",
        match s.cookies_active {
            Some(true) => "ON",
            Some(false) => "off",
            None => "?",
        },
        opt(since),
        opt(s.syn_rate_pps.map(|v| v.to_string())),
        opt(s.mode_switches.map(|v| v.to_string()))
    );
    let _ = writeln!(
        out,
        "  ports {:?}, thresholds on {} / off {} pps, hold {} s",
        s.ports,
        opt(s.syn_threshold.map(|v| v.to_string())),
        opt(s.syn_off_threshold.map(|v| v.to_string())),
        opt(s.hold_s.map(|v| v.to_string()))
    );
    for c in &s.sysctl_changes {
        let _ = writeln!(
            out,
            "  changed {} {} -> {} ({})",
            c.name, c.old, c.new, c.why
        );
    }
    for r in s.flood_events.iter().rev().take(5).rev() {
        let _ = writeln!(out, "{}", flood_line(r));
    }
    for e in &s.errors {
        let _ = writeln!(out, "  error: {e}");
    }
    out
}

pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let all: Vec<IfaceStatus> = known(args)?.iter().map(|k| of_instance(args, k)).collect();
    if args.json {
        println!("{}", serde_json::json!({ "interfaces": all }));
    } else if all.is_empty() {
        println!(
            "synguard is not attached anywhere in this network namespace (no state under {})",
            args.pin_base.display()
        );
    } else {
        all.iter().for_each(|s| print!("{}", text(s)));
    }
    Ok(())
}
