//! Turns merged settings (flags over the configuration file) into a validated run
//! configuration. Pure: no system access, so every rule is covered by host unit tests.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use thiserror::Error;

use crate::config::{
    Cidr, CookieMode, Cookies, Limits, LogFormat, ModeArg, OwnTc, XdpAttach, XdpModeArg,
    settings::{Ports, Settings},
};

/// Largest window shift TCP allows (RFC 7323).
pub const MAX_WSCALE: u8 = 14;
/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "no interface: give --iface IFACE or `interfaces = [\"IFACE\"]` in the configuration file"
    )]
    NoIface,
    #[error("no ports: give --ports 22,80 or `ports = [22, 80]` in the configuration file")]
    NoPortsGiven,
    #[error("--ports is empty: expected numbers 1..65535 separated by commas")]
    NoPorts,
    #[error("invalid port '{0}' in --ports: expected numbers 1..65535 separated by commas")]
    InvalidPort(String),
    #[error("port {0} is outside 1..65535")]
    PortOutOfRange(String),
    #[error("port 0 is outside 1..65535: no TCP connection can be made to port 0")]
    PortZero,
    #[error("ports: {0} is outside 1..65535")]
    FilePort(i64),
    #[error("syn_threshold (--syn-threshold) must be at least 1 SYN per second")]
    ZeroThreshold,
    #[error(
        "syn_off_threshold (--syn-off-threshold, {off} pps) must not exceed syn_threshold \
         ({on} pps), or cookies would turn off while the rate still calls for them"
    )]
    OffAboveOn { on: u32, off: u32 },
    #[error("hold (--hold) must be a number of seconds between 0 and {max}, got {0}", max = MAX_HOLD_S)]
    InvalidHold(f64),
    #[error(
        "wscale (--wscale) {0} is larger than {MAX_WSCALE}, the largest window scale TCP allows"
    )]
    WscaleTooLarge(u8),
    #[error(
        "own_tc (--own-tc) check is a setting of own cookies: give cookies = \"own\" or \"auto\" \
         (--cookies own|auto) with it"
    )]
    OwnTcWithKernelCookies,
    #[error("invalid interface name '{0}': expected 1 to 15 characters without '/' or whitespace")]
    InvalidIface(String),
    #[error("interface {0} is listed twice")]
    DuplicateIface(String),
    #[error(
        "metrics_addr (--metrics-addr) '{0}' is not an address: expected IP:PORT, e.g. 127.0.0.1:9724"
    )]
    InvalidMetricsAddr(String),
    #[error("{key} (--{flag}): {message}")]
    Cidr {
        key: &'static str,
        flag: &'static str,
        message: String,
    },
    #[error("{key} (--{flag}) {value} must be 1 or more when {rate_key} is set")]
    ZeroBurst {
        key: &'static str,
        flag: &'static str,
        rate_key: &'static str,
        value: u64,
    },
}

/// Upper bound for --hold: a day. Longer holds are almost certainly a typo, and it keeps the
/// nanosecond value far from overflowing.
const MAX_HOLD_S: f64 = 86_400.0;

#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// In the order given, without duplicates.
    pub ifaces: Vec<String>,
    /// Sorted, without duplicates.
    pub ports: Vec<u16>,
    pub mode: CookieMode,
    pub syn_on_pps: u32,
    pub syn_off_pps: u32,
    pub hold: Duration,
    pub xdp: XdpAttach,
    /// Overrides the window scale computed from the kernel's settings.
    pub wscale: Option<u8>,
    /// Whose cookies; `auto` is decided per kernel at start.
    pub cookies: Cookies,
    /// Own cookies' shared key (`host::secret`); None: random per start.
    pub cookie_secret_file: Option<PathBuf>,
    /// Own cookies' TC program.
    pub own_tc: OwnTc,
    pub metrics_addr: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub pin_base: PathBuf,
    pub run_dir: PathBuf,
    /// Per-source limits, the reflection cap and monitor mode.
    pub limits: Limits,
    /// Prefixes that bypass limits and cookies, and prefixes dropped first (from the file and
    /// the flags; `synguard allow|block` add more at run time).
    pub allow: Vec<Cidr>,
    pub block: Vec<Cidr>,
    /// Attach even where the NIC check refuses.
    pub ignore_nic_checks: bool,
}

/// Default auto-mode threshold, SYNs per second.
pub const DEFAULT_SYN_THRESHOLD: u32 = 1000;
/// Default hold time in seconds.
pub const DEFAULT_HOLD_S: f64 = 10.0;

/// Parses a list of CIDRs, naming the key in errors; sorted, without duplicates.
fn parse_cidrs(
    texts: &[String],
    key: &'static str,
    flag: &'static str,
) -> Result<Vec<Cidr>, ConfigError> {
    let mut out = texts
        .iter()
        .map(|t| {
            t.parse::<Cidr>().map_err(|e| ConfigError::Cidr {
                key,
                flag,
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// A burst given as 0 would let nothing through; unset, it is one second's worth of the rate.
fn burst(
    rate: u64,
    burst: Option<u64>,
    key: &'static str,
    flag: &'static str,
    rate_key: &'static str,
) -> Result<u64, ConfigError> {
    match burst {
        Some(0) if rate > 0 => Err(ConfigError::ZeroBurst {
            key,
            flag,
            rate_key,
            value: 0,
        }),
        Some(b) => Ok(b),
        None => Ok(rate.max(1)),
    }
}

impl Settings {
    fn limits(&self) -> Result<Limits, ConfigError> {
        let source_rate = self.source_rate.unwrap_or(0);
        let reflect_rate = self.reflect_cap.unwrap_or(0);
        Ok(Limits {
            source_rate,
            source_burst: burst(
                source_rate,
                self.source_burst,
                "source_burst",
                "source-burst",
                "source_rate",
            )?,
            source_block_secs: self.source_block.unwrap_or(0),
            reflect_rate,
            reflect_burst: burst(
                reflect_rate,
                self.reflect_burst,
                "reflect_burst",
                "reflect-burst",
                "reflect_cap",
            )?,
            monitor: self.monitor.unwrap_or(false),
        })
    }
}

impl RunConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        // Port lists are read first: a malformed one is named before anything else is missing.
        let ports = match &s.ports {
            None => None,
            Some(Ports::Flag(text)) => Some(parse_ports(text)?),
            Some(Ports::File(list)) => Some(file_ports(list)?),
        };
        let ifaces = validate_ifaces(&s.ifaces)?;
        let ports = ports.ok_or(ConfigError::NoPortsGiven)?;
        if ports.is_empty() {
            return Err(ConfigError::NoPortsGiven);
        }
        let on = s.syn_threshold.unwrap_or(DEFAULT_SYN_THRESHOLD);
        if on == 0 {
            return Err(ConfigError::ZeroThreshold);
        }
        let off = s.syn_off_threshold.unwrap_or(on / 2);
        if off > on {
            return Err(ConfigError::OffAboveOn { on, off });
        }
        let hold = s.hold.unwrap_or(DEFAULT_HOLD_S);
        if !(0.0..=MAX_HOLD_S).contains(&hold) {
            return Err(ConfigError::InvalidHold(hold));
        }
        if s.own_tc == Some(OwnTc::Check) && s.cookies.unwrap_or_default() == Cookies::Kernel {
            return Err(ConfigError::OwnTcWithKernelCookies);
        }
        if let Some(ws) = s.wscale.filter(|&ws| ws > MAX_WSCALE) {
            return Err(ConfigError::WscaleTooLarge(ws));
        }
        let metrics_addr = s
            .metrics_addr
            .as_deref()
            .map(|a| {
                a.parse::<SocketAddr>()
                    .map_err(|_| ConfigError::InvalidMetricsAddr(a.to_string()))
            })
            .transpose()?;
        Ok(RunConfig {
            ifaces,
            ports,
            mode: match s.mode.unwrap_or(ModeArg::Auto) {
                ModeArg::Auto => CookieMode::Auto,
                ModeArg::Always => CookieMode::Always,
            },
            syn_on_pps: on,
            syn_off_pps: off,
            hold: Duration::from_secs_f64(hold),
            xdp: match s.xdp_mode {
                None => XdpAttach::NativeThenSkb,
                Some(XdpModeArg::Native) => XdpAttach::Native,
                Some(XdpModeArg::Skb) => XdpAttach::Skb,
            },
            wscale: s.wscale,
            cookies: s.cookies.unwrap_or_default(),
            cookie_secret_file: s.cookie_secret_file.clone(),
            own_tc: s.own_tc.unwrap_or_default(),
            metrics_addr,
            log_format: s.log_format.unwrap_or_default(),
            pin_base: s.pin_base.clone(),
            run_dir: s.run_dir.clone(),
            limits: s.limits()?,
            allow: parse_cidrs(&s.allow, "allow", "allow")?,
            block: parse_cidrs(&s.block, "block", "block")?,
            ignore_nic_checks: s.ignore_nic_checks.unwrap_or(false),
        })
    }
}

fn validate_ifaces(names: &[String]) -> Result<Vec<String>, ConfigError> {
    if names.is_empty() {
        return Err(ConfigError::NoIface);
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let name = validate_iface(name)?;
        if out.contains(&name) {
            return Err(ConfigError::DuplicateIface(name));
        }
        out.push(name);
    }
    Ok(out)
}

/// The file's port numbers: each in 1..65535; sorted, without duplicates.
fn file_ports(list: &[i64]) -> Result<Vec<u16>, ConfigError> {
    let mut out = list
        .iter()
        .map(|&p| match u16::try_from(p) {
            Ok(v) if v != 0 => Ok(v),
            _ => Err(ConfigError::FilePort(p)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl ConfigError {
    /// Errors in the text of `--ports`: about a flag, never about the file.
    pub fn is_about_flag_text(&self) -> bool {
        matches!(
            self,
            ConfigError::NoPorts
                | ConfigError::InvalidPort(_)
                | ConfigError::PortOutOfRange(_)
                | ConfigError::PortZero
        )
    }
}

/// Parses "22,80,443" into sorted, unique ports. Duplicates are harmless, so they are merged
/// rather than refused.
pub fn parse_ports(text: &str) -> Result<Vec<u16>, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::NoPorts);
    }
    let mut ports = text
        .split(',')
        .map(|item| parse_port(item.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

fn parse_port(item: &str) -> Result<u16, ConfigError> {
    if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::InvalidPort(item.to_string()));
    }
    // All digits: anything that does not fit is out of range, however long it is.
    match item.parse::<u64>() {
        Ok(0) => Err(ConfigError::PortZero),
        Ok(p) if p <= u16::MAX as u64 => Ok(p as u16),
        _ => Err(ConfigError::PortOutOfRange(item.to_string())),
    }
}

/// The name goes into file paths (pin and lock files), so it must not escape its directory.
pub fn validate_iface(name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(name.to_string())
    } else {
        Err(ConfigError::InvalidIface(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(f: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = Settings {
            ifaces: vec!["veth0".into()],
            ports: Some(Ports::File(vec![80])),
            ..Default::default()
        };
        f(&mut s);
        s
    }

    fn build(f: impl FnOnce(&mut Settings)) -> Result<RunConfig, ConfigError> {
        RunConfig::from_settings(&settings(f))
    }

    #[test]
    fn ports_parse_sort_and_dedup() {
        assert_eq!(parse_ports("22,80,443"), Ok(vec![22, 80, 443]));
        assert_eq!(parse_ports("443, 80 ,80,22"), Ok(vec![22, 80, 443]));
        assert_eq!(parse_ports("1,65535"), Ok(vec![1, 65535]));
    }

    #[test]
    fn port_errors_name_what_was_expected() {
        assert_eq!(
            parse_ports("70000").unwrap_err().to_string(),
            "port 70000 is outside 1..65535"
        );
        assert_eq!(parse_ports("80,0"), Err(ConfigError::PortZero));
        assert_eq!(
            parse_ports("80,abc").unwrap_err().to_string(),
            "invalid port 'abc' in --ports: expected numbers 1..65535 separated by commas"
        );
        assert_eq!(
            parse_ports("-1"),
            Err(ConfigError::InvalidPort("-1".into()))
        );
        assert_eq!(
            parse_ports("80,,443"),
            Err(ConfigError::InvalidPort("".into()))
        );
        assert_eq!(
            parse_ports("99999999999999999999999"),
            Err(ConfigError::PortOutOfRange(
                "99999999999999999999999".into()
            ))
        );
        assert_eq!(parse_ports(""), Err(ConfigError::NoPorts));
        assert_eq!(parse_ports("  "), Err(ConfigError::NoPorts));
    }

    #[test]
    fn defaults_become_a_config() {
        let c = build(|_| {}).unwrap();
        assert_eq!(c.ifaces, ["veth0"]);
        assert_eq!(c.ports, vec![80]);
        assert_eq!(c.mode, CookieMode::Auto);
        assert_eq!(c.syn_on_pps, 1000);
        assert_eq!(c.syn_off_pps, 500, "off threshold defaults to half");
        assert_eq!(c.hold, Duration::from_secs(10));
        assert_eq!(c.xdp, XdpAttach::NativeThenSkb);
        assert_eq!(c.wscale, None);
        assert_eq!(c.metrics_addr, None);
        assert_eq!(c.log_format, LogFormat::Human);
    }

    #[test]
    fn explicit_options() {
        let c = build(|s| {
            s.mode = Some(ModeArg::Always);
            s.syn_threshold = Some(200);
            s.syn_off_threshold = Some(50);
            s.hold = Some(0.5);
            s.xdp_mode = Some(XdpModeArg::Skb);
            s.wscale = Some(7);
            s.metrics_addr = Some("127.0.0.1:9724".into());
            s.ifaces.push("veth1".into());
        })
        .unwrap();
        assert_eq!(c.mode, CookieMode::Always);
        assert_eq!((c.syn_on_pps, c.syn_off_pps), (200, 50));
        assert_eq!(c.hold, Duration::from_millis(500));
        assert_eq!(c.xdp, XdpAttach::Skb);
        assert_eq!(c.wscale, Some(7));
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9724".parse().unwrap()));
        assert_eq!(c.ifaces, ["veth0", "veth1"]);
    }

    #[test]
    fn invalid_options() {
        let err = |f: fn(&mut Settings)| build(f).unwrap_err();
        assert_eq!(
            err(|s| s.syn_threshold = Some(0)),
            ConfigError::ZeroThreshold
        );
        assert_eq!(
            err(|s| {
                s.syn_threshold = Some(10);
                s.syn_off_threshold = Some(20);
            }),
            ConfigError::OffAboveOn { on: 10, off: 20 }
        );
        assert_eq!(err(|s| s.hold = Some(-1.0)), ConfigError::InvalidHold(-1.0));
        assert!(matches!(
            err(|s| s.hold = Some(f64::NAN)),
            ConfigError::InvalidHold(_)
        ));
        assert_eq!(
            err(|s| s.wscale = Some(15)),
            ConfigError::WscaleTooLarge(15)
        );
        assert_eq!(
            err(|s| {
                s.own_tc = Some(OwnTc::Check);
                s.cookies = Some(Cookies::Kernel);
            }),
            ConfigError::OwnTcWithKernelCookies
        );
        assert_eq!(err(|s| s.ifaces.clear()), ConfigError::NoIface);
        assert_eq!(err(|s| s.ports = None), ConfigError::NoPortsGiven);
        assert_eq!(
            err(|s| s.ifaces.push("veth0".into())),
            ConfigError::DuplicateIface("veth0".into())
        );
        assert_eq!(
            err(|s| s.metrics_addr = Some("localhost".into())),
            ConfigError::InvalidMetricsAddr("localhost".into())
        );
    }

    #[test]
    fn interface_names_cannot_escape_directories() {
        assert!(validate_iface("eth0").is_ok());
        assert!(validate_iface("a").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", "sixteen-chars-xx"] {
            assert_eq!(
                validate_iface(bad),
                Err(ConfigError::InvalidIface(bad.into())),
                "{bad}"
            );
        }
    }
}
