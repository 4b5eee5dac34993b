//! `synguard status`: what synguard does on each interface, from the pinned state (kernel truth)
//! and the run-info file (what the loader decided). Works whether or not a `run` process is
//! alive: after a kill -9 the program keeps protecting, and status says so.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clap::Args;
use serde::Serialize;
use synguard_common::maps::MODE_AUTO;

use crate::{
    config::{DEFAULT_PIN_BASE, DEFAULT_RUN_DIR},
    daemon::events::{self, FloodRecord},
    datapath::{
        conns::{self, TableState},
        counters::{self, Sample},
        enforced,
        enforced::Enforced,
        link, pins,
    },
    host::{clock::mono_to_unix, netns, nic},
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
    /// The network namespace's inode (`/proc/self/ns/net`) the instance runs in: status shows
    /// only the caller's.
    pub netns: Option<u64>,
    pub started_unix_s: Option<u64>,
    /// "fresh" or "replaced" (took over a running program without a gap).
    pub attach: Option<String>,
    /// Mode, monitor, ports, thresholds, lists and limits, as the maps hold them now.
    #[serde(flatten)]
    pub enforced: Option<Enforced>,
    pub cookies_active: Option<bool>,
    /// When cookies last switched on or off (unix seconds).
    pub cookies_since_unix_s: Option<u64>,
    pub syn_rate_pps: Option<u64>,
    pub mode_switches: Option<u64>,
    /// The connection table (docs/connection-table.md): whether the XDP program may skip the
    /// socket lookup for ACKs now, and how many sockets the loader's last pass stamped.
    pub conn_table: Option<TableState>,
    /// Where the instance serves Prometheus metrics.
    pub metrics_addr: Option<String>,
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
/// interface of this namespace asked for by name is shown (as not attached) even without state;
/// a name that is neither is an error.
fn known(args: &StatusArgs) -> anyhow::Result<Vec<Key>> {
    let found = scope::select(&args.pin_base, &args.run_dir, args.iface.as_deref())?;
    match &args.iface {
        Some(iface) if found.is_empty() => {
            let index = nic::check_interface(iface)?;
            Ok(vec![Key::scoped(netns::current_inode()?, iface, index)])
        }
        _ => Ok(found),
    }
}

/// `--iface` names an interface of this namespace, or one synguard still has state for here (a
/// program left pinned after its interface went away is worth showing and detaching).
pub fn check_iface(iface: &str, pin_base: &Path, run_dir: &Path) -> anyhow::Result<()> {
    if !scope::select(pin_base, run_dir, Some(iface))?.is_empty() {
        return Ok(());
    }
    nic::check_interface(iface)?;
    Ok(())
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
    let mut note = |e: anyhow::Error| errors.push(format!("{e:#}"));
    let (sample, enforced, conn_table) = if dir.exists() {
        (
            counters::read_sample(&dir).map_err(|e| note(e.into())).ok(),
            enforced::read(&dir).map_err(|e| note(e.into())).ok(),
            // An instance of a release without the table has none to show.
            conns::read_state(&dir).ok(),
        )
    } else {
        (None, None, None)
    };
    let flood_events = events::read_history(&paths::history(&args.run_dir, key));
    let info = info.as_ref();
    errors.dedup();
    IfaceStatus {
        iface: key.iface().to_string(),
        ifindex: key.ifindex(),
        legacy: key.is_legacy(),
        attached: program_id.is_some(),
        program_id,
        xdp_mode: info.map(|i| i.xdp_mode.clone()),
        process_running: lock::is_held(&args.run_dir, key),
        pid: info.map(|i| i.pid),
        netns: match key {
            Key::Scoped { netns, .. } => Some(*netns),
            Key::Legacy { .. } => info.and_then(|i| i.netns.as_deref().and_then(netns::inode_of)),
        },
        started_unix_s: info.map(|i| i.started_unix_s),
        attach: info.map(|i| i.attach.clone()),
        enforced,
        cookies_active: sample.as_ref().map(|s| s.cookies_active),
        cookies_since_unix_s: sample
            .as_ref()
            .and_then(|s| cookies_since(s, &flood_events)),
        syn_rate_pps: sample.as_ref().map(|s| s.syn_rate_pps),
        mode_switches: sample.as_ref().map(|s| s.mode_state.switches),
        conn_table,
        metrics_addr: info.and_then(|i| i.metrics_addr.clone()),
        flood_events,
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
    // A flood that ended on the clock (no SYN since) has no port that decided it.
    let port = match r.port {
        0 => "no SYN for the hold time".to_string(),
        p => format!("port {p}"),
    };
    format!("  flood {} {ago}: {} SYN/s ({port})", r.kind, r.rate_pps)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn state_line(s: &IfaceStatus) -> String {
    let state = match (s.attached, s.process_running) {
        (true, true) => "attached, synguard running",
        (true, false) => {
            "attached, no synguard process (the pinned program keeps protecting; \
             `synguard run` takes it over, `synguard detach` removes it)"
        }
        (false, true) => "not attached, synguard starting",
        (false, false) => "not attached",
    };
    let legacy = if s.legacy {
        " (state of an earlier release: `synguard run` takes it over)"
    } else {
        ""
    };
    format!(
        "{}: {state}\n  ifindex {}, network namespace {}{legacy}\n  program id {}, {} XDP, pid {}, \
         metrics {}\n",
        s.iface,
        opt(s.ifindex),
        opt(s.netns),
        opt(s.program_id),
        opt(s.xdp_mode.as_deref()),
        opt(s.pid),
        opt(s.metrics_addr.as_deref()),
    )
}

/// When cookies last went on or off (unix seconds), from the programs' stamps (monotonic) and
/// the flood history.
fn cookies_since(s: &Sample, history: &[FloodRecord]) -> Option<u64> {
    let stamp = |ns: u64| (ns != 0).then(|| mono_to_unix(ns)).flatten();
    let last_end = history
        .iter()
        .rev()
        .find(|r| r.kind == events::KIND_END)
        .map(|r| r.unix_ms / 1000);
    switched_at(
        s.cookies_active,
        s.ready.kernel_ready != 0,
        stamp(s.ready.ready_since_ns),
        (s.mode == MODE_AUTO)
            .then(|| stamp(s.mode_state.wanted_since_ns))
            .flatten(),
        last_end,
    )
}

/// The time of the last switch, from what each side stamps: the loader when it sets the
/// kernel's readiness (`ready_since`, both ways with the kernel's cookies; own cookies are ready
/// from the start), the program when auto mode wants cookies (`wanted_since`), the flood
/// history when a flood ended (`last_end`). Cookies are on since both the readiness and the
/// mode's call held; off since the readiness went (the kernel's cookies) or since the last
/// flood's end (readiness kept).
fn switched_at(
    active: bool,
    ready: bool,
    ready_since: Option<u64>,
    wanted_since: Option<u64>,
    last_end: Option<u64>,
) -> Option<u64> {
    let later = |a: Option<u64>, b: Option<u64>| a.max(b);
    match (active, ready) {
        (true, _) => later(ready_since, wanted_since),
        (false, false) => ready_since,
        (false, true) => later(ready_since, last_end),
    }
}

fn cookies_line(s: &IfaceStatus) -> String {
    let since = s.cookies_since_unix_s.map(|t| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
    });
    let cookies = match s.cookies_active {
        Some(true) => "ON",
        Some(false) => "off",
        None => "?",
    };
    format!(
        "  cookies {cookies} since {}, SYN rate {} pps, {} mode switches\n",
        opt(since),
        opt(s.syn_rate_pps),
        opt(s.mode_switches)
    )
}

/// The protected ports nothing listens on, each with the families it lacks one for; nothing
/// when every one has a listener.
fn listener_line(e: &Enforced) -> String {
    let mut ports: Vec<u16> = e
        .no_listener_v4
        .iter()
        .chain(&e.no_listener_v6)
        .copied()
        .collect();
    ports.sort_unstable();
    ports.dedup();
    let mut out = String::new();
    if !e.no_listener_at.is_empty() {
        let each: Vec<String> = e
            .no_listener_at
            .iter()
            .map(|(p, at)| {
                let at: Vec<String> = at.iter().map(ToString::to_string).collect();
                format!("{p} at {}", at.join(", "))
            })
            .collect();
        out = format!(
            "  no listener on port {}: their SYNs are left to the kernel, which resets them\n",
            each.join("; ")
        );
    }
    if !e.bound_only.is_empty() {
        let each: Vec<String> = e.bound_only.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "  port {}: answered only at the addresses its listeners are bound to; SYNs to the \
             host's other addresses are left to the kernel, which resets them\n",
            each.join(", ")
        ));
    }
    if ports.is_empty() {
        return out;
    }
    let each: Vec<String> = ports
        .iter()
        .map(|p| {
            let families = match (e.no_listener_v4.contains(p), e.no_listener_v6.contains(p)) {
                (true, true) => "IPv4, IPv6",
                (true, false) => "IPv4",
                _ => "IPv6",
            };
            format!("{p} ({families})")
        })
        .collect();
    format!(
        "  no listener on port {}: their SYNs are left to the kernel, which resets them\n{out}",
        each.join(", ")
    )
}

/// The enforced settings, as the maps hold them.
fn enforced_lines(e: &Enforced) -> String {
    let monitor = if e.monitor {
        ", MONITOR ONLY: nothing is dropped or answered"
    } else {
        ""
    };
    let l = &e.lists;
    let m = &e.limits;
    let limit = |pps: u64, burst: u64| match pps {
        0 => "none".to_string(),
        _ => format!("{pps}/s burst {burst}"),
    };
    let a = &e.synack;
    let unlistened = listener_line(e);
    format!(
        "  {} mode, {} cookies{monitor}\n  ports {:?}, thresholds on {} / off {} pps, hold {} s\n  \
         allow {} v4 + {} v6, block {} v4 + {} v6 prefixes; per source {} (block {} s), \
         reflection cap {}\n  SYN-ACKs: MSS at most {} (IPv4) / {} (IPv6), window scale {}, \
         ECN {}, for SYNs to MAC {}; reverse-path check {}\n  host addresses: IPv4 {}, IPv6 {}\n\
         {unlistened}",
        e.mode,
        e.cookies,
        e.ports,
        e.syn_threshold,
        e.syn_off_threshold,
        e.hold_s,
        l.allow_v4,
        l.allow_v6,
        l.block_v4,
        l.block_v6,
        limit(m.source_rate_pps, m.source_burst),
        m.source_block_s,
        limit(m.reflect_cap_pps, m.reflect_burst),
        a.mss_v4,
        a.mss_v6,
        a.wscale,
        if a.ecn { "on" } else { "off" },
        a.mac,
        a.reverse_path,
        a.addresses_v4.text(),
        a.addresses_v6.text(),
    )
}

fn conn_table_line(t: &TableState) -> String {
    if t.trusted {
        format!(
            "  connection table trusted: {} sockets stamped by the last pass (ACKs of no socket \
             skip the socket lookup)\n",
            t.sockets
        )
    } else {
        "  connection table not trusted (every ACK goes through the socket lookup)\n".to_string()
    }
}

fn text(s: &IfaceStatus) -> String {
    let mut out = state_line(s);
    if let Some(e) = &s.enforced {
        out += &enforced_lines(e);
    }
    out += &cookies_line(s);
    if let Some(t) = &s.conn_table {
        out += &conn_table_line(t);
    }
    for c in &s.sysctl_changes {
        out += &format!("  changed {} {} -> {} ({})\n", c.name, c.old, c.new, c.why);
    }
    for r in s.flood_events.iter().rev().take(5).rev() {
        out += &flood_line(r);
        out.push('\n');
    }
    for e in &s.errors {
        out += &format!("  error: {e}\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_without_a_listener_are_named_with_their_families() {
        use synguard_common::{maps::Config, policy::Policy};
        let mut e = Enforced::from_maps(&Config::default(), &Policy::default(), vec![22, 80, 443]);
        assert_eq!(listener_line(&e), "");
        (e.no_listener_v4, e.no_listener_v6) = (vec![80, 443], vec![22, 443]);
        assert_eq!(
            listener_line(&e),
            "  no listener on port 22 (IPv6), 80 (IPv4), 443 (IPv4, IPv6): their SYNs are left \
             to the kernel, which resets them\n"
        );
        e.no_listener_at = vec![(
            22,
            vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()],
        )];
        assert_eq!(
            listener_line(&e),
            "  no listener on port 22 (IPv6), 80 (IPv4), 443 (IPv4, IPv6): their SYNs are left \
             to the kernel, which resets them\n  no listener on port 22 at 10.0.0.2, 10.0.0.3: \
             their SYNs are left to the kernel, which resets them\n"
        );
    }

    #[test]
    fn cookies_switched_at_the_later_stamp_of_their_conditions() {
        let (start, flood, end) = (Some(100), Some(200), Some(300));
        // Own cookies, auto mode: ready from the start; on when the flood wanted them, off
        // since it ended (before any flood: since the start).
        assert_eq!(switched_at(true, true, start, flood, None), flood);
        assert_eq!(switched_at(false, true, start, flood, end), end);
        assert_eq!(switched_at(false, true, start, None, None), start);
        // Always mode: on since the start.
        assert_eq!(switched_at(true, true, start, None, None), start);
        // The kernel's cookies: on once the loader made the kernel ready after the flood
        // began, off when it took the readiness back.
        assert_eq!(switched_at(true, true, Some(210), flood, None), Some(210));
        assert_eq!(switched_at(false, false, Some(310), flood, end), Some(310));
    }
}
