//! The one owner of what a `run` process changed: its instances and the kernel settings they
//! share. However `run` ends (an error during start, a signal, a failure while running),
//! dropping the guard detaches every instance and only then restores the settings, unless it was
//! handed over.

use log::warn;

use crate::{
    config::RunConfig,
    daemon::{
        conns::Refresher,
        cookie_backend::MapBackend,
        instance::{Instance, host_follow::Lost},
        mode::Controller,
        prepare::StartError,
    },
    datapath::load::ProgramLogger,
    host::{
        listeners::Listening,
        sysctl::{SYNCOOKIES, SYNCOOKIES_ALWAYS, SyncookieVotes, SysctlSaver, Sysctls},
    },
    state::paths::Key,
};

pub struct Guard {
    instances: Vec<Instance>,
    saver: SysctlSaver,
    votes: SyncookieVotes,
    conns: Refresher,
    /// The listening sockets could not be read at the last try, and that was said.
    listeners_unreadable: bool,
}

impl Guard {
    pub fn new() -> Self {
        let sysctls = Sysctls::default();
        Guard {
            instances: Vec::new(),
            saver: SysctlSaver::new(sysctls.clone()),
            votes: SyncookieVotes::new(sysctls),
            conns: Refresher::default(),
            listeners_unreadable: false,
        }
    }

    /// Takes `iface`: the instance stays with the guard, the controller and the log reader go
    /// to the caller.
    pub fn start(
        &mut self,
        cfg: &RunConfig,
        iface: &str,
    ) -> Result<(Controller<MapBackend>, Option<ProgramLogger>), StartError> {
        let started = Instance::start(cfg, iface, &mut self.saver, self.votes.clone())?;
        self.instances.push(started.instance);
        Ok((started.controller, started.logger))
    }

    /// The keys of the instances started so far, in order.
    pub fn keys(&self) -> Vec<Key> {
        self.instances.iter().map(|i| i.key().clone()).collect()
    }

    /// Own cookies' health, checked now and then from the run loop.
    pub fn watch_own(&mut self) {
        self.instances.iter_mut().for_each(Instance::watch_own);
    }

    /// Host facts the programs' answers depend on (MTU, MAC address, TCP settings), followed
    /// from the run loop (`instance::host_follow`), and a bond's slaves
    /// (`instance::bond_follow`); an interface no longer there is an error.
    pub fn follow_host(&mut self, cfg: &RunConfig) -> Result<(), Lost> {
        self.instances.iter_mut().try_for_each(|inst| {
            inst.follow_host(cfg)?;
            inst.follow_bond();
            Ok(())
        })
    }

    /// The namespace's listeners into every instance's port table (`instance::listener_follow`).
    /// Unreadable: the tables keep what they hold, and that is said once.
    pub fn follow_listeners(&mut self) {
        match Listening::read() {
            Ok(listening) => {
                self.listeners_unreadable = false;
                for inst in &mut self.instances {
                    inst.follow_listeners(&listening);
                }
            }
            Err(e) if !self.listeners_unreadable => {
                warn!(
                    "cannot read the listening sockets (sock_diag): {e}; ports keep what they had"
                );
                self.listeners_unreadable = true;
            }
            Err(_) => {}
        }
    }

    /// Sets back the kernel settings the kernel's cookies depend on when something else
    /// changed them (`sysctl --system` re-applying a distribution's `tcp_syncookies = 1`, a
    /// configuration manager): `tcp_timestamps` while they are in use, `tcp_syncookies` while
    /// they are on. Said each time, with what it had become.
    pub fn keep_settings(&mut self) {
        let on = [(
            SYNCOOKIES,
            SYNCOOKIES_ALWAYS,
            "cookies are on: the kernel must accept every cookie ACK",
        )];
        let also = match self.votes.wanted() {
            Some(SYNCOOKIES_ALWAYS) => &on[..],
            _ => &[],
        };
        let (set, errors) = self.saver.keep(also);
        for s in set {
            warn!(
                "{} was changed to {} behind synguard's back; set back to {} ({})",
                s.name, s.found, s.value, s.why
            );
        }
        for e in errors {
            warn!("{:#}", anyhow::Error::from(e));
        }
    }

    /// The connection table's pass over every instance whose sock_ops program is attached
    /// (`daemon::conns`), for `ports` (sorted), the ports the port maps hold now.
    pub fn refresh_conns(&mut self, ports: &[u16]) {
        let mut tables: Vec<_> = self
            .instances
            .iter_mut()
            .filter_map(Instance::conn_table)
            .collect();
        self.conns.run(&mut tables, ports);
    }

    /// Reload: every own-cookie interface gets its next secret.
    pub fn rotate_secrets(&mut self, cfg: &RunConfig) {
        for inst in &mut self.instances {
            if let Err(e) = inst.rotate_secret(cfg) {
                warn!(
                    "{}: cookie secret not rotated: {:#}",
                    inst.iface(),
                    anyhow::Error::from(e)
                );
            }
        }
    }

    /// Leaves everything attached for the next `run` to take over; restores nothing.
    pub fn hand_over(mut self) {
        std::mem::take(&mut self.instances)
            .into_iter()
            .for_each(Instance::hand_over);
        // The successor adopts the settings from the run-info files: an empty saver restores
        // nothing when the guard drops.
        self.saver = SysctlSaver::default();
    }
}

impl Default for Guard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Undo the interfaces first: only once no program sends cookies may the kernel stop
        // accepting them.
        self.instances.clear();
        for e in self.saver.restore() {
            warn!("{:#}", anyhow::Error::from(e));
        }
    }
}
