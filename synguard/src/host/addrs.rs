//! The host's own addresses, which a segment to a protected port must be addressed to: a frame
//! for the interface's MAC with another destination is one the host forwards (a router, a node
//! whose containers' addresses are routed to it), and the program leaves it alone
//! (`pass_not_local`, docs/host-checks.md).
//!
//! Which addresses: every IPv4 address of the namespace's interfaces (the kernel takes a
//! segment for any of them on any interface), every IPv6 address but link-local ones of other
//! interfaces (a link-local address is the host's only on its own link), and no loopback
//! address (one arriving on a NIC is a martian destination). Local routes (AnyIP, `ip route add
//! local PREFIX`) are not read: a segment to such an address passes to the kernel unanswered.
//! More addresses of a family than the config holds, or a loopback device: not known, and the
//! program takes every destination of that family as the host's (as before the check existed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use synguard_common::host::{NO_ADDR_V4, NO_ADDR_V6, local_words_v4, local_words_v6};
use synguard_common::maps::{Config, LOCAL_ADDRS};

/// The addresses as `Config` holds them (`local_v4_n` ... `local_v6`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalAddrs {
    pub v4_n: u32,
    pub v4: [u32; LOCAL_ADDRS],
    pub v6_n: u32,
    pub v6: [[u32; 4]; LOCAL_ADDRS],
}

impl LocalAddrs {
    /// The namespace's addresses for a program attached to `iface`; all "not known" on a
    /// loopback device or when the list cannot be read.
    pub fn read(iface: &str, loopback: bool) -> Self {
        if loopback {
            return LocalAddrs::default();
        }
        let Ok(list) = nix::ifaddrs::getifaddrs() else {
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
        Self::of(iface, found)
    }

    /// Pure: the addresses of `found` (interface, address) that count for `iface`.
    pub fn of(iface: &str, found: impl IntoIterator<Item = (String, IpAddr)>) -> Self {
        let (mut v4, mut v6): (Vec<Ipv4Addr>, Vec<Ipv6Addr>) = (Vec::new(), Vec::new());
        for (name, ip) in found {
            match ip {
                IpAddr::V4(a) if !a.is_loopback() && !v4.contains(&a) => v4.push(a),
                IpAddr::V6(a)
                    if !a.is_loopback()
                        && (!a.is_unicast_link_local() || name == iface)
                        && !v6.contains(&a) =>
                {
                    v6.push(a)
                }
                _ => {}
            }
        }
        let (v4_n, v4) = local_words_v4(&v4.iter().map(Ipv4Addr::octets).collect::<Vec<_>>());
        let (v6_n, v6) = local_words_v6(&v6.iter().map(Ipv6Addr::octets).collect::<Vec<_>>());
        LocalAddrs { v4_n, v4, v6_n, v6 }
    }

    /// Into the config's fields.
    pub fn set(&self, c: &mut Config) {
        (c.local_v4_n, c.local_v4) = (self.v4_n, self.v4);
        (c.local_v6_n, c.local_v6) = (self.v6_n, self.v6);
    }

    /// `198.18.0.1, 2001:2::1` for the log; "any IPv4" / "any IPv6" for a family not known.
    pub fn text(&self) -> String {
        let mut parts = Vec::new();
        if self.v4_n == 0 {
            parts.push("any IPv4".to_string());
        }
        let no_v4 = u32::from_ne_bytes(NO_ADDR_V4);
        for w in self.v4.iter().filter(|&&w| self.v4_n != 0 && w != no_v4) {
            parts.push(Ipv4Addr::from(w.to_ne_bytes()).to_string());
        }
        if self.v6_n == 0 {
            parts.push("any IPv6".to_string());
        }
        for w in self.v6.iter().filter(|_| self.v6_n != 0) {
            let mut b = [0u8; 16];
            for (j, word) in w.iter().enumerate() {
                b[4 * j..4 * j + 4].copy_from_slice(&word.to_ne_bytes());
            }
            if b != NO_ADDR_V6 {
                parts.push(Ipv6Addr::from(b).to_string());
            }
        }
        parts.join(", ")
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
        );
        let mut listed: Vec<String> = l.text().split(", ").map(String::from).collect();
        listed.sort();
        assert_eq!(listed, ["172.17.0.1", "198.18.0.1", "2001:2::1", "fe80::1"]);
        let v4 = |s: &str| u32::from_ne_bytes(s.parse::<Ipv4Addr>().unwrap().octets());
        assert!(dst_local_v4(v4("172.17.0.1"), l.v4_n, &l.v4));
        assert!(!dst_local_v4(v4("127.0.0.1"), l.v4_n, &l.v4));
        assert!(!dst_local_v4(v4("198.18.0.99"), l.v4_n, &l.v4));
        let v6 = |s: &str| addr_words(&s.parse::<Ipv6Addr>().unwrap().octets());
        assert!(dst_local_v6(&v6("fe80::1"), l.v6_n, &l.v6));
        assert!(!dst_local_v6(&v6("fe80::99"), l.v6_n, &l.v6));
    }

    #[test]
    fn too_many_addresses_are_not_known() {
        let many: Vec<(String, IpAddr)> = (1..=LOCAL_ADDRS as u8 + 1)
            .map(|i| ("eth0".to_string(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))))
            .collect();
        let l = LocalAddrs::of("eth0", many);
        assert_eq!(l.v4_n, 0);
        assert_eq!(l.v6_n, 1, "no IPv6 address: none is local");
        assert_eq!(l.text(), "any IPv4");
    }
}
