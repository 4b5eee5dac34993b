//! The lists, the per-source SYN limit and the reflection cap in the fuzzer: which of them each
//! batch turns on, and the oracle's reading of them, written from the README's rules:
//! - every segment to a protected port meets the lists after the host checks: a blocked source
//!   is dropped, an allowed one passes untouched, and a source in both is blocked;
//! - a SYN meets them in the same place, then the per-source limit (an IPv4 address or an IPv6
//!   /64 may send `burst` SYNs, then its excess is dropped, or, with a block time, everything it
//!   sends until that time is over);
//! - a SYN the host accepts (its IP header sound) is then charged to the reflection cap of its
//!   source's /24 or /48, which answers `burst` of them and drops the rest.
//!
//! The rates are one SYN an hour, so that within a run every outcome follows from the count
//! alone: `burst` SYNs conform, the next one does not.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use synguard_common::{policy::Policy, reason::Reason};

use super::rng::Rng;

/// One SYN an hour: the cost of a SYN for both limits.
const COST_NS: u64 = 3_600_000_000_000;

/// The prefixes the fuzzer's lists hold (its sources are 198.18.0.2-251 and 2001:2::2-fb, see
/// `generate`). An allowed prefix inside a blocked one checks that blocking wins.
pub const BLOCK: [(IpAddr, u32); 2] = [
    (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 128)), 26),
    (
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x80)),
        121,
    ),
];
pub const ALLOW: [(IpAddr, u32); 4] = [
    (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 64)), 27),
    (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 176)), 28),
    (
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x40)),
        123,
    ),
    (
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xa0)),
        124,
    ),
];

/// A batch's policies: the value the program reads, and the oracle's state of both limits.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    pub policy: Policy,
    /// SYNs that conformed so far per source key, and whether the source is blocked.
    sources: HashMap<Vec<u8>, (u64, bool)>,
    /// SYNs answered so far per reflection key.
    reflect: HashMap<Vec<u8>, u64>,
}

impl Policies {
    /// Each list family on in a quarter of the batches, each limit in one batch in six, with a
    /// burst of 1 to 4 SYNs (reflection: 1 to 16) and a block time in half of them.
    pub fn draw(rng: &mut Rng, monitor: bool) -> Self {
        let count = |rng: &mut Rng, family_v4: bool, list: &[(IpAddr, u32)]| -> u32 {
            if !rng.pct(25) {
                return 0;
            }
            list.iter()
                .filter(|(a, _)| a.is_ipv4() == family_v4)
                .count() as u32
        };
        let mut p = Policy {
            monitor: monitor as u32,
            block_v4: count(rng, true, &BLOCK),
            block_v6: count(rng, false, &BLOCK),
            allow_v4: count(rng, true, &ALLOW),
            allow_v6: count(rng, false, &ALLOW),
            ..Default::default()
        };
        if rng.pct(16) {
            p.src_cost_ns = COST_NS;
            p.src_burst_ns = COST_NS * (1 + rng.below(4));
            p.src_block_ns = if rng.pct(50) { COST_NS } else { 0 };
        }
        if rng.pct(16) {
            p.reflect_cost_ns = COST_NS;
            p.reflect_burst_ns = COST_NS * (1 + rng.below(16));
        }
        Policies::fresh(p)
    }

    /// `policy` with both limits' state fresh: no SYN charged yet.
    pub fn fresh(policy: Policy) -> Self {
        Policies {
            policy,
            ..Default::default()
        }
    }

    /// The lists' verdict on a source, if it is listed in a list in use.
    pub fn listed(&self, src: &[u8]) -> Option<Reason> {
        let (block, allow) = if src.len() == 16 {
            (self.policy.block_v6, self.policy.allow_v6)
        } else {
            (self.policy.block_v4, self.policy.allow_v4)
        };
        if block != 0 && BLOCK.iter().any(|&(p, len)| within(src, p, len)) {
            return Some(Reason::DropBlocklisted);
        }
        if allow != 0 && ALLOW.iter().any(|&(p, len)| within(src, p, len)) {
            return Some(Reason::PassAllowlisted);
        }
        None
    }

    /// Charges a SYN to its source: the drop, if it is over its limit or blocked.
    pub fn charge_source(&mut self, src: &[u8]) -> Option<Reason> {
        let p = self.policy;
        if p.src_cost_ns == 0 {
            return None;
        }
        let key = prefix(src, if src.len() == 16 { 8 } else { 4 });
        let (conformed, blocked) = self.sources.entry(key).or_default();
        if *blocked {
            return Some(Reason::DropSourceBlocked);
        }
        if *conformed < p.src_burst_ns / p.src_cost_ns {
            *conformed += 1;
            return None;
        }
        *blocked = p.src_block_ns != 0;
        Some(Reason::DropSourceRate)
    }

    /// Charges a SYN to be answered to the reflection cap of its source's network.
    pub fn charge_reflect(&mut self, src: &[u8]) -> Option<Reason> {
        let p = self.policy;
        if p.reflect_cost_ns == 0 {
            return None;
        }
        let key = prefix(src, if src.len() == 16 { 6 } else { 3 });
        let answered = self.reflect.entry(key).or_default();
        if *answered < p.reflect_burst_ns / p.reflect_cost_ns {
            *answered += 1;
            return None;
        }
        Some(Reason::DropReflectionCap)
    }
}

/// Whether `src` (4 or 16 bytes) is inside `prefix/len` of its family.
fn within(src: &[u8], prefix: IpAddr, len: u32) -> bool {
    let p: Vec<u8> = match prefix {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    if p.len() != src.len() {
        return false;
    }
    (0..len as usize).all(|bit| {
        let mask = 0x80 >> (bit % 8);
        p[bit / 8] & mask == src[bit / 8] & mask
    })
}

/// The first `n` bytes of an address.
fn prefix(src: &[u8], n: usize) -> Vec<u8> {
    src[..n].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_by_bits() {
        let v4 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 128));
        assert!(within(&[198, 18, 0, 191], v4, 26));
        assert!(!within(&[198, 18, 0, 192], v4, 26));
        assert!(!within(&[198, 18, 0, 127], v4, 26));
        let mut a = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x5f).octets();
        assert!(within(&a, ALLOW[2].0, 123));
        a[15] = 0x60;
        assert!(!within(&a, ALLOW[2].0, 123));
        assert!(!within(&[198, 18, 0, 70], ALLOW[2].0, 0));
    }

    #[test]
    fn blocking_wins_over_allowing() {
        let p = Policies {
            policy: Policy {
                block_v4: 1,
                allow_v4: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(p.listed(&[198, 18, 0, 180]), Some(Reason::DropBlocklisted));
        assert_eq!(p.listed(&[198, 18, 0, 70]), Some(Reason::PassAllowlisted));
        assert_eq!(p.listed(&[198, 18, 0, 2]), None);
    }

    #[test]
    fn a_source_gets_its_burst_then_is_dropped_or_blocked() {
        let mut p = Policies {
            policy: Policy {
                src_cost_ns: COST_NS,
                src_burst_ns: 2 * COST_NS,
                src_block_ns: COST_NS,
                ..Default::default()
            },
            ..Default::default()
        };
        let (a, b) = ([198, 18, 0, 2], [198, 18, 0, 3]);
        assert_eq!(p.charge_source(&a), None);
        assert_eq!(p.charge_source(&a), None);
        assert_eq!(p.charge_source(&a), Some(Reason::DropSourceRate));
        assert_eq!(p.charge_source(&a), Some(Reason::DropSourceBlocked));
        assert_eq!(p.charge_source(&b), None);
        // IPv6: one /64 is one source.
        let mut c = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2).octets();
        assert_eq!(p.charge_source(&c), None);
        c[15] = 9;
        assert_eq!(p.charge_source(&c), None);
        c[7] = 1;
        assert_eq!(p.charge_source(&c), None);
    }

    #[test]
    fn the_reflection_cap_counts_per_network() {
        let mut p = Policies {
            policy: Policy {
                reflect_cost_ns: COST_NS,
                reflect_burst_ns: COST_NS,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(p.charge_reflect(&[198, 18, 0, 2]), None);
        assert_eq!(
            p.charge_reflect(&[198, 18, 0, 9]),
            Some(Reason::DropReflectionCap)
        );
        assert_eq!(p.charge_reflect(&[198, 18, 1, 9]), None);
    }
}
