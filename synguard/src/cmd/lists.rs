//! The `allow`, `block` and `top` commands, on the pinned maps of the instances of this network
//! namespace (`state::scope`). Entries added or removed here are also recorded in the
//! instance's runtime-lists file, so a restart restores them and `list` tells them apart from
//! the configuration file's.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use synguard_common::policy::names;

use clap::{Args, Subcommand};

use crate::{
    config::{Cidr, DEFAULT_PIN_BASE, DEFAULT_RUN_DIR, ListKind},
    datapath::{maps, pins, policy},
    host::clock::monotonic_ns,
    state::{
        paths::{self, Key},
        runtime_lists::RuntimeLists,
        scope,
    },
};

/// Where a list or `top` command acts.
#[derive(Debug, Args)]
pub struct Target {
    /// Only this interface [default: every instance in this network namespace].
    #[arg(long)]
    pub iface: Option<String>,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
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

/// The instances a command acts on, with their pin directories: one interface, or every one of
/// this namespace with pinned state.
fn targets(t: &Target) -> Result<Vec<(Key, PathBuf)>> {
    let found: Vec<(Key, PathBuf)> = scope::select(&t.pin_base, &t.run_dir, t.iface.as_deref())
        .with_context(|| format!("cannot list {}", t.pin_base.display()))?
        .into_iter()
        .map(|k| {
            let dir = paths::pin_dir(&t.pin_base, &k);
            (k, dir)
        })
        .filter(|(_, dir)| dir.is_dir())
        .collect();
    if found.is_empty() {
        match &t.iface {
            Some(iface) => bail!("synguard does not guard {iface} in this network namespace"),
            None => bail!("no synguard is running in this network namespace"),
        }
    }
    Ok(found)
}

pub fn list_command(kind: ListKind, op: &ListOp) -> Result<()> {
    match op {
        ListOp::Add { cidr, target } | ListOp::Del { cidr, target } => {
            let cidr: Cidr = cidr.parse()?;
            let add = matches!(op, ListOp::Add { .. });
            for (key, dir) in targets(target)? {
                change(kind, cidr, add, &target.run_dir, &key, &dir)?;
            }
        }
        ListOp::List { target, json } => {
            for (key, dir) in targets(target)? {
                list(kind, *json, &target.run_dir, &key, &dir)?;
            }
        }
    }
    Ok(())
}

/// Adds or removes one entry in the map and in the runtime record.
fn change(
    kind: ListKind,
    cidr: Cidr,
    add: bool,
    run_dir: &Path,
    key: &Key,
    dir: &Path,
) -> Result<()> {
    pins::check_schema(dir)?;
    let mut maps = policy::open_pinned(dir)?;
    let mut runtime = RuntimeLists::load(run_dir, key)?;
    let was_runtime = runtime.contains(kind, cidr);
    if add {
        maps.add(kind, cidr)?;
        runtime.add(kind, cidr);
    } else {
        maps.del(kind, cidr)?;
        runtime.remove(kind, cidr);
    }
    runtime
        .save(run_dir, key)
        .with_context(|| format!("{key}: cannot record the change"))?;
    println!(
        "{key}: {} {cidr} {} the {kind} list",
        if add { "added" } else { "removed" },
        if add { "to" } else { "from" }
    );
    if !add && !was_runtime {
        eprintln!(
            "{key}: {cidr} comes from the configuration file: it returns on the next reload or \
             restart unless removed there"
        );
    }
    Ok(())
}

/// Prints one instance's list, each entry with its origin.
fn list(kind: ListKind, json: bool, run_dir: &Path, key: &Key, dir: &Path) -> Result<()> {
    let entries = policy::open_pinned(dir)?.list(kind)?;
    let runtime = RuntimeLists::load(run_dir, key)?;
    if json {
        let l: Vec<serde_json::Value> = entries
            .iter()
            .map(|c| serde_json::json!({ "prefix": c.to_string(), "origin": runtime.origin(kind, *c) }))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "iface": key.iface(), kind.to_string(): l })
        );
    } else {
        println!("{key}: {} {kind}ed prefixes", entries.len());
        entries
            .iter()
            .for_each(|c| println!("  {c:<43} {}", runtime.origin(kind, *c)));
    }
    Ok(())
}

pub fn top(args: &TopArgs) -> Result<()> {
    for (key, dir) in targets(&args.target)? {
        let iface = key.iface();
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
