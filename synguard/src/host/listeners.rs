//! The ports something listens on in the caller's network namespace, by the family that reaches
//! them and the address they are bound to (`ss -ltn`, through sock_diag: the kernel sends only
//! listening sockets, so a server with a million connections costs this no more than an idle
//! one). A SYN to a port nothing listens on gets a RST from the host (`tcp_v4_rcv` finds no
//! socket: `tcp_v4_send_reset`), and so does a SYN to an address no listener of the port is
//! bound to while its listeners are all bound to particular addresses
//! (`__inet_lookup_listener` matches the wildcard address or the destination). The program must
//! not answer either with a SYN-ACK (`PORT_NO_LISTENER_*`).
//!
//! An IPv6 socket bound to `::` without `IPV6_V6ONLY` takes IPv4 SYNs too; one bound to a
//! v4-mapped address takes only IPv4 SYNs, to that address.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use synguard_common::maps::{
    BoundKey, LOCAL_IN_MAP, PORT_NO_LISTENER_V4, PORT_NO_LISTENER_V6, port_bound_only,
    port_no_listener_at,
};

use crate::host::{
    addrs::LocalAddrs,
    netlink::{self, attrs},
};

/// include/uapi/linux/netlink.h, sock_diag.h and inet_diag.h.
const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_SKV6ONLY: u16 = 11;
/// `struct inet_diag_req_v2` and `struct inet_diag_msg`, and where the message holds the
/// socket's port (network order) and address.
const REQ_LEN: usize = 56;
const MSG_LEN: usize = 72;
const MSG_SPORT: usize = 4;
const MSG_SRC: usize = 8;
/// `TCP_LISTEN` (include/net/tcp_states.h) as a state-set bit.
const TCPF_LISTEN: u32 = 1 << 10;

/// The listeners reachable over one family, by port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Family {
    /// Ports with a listener on the wildcard address: every destination reaches it.
    pub any: BTreeSet<u16>,
    /// Ports with listeners bound to particular addresses, and those addresses.
    pub at: BTreeMap<u16, BTreeSet<IpAddr>>,
}

impl Family {
    fn add(&mut self, port: u16, bound: Option<IpAddr>) {
        match bound {
            None => {
                self.any.insert(port);
            }
            Some(ip) => {
                self.at.entry(port).or_default().insert(ip);
            }
        }
    }

    /// Whether anything listens on `port` over the family.
    pub fn reaches(&self, port: u16) -> bool {
        self.any.contains(&port) || self.at.contains_key(&port)
    }

    /// The addresses `port`'s listeners are bound to, where all of them are (no wildcard
    /// listener, and at least one listener).
    fn bound_only(&self, port: u16) -> Option<&BTreeSet<IpAddr>> {
        self.at.get(&port).filter(|_| !self.any.contains(&port))
    }

    /// Which of `slots` (the config's address list, `None` for an empty slot) no listener of
    /// `port` is reached at, as bits (slot `i`: bit `i`); 0 where a wildcard listener or
    /// nothing listens (the port's family bit says that).
    fn unreached(&self, port: u16, slots: &[Option<IpAddr>]) -> u32 {
        let Some(bound) = self.bound_only(port) else {
            return 0;
        };
        slots
            .iter()
            .enumerate()
            .fold(0, |bits, (i, slot)| match slot {
                Some(ip) if !bound.contains(ip) => bits | 1 << i,
                _ => bits,
            })
    }
}

/// The namespace's listeners, by the family that reaches them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listening {
    pub v4: Family,
    pub v6: Family,
}

impl Listening {
    /// The namespace's listening TCP sockets, both families.
    pub fn read() -> io::Result<Self> {
        let mut l = Listening::default();
        for family in [libc::AF_INET, libc::AF_INET6] {
            let mut req = [0u8; REQ_LEN];
            req[0] = family as u8;
            req[1] = libc::IPPROTO_TCP as u8;
            req[4..8].copy_from_slice(&TCPF_LISTEN.to_ne_bytes());
            netlink::dump(
                NETLINK_SOCK_DIAG,
                SOCK_DIAG_BY_FAMILY,
                &req,
                |kind, body| {
                    if kind == SOCK_DIAG_BY_FAMILY {
                        l.add(body);
                    }
                },
            )?;
        }
        Ok(l)
    }

    /// One `inet_diag_msg`: its port and address for the families that reach it.
    fn add(&mut self, msg: &[u8]) {
        let (Some(head), Some(rest)) = (msg.get(..MSG_LEN), msg.get(MSG_LEN..)) else {
            return;
        };
        let port = u16::from_be_bytes([head[MSG_SPORT], head[MSG_SPORT + 1]]);
        let src = &head[MSG_SRC..MSG_SRC + 16];
        match i32::from(head[0]) {
            libc::AF_INET => {
                let ip = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
                self.v4
                    .add(port, (!ip.is_unspecified()).then_some(IpAddr::V4(ip)));
            }
            libc::AF_INET6 => {
                let ip = Ipv6Addr::from(<[u8; 16]>::try_from(src).unwrap_or_default());
                // Without the attribute (never seen: the kernel puts it on every IPv6 socket),
                // taken as dual-stack: the direction the program answered in before.
                let v6only = attrs(rest)
                    .find(|&(t, _)| t == INET_DIAG_SKV6ONLY)
                    .is_some_and(|(_, v)| v.first().is_some_and(|&b| b != 0));
                if let Some(v4) = ip.to_ipv4_mapped() {
                    self.v4
                        .add(port, (!v4.is_unspecified()).then_some(IpAddr::V4(v4)));
                } else if ip.is_unspecified() {
                    self.v6.add(port, None);
                    if !v6only {
                        self.v4.add(port, None);
                    }
                } else {
                    self.v6.add(port, Some(IpAddr::V6(ip)));
                }
            }
            _ => {}
        }
    }

    /// `port`'s `PORT_NO_LISTENER_*` bits, the per-address ones against `addrs`, the address
    /// list the config map holds (none where a family's list is not known).
    pub fn no_listener_flags(&self, port: u16, addrs: &LocalAddrs) -> u32 {
        let mut f = 0;
        if !self.v4.reaches(port) {
            f |= PORT_NO_LISTENER_V4;
        }
        if !self.v6.reaches(port) {
            f |= PORT_NO_LISTENER_V6;
        }
        if let Some(slots) = addrs.slots_v4() {
            f |= port_no_listener_at(false, self.v4.unreached(port, &slots));
        }
        if let Some(slots) = addrs.slots_v6() {
            f |= port_no_listener_at(true, self.v6.unreached(port, &slots));
        }
        for (ipv6, family, n) in [(false, &self.v4, addrs.v4_n), (true, &self.v6, addrs.v6_n)] {
            if n == LOCAL_IN_MAP && family.bound_only(port).is_some() {
                f |= port_bound_only(ipv6);
            }
        }
        f
    }

    /// `SG_BOUND`'s entries for `ports`: every address a port's listeners are bound to, for the
    /// families whose addresses are in the program's trie (`addrs`) and whose listeners on the
    /// port are all bound ([`Listening::no_listener_flags`] sets `PORT_BOUND_ONLY_*` for them).
    pub fn bound_keys(&self, ports: &[u16], addrs: &LocalAddrs) -> Vec<BoundKey> {
        let mut keys = Vec::new();
        for (ipv6, family, n) in [(false, &self.v4, addrs.v4_n), (true, &self.v6, addrs.v6_n)] {
            if n != LOCAL_IN_MAP {
                continue;
            }
            for &port in ports {
                for ip in family.bound_only(port).into_iter().flatten() {
                    keys.push(bound_key(*ip, port, ipv6));
                }
            }
        }
        keys
    }
}

/// `SG_BOUND`'s key for a listener bound to `ip` on `port`.
pub fn bound_key(ip: IpAddr, port: u16, ipv6: bool) -> BoundKey {
    let mut addr = [0u8; 16];
    match ip {
        IpAddr::V4(a) => addr[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => addr = a.octets(),
    }
    BoundKey {
        addr,
        port,
        ipv6: ipv6 as u8,
        _pad: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use synguard_common::maps::port_no_listener_at;

    use super::*;

    /// An `inet_diag_msg` for a listener of `family` on `port` bound to `src`, with
    /// `IPV6_V6ONLY` as given (IPv6 only).
    fn msg(family: i32, port: u16, src: &[u8], v6only: Option<bool>) -> Vec<u8> {
        let mut m = vec![0u8; MSG_LEN];
        m[0] = family as u8;
        m[1] = 10;
        m[MSG_SPORT..MSG_SPORT + 2].copy_from_slice(&port.to_be_bytes());
        m[MSG_SRC..MSG_SRC + src.len()].copy_from_slice(src);
        if let Some(only) = v6only {
            m.extend([5, 0, INET_DIAG_SKV6ONLY as u8, 0, only as u8, 0, 0, 0]);
        }
        m
    }

    /// With the host's addresses in the trie, a port whose listeners are all bound gets
    /// `PORT_BOUND_ONLY_*` and its addresses as `SG_BOUND` keys; a wildcard listener, or the
    /// addresses in the slots, none.
    #[test]
    fn bound_only_ports_of_a_family_in_the_trie_name_their_addresses() {
        use synguard_common::maps::{PORT_BOUND_ONLY_V4, PORT_BOUND_ONLY_V6};
        let many: Vec<(String, IpAddr)> = (1..=12)
            .map(|i| ("eth0".to_string(), IpAddr::from([10, 0, 0, i])))
            .collect();
        let trie = LocalAddrs::of("eth0", many.clone(), &[]);
        let slots = LocalAddrs::of("eth0", many[..2].to_vec(), &[]);
        let mut l = Listening::default();
        l.v4.add(443, Some(IpAddr::from([10, 0, 0, 3])));
        l.v4.add(80, None);
        l.v6.add(443, None);
        assert_eq!(
            l.no_listener_flags(443, &trie) & (PORT_BOUND_ONLY_V4 | PORT_BOUND_ONLY_V6),
            PORT_BOUND_ONLY_V4
        );
        assert_eq!(l.no_listener_flags(80, &trie) & PORT_BOUND_ONLY_V4, 0);
        assert_eq!(l.no_listener_flags(443, &slots) & PORT_BOUND_ONLY_V4, 0);
        assert_eq!(
            l.bound_keys(&[80, 443], &trie),
            [bound_key(IpAddr::from([10, 0, 0, 3]), 443, false)]
        );
        assert!(l.bound_keys(&[80, 443], &slots).is_empty());
    }

    fn mapped(v4: [u8; 4]) -> Vec<u8> {
        let mut a = vec![0u8; 10];
        a.extend([0xff, 0xff]);
        a.extend(v4);
        a
    }

    fn set(ports: &[u16]) -> BTreeSet<u16> {
        ports.iter().copied().collect()
    }

    #[test]
    fn each_listener_counts_for_the_families_and_addresses_that_reach_it() {
        let mut l = Listening::default();
        l.add(&msg(libc::AF_INET, 22, &[10, 0, 0, 1], None));
        l.add(&msg(libc::AF_INET, 25, &[0, 0, 0, 0], None));
        l.add(&msg(libc::AF_INET6, 80, &[0; 16], Some(false)));
        l.add(&msg(libc::AF_INET6, 443, &[0; 16], Some(true)));
        let mut one = vec![0x20, 0x01, 0x0d, 0xb8];
        one.extend([0; 11]);
        one.push(1);
        l.add(&msg(libc::AF_INET6, 8080, &one, Some(false)));
        l.add(&msg(
            libc::AF_INET6,
            8443,
            &mapped([10, 0, 0, 1]),
            Some(false),
        ));
        l.add(&msg(libc::AF_INET6, 9000, &[0; 16], None));
        assert_eq!(l.v4.any, set(&[25, 80, 9000]));
        assert_eq!(l.v6.any, set(&[80, 443, 9000]));
        let ten = |last| IpAddr::V4(Ipv4Addr::new(10, 0, 0, last));
        assert_eq!(
            l.v4.at,
            BTreeMap::from([(22, [ten(1)].into()), (8443, [ten(1)].into())])
        );
        let one = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&one[..]).unwrap()));
        assert_eq!(l.v6.at, BTreeMap::from([(8080, [one].into())]));
        for port in [22, 25, 8443] {
            assert!(l.v4.reaches(port) && !l.v6.reaches(port), "{port}");
        }
    }

    #[test]
    fn a_port_bound_to_some_addresses_refuses_the_others_slots() {
        let mut l = Listening::default();
        l.add(&msg(libc::AF_INET, 22, &[10, 0, 0, 1], None));
        l.add(&msg(libc::AF_INET, 80, &[10, 0, 0, 2], None));
        l.add(&msg(libc::AF_INET, 80, &[0; 4], None));
        let found =
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(|a| ("eth0".to_string(), a.parse().unwrap()));
        let addrs = LocalAddrs::of("eth0", found, &[]);
        let slots = addrs.slots_v4().unwrap();
        let slot = |a: &str| {
            1 << slots
                .iter()
                .position(|s| *s == Some(a.parse().unwrap()))
                .unwrap()
        };
        // 22: bound to .1 only, so .2 and .3 refuse; nothing over IPv6.
        assert_eq!(
            l.no_listener_flags(22, &addrs),
            PORT_NO_LISTENER_V6 | port_no_listener_at(false, slot("10.0.0.2") | slot("10.0.0.3"))
        );
        // 80: a wildcard listener beside the bound one reaches every address.
        assert_eq!(l.no_listener_flags(80, &addrs), PORT_NO_LISTENER_V6);
        assert_eq!(
            l.no_listener_flags(1, &addrs),
            PORT_NO_LISTENER_V4 | PORT_NO_LISTENER_V6
        );
        // A family whose list is not known names no address.
        assert_eq!(
            l.no_listener_flags(22, &LocalAddrs::default()),
            PORT_NO_LISTENER_V6
        );
    }

    #[test]
    fn a_cut_message_adds_nothing() {
        let whole = msg(libc::AF_INET, 22, &[10, 0, 0, 1], None);
        let mut l = Listening::default();
        for cut in 0..whole.len() {
            l.add(&whole[..cut]);
        }
        assert_eq!(l, Listening::default());
    }

    #[test]
    fn a_listener_of_this_process_is_seen() {
        // Reading changes nothing; the listener is on loopback, on a port the kernel picks.
        let sock = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let l = Listening::read().unwrap();
        let at = l.v4.at.get(&port);
        assert!(
            at.is_some_and(|a| a.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST))),
            "{port} not in {:?}",
            l.v4
        );
        drop(sock);
        assert!(!Listening::read().unwrap().v4.reaches(port));
    }
}
