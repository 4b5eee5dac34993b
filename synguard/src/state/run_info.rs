//! The run-info file (`paths::run_info`): what an instance decided and changed, written
//! without touching BPF so that `status`, `reload`, `detach` and a successor read it. It stays
//! after a kill -9 or a hand-over, for the next `run` to adopt and for `detach` to undo.
//!
//! One type reads and writes it. Every field has a default when read, so a file from an older or
//! newer synguard (or a half-known one) still yields what it has; the fixture
//! `tests/fixtures/run-info-0434865.json` is a file written by an earlier release.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use log::warn;
use serde::{Deserialize, Serialize};

use crate::{
    host::{
        netns,
        sysctl::{Sysctls, leftovers},
    },
    state::paths::{self, Key},
};

/// What every field means is what `synguard status --json` shows of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunInfo {
    pub pid: u32,
    pub iface: String,
    pub netns: Option<String>,
    /// The namespace's cookie (`host::netns::current_cookie`): tells a namespace apart from a
    /// later one that got the same inode. Absent in files of the earlier release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_cookie: Option<u64>,
    pub ports: Vec<u16>,
    /// "auto" or "always".
    pub mode: String,
    /// "native" or "skb"; "pending" until the program is attached.
    pub xdp_mode: String,
    pub pin_dir: PathBuf,
    pub syn_on_pps: u32,
    pub syn_off_pps: u32,
    pub hold_s: f64,
    pub config: ConfigInfo,
    pub sysctl_changes: Vec<RecordedChange>,
    /// What every touched setting was before; a successor uses it to undo a crashed run.
    pub sysctl_originals: BTreeMap<String, u64>,
    /// Unix time (seconds) this instance took the interface.
    pub started_unix_s: u64,
    /// "fresh" or "replaced" (took over a pinned link without a gap).
    pub attach: String,
    /// Where the instance serves Prometheus metrics, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
}

/// The kernel-derived part of the configuration, for humans checking what was computed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigInfo {
    pub wscale: u32,
    pub mss_v4: u32,
    pub mss_v6: u32,
    pub ecn: bool,
    pub rcv_space: u32,
    pub nr_cpus: u32,
}

impl From<&synguard_common::maps::Config> for ConfigInfo {
    fn from(c: &synguard_common::maps::Config) -> Self {
        ConfigInfo {
            wscale: c.wscale,
            mss_v4: c.mss_v4,
            mss_v6: c.mss_v6,
            ecn: c.ecn != 0,
            rcv_space: c.rcv_space,
            nr_cpus: c.nr_cpus,
        }
    }
}

/// One kernel setting the instance changed: what it was, what it set, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordedChange {
    pub name: String,
    pub old: u64,
    pub new: u64,
    pub why: String,
}

impl RunInfo {
    /// Reads the file. `Ok(None)` when there is none; `Err` (the parse error as text) when it
    /// exists but is not a run-info file.
    pub fn read(path: &Path) -> Result<Option<RunInfo>, String> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(_) => return Ok(None),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// The file of instance `key` in `run_dir`: None when there is none; an unreadable one is
    /// reported and ignored.
    pub fn load(run_dir: &Path, key: &Key) -> Option<RunInfo> {
        let path = paths::run_info(run_dir, key);
        Self::read(&path).unwrap_or_else(|e| {
            warn!("ignoring unreadable {}: {e}", path.display());
            None
        })
    }

    /// Writes the file of instance `key` in `run_dir` (write, then rename: a reader, status or
    /// a successor after a crash, never sees half a file). Returns its path.
    pub fn write(&self, run_dir: &Path, key: &Key) -> io::Result<PathBuf> {
        let path = paths::run_info(run_dir, key);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let text = serde_json::to_string_pretty(self).expect("run info serialises");
        let tmp = paths::tmp_of(&path);
        fs::write(&tmp, text + "\n")?;
        fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// Its kernel settings are ours to restore only if it ran in our network namespace: same
    /// identity, and the same cookie when both are known (a namespace that is gone may have
    /// left its files under an inode the kernel gave to ours since).
    pub fn same_netns(&self) -> bool {
        let cookie_matches = match (self.netns_cookie, netns::current_cookie()) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => true,
        };
        self.netns.is_some() && self.netns == netns::current() && cookie_matches
    }

    /// Puts back the kernel settings this instance recorded and left changed, if it ran in our
    /// network namespace; returns what was restored. For `detach` after a kill -9 or a hand-over.
    pub fn restore_sysctls(&self, sysctls: &Sysctls) -> Vec<String> {
        let mut done = Vec::new();
        if !self.same_netns() {
            warn!("not restoring kernel settings: they were changed in another network namespace");
            return done;
        }
        let originals = self.originals();
        for (name, now, original) in leftovers(&originals, |name| sysctls.read_u64(name).ok()) {
            match sysctls.write(name, original) {
                Ok(()) => done.push(format!("{name}: {now} -> {original}")),
                Err(e) => warn!("{:#}", anyhow::Error::from(e)),
            }
        }
        done
    }

    pub fn originals(&self) -> Vec<(String, u64)> {
        self.sysctl_originals
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file the synguard of commit 0434865 wrote (`synguard run` in a lab namespace). A newer
    /// synguard must read it, or it could neither take over nor undo that instance.
    const OLD: &str = include_str!("../../tests/fixtures/run-info-0434865.json");

    #[test]
    fn reads_a_file_an_earlier_release_wrote() {
        let info: RunInfo = serde_json::from_str(OLD).unwrap();
        assert!(info.pid > 0);
        assert!(!info.iface.is_empty());
        assert!(
            info.netns
                .as_deref()
                .is_some_and(|n| n.starts_with("net:["))
        );
        assert!(!info.ports.is_empty());
        assert!(matches!(info.xdp_mode.as_str(), "native" | "skb"));
        assert!(matches!(info.attach.as_str(), "fresh" | "replaced"));
        assert!(
            info.sysctl_originals
                .contains_key("net.ipv4.tcp_syncookies")
        );
        assert!(!info.sysctl_changes.is_empty());
        assert!(info.config.nr_cpus >= 1 && info.config.mss_v4 > 0);
        // Every key of the old file is one this type knows: nothing is dropped on the way.
        let old: serde_json::Value = serde_json::from_str(OLD).unwrap();
        let again = serde_json::to_value(&info).unwrap();
        assert_eq!(again, old);
    }

    #[test]
    fn writes_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("sg-runinfo-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let info = RunInfo {
            pid: 7,
            iface: "eth9".into(),
            ports: vec![80],
            sysctl_originals: [("net.ipv4.tcp_syncookies".to_string(), 1)].into(),
            ..Default::default()
        };
        let key = Key::scoped(1, "eth9", 3);
        let path = info.write(&dir, &key).unwrap();
        assert_eq!(path, paths::run_info(&dir, &key));
        assert_eq!(RunInfo::load(&dir, &key), Some(info));
        assert_eq!(RunInfo::load(&dir, &Key::scoped(1, "eth8", 3)), None);
        fs::write(&path, "{ not json").unwrap();
        assert!(RunInfo::read(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
