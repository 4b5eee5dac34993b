//! `cargo xtask setup`: everything a fresh machine lacks for building, packaging and testing
//! synguard, in three parts so that a build machine gets only what building needs.
//! Idempotent: each step checks first and says whether it did something or skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{output, run};

/// Debian packages the tests, the lab, the demo and the benchmark use; a machine that only
/// builds (or packages) synguard never gets them.
const TEST_PACKAGES: &[&str] = &[
    "hping3",
    "iproute2",
    "ethtool",
    "tcpdump",
    "bpftool",
    "iptables",
    "python3-scapy",
    // promtool, to validate the metrics endpoint in the ops tests.
    "prometheus",
    // The package install test: makes the minimal Debian root without Rust it installs the
    // .deb in, and boots that root under systemd to run the service.
    "mmdebstrap",
    "systemd-container",
];

/// What `cargo xtask package` runs besides cargo: dpkg-shlibdeps (the Depends line), strip
/// (binutils, a dependency of dpkg-dev); dpkg-deb and gzip are essential.
const PACKAGING_PACKAGES: &[&str] = &["dpkg-dev"];

const BPF_LINKER_VERSION: &str = "0.13.0";

/// Everything: building, packaging and testing.
pub fn all() -> Result<()> {
    test_tools()?;
    packaging()
}

/// What building synguard needs: nightly with rust-src (the eBPF crate's `-Z build-std`) and
/// bpf-linker. No system packages beyond a C toolchain, which rustup already requires.
pub fn build() -> Result<()> {
    nightly()?;
    bpf_linker()
}

/// Building, plus the tools that make the Debian package.
pub fn packaging() -> Result<()> {
    build()?;
    apt_packages(PACKAGING_PACKAGES)
}

/// The tools the tests, the lab, the demo and the benchmark run.
pub fn test_tools() -> Result<()> {
    apt_packages(TEST_PACKAGES)
}

/// A command for a rustup proxy, cleared of the variables the outer `cargo xtask` exports, which
/// would otherwise pin the outer (stable) toolchain.
pub fn rustup_cmd(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("CARGO");
    cmd
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok installed"))
        .unwrap_or(false)
}

fn apt_packages(wanted: &[&str]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!(
            "setup: apt packages present, skipped ({})",
            wanted.join(" ")
        );
        return Ok(());
    }
    eprintln!("setup: installing apt packages: {}", missing.join(" "));
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn nightly() -> Result<()> {
    let toolchains = output(rustup_cmd("rustup").args(["toolchain", "list"]))?;
    if toolchains.lines().any(|l| l.starts_with("nightly")) {
        eprintln!("setup: nightly toolchain present, skipped");
    } else {
        run(rustup_cmd("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let components = output(rustup_cmd("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))?;
    if components.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("setup: nightly rust-src present, skipped");
        Ok(())
    } else {
        run(rustup_cmd("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
    }
}

/// True when `bpf-linker --version` runs and reports the wanted version. A binary whose libLLVM
/// went away (toolchain update, deleted prefix) fails to start and so counts as missing.
fn bpf_linker_ok() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)
        })
        .unwrap_or(false)
}

fn bpf_linker() -> Result<()> {
    if bpf_linker_ok() {
        eprintln!("setup: bpf-linker {BPF_LINKER_VERSION} present, skipped");
        return Ok(());
    }
    // No LLVM 22 dev package exists, so bpf-linker links against the nightly toolchain's own
    // libLLVM, and its LLVM major must equal rustc's (docs/verifier.md, "Toolchain").
    let vv = output(rustup_cmd("rustc").args(["+nightly", "-vV"]))?;
    let major = llvm_major(&vv).context("no `LLVM version` line in `rustc +nightly -vV`")?;
    let sysroot = output(rustup_cmd("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib = find_libllvm(&Path::new(sysroot.trim()).join("lib"))?;
    let prefix = llvm_prefix()?;
    link_libllvm(&prefix.join("lib"), &lib)?;
    eprintln!(
        "setup: installing bpf-linker {BPF_LINKER_VERSION} against {} (llvm-{major})",
        lib.display()
    );
    run(rustup_cmd("cargo")
        .args(["install", "bpf-linker", "--locked", "--force", "--version"])
        .arg(BPF_LINKER_VERSION)
        .args(["--no-default-features", "--features"])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix))?;
    if !bpf_linker_ok() {
        bail!("bpf-linker was installed but `bpf-linker --version` still fails");
    }
    Ok(())
}

/// The LLVM major version from `rustc -vV` output (`LLVM version: 22.1.4` -> 22).
fn llvm_major(rustc_vv: &str) -> Option<u32> {
    rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse().ok())
}

fn find_libllvm(libdir: &Path) -> Result<PathBuf> {
    let entries =
        std::fs::read_dir(libdir).with_context(|| format!("reading {}", libdir.display()))?;
    for entry in entries {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("libLLVM.so.")
        {
            return Ok(entry.path());
        }
    }
    bail!("no libLLVM.so.* in {}", libdir.display())
}

/// The LLVM prefix lives next to the installed binary (in CARGO_HOME), not in a target directory:
/// bpf-linker keeps `<prefix>/lib` as its RUNPATH and loads libLLVM from there on every start, so
/// the prefix must live as long as the binary does. (A bpf-linker built against a prefix in /tmp
/// was found unable to start on this machine once only `libLLVM.so` was in it.)
fn llvm_prefix() -> Result<PathBuf> {
    let home = match std::env::var_os("CARGO_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(std::env::var_os("HOME").context("neither CARGO_HOME nor HOME set")?)
            .join(".cargo"),
    };
    Ok(home.join("synguard-llvm-prefix"))
}

/// Links the toolchain's libLLVM into `dir` under the name llvm-sys links with (`libLLVM.so`) and
/// under its soname, the name the dynamic loader looks for at run time.
fn link_libllvm(dir: &Path, lib: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let soname = lib.file_name().context("libLLVM path has no file name")?;
    for name in [std::ffi::OsStr::new("libLLVM.so"), soname] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(lib, &link)
            .with_context(|| format!("symlinking {} -> {}", link.display(), lib.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::llvm_major;

    #[test]
    fn parses_llvm_major() {
        let vv = "rustc 1.97.0-nightly\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.4\n";
        assert_eq!(llvm_major(vv), Some(22));
        assert_eq!(llvm_major("rustc 1.0"), None);
    }
}
