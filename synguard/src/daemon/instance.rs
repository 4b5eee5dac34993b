//! One guarded interface: lock, adopt what a previous instance left, configure the kernel, load,
//! configure the maps, pin, attach (or replace the program behind the pinned link), and undo all
//! of it.
//!
//! An [`Instance`] owns everything a running `synguard run` changed for its interface: the lock,
//! the pinned maps, the attached program, the run-info file. Dropping it undoes them in reverse
//! order, so an error half-way through setup leaves nothing behind. The kernel settings belong
//! to the process (`SysctlSaver`, see `daemon::guard`), shared by all interfaces.

mod bond_follow;
pub mod host_follow;
mod listener_follow;
mod own_cookies_watch;

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use aya::{Ebpf, programs::XdpMode};
use log::{debug, info, warn};
use synguard_common::maps::{COOKIES_OWN, Config, ReadyState, cookies_own, names};

use crate::{
    config::RunConfig,
    daemon::{
        cookie_backend::MapBackend,
        mode::Controller,
        nic_gate,
        own_cookies::{self, Choice},
        prepare::{
            StartError, kernel_config, log_netfilter, log_reverse_path, set_sysctls,
            warn_about_vlan_offload,
        },
        takeover::{self, Legacy},
    },
    datapath::{
        config_map::{set_host_fields, write_config},
        conns::{self, ConnTable},
        error::{LoaderError, io_err},
        link::{self, Attachment, How},
        load::{self, ProgramLogger},
        maps,
        own::{self, SecretMap},
        pins::{self, Layout},
    },
    host::{
        addr_watch::AddrWatch,
        clock,
        facts::HostFacts,
        fault::{self, Step},
        io::io_err as path_err,
        netns, nic,
        sysctl::{SYNCOOKIES, SyncookieVotes, SysctlSaver, Sysctls, TIMESTAMPS},
    },
    state::{
        lock::InstanceLock,
        paths::{self, Key},
        run_info::{ConfigInfo, RecordedChange, RunInfo},
    },
};

/// A guarded interface: everything synguard put in place for it, undone on drop unless handed
/// over.
pub struct Instance {
    iface: String,
    key: Key,
    /// An earlier release's instance being taken over, until our run-info replaces its own.
    legacy: Option<Legacy>,
    ebpf: Option<Ebpf>,
    link: Option<Attachment>,
    /// Own cookies' key map (the TC program lives with `ebpf`).
    secret: Option<SecretMap>,
    /// The connection table, mapped for the pass; None when its sock_ops program could not be
    /// attached (the table is then never trusted).
    conns: Option<ConnTable>,
    /// The driver's lack of XDP metadata has been reported.
    meta_warned: bool,
    /// The host facts the config map holds (`host_follow`); None until it is written.
    host: Option<HostFacts>,
    /// The host facts could not be read at the last try, and that was reported.
    host_unreadable: bool,
    /// The interface was renamed under the program, and that was reported.
    renamed_warned: bool,
    /// The port table's listener bits could not be set at the last try, and that was reported.
    listeners_unwritable: bool,
    /// The reverse-path check's routes or the host's addresses could not be written to the
    /// program's tries at the last try, and that was reported.
    tables_unwritable: bool,
    /// For a bond, its slaves as last read (`bond_follow`); `None` for any other interface.
    bond_slaves: Option<Vec<String>>,
    /// The kernel's address, route and link notifications, which say when the host's
    /// addresses are worth reading again (`host_follow`); `None` if the subscription failed
    /// (then they are read every period).
    addr_watch: Option<AddrWatch>,
    /// Periods since the host's addresses were last read in full.
    addrs_kept: u32,
    /// The bound listeners could not be written at the last try, and that was reported.
    bound_unwritable: bool,
    pin_dir: Option<PathBuf>,
    run_info: Option<PathBuf>,
    /// Leave link, pins and run-info for a successor (hand-over, or a failed take-over while
    /// the previous program still protects the interface).
    leave_in_place: bool,
    // Last: released only after everything else is undone.
    _lock: InstanceLock,
}

/// What `Instance::start` hands to the run loop.
pub struct Started {
    pub instance: Instance,
    pub controller: Controller<MapBackend>,
    /// Reads the program's aya-log records; None when the object has no log map.
    pub logger: Option<ProgramLogger>,
}

/// What the previous program left pinned.
struct Inherited {
    layouts: BTreeMap<String, Layout>,
    /// Names of the pinned maps the new program reuses.
    kept: Vec<String>,
    /// Pinned maps only the running program uses: removed once the new one is attached.
    retired: Vec<String>,
    /// The previous program's READY state: cookies may be on right now.
    ready: ReadyState,
    /// Whether the previous program sent own cookies (its pinned configuration says so). Own
    /// cookies are READY from the start and need no kernel setting, so its READY says nothing
    /// about the kernel's cookies.
    own: bool,
}

impl Inherited {
    /// Whether the kernel's cookies are on right now (a flood in auto mode, or always mode):
    /// the kernel must keep accepting them through the take-over.
    fn kernel_cookies_on(&self) -> bool {
        self.ready.kernel_ready != 0 && !self.own
    }
}

impl Instance {
    /// Takes the interface: lock, adopt what a previous instance left, load, configure, pin,
    /// attach (or replace the program behind the pinned link).
    pub fn start(
        cfg: &RunConfig,
        iface: &str,
        saver: &mut SysctlSaver,
        syncookies: SyncookieVotes,
    ) -> Result<Started, StartError> {
        let if_index = nic::check_interface(iface)?;
        warn_about_vlan_offload(iface);
        // Before anything is changed: a refusal leaves the interface as it was.
        let bond_slaves = nic_gate::before_attach(cfg, iface)?;
        let ns = Path::new("/proc/self/ns/net");
        let key = Key::scoped(
            netns::current_inode().map_err(path_err("cannot stat", ns))?,
            iface,
            if_index,
        );
        let lock = InstanceLock::acquire(&cfg.run_dir, &key)?;
        let legacy = takeover::migrate_legacy(cfg, &key)?;
        let prev = takeover::adopt_previous(cfg, &key, legacy.as_ref(), saver);
        let pin_dir = paths::pin_dir(&cfg.pin_base, &key);
        let mut inst = Instance {
            iface: iface.to_string(),
            key,
            legacy,
            ebpf: None,
            link: None,
            secret: None,
            conns: None,
            meta_warned: false,
            host: None,
            host_unreadable: false,
            renamed_warned: false,
            listeners_unwritable: false,
            tables_unwritable: false,
            bond_slaves,
            // Before the first reading of the addresses (`setup`), so that no change after it
            // goes unseen.
            addr_watch: AddrWatch::new()
                .inspect_err(|e| {
                    debug!("{iface}: no address notifications ({e}): read every period")
                })
                .ok(),
            addrs_kept: 0,
            bound_unwritable: false,
            pin_dir: None,
            run_info: None,
            // A program left behind keeps protecting if we fail before replacing it.
            leave_in_place: pin_dir.join(pins::LINK).exists(),
            _lock: lock,
        };
        // From here on, an error drops `inst`, which undoes whatever was done.
        let prev_mode = prev.map(|p| p.xdp_mode);
        let (controller, logger) = inst.setup(
            cfg,
            if_index,
            &pin_dir,
            prev_mode.as_deref(),
            saver,
            syncookies,
        )?;
        Ok(Started {
            instance: inst,
            controller,
            logger,
        })
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// What its files are keyed by.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Prepares the pin directory and keeps what a previous program left there that the new
    /// one can use.
    fn inherit_pins(&mut self, pin_dir: &Path) -> Result<Inherited, StartError> {
        pins::prepare_dir(pin_dir)?;
        self.pin_dir = Some(pin_dir.to_path_buf());
        let layouts = pins::object_layouts(crate::datapath::objects::synguard())
            .map_err(|e| LoaderError::Missing(format!("readable map definitions ({e})")))?;
        let pins::Reuse { kept, retired, .. } = pins::reconcile(&self.iface, pin_dir, &layouts)?;
        let is_kept = |name: &str| kept.iter().any(|n| n == name);
        let ready = if is_kept(names::READY) {
            maps::read_single(pin_dir, names::READY)?
        } else {
            ReadyState::default()
        };
        let own = is_kept(names::CONFIG)
            && cookies_own(maps::read_single::<Config>(pin_dir, names::CONFIG)?.cookies);
        Ok(Inherited {
            layouts,
            kept,
            retired,
            ready,
            own,
        })
    }

    fn setup(
        &mut self,
        cfg: &RunConfig,
        if_index: u32,
        pin_dir: &Path,
        prev_mode: Option<&str>,
        saver: &mut SysctlSaver,
        syncookies: SyncookieVotes,
    ) -> Result<(Controller<MapBackend>, Option<ProgramLogger>), StartError> {
        let iface = self.iface.clone();
        let mut own = own_cookies::decide(cfg, &iface)? == Choice::Own;
        let (mut config, mut host, tables) = kernel_config(cfg, &iface)?;
        load::raise_memlock_limit();
        let object = own::object(own)?;
        let inherited = self.inherit_pins(pin_dir)?;
        let adopting_cookies = inherited.kernel_cookies_on();
        // Recorded before anything changes, so that whoever comes after a crash (`run` or
        // `detach`) knows what to put back.
        saver.remember(TIMESTAMPS)?;
        saver.remember(SYNCOOKIES)?;
        // Until attached, the mode on record is the running program's (a take-over), so that a
        // successor after a crash still knows how the pinned link is attached.
        let pending = match prev_mode {
            Some(m) if self.leave_in_place => m,
            _ => "pending",
        };
        self.write_run_info(cfg, pin_dir, pending, "pending", &config, saver)?;
        if let Some(legacy) = self.legacy.take() {
            legacy.finish(&cfg.run_dir);
        }
        fault::point(Step::Recorded);
        // Own cookies change no kernel setting (unless they fall back, below).
        let mut idle = if own {
            Sysctls::default().read_u64(SYNCOOKIES)?
        } else {
            set_sysctls(cfg.mode, saver, adopting_cookies)?
        };
        fault::point(Step::Sysctls);

        // Maps are pinned while loading, and a pinned map is what `stats` waits for: the kernel
        // settings above come first, so whoever sees the maps sees them in effect.
        let ebpf = self.ebpf.insert(load::load_object(
            pin_dir,
            &inherited.layouts,
            object.bytes(),
        )?);
        // The table and its promise may be the running program's: until this instance's first
        // pass, with its ports in the map and its sock_ops program attached, promise nothing.
        conns::distrust(pin_dir)?;
        let logger = load::logger(ebpf);
        load::load_program(ebpf)?;
        // The TC program and the key before the XDP program can send an own cookie.
        let tc_pin = pin_dir.join(pins::TC_LINK);
        if own {
            own = self.start_own(cfg, &tc_pin, saver, adopting_cookies, &mut idle)?;
            if own {
                // The option flags follow the kind of cookies (`set_host_fields`).
                config.cookies = COOKIES_OWN;
                set_host_fields(&mut config, &host, cfg.wscale);
            }
        } else {
            own::remove_tc_link(&tc_pin);
        }
        // The tries before the config that makes the program read them.
        let all = host_follow::Changed::ALL;
        if let Err(e) = host_follow::write_tables(&iface, pin_dir, &tables, &mut host, all) {
            warn!("{e}");
            self.tables_unwritable = true;
        }
        set_host_fields(&mut config, &host, cfg.wscale);
        log_reverse_path(&iface, &host);
        log_netfilter(&iface);
        // The maps may be the running program's: the new config applies to it at once.
        let inherited_ports = inherited.kept.iter().any(|n| n == names::PORTS);
        let ebpf = self.ebpf.as_mut().expect("loaded above");
        write_config(ebpf, &config, &cfg.ports, inherited_ports)?;
        self.host = Some(host);
        self.write_run_info(cfg, pin_dir, pending, "pending", &config, saver)?;
        fault::point(Step::Loaded);
        let ebpf = self.ebpf.as_mut().expect("loaded above");
        let mut backend = MapBackend::take(ebpf, &iface, pin_dir, syncookies)?;
        if own {
            backend = backend.without_kernel_settings();
        }
        let mut controller = Controller::new(backend, cfg.mode, idle).named(&iface);
        controller.resume(adopting_cookies.then_some(inherited.ready))?;

        let (xdp_mode, how) = self.attach(cfg, if_index, pin_dir, prev_mode)?;
        // The running program, if any, is replaced now: what only it used can go.
        pins::retire(&iface, pin_dir, &inherited.retired);
        self.attach_conns(pin_dir);
        fault::point(Step::Attached);
        self.write_run_info(cfg, pin_dir, link::mode_name(xdp_mode), how, &config, saver)?;
        Ok((controller, logger))
    }

    /// Attaches (or replaces the program behind the pinned link) and marks the pin directory.
    fn attach(
        &mut self,
        cfg: &RunConfig,
        if_index: u32,
        pin_dir: &Path,
        prev_mode: Option<&str>,
    ) -> Result<(XdpMode, &'static str), StartError> {
        let ebpf = self.ebpf.as_mut().expect("loaded before attaching");
        let (att, xdp_mode, how) = link::attach(
            load::program_of(ebpf)?,
            &self.iface,
            if_index,
            cfg.xdp,
            &pin_dir.join(pins::LINK),
            prev_mode,
        )?;
        self.link = Some(att);
        self.leave_in_place = false;
        // Last: readers (`stats`, `status`, a waiting test) accept the directory only once it
        // is marked, i.e. once the maps hold this configuration and the program is attached.
        pins::mark_schema(pin_dir)?;
        let (verb, attach) = match how {
            How::Fresh => ("attached to", "fresh"),
            How::Replaced => ("replaced the running program on", "replaced"),
        };
        info!(
            "synguard {verb} {} ({} XDP), protecting TCP ports {:?}, {} mode",
            self.iface,
            link::mode_name(xdp_mode),
            cfg.ports,
            cfg.mode.name()
        );
        Ok((xdp_mode, attach))
    }

    /// The connection table's sock_ops program and the mapping the pass stamps through. A
    /// refusal (no cgroup v2, an old kernel) leaves the table untrusted and is said once: the
    /// XDP program keeps asking the kernel's socket lookup about every ACK.
    fn attach_conns(&mut self, pin_dir: &Path) {
        let ebpf = self.ebpf.as_mut().expect("loaded before attaching");
        let table = conns::attach(ebpf, &pin_dir.join(pins::CONNS_LINK)).and_then(|root| {
            info!(
                "{}: connection table's sock_ops program attached to {}",
                self.iface,
                root.display()
            );
            ConnTable::open(pin_dir)
        });
        match table {
            Ok(t) => self.conns = Some(t),
            Err(e) => warn!(
                "{}: connection table unavailable ({:#}); ACKs keep using the socket lookup",
                self.iface,
                anyhow::Error::from(e)
            ),
        }
    }

    /// The connection table the pass stamps, when its sock_ops program is attached.
    pub fn conn_table(&mut self) -> Option<&mut ConnTable> {
        self.conns.as_mut()
    }

    fn write_run_info(
        &mut self,
        cfg: &RunConfig,
        pin_dir: &Path,
        xdp_mode: &str,
        attach: &'static str,
        config: &Config,
        saver: &SysctlSaver,
    ) -> Result<(), LoaderError> {
        let info = RunInfo {
            pid: std::process::id(),
            iface: self.iface.clone(),
            netns: netns::current(),
            metrics_addr: cfg.metrics_addr.map(|a| a.to_string()),
            netns_cookie: netns::current_cookie(),
            ports: cfg.ports.clone(),
            mode: cfg.mode.name().to_string(),
            xdp_mode: xdp_mode.to_string(),
            pin_dir: pin_dir.to_path_buf(),
            syn_on_pps: cfg.syn_on_pps,
            syn_off_pps: cfg.syn_off_pps,
            hold_s: cfg.hold.as_secs_f64(),
            config: ConfigInfo::from(config),
            sysctl_changes: saver
                .changes()
                .iter()
                .map(|c| RecordedChange {
                    name: c.name.to_string(),
                    old: c.old,
                    new: c.new,
                    why: c.why.to_string(),
                })
                .collect(),
            sysctl_originals: saver
                .originals()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            started_unix_s: clock::unix_s(),
            attach: attach.to_string(),
        };
        let path = paths::run_info(&cfg.run_dir, &self.key);
        info.write(&cfg.run_dir, &self.key)
            .map_err(io_err("cannot write", &path))?;
        self.run_info = Some(path);
        Ok(())
    }

    /// Exit without undoing anything: the pinned link keeps the program attached with its
    /// maps, and the run-info keeps what the next `run` (or `detach`) needs.
    pub fn hand_over(mut self) {
        self.leave_in_place = true;
        info!(
            "{}: handing over: the program stays attached for the next synguard run",
            self.iface
        );
    }

    /// Undoes everything but the kernel settings (the process restores those once all its
    /// interfaces are detached), in reverse order of setup. Idempotent; also runs on drop.
    pub fn shutdown(&mut self) {
        if self.leave_in_place {
            // Dropping our fds leaves the pinned link and maps alive.
            self.conns = None;
            self.secret = None;
            self.link = None;
            self.ebpf = None;
            return;
        }
        if let Some(link) = self.link.take() {
            match link.detach() {
                Ok(()) => info!("detached from {}", self.iface),
                Err(e) => warn!("detaching from {}: {e}", self.iface),
            }
        }
        // Closing the object frees the programs (the TC link with them) and every unpinned map;
        // removing the pin directory below releases the sock_ops link.
        self.conns = None;
        self.secret = None;
        self.ebpf = None;
        if let Some(dir) = self.pin_dir.take()
            && let Err(e) = pins::remove_dir(&dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            warn!("cannot remove {}: {e}", dir.display());
        }
        if let Some(path) = self.run_info.take() {
            let _ = fs::remove_file(path);
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown();
    }
}
