//! `synguard-fuzz`: runs the XDP program on generated and mutated frames and judges each with
//! an independent oracle (`synguard_lab::fuzz`). Prints frames/s and every violation, minimised,
//! as hex and decoded. Run through `cargo xtask fuzz --frames N --seed S` (needs root).

use anyhow::{Result, bail};
use clap::Parser;
use synguard_lab::fuzz::{Cookies, Fuzzer};

#[derive(Parser)]
#[command(about = "structure-aware fuzzing of synguard's XDP program through BPF_PROG_TEST_RUN")]
struct Args {
    /// Generated frames to run.
    #[arg(long, default_value_t = 100_000)]
    frames: u64,
    /// Seed: the same seed runs the same frames.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many violations.
    #[arg(long, default_value_t = 10)]
    max_violations: usize,
    /// Whose cookies answer SYNs: kernel, or own (under a key drawn from the seed).
    #[arg(long, value_parser = ["kernel", "own"], default_value = "kernel")]
    cookies: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cookies = match args.cookies.as_str() {
        "own" => Cookies::Own,
        _ => Cookies::Kernel,
    };
    let mut fuzzer = Fuzzer::new(cookies)?;
    let r = fuzzer.run(args.frames, args.seed, args.max_violations)?;
    println!(
        "seed {}, {} cookies: {} frames ({} split over buffers), {} program runs in {:.1} s: {:.0} runs/s ({:.0} frames/s); {} SYNs answered",
        args.seed,
        args.cookies,
        r.frames,
        r.split,
        r.runs,
        r.secs,
        r.runs_per_sec(),
        r.frames as f64 / r.secs.max(1e-9),
        r.answered
    );
    for (name, n) in &r.by_reason {
        println!("  {name:<28} {n}");
    }
    for v in &r.violations {
        println!("VIOLATION: {}", v.render());
    }
    if !r.violations.is_empty() {
        bail!("{} violation(s)", r.violations.len());
    }
    println!("no violations");
    Ok(())
}
