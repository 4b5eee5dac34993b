//! Prefixes for the allow and block lists, and the limits as an operator states them. Pure values:
//! the maps that hold them are `datapath::policy`'s.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use synguard_common::policy::{Policy, rate_to_gcra};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CidrError {
    #[error("invalid CIDR '{0}': expected ADDRESS[/PREFIX], like 192.0.2.0/24 or 2001:db8::/32")]
    BadCidr(String),
    #[error("invalid CIDR '{text}': prefix /{len} is longer than {max} bits for {family}")]
    PrefixTooLong {
        text: String,
        len: u32,
        max: u32,
        family: &'static str,
    },
    #[error("invalid CIDR '{text}': host bits are set; did you mean {suggestion}?")]
    HostBits { text: String, suggestion: Cidr },
}

/// A network prefix, normalised (no host bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u32,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask_v4(a: Ipv4Addr, len: u32) -> Ipv4Addr {
    let bits = u32::from(a);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ipv4Addr::from(bits & mask)
}

fn mask_v6(a: Ipv6Addr, len: u32) -> Ipv6Addr {
    let bits = u128::from(a);
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    Ipv6Addr::from(bits & mask)
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `ADDRESS/PREFIX`, or a bare address for a single host. Host bits are an error (naming the
    /// prefix that was probably meant) rather than silently dropped: a block list entry that
    /// covers more or less than the operator thinks is worse than a refused command.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError::BadCidr(text.to_string());
        let (addr, len) = match text.trim().split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u32>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let (max, family) = match addr {
            IpAddr::V4(_) => (32, "IPv4"),
            IpAddr::V6(_) => (128, "IPv6"),
        };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(CidrError::PrefixTooLong {
                text: text.to_string(),
                len,
                max,
                family,
            });
        }
        let masked = match addr {
            IpAddr::V4(a) => IpAddr::V4(mask_v4(a, len)),
            IpAddr::V6(a) => IpAddr::V6(mask_v6(a, len)),
        };
        let cidr = Cidr { addr: masked, len };
        if masked != addr {
            return Err(CidrError::HostBits {
                text: text.to_string(),
                suggestion: cidr,
            });
        }
        Ok(cidr)
    }
}

/// Which list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Allow,
    Block,
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListKind::Allow => "allow",
            ListKind::Block => "block",
        })
    }
}

/// Limits as an operator states them; turned into the program's GCRA parameters by
/// [`Limits::apply`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// SYNs per second one source (IPv4 address, IPv6 /64) may send; 0 = unlimited.
    pub source_rate: u64,
    /// SYNs a source may send at once after a quiet time.
    pub source_burst: u64,
    /// Seconds a source that went over its rate stays blocked; 0 = drop only the excess.
    pub source_block_secs: u64,
    /// SYN-ACKs per second to one destination /24 (IPv6 /48); 0 = no cap.
    pub reflect_rate: u64,
    pub reflect_burst: u64,
    /// Decide and count, but pass everything.
    pub monitor: bool,
}

impl Limits {
    /// Writes the limits into `p`, keeping its list counts.
    pub fn apply(&self, p: &mut Policy) {
        let (cost, burst) = rate_to_gcra(self.source_rate, self.source_burst);
        p.src_cost_ns = cost;
        p.src_burst_ns = burst;
        p.src_block_ns = if self.source_rate == 0 {
            0
        } else {
            self.source_block_secs.saturating_mul(1_000_000_000)
        };
        let (cost, burst) = rate_to_gcra(self.reflect_rate, self.reflect_burst);
        p.reflect_cost_ns = cost;
        p.reflect_burst_ns = burst;
        p.monitor = self.monitor as u32;
    }
}
