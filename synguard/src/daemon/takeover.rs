//! Taking over what a previous instance left on this interface (it was killed, crashed or handed
//! over): its run-info, whose kernel settings become ours to restore, and its pins, which the
//! new program reuses. An instance of the earlier release (flat layout, keyed by name, see
//! `state::paths`) is moved into this instance's place first: its pin directory renamed (a
//! rename on bpffs keeps every pinned object, the link included, so its program keeps
//! protecting), its flood history moved, and its run-info removed once ours records the same.

use std::{fs, path::Path};

use log::{info, warn};

use crate::{
    config::RunConfig,
    daemon::prepare::StartError,
    host::{io::io_err, sysctl::SysctlSaver},
    state::{
        lock::InstanceLock,
        paths::{self, Key},
        run_info::RunInfo,
        scope,
    },
};

/// An earlier-release instance being taken over: its lock (held until its files are gone,
/// which also proves its process is dead) and its run-info.
pub struct Legacy {
    key: Key,
    _lock: InstanceLock,
}

impl Legacy {
    /// Its run-info and lock go once ours records what it had: its files are then redundant.
    pub fn finish(self, run_dir: &Path) {
        let path = paths::run_info(run_dir, &self.key);
        if let Err(e) = fs::remove_file(&path) {
            warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// Moves an earlier-release instance of this interface, if it ran in our namespace, into the
/// place of `key`. A flat-layout instance that left no run-info is not taken: nothing says it
/// ran here, and taking it would replace the program on another namespace's interface.
pub fn migrate_legacy(cfg: &RunConfig, key: &Key) -> Result<Option<Legacy>, StartError> {
    let iface = key.iface();
    let legacy = Key::Legacy {
        iface: iface.to_string(),
    };
    let old_pins = paths::pin_dir(&cfg.pin_base, &legacy);
    match scope::legacy_is_ours(&cfg.run_dir, iface) {
        Some(true) => {}
        Some(false) => {
            info!("{iface}: the earlier-release instance of that name ran in another namespace");
            return Ok(None);
        }
        None => {
            if old_pins.exists() {
                warn!(
                    "{iface}: {} holds an earlier release's state without a run-info file; not \
                     taking it over (run `synguard detach --iface {iface}` in the namespace it \
                     guarded)",
                    old_pins.display()
                );
            }
            return Ok(None);
        }
    }
    // Its process must be gone: the earlier release holds this lock while it runs.
    let lock = InstanceLock::acquire(&cfg.run_dir, &legacy)?;
    let new_pins = paths::pin_dir(&cfg.pin_base, key);
    if old_pins.exists() {
        if new_pins.exists() {
            warn!(
                "{iface}: both {} and {} exist; keeping the newer",
                old_pins.display(),
                new_pins.display()
            );
        } else {
            let parent = new_pins.parent().unwrap_or(&cfg.pin_base);
            fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
            fs::rename(&old_pins, &new_pins).map_err(io_err("cannot move", &old_pins))?;
            info!(
                "{iface}: moved the earlier release's pins {} -> {}",
                old_pins.display(),
                new_pins.display()
            );
        }
    }
    let old_history = paths::history(&cfg.run_dir, &legacy);
    let new_history = paths::history(&cfg.run_dir, key);
    if old_history.exists() {
        if let Some(parent) = new_history.parent() {
            fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
        }
        fs::rename(&old_history, &new_history).map_err(io_err("cannot move", &old_history))?;
    }
    Ok(Some(Legacy {
        key: legacy,
        _lock: lock,
    }))
}

/// The run-info a previous instance left for this interface (ours, else the earlier release's
/// being migrated), if it ran in our namespace; its kernel settings become ours to restore.
pub fn adopt_previous(
    cfg: &RunConfig,
    key: &Key,
    legacy: Option<&Legacy>,
    saver: &mut SysctlSaver,
) -> Option<RunInfo> {
    let iface = key.iface();
    let from = [Some(key), legacy.map(|l| &l.key)];
    let mut adopted = None;
    for key in from.into_iter().flatten() {
        let Some(prev) = RunInfo::load(&cfg.run_dir, key) else {
            continue;
        };
        if !prev.same_netns() {
            warn!(
                "{iface}: ignoring {} from another network namespace",
                paths::run_info(&cfg.run_dir, key).display()
            );
            continue;
        }
        info!(
            "{iface}: taking over from synguard pid {} (it exited without detaching); the kernel \
             settings it changed will be restored when this one detaches",
            prev.pid
        );
        saver.adopt(&prev.originals());
        adopted.get_or_insert(prev);
    }
    adopted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Settings, host::netns};

    fn cfg(base: &Path) -> RunConfig {
        let mut cfg = RunConfig::from_settings(&Settings {
            ifaces: vec!["eth0".into()],
            ports: Some(crate::config::Ports::File(vec![80])),
            ..Default::default()
        })
        .unwrap();
        cfg.pin_base = base.join("pins");
        cfg.run_dir = base.join("run");
        cfg
    }

    fn legacy(iface: &str) -> Key {
        Key::Legacy {
            iface: iface.into(),
        }
    }

    /// Leaves what the earlier release leaves after a kill -9: pins, run-info, history.
    fn leave(cfg: &RunConfig, iface: &str, netns: Option<String>, with_info: bool) {
        let old = legacy(iface);
        fs::create_dir_all(paths::pin_dir(&cfg.pin_base, &old).join("SG_CONFIG")).unwrap();
        fs::create_dir_all(&cfg.run_dir).unwrap();
        fs::write(paths::history(&cfg.run_dir, &old), "[]").unwrap();
        if with_info {
            let info = RunInfo {
                pid: 42,
                iface: iface.into(),
                netns,
                sysctl_originals: [("net.ipv4.tcp_timestamps".to_string(), 1)].into(),
                ..Default::default()
            };
            info.write(&cfg.run_dir, &old).unwrap();
        }
    }

    #[test]
    fn an_earlier_release_instance_of_this_namespace_moves_into_place() {
        let base = std::env::temp_dir().join(format!("sg-takeover-{}", std::process::id()));
        let cfg = cfg(&base);
        let ours = netns::current_inode().unwrap();
        let key = Key::scoped(ours, "eth0", 2);
        leave(&cfg, "eth0", netns::current(), true);
        let taken = migrate_legacy(&cfg, &key).unwrap().expect("ours to take");
        assert!(
            paths::pin_dir(&cfg.pin_base, &key)
                .join("SG_CONFIG")
                .exists()
        );
        assert!(!paths::pin_dir(&cfg.pin_base, &legacy("eth0")).exists());
        assert!(paths::history(&cfg.run_dir, &key).exists());
        let mut saver = SysctlSaver::default();
        let prev = adopt_previous(&cfg, &key, Some(&taken), &mut saver).unwrap();
        assert_eq!(prev.pid, 42);
        assert_eq!(saver.original("net.ipv4.tcp_timestamps"), Some(1));
        taken.finish(&cfg.run_dir);
        assert!(!paths::run_info(&cfg.run_dir, &legacy("eth0")).exists());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn an_earlier_release_instance_elsewhere_or_unrecorded_stays() {
        let base = std::env::temp_dir().join(format!("sg-takeover2-{}", std::process::id()));
        let cfg = cfg(&base);
        let ours = netns::current_inode().unwrap();
        leave(&cfg, "eth1", Some("net:[1]".into()), true);
        leave(&cfg, "eth2", None, false);
        for iface in ["eth1", "eth2"] {
            let key = Key::scoped(ours, iface, 3);
            assert!(migrate_legacy(&cfg, &key).unwrap().is_none());
            assert!(paths::pin_dir(&cfg.pin_base, &legacy(iface)).exists());
            assert!(!paths::pin_dir(&cfg.pin_base, &key).exists());
            let mut saver = SysctlSaver::default();
            assert!(adopt_previous(&cfg, &key, None, &mut saver).is_none());
        }
        fs::remove_dir_all(&base).unwrap();
    }
}
