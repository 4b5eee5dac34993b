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
//! host's) makes its family not known. So does a family with more addresses than the config
//! holds, and both families on a loopback device or when either list cannot be read: the
//! program then takes every destination of that family as the host's (as before the check
//! existed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use synguard_common::host::{NO_ADDR_V4, NO_ADDR_V6, local_salt, local_words_v4, local_words_v6};
use synguard_common::maps::{Config, LOCAL_ADDRS};

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
    /// The local route wider than one address that made a family not known, for the log.
    pub v4_prefix: Option<LocalRoute>,
    pub v6_prefix: Option<LocalRoute>,
}

impl LocalAddrs {
    /// The namespace's addresses for a program attached to `iface`; all "not known" on a
    /// loopback device or when the list cannot be read. A bond's slave takes its bond's
    /// link-local addresses too: the bond's frames arrive through it.
    pub fn read(iface: &str, loopback: bool) -> Self {
        if loopback {
            return LocalAddrs::default();
        }
        let (Ok(list), Ok(routes)) = (nix::ifaddrs::getifaddrs(), local_routes::read()) else {
            return LocalAddrs::default();
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
        Self::of_link(&link, found, &routes)
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
        let (mut v4, mut v6): (Vec<Ipv4Addr>, Vec<Ipv6Addr>) = (Vec::new(), Vec::new());
        // A route's single address is taken as on no interface of its own: its link-local
        // ones are left out (the interface's own come with `found`).
        let routed = routes
            .iter()
            .filter(|r| r.is_host())
            .map(|r| (String::new(), r.addr));
        for (name, ip) in found.into_iter().chain(routed) {
            match ip {
                IpAddr::V4(a) if !a.is_loopback() && !v4.contains(&a) => v4.push(a),
                IpAddr::V6(a)
                    if !a.is_loopback()
                        && (!a.is_unicast_link_local() || link.contains(&name.as_str()))
                        && !v6.contains(&a) =>
                {
                    v6.push(a)
                }
                _ => {}
            }
        }
        let v4: Vec<[u8; 4]> = v4.iter().map(Ipv4Addr::octets).collect();
        let v6: Vec<[u8; 16]> = v6.iter().map(Ipv6Addr::octets).collect();
        let salt = local_salt(&v4, &v6);
        let (mut v4_n, v4) = local_words_v4(&v4, salt);
        let (mut v6_n, v6) = local_words_v6(&v6, salt);
        let v4_prefix = wide_route(routes, true);
        let v6_prefix = wide_route(routes, false);
        if v4_prefix.is_some() {
            v4_n = 0;
        }
        if v6_prefix.is_some() {
            v6_n = 0;
        }
        LocalAddrs {
            salt,
            v4_n,
            v4,
            v6_n,
            v6,
            v4_prefix,
            v6_prefix,
        }
    }

    /// Into the config's fields.
    pub fn set(&self, c: &mut Config) {
        c.local_salt = self.salt;
        (c.local_v4_n, c.local_v4) = (self.v4_n, self.v4);
        (c.local_v6_n, c.local_v6) = (self.v6_n, self.v6);
    }

    /// The config's fields read back (a program's pinned config map); no prefix is known.
    pub fn from_config(c: &Config) -> Self {
        LocalAddrs {
            salt: c.local_salt,
            v4_n: c.local_v4_n,
            v4: c.local_v4,
            v6_n: c.local_v6_n,
            v6: c.local_v6,
            v4_prefix: None,
            v6_prefix: None,
        }
    }

    /// The IPv4 address in each slot (`None`: empty), as the program's `host::dst_slots_v4`
    /// numbers them; `None` where the family is not known.
    pub fn slots_v4(&self) -> Option<Vec<Option<IpAddr>>> {
        let empty = u32::from_ne_bytes(NO_ADDR_V4);
        (self.v4_n != 0).then(|| {
            self.v4
                .iter()
                .map(|&w| (w != empty).then(|| IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes()))))
                .collect()
        })
    }

    /// [`Self::slots_v4`] for IPv6.
    pub fn slots_v6(&self) -> Option<Vec<Option<IpAddr>>> {
        (self.v6_n != 0).then(|| {
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

    /// `198.18.0.1, 2001:2::1` for the log; "any IPv4" / "any IPv6" for a family not known.
    pub fn text(&self) -> String {
        let mut parts = Vec::new();
        for (slots, name, prefix) in [
            (self.slots_v4(), "IPv4", self.v4_prefix),
            (self.slots_v6(), "IPv6", self.v6_prefix),
        ] {
            match slots {
                None => parts.push(any(name, prefix)),
                Some(s) => parts.extend(s.iter().flatten().map(IpAddr::to_string)),
            }
        }
        parts.join(", ")
    }
}

/// The first local route of the family wider than one address, but the loopback range's
/// (`local 127.0.0.0/8 dev lo`, in every namespace: a loopback destination on a NIC is a
/// martian).
fn wide_route(routes: &[LocalRoute], v4: bool) -> Option<LocalRoute> {
    routes
        .iter()
        .find(|r| r.addr.is_ipv4() == v4 && !r.is_host() && !r.addr.is_loopback())
        .copied()
}

/// "any IPv4", and which local route made it so.
fn any(family: &str, prefix: Option<LocalRoute>) -> String {
    match prefix {
        Some(r) => format!("any {family} (local route {r})"),
        None => format!("any {family}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synguard_common::host::{addr_words, dst_local_v4, dst_local_v6};

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

    #[test]
    fn too_many_addresses_are_not_known() {
        let many: Vec<(String, IpAddr)> = (1..=LOCAL_ADDRS as u8 + 1)
            .map(|i| ("eth0".to_string(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))))
            .collect();
        let l = LocalAddrs::of("eth0", many, &[]);
        assert_eq!(l.v4_n, 0);
        assert_eq!(l.v6_n, 1, "no IPv6 address: none is local");
        assert_eq!(l.text(), "any IPv4");
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
    fn an_anyip_prefix_makes_its_family_not_known() {
        let l = with_routes(&["192.0.2.0/24"]);
        assert_eq!((l.v4_n, l.v6_n != 0), (0, true));
        assert_eq!(l.text(), "any IPv4 (local route 192.0.2.0/24), 2001:2::1");
        let v4 = |s: &str| u32::from_ne_bytes(s.parse::<Ipv4Addr>().unwrap().octets());
        assert!(dst_local_v4(v4("192.0.2.200"), l.v4_n, l.salt, &l.v4));
        let l = with_routes(&["2001:db8::/64"]);
        assert_eq!((l.v4_n != 0, l.v6_n), (true, 0));
        assert_eq!(l.text(), "198.18.0.1, any IPv6 (local route 2001:db8::/64)");
        let v6 = |s: &str| addr_words(&s.parse::<Ipv6Addr>().unwrap().octets());
        assert!(dst_local_v6(&v6("2001:db8::1234"), l.v6_n, l.salt, &l.v6));
    }
}
