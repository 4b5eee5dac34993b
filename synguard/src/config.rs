//! Turns command-line arguments into a validated run configuration. Pure: no system access, so
//! every rule is covered by host unit tests.

use std::{path::PathBuf, time::Duration};

use thiserror::Error;

use crate::cli::{ModeArg, RunArgs, XdpModeArg};

/// Largest window shift TCP allows (RFC 7323).
pub const MAX_WSCALE: u8 = 14;
/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("--ports is empty: expected numbers 1..65535 separated by commas")]
    NoPorts,
    #[error("invalid port '{0}' in --ports: expected numbers 1..65535 separated by commas")]
    InvalidPort(String),
    #[error("port {0} is outside 1..65535")]
    PortOutOfRange(String),
    #[error("port 0 is outside 1..65535: no TCP connection can be made to port 0")]
    PortZero,
    #[error("--syn-threshold must be at least 1 SYN per second")]
    ZeroThreshold,
    #[error(
        "--syn-off-threshold ({off} pps) must not exceed --syn-threshold ({on} pps), or cookies \
         would turn off while the rate still calls for them"
    )]
    OffAboveOn { on: u32, off: u32 },
    #[error("--hold must be a number of seconds between 0 and {max}, got {0}", max = MAX_HOLD_S)]
    InvalidHold(f64),
    #[error("--wscale {0} is larger than {MAX_WSCALE}, the largest window scale TCP allows")]
    WscaleTooLarge(u8),
    #[error("invalid interface name '{0}': expected 1 to 15 characters without '/' or whitespace")]
    InvalidIface(String),
}

/// Upper bound for --hold: a day. Longer holds are almost certainly a typo, and it keeps the
/// nanosecond value far from overflowing.
const MAX_HOLD_S: f64 = 86_400.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieMode {
    Auto,
    Always,
}

impl CookieMode {
    pub fn name(self) -> &'static str {
        match self {
            CookieMode::Auto => "auto",
            CookieMode::Always => "always",
        }
    }
}

/// Which XDP attach modes to try, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttach {
    /// Native first, generic (skb) when the driver cannot.
    NativeThenSkb,
    Native,
    Skb,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub iface: String,
    /// Sorted, without duplicates.
    pub ports: Vec<u16>,
    pub mode: CookieMode,
    pub syn_on_pps: u32,
    pub syn_off_pps: u32,
    pub hold: Duration,
    pub xdp: XdpAttach,
    /// Overrides the window scale computed from the kernel's settings.
    pub wscale: Option<u8>,
    pub pin_base: PathBuf,
    pub run_dir: PathBuf,
}

impl RunConfig {
    pub fn from_args(args: &RunArgs) -> Result<Self, ConfigError> {
        let iface = validate_iface(&args.iface)?;
        let ports = parse_ports(&args.ports)?;
        if args.syn_threshold == 0 {
            return Err(ConfigError::ZeroThreshold);
        }
        let syn_off_pps = args.syn_off_threshold.unwrap_or(args.syn_threshold / 2);
        if syn_off_pps > args.syn_threshold {
            return Err(ConfigError::OffAboveOn {
                on: args.syn_threshold,
                off: syn_off_pps,
            });
        }
        if !(0.0..=MAX_HOLD_S).contains(&args.hold) {
            return Err(ConfigError::InvalidHold(args.hold));
        }
        if let Some(ws) = args.wscale.filter(|&ws| ws > MAX_WSCALE) {
            return Err(ConfigError::WscaleTooLarge(ws));
        }
        Ok(RunConfig {
            iface,
            ports,
            mode: match args.mode {
                ModeArg::Auto => CookieMode::Auto,
                ModeArg::Always => CookieMode::Always,
            },
            syn_on_pps: args.syn_threshold,
            syn_off_pps,
            hold: Duration::from_secs_f64(args.hold),
            xdp: match args.xdp_mode {
                None => XdpAttach::NativeThenSkb,
                Some(XdpModeArg::Native) => XdpAttach::Native,
                Some(XdpModeArg::Skb) => XdpAttach::Skb,
            },
            wscale: args.wscale,
            pin_base: args.pin_base.clone(),
            run_dir: args.run_dir.clone(),
        })
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
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn run_args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["synguard", "run", "--iface", "veth0", "--ports", "80"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(r) => r,
            Command::Stats(_) => unreachable!(),
        }
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
        assert!(
            parse_ports("0")
                .unwrap_err()
                .to_string()
                .starts_with("port 0 ")
        );
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
        let c = RunConfig::from_args(&run_args(&[])).unwrap();
        assert_eq!(c.ports, vec![80]);
        assert_eq!(c.mode, CookieMode::Auto);
        assert_eq!(c.syn_on_pps, 1000);
        assert_eq!(c.syn_off_pps, 500, "off threshold defaults to half");
        assert_eq!(c.hold, Duration::from_secs(10));
        assert_eq!(c.xdp, XdpAttach::NativeThenSkb);
        assert_eq!(c.wscale, None);
    }

    #[test]
    fn explicit_options() {
        let c = RunConfig::from_args(&run_args(&[
            "--mode",
            "always",
            "--syn-threshold",
            "200",
            "--syn-off-threshold",
            "50",
            "--hold",
            "0.5",
            "--xdp-mode",
            "skb",
            "--wscale",
            "7",
        ]))
        .unwrap();
        assert_eq!(c.mode, CookieMode::Always);
        assert_eq!((c.syn_on_pps, c.syn_off_pps), (200, 50));
        assert_eq!(c.hold, Duration::from_millis(500));
        assert_eq!(c.xdp, XdpAttach::Skb);
        assert_eq!(c.wscale, Some(7));
    }

    #[test]
    fn invalid_options() {
        let err = |extra: &[&str]| RunConfig::from_args(&run_args(extra)).unwrap_err();
        assert_eq!(err(&["--syn-threshold", "0"]), ConfigError::ZeroThreshold);
        assert_eq!(
            err(&["--syn-threshold", "10", "--syn-off-threshold", "20"]),
            ConfigError::OffAboveOn { on: 10, off: 20 }
        );
        assert_eq!(err(&["--hold", "-1"]), ConfigError::InvalidHold(-1.0));
        assert!(matches!(
            err(&["--hold", "NaN"]),
            ConfigError::InvalidHold(_)
        ));
        assert_eq!(err(&["--wscale", "15"]), ConfigError::WscaleTooLarge(15));
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
