//! What an instance settles before it loads anything: the interface's facts, the config map's
//! contents from the host (`host::facts`), and the kernel settings cookies need.

use std::path::Path;

use log::{debug, info, warn};
use synguard_common::maps::{Config, MAX_CPUS};
use thiserror::Error;

use crate::{
    config::{CookieMode, RunConfig},
    daemon::{mode::ControlError, nic_gate::NicRefusal},
    datapath::{
        config_map::build_config,
        error::{LoaderError, io_err},
        maps::PinnedMapError,
        pins::PinError,
    },
    host::{
        btf,
        facts::{HostFacts, HostTables},
        netfilter::InputFilter,
        nic::{self, NoSuchInterface},
        sysctl::{
            self, SYNCOOKIES, SysctlError, SysctlSaver, Sysctls, TIMESTAMPS, TIMESTAMPS_NO_OFFSET,
        },
    },
    state::lock::LockError,
};

/// Why an interface could not be taken; each names what was being done.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Iface(#[from] NoSuchInterface),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Io(#[from] crate::host::io::PathError),
    #[error(transparent)]
    Nic(#[from] NicRefusal),
    #[error(transparent)]
    Own(#[from] crate::daemon::own_cookies::OwnError),
}

impl From<PinError> for StartError {
    fn from(e: PinError) -> Self {
        StartError::Loader(e.into())
    }
}

impl From<PinnedMapError> for StartError {
    fn from(e: PinnedMapError) -> Self {
        StartError::Loader(e.into())
    }
}

/// Tagged frames need the tag inside the frame for the SYN-ACK to carry it back. Only worth a
/// warning where tagged traffic arrives: a VLAN device sits on the interface. (Without one the
/// kernel drops tagged frames anyway; a trunk bridged elsewhere is not visible from here.)
pub fn warn_about_vlan_offload(iface: &str) {
    let vlans = nic::vlan_devices_on(iface);
    if vlans.is_empty() {
        return;
    }
    match nic::rx_vlan_offload(iface) {
        Ok(true) => warn!(
            "receive VLAN offload is on for {iface}, which carries VLAN {}: tags are stripped \
             before XDP, so SYN-ACKs to tagged clients would leave untagged; run \
             `ethtool -K {iface} rxvlan off`",
            vlans.join(", ")
        ),
        Ok(false) => {}
        Err(e) => debug!("cannot read the VLAN offload flag of {iface}: {e}"),
    }
}

/// The host's packet filter on the way in, said once at attach: a warning where its rules can
/// drop or reject, since synguard answers SYNs before them (`host::netfilter`).
pub fn log_netfilter(iface: &str) {
    match InputFilter::read() {
        Ok(f) => {
            if let Some(text) = f.text() {
                warn!(
                    "{iface}: netfilter filters what comes in: {text}; {}",
                    InputFilter::ADVICE
                );
            }
        }
        Err(e) => debug!("cannot read the netfilter rules: {e}"),
    }
}

/// The reverse-path filter as the program applies it, said once at attach: a warning where it
/// cannot follow the kernel's (`host::reverse_path`).
pub fn log_reverse_path(iface: &str, facts: &HostFacts) {
    let check = &facts.reverse_path;
    match check.text() {
        Some(text) if check.is_unchecked() => warn!("{iface}: {text}"),
        Some(text) => info!("{iface}: {text}"),
        None => {}
    }
}

/// The config map's contents, from the run configuration and the host (`HostFacts`, also
/// returned: `daemon::instance::host_follow` compares later readings with it), and what the
/// program's tries need for it (`HostTables`).
pub fn kernel_config(
    cfg: &RunConfig,
    iface: &str,
) -> Result<(Config, HostFacts, HostTables), StartError> {
    let (facts, tables) = HostFacts::read(iface, &Sysctls::default())?;
    let nr_cpus = match aya::util::nr_cpus() {
        Ok(n) => n.min(MAX_CPUS as usize) as u32,
        Err((path, e)) => {
            return Err(
                LoaderError::from(io_err("cannot count CPUs from", Path::new(path))(e)).into(),
            );
        }
    };
    if facts.mac.is_none() {
        warn!("cannot read the MAC address of {iface}; answering any unicast SYN");
    }
    info!(
        "{iface}: segments to protected ports are the host's when addressed to {} (others are \
         forwarded traffic and pass untouched)",
        facts.local.text()
    );
    let mut config = build_config(cfg, &facts, nr_cpus);
    config.reqsk_isn_off = btf::request_isn_offset();
    if let Some(ws) = cfg.wscale.filter(|&ws| ws != facts.tcp.wscale) {
        warn!(
            "--wscale {ws} differs from the kernel's {} for new listeners; cookie connections \
             may stall or lose throughput",
            facts.tcp.wscale
        );
    }
    debug!("map config: {config:?}");
    Ok((config, facts, tables))
}

/// Kernel settings before the program can send a cookie: the kernel must accept them. Returns
/// the `tcp_syncookies` value the controller goes back to when cookies go off.
pub fn set_sysctls(
    mode: CookieMode,
    saver: &mut SysctlSaver,
    adopting_cookies: bool,
) -> Result<u64, SysctlError> {
    saver.hold(
        TIMESTAMPS,
        TIMESTAMPS_NO_OFFSET,
        "options in a cookie's timestamp decode only without the per-connection offset",
    )?;
    let original = match saver.original(SYNCOOKIES) {
        Some(v) => v,
        None => Sysctls::default().read_u64(SYNCOOKIES)?,
    };
    let idle = sysctl::syncookies_at_attach(mode, original);
    match (mode, adopting_cookies) {
        // Held at 2 all the time (`daemon::guard::keep_settings`); auto mode's only while the
        // controller has cookies on.
        (CookieMode::Always, _) => {
            saver.hold(
                SYNCOOKIES,
                idle,
                "always mode: the kernel must accept every cookie ACK",
            )?;
        }
        // Cookies are on right now (a flood): the kernel must keep accepting them; the
        // controller puts the idle value back when the flood ends.
        (CookieMode::Auto, true) => saver.remember(SYNCOOKIES)?,
        (CookieMode::Auto, false) => {
            saver.set(
                SYNCOOKIES,
                idle,
                "auto mode: kernel cookies as fallback, 2 while XDP sends them",
            )?;
        }
    }
    Ok(idle)
}
