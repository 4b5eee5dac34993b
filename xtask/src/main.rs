//! `cargo xtask`: install what the build and the tests need, build, package, test, run the demo
//! and the benchmark. Every command first installs what it needs (`build` and `package` only the
//! build tools; `test`, `demo`, `lab` and `bench` also the test tools), so a fresh machine (and
//! CI, which starts on one) needs nothing but rustup and cargo.

mod install_test;
mod old_release;
mod package;
mod setup;
mod vm;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "synguard's build, setup, test, demo and benchmark tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the nightly toolchain, bpf-linker, the packaging tools and the test tools
    /// (idempotent).
    Setup,
    /// Install the build tools, then build synguard and the lab in release mode.
    Build,
    /// Install the build tools, then build the Debian package under target/debian/: the release
    /// binary, the systemd unit, the example configuration, man pages and completions.
    Package {
        /// Then install it in a minimal Debian root without Rust and check it (root; part of
        /// `test`).
        #[arg(long)]
        install_test: bool,
    },
    /// Setup, fmt and clippy checks, host unit tests, the privileged lab tests, then the package
    /// installed in a minimal Debian root (root).
    Test,
    /// Setup, build, then run the live demo in the lab (root).
    Demo {
        /// Extra arguments passed to synguard-demo.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Setup, build, then run synguard-flood (root): flood runs in the lab, scenarios x defences,
    /// table, JSON and charts under target/lab/. E.g. `cargo xtask lab --quick`, `cargo xtask lab
    /// --scenario syn --defence synguard-always --runs 5`; the soak: `cargo xtask lab --soak
    /// [--duration 600s]` (not in CI).
    Lab {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, build, then run synguard-bench (root).
    Bench {
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Setup, build, then fuzz the XDP program through BPF_PROG_TEST_RUN with an independent
    /// oracle (root): prints frames/s and every violation, minimised, as hex and decoded.
    Fuzz {
        /// Generated frames to run.
        #[arg(long, default_value_t = 100_000)]
        frames: u64,
        /// Seed: the same seed runs the same frames.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Whose cookies answer SYNs: kernel, or own (under a key drawn from the seed).
        #[arg(long, value_parser = ["kernel", "own"], default_value = "kernel")]
        cookies: String,
    },
    /// synguard on a real NIC driver: a Debian guest under QEMU with a multi-queue virtio-net
    /// NIC (root). `up`, `down`, `ssh`, `demo`, `test`.
    Vm {
        #[command(subcommand)]
        cmd: vm::VmCmd,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = repo_root();
    std::env::set_current_dir(&root).with_context(|| format!("cd {}", root.display()))?;
    match &cli.cmd {
        Cmd::Setup => setup::all()?,
        Cmd::Build | Cmd::Fuzz { .. } => setup::build()?,
        Cmd::Package {
            install_test: false,
        } => setup::packaging()?,
        Cmd::Package { install_test: true } => setup::all()?,
        Cmd::Test | Cmd::Demo { .. } | Cmd::Lab { .. } | Cmd::Bench { .. } | Cmd::Vm { .. } => {
            setup::all()?
        }
    }
    match cli.cmd {
        Cmd::Setup => Ok(()),
        Cmd::Build => build(),
        Cmd::Package { install_test } => {
            let deb = package::package(&root)?;
            if install_test {
                install_test::install_test(&deb, &install_test::cached_rootfs()?)?;
            }
            Ok(())
        }
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
        Cmd::Fuzz {
            frames,
            seed,
            cookies,
        } => {
            build()?;
            let args = [
                "--frames".to_string(),
                frames.to_string(),
                "--seed".to_string(),
                seed.to_string(),
                "--cookies".to_string(),
                cookies,
            ];
            run_lab_bin(&root, "synguard-fuzz", &args)
        }
        Cmd::Vm { cmd } => vm::main(&root, cmd),
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

/// A command's stdout, trimmed; fails with its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
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
    // The install test's Debian root is mostly a download (made once, then cached): make it while
    // the checks below compile, and wait for it even when they fail, so no mmdebstrap outlives
    // this command.
    let rootfs = is_root().then(|| std::thread::spawn(install_test::cached_rootfs));
    let checked = checks_and_lab_tests(root);
    let rootfs = rootfs.map(|t| {
        t.join()
            .unwrap_or_else(|_| Err(anyhow!("making the install test's root panicked")))
    });
    checked?;
    let rootfs = rootfs.context("the lab tests passed without root")??;
    let started = std::time::Instant::now();
    let deb = package::package(root)?;
    eprintln!("package: built in {:.0} s", started.elapsed().as_secs_f64());
    install_test::install_test(&deb, &rootfs)?;
    // Last: the same program on a real NIC driver (virtio-net in a QEMU guest).
    vm::main(root, vm::VmCmd::Test)
}

fn checks_and_lab_tests(root: &Path) -> Result<()> {
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
