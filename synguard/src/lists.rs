//! The `allow`, `block` and `top` commands, on the pinned maps of the running instances.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use aya::maps::{Map, MapData};
use synguard_common::policy::names;

use crate::{
    cli::{ListOp, Target, TopArgs},
    mode::monotonic_ns,
    pin,
    policy::{self, Cidr, ListKind},
};

/// The pin directories a command acts on: one interface, or every one with state.
fn targets(t: &Target) -> Result<Vec<(String, PathBuf)>> {
    if let Some(iface) = &t.iface {
        let dir = t.pin_base.join(iface);
        if !dir.exists() {
            bail!(
                "synguard does not guard {iface} (no state in {})",
                dir.display()
            );
        }
        return Ok(vec![(iface.clone(), dir)]);
    }
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&t.pin_base)
        .with_context(|| {
            format!(
                "no synguard is running (nothing under {})",
                t.pin_base.display()
            )
        })?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    if out.is_empty() {
        bail!(
            "no synguard is running (nothing under {})",
            t.pin_base.display()
        );
    }
    Ok(out)
}

pub fn list_command(kind: ListKind, op: &ListOp) -> Result<()> {
    match op {
        ListOp::Add { cidr, target } | ListOp::Del { cidr, target } => {
            let cidr: Cidr = cidr.parse()?;
            let add = matches!(op, ListOp::Add { .. });
            for (iface, dir) in targets(target)? {
                pin::check_schema(&dir)?;
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
        let data = MapData::from_pin(dir.join(names::SOURCES))
            .with_context(|| format!("{iface}: no per-source state pinned"))?;
        let entries = policy::sources(Map::from_map_data(data)?)?;
        let (heavy, blocked) = policy::top(&entries, monotonic_ns(), args.count);
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
