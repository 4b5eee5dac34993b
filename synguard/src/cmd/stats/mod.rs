//! `synguard stats`: samples the pinned counters of a running instance and prints them.

pub mod report;

use std::{
    io::{self, Write as _},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
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
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = positive_seconds)]
    pub interval: f64,
    /// One JSON object per line per refresh.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many refreshes (the first one is printed at once, with zero rates).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub count: Option<u64>,
    /// Base directory of pinned maps.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

/// `--interval`: checked by clap, so a bad value is a usage error like any other.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err("expected a positive number of seconds, e.g. 0.5".into()),
    }
}

/// `--count`: a number of refreshes.
fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a number of refreshes, 1 or more".into()),
    }
}

pub async fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    if let Some(iface) = &args.iface {
        crate::cmd::status::check_iface(iface, &args.pin_base, &args.run_dir)?;
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
