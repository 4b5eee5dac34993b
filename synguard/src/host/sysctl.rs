//! Kernel settings synguard reads and changes.
//!
//! `/proc/sys/net/...` shows the network namespace of the process that opens it, so a loader
//! started with `nsenter --net=...` reads and changes that namespace's TCP settings, which are
//! the ones its listeners use. The interface MTU is read with an ioctl on a socket for the same
//! reason: `/sys/class/net` belongs to whatever namespace mounted /sys.

use std::{fs, io, path::PathBuf};

use log::{info, warn};
use synguard_common::cookie::{initial_rcv_space, kernel_rcv_wscale};
use thiserror::Error;

use crate::config::CookieMode;

pub const SYNCOOKIES: &str = "net.ipv4.tcp_syncookies";
pub const TIMESTAMPS: &str = "net.ipv4.tcp_timestamps";
pub const TCP_RMEM: &str = "net.ipv4.tcp_rmem";
pub const RMEM_MAX: &str = "net.core.rmem_max";
pub const TCP_ECN: &str = "net.ipv4.tcp_ecn";

/// `tcp_syncookies=2`: the kernel sends and accepts cookies for every SYN.
pub const SYNCOOKIES_ALWAYS: u64 = 2;
/// `tcp_syncookies=1`: cookies only when a listener's SYN queue overflows.
pub const SYNCOOKIES_ON_OVERFLOW: u64 = 1;
/// `tcp_timestamps=2`: timestamps without the per-connection random offset, the only setting
/// under which the options hidden in a cookie's TSval decode correctly (`cookie_timestamp_decode`,
/// see docs/kernel-cookies.md).
pub const TIMESTAMPS_NO_OFFSET: u64 = 2;

#[derive(Debug, Error)]
pub enum SysctlError {
    #[error("cannot read {name}")]
    Read {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot set {name} to {value}")]
    Write {
        name: String,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("unexpected value of {name}: '{text}' ({expected})")]
    Parse {
        name: String,
        text: String,
        expected: &'static str,
    },
    #[error("cannot read the MTU of {iface}")]
    Mtu {
        iface: String,
        #[source]
        source: io::Error,
    },
}

/// Access to the sysctl tree. The root is a parameter so tests can point it at a scratch
/// directory.
#[derive(Clone, Debug)]
pub struct Sysctls {
    root: PathBuf,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            root: PathBuf::from("/proc/sys"),
        }
    }
}

impl Sysctls {
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Sysctls { root: root.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name.replace('.', "/"))
    }

    pub fn read(&self, name: &str) -> Result<String, SysctlError> {
        fs::read_to_string(self.path(name))
            .map(|s| s.trim().to_string())
            .map_err(|source| SysctlError::Read {
                name: name.to_string(),
                source,
            })
    }

    pub fn read_u64(&self, name: &str) -> Result<u64, SysctlError> {
        let text = self.read(name)?;
        text.parse().map_err(|_| SysctlError::Parse {
            name: name.to_string(),
            text,
            expected: "a non-negative integer",
        })
    }

    /// Whether `iface` takes IPv4 segments from the host's own addresses:
    /// `net.ipv4.conf.all.accept_local` or the interface's own (`IN_DEV_ORCONF`); unreadable
    /// reads as off, the kernel's default.
    pub fn accept_local(&self, iface: &str) -> bool {
        self.ipv4_conf(iface, "accept_local").any(|v| v != 0)
    }

    /// The reverse-path filter `iface` gets: the larger of `net.ipv4.conf.all.rp_filter` and
    /// the interface's own (`IN_DEV_RPFILTER`, `IN_DEV_MAXCONF`): 0 off, 1 strict, 2 loose.
    /// Unreadable reads as 0, the kernel's default.
    pub fn rp_filter(&self, iface: &str) -> u64 {
        self.ipv4_conf(iface, "rp_filter").max().unwrap_or(0)
    }

    /// The readable values of `net.ipv4.conf.all.<name>` and `net.ipv4.conf.<iface>.<name>`,
    /// which the kernel combines per setting (`IN_DEV_ORCONF`, `IN_DEV_MAXCONF`). The
    /// interface's name goes into the path as it is (a VLAN's `eth0.100` has a dot).
    fn ipv4_conf<'a>(&'a self, iface: &'a str, name: &'a str) -> impl Iterator<Item = u64> + 'a {
        let conf = self.root.join("net/ipv4/conf");
        ["all", iface].into_iter().filter_map(move |dir| {
            fs::read_to_string(conf.join(dir).join(name))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
        })
    }

    pub fn write(&self, name: &str, value: u64) -> Result<(), SysctlError> {
        fs::write(self.path(name), format!("{value}\n")).map_err(|source| SysctlError::Write {
            name: name.to_string(),
            value: value.to_string(),
            source,
        })
    }
}

/// One setting synguard changed: what it was, what it is now, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SysctlChange {
    pub name: &'static str,
    pub old: u64,
    pub new: u64,
    pub why: &'static str,
}

/// Records the value each setting had before synguard touched it, so detach can put it back.
#[derive(Debug, Default)]
pub struct SysctlSaver {
    sysctls: Sysctls,
    /// Original values in the order they were first touched.
    originals: Vec<(&'static str, u64)>,
    changes: Vec<SysctlChange>,
    /// Settings the programs depend on while they run, with the value they need ([`Self::hold`]).
    held: Vec<(&'static str, u64, &'static str)>,
}

/// A setting something else changed while synguard needed it, set back ([`SysctlSaver::keep`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetBack {
    pub name: &'static str,
    /// What it had been changed to.
    pub found: u64,
    pub value: u64,
    pub why: &'static str,
}

impl SysctlSaver {
    pub fn new(sysctls: Sysctls) -> Self {
        SysctlSaver {
            sysctls,
            originals: Vec::new(),
            changes: Vec::new(),
            held: Vec::new(),
        }
    }

    /// As [`Self::set`], and the setting is held at `value` from now on: [`Self::keep`] sets it
    /// back when something else changes it (`sysctl --system` re-applying a distribution's
    /// `/etc/sysctl.d`, a configuration manager).
    pub fn hold(
        &mut self,
        name: &'static str,
        value: u64,
        why: &'static str,
    ) -> Result<u64, SysctlError> {
        let old = self.set(name, value, why)?;
        self.held.retain(|(n, _, _)| *n != name);
        self.held.push((name, value, why));
        Ok(old)
    }

    /// Sets back every held setting, and `also` (name, value, why), that no longer has its
    /// value; what it set back, and the settings it could not read or write.
    pub fn keep(
        &self,
        also: &[(&'static str, u64, &'static str)],
    ) -> (Vec<SetBack>, Vec<SysctlError>) {
        let (mut set, mut errors) = (Vec::new(), Vec::new());
        for &(name, value, why) in self.held.iter().chain(also) {
            match self.sysctls.read_u64(name) {
                Ok(found) if found != value => match self.sysctls.write(name, value) {
                    Ok(()) => set.push(SetBack {
                        name,
                        found,
                        value,
                        why,
                    }),
                    Err(e) => errors.push(e),
                },
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        (set, errors)
    }

    /// Sets `name` to `value` (logging old -> new once, with the reason) and remembers the
    /// original. Also remembers settings that already had the value: the mode controller may
    /// change them later, and detach must still restore them.
    pub fn set(
        &mut self,
        name: &'static str,
        value: u64,
        why: &'static str,
    ) -> Result<u64, SysctlError> {
        let old = self.sysctls.read_u64(name)?;
        if !self.originals.iter().any(|(n, _)| *n == name) {
            self.originals.push((name, old));
        }
        if old != value {
            self.sysctls.write(name, value)?;
            info!("{name}: {old} -> {value} ({why})");
            self.changes.push(SysctlChange {
                name,
                old,
                new: value,
                why,
            });
        }
        Ok(old)
    }

    /// Takes the originals a previous instance recorded (it died or handed over with its
    /// settings still applied): the current values are not the originals, those are.
    pub fn adopt(&mut self, originals: &[(String, u64)]) {
        for (name, value) in originals {
            let Some(name) = KNOWN.iter().copied().find(|k| k == name) else {
                warn!("ignoring unknown recorded setting {name}");
                continue;
            };
            if !self.originals.iter().any(|(n, _)| *n == name) {
                self.originals.push((name, *value));
            }
        }
    }

    /// The value `name` had before synguard touched it, if it did.
    pub fn original(&self, name: &str) -> Option<u64> {
        self.originals
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// Records `name`'s current value as its original (unless known) without changing it.
    pub fn remember(&mut self, name: &'static str) -> Result<(), SysctlError> {
        if self.original(name).is_none() {
            let now = self.sysctls.read_u64(name)?;
            self.originals.push((name, now));
        }
        Ok(())
    }

    pub fn changes(&self) -> &[SysctlChange] {
        &self.changes
    }

    /// Every setting touched so far with the value it had before.
    pub fn originals(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.originals.iter().copied().collect()
    }

    /// Puts every remembered setting back, newest first. Keeps going after a failure so one
    /// stuck setting does not leave the others changed; returns the failures.
    pub fn restore(&mut self) -> Vec<SysctlError> {
        let mut errors = Vec::new();
        for (name, original) in self.originals.drain(..).rev() {
            match self.sysctls.read_u64(name) {
                Ok(now) if now == original => {}
                Ok(now) => match self.sysctls.write(name, original) {
                    Ok(()) => info!("{name}: {now} -> {original} (restored)"),
                    Err(e) => errors.push(e),
                },
                Err(e) => errors.push(e),
            }
        }
        errors
    }
}

/// Settings synguard may change; a recorded name outside this list is not trusted.
const KNOWN: [&str; 2] = [SYNCOOKIES, TIMESTAMPS];

/// `tcp_syncookies` is one setting per network namespace, but each guarded interface's controller
/// wants its own value (2 while its cookies are on). The namespace gets the largest wish, so one
/// interface's flood ending never switches off what another interface still needs.
#[derive(Clone, Debug)]
pub struct SyncookieVotes {
    sysctls: Sysctls,
    votes: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl SyncookieVotes {
    pub fn new(sysctls: Sysctls) -> Self {
        SyncookieVotes {
            sysctls,
            votes: Default::default(),
        }
    }

    /// Records `iface`'s wish and writes the largest wish of all interfaces.
    pub fn set(&self, iface: &str, value: u64) -> Result<(), SysctlError> {
        let mut votes = self.votes.lock().unwrap_or_else(|e| e.into_inner());
        votes.insert(iface.to_string(), value);
        let max = votes.values().copied().max().unwrap_or(value);
        self.sysctls.write(SYNCOOKIES, max)
    }

    /// The value the interfaces' wishes make, if any interface has one.
    pub fn wanted(&self) -> Option<u64> {
        let votes = self.votes.lock().unwrap_or_else(|e| e.into_inner());
        votes.values().copied().max()
    }
}

/// Settings a dead instance left changed: `originals` (from its run-info file) that differ from
/// the `current` values, as (name, current, original). Pure, so the recovery rule is tested.
pub fn leftovers(
    originals: &[(String, u64)],
    current: impl Fn(&str) -> Option<u64>,
) -> Vec<(&str, u64, u64)> {
    originals
        .iter()
        .filter_map(|(name, original)| {
            let now = current(name)?;
            (now != *original).then_some((name.as_str(), now, *original))
        })
        .collect()
}

/// The `tcp_syncookies` value to run with. Always mode needs the kernel to accept cookie ACKs all
/// the time (2). Auto mode needs at least overflow cookies (1) as the kernel's own fallback and
/// raises it to 2 only while XDP sends cookies; a value the administrator already set is kept.
pub fn syncookies_at_attach(mode: CookieMode, current: u64) -> u64 {
    match mode {
        CookieMode::Always => SYNCOOKIES_ALWAYS,
        CookieMode::Auto if current == 0 => SYNCOOKIES_ON_OVERFLOW,
        CookieMode::Auto => current,
    }
}

/// `net.ipv4.tcp_rmem`: "min default max".
pub fn parse_tcp_rmem(text: &str) -> Result<[u64; 3], SysctlError> {
    let bad = || SysctlError::Parse {
        name: TCP_RMEM.to_string(),
        text: text.to_string(),
        expected: "three integers: min default max",
    };
    let values = text
        .split_whitespace()
        .map(|v| v.parse::<u64>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    values.try_into().map_err(|_| bad())
}

/// What the SYN-ACK must match in the kernel's TCP settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpParams {
    pub wscale: u8,
    pub rcv_space: u32,
    pub ecn: bool,
}

impl TcpParams {
    /// Pure part: the numbers the kernel would use for a new connection.
    pub fn compute(tcp_rmem: [u64; 3], rmem_max: u64, tcp_ecn: u64) -> Self {
        TcpParams {
            wscale: kernel_rcv_wscale(tcp_rmem[2], rmem_max),
            rcv_space: initial_rcv_space(tcp_rmem[1]),
            ecn: tcp_ecn != 0,
        }
    }

    pub fn read(sysctls: &Sysctls) -> Result<Self, SysctlError> {
        let rmem = parse_tcp_rmem(&sysctls.read(TCP_RMEM)?)?;
        // net.core.rmem_max is global and may be hidden inside a network namespace on some
        // kernels; tcp_rmem alone then decides, as it does whenever it is the larger one.
        let rmem_max = match sysctls.read_u64(RMEM_MAX) {
            Ok(v) => v,
            Err(e) => {
                warn!("{e}; computing the window scale from {TCP_RMEM} alone");
                0
            }
        };
        Ok(Self::compute(rmem, rmem_max, sysctls.read_u64(TCP_ECN)?))
    }
}

/// Largest MSS over IPv4 and IPv6 for an MTU: minus the IP header (20 / 40) and the TCP header
/// without options (20), as the kernel's `tcp_mtu_to_mss` does.
pub fn mss_from_mtu(mtu: u32) -> (u32, u32) {
    (mtu.saturating_sub(40), mtu.saturating_sub(60))
}

/// The interface's MTU, in the caller's network namespace.
pub fn iface_mtu(iface: &str) -> Result<u32, SysctlError> {
    crate::host::nic::mtu(iface).map_err(|source| SysctlError::Mtu {
        iface: iface.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> (PathBuf, Sysctls) {
        let dir =
            std::env::temp_dir().join(format!("synguard-sysctl-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("net/ipv4")).unwrap();
        fs::create_dir_all(dir.join("net/core")).unwrap();
        (dir.clone(), Sysctls::with_root(dir))
    }

    /// Writes `net.ipv4.conf.<iface>.<name>` under the scratch root `dir`.
    fn set_ipv4_conf(dir: &std::path::Path, iface: &str, name: &str, value: &str) {
        let d = dir.join("net/ipv4/conf").join(iface);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(name), value).unwrap();
    }

    #[test]
    fn rp_filter_is_the_larger_of_all_and_the_interfaces_own() {
        let (dir, s) = scratch("rp-filter");
        let set = |d: &str, v: &str| set_ipv4_conf(&dir, d, "rp_filter", v);
        assert_eq!(s.rp_filter("eth0"), 0, "unreadable: the kernel's default");
        set("all", "0\n");
        set("eth0", "1\n");
        set("eth1", "2\n");
        assert_eq!((s.rp_filter("eth0"), s.rp_filter("eth1")), (1, 2));
        set("all", "2\n");
        assert_eq!((s.rp_filter("eth0"), s.rp_filter("eth2")), (2, 2));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn accept_local_is_all_or_the_interfaces_own() {
        let (dir, s) = scratch("accept-local");
        let set = |d: &str, v: &str| set_ipv4_conf(&dir, d, "accept_local", v);
        assert!(
            !s.accept_local("eth0.100"),
            "unreadable: the kernel's default"
        );
        set("all", "0\n");
        set("eth0.100", "0\n");
        assert!(!s.accept_local("eth0.100"));
        set("eth0.100", "1\n");
        assert!(s.accept_local("eth0.100") && !s.accept_local("eth1"));
        set("all", "1\n");
        assert!(s.accept_local("eth1"));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A held setting changed behind synguard's back is set back, once; one it only set is not
    /// held.
    #[test]
    fn held_settings_are_set_back() {
        let (dir, s) = scratch("hold");
        fs::write(dir.join("net/ipv4/tcp_timestamps"), "1\n").unwrap();
        fs::write(dir.join("net/ipv4/tcp_syncookies"), "1\n").unwrap();
        let mut saver = SysctlSaver::new(s.clone());
        saver.hold(TIMESTAMPS, 2, "why").unwrap();
        saver.set(SYNCOOKIES, 2, "why").unwrap();
        assert_eq!(saver.keep(&[]).0, []);
        s.write(TIMESTAMPS, 1).unwrap();
        s.write(SYNCOOKIES, 1).unwrap();
        let (set, errors) = saver.keep(&[]);
        assert!(errors.is_empty());
        assert_eq!(
            set,
            [SetBack {
                name: TIMESTAMPS,
                found: 1,
                value: 2,
                why: "why"
            }]
        );
        assert_eq!(s.read_u64(TIMESTAMPS).unwrap(), 2);
        assert_eq!(s.read_u64(SYNCOOKIES).unwrap(), 1, "only set, not held");
        let (set, _) = saver.keep(&[(SYNCOOKIES, 2, "cookies on")]);
        assert_eq!(set.len(), 1);
        assert_eq!(s.read_u64(SYNCOOKIES).unwrap(), 2);
        // Restoring puts the originals back, held or not.
        assert!(saver.restore().is_empty());
        assert_eq!(s.read_u64(TIMESTAMPS).unwrap(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tcp_rmem_parsing() {
        assert_eq!(
            parse_tcp_rmem("4096\t131072\t33554432\n").unwrap(),
            [4096, 131072, 33554432]
        );
        assert!(parse_tcp_rmem("4096 131072").is_err());
        assert!(parse_tcp_rmem("4096 x 1").is_err());
        assert!(parse_tcp_rmem("1 2 3 4").is_err());
    }

    #[test]
    fn tcp_params_like_this_machine() {
        // tcp_rmem "4096 131072 33554432", rmem_max 4194304: wscale 10, rcv_space 65536.
        let p = TcpParams::compute([4096, 131072, 33554432], 4194304, 2);
        assert_eq!(
            p,
            TcpParams {
                wscale: 10,
                rcv_space: 65536,
                ecn: true
            }
        );
        assert!(!TcpParams::compute([4096, 131072, 6291456], 212992, 0).ecn);
    }

    #[test]
    fn syncookies_policy() {
        assert_eq!(syncookies_at_attach(CookieMode::Always, 0), 2);
        assert_eq!(syncookies_at_attach(CookieMode::Always, 1), 2);
        assert_eq!(syncookies_at_attach(CookieMode::Auto, 0), 1);
        assert_eq!(syncookies_at_attach(CookieMode::Auto, 1), 1);
        assert_eq!(syncookies_at_attach(CookieMode::Auto, 2), 2);
    }

    #[test]
    fn leftovers_are_the_settings_still_changed() {
        let originals = vec![
            (TIMESTAMPS.to_string(), 1),
            (SYNCOOKIES.to_string(), 1),
            ("net.ipv4.gone".to_string(), 0),
        ];
        let current = |name: &str| match name {
            TIMESTAMPS => Some(2),
            SYNCOOKIES => Some(1),
            _ => None,
        };
        assert_eq!(leftovers(&originals, current), vec![(TIMESTAMPS, 2, 1)]);
    }

    #[test]
    fn mss() {
        assert_eq!(mss_from_mtu(1500), (1460, 1440));
        assert_eq!(mss_from_mtu(9000), (8960, 8940));
        assert_eq!(mss_from_mtu(10), (0, 0));
    }

    #[test]
    fn saver_restores_originals_including_later_changes() {
        let (dir, s) = scratch("saver");
        fs::write(dir.join("net/ipv4/tcp_syncookies"), "0\n").unwrap();
        fs::write(dir.join("net/ipv4/tcp_timestamps"), "2\n").unwrap();
        let mut saver = SysctlSaver::new(s.clone());
        assert_eq!(saver.set(SYNCOOKIES, 1, "test").unwrap(), 0);
        assert_eq!(saver.set(TIMESTAMPS, 2, "test").unwrap(), 2);
        assert_eq!(
            saver.changes().len(),
            1,
            "unchanged settings are not changes"
        );
        // The controller flips syncookies and timestamps behind the saver's back.
        s.write(SYNCOOKIES, 2).unwrap();
        s.write(TIMESTAMPS, 1).unwrap();
        assert!(saver.restore().is_empty());
        assert_eq!(s.read_u64(SYNCOOKIES).unwrap(), 0);
        assert_eq!(s.read_u64(TIMESTAMPS).unwrap(), 2);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn read_errors_name_the_setting() {
        let (dir, s) = scratch("errors");
        let e = s.read_u64(SYNCOOKIES).unwrap_err();
        assert!(e.to_string().contains("net.ipv4.tcp_syncookies"), "{e}");
        fs::write(dir.join("net/ipv4/tcp_syncookies"), "yes\n").unwrap();
        let e = s.read_u64(SYNCOOKIES).unwrap_err();
        assert!(e.to_string().contains("'yes'"), "{e}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn loopback_mtu_and_missing_interface() {
        // Every network namespace has lo.
        assert!(iface_mtu("lo").unwrap() > 0);
        assert!(iface_mtu("nosuch-sg0").is_err());
    }

    #[test]
    fn syncookie_votes_take_the_largest_wish() {
        let dir = std::env::temp_dir().join(format!("synguard-votes-{}", std::process::id()));
        let file = dir.join("net/ipv4/tcp_syncookies");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        let votes = SyncookieVotes::new(Sysctls::with_root(&dir));
        votes.set("a", 2).unwrap();
        votes.set("b", 1).unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap().trim(),
            "2",
            "a still wants 2"
        );
        votes.set("a", 1).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap().trim(), "1");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn adopted_originals_win_over_current_values() {
        let mut saver = SysctlSaver::new(Sysctls::with_root("/nonexistent"));
        saver.adopt(&[(SYNCOOKIES.to_string(), 1), ("net.bogus".to_string(), 7)]);
        assert_eq!(saver.original(SYNCOOKIES), Some(1));
        assert_eq!(saver.original("net.bogus"), None);
        saver.adopt(&[(SYNCOOKIES.to_string(), 2)]);
        assert_eq!(saver.original(SYNCOOKIES), Some(1), "first record wins");
    }
}
