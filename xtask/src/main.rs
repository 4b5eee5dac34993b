//! `cargo xtask`: install what the build and the tests need, build, test, run the demo and the
//! benchmark. Every command except `setup` runs `setup` first, so a fresh machine (and CI, which
//! starts on one) needs nothing but rustup and cargo.

mod old_release;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "synguard's build, setup, test, demo and benchmark tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install system packages, the nightly toolchain and bpf-linker (idempotent).
    Setup,
    /// Setup, then build synguard and the lab in release mode.
    Build,
    /// Setup, fmt and clippy checks, host unit tests, then the privileged lab tests (root).
    Test,
    /// Setup, build, then run the live demo in the lab (root).
    Demo {
        /// Extra arguments passed to synguard-demo.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Setup, build, then run synguard-flood (root): flood runs in the lab, scenarios x defences,
    /// table, JSON and charts under target/lab/. E.g. `cargo xtask lab --quick`, `cargo xtask lab
    /// --scenario syn --defence synguard-always --runs 5`.
    Lab {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, build, then run synguard-bench (root).
    Bench {
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = repo_root();
    std::env::set_current_dir(&root).with_context(|| format!("cd {}", root.display()))?;
    setup::all()?;
    match cli.cmd {
        Cmd::Setup => Ok(()),
        Cmd::Build => build(),
        Cmd::Test => test(&root),
        Cmd::Demo { args } => {
            build()?;
            run_lab_bin(&root, "synguard-demo", &args)
        }
        Cmd::Lab { args } => {
            build()?;
            run_lab_bin(&root, "synguard-flood", &args)
        }
        Cmd::Bench { args } => {
            build()?;
            run_lab_bin(&root, "synguard-bench", &args)
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Where cargo puts its output: `CARGO_TARGET_DIR` if set, else `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        }
        None => root.join("target"),
    }
}

/// Runs a command, echoing it first, and fails with its exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn build() -> Result<()> {
    run(cargo().args(["build", "--release", "-p", "synguard", "-p", "synguard-lab"]))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn test(root: &Path) -> Result<()> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "synguard-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    clippy_ebpf()?;
    // Host unit tests of the default members (no root needed).
    run(cargo().arg("test"))?;
    if !is_root() {
        bail!(
            "the lab tests create network namespaces and attach XDP programs: run `cargo xtask \
             test` as root (everything before this step passed)"
        );
    }
    // The e2e tests run the debug synguard binary; build it (and its eBPF objects) first so the
    // tests find it, and tell them where it is.
    run(cargo().args(["build", "-p", "synguard"]))?;
    let bin = target_dir(root).join("debug/synguard");
    let mut lab_tests = cargo();
    lab_tests
        .args(["test", "-p", "synguard-lab", "--", "--test-threads=1"])
        .env("SYNGUARD_BIN", &bin);
    // The take-over of an instance the previous release left running (`tests/compat.rs`).
    if let Some(old) = old_release::binary(root, &target_dir(root))? {
        lab_tests.env("SYNGUARD_OLD_BIN", old);
    }
    run(&mut lab_tests)
}

/// The eBPF crate only builds for `bpfel-unknown-none` (no_std, no_main, BPF-only intrinsics), so
/// it is clippy'd for that target with nightly's `-Z build-std=core`, as aya-build builds it.
fn clippy_ebpf() -> Result<()> {
    run(Command::new("cargo")
        .args([
            "+nightly",
            "clippy",
            "-p",
            "synguard-ebpf",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ])
        // The outer cargo's toolchain variables would pin the stable toolchain.
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO"))
}

fn run_lab_bin(root: &Path, name: &str, args: &[String]) -> Result<()> {
    let release = target_dir(root).join("release");
    let bin = release.join(name);
    if !bin.exists() {
        bail!(
            "{} does not exist (is the binary defined in synguard-lab?)",
            bin.display()
        );
    }
    if !is_root() {
        bail!("{name} creates network namespaces: run it as root");
    }
    run(Command::new(&bin)
        .args(args)
        .env("SYNGUARD_BIN", release.join("synguard")))
}
