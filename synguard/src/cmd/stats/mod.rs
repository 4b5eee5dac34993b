//! `synguard stats`: samples the pinned counters of a running instance and prints them.

pub mod report;

use std::{
    io::{self, Write as _},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::{
    config::{DEFAULT_PIN_BASE, DEFAULT_RUN_DIR},
    datapath::counters,
};
use report::Report;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Interface of the instance [default: the only one in this network namespace].
    #[arg(long)]
    pub iface: Option<String>,
    /// Seconds between refreshes.
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    pub interval: f64,
    /// One JSON object per line per refresh.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many refreshes (the first one is printed at once, with zero rates).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Base directory of pinned maps.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

pub async fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        bail!("--interval must be a positive number of seconds");
    }
    if args.count == Some(0) {
        bail!("--count must be at least 1");
    }
    let dir = counters::find_instance(&args.pin_base, &args.run_dir, args.iface.as_deref())?;
    let interval = Duration::from_secs_f64(args.interval);
    let mut prev = None;
    let mut printed = 0u64;
    loop {
        let sample = counters::read_sample(&dir)?;
        let report = Report::new(prev.as_ref(), &sample);
        let text = if args.json {
            report.to_json() + "\n"
        } else {
            report.to_text() + "\n"
        };
        let mut out = io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            // A closed pipe (`synguard stats | head`) is the reader saying "enough".
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("cannot write to stdout"),
        }
        drop(out);
        printed += 1;
        if args.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        prev = Some(sample);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
