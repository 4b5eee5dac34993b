//! The small value types of the configuration: what the flags and the file may say (`ModeArg`,
//! `XdpModeArg`, `LogFormat`) and what they mean once validated (`CookieMode`, `XdpAttach`).

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// When XDP answers SYNs with cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    /// Only while the SYN rate to protected ports is above --syn-threshold.
    Auto,
    /// Every SYN to a protected port.
    Always,
}

/// Whose SYN cookies answer SYNs (docs/own-cookies.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cookies {
    /// Own where the kernel has bpf_sk_assign_tcp_reqsk (Linux 6.9+) and accepts the own-cookie
    /// programs, the kernel's otherwise (`daemon::own_cookies::choose`).
    #[default]
    Auto,
    /// The kernel's cookies (tcp_syncookies and tcp_timestamps set while attached).
    Kernel,
    /// synguard's own cookies, handed to the kernel from TC; no kernel setting changes.
    Own,
}

impl Cookies {
    pub fn name(self) -> &'static str {
        match self {
            Cookies::Auto => "auto",
            Cookies::Kernel => "kernel",
            Cookies::Own => "own",
        }
    }
}

/// Own cookies: which TC ingress program hands valid handshakes to the kernel
/// (docs/own-cookies.md, "XDP metadata, and drivers without it").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnTc {
    /// The one that reads the XDP program's mark (metadata); switched to `check` by itself
    /// when the driver turns out to carry no metadata.
    #[default]
    Auto,
    /// The one that checks each pure ACK's cookie again, from the start: for a driver known
    /// to carry no XDP metadata (no handshake fails before the switch), and for tests.
    Check,
}

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// In the driver (fastest); fails on drivers without XDP support.
    Native,
    /// Generic XDP in the network stack; works everywhere, slower.
    Skb,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line (for journald/log shippers).
    Json,
}

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
