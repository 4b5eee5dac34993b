//! The drop policy from userspace: CIDR lists (allow/block) kept in the XDP program's LPM tries,
//! per-source limits and the reflection cap written to `SG_POLICY`, and the heaviest sources read
//! back from the per-source limiter for `synguard top`.
//!
//! The program skips a list whose count in `SG_POLICY` is zero (an LPM lookup per packet is not
//! free), so every change to a trie is followed by a recount written to the policy.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use aya::maps::{
    Array, HashMap, Map, MapData,
    lpm_trie::{Key, LpmTrie},
};
use synguard_common::policy::{AddrKey, FAMILY_V6, Policy, SourceState, names};
use thiserror::Error;

use crate::{
    config::{Cidr, CidrError, Limits, ListKind},
    datapath::maps,
};

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error(transparent)]
    Cidr(#[from] CidrError),
    #[error("{0} is not in the {1} list")]
    NotListed(Cidr, ListKind),
    #[error("the {0} list is full")]
    ListFull(ListKind),
    #[error("map {0}: {1}")]
    Map(&'static str, #[source] aya::maps::MapError),
}

fn trie_name(kind: ListKind, v6: bool) -> &'static str {
    match (kind, v6) {
        (ListKind::Allow, false) => names::ALLOW_V4,
        (ListKind::Allow, true) => names::ALLOW_V6,
        (ListKind::Block, false) => names::BLOCK_V4,
        (ListKind::Block, true) => names::BLOCK_V6,
    }
}

/// The policy maps of a loaded or pinned program.
pub struct PolicyMaps {
    policy: Array<MapData, Policy>,
    allow_v4: LpmTrie<MapData, [u8; 4], u32>,
    allow_v6: LpmTrie<MapData, [u8; 16], u32>,
    block_v4: LpmTrie<MapData, [u8; 4], u32>,
    block_v6: LpmTrie<MapData, [u8; 16], u32>,
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> PolicyError {
    move |e| PolicyError::Map(name, e)
}

impl PolicyMaps {
    /// From the program's maps (taken by name) or from pinned ones (`Map::from_pin` on each).
    pub fn new(mut take: impl FnMut(&'static str) -> Option<Map>) -> Result<Self, PolicyError> {
        let mut get = |name: &'static str| {
            take(name).ok_or(PolicyError::Map(
                name,
                aya::maps::MapError::InvalidName {
                    name: name.to_string(),
                },
            ))
        };
        Ok(PolicyMaps {
            policy: Array::try_from(get(names::POLICY)?).map_err(map_err(names::POLICY))?,
            allow_v4: LpmTrie::try_from(get(names::ALLOW_V4)?).map_err(map_err(names::ALLOW_V4))?,
            allow_v6: LpmTrie::try_from(get(names::ALLOW_V6)?).map_err(map_err(names::ALLOW_V6))?,
            block_v4: LpmTrie::try_from(get(names::BLOCK_V4)?).map_err(map_err(names::BLOCK_V4))?,
            block_v6: LpmTrie::try_from(get(names::BLOCK_V6)?).map_err(map_err(names::BLOCK_V6))?,
        })
    }

    pub fn policy(&self) -> Result<Policy, PolicyError> {
        self.policy.get(&0, 0).map_err(map_err(names::POLICY))
    }

    /// Sets the limits, keeping the list counts.
    pub fn set_limits(&mut self, limits: &Limits) -> Result<(), PolicyError> {
        let mut p = self.policy()?;
        limits.apply(&mut p);
        self.policy.set(0, p, 0).map_err(map_err(names::POLICY))
    }

    /// Adds a prefix; takes effect on the next packet.
    pub fn add(&mut self, kind: ListKind, cidr: Cidr) -> Result<(), PolicyError> {
        let name = trie_name(kind, cidr.addr.is_ipv6());
        let r = match (kind, cidr.addr) {
            (ListKind::Allow, IpAddr::V4(a)) => {
                self.allow_v4.insert(&Key::new(cidr.len, a.octets()), 1, 0)
            }
            (ListKind::Block, IpAddr::V4(a)) => {
                self.block_v4.insert(&Key::new(cidr.len, a.octets()), 1, 0)
            }
            (ListKind::Allow, IpAddr::V6(a)) => {
                self.allow_v6.insert(&Key::new(cidr.len, a.octets()), 1, 0)
            }
            (ListKind::Block, IpAddr::V6(a)) => {
                self.block_v6.insert(&Key::new(cidr.len, a.octets()), 1, 0)
            }
        };
        match r {
            Ok(()) => self.recount(),
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOSPC) =>
            {
                Err(PolicyError::ListFull(kind))
            }
            Err(e) => Err(PolicyError::Map(name, e)),
        }
    }

    /// Removes a prefix (exactly as listed).
    pub fn del(&mut self, kind: ListKind, cidr: Cidr) -> Result<(), PolicyError> {
        let r = match (kind, cidr.addr) {
            (ListKind::Allow, IpAddr::V4(a)) => {
                self.allow_v4.remove(&Key::new(cidr.len, a.octets()))
            }
            (ListKind::Block, IpAddr::V4(a)) => {
                self.block_v4.remove(&Key::new(cidr.len, a.octets()))
            }
            (ListKind::Allow, IpAddr::V6(a)) => {
                self.allow_v6.remove(&Key::new(cidr.len, a.octets()))
            }
            (ListKind::Block, IpAddr::V6(a)) => {
                self.block_v6.remove(&Key::new(cidr.len, a.octets()))
            }
        };
        match r {
            Ok(()) => self.recount(),
            Err(aya::maps::MapError::KeyNotFound) => Err(PolicyError::NotListed(cidr, kind)),
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Err(PolicyError::NotListed(cidr, kind))
            }
            Err(e) => Err(PolicyError::Map(trie_name(kind, cidr.addr.is_ipv6()), e)),
        }
    }

    /// Every prefix in a list, IPv4 first, sorted.
    pub fn list(&self, kind: ListKind) -> Result<Vec<Cidr>, PolicyError> {
        let (v4, v6) = match kind {
            ListKind::Allow => (&self.allow_v4, &self.allow_v6),
            ListKind::Block => (&self.block_v4, &self.block_v6),
        };
        let mut out = Vec::new();
        for k in v4.keys() {
            let k = k.map_err(map_err(trie_name(kind, false)))?;
            out.push(Cidr {
                addr: IpAddr::V4(Ipv4Addr::from(k.data())),
                len: k.prefix_len(),
            });
        }
        for k in v6.keys() {
            let k = k.map_err(map_err(trie_name(kind, true)))?;
            out.push(Cidr {
                addr: IpAddr::V6(Ipv6Addr::from(k.data())),
                len: k.prefix_len(),
            });
        }
        out.sort();
        Ok(out)
    }

    /// Writes the list sizes into the policy: the program skips empty lists.
    fn recount(&mut self) -> Result<(), PolicyError> {
        let count =
            |v6: bool, list: &[Cidr]| list.iter().filter(|c| c.addr.is_ipv6() == v6).count() as u32;
        let allow = self.list(ListKind::Allow)?;
        let block = self.list(ListKind::Block)?;
        let mut p = self.policy()?;
        p.allow_v4 = count(false, &allow);
        p.allow_v6 = count(true, &allow);
        p.block_v4 = count(false, &block);
        p.block_v6 = count(true, &block);
        self.policy.set(0, p, 0).map_err(map_err(names::POLICY))
    }
}

/// Opens the policy maps pinned for one interface.
pub fn open_pinned(pin_dir: &Path) -> Result<PolicyMaps, PolicyError> {
    PolicyMaps::new(|name| maps::open(pin_dir, name).ok())
}

impl PolicyMaps {
    /// Applies a configuration: its limits, and its lists. `previous` are the lists the
    /// configuration before it applied: entries it had and this one has not are removed.
    /// Entries added at run time (`synguard allow|block add`) are left alone.
    pub fn apply(
        &mut self,
        limits: &Limits,
        lists: (&[Cidr], &[Cidr]),
        previous: (&[Cidr], &[Cidr]),
    ) -> Result<(), PolicyError> {
        self.set_limits(limits)?;
        for (kind, now, before) in [
            (ListKind::Allow, lists.0, previous.0),
            (ListKind::Block, lists.1, previous.1),
        ] {
            for gone in before.iter().filter(|c| !now.contains(c)) {
                match self.del(kind, *gone) {
                    Ok(()) | Err(PolicyError::NotListed(..)) => {}
                    Err(e) => return Err(e),
                }
            }
            for c in now {
                self.add(kind, *c)?;
            }
        }
        Ok(())
    }
}

/// One row of `synguard top`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceRow {
    /// The source: an IPv4 address or an IPv6 /64.
    pub source: String,
    pub syns: u64,
    pub dropped: u64,
    /// Seconds of block left, if blocked.
    pub blocked_for_s: Option<u64>,
}

fn source_name(k: &AddrKey) -> String {
    if k.family == FAMILY_V6 {
        format!("{}/64", Ipv6Addr::from(k.addr))
    } else {
        Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3]).to_string()
    }
}

/// The `n` heaviest sources by SYNs seen, then every blocked source; `now_ns` on the program's
/// clock (`host::clock::monotonic_ns`).
pub fn top(
    entries: &[(AddrKey, SourceState)],
    now_ns: u64,
    n: usize,
) -> (Vec<SourceRow>, Vec<SourceRow>) {
    let row = |(k, s): &(AddrKey, SourceState)| SourceRow {
        source: source_name(k),
        syns: s.syns,
        dropped: s.dropped,
        blocked_for_s: (s.blocked_until_ns > now_ns)
            .then(|| (s.blocked_until_ns - now_ns).div_ceil(1_000_000_000)),
    };
    let mut heavy: Vec<SourceRow> = entries.iter().map(row).collect();
    heavy.sort_by(|a, b| b.syns.cmp(&a.syns).then_with(|| a.source.cmp(&b.source)));
    let blocked: Vec<SourceRow> = heavy
        .iter()
        .filter(|r| r.blocked_for_s.is_some())
        .cloned()
        .collect();
    heavy.truncate(n);
    (heavy, blocked)
}

/// Every entry of the per-source limiter.
pub fn sources(map: Map) -> Result<Vec<(AddrKey, SourceState)>, PolicyError> {
    let m: HashMap<MapData, AddrKey, SourceState> =
        HashMap::try_from(map).map_err(map_err(names::SOURCES))?;
    m.iter()
        .map(|r| r.map_err(map_err(names::SOURCES)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_normalise() {
        let c: Cidr = "198.18.0.0/24".parse().unwrap();
        assert_eq!(c.to_string(), "198.18.0.0/24");
        let c: Cidr = "198.18.0.7".parse().unwrap();
        assert_eq!(c.len, 32);
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert_eq!(c.to_string(), "2001:db8::/32");
        let c: Cidr = "2001:db8::1".parse().unwrap();
        assert_eq!(c.len, 128);
        let c: Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(c.len, 0);
    }

    #[test]
    fn bad_cidrs_say_what_was_expected() {
        let e = "198.18.0.1/24".parse::<Cidr>().unwrap_err().to_string();
        assert!(
            e.contains("host bits") && e.contains("198.18.0.0/24"),
            "{e}"
        );
        let e = "198.18.0.0/33".parse::<Cidr>().unwrap_err().to_string();
        assert!(e.contains("/33") && e.contains("32 bits for IPv4"), "{e}");
        let e = "2001:db8::/129".parse::<Cidr>().unwrap_err().to_string();
        assert!(e.contains("128 bits for IPv6"), "{e}");
        for bad in [
            "",
            "banana",
            "198.18.0/24",
            "198.18.0.0/x",
            "198.18.0.0/-1",
            "/24",
        ] {
            let e = bad.parse::<Cidr>().unwrap_err().to_string();
            assert!(e.contains("expected ADDRESS[/PREFIX]"), "{bad}: {e}");
        }
    }

    #[test]
    fn limits_become_gcra_parameters() {
        let mut p = Policy {
            allow_v4: 3,
            ..Default::default()
        };
        Limits {
            source_rate: 100,
            source_burst: 20,
            source_block_secs: 60,
            reflect_rate: 1000,
            reflect_burst: 100,
            monitor: true,
        }
        .apply(&mut p);
        assert_eq!(p.src_cost_ns, 10_000_000);
        assert_eq!(p.src_burst_ns, 200_000_000);
        assert_eq!(p.src_block_ns, 60_000_000_000);
        assert_eq!(p.reflect_cost_ns, 1_000_000);
        assert_eq!(p.monitor, 1);
        assert_eq!(p.allow_v4, 3, "list counts are kept");
        Limits::default().apply(&mut p);
        assert_eq!(
            (p.src_cost_ns, p.src_block_ns, p.reflect_cost_ns),
            (0, 0, 0)
        );
    }

    #[test]
    fn top_sorts_by_syns_and_lists_the_blocked() {
        let key = |last: u8| AddrKey {
            family: 4,
            addr: [198, 18, 0, last, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let state = |syns, blocked_until_ns| SourceState {
            tat_ns: 0,
            blocked_until_ns,
            syns,
            dropped: syns / 2,
        };
        let now = 100_000_000_000;
        let entries = vec![
            (key(1), state(10, 0)),
            (key(2), state(500, now + 1_500_000_000)),
            (key(3), state(50, now - 1)),
        ];
        let (heavy, blocked) = top(&entries, now, 2);
        assert_eq!(heavy.len(), 2);
        assert_eq!(heavy[0].source, "198.18.0.2");
        assert_eq!(heavy[0].blocked_for_s, Some(2));
        assert_eq!(heavy[1].source, "198.18.0.3");
        assert_eq!(
            heavy[1].blocked_for_s, None,
            "an expired block is not a block"
        );
        assert_eq!(blocked.len(), 1);
        let v6 = AddrKey {
            family: FAMILY_V6,
            addr: Ipv6Addr::new(0x2001, 2, 0, 5, 0, 0, 0, 0).octets(),
        };
        assert_eq!(source_name(&v6), "2001:2:0:5::/64");
    }
}
