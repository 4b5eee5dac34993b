//! A fleet behind one anycast address: a client, a router and two servers (A and B) that both
//! hold the service address. The router sends the service address to A; with steering on, it
//! sends every TCP segment that has ACK without SYN to B instead (an iptables mark and an
//! `ip rule` to a table routing the service address via B). So a client's SYN reaches A, and its
//! handshake's final ACK and everything after it reach B: what an ECMP or anycast route change
//! in the middle of a handshake does (docs/own-cookies.md, "The secret").
//!
//! ```text
//!   client --- router --- A   (SYN)
//!                    \--- B   (ACK without SYN, with steering on)
//! ```
//!
//! Addresses from the benchmarking ranges only (198.18.0.0/15, 2001:2::/48), all inside the
//! fleet's own namespaces; everything goes when the fleet is dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, Result};

use crate::lab::netns::{self, Netns};
use crate::lab::topology::PeerXdp;

/// The address both servers hold (on their loopback).
pub const SERVICE_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 20, 1);
pub const SERVICE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x20, 0, 0, 0, 1);
/// The client's address (the router is .1 / ::1 on each link).
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 2);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x10, 0, 0, 0, 2);
/// The router's mark for steered segments, and the routing table it selects.
const STEER_MARK: &str = "0x5f";
const STEER_TABLE: &str = "95";
/// The router's interfaces towards the client, A and B.
const R_CLIENT: &str = "r-cli";

/// The service address on `port`.
pub fn service_addr(v6: bool, port: u16) -> SocketAddr {
    let ip: IpAddr = if v6 {
        SERVICE_V6.into()
    } else {
        SERVICE_V4.into()
    };
    SocketAddr::new(ip, port)
}

/// One server of the fleet.
#[derive(Debug)]
pub struct FleetServer {
    pub ns: Netns,
    /// The server's interface towards the router (the one synguard protects). Unique per fleet:
    /// synguard keys its pins and lock by interface name.
    pub ifname: String,
    /// The router's interface towards this server.
    router_if: &'static str,
    /// Third byte of the link's IPv4 prefix, fourth group of its IPv6 prefix.
    net: u8,
}

impl FleetServer {
    fn link_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.net, 2)
    }
    fn link_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 2, 0, self.net as u16, 0, 0, 0, 2)
    }
}

/// The running fleet. Dropping it detaches the router's XDP programs, kills the processes in
/// its namespaces and deletes them.
pub struct Fleet {
    /// Pass-through XDP programs on the router's server-side veths: XDP_TX frames (the
    /// SYN-ACKs) reach a veth peer reliably only if it has one (docs/veth-and-nics.md).
    peers: Vec<PeerXdp>,
    pub client: Netns,
    pub router: Netns,
    pub a: FleetServer,
    pub b: FleetServer,
}

static FLEET_SEQ: AtomicU32 = AtomicU32::new(0);

impl Fleet {
    /// Builds the fleet, with steering off. Namespaces are `sgl-<pid>-fleet<seq>-*`.
    pub fn new() -> Result<Fleet> {
        netns::cleanup_stale().context("cleaning up stale lab namespaces")?;
        let (pid, seq) = (
            std::process::id(),
            FLEET_SEQ.fetch_add(1, Ordering::Relaxed),
        );
        let id = format!("{}{pid}-fleet{seq}", netns::PREFIX);
        let client = Netns::create(&format!("{id}-cli"))?;
        let router = Netns::create(&format!("{id}-rtr"))?;
        let a = add_server(
            &router,
            &format!("{id}-a"),
            &format!("fa{pid}n{seq}"),
            "r-a",
            11,
        )?;
        let b = add_server(
            &router,
            &format!("{id}-b"),
            &format!("fb{pid}n{seq}"),
            "r-b",
            12,
        )?;
        let mut fleet = Fleet {
            peers: Vec::new(),
            client,
            router,
            a,
            b,
        };
        fleet.configure()?;
        Ok(fleet)
    }

    fn configure(&mut self) -> Result<()> {
        let (client, router) = (&self.client, &self.router);
        router.ip(&[
            "link",
            "add",
            R_CLIENT,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            client.name(),
        ])?;
        link_up(router, R_CLIENT, "198.18.10.1/24", "2001:2:0:10::1/64")?;
        link_up(
            client,
            "eth0",
            &format!("{CLIENT_V4}/24"),
            &format!("{CLIENT_V6}/64"),
        )?;
        // Full checksums from the sender, as on a wire (docs/veth-and-nics.md).
        client.run("ethtool", &["-K", "eth0", "tx", "off"])?;
        client.ip(&["route", "add", "default", "via", "198.18.10.1"])?;
        // onlink: the prefix route of a just-raised IPv6 link may not be there yet.
        client.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:2:0:10::1",
            "dev",
            "eth0",
            "onlink",
        ])?;
        router.sysctl("net.ipv4.ip_forward", "1")?;
        router.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        // The service address is A's in the main table, B's in the steering table.
        for (srv, table) in [(&self.a, "main"), (&self.b, STEER_TABLE)] {
            let v4 = srv.link_v4().to_string();
            let v6 = srv.link_v6().to_string();
            let s4 = format!("{SERVICE_V4}/32");
            let s6 = format!("{SERVICE_V6}/128");
            router.ip(&["route", "add", &s4, "via", &v4, "table", table])?;
            router.ip(&[
                "-6",
                "route",
                "add",
                &s6,
                "via",
                &v6,
                "dev",
                srv.router_if,
                "onlink",
                "table",
                table,
            ])?;
            self.peers
                .push(PeerXdp::attach(router, srv.router_if, "lab_pass")?);
        }
        for family in ["-4", "-6"] {
            router.ip(&[
                family,
                "rule",
                "add",
                "fwmark",
                STEER_MARK,
                "lookup",
                STEER_TABLE,
            ])?;
        }
        Ok(())
    }

    /// Steering on: every TCP segment from the client with ACK and without SYN goes to B.
    pub fn steer(&self, on: bool) -> Result<()> {
        let action = if on { "-A" } else { "-D" };
        for tool in ["iptables", "ip6tables"] {
            self.router.run(
                tool,
                &[
                    "-t",
                    "mangle",
                    action,
                    "PREROUTING",
                    "-i",
                    R_CLIENT,
                    "-p",
                    "tcp",
                    "--tcp-flags",
                    "SYN,ACK",
                    "ACK",
                    "-j",
                    "MARK",
                    "--set-mark",
                    STEER_MARK,
                ],
            )?;
        }
        Ok(())
    }

    /// Segments the steering rule marked so far (IPv4 and IPv6), from the rules' counters.
    pub fn steered_packets(&self) -> Result<u64> {
        let mut total = 0;
        for tool in ["iptables", "ip6tables"] {
            let out = self.router.run(
                tool,
                &["-t", "mangle", "-L", "PREROUTING", "-v", "-n", "-x"],
            )?;
            total += out
                .lines()
                .filter(|l| l.contains("MARK"))
                .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        Ok(total)
    }
}

fn link_up(ns: &Netns, ifname: &str, v4: &str, v6: &str) -> Result<()> {
    ns.ip(&["addr", "add", v4, "dev", ifname])?;
    // nodad: usable at once instead of after duplicate address detection.
    ns.ip(&["addr", "add", v6, "dev", ifname, "nodad"])?;
    ns.ip(&["link", "set", ifname, "up"])?;
    Ok(())
}

/// A server namespace linked to the router on 198.18.`net`.0/24 and 2001:2:0:`net`::/64, with
/// the service address on its loopback and its default route via the router.
fn add_server(
    router: &Netns,
    name: &str,
    ifname: &str,
    router_if: &'static str,
    net: u8,
) -> Result<FleetServer> {
    let ns = Netns::create(name)?;
    router.ip(&[
        "link",
        "add",
        router_if,
        "type",
        "veth",
        "peer",
        "name",
        ifname,
        "netns",
        ns.name(),
    ])?;
    let srv = FleetServer {
        ns,
        ifname: ifname.to_string(),
        router_if,
        net,
    };
    link_up(
        router,
        router_if,
        &format!("198.18.{net}.1/24"),
        &format!("2001:2:0:{net}::1/64"),
    )?;
    link_up(
        &srv.ns,
        ifname,
        &format!("{}/24", srv.link_v4()),
        &format!("{}/64", srv.link_v6()),
    )?;
    srv.ns
        .ip(&["addr", "add", &format!("{SERVICE_V4}/32"), "dev", "lo"])?;
    srv.ns
        .ip(&["addr", "add", &format!("{SERVICE_V6}/128"), "dev", "lo"])?;
    srv.ns
        .ip(&["route", "add", "default", "via", &format!("198.18.{net}.1")])?;
    srv.ns.ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        &format!("2001:2:0:{net}::1"),
        "dev",
        ifname,
        "onlink",
    ])?;
    Ok(srv)
}
