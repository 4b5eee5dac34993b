//! The `allow`, `block` and `top` commands, on the pinned maps of the running instances.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use synguard_common::policy::names;

use clap::{Args, Subcommand};

use crate::{
    config::{Cidr, DEFAULT_PIN_BASE, ListKind},
    datapath::{maps, pins, policy},
    host::clock::monotonic_ns,
    state::{ifaces, paths},
};

/// Where a list or `top` command acts.
#[derive(Debug, Args)]
pub struct Target {
    /// Only this interface [default: every interface synguard guards].
    #[arg(long)]
    pub iface: Option<String>,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ListOp {
    /// Add a prefix (CIDR, e.g. 192.0.2.0/24 or 2001:db8::/32); effective on the next packet.
    Add {
        cidr: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a prefix, exactly as listed.
    Del {
        cidr: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print the list.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub target: Target,
    /// How many of the heaviest sources to show (`--count` is the old spelling; `--count`
    /// means a number of refreshes in `stats`).
    #[arg(long, value_name = "N", default_value_t = 10, alias = "count")]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

/// The pin directories a command acts on: one interface, or every one with state.
fn targets(t: &Target) -> Result<Vec<(String, PathBuf)>> {
    if let Some(iface) = &t.iface {
        let dir = paths::pin_dir(&t.pin_base, iface);
        if !dir.exists() {
            bail!(
                "synguard does not guard {iface} (no state in {})",
                dir.display()
            );
        }
        return Ok(vec![(iface.clone(), dir)]);
    }
    let nothing = || {
        format!(
            "no synguard is running (nothing under {})",
            t.pin_base.display()
        )
    };
    let all = ifaces::pinned(&t.pin_base).with_context(nothing)?;
    if all.is_empty() {
        bail!(nothing());
    }
    Ok(all
        .into_iter()
        .map(|i| {
            let dir = paths::pin_dir(&t.pin_base, &i);
            (i, dir)
        })
        .collect())
}

pub fn list_command(kind: ListKind, op: &ListOp) -> Result<()> {
    match op {
        ListOp::Add { cidr, target } | ListOp::Del { cidr, target } => {
            let cidr: Cidr = cidr.parse()?;
            let add = matches!(op, ListOp::Add { .. });
            for (iface, dir) in targets(target)? {
                pins::check_schema(&dir)?;
                let mut maps = policy::open_pinned(&dir)?;
                if add {
                    maps.add(kind, cidr)?;
                } else {
                    maps.del(kind, cidr)?;
                }
                println!(
                    "{iface}: {} {cidr} {} the {kind} list",
                    if add { "added" } else { "removed" },
                    if add { "to" } else { "from" }
                );
            }
        }
        ListOp::List { target, json } => {
            for (iface, dir) in targets(target)? {
                let list = policy::open_pinned(&dir)?.list(kind)?;
                if *json {
                    let l: Vec<String> = list.iter().map(ToString::to_string).collect();
                    println!(
                        "{}",
                        serde_json::json!({ "iface": iface, kind.to_string(): l })
                    );
                } else {
                    println!("{iface}: {} {kind}ed prefixes", list.len());
                    list.iter().for_each(|c| println!("  {c}"));
                }
            }
        }
    }
    Ok(())
}

pub fn top(args: &TopArgs) -> Result<()> {
    for (iface, dir) in targets(&args.target)? {
        let map = maps::open(&dir, names::SOURCES)
            .with_context(|| format!("{iface}: no per-source state pinned"))?;
        let entries = policy::sources(map)?;
        let (heavy, blocked) = policy::top(&entries, monotonic_ns(), args.limit);
        if args.json {
            println!(
                "{}",
                serde_json::json!({ "iface": iface, "top": heavy, "blocked": blocked })
            );
            continue;
        }
        println!("{iface}: {} sources tracked", entries.len());
        if entries.is_empty() {
            println!("  (sources are tracked only with a per-source limit: --source-rate)");
        }
        for r in &heavy {
            println!(
                "  {:<40} {:>10} SYNs {:>10} dropped{}",
                r.source,
                r.syns,
                r.dropped,
                r.blocked_for_s
                    .map(|s| format!("  blocked {s} s more"))
                    .unwrap_or_default()
            );
        }
        if !blocked.is_empty() {
            println!("  blocked: {}", blocked.len());
        }
    }
    Ok(())
}
