//! The ports something listens on in the caller's network namespace, by the family that reaches
//! them (`ss -ltn`, through sock_diag: the kernel sends only listening sockets, so a server with
//! a million connections costs this no more than an idle one). A SYN to a port nothing listens
//! on gets a RST from the host (`tcp_v4_rcv` finds no socket: `tcp_v4_send_reset`); the
//! program must not answer it with a SYN-ACK (`PORT_NO_LISTENER_*`).
//!
//! An IPv6 socket bound to `::` or to a v4-mapped address without `IPV6_V6ONLY` takes IPv4 SYNs
//! too. A listener bound to one address counts for its whole family: which destination a SYN
//! has is not weighed against it.

use std::{collections::BTreeSet, io};

use synguard_common::maps::{PORT_NO_LISTENER_V4, PORT_NO_LISTENER_V6};

use crate::host::netlink::{self, attrs};

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

/// Ports with a listener reachable over IPv4 and over IPv6.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listening {
    pub v4: BTreeSet<u16>,
    pub v6: BTreeSet<u16>,
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

    /// One `inet_diag_msg`: its port for the families that reach it.
    fn add(&mut self, msg: &[u8]) {
        let (Some(head), Some(rest)) = (msg.get(..MSG_LEN), msg.get(MSG_LEN..)) else {
            return;
        };
        let port = u16::from_be_bytes([head[MSG_SPORT], head[MSG_SPORT + 1]]);
        match i32::from(head[0]) {
            libc::AF_INET => {
                self.v4.insert(port);
            }
            libc::AF_INET6 => {
                self.v6.insert(port);
                let src = &head[MSG_SRC..MSG_SRC + 16];
                let wildcard_or_mapped = src.iter().all(|&b| b == 0)
                    || (src[..10] == [0; 10] && src[10..12] == [0xff; 2]);
                // Without the attribute (never seen: the kernel puts it on every IPv6 socket),
                // taken as dual-stack: the direction the program answered in before.
                let v6only = attrs(rest)
                    .find(|&(t, _)| t == INET_DIAG_SKV6ONLY)
                    .is_some_and(|(_, v)| v.first().is_some_and(|&b| b != 0));
                if wildcard_or_mapped && !v6only {
                    self.v4.insert(port);
                }
            }
            _ => {}
        }
    }

    /// `port`'s `PORT_NO_LISTENER_*` bits.
    pub fn no_listener_flags(&self, port: u16) -> u32 {
        let mut f = 0;
        if !self.v4.contains(&port) {
            f |= PORT_NO_LISTENER_V4;
        }
        if !self.v6.contains(&port) {
            f |= PORT_NO_LISTENER_V6;
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

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

    fn mapped(v4: [u8; 4]) -> Vec<u8> {
        let mut a = vec![0u8; 10];
        a.extend([0xff, 0xff]);
        a.extend(v4);
        a
    }

    #[test]
    fn each_listener_counts_for_the_families_that_reach_it() {
        let mut l = Listening::default();
        l.add(&msg(libc::AF_INET, 22, &[10, 0, 0, 1], None));
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
        assert_eq!(Vec::from_iter(l.v4.iter().copied()), [22, 80, 8443, 9000]);
        assert_eq!(
            Vec::from_iter(l.v6.iter().copied()),
            [80, 443, 8080, 8443, 9000]
        );
        assert_eq!(l.no_listener_flags(22), PORT_NO_LISTENER_V6);
        assert_eq!(l.no_listener_flags(80), 0);
        assert_eq!(l.no_listener_flags(443), PORT_NO_LISTENER_V4);
        assert_eq!(
            l.no_listener_flags(1),
            PORT_NO_LISTENER_V4 | PORT_NO_LISTENER_V6
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
        assert!(l.v4.contains(&port), "{port} not in {:?}", l.v4);
        drop(sock);
        assert!(!Listening::read().unwrap().v4.contains(&port));
    }
}
