//! Following the host while running. The SYN-ACK's MSS cap comes from the interface's MTU, its
//! window and window scale from the kernel's receive buffers, its ECN and options from the
//! kernel's switches, and the SYNs worth answering are those sent to the interface's
//! MAC address. All of them can change under a running program: an MTU raised for jumbo frames,
//! a bond's fail-over that moves its MAC (`fail_over_mac=active`), an administrator's sysctl.
//! Read once at start only, the program would then answer as the host no longer does (an MSS
//! the path cannot carry) or stop answering at all (every SYN to the new MAC passed as not for
//! the host). The run loop reads them again every [`PERIOD`] and rewrites the config map's host
//! fields when they changed (`config_map::set_host_fields`).
//!
//! The same reading notices an interface that went away or was re-created under its name: the
//! XDP program went with the old device, and the run ends with an error ([`Lost`]), so that the
//! service manager starts synguard again (systemd: `Restart=on-failure`), which attaches anew.

use std::{path::Path, time::Duration};

use log::{info, warn};
use synguard_common::maps::{Config, names};
use thiserror::Error;

use crate::{
    config::RunConfig,
    daemon::instance::Instance,
    datapath::{
        config_map::set_host_fields,
        local_addrs,
        maps::{self, PinnedMapError},
        reverse_path,
    },
    host::{
        facts::{HostFacts, HostTables},
        nic,
        sysctl::Sysctls,
    },
    state::run_info::{ConfigInfo, RunInfo},
};

/// How often the host is read again: a few ioctls (the interface's name by index, its MTU, its
/// MAC address), sysctl files, the address list and the local routes per interface, and where
/// `rp_filter` is on the routing rules and the main table; well within the daemon's budget
/// (README, "The daemon's own cost"), and soon enough after a bond's fail-over.
pub const PERIOD: Duration = Duration::from_secs(1);

/// How many periods in a row the host's addresses may be kept without a full reading, whatever
/// the notifications say (a lost one, a namespace whose notifications do not come).
pub const FULL_READ_EVERY: u32 = 30;

/// The interface went away under the program, or was re-created under its name (a driver
/// reload, a bond rebuilt): the XDP program went with the device it was attached to.
#[derive(Debug, Error)]
pub enum Lost {
    #[error("{iface} went away (interface index {index} is gone)")]
    Gone { iface: String, index: u32 },
    #[error("{iface} was re-created (interface index {index} is now {now})")]
    Recreated { iface: String, index: u32, now: u32 },
}

impl Instance {
    /// Reads the host's facts again; where they changed, the config map's host fields and the
    /// run-info file follow, and the log says what changed. A failed reading or write changes
    /// nothing and is said once; the next period tries again. An interface that is no longer
    /// the one the program was attached to is an error: nothing protects it any more.
    pub fn follow_host(&mut self, cfg: &RunConfig) -> Result<(), Lost> {
        self.check_still_there()?;
        let (Some(before), true) = (self.host, self.pin_dir.is_some()) else {
            return Ok(());
        };
        // The address list only when something may have changed it, or now and then anyway.
        let kept = self.addresses_unchanged().then_some(before.local);
        let Some(dir) = self.pin_dir.as_deref() else {
            return Ok(());
        };
        let (mut now, tables) = match HostFacts::read_with(&self.iface, &Sysctls::default(), kept) {
            Ok(f) => f,
            Err(e) => {
                if !self.host_unreadable {
                    warn!("{}: cannot read the host's settings again: {e}", self.iface);
                    self.host_unreadable = true;
                }
                return Ok(());
            }
        };
        self.host_unreadable = false;
        if now == before {
            return Ok(());
        }
        // The tries before the config that makes the program read them; a failure said once
        // until a write succeeds.
        let changed = Changed {
            routes: now.reverse_path != before.reverse_path,
            local: now.local != before.local,
        };
        match write_tables(&self.iface, dir, &tables, &mut now, changed) {
            Ok(()) => self.tables_unwritable = false,
            Err(e) => {
                if !std::mem::replace(&mut self.tables_unwritable, true) {
                    warn!("{e}");
                }
            }
        }
        match rewrite(dir, &now, cfg.wscale) {
            Ok(config) => {
                info!(
                    "{}: {}; the program's answers follow",
                    self.iface,
                    now.changes_since(&before).join("; ")
                );
                self.host = Some(now);
                self.record(cfg, &config);
            }
            Err(e) => warn!(
                "{}: the host's settings changed but the config map was not rewritten: {:#}",
                self.iface,
                anyhow::Error::from(e)
            ),
        }
        Ok(())
    }

    /// Whether the host's addresses can be taken as they were: the kernel sent no address,
    /// route or link notification since the last period (`host::addr_watch`), the last write
    /// of them did not fail, and they were read in full within [`FULL_READ_EVERY`] periods.
    fn addresses_unchanged(&mut self) -> bool {
        let quiet = self.addr_watch.as_ref().is_some_and(|w| !w.changed());
        if quiet && !self.tables_unwritable && self.addrs_kept < FULL_READ_EVERY {
            self.addrs_kept += 1;
            return true;
        }
        self.addrs_kept = 0;
        false
    }

    /// The device the program was attached to (its interface index) still exists (an instance
    /// of the earlier release's layout, keyed by name only, is not checked). Renamed, it is
    /// still protected: said once.
    fn check_still_there(&mut self) -> Result<(), Lost> {
        let Some(index) = self.key.ifindex() else {
            return Ok(());
        };
        match nic::name_of(index) {
            Some(name) if name == self.iface => Ok(()),
            Some(name) => {
                if !self.renamed_warned {
                    warn!(
                        "{}: renamed to {name}; still protected, but the configuration names {}: \
                         a restart would look for that name",
                        self.iface, self.iface
                    );
                    self.renamed_warned = true;
                }
                Ok(())
            }
            None => {
                let iface = self.iface.clone();
                Err(match nic::check_interface(&self.iface) {
                    Ok(now) => Lost::Recreated { iface, index, now },
                    Err(_) => Lost::Gone { iface, index },
                })
            }
        }
    }

    /// The run-info file's copy of what was computed, for `status`.
    fn record(&self, cfg: &RunConfig, config: &Config) {
        let Some(mut info) = RunInfo::load(&cfg.run_dir, &self.key) else {
            return;
        };
        info.config = ConfigInfo::from(config);
        if let Err(e) = info.write(&cfg.run_dir, &self.key) {
            warn!("{}: cannot record the host's settings: {e}", self.iface);
        }
    }
}

/// Which of the tries a new reading of the host changed.
#[derive(Clone, Copy, Debug)]
pub struct Changed {
    pub routes: bool,
    pub local: bool,
}

impl Changed {
    /// Both: the first writing, at start.
    pub const ALL: Changed = Changed {
        routes: true,
        local: true,
    };
}

/// Writes the tries that `facts` needs and `changed` names (`tables`, read with them by
/// `HostFacts::read`) under `dir`. Where one could not be written, `facts` no longer asks the
/// program to read it: the reverse-path check is off, a family of addresses not known (every
/// destination the host's); the error says so.
pub fn write_tables(
    iface: &str,
    dir: &Path,
    tables: &HostTables,
    facts: &mut HostFacts,
    changed: Changed,
) -> Result<(), String> {
    let mut failed = Vec::new();
    if changed.routes
        && let Err(e) = reverse_path::write(dir, &tables.routes)
    {
        facts.reverse_path.flags = 0;
        failed.push(format!(
            "the reverse-path check's routes were not written, so it is off: {:#}",
            anyhow::Error::from(e)
        ));
    }
    if changed.local
        && let Err(e) = local_addrs::write(dir, &facts.local, &tables.local)
    {
        facts.local.not_known_in_trie();
        failed.push(format!(
            "the host's addresses were not written to the program's table, so every \
             destination counts as the host's: {:#}",
            anyhow::Error::from(e)
        ));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{iface}: {}", failed.join("; ")))
    }
}

/// The pinned config map's host fields from `facts`, the rest as the map holds it.
fn rewrite(dir: &Path, facts: &HostFacts, wscale: Option<u8>) -> Result<Config, PinnedMapError> {
    let mut map = maps::array::<Config>(dir, names::CONFIG)?;
    let mut config = map
        .get(&0, 0)
        .map_err(PinnedMapError::read(dir, names::CONFIG))?;
    set_host_fields(&mut config, facts, wscale);
    map.set(0, config, 0)
        .map_err(PinnedMapError::write(dir, names::CONFIG))?;
    Ok(config)
}
