//! The host's local routes (`ip route show table local type local`, both families): what the
//! kernel delivers to itself. Each interface address has one (a full-length prefix); AnyIP adds
//! whole prefixes (`ip route add local 192.0.2.0/24 dev lo`), whose every address the host
//! accepts connections on without any interface holding it (`fib_validate_source` and
//! `ip_route_input_slow` take the route's type, `RTN_LOCAL`, as "for this host").
//!
//! Only the local table is asked for: `ip route add local` puts such routes there unless told
//! otherwise, and a router's main table may hold a million routes, which this is read every
//! second beside.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::host::netlink::{self, attrs};

/// `struct rtmsg`'s size, and the offsets of its fields read here (include/uapi/linux/rtnetlink.h).
const RTMSG: usize = 12;
const RTM_FAMILY: usize = 0;
const RTM_DST_LEN: usize = 1;
const RTM_TABLE: usize = 4;
const RTM_TYPE: usize = 7;

/// A local route: every address of `addr/prefix` is the host's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalRoute {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl LocalRoute {
    /// A single address (`/32`, `/128`), as every interface address's route is.
    pub fn is_host(&self) -> bool {
        self.prefix >= if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

impl std::fmt::Display for LocalRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The local routes of the caller's network namespace.
pub fn read() -> io::Result<Vec<LocalRoute>> {
    // The dump's filter, applied by kernels with strict checking (4.20+; older ones dump every
    // table, filtered in `parse`): family AF_UNSPEC (both), the local table, type local.
    let mut filter = [0u8; RTMSG];
    filter[RTM_TABLE] = libc::RT_TABLE_LOCAL;
    filter[RTM_TYPE] = libc::RTN_LOCAL;
    netlink::route_dump(libc::RTM_GETROUTE, &filter, libc::RTM_NEWROUTE, parse)
}

/// One `RTM_NEWROUTE` message's body: the route if it is a local one of the local table.
fn parse(body: &[u8]) -> Option<LocalRoute> {
    let header = body.get(..RTMSG)?;
    if header[RTM_TYPE] != libc::RTN_LOCAL {
        return None;
    }
    let mut table = u32::from(header[RTM_TABLE]);
    let mut dst = None;
    for (ty, value) in attrs(&body[RTMSG..]) {
        match ty {
            // The table's full number, for tables past 255.
            libc::RTA_TABLE => table = netlink::u32_at(value, 0)?,
            libc::RTA_DST => dst = Some(value),
            _ => {}
        }
    }
    if table != u32::from(libc::RT_TABLE_LOCAL) {
        return None;
    }
    // No RTA_DST: the default route, prefix 0 (any other prefix without one: a cut message).
    let prefix = header[RTM_DST_LEN];
    let addr = match (i32::from(header[RTM_FAMILY]), dst) {
        (libc::AF_INET, Some(d)) => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(d).ok()?)),
        (libc::AF_INET, None) if prefix == 0 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (libc::AF_INET6, Some(d)) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(d).ok()?)),
        (libc::AF_INET6, None) if prefix == 0 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    Some(LocalRoute { addr, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `RTM_NEWROUTE` body: family, prefix, table, type, and the destination if any.
    fn route(family: i32, prefix: u8, table: u8, kind: u8, dst: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; RTMSG];
        b[RTM_FAMILY] = family as u8;
        b[RTM_DST_LEN] = prefix;
        b[RTM_TABLE] = table;
        b[RTM_TYPE] = kind;
        if !dst.is_empty() {
            b.extend(((4 + dst.len()) as u16).to_ne_bytes());
            b.extend(libc::RTA_DST.to_ne_bytes());
            b.extend(dst);
        }
        b
    }

    const LOCAL: u8 = libc::RT_TABLE_LOCAL;

    #[test]
    fn local_routes_of_the_local_table_are_read() {
        let anyip = route(libc::AF_INET, 24, LOCAL, libc::RTN_LOCAL, &[192, 0, 2, 0]);
        assert_eq!(
            parse(&anyip).map(|r| (r.to_string(), r.is_host())),
            Some(("192.0.2.0/24".into(), false))
        );
        let addr = route(
            libc::AF_INET6,
            128,
            LOCAL,
            libc::RTN_LOCAL,
            &[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        );
        assert_eq!(
            parse(&addr).map(|r| (r.to_string(), r.is_host())),
            Some(("2001:2::1/128".into(), true))
        );
        let default = route(libc::AF_INET6, 0, LOCAL, libc::RTN_LOCAL, &[]);
        assert_eq!(parse(&default).map(|r| r.to_string()), Some("::/0".into()));
    }

    #[test]
    fn other_types_tables_and_cut_messages_are_not() {
        let broadcast = route(
            libc::AF_INET,
            32,
            LOCAL,
            libc::RTN_BROADCAST,
            &[192, 0, 2, 255],
        );
        assert_eq!(parse(&broadcast), None);
        let main = route(
            libc::AF_INET,
            24,
            libc::RT_TABLE_MAIN,
            libc::RTN_LOCAL,
            &[192, 0, 2, 0],
        );
        assert_eq!(parse(&main), None);
        let mut in_table_1000 = route(libc::AF_INET, 24, 252, libc::RTN_LOCAL, &[192, 0, 2, 0]);
        in_table_1000.extend(8u16.to_ne_bytes());
        in_table_1000.extend(libc::RTA_TABLE.to_ne_bytes());
        in_table_1000.extend(1000u32.to_ne_bytes());
        assert_eq!(parse(&in_table_1000), None);
        let whole = route(libc::AF_INET, 24, LOCAL, libc::RTN_LOCAL, &[192, 0, 2, 0]);
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn the_namespaces_loopback_route_is_there() {
        // Every namespace with its loopback up has `local 127.0.0.0/8 dev lo` (and
        // `local 127.0.0.1`); reading changes nothing.
        let routes = read().unwrap();
        let lo: IpAddr = Ipv4Addr::new(127, 0, 0, 0).into();
        assert!(
            routes.iter().any(|r| r.addr == lo && r.prefix == 8),
            "{routes:?}"
        );
    }
}
