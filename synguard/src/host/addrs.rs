//! The host's own addresses, which a segment to a protected port must be addressed to: a frame
//! for the interface's MAC with another destination is one the host forwards (a router, a node
//! whose containers' addresses are routed to it), and the program leaves it alone
//! (`pass_not_local`, docs/host-checks.md).
//!
//! Which addresses: every IPv4 address of the namespace's interfaces (the kernel takes a
//! segment for any of them on any interface), every IPv6 address but link-local ones of other
//! interfaces (a link-local address is the host's only on its own link), and no loopback
//! address (one arriving on a NIC is a martian destination). The local routing table is read
//! too (`local_routes`): an address's own route adds nothing new, a single address routed as
//! local (`ip route add local 192.0.2.7 dev lo`) is listed like an interface's, and a wider
//! local prefix (AnyIP, `ip route add local 192.0.2.0/24 dev lo`: every address in it is the
//! host's) is one too.
//!
//! Up to `LOCAL_ADDRS` addresses of a family go in the config map's slots (two compares per
//! segment). A family with more, or with a local prefix, goes in the program's LPM trie instead
//! ([`LocalTable`], `SG_LOCAL_V4` / `SG_LOCAL_V6`, `LOCAL_IN_MAP`): a node that holds a
//! service address per Kubernetes service, a host with a whole range routed to it. Only a
//! loopback device, a list that cannot be read or more than `LOCAL_MAP_ENTRIES` entries leave a
//! family not known: the program then takes every destination of that family as the host's
//! (as before the check existed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use synguard_common::host::{
    NO_ADDR_V4, NO_ADDR_V6, in_slots, local_salt, local_words_v4, local_words_v6,
};
use synguard_common::maps::{Config, LOCAL_ADDRS, LOCAL_IN_MAP, LOCAL_MAP_ENTRIES};

use crate::host::{
    local_routes::{self, LocalRoute},
    nic, rtnl,
};

/// The addresses as `Config` holds them (`local_v4_n` ... `local_v6`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalAddrs {
    /// `Config::local_salt`: how the addresses are placed in their slots.
    pub salt: u32,
    pub v4_n: u32,
    pub v4: [u32; LOCAL_ADDRS],
    pub v6_n: u32,
    pub v6: [[u32; 4]; LOCAL_ADDRS],
    /// The first local route wider than one address, for the log.
    pub v4_prefix: Option<LocalRoute>,
    pub v6_prefix: Option<LocalRoute>,
    /// What the family's trie holds where its addresses are there (`LOCAL_IN_MAP`).
    pub v4_table: Option<TableSummary>,
    pub v6_table: Option<TableSummary>,
}

/// Where the program finds a family of the host's own addresses ([`LocalAddrs::held`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Held {
    /// The config's slots (up to `LOCAL_ADDRS`).
    Slots,
    /// The program's trie (`LOCAL_IN_MAP`).
    Table,
    /// Not known: every destination counts as the host's.
    #[default]
    Unknown,
}

impl Held {
    /// For `status`, `doctor` and the log.
    pub fn text(self) -> &'static str {
        match self {
            Held::Slots => "in the config's slots",
            Held::Table => "in the program's table",
            Held::Unknown => "not known",
        }
    }

    /// For a metric's label.
    pub fn label(self) -> &'static str {
        match self {
            Held::Slots => "slots",
            Held::Table => "table",
            Held::Unknown => "unknown",
        }
    }
}

/// A family's entries in its trie, as counted for the log and compared to notice a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSummary {
    /// Single addresses.
    pub addrs: u32,
    /// Wider local prefixes.
    pub prefixes: u32,
    /// A hash of every entry: another set of the same size is a change.
    pub digest: u64,
}

/// The tries' entries (prefix, prefix length) for the families whose [`LocalAddrs`] says they
/// are there; empty for the others (whose trie is then left as it is: unread).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalTable {
    pub v4: Vec<([u8; 4], u8)>,
    pub v6: Vec<([u8; 16], u8)>,
}

/// One family's addresses and wider local prefixes, before they are placed.
struct Family<A> {
    addrs: Vec<A>,
    prefixes: Vec<(A, u8)>,
}

impl<A: Copy + Hash + Ord> Family<A> {
    /// In the config's slots: no prefix, and few enough addresses.
    fn fits_slots(&self) -> bool {
        self.prefixes.is_empty() && self.addrs.len() <= LOCAL_ADDRS
    }

    /// The trie's entries, at `full` bits for a single address.
    fn entries(&self, full: u8) -> Vec<(A, u8)> {
        let mut e: Vec<(A, u8)> = self.addrs.iter().map(|&a| (a, full)).collect();
        e.extend(self.prefixes.iter().copied());
        e.sort();
        e.dedup();
        e
    }

    fn summary(&self, entries: &[(A, u8)]) -> TableSummary {
        let mut h = DefaultHasher::new();
        entries.hash(&mut h);
        TableSummary {
            addrs: self.addrs.len() as u32,
            prefixes: self.prefixes.len() as u32,
            digest: h.finish(),
        }
    }
}

impl LocalAddrs {
    /// The namespace's addresses for a program attached to `iface`, and the tries' entries
    /// where they go there; all "not known" on a loopback device or when the list cannot be
    /// read. A bond's slave takes its bond's link-local addresses too: the bond's frames arrive
    /// through it.
    pub fn read(iface: &str, loopback: bool) -> (Self, LocalTable) {
        if loopback {
            return Default::default();
        }
        let (Ok(list), Ok(routes)) = (nix::ifaddrs::getifaddrs(), local_routes::read()) else {
            return Default::default();
        };
        let found = list.filter_map(|a| {
            let addr = a.address?;
            let ip = match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
                (Some(v4), _) => IpAddr::V4(v4.ip()),
                (_, Some(v6)) => IpAddr::V6(v6.ip()),
                _ => return None,
            };
            Some((a.interface_name, ip))
        });
        let master = nic::check_interface(iface)
            .ok()
            .and_then(|i| rtnl::link_facts(i).ok())
            .and_then(|f| f.master)
            .and_then(nic::name_of);
        let link: Vec<&str> = std::iter::once(iface).chain(master.as_deref()).collect();
        Self::with_table(&link, found, &routes)
    }

    /// Pure: the addresses of `found` (interface, address) and `routes` that count for `iface`.
    pub fn of(
        iface: &str,
        found: impl IntoIterator<Item = (String, IpAddr)>,
        routes: &[LocalRoute],
    ) -> Self {
        Self::of_link(&[iface], found, routes)
    }

    /// [`LocalAddrs::of`] for a program whose link is that of the interfaces `link` (the one
    /// it is attached to, and its bond): their link-local addresses are the host's on it.
    pub fn of_link(
        link: &[&str],
        found: impl IntoIterator<Item = (String, IpAddr)>,
        routes: &[LocalRoute],
    ) -> Self {
        Self::with_table(link, found, routes).0
    }

    /// [`LocalAddrs::of_link`], with the tries' entries for the families that go there.
    pub fn with_table(
        link: &[&str],
        found: impl IntoIterator<Item = (String, IpAddr)>,
        routes: &[LocalRoute],
    ) -> (Self, LocalTable) {
        let (mut v4, mut v6): (Vec<Ipv4Addr>, Vec<Ipv6Addr>) = (Vec::new(), Vec::new());
        // Thousands of addresses are possible (a service address each): no list search.
        let mut seen = HashSet::new();
        // A route's single address is taken as on no interface of its own: its link-local
        // ones are left out (the interface's own come with `found`).
        let routed = routes
            .iter()
            .filter(|r| r.is_host())
            .map(|r| (String::new(), r.addr));
        for (name, ip) in found.into_iter().chain(routed) {
            let ours = match ip {
                IpAddr::V4(a) => !a.is_loopback(),
                IpAddr::V6(a) => {
                    !a.is_loopback()
                        && (!a.is_unicast_link_local() || link.contains(&name.as_str()))
                }
            };
            if !ours || !seen.insert(ip) {
                continue;
            }
            match ip {
                IpAddr::V4(a) => v4.push(a),
                IpAddr::V6(a) => v6.push(a),
            }
        }
        let v4 = Family {
            addrs: v4.iter().map(Ipv4Addr::octets).collect(),
            prefixes: wide_routes(routes, |a| match a {
                IpAddr::V4(a) => Some(a.octets()),
                IpAddr::V6(_) => None,
            }),
        };
        let v6 = Family {
            addrs: v6.iter().map(Ipv6Addr::octets).collect(),
            prefixes: wide_routes(routes, |a| match a {
                IpAddr::V6(a) => Some(a.octets()),
                IpAddr::V4(_) => None,
            }),
        };
        // A family goes in its trie where it does not fit the slots (too many addresses, a
        // prefix, or no salt that places them), as long as the trie can hold it.
        let none4: &[[u8; 4]] = &[];
        let none6: &[[u8; 16]] = &[];
        let (s4, s6) = (v4.fits_slots(), v6.fits_slots());
        let salt = local_salt(
            if s4 { &v4.addrs } else { none4 },
            if s6 { &v6.addrs } else { none6 },
        );
        let (mut v4_n, v4_words) = local_words_v4(if s4 { &v4.addrs } else { none4 }, salt);
        let (mut v6_n, v6_words) = local_words_v6(if s6 { &v6.addrs } else { none6 }, salt);
        let mut table = LocalTable::default();
        let (mut v4_table, mut v6_table) = (None, None);
        if !s4 || v4_n == 0 {
            (v4_n, v4_table, table.v4) = in_trie(&v4, 32);
        }
        if !s6 || v6_n == 0 {
            (v6_n, v6_table, table.v6) = in_trie(&v6, 128);
        }
        let addrs = LocalAddrs {
            salt,
            v4_n,
            v4: v4_words,
            v6_n,
            v6: v6_words,
            v4_prefix: wide_route(routes, true),
            v6_prefix: wide_route(routes, false),
            v4_table,
            v6_table,
        };
        (addrs, table)
    }

    /// Where the program finds the family's addresses.
    pub fn held(&self, ipv6: bool) -> Held {
        match if ipv6 { self.v6_n } else { self.v4_n } {
            0 => Held::Unknown,
            LOCAL_IN_MAP => Held::Table,
            _ => Held::Slots,
        }
    }

    /// Where its trie could not be written, a family that was to be read from it is not known:
    /// every destination counts as the host's (fail open).
    pub fn not_known_in_trie(&mut self) {
        if self.v4_n == LOCAL_IN_MAP {
            (self.v4_n, self.v4_table) = (0, None);
        }
        if self.v6_n == LOCAL_IN_MAP {
            (self.v6_n, self.v6_table) = (0, None);
        }
    }

    /// Into the config's fields.
    pub fn set(&self, c: &mut Config) {
        c.local_salt = self.salt;
        (c.local_v4_n, c.local_v4) = (self.v4_n, self.v4);
        (c.local_v6_n, c.local_v6) = (self.v6_n, self.v6);
    }

    /// The config's fields read back (a program's pinned config map); no prefix or trie is
    /// known.
    pub fn from_config(c: &Config) -> Self {
        LocalAddrs {
            salt: c.local_salt,
            v4_n: c.local_v4_n,
            v4: c.local_v4,
            v6_n: c.local_v6_n,
            v6: c.local_v6,
            v4_prefix: None,
            v6_prefix: None,
            v4_table: None,
            v6_table: None,
        }
    }

    /// The IPv4 address in each slot (`None`: empty), as the program's `host::dst_slots_v4`
    /// numbers them; `None` where the family is not known.
    pub fn slots_v4(&self) -> Option<Vec<Option<IpAddr>>> {
        let empty = u32::from_ne_bytes(NO_ADDR_V4);
        in_slots(self.v4_n).then(|| {
            self.v4
                .iter()
                .map(|&w| (w != empty).then(|| IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes()))))
                .collect()
        })
    }

    /// [`Self::slots_v4`] for IPv6.
    pub fn slots_v6(&self) -> Option<Vec<Option<IpAddr>>> {
        in_slots(self.v6_n).then(|| {
            self.v6
                .iter()
                .map(|w| {
                    let mut b = [0u8; 16];
                    for (j, word) in w.iter().enumerate() {
                        b[4 * j..4 * j + 4].copy_from_slice(&word.to_ne_bytes());
                    }
                    (b != NO_ADDR_V6).then(|| IpAddr::V6(Ipv6Addr::from(b)))
                })
                .collect()
        })
    }

    /// The addresses of a family in the slots whose bits `slots` sets (bit `i`: slot `i`).
    pub fn in_slots(&self, ipv6: bool, slots: u32) -> Vec<IpAddr> {
        let list = if ipv6 {
            self.slots_v6()
        } else {
            self.slots_v4()
        };
        list.unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| slots & 1 << i != 0)
            .filter_map(|(_, a)| a)
            .collect()
    }

    /// `198.18.0.1, 2001:2::1` for the log; "12 IPv4 addresses and local route 192.0.2.0/24"
    /// for a family in its trie; "any IPv4" / "any IPv6" for a family not known.
    pub fn text(&self) -> String {
        let mut parts = Vec::new();
        for (n, slots, name, prefix, table) in [
            (
                self.v4_n,
                self.slots_v4(),
                "IPv4",
                self.v4_prefix,
                self.v4_table,
            ),
            (
                self.v6_n,
                self.slots_v6(),
                "IPv6",
                self.v6_prefix,
                self.v6_table,
            ),
        ] {
            match slots {
                Some(s) => parts.extend(s.iter().flatten().map(IpAddr::to_string)),
                None if n == LOCAL_IN_MAP => parts.push(in_trie_text(name, prefix, table)),
                None => parts.push(any(name)),
            }
        }
        if parts.is_empty() {
            return "no address".into();
        }
        parts.join(", ")
    }
}

/// A family in its trie, or `LOCAL_IN_MAP` for a family that holds more entries than it does:
/// not known then.
fn in_trie<A: Copy + Hash + Ord>(
    family: &Family<A>,
    full: u8,
) -> (u32, Option<TableSummary>, Vec<(A, u8)>) {
    let entries = family.entries(full);
    if entries.len() > LOCAL_MAP_ENTRIES as usize {
        return (0, None, Vec::new());
    }
    (LOCAL_IN_MAP, Some(family.summary(&entries)), entries)
}

/// "12 IPv4 addresses and local route 192.0.2.0/24 (and 2 more)".
fn in_trie_text(family: &str, prefix: Option<LocalRoute>, table: Option<TableSummary>) -> String {
    let Some(t) = table else {
        return format!("the {family} addresses in the program's table");
    };
    let mut text = format!(
        "{} {family} address{}",
        t.addrs,
        if t.addrs == 1 { "" } else { "es" }
    );
    if let Some(r) = prefix {
        text.push_str(&format!(" and local route {r}"));
        if t.prefixes > 1 {
            text.push_str(&format!(" (and {} more)", t.prefixes - 1));
        }
    }
    text
}

/// The local routes wider than one address of the family whose prefixes `bytes` gives, but the
/// loopback range's (`local 127.0.0.0/8 dev lo`, in every namespace: a loopback destination on
/// a NIC is a martian).
fn wide_routes<A>(routes: &[LocalRoute], bytes: impl Fn(IpAddr) -> Option<A>) -> Vec<(A, u8)> {
    routes
        .iter()
        .filter(|r| wide(r))
        .filter_map(|r| Some((bytes(r.addr)?, r.prefix)))
        .collect()
}

/// The family's first route of [`wide_routes`], for the log.
fn wide_route(routes: &[LocalRoute], v4: bool) -> Option<LocalRoute> {
    routes
        .iter()
        .find(|r| r.addr.is_ipv4() == v4 && wide(r))
        .copied()
}

/// A local route wider than one address, but the loopback range's.
fn wide(r: &LocalRoute) -> bool {
    !r.is_host() && !r.addr.is_loopback()
}

/// "any IPv4".
fn any(family: &str) -> String {
    format!("any {family}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use synguard_common::host::{addr_words, dst_local_v4, dst_local_v6};
    use synguard_common::maps::LOCAL_MAP_ENTRIES;

    fn found(list: &[(&str, &str)]) -> Vec<(String, IpAddr)> {
        list.iter()
            .map(|(i, a)| (i.to_string(), a.parse().unwrap()))
            .collect()
    }

    #[test]
    fn every_interfaces_addresses_but_loopback_and_others_link_local() {
        let l = LocalAddrs::of(
            "eth0",
            found(&[
                ("lo", "127.0.0.1"),
                ("lo", "::1"),
                ("eth0", "198.18.0.1"),
                ("eth0", "2001:2::1"),
                ("eth0", "fe80::1"),
                ("docker0", "172.17.0.1"),
                ("veth1", "fe80::99"),
            ]),
            &[],
        );
        let mut listed: Vec<String> = l.text().split(", ").map(String::from).collect();
        listed.sort();
        assert_eq!(listed, ["172.17.0.1", "198.18.0.1", "2001:2::1", "fe80::1"]);
        let v4 = |s: &str| u32::from_ne_bytes(s.parse::<Ipv4Addr>().unwrap().octets());
        assert!(dst_local_v4(v4("172.17.0.1"), l.v4_n, l.salt, &l.v4));
        assert!(!dst_local_v4(v4("127.0.0.1"), l.v4_n, l.salt, &l.v4));
        assert!(!dst_local_v4(v4("198.18.0.99"), l.v4_n, l.salt, &l.v4));
        let v6 = |s: &str| addr_words(&s.parse::<Ipv6Addr>().unwrap().octets());
        assert!(dst_local_v6(&v6("fe80::1"), l.v6_n, l.salt, &l.v6));
        assert!(!dst_local_v6(&v6("fe80::99"), l.v6_n, l.salt, &l.v6));
    }

    #[test]
    fn a_bond_slave_takes_its_bonds_link_local_addresses() {
        let addrs = found(&[
            ("bond0", "198.18.0.1"),
            ("bond0", "fe80::1"),
            ("eth9", "fe80::99"),
        ]);
        let slave = LocalAddrs::of_link(&["eth0", "bond0"], addrs.clone(), &[]);
        let mut listed: Vec<String> = slave.text().split(", ").map(String::from).collect();
        listed.sort();
        assert_eq!(listed, ["198.18.0.1", "fe80::1"]);
        // Alone, the slave's link has no link-local address of its own.
        assert_eq!(LocalAddrs::of("eth0", addrs, &[]).text(), "198.18.0.1");
    }

    fn v4_addrs(n: u32) -> Vec<(String, IpAddr)> {
        (0..n)
            .map(|i| {
                (
                    "eth0".to_string(),
                    IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)),
                )
            })
            .collect()
    }

    #[test]
    fn more_addresses_than_the_slots_hold_go_to_the_trie() {
        let (l, table) = LocalAddrs::with_table(&["eth0"], v4_addrs(LOCAL_ADDRS as u32 + 1), &[]);
        assert_eq!(l.v4_n, LOCAL_IN_MAP);
        assert_eq!(l.v6_n, 1, "no IPv6 address: none is local, in the slots");
        assert_eq!(l.text(), "9 IPv4 addresses");
        assert_eq!(table.v4.len(), 9);
        assert!(table.v4.contains(&([10, 0, 0, 9], 32)));
        assert!(table.v6.is_empty());
        assert_eq!(l.slots_v4(), None, "no slot names an address");
        // Eight stay in the slots, with nothing in the trie.
        let (l, table) = LocalAddrs::with_table(&["eth0"], v4_addrs(LOCAL_ADDRS as u32), &[]);
        assert!((2..=9).contains(&l.v4_n));
        assert_eq!((l.v4_table, table), (None, LocalTable::default()));
    }

    #[test]
    fn each_family_says_where_it_is_held() {
        let l = LocalAddrs::of("eth0", v4_addrs(12), &[]);
        assert_eq!((l.held(false), l.held(true)), (Held::Table, Held::Slots));
        let l = LocalAddrs::of("eth0", v4_addrs(LOCAL_MAP_ENTRIES + 1), &[]);
        assert_eq!(l.held(false), Held::Unknown);
    }

    #[test]
    fn another_set_of_as_many_addresses_is_a_change() {
        let mut other = v4_addrs(12);
        other[11].1 = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
        let a = LocalAddrs::of("eth0", v4_addrs(12), &[]);
        let b = LocalAddrs::of("eth0", other, &[]);
        assert_eq!(a.text(), b.text());
        assert_ne!(a, b);
        // The order the interfaces list them in is no change.
        let mut reversed = v4_addrs(12);
        reversed.reverse();
        assert_eq!(a, LocalAddrs::of("eth0", reversed, &[]));
    }

    #[test]
    fn more_than_the_trie_holds_is_not_known() {
        let l = LocalAddrs::of("eth0", v4_addrs(LOCAL_MAP_ENTRIES + 1), &[]);
        assert_eq!((l.v4_n, l.v4_table), (0, None));
        assert_eq!(l.text(), "any IPv4");
    }

    #[test]
    fn a_trie_that_could_not_be_written_leaves_its_family_not_known() {
        let mut l = LocalAddrs::of("eth0", v4_addrs(12), &[]);
        let v6 = l.v6_n;
        l.not_known_in_trie();
        assert_eq!((l.v4_n, l.v4_table, l.v6_n), (0, None, v6));
        let v4 = |s: &str| u32::from_ne_bytes(s.parse::<Ipv4Addr>().unwrap().octets());
        assert!(dst_local_v4(v4("192.0.2.1"), l.v4_n, l.salt, &l.v4));
    }

    fn route(s: &str) -> LocalRoute {
        let (addr, prefix) = s.split_once('/').unwrap();
        LocalRoute {
            addr: addr.parse().unwrap(),
            prefix: prefix.parse().unwrap(),
        }
    }

    /// What the local table holds for `found`'s addresses, the loopback's and the
    /// interfaces' link-local ones included.
    const KERNELS_OWN: [&str; 6] = [
        "127.0.0.0/8",
        "127.0.0.1/32",
        "198.18.0.1/32",
        "::1/128",
        "2001:2::1/128",
        "fe80::99/128",
    ];

    fn with_routes(extra: &[&str]) -> LocalAddrs {
        let routes: Vec<LocalRoute> = KERNELS_OWN.iter().chain(extra).map(|r| route(r)).collect();
        LocalAddrs::of(
            "eth0",
            found(&[
                ("eth0", "198.18.0.1"),
                ("eth0", "2001:2::1"),
                ("veth1", "fe80::99"),
            ]),
            &routes,
        )
    }

    #[test]
    fn the_kernels_own_local_routes_add_nothing() {
        let l = with_routes(&[]);
        assert_eq!(l.text(), "198.18.0.1, 2001:2::1");
        assert_eq!(
            l,
            LocalAddrs::of(
                "eth0",
                found(&[("eth0", "198.18.0.1"), ("eth0", "2001:2::1")]),
                &[]
            )
        );
    }

    #[test]
    fn an_address_routed_as_local_is_the_hosts() {
        let l = with_routes(&["192.0.2.7/32", "2001:db8::7/128"]);
        let mut listed: Vec<String> = l.text().split(", ").map(String::from).collect();
        listed.sort();
        assert_eq!(
            listed,
            ["192.0.2.7", "198.18.0.1", "2001:2::1", "2001:db8::7"]
        );
        let v4 = |s: &str| u32::from_ne_bytes(s.parse::<Ipv4Addr>().unwrap().octets());
        assert!(dst_local_v4(v4("192.0.2.7"), l.v4_n, l.salt, &l.v4));
        assert!(!dst_local_v4(v4("192.0.2.8"), l.v4_n, l.salt, &l.v4));
    }

    #[test]
    fn an_anyip_prefix_puts_its_family_in_the_trie() {
        let routes: Vec<LocalRoute> = KERNELS_OWN
            .iter()
            .chain(&["192.0.2.0/24"])
            .map(|r| route(r))
            .collect();
        let (l, table) = LocalAddrs::with_table(
            &["eth0"],
            found(&[("eth0", "198.18.0.1"), ("eth0", "2001:2::1")]),
            &routes,
        );
        assert_eq!((l.v4_n, l.v6_n != LOCAL_IN_MAP), (LOCAL_IN_MAP, true));
        assert_eq!(
            l.text(),
            "1 IPv4 address and local route 192.0.2.0/24, 2001:2::1"
        );
        assert_eq!(table.v4, [([192, 0, 2, 0], 24), ([198, 18, 0, 1], 32)]);
        let l = with_routes(&["2001:db8::/64", "2001:db8:1::/64"]);
        assert_eq!((l.v4_n != LOCAL_IN_MAP, l.v6_n), (true, LOCAL_IN_MAP));
        assert_eq!(
            l.text(),
            "198.18.0.1, 1 IPv6 address and local route 2001:db8::/64 (and 1 more)"
        );
    }
}
