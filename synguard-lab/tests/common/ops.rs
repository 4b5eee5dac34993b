//! What the operations tests share: cleaning up after synguard on the host's bpffs, where an
//! instance's files are, waiting for a condition or a log line, and the fixture's CLI views
//! (`status`, `stats`).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use synguard_lab::lab::netns::Netns;
use synguard_lab::lab::synguard_proc::{self, Stats, Synguard};
use synguard_lab::lab::traffic::{self, Transfer};

use super::{Fixture, addr, bin};

pub const PIN_BASE: &str = "/sys/fs/bpf/synguard";
pub const RUN_DIR: &str = "/run/synguard";
/// Where the hand-over exit status comes from (`synguard::daemon::run::HAND_OVER_EXIT`).
pub const HAND_OVER_EXIT: i32 = 75;

impl Fixture {
    /// `status --json` of the server's interface.
    pub fn status(&self) -> Result<serde_json::Value> {
        let text = self.cli(&["status", "--json", "--iface", self.iface()])?;
        let v: serde_json::Value = serde_json::from_str(text.trim()).context("status --json")?;
        Ok(v["interfaces"][0].clone())
    }

    /// One `stats --json` sample of `iface`.
    pub fn stats(&self, iface: &str) -> Result<Stats> {
        synguard_proc::stats_once(&bin()?, &self.ns().path(), iface)
    }

    /// `n` small connections over IPv4 and over IPv6, each of which must succeed.
    pub fn connections(&self, n: usize) -> Result<()> {
        for v6 in [false, true] {
            for (i, r) in traffic::run_batch(&self.lab.client.ns, addr(v6), n, small)?
                .into_iter()
                .enumerate()
            {
                r.with_context(|| format!("connection {i} to {}", addr(v6)))?;
            }
        }
        Ok(())
    }

    /// A sysctl in the server's namespace.
    pub fn sysctl(&self, key: &str) -> Result<String> {
        self.ns().sysctl_get(key)
    }
}

/// Removes whatever synguard left for these interfaces (pins live on the host's bpffs, not in
/// the lab's namespaces), also when a test fails half-way.
pub struct Cleanup<'a> {
    ns: &'a Netns,
    ifaces: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for iface in &self.ifaces {
            if let Ok(bin) = bin() {
                let _ =
                    synguard_proc::run_once(&bin, &self.ns.path(), &["detach", "--iface", iface]);
            }
        }
    }
}

pub fn cleanup<'a>(fx: &'a Fixture, ifaces: &[&str]) -> Cleanup<'a> {
    Cleanup {
        ns: fx.ns(),
        ifaces: ifaces.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn small(_: usize) -> Transfer {
    Transfer {
        upload: 1000,
        download: 1000,
    }
}

/// Polls `f` every 100 ms until it returns Some, for at most `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A taken-over directory is readable from the start (the old program is live), so the new
/// `run` is known to be done only when it says so.
pub fn wait_log(sg: &Synguard, needle: &str) -> Result<()> {
    wait_log_within(sg, needle, Duration::from_secs(20)).map(drop)
}

/// The first line of the run's log that contains `needle`, once there is one, within `timeout`.
pub fn wait_log_within(sg: &Synguard, needle: &str, timeout: Duration) -> Result<String> {
    wait_for(needle, timeout, || {
        sg.log_text()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
    })
    .with_context(|| format!("run log:\n{}", sg.log_text()))
}

/// The inode of a namespace: the directory its instances' files live in
/// (`synguard::state::paths`).
pub fn netns_inode(ns: &Netns) -> Result<u64> {
    Ok(std::fs::metadata(ns.path())
        .with_context(|| format!("stat {}", ns.path().display()))?
        .ino())
}

/// Entries of `dir` that belong to `iface`: `<iface>-<ifindex>` plus `suffix`.
fn entries_of(dir: &Path, iface: &str, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(&format!("{iface}-"))
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|index| index.parse::<u32>().is_ok())
        })
        .map(|e| e.path())
        .collect()
}

/// The pin directories of `iface` in `ns`: the current layout's and the earlier release's.
pub fn pins_of(ns: &Netns, iface: &str) -> Result<Vec<PathBuf>> {
    let mut out = entries_of(
        &Path::new(PIN_BASE).join(netns_inode(ns)?.to_string()),
        iface,
        "",
    );
    let flat = Path::new(PIN_BASE).join(iface);
    if flat.exists() {
        out.push(flat);
    }
    Ok(out)
}

/// Whether `iface` in `ns` still has pinned state.
pub fn pins_left(ns: &Netns, iface: &str) -> Result<bool> {
    Ok(!pins_of(ns, iface)?.is_empty())
}

/// Whether `iface` in `ns` still has a run-info file (either layout).
pub fn run_info_left(ns: &Netns, iface: &str) -> Result<bool> {
    let dir = Path::new(RUN_DIR).join(netns_inode(ns)?.to_string());
    Ok(!entries_of(&dir, iface, ".json").is_empty()
        || Path::new(RUN_DIR).join(format!("{iface}.json")).exists())
}

/// The names of the programs attached at `iface`'s TC ingress through tcx (what own cookies
/// attach), asked of the kernel in `ns` (BPF_PROG_QUERY; bpftool before 7.3 does not list tcx).
pub fn tcx_ingress_programs(ns: &Netns, iface: &str) -> Result<Vec<String>> {
    use aya::programs::{SchedClassifier, TcAttachType};
    let iface = iface.to_string();
    ns.enter(move || {
        SchedClassifier::query_tcx(&iface, TcAttachType::Ingress)
            .map(|(_, progs)| {
                progs
                    .iter()
                    .map(|p| p.name_as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .map_err(|e| anyhow::anyhow!("tcx query of {iface}: {e}"))
    })?
}

pub fn xdp_attached(ns: &Netns, iface: &str) -> Result<bool> {
    let out = ns.ip(&["-j", "link", "show", "dev", iface])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v[0].get("xdp").is_some())
}
