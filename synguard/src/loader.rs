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
    programs::{ProgramError, Xdp, XdpMode},
};
use log::{debug, info, warn};
use serde::Serialize;
use synguard_common::maps::{
    Config, MAX_CPUS, MODE_ALWAYS, MODE_AUTO, ModeState, PORT_PROTECTED, PortConfig, ReadyState,
    names,
};
use thiserror::Error;

use crate::{
    config::{CookieMode, RunConfig},
    diagnose::{self, MissingHelper},
    link::{self, Attachment, How},
    mode::{Backend, ControlError, Controller, monotonic_ns},
    objects, pin,
    sysctl::{
        self, SYNCOOKIES, SyncookieVotes, SysctlChange, SysctlError, SysctlSaver, Sysctls,
        TIMESTAMPS, TIMESTAMPS_NO_OFFSET, TcpParams,
    },
};

/// Where instances keep their lock and run-info files.
pub const DEFAULT_RUN_DIR: &str = "/run/synguard";
/// The XDP program's name in the object.
pub const PROGRAM: &str = "synguard";
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
    #[error("cannot pin {name} at {}", path.display())]
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
    #[error(transparent)]
    PinDir(#[from] crate::pin::PinError),
    #[error(
        "this kernel attached XDP to {iface} without a BPF link (Linux 5.9+ needed): synguard \
         needs a pinned link so that protection survives restarts"
    )]
    NoXdpLink { iface: String },
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
        // Filled in from the interface and the kernel by the caller (`nic::hw_addr`,
        // `request_isn_offset`).
        own_mac: [0; 6],
        loopback: 0,
        _pad_mac: 0,
        reqsk_isn_off: 0,
        _pad_isn: 0,
    }
}

/// Where the running kernel's request sockets keep their ISN (`tcp_request_sock.snt_isn`, from
/// its BTF), so the program can drop ACKs the kernel would answer with an RST (issue 9). 0 when
/// unknown: those ACKs then pass as before.
fn request_isn_offset() -> u32 {
    let off = fs::read("/sys/kernel/btf/vmlinux")
        .ok()
        .and_then(|btf| synguard_common::btf::member_offset(&btf, b"tcp_request_sock", b"snt_isn"));
    off.unwrap_or_else(|| {
        warn!("no kernel BTF for tcp_request_sock; ACKs to half-open handshakes pass unchecked");
        0
    })
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

/// What `synguard status` and a successor learn about an instance without touching BPF:
/// `<run_dir>/<iface>.json`. It stays after a kill -9 or a hand-over, for the next `run` to adopt
/// and for `detach` to undo.
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
    /// Unix time (seconds) this instance took the interface.
    pub started_unix_s: u64,
    /// "fresh" or "replaced" (took over a pinned link without a gap).
    pub attach: &'static str,
}

/// The parts of a previous instance's run-info a successor needs.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PrevRun {
    pub pid: u32,
    pub netns: Option<String>,
    #[serde(default)]
    pub xdp_mode: String,
    #[serde(default)]
    pub sysctl_originals: std::collections::BTreeMap<String, u64>,
}

impl PrevRun {
    /// None when there is no file; an unreadable one is reported and ignored.
    pub fn read(path: &Path) -> Option<PrevRun> {
        let text = fs::read_to_string(path).ok()?;
        match serde_json::from_str(&text) {
            Ok(p) => Some(p),
            Err(e) => {
                warn!("ignoring unreadable {}: {e}", path.display());
                None
            }
        }
    }

    /// Its kernel settings are ours to restore only if it ran in our network namespace.
    pub fn same_netns(&self) -> bool {
        self.netns.is_some() && self.netns == netns_of("self")
    }

    pub fn originals(&self) -> Vec<(String, u64)> {
        self.sysctl_originals
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
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
    iface: String,
    mode: Array<MapData, ModeState>,
    ready: Array<MapData, ReadyState>,
    syncookies: SyncookieVotes,
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
        Ok(self.syncookies.set(&self.iface, value)?)
    }

    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }
}

/// A guarded interface: everything synguard put in place for it, undone on drop unless handed
/// over. The kernel settings are the process's (`SysctlSaver`), shared by all interfaces.
pub struct Instance {
    iface: String,
    ebpf: Option<Ebpf>,
    link: Option<Attachment>,
    pin_dir: Option<PathBuf>,
    run_info: Option<PathBuf>,
    /// Leave link, pins and run-info for a successor (hand-over, or a failed take-over while
    /// the previous program still protects the interface).
    leave_in_place: bool,
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

impl Instance {
    /// Takes the interface: lock, adopt what a previous instance left, load, configure, pin,
    /// attach (or replace the program behind the pinned link).
    pub fn start(
        cfg: &RunConfig,
        iface: &str,
        saver: &mut SysctlSaver,
        syncookies: SyncookieVotes,
    ) -> Result<Started, LoaderError> {
        let if_index = check_interface(iface)?;
        warn_about_vlan_offload(iface);
        let lock = InstanceLock::acquire(&cfg.run_dir, iface)?;
        let run_info = cfg.run_dir.join(format!("{iface}.json"));
        let prev = PrevRun::read(&run_info).filter(|p| {
            // Settings changed in another namespace are not ours to restore.
            p.same_netns() || {
                warn!(
                    "{iface}: ignoring {} from another network namespace",
                    run_info.display()
                );
                false
            }
        });
        if let Some(p) = &prev {
            info!(
                "{iface}: taking over from synguard pid {} (it exited without detaching); the \
                 kernel settings it changed will be restored when this one detaches",
                p.pid
            );
            saver.adopt(&p.originals());
        }
        let pin_dir = cfg.pin_base.join(iface);
        let mut inst = Instance {
            iface: iface.to_string(),
            ebpf: None,
            link: None,
            pin_dir: None,
            run_info: None,
            // A program left behind keeps protecting if we fail before replacing it.
            leave_in_place: pin_dir.join(pin::LINK).exists(),
            _lock: lock,
        };
        // From here on, an error drops `inst`, which undoes whatever was done.
        let (controller, logger) = inst.setup(cfg, if_index, &pin_dir, prev, saver, syncookies)?;
        Ok(Started {
            instance: inst,
            controller,
            logger,
        })
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    fn setup(
        &mut self,
        cfg: &RunConfig,
        if_index: u32,
        pin_dir: &Path,
        prev: Option<PrevRun>,
        saver: &mut SysctlSaver,
        syncookies: SyncookieVotes,
    ) -> Result<(Controller<MapBackend>, Option<ProgramLogger>), LoaderError> {
        let iface = self.iface.clone();
        let sysctls = Sysctls::default();
        let tcp = TcpParams::read(&sysctls)?;
        let mtu = sysctl::iface_mtu(&iface)?;
        let nr_cpus = match aya::util::nr_cpus() {
            Ok(n) => n.min(MAX_CPUS as usize) as u32,
            Err((path, e)) => {
                return Err(io_err("cannot count CPUs from", Path::new(path))(e));
            }
        };
        let mut config = build_config(cfg, &tcp, mtu, nr_cpus);
        // SYNs to another destination MAC are not the host's (issue 9); unknown: fail open.
        match crate::nic::hw_addr(&iface) {
            Ok((mac, loopback)) => (config.own_mac, config.loopback) = (mac, loopback as u8),
            Err(e) => {
                warn!("cannot read the MAC address of {iface} ({e}); answering any unicast SYN")
            }
        }
        config.reqsk_isn_off = request_isn_offset();
        if let Some(ws) = cfg.wscale.filter(|&ws| ws != tcp.wscale) {
            warn!(
                "--wscale {ws} differs from the kernel's {} for new listeners; cookie \
                 connections may stall or lose throughput",
                tcp.wscale
            );
        }
        debug!("map config: {config:?}");
        raise_memlock_limit();

        pin::prepare_dir(pin_dir)?;
        self.pin_dir = Some(pin_dir.to_path_buf());
        let layouts = pin::object_layouts(objects::synguard())
            .map_err(|e| LoaderError::Missing(format!("readable map definitions ({e})")))?;
        let kept = reconcile_pins(&iface, pin_dir, &layouts)?;
        // Whether a previous program has cookies on right now, from its pinned READY map.
        let ready_now = if kept.iter().any(|n| n == names::READY) {
            read_pinned_ready(&pin_dir.join(names::READY))?
        } else {
            ReadyState::default()
        };
        let adopting_cookies = ready_now.kernel_ready != 0;

        // Kernel settings before the program can send a cookie: the kernel must accept them.
        saver.set(
            TIMESTAMPS,
            TIMESTAMPS_NO_OFFSET,
            "options in a cookie's timestamp decode only without the per-connection offset",
        )?;
        let original = match saver.original(SYNCOOKIES) {
            Some(v) => v,
            None => sysctls.read_u64(SYNCOOKIES)?,
        };
        let idle = sysctl::syncookies_at_attach(cfg.mode, original);
        if adopting_cookies {
            // Cookies are on right now (a flood in auto mode): the kernel must keep accepting
            // them; the controller puts the idle value back when the flood ends.
            saver.remember(SYNCOOKIES)?;
        } else {
            saver.set(
                SYNCOOKIES,
                idle,
                match cfg.mode {
                    CookieMode::Always => "always mode: the kernel must accept every cookie ACK",
                    CookieMode::Auto => {
                        "auto mode: kernel cookies as fallback, 2 while XDP sends them"
                    }
                },
            )?;
        }

        // Maps are pinned while loading, and a pinned map is what `stats` waits for: the
        // kernel settings above come first, so whoever sees the maps sees them in effect.
        let ebpf = self.ebpf.insert(load_object(pin_dir, &layouts)?);
        let logger = match aya_log::EbpfLogger::init(ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                warn!("XDP program log not available ({e}); continuing without it");
                None
            }
        };
        let xdp = program_of(ebpf)?;
        xdp.load()
            .map_err(|e| program_error("load the XDP program", e))?;

        // The maps may be the running program's: the new config applies to it at once.
        write_config(
            ebpf,
            &config,
            &cfg.ports,
            kept.iter().any(|n| n == names::PORTS),
        )?;

        // Recorded now, before anything can crash, so a successor can undo these settings.
        let prev_mode = prev.map(|p| p.xdp_mode);
        self.write_run_info(cfg, pin_dir, None, "pending", &config, saver)?;
        let ebpf = self.ebpf.as_mut().expect("loaded above");
        let backend = MapBackend {
            iface: iface.clone(),
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
            syncookies,
        };
        let mut controller = Controller::new(backend, cfg.mode, idle).named(&iface);
        controller.resume(if adopting_cookies {
            Some(ready_now)
        } else {
            None
        })?;

        let (att, xdp_mode, how) = link::attach(
            program_of(ebpf)?,
            &iface,
            if_index,
            cfg.xdp,
            &pin_dir.join(pin::LINK),
            prev_mode.as_deref(),
        )?;
        self.link = Some(att);
        self.leave_in_place = false;
        // Last: readers (`stats`, `status`, a waiting test) accept the directory only once it
        // is marked, i.e. once the maps hold this configuration and the program is attached.
        pin::mark_schema(pin_dir)?;
        let (verb, attach) = match how {
            How::Fresh => ("attached to", "fresh"),
            How::Replaced => ("replaced the running program on", "replaced"),
        };
        info!(
            "synguard {verb} {iface} ({} XDP), protecting TCP ports {:?}, {} mode",
            link::mode_name(xdp_mode),
            cfg.ports,
            cfg.mode.name()
        );
        self.write_run_info(cfg, pin_dir, Some(xdp_mode), attach, &config, saver)?;
        Ok((controller, logger))
    }

    fn write_run_info(
        &mut self,
        cfg: &RunConfig,
        pin_dir: &Path,
        xdp_mode: Option<XdpMode>,
        attach: &'static str,
        config: &Config,
        saver: &SysctlSaver,
    ) -> Result<(), LoaderError> {
        let info = RunInfo {
            pid: std::process::id(),
            iface: &self.iface,
            netns: netns_of("self"),
            ports: &cfg.ports,
            mode: cfg.mode.name(),
            xdp_mode: xdp_mode.map_or("pending", link::mode_name),
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
            sysctl_changes: saver.changes(),
            sysctl_originals: saver.originals(),
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            attach,
        };
        let path = cfg.run_dir.join(format!("{}.json", self.iface));
        let text = serde_json::to_string_pretty(&info).expect("run info serialises");
        // Write-then-rename: a reader (status, a successor after a crash) never sees half a file.
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, text + "\n").map_err(io_err("cannot write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("cannot write", &path))?;
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
        // Closing the object frees the program and every unpinned map.
        self.ebpf = None;
        if let Some(dir) = self.pin_dir.take()
            && let Err(e) = pin::remove_dir(&dir)
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

/// Puts back the kernel settings a previous instance recorded (in its run-info) and left
/// changed, if it ran in our network namespace. For `detach` after a kill -9 or a hand-over.
pub fn restore_recorded_sysctls(prev: &PrevRun, sysctls: &Sysctls) -> Vec<String> {
    let mut done = Vec::new();
    if !prev.same_netns() {
        warn!("not restoring kernel settings: they were changed in another network namespace");
        return done;
    }
    let originals = prev.originals();
    for (name, now, original) in sysctl::leftovers(&originals, |name| sysctls.read_u64(name).ok()) {
        match sysctls.write(name, original) {
            Ok(()) => done.push(format!("{name}: {now} -> {original}")),
            Err(e) => warn!("{:#}", anyhow::Error::from(e)),
        }
    }
    done
}

/// Removes the pins that cannot be reused (another schema, another layout) and says so; returns
/// the names kept, whose contents the new program inherits.
fn reconcile_pins(
    iface: &str,
    dir: &Path,
    layouts: &std::collections::BTreeMap<String, pin::Layout>,
) -> Result<Vec<String>, LoaderError> {
    let pinned = pin::pinned_maps(dir)?;
    let plan = match pin::inspect(dir)? {
        pin::Found::Other(found) => {
            warn!(
                "{iface}: state in {} has schema {found}, this synguard {}: counters and state \
                 reset",
                dir.display(),
                pin::SCHEMA_VERSION
            );
            pin::Reuse {
                kept: Vec::new(),
                reset: pinned
                    .keys()
                    .map(|n| (n.clone(), "other schema".to_string()))
                    .collect(),
            }
        }
        _ => pin::plan_reuse(layouts, &pinned),
    };
    for (name, why) in &plan.reset {
        let path = dir.join(name);
        fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
        warn!("{iface}: {name} reset ({why})");
    }
    if !plan.kept.is_empty() {
        info!(
            "{iface}: carrying over counters and state from the previous program ({})",
            plan.kept.join(", ")
        );
    }
    Ok(plan.kept)
}

fn program_of(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoaderError> {
    ebpf.program_mut(PROGRAM)
        .ok_or_else(|| LoaderError::Missing(format!("program {PROGRAM}")))?
        .try_into()
        .map_err(|source| LoaderError::Program {
            what: "use the program as XDP",
            source,
        })
}

fn read_pinned_ready(path: &Path) -> Result<ReadyState, LoaderError> {
    let name = names::READY;
    let err = |source| LoaderError::Map { name, source };
    let map = Map::from_map_data(MapData::from_pin(path).map_err(err)?).map_err(err)?;
    let array: Array<_, ReadyState> = Array::try_from(map).map_err(err)?;
    array.get(&0, 0).map_err(err)
}

/// Loads the object with every shareable map pinned in `dir`: aya opens a pin that exists (its
/// contents carry over) and creates and pins one that does not.
fn load_object(
    dir: &Path,
    layouts: &std::collections::BTreeMap<String, pin::Layout>,
) -> Result<Ebpf, LoaderError> {
    let mut loader = EbpfLoader::new();
    for name in layouts.keys() {
        loader.map_pin_path(name.as_str(), dir.join(name));
    }
    loader.load(objects::synguard()).map_err(|e| {
        if diagnose::is_permission_error(&e) {
            LoaderError::NotPermitted {
                what: "creating BPF maps",
            }
        } else {
            LoaderError::Load(e)
        }
    })
}

fn write_config(
    ebpf: &mut Ebpf,
    config: &Config,
    ports: &[u16],
    inherited_ports: bool,
) -> Result<(), LoaderError> {
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
    sync_ports(&mut port_map, ports, inherited_ports).map_err(map_err(names::PORTS))
}

/// Protects `ports` in the port map; with `clear_others`, then unprotects every port not among
/// them (a map inherited from a previous run, or a reload). New ports first, then the ones no
/// longer wanted: no port that stays protected is ever off. `ports` must be sorted.
pub fn sync_ports<T: std::borrow::BorrowMut<MapData>>(
    port_map: &mut Array<T, PortConfig>,
    ports: &[u16],
    clear_others: bool,
) -> Result<(), MapError> {
    for &port in ports {
        port_map.set(
            port as u32,
            PortConfig {
                flags: PORT_PROTECTED,
            },
            0,
        )?;
    }
    if clear_others {
        for port in 0..=u16::MAX {
            let flags = port_map.get(&(port as u32), 0)?.flags;
            if flags != 0 && ports.binary_search(&port).is_err() {
                port_map.set(port as u32, PortConfig { flags: 0 }, 0)?;
                info!("port {port} no longer protected");
            }
        }
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
            ifaces: vec!["a".into()],
            ports: vec![80],
            mode: CookieMode::Auto,
            syn_on_pps: 1000,
            syn_off_pps: 500,
            hold: Duration::from_secs(10),
            xdp: XdpAttach::NativeThenSkb,
            wscale: None,
            metrics_addr: None,
            log_format: crate::cli::LogFormat::Human,
            pin_base: PathBuf::from(crate::pin::DEFAULT_PIN_BASE),
            run_dir: PathBuf::from(DEFAULT_RUN_DIR),
            limits: Default::default(),
            allow: Vec::new(),
            block: Vec::new(),
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
