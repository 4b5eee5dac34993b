//! Which cookies an interface gets, and own cookies' start and key rotation: the decision for
//! `--cookies auto|kernel|own` (logged with its reason), the TC program attached, the key put in
//! its map (docs/own-cookies.md).

use aya::Ebpf;
use log::info;
use synguard_common::maps::{COOKIES_OWN, OWN_NO_SACK, OWN_NO_TIMESTAMPS, OWN_NO_WSCALE};
use thiserror::Error;

use crate::{
    config::{Cookies, RunConfig},
    datapath::{
        error::LoaderError,
        own::{self, SecretMap},
    },
    host::{
        secret::{self, Key, SecretError},
        sysctl::{SYNCOOKIES, SysctlError, Sysctls},
    },
};

#[derive(Debug, Error)]
pub enum OwnError {
    #[error("--cookies own: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
}

/// Why own cookies cannot work here, or None: the kernel function must exist, and the kernel
/// looks at a handed-over request socket only while `tcp_syncookies` is not 0
/// (`cookie_v4_check` returns early otherwise).
fn own_unsupported(sysctls: &Sysctls) -> Result<Option<String>, SysctlError> {
    if let Some(why) = own::unsupported_because() {
        return Ok(Some(why));
    }
    if sysctls.read_u64(SYNCOOKIES)? == 0 {
        return Ok(Some(
            "net.ipv4.tcp_syncookies is 0, and own cookies change no kernel setting".into(),
        ));
    }
    Ok(None)
}

/// Whether `iface` gets own cookies; says which and why.
pub fn decide(cfg: &RunConfig, iface: &str) -> Result<bool, OwnError> {
    let sysctls = Sysctls::default();
    let own = match (cfg.cookies, own_unsupported(&sysctls)?) {
        (Cookies::Kernel, _) => {
            info!("{iface}: kernel cookies (--cookies kernel)");
            false
        }
        (Cookies::Own, Some(why)) => return Err(OwnError::Unsupported(why)),
        (Cookies::Own, None) => {
            info!("{iface}: own cookies (--cookies own)");
            true
        }
        (Cookies::Auto, Some(why)) => {
            info!("{iface}: kernel cookies (--cookies auto: {why})");
            false
        }
        (Cookies::Auto, None) => {
            info!(
                "{iface}: own cookies (--cookies auto: the kernel has {}; no kernel setting \
                 changes)",
                own::REQSK_KFUNC
            );
            true
        }
    };
    Ok(own)
}

/// `Config::cookies` for own cookies on this host: the mode with a flag for each option the
/// host's TCP has switched off.
pub fn config_value() -> Result<u32, SysctlError> {
    let sysctls = Sysctls::default();
    let mut v = COOKIES_OWN;
    for (key, flag) in [
        ("net.ipv4.tcp_timestamps", OWN_NO_TIMESTAMPS),
        ("net.ipv4.tcp_sack", OWN_NO_SACK),
        ("net.ipv4.tcp_window_scaling", OWN_NO_WSCALE),
    ] {
        if sysctls.read_u64(key)? == 0 {
            v |= flag;
        }
    }
    Ok(v)
}

/// The key the configuration asks for: the file's, or a fresh random one.
pub fn key(cfg: &RunConfig) -> Result<Key, SecretError> {
    match &cfg.cookie_secret_file {
        Some(path) => secret::read_key_file(path),
        None => secret::random_key(),
    }
}

/// With the program loaded: puts the key in its map, loads the own-cookie XDP program and
/// attaches the TC program (its link pinned at `tc_pin`). A key a previous program left (a
/// take-over) stays in use, so that handshakes in flight complete; a secret file's key replaces
/// it by rotation.
pub fn start(
    ebpf: &mut Ebpf,
    iface: &str,
    cfg: &RunConfig,
    tc_pin: &std::path::Path,
) -> Result<SecretMap, OwnError> {
    let mut map = SecretMap::take(ebpf)?;
    let from = match (&cfg.cookie_secret_file, map.current()?) {
        (Some(p), Some(_)) => {
            map.rotate(key(cfg)?)?;
            format!(
                "from {} (the previous program's kept one more slot)",
                p.display()
            )
        }
        (Some(p), None) => {
            map.install(key(cfg)?)?;
            format!("from {}", p.display())
        }
        (None, Some(_)) => "carried over from the previous program".into(),
        (None, None) => {
            map.install(key(cfg)?)?;
            "random for this run".into()
        }
    };
    own::load_own_xdp(ebpf)?;
    own::attach_tc(ebpf, iface, tc_pin)?;
    info!("{iface}: TC ingress program attached; cookie secret {from}");
    Ok(map)
}

/// Says once, loudly, when the interface's driver turned out to carry no XDP metadata: valid
/// own-cookie ACKs then reach the kernel unmarked and their handshakes fail. Returns whether it
/// has said so (nothing more to watch).
pub fn warn_if_meta_unsupported(iface: &str, pin_dir: &std::path::Path) -> bool {
    use synguard_common::reason::Event;
    match crate::datapath::counters::read_sample(pin_dir) {
        Ok(s) if s.event(Event::OwnMetaUnsupported) > 0 => {
            log::warn!(
                "{iface}: the driver carries no XDP metadata ({} cookie ACKs could not be \
                 marked, their handshakes failed): switching to the TC program that checks \
                 cookies again ({}); every packet to a protected port now pays a parse in TC",
                s.event(Event::OwnMetaUnsupported),
                crate::datapath::own::TC_CHECK_PROGRAM
            );
            true
        }
        _ => false,
    }
}

/// On reload: the file's key if it changed, else (no file) a fresh random one; the previous
/// key stays valid one more time slot.
pub fn rotate(map: &mut SecretMap, iface: &str, cfg: &RunConfig) -> Result<(), OwnError> {
    if map.rotate(key(cfg)?)? {
        info!("{iface}: cookie secret rotated; the previous one is accepted for one more slot");
    }
    Ok(())
}
