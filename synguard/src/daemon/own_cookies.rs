//! Which cookies an interface gets, and own cookies' start and key rotation: the decision for
//! `--cookies auto|kernel|own` (logged with its reason), the TC program attached, the key put in
//! its map (docs/own-cookies.md).

use aya::Ebpf;
use log::{info, warn};
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
        tuning::Finding,
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

/// `synguard doctor`'s word on own cookies: whether `--cookies auto` will get them here, and
/// what the kernel's cookies cost instead.
pub fn doctor_finding(sysctls: &Sysctls) -> Finding {
    let obstacle = own_unsupported(sysctls).unwrap_or_else(|e| Some(e.to_string()));
    own_finding(obstacle.as_deref())
}

fn own_finding(obstacle: Option<&str>) -> Finding {
    Finding {
        check: "own cookies".into(),
        current: match obstacle {
            None => "available".into(),
            Some(why) => format!("unavailable: {why}"),
        },
        recommended: "available".into(),
        ok: obstacle.is_none(),
        why: format!(
            "--cookies auto (the default) uses synguard's own cookies where the kernel has {} \
             (Linux 6.9+): no kernel setting changes, window scaling and SACK without \
             timestamps; otherwise the kernel's cookies, with tcp_syncookies and \
             tcp_timestamps at 2 while attached",
            own::REQSK_KFUNC
        ),
        apply: None,
    }
}

/// Which cookies an interface gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The kernel's, and the log line's words for why.
    Kernel(String),
    Own,
}

/// Pure: what `--cookies` asked for and what stands in the way of own cookies (None: nothing
/// known yet) decide. `auto` falls back to the kernel's cookies; `own` refuses to start.
pub fn choose(requested: Cookies, obstacle: Option<&str>) -> Result<Choice, OwnError> {
    match (requested, obstacle) {
        (Cookies::Kernel, _) => Ok(Choice::Kernel("kernel cookies (--cookies kernel)".into())),
        (Cookies::Own, Some(why)) => Err(OwnError::Unsupported(why.to_string())),
        (Cookies::Auto, Some(why)) => Ok(Choice::Kernel(format!(
            "own cookies unavailable: {why}; using kernel cookies (--cookies auto)"
        ))),
        (Cookies::Own | Cookies::Auto, None) => Ok(Choice::Own),
    }
}

/// Before anything is loaded: whether `iface` is to try own cookies. A kernel choice is logged
/// here; own cookies are logged once they are in place (`announce_own`), since the kernel may
/// still refuse their programs (`fall_back`).
pub fn decide(cfg: &RunConfig, iface: &str) -> Result<Choice, OwnError> {
    let obstacle = match cfg.cookies {
        Cookies::Kernel => None,
        _ => own_unsupported(&Sysctls::default())?,
    };
    let choice = choose(cfg.cookies, obstacle.as_deref())?;
    if let Choice::Kernel(line) = &choice {
        info!("{iface}: {line}");
    }
    Ok(choice)
}

/// Own cookies are in place: says so, and why.
pub fn announce_own(cfg: &RunConfig, iface: &str) {
    info!(
        "{iface}: own cookies (--cookies {}: the kernel has {} and accepted the programs; no \
         kernel setting changes)",
        cfg.cookies.name(),
        own::REQSK_KFUNC
    );
}

/// `start` failed: where the kernel refused something (a program, the TC attachment), `auto`
/// falls back to the kernel's cookies (logged, with the reason in one line) and `own` fails
/// with that reason. A secret file that cannot be used is the operator's to fix: an error
/// either way.
pub fn fall_back(cfg: &RunConfig, iface: &str, failure: OwnError) -> Result<Choice, OwnError> {
    let why = match &failure {
        OwnError::Unsupported(why) => why.clone(),
        OwnError::Loader(e) => with_sources(e),
        OwnError::Secret(_) | OwnError::Sysctl(_) => return Err(failure),
    };
    let choice = choose(cfg.cookies, Some(&why))?;
    if let Choice::Kernel(line) = &choice {
        warn!("{iface}: {line}");
    }
    Ok(choice)
}

/// An error and its sources on one line.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out = format!("{out}: {s}");
        next = s.source();
    }
    out
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
    match put_in_place(ebpf, &mut map, iface, cfg, tc_pin) {
        Ok(()) => Ok(map),
        Err(e) => {
            // Nothing half set up stays: no key, no TC link, no own program to tail-call.
            own::withdraw(ebpf, tc_pin);
            if let Err(erase) = map.erase() {
                warn!("{iface}: cannot erase the cookie secret: {erase}");
            }
            Err(e)
        }
    }
}

fn put_in_place(
    ebpf: &mut Ebpf,
    map: &mut SecretMap,
    iface: &str,
    cfg: &RunConfig,
    tc_pin: &std::path::Path,
) -> Result<(), OwnError> {
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
    Ok(())
}

/// Says once, loudly, when the interface's driver turned out to carry no XDP metadata: valid
/// own-cookie ACKs then reach the kernel unmarked and their handshakes fail. Returns whether it
/// has said so (nothing more to watch).
pub fn warn_if_meta_unsupported(iface: &str, pin_dir: &std::path::Path) -> bool {
    use synguard_common::reason::Event;
    match crate::datapath::counters::read_event(pin_dir, Event::OwnMetaUnsupported) {
        Ok(unmarked) if unmarked > 0 => {
            log::warn!(
                "{iface}: the driver carries no XDP metadata ({unmarked} cookie ACKs could not be \
                 marked, their handshakes failed): switching to the TC program that checks \
                 cookies again ({}); every packet to a protected port now pays a parse in TC",
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

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: &str =
        "synguard_own_xdp rejected by the verifier (1000001 insns processed, limit 1000000)";

    #[test]
    fn doctor_says_whether_auto_gets_own_cookies_and_why_not() {
        let f = own_finding(None);
        assert!(f.ok && f.current == "available", "{f:?}");
        let f = own_finding(Some(
            "the kernel has no bpf_sk_assign_tcp_reqsk (Linux 6.9+)",
        ));
        assert!(!f.ok, "{f:?}");
        assert_eq!(
            f.current,
            "unavailable: the kernel has no bpf_sk_assign_tcp_reqsk (Linux 6.9+)"
        );
        assert!(f.why.contains("tcp_timestamps at 2"), "{}", f.why);
    }

    #[test]
    fn kernel_cookies_when_asked_whatever_stands_in_the_way() {
        for obstacle in [None, Some(REFUSED)] {
            let c = choose(Cookies::Kernel, obstacle).unwrap();
            assert_eq!(
                c,
                Choice::Kernel("kernel cookies (--cookies kernel)".into())
            );
        }
    }

    #[test]
    fn auto_falls_back_saying_why() {
        assert_eq!(choose(Cookies::Auto, None).unwrap(), Choice::Own);
        let Choice::Kernel(line) = choose(Cookies::Auto, Some(REFUSED)).unwrap() else {
            panic!("auto kept own cookies over a refusal");
        };
        assert_eq!(
            line,
            format!("own cookies unavailable: {REFUSED}; using kernel cookies (--cookies auto)")
        );
    }

    #[test]
    fn own_fails_with_the_reason() {
        assert_eq!(choose(Cookies::Own, None).unwrap(), Choice::Own);
        let err = choose(Cookies::Own, Some(REFUSED)).unwrap_err();
        assert_eq!(err.to_string(), format!("--cookies own: {REFUSED}"));
    }

    /// What a refusal at start-up comes to: the verifier's, the TC attachment's (with its
    /// cause), and a secret file, which is an error in every mode.
    #[test]
    fn refusals_fall_back_a_bad_secret_file_does_not() {
        let cfg = |cookies| RunConfig {
            cookies,
            ..RunConfig::from_settings(&crate::config::Settings {
                ifaces: vec!["eth0".into()],
                ports: Some(crate::config::Ports::File(vec![80])),
                ..Default::default()
            })
            .unwrap()
        };
        let rejected = || {
            OwnError::Loader(LoaderError::Rejected {
                program: own::XDP_PROGRAM,
                summary: "1000001 insns processed, limit 1000000".into(),
            })
        };
        let c = fall_back(&cfg(Cookies::Auto), "eth0", rejected()).unwrap();
        assert_eq!(
            c,
            Choice::Kernel(format!(
                "own cookies unavailable: {REFUSED}; using kernel cookies (--cookies auto)"
            ))
        );
        let err = fall_back(&cfg(Cookies::Own), "eth0", rejected()).unwrap_err();
        assert_eq!(err.to_string(), format!("--cookies own: {REFUSED}"));

        let attach = OwnError::Loader(LoaderError::Missing("a tcx link (EINVAL)".into()));
        let Choice::Kernel(line) = fall_back(&cfg(Cookies::Auto), "eth0", attach).unwrap() else {
            panic!("kept own cookies without a TC link");
        };
        assert!(line.contains("tcx link (EINVAL)"), "{line}");

        let secret = OwnError::Secret(SecretError::Permissions {
            path: "/etc/k".into(),
            mode: 0o644,
        });
        assert!(matches!(
            fall_back(&cfg(Cookies::Auto), "eth0", secret),
            Err(OwnError::Secret(_))
        ));
    }
}
