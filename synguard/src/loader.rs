//! Loading, configuring, attaching and pinning the XDP program, and undoing all of it.
//!
//! An [`Instance`] owns everything a running `synguard run` changed on the system: the lock, the
//! sysctls, the pinned maps, the attached program, the run-info file. Dropping it undoes them in
//! reverse order, so an error half-way through setup leaves nothing behind.

use std::{
    ffi::CString,
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, Map, MapData, MapError},
    pin::PinError,
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};
use log::{debug, info, warn};
use serde::Serialize;
use synguard_common::maps::{
    Config, MAX_CPUS, MODE_ALWAYS, MODE_AUTO, ModeState, PORT_PROTECTED, PortConfig, ReadyState,
    names,
};
use thiserror::Error;

use crate::{
    config::{CookieMode, RunConfig, XdpAttach},
    diagnose::{self, MissingHelper},
    mode::{Backend, ControlError, Controller, monotonic_ns},
    objects,
    sysctl::{
        self, SYNCOOKIES, SysctlChange, SysctlError, SysctlSaver, Sysctls, TIMESTAMPS,
        TIMESTAMPS_NO_OFFSET, TcpParams,
    },
};

/// Where instances pin their maps, one directory per interface.
pub const DEFAULT_PIN_BASE: &str = "/sys/fs/bpf/synguard";
/// Where instances keep their lock and run-info files.
pub const DEFAULT_RUN_DIR: &str = "/run/synguard";
/// The conventional bpffs mount point.
const BPFFS_ROOT: &str = "/sys/fs/bpf";
/// The XDP program's name in the object.
pub const PROGRAM: &str = "synguard";
/// Maps `synguard stats` (and a later `status`) reads; the XDP program's private maps stay
/// unpinned so they die with the program.
pub const PINNED_MAPS: [&str; 6] = [
    names::CONFIG,
    names::PORTS,
    names::MODE,
    names::READY,
    names::VERDICTS,
    names::EVENTS,
];
/// While cookies are active, one SYN per listener per this period goes to the kernel. The kernel
/// accepts cookie ACKs only if the listener overflowed in the last 120 s; a SYN per second keeps
/// that fresh with room to spare and costs the kernel nothing measurable (platform notes).
pub const LISTENER_REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum LoaderError {
    #[error("no interface '{iface}' in this network namespace (interfaces here: {})", available.join(", "))]
    NoSuchInterface {
        iface: String,
        available: Vec<String>,
    },
    #[error("synguard needs root or CAP_BPF+CAP_NET_ADMIN ({what} was refused)")]
    NotPermitted { what: &'static str },
    #[error("cannot load the XDP program: {0}")]
    MissingHelper(MissingHelper),
    #[error("interface {iface} is already guarded by synguard pid {pid} (lock {}){note}", lock.display())]
    AlreadyRunning {
        iface: String,
        pid: String,
        lock: PathBuf,
        note: String,
    },
    #[error("cannot parse the embedded XDP object")]
    Load(#[source] EbpfError),
    #[error("cannot {what}")]
    Program {
        what: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("the XDP object has no {0}: loader and program come from different builds")]
    Missing(String),
    #[error("cannot use map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("cannot pin map {name} at {}", path.display())]
    Pin {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: PinError,
    },
    #[error("cannot attach XDP to {iface} in {mode} mode")]
    Attach {
        iface: String,
        mode: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error(
        "another XDP program is already attached to {iface}; remove it first \
         (ip link set dev {iface} xdp off)"
    )]
    XdpBusy { iface: String },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not on a BPF filesystem", .0.display())]
    NotBpffs(PathBuf),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LoaderError {
    let path = path.to_path_buf();
    move |source| LoaderError::Io { what, path, source }
}

/// Interfaces visible in the caller's network namespace, for error messages.
pub fn interfaces() -> Vec<String> {
    nix::net::if_::if_nameindex()
        .map(|list| {
            list.iter()
                .map(|i| i.name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Fails with the list of interfaces that do exist when `iface` is not one of them.
pub fn check_interface(iface: &str) -> Result<u32, LoaderError> {
    let name = CString::new(iface).map_err(|_| LoaderError::NoSuchInterface {
        iface: iface.to_string(),
        available: interfaces(),
    })?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(LoaderError::NoSuchInterface {
            iface: iface.to_string(),
            available: interfaces(),
        });
    }
    Ok(index)
}

/// The identity of a process's network namespace, e.g. "net:[4026531840]".
fn netns_of(pid: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The map contents for a run configuration. Pure, so it is unit-tested.
pub fn build_config(cfg: &RunConfig, tcp: &TcpParams, mtu: u32, nr_cpus: u32) -> Config {
    let (mss_v4, mss_v6) = sysctl::mss_from_mtu(mtu);
    Config {
        mode: match cfg.mode {
            CookieMode::Always => MODE_ALWAYS,
            CookieMode::Auto => MODE_AUTO,
        },
        wscale: cfg.wscale.unwrap_or(tcp.wscale) as u32,
        mss_v4,
        mss_v6,
        ecn: tcp.ecn as u32,
        syn_on_pps: cfg.syn_on_pps,
        syn_off_pps: cfg.syn_off_pps,
        nr_cpus: nr_cpus.clamp(1, MAX_CPUS),
        rcv_space: tcp.rcv_space,
        _pad: 0,
        hold_ns: cfg.hold.as_nanos().min(u64::MAX as u128) as u64,
        refresh_ns: LISTENER_REFRESH.as_nanos() as u64,
    }
}

/// Exclusive, non-blocking flock on `<run_dir>/<iface>.lock`, holding our pid. The kernel drops
/// the lock when the process dies, so a crashed instance never blocks the next one.
#[derive(Debug)]
pub struct InstanceLock {
    path: PathBuf,
    _file: File,
}

impl InstanceLock {
    pub fn acquire(run_dir: &Path, iface: &str) -> Result<Self, LoaderError> {
        let denied = |what| {
            move |e: io::Error| match e.kind() {
                io::ErrorKind::PermissionDenied => LoaderError::NotPermitted { what },
                _ => LoaderError::Io {
                    what: "cannot create",
                    path: run_dir.to_path_buf(),
                    source: e,
                },
            }
        };
        fs::create_dir_all(run_dir).map_err(denied("creating the lock directory"))?;
        let path = run_dir.join(format!("{iface}.lock"));
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .map_err(denied("creating the lock file"))?;
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                    return Err(io_err("cannot lock", &path)(err));
                }
                let pid = fs::read_to_string(&path)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let note = match (netns_of(&pid), netns_of("self")) {
                    (Some(theirs), Some(ours)) if theirs != ours => format!(
                        "; that instance runs in another network namespace ({theirs}), and \
                         instances are told apart by interface name only"
                    ),
                    _ => String::new(),
                };
                return Err(LoaderError::AlreadyRunning {
                    iface: iface.to_string(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid
                    },
                    lock: path,
                    note,
                });
            }
            // A previous holder unlinks the file before it exits; if we locked that unlinked
            // file, another process may already hold the new one. Retry on the current file.
            let ours = file.metadata().map_err(io_err("cannot stat", &path))?;
            match fs::metadata(&path) {
                Ok(m) if m.dev() == ours.dev() && m.ino() == ours.ino() => {}
                _ => continue,
            }
            file.set_len(0).map_err(io_err("cannot write", &path))?;
            writeln!(file, "{}", std::process::id()).map_err(io_err("cannot write", &path))?;
            return Ok(InstanceLock { path, _file: file });
        }
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock; see the inode check in `acquire`.
        if let Err(e) = fs::remove_file(&self.path) {
            warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: statfs fills the zeroed struct we pass; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type == libc::BPF_FS_MAGIC)
}

/// Makes sure `pin_dir` can hold pins. `ip netns exec` gives its command a fresh /sys on which
/// /sys/fs/bpf is plain sysfs, so mount a bpffs there when needed (it lives as long as that mount
/// namespace).
fn prepare_pin_dir(pin_dir: &Path) -> Result<(), LoaderError> {
    let root = Path::new(BPFFS_ROOT);
    if pin_dir.starts_with(root) && !is_bpffs(root).map_err(io_err("cannot statfs", root))? {
        let src = CString::new("bpf").expect("no NUL");
        let target = CString::new(BPFFS_ROOT).expect("no NUL");
        let opts = CString::new("mode=0700").expect("no NUL");
        // SAFETY: all arguments are valid NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(io_err("cannot mount a BPF filesystem on", root)(
                io::Error::last_os_error(),
            ));
        }
        info!("mounted a BPF filesystem on {BPFFS_ROOT} (this mount namespace had none)");
    }
    fs::create_dir_all(pin_dir).map_err(io_err("cannot create", pin_dir))?;
    if !is_bpffs(pin_dir).map_err(io_err("cannot statfs", pin_dir))? {
        return Err(LoaderError::NotBpffs(pin_dir.to_path_buf()));
    }
    Ok(())
}

/// Removes an instance's pin directory, and the base directory once it is empty.
fn remove_pin_dir(pin_dir: &Path) -> io::Result<()> {
    fs::remove_dir_all(pin_dir)?;
    if let Some(base) = pin_dir.parent() {
        // Fails harmlessly while other instances still have directories there.
        let _ = fs::remove_dir(base);
    }
    Ok(())
}

/// What `synguard stats` and a future `status` can learn about a running instance without
/// touching BPF: `<run_dir>/<iface>.json`.
#[derive(Debug, Serialize)]
pub struct RunInfo<'a> {
    pub pid: u32,
    pub iface: &'a str,
    pub netns: Option<String>,
    pub ports: &'a [u16],
    pub mode: &'static str,
    /// "pending" until the program is attached.
    pub xdp_mode: &'static str,
    pub pin_dir: &'a Path,
    pub syn_on_pps: u32,
    pub syn_off_pps: u32,
    pub hold_s: f64,
    pub config: ConfigInfo,
    pub sysctl_changes: &'a [SysctlChange],
    /// What every touched setting was before; a successor uses it to undo a crashed run.
    pub sysctl_originals: std::collections::BTreeMap<&'static str, u64>,
}

/// The kernel-derived part of the configuration, for humans checking what was computed.
#[derive(Debug, Serialize)]
pub struct ConfigInfo {
    pub wscale: u32,
    pub mss_v4: u32,
    pub mss_v6: u32,
    pub ecn: bool,
    pub rcv_space: u32,
    pub nr_cpus: u32,
}

/// The controller's access to the kernel: the two mode maps and the sysctl tree.
pub struct MapBackend {
    mode: Array<MapData, ModeState>,
    ready: Array<MapData, ReadyState>,
    sysctls: Sysctls,
}

impl Backend for MapBackend {
    fn mode_state(&self) -> Result<ModeState, ControlError> {
        self.mode.get(&0, 0).map_err(|source| ControlError::Map {
            map: names::MODE,
            source,
        })
    }

    fn set_ready(&mut self, ready: ReadyState) -> Result<(), ControlError> {
        self.ready
            .set(0, ready, 0)
            .map_err(|source| ControlError::Map {
                map: names::READY,
                source,
            })
    }

    fn set_syncookies(&mut self, value: u64) -> Result<(), ControlError> {
        Ok(self.sysctls.write(SYNCOOKIES, value)?)
    }

    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }
}

/// A running synguard: everything it changed, undone on drop.
pub struct Instance {
    iface: String,
    ebpf: Option<Ebpf>,
    link: Option<XdpLinkId>,
    pin_dir: Option<PathBuf>,
    run_info: Option<PathBuf>,
    sysctls: SysctlSaver,
    // Last: released only after everything else is undone.
    _lock: InstanceLock,
}

/// Forwards the XDP program's aya-log records to the `log` crate.
pub type ProgramLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// What `Instance::start` hands to the run loop.
pub struct Started {
    pub instance: Instance,
    pub controller: Controller<MapBackend>,
    /// Reads the program's aya-log records; None when the object has no log map.
    pub logger: Option<ProgramLogger>,
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, LoaderError> {
    ebpf.take_map(name)
        .ok_or_else(|| LoaderError::Missing(format!("map {name}")))
}

fn program_error(what: &'static str, source: ProgramError) -> LoaderError {
    if diagnose::is_permission_error(&source) {
        return LoaderError::NotPermitted {
            what: "loading the XDP program",
        };
    }
    if let ProgramError::LoadError { verifier_log, .. } = &source
        && let Some(m) = diagnose::missing_helper(&verifier_log.to_string())
    {
        return LoaderError::MissingHelper(m);
    }
    LoaderError::Program { what, source }
}

/// Tagged frames need the tag inside the frame for the SYN-ACK to carry it back.
fn warn_about_vlan_offload(iface: &str) {
    match crate::nic::rx_vlan_offload(iface) {
        Ok(true) => warn!(
            "receive VLAN offload is on for {iface}: VLAN tags are stripped before XDP, so \
             SYN-ACKs to tagged clients would leave untagged; on a VLAN trunk run \
             `ethtool -K {iface} rxvlan off`"
        ),
        Ok(false) => {}
        Err(e) => debug!("cannot read the VLAN offload flag of {iface}: {e}"),
    }
}

fn xdp_mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Driver => "native",
        XdpMode::Skb => "skb",
        XdpMode::Hardware => "hardware",
        XdpMode::Default => "default",
    }
}

impl Instance {
    /// Takes the interface: lock, sysctls, load, configure, pin, attach.
    pub fn start(cfg: &RunConfig) -> Result<Started, LoaderError> {
        let if_index = check_interface(&cfg.iface)?;
        warn_about_vlan_offload(&cfg.iface);
        let lock = InstanceLock::acquire(&cfg.run_dir, &cfg.iface)?;
        let pin_dir = cfg.pin_base.join(&cfg.iface);
        if pin_dir.exists() {
            // We hold the lock, so whoever pinned these is gone.
            info!(
                "removing {} left by a synguard that did not shut down cleanly",
                pin_dir.display()
            );
            remove_pin_dir(&pin_dir).map_err(io_err("cannot remove", &pin_dir))?;
        }
        let sysctls = Sysctls::default();
        undo_dead_instance(&cfg.run_dir.join(format!("{}.json", cfg.iface)), &sysctls);
        let mut inst = Instance {
            iface: cfg.iface.clone(),
            ebpf: None,
            link: None,
            pin_dir: None,
            run_info: None,
            sysctls: SysctlSaver::new(sysctls.clone()),
            _lock: lock,
        };
        // From here on, an error drops `inst`, which undoes whatever was done.
        let (controller, logger) = inst.setup(cfg, if_index, sysctls)?;
        Ok(Started {
            instance: inst,
            controller,
            logger,
        })
    }

    fn setup(
        &mut self,
        cfg: &RunConfig,
        if_index: u32,
        sysctls: Sysctls,
    ) -> Result<(Controller<MapBackend>, Option<ProgramLogger>), LoaderError> {
        let tcp = TcpParams::read(&sysctls)?;
        let mtu = sysctl::iface_mtu(&cfg.iface)?;
        let nr_cpus = match aya::util::nr_cpus() {
            Ok(n) => n.min(MAX_CPUS as usize) as u32,
            Err((path, e)) => {
                return Err(io_err("cannot count CPUs from", Path::new(path))(e));
            }
        };
        let config = build_config(cfg, &tcp, mtu, nr_cpus);
        if let Some(ws) = cfg.wscale.filter(|&ws| ws != tcp.wscale) {
            warn!(
                "--wscale {ws} differs from the kernel's {} for new listeners; cookie \
                 connections may stall or lose throughput",
                tcp.wscale
            );
        }
        debug!("map config: {config:?}");
        raise_memlock_limit();

        let ebpf = self.ebpf.insert(load_object()?);
        let logger = match aya_log::EbpfLogger::init(ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                warn!("XDP program log not available ({e}); continuing without it");
                None
            }
        };
        let xdp: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| LoaderError::Missing(format!("program {PROGRAM}")))?
            .try_into()
            .map_err(|source| LoaderError::Program {
                what: "use the program as XDP",
                source,
            })?;
        xdp.load()
            .map_err(|e| program_error("load the XDP program", e))?;

        write_config(ebpf, &config, &cfg.ports)?;

        // Kernel settings before the program can send a cookie: the kernel must accept them.
        self.sysctls.set(
            TIMESTAMPS,
            TIMESTAMPS_NO_OFFSET,
            "options in a cookie's timestamp decode only without the per-connection offset",
        )?;
        let current = sysctls.read_u64(SYNCOOKIES)?;
        let idle = sysctl::syncookies_at_attach(cfg.mode, current);
        self.sysctls.set(
            SYNCOOKIES,
            idle,
            match cfg.mode {
                CookieMode::Always => "always mode: the kernel must accept every cookie ACK",
                CookieMode::Auto => "auto mode: kernel cookies as fallback, 2 while XDP sends them",
            },
        )?;

        // Recorded now, before anything can crash, so a successor can undo these settings.
        let pin_dir = cfg.pin_base.join(&cfg.iface);
        self.write_run_info(cfg, &pin_dir, None, &config)?;
        let ebpf = self.ebpf.as_mut().expect("loaded above");

        // Pin before taking maps out of `ebpf`: taken maps are still the same kernel objects.
        prepare_pin_dir(&pin_dir)?;
        self.pin_dir = Some(pin_dir.clone());
        for name in PINNED_MAPS {
            let path = pin_dir.join(name);
            let map = ebpf
                .map(name)
                .ok_or_else(|| LoaderError::Missing(format!("map {name}")))?;
            map.pin(&path)
                .map_err(|source| LoaderError::Pin { name, path, source })?;
        }

        let backend = MapBackend {
            mode: Array::try_from(take_map(ebpf, names::MODE)?).map_err(|source| {
                LoaderError::Map {
                    name: names::MODE,
                    source,
                }
            })?,
            ready: Array::try_from(take_map(ebpf, names::READY)?).map_err(|source| {
                LoaderError::Map {
                    name: names::READY,
                    source,
                }
            })?,
            sysctls,
        };
        let mut controller = Controller::new(backend, cfg.mode, idle);
        controller.start()?;

        let xdp_mode = self.attach(cfg.xdp, if_index)?;
        info!(
            "synguard attached to {} ({} XDP), protecting TCP ports {:?}, {} mode",
            cfg.iface,
            xdp_mode_name(xdp_mode),
            cfg.ports,
            cfg.mode.name()
        );
        self.write_run_info(cfg, &pin_dir, Some(xdp_mode), &config)?;
        Ok((controller, logger))
    }

    fn attach(&mut self, want: XdpAttach, if_index: u32) -> Result<XdpMode, LoaderError> {
        let (first, fallback) = match want {
            XdpAttach::NativeThenSkb => (XdpMode::Driver, Some(XdpMode::Skb)),
            XdpAttach::Native => (XdpMode::Driver, None),
            XdpAttach::Skb => (XdpMode::Skb, None),
        };
        match self.attach_in(first, if_index) {
            Ok(()) => Ok(first),
            // Only a mode the driver cannot do is worth another try; a permission problem or a
            // program already attached fails the same way in every mode.
            Err(err @ LoaderError::Attach { .. }) if fallback.is_some() => {
                let fallback = fallback.expect("checked");
                info!(
                    "{:#}; falling back to {} mode",
                    anyhow::Error::from(err),
                    xdp_mode_name(fallback)
                );
                self.attach_in(fallback, if_index).map(|()| fallback)
            }
            Err(err) => Err(err),
        }
    }

    fn attach_in(&mut self, mode: XdpMode, if_index: u32) -> Result<(), LoaderError> {
        let iface = self.iface.clone();
        let result = self.xdp()?.attach_to_if_index(if_index, mode);
        match result {
            Ok(link) => {
                self.link = Some(link);
                Ok(())
            }
            Err(source) => Err(match diagnose::errno(&source) {
                Some(libc::EPERM) => LoaderError::NotPermitted {
                    what: "attaching XDP",
                },
                Some(libc::EBUSY | libc::EEXIST) => LoaderError::XdpBusy { iface },
                _ => LoaderError::Attach {
                    iface,
                    mode: xdp_mode_name(mode),
                    source,
                },
            }),
        }
    }

    fn xdp(&mut self) -> Result<&mut Xdp, LoaderError> {
        self.ebpf
            .as_mut()
            .and_then(|e| e.program_mut(PROGRAM))
            .ok_or_else(|| LoaderError::Missing(format!("program {PROGRAM}")))?
            .try_into()
            .map_err(|source| LoaderError::Program {
                what: "use the program as XDP",
                source,
            })
    }

    fn write_run_info(
        &mut self,
        cfg: &RunConfig,
        pin_dir: &Path,
        xdp_mode: Option<XdpMode>,
        config: &Config,
    ) -> Result<(), LoaderError> {
        let info = RunInfo {
            pid: std::process::id(),
            iface: &cfg.iface,
            netns: netns_of("self"),
            ports: &cfg.ports,
            mode: cfg.mode.name(),
            xdp_mode: xdp_mode.map_or("pending", xdp_mode_name),
            pin_dir,
            syn_on_pps: cfg.syn_on_pps,
            syn_off_pps: cfg.syn_off_pps,
            hold_s: cfg.hold.as_secs_f64(),
            config: ConfigInfo {
                wscale: config.wscale,
                mss_v4: config.mss_v4,
                mss_v6: config.mss_v6,
                ecn: config.ecn != 0,
                rcv_space: config.rcv_space,
                nr_cpus: config.nr_cpus,
            },
            sysctl_changes: self.sysctls.changes(),
            sysctl_originals: self.sysctls.originals(),
        };
        let path = cfg.run_dir.join(format!("{}.json", cfg.iface));
        let text = serde_json::to_string_pretty(&info).expect("run info serialises");
        fs::write(&path, text + "\n").map_err(io_err("cannot write", &path))?;
        self.run_info = Some(path);
        Ok(())
    }

    /// Undoes everything, in reverse order of setup. Idempotent; also runs on drop.
    pub fn shutdown(&mut self) {
        if let Some(link) = self.link.take() {
            match self.xdp().map(|xdp| xdp.detach(link)) {
                Ok(Ok(())) => info!("detached from {}", self.iface),
                Ok(Err(e)) => warn!("detaching from {}: {e}", self.iface),
                Err(e) => warn!("detaching from {}: {e}", self.iface),
            }
        }
        // Closing the object frees the program and every unpinned map.
        self.ebpf = None;
        if let Some(dir) = self.pin_dir.take()
            && let Err(e) = remove_pin_dir(&dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            warn!("cannot remove {}: {e}", dir.display());
        }
        // Only now that no program sends cookies may the kernel stop accepting them.
        for e in self.sysctls.restore() {
            warn!("{:#}", anyhow::Error::from(e));
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

/// A run-info file that exists while we hold the lock was left by an instance that died without
/// cleaning up (SIGKILL, crash). Put back the sysctls it changed, if it ran in our network
/// namespace; otherwise we would take its changed values for the originals and keep them forever.
fn undo_dead_instance(run_info: &Path, sysctls: &Sysctls) {
    let Ok(text) = fs::read_to_string(run_info) else {
        return;
    };
    let info: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            warn!("ignoring unreadable {}: {e}", run_info.display());
            let _ = fs::remove_file(run_info);
            return;
        }
    };
    let pid = info["pid"].as_u64().unwrap_or(0);
    if info["netns"].as_str() == netns_of("self").as_deref() {
        let originals: Vec<(String, u64)> = info["sysctl_originals"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        for (name, now, original) in
            sysctl::leftovers(&originals, |name| sysctls.read_u64(name).ok())
        {
            match sysctls.write(name, original) {
                Ok(()) => info!(
                    "{name}: {now} -> {original} (restored after synguard pid {pid}, which did \
                     not shut down cleanly)"
                ),
                Err(e) => warn!("{:#}", anyhow::Error::from(e)),
            }
        }
    }
    let _ = fs::remove_file(run_info);
}

fn load_object() -> Result<Ebpf, LoaderError> {
    EbpfLoader::new().load(objects::synguard()).map_err(|e| {
        if diagnose::is_permission_error(&e) {
            LoaderError::NotPermitted {
                what: "creating BPF maps",
            }
        } else {
            LoaderError::Load(e)
        }
    })
}

fn write_config(ebpf: &mut Ebpf, config: &Config, ports: &[u16]) -> Result<(), LoaderError> {
    let map_err = |name| move |source| LoaderError::Map { name, source };
    let mut cfg_map: Array<_, Config> = Array::try_from(
        ebpf.map_mut(names::CONFIG)
            .ok_or_else(|| LoaderError::Missing(format!("map {}", names::CONFIG)))?,
    )
    .map_err(map_err(names::CONFIG))?;
    cfg_map.set(0, config, 0).map_err(map_err(names::CONFIG))?;

    let mut port_map: Array<_, PortConfig> = Array::try_from(
        ebpf.map_mut(names::PORTS)
            .ok_or_else(|| LoaderError::Missing(format!("map {}", names::PORTS)))?,
    )
    .map_err(map_err(names::PORTS))?;
    for &port in ports {
        port_map
            .set(
                port as u32,
                PortConfig {
                    flags: PORT_PROTECTED,
                },
                0,
            )
            .map_err(map_err(names::PORTS))?;
    }
    Ok(())
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones ignore it. Raising it is
/// harmless either way, and failing to is only worth a note.
fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        debug!(
            "cannot raise RLIMIT_MEMLOCK: {}",
            io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CookieMode, XdpAttach};

    fn run_config() -> RunConfig {
        RunConfig {
            iface: "a".into(),
            ports: vec![80],
            mode: CookieMode::Auto,
            syn_on_pps: 1000,
            syn_off_pps: 500,
            hold: Duration::from_secs(10),
            xdp: XdpAttach::NativeThenSkb,
            wscale: None,
            pin_base: PathBuf::from(DEFAULT_PIN_BASE),
            run_dir: PathBuf::from(DEFAULT_RUN_DIR),
        }
    }

    #[test]
    fn config_from_kernel_settings() {
        let tcp = TcpParams {
            wscale: 10,
            rcv_space: 65536,
            ecn: true,
        };
        let c = build_config(&run_config(), &tcp, 1500, 2);
        assert_eq!(c.mode, MODE_AUTO);
        assert_eq!((c.wscale, c.mss_v4, c.mss_v6), (10, 1460, 1440));
        assert_eq!((c.ecn, c.rcv_space, c.nr_cpus), (1, 65536, 2));
        assert_eq!((c.syn_on_pps, c.syn_off_pps), (1000, 500));
        assert_eq!(c.hold_ns, 10_000_000_000);
        assert_eq!(c.refresh_ns, 1_000_000_000);
    }

    #[test]
    fn config_overrides_and_bounds() {
        let tcp = TcpParams {
            wscale: 10,
            rcv_space: 65536,
            ecn: false,
        };
        let mut rc = run_config();
        rc.mode = CookieMode::Always;
        rc.wscale = Some(7);
        let c = build_config(&rc, &tcp, 9000, 1000);
        assert_eq!(c.mode, MODE_ALWAYS);
        assert_eq!(c.wscale, 7);
        assert_eq!(c.ecn, 0);
        assert_eq!(c.nr_cpus, MAX_CPUS);
        assert_eq!(c.mss_v4, 8960);
    }

    #[test]
    fn lock_is_exclusive_and_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("synguard-lock-{}", std::process::id()));
        let first = InstanceLock::acquire(&dir, "veth0").unwrap();
        let pid = std::process::id().to_string();
        assert_eq!(
            fs::read_to_string(dir.join("veth0.lock")).unwrap().trim(),
            pid
        );
        // flock locks belong to the open file description, so a second open in the same process
        // conflicts just like another process would.
        match InstanceLock::acquire(&dir, "veth0") {
            Err(e @ LoaderError::AlreadyRunning { .. }) => {
                assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        // Another interface is independent.
        let other = InstanceLock::acquire(&dir, "veth1").unwrap();
        drop(first);
        assert!(!dir.join("veth0.lock").exists());
        let again = InstanceLock::acquire(&dir, "veth0").unwrap();
        drop((again, other));
        fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn missing_interface_lists_the_ones_that_exist() {
        let e = check_interface("nosuch-sg0").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("no interface 'nosuch-sg0'"), "{text}");
        assert!(text.contains("lo"), "{text}");
        assert!(check_interface("lo").is_ok());
    }
}
