//! The package install test (part of `cargo xtask test`): installs the `.deb` in a minimal Debian
//! root without Rust and checks what an operator would use, removes and purges it and checks
//! that nothing is left; then boots a second copy with the package under systemd (nspawn) and
//! runs the service: a late interface, readiness, reload, the SIGUSR1 hand-over, removal while
//! running (`install_test.sh`, run in a private mount and network namespace on overlays, so the
//! cached root stays pristine and the test's veth pair is gone with the namespace). The root is
//! made once with mmdebstrap from the host's own apt sources (same release, same libc) and
//! cached outside the checkout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::run;
use crate::{output, package::paths};

const SCRIPT: &str = include_str!("install_test.sh");
const CACHE_DIR: &str = "/var/cache/synguard-xtask";
/// minbase has dpkg, libc and bash; man-db makes `man synguard` work; systemd gives the unit the
/// targets it refers to and the root its own `systemd-analyze` and `systemctl`.
const EXTRA_PACKAGES: &str = "man-db,systemd";
const HOST_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";

/// Runs the test on `deb` in `rootfs` (from [`cached_rootfs`]).
pub fn install_test(deb: &Path, rootfs: &Path) -> Result<()> {
    let version = output(
        Command::new("dpkg-deb")
            .args(["--field"])
            .arg(deb)
            .arg("Version"),
    )?;
    let started = Instant::now();
    let status = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "sh",
            "-eu",
            "-c",
            SCRIPT,
        ])
        .arg("install_test.sh")
        .env("ROOTFS", rootfs)
        .env("DEB", deb)
        .env("VERSION", version)
        .env("P_BINARY", paths::BINARY)
        .env("P_UNIT", paths::UNIT)
        .env("P_CONFIG", paths::CONFIG)
        .env("P_MAN_DIR", paths::MAN_DIR)
        .env("P_BASH", paths::BASH)
        .env("P_ZSH", paths::ZSH)
        .env("P_FISH", paths::FISH)
        .status()
        .context("starting unshare")?;
    if !status.success() {
        bail!("the package install test failed ({status}); its last line says which check");
    }
    eprintln!(
        "install test: passed in {:.1} s (root {})",
        started.elapsed().as_secs_f64(),
        rootfs.display()
    );
    Ok(())
}

/// The cached minimal root for this host's Debian release; made on first use (about 1.5 min,
/// mostly downloading, so `cargo xtask test` makes it while it compiles).
pub fn cached_rootfs() -> Result<PathBuf> {
    let codename = os_release_codename()?;
    // Named after what is in it, so a change of EXTRA_PACKAGES makes a new one.
    let rootfs = Path::new(CACHE_DIR).join(format!(
        "rootfs-{codename}-minbase-{}",
        EXTRA_PACKAGES.replace(',', "-")
    ));
    if rootfs.join("usr/bin/dpkg").exists() {
        eprintln!("install test: cached root {}", rootfs.display());
        return Ok(rootfs);
    }
    if !Path::new(HOST_SOURCES).exists() {
        bail!(
            "{HOST_SOURCES} is missing: the install test builds its root from the host's apt sources"
        );
    }
    let partial = rootfs.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(CACHE_DIR).with_context(|| format!("creating {CACHE_DIR}"))?;
    let started = Instant::now();
    run(Command::new("mmdebstrap")
        .args(["--variant=minbase", "--quiet"])
        .arg(format!("--include={EXTRA_PACKAGES}"))
        .arg(&codename)
        .arg(&partial)
        // The host's own sources (no mirror name of ours): the same release and libc as the
        // machine that built the binary.
        .arg(HOST_SOURCES))?;
    std::fs::rename(&partial, &rootfs)
        .with_context(|| format!("renaming {} to {}", partial.display(), rootfs.display()))?;
    eprintln!(
        "install test: made {} in {:.0} s",
        rootfs.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(rootfs)
}

fn os_release_codename() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
        .context("/etc/os-release names no VERSION_CODENAME (the install test needs Debian)")
}
