//! `cargo xtask lab`: flood runs. Builds fresh labs, floods them with the live-frames
//! generator or hping3, measures every defence and writes table, JSON and charts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};
use clap::Parser;
use nix::sys::signal::{SigHandler, Signal, signal};
use synguard_lab::flood::{defence, runner, scenario, soak};
use synguard_lab::lab::synguard_proc;

#[derive(Parser)]
#[command(about = "synguard flood runs in the lab: scenarios x defences, table, JSON and charts")]
struct Args {
    /// Scenario to run (repeatable; default: all). Known: syn, ack, syn-direct, ack-direct, mixed,
    /// one-source, on-off, hping-syn.
    #[arg(long)]
    scenario: Vec<String>,
    /// Defence to measure (repeatable; default: all). Known: none, kernel-cookies, synproxy,
    /// synguard-always, synguard-auto, synguard-own, floor-xdp-tx, floor-xdp-drop.
    #[arg(long)]
    defence: Vec<String>,
    /// Runs per scenario and defence (min/median/max are over these).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// CI mode: one short SYN flood per defence, one run each (syn-direct unless --scenario).
    #[arg(long)]
    quick: bool,
    /// Also run every scenario with the server's receive path spread over both CPUs (two
    /// receive queues, one real-time NAPI thread per CPU), beside the one-CPU runs.
    #[arg(long)]
    spread: bool,
    /// The soak instead: one long mixed flood with legitimate traffic against synguard in auto
    /// mode with its policy on, a line every 30 s and one verdict per property at the end.
    #[arg(long)]
    soak: bool,
    /// How long the soak runs (e.g. 600s, 10m, 90).
    #[arg(long, value_parser = soak::parse_duration, default_value = "600s", requires = "soak")]
    duration: std::time::Duration,
    /// The soak's cookies: kernel (the lab's default) or own.
    #[arg(long, value_parser = ["kernel", "own"], default_value = "kernel", requires = "soak")]
    soak_cookies: String,
    /// Where the JSON and charts go.
    #[arg(long, default_value = "target/lab")]
    out: PathBuf,
}

/// Set by SIGINT/SIGTERM: the run in progress stops at its next check and every guard (floods,
/// synguard, XDP programs, namespaces) is dropped on the way out.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn main() -> Result<()> {
    let args = Args::parse();
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { signal(sig, SigHandler::Handler(on_signal)) }
            .context("installing a signal handler")?;
    }
    if args.soak {
        return run_soak(&args);
    }
    let scenarios = if args.scenario.is_empty() && args.quick {
        vec![scenario::by_name("syn-direct")?]
    } else if args.scenario.is_empty() {
        scenario::ALL.to_vec()
    } else {
        args.scenario
            .iter()
            .map(|s| scenario::by_name(s))
            .collect::<Result<_>>()?
    };
    let defences = if args.defence.is_empty() {
        defence::ALL.to_vec()
    } else {
        args.defence
            .iter()
            .map(|d| defence::Defence::parse(d))
            .collect::<Result<_>>()?
    };
    let mut plan = if args.quick {
        runner::Plan::quick(scenarios[0])
    } else {
        runner::Plan::full(scenarios, defences.clone(), args.runs.max(1))
    };
    plan.defences = defences;
    if args.spread {
        plan.layouts
            .push(synguard_lab::flood::layout::Layout::Spread);
    }
    let bin = synguard_proc::binary()?;
    let report = runner::run(&plan, &bin, &INTERRUPTED)?;
    println!("{}", synguard_lab::flood::report::table(&report));
    println!("ratios of medians (synguard / other):");
    println!("{}", synguard_lab::flood::report::ratio_table(&report));
    let spread = synguard_lab::flood::report::spread_table(&report);
    if !spread.is_empty() {
        println!("one server CPU -> spread over two (medians, ratio 2cpu / 1cpu):");
        println!("{spread}");
    }
    for f in runner::write(&report, &args.out).context("writing results")? {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// `--soak`: prints the soak's lines and verdicts; fails when a verdict fails.
fn run_soak(args: &Args) -> Result<()> {
    let bin = synguard_proc::binary()?;
    let verdicts = soak::run(args.duration, &args.soak_cookies, &bin, &INTERRUPTED)?;
    for v in &verdicts {
        println!("{}", v.line());
    }
    let failed: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.ok)
        .map(|v| v.property)
        .collect();
    anyhow::ensure!(failed.is_empty(), "soak failed: {}", failed.join(", "));
    Ok(())
}
