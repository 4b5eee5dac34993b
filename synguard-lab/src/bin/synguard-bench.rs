//! `synguard-bench`: prints the XDP program's ns/packet per path beside the XDP_TX floor.
//! Run through `cargo xtask bench` (needs root).

use anyhow::Result;
use clap::Parser;
use synguard_lab::testrun::bench::{Bench, print_table};

#[derive(Parser)]
#[command(about = "ns per packet of each synguard XDP path, beside a minimal XDP_TX floor")]
struct Args {
    /// Measurement rounds per path (median, min and max are reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Program runs per round.
    #[arg(long, default_value_t = 200_000)]
    repeat: u32,
    /// Only the paths whose name contains this text (the floors are always measured).
    #[arg(long, default_value = "")]
    path: String,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// The CPU every measurement runs on (default: the last one, which on these VMs takes the
    /// fewest interrupts).
    #[arg(long)]
    cpu: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cpu = synguard_lab::testrun::bench::pin(args.cpu)?;
    println!("measuring on CPU {cpu}");
    let mut bench = Bench::new()?;
    let results = bench.run(args.rounds, args.repeat, &args.path)?;
    print_table(&results, args.rounds, args.repeat);
    let verified: Vec<String> = bench
        .verified_insns()
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!(
        "verifier, instructions processed (limit 1000000): {}",
        verified.join(", ")
    );
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}
