//! The kernel's reverse-path filter (`rp_filter`, `fib_validate_source` in
//! net/ipv4/fib_frontend.c). Strict (1): an IPv4 segment is dropped unless the route back to
//! its source leaves through the interface it came in on. Loose (2): unless there is a route back
//! at all. synguard's program looks no route up (`bpf_fib_lookup` answers
//! `BPF_FIB_LKUP_RET_FWD_DISABLED` on an interface that does not forward, as a server's do not),
//! so under strict filtering it answers SYNs that the host itself drops: those from sources the
//! host routes out of another interface. `run` and `doctor` name such routes of the main table
//! (policy routing's other tables are not read). Read once, at attach and in `doctor`: a
//! router's main table can hold a million routes.

use std::{
    io,
    net::{IpAddr, Ipv4Addr},
};

use crate::host::netlink::{self, attrs, u16_at, u32_at};

/// `struct rtmsg` (include/uapi/linux/rtnetlink.h): its size and the fields read here.
const RTMSG: usize = 12;
const RTM_FAMILY: usize = 0;
const RTM_DST_LEN: usize = 1;
const RTM_TABLE: usize = 4;
const RTM_TYPE: usize = 7;
/// `struct rtnexthop`: length, flags, hops, then the interface index.
const RTNH_IFINDEX: usize = 4;
/// The strict mode of `rp_filter`.
pub const STRICT: u64 = 1;

/// An IPv4 route of the main table that leaves through another interface than the one asked
/// about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteElsewhere {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    /// The interface it leaves through (the first, for a multipath route).
    pub oif: u32,
}

/// The main table's IPv4 unicast routes that do not leave through the interface `ifindex`.
pub fn routes_elsewhere(ifindex: u32) -> io::Result<Vec<RouteElsewhere>> {
    let mut filter = [0u8; RTMSG];
    filter[RTM_FAMILY] = libc::AF_INET as u8;
    filter[RTM_TABLE] = libc::RT_TABLE_MAIN;
    filter[RTM_TYPE] = libc::RTN_UNICAST;
    let mut found = Vec::new();
    netlink::dump(
        libc::NETLINK_ROUTE,
        libc::RTM_GETROUTE,
        &filter,
        |kind, body| {
            if kind == libc::RTM_NEWROUTE
                && let Some(route) = parse(body, ifindex)
            {
                found.push(route);
            }
        },
    )?;
    Ok(found)
}

/// One `RTM_NEWROUTE` body: the route if it is an IPv4 unicast route of the main table none of
/// whose next hops is `ifindex` (filtered here too: kernels before 4.20 dump every table).
fn parse(body: &[u8], ifindex: u32) -> Option<RouteElsewhere> {
    let header = body.get(..RTMSG)?;
    if i32::from(header[RTM_FAMILY]) != libc::AF_INET || header[RTM_TYPE] != libc::RTN_UNICAST {
        return None;
    }
    let mut table = u32::from(header[RTM_TABLE]);
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut oifs = Vec::new();
    for (ty, value) in attrs(&body[RTMSG..]) {
        match ty {
            libc::RTA_TABLE => table = u32_at(value, 0)?,
            libc::RTA_DST => dst = Ipv4Addr::from(<[u8; 4]>::try_from(value).ok()?),
            libc::RTA_OIF => oifs.push(u32_at(value, 0)?),
            libc::RTA_MULTIPATH => oifs.extend(next_hops(value)),
            _ => {}
        }
    }
    let elsewhere =
        table == u32::from(libc::RT_TABLE_MAIN) && !oifs.is_empty() && !oifs.contains(&ifindex);
    elsewhere.then(|| RouteElsewhere {
        dst,
        prefix: header[RTM_DST_LEN],
        oif: oifs[0],
    })
}

/// The interfaces of a multipath route's next hops (`struct rtnexthop` each, padded to 4).
fn next_hops(mut b: &[u8]) -> Vec<u32> {
    let mut oifs = Vec::new();
    while let Some(len) = u16_at(b, 0).map(usize::from) {
        let Some(oif) = u32_at(b, RTNH_IFINDEX) else {
            break;
        };
        oifs.push(oif);
        if len < 8 {
            break;
        }
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    oifs
}

/// What to tell the operator of `iface` under reverse-path filter `mode`, given the routes
/// that leave elsewhere (`name_of` names an interface index); `None` when nothing differs from
/// what the host itself would answer.
pub fn warning(
    iface: &str,
    mode: u64,
    elsewhere: &[RouteElsewhere],
    name_of: impl Fn(u32) -> Option<String>,
) -> Option<String> {
    if mode != STRICT || elsewhere.is_empty() {
        return None;
    }
    let shown: Vec<String> = elsewhere
        .iter()
        .take(3)
        .map(|r| {
            let via = name_of(r.oif).unwrap_or_else(|| format!("interface {}", r.oif));
            format!("{}/{} via {via}", IpAddr::V4(r.dst), r.prefix)
        })
        .collect();
    let more = match elsewhere.len() {
        n if n > 3 => format!(" and {} more", n - 3),
        _ => String::new(),
    };
    Some(format!(
        "rp_filter is strict (1) on {iface}, and the host routes {}{more} out of another \
         interface: the kernel drops SYNs from those sources when they arrive on {iface}, but \
         synguard's program checks no reverse path and answers them with cookies (their final \
         ACKs the kernel then drops); set rp_filter to 2 (loose) on {iface} if such traffic \
         reaches it",
        shown.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One attribute: length, type, value, padding.
    fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    fn route(prefix: u8, table: u8, kind: u8, dst: [u8; 4], tail: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0u8; RTMSG];
        b[RTM_FAMILY] = libc::AF_INET as u8;
        b[RTM_DST_LEN] = prefix;
        b[RTM_TABLE] = table;
        b[RTM_TYPE] = kind;
        b.extend(attr(libc::RTA_DST, &dst));
        for t in tail {
            b.extend(t);
        }
        b
    }

    fn hop(ifindex: i32) -> Vec<u8> {
        let mut h = 8u16.to_ne_bytes().to_vec();
        h.extend([0, 0]);
        h.extend(ifindex.to_ne_bytes());
        h
    }

    const MAIN: u8 = libc::RT_TABLE_MAIN;
    const UNICAST: u8 = libc::RTN_UNICAST;

    #[test]
    fn a_route_out_of_another_interface_is_elsewhere() {
        let oif = |i: u32| attr(libc::RTA_OIF, &i.to_ne_bytes());
        let r = route(16, MAIN, UNICAST, [10, 9, 0, 0], &[oif(3)]);
        assert_eq!(
            parse(&r, 2),
            Some(RouteElsewhere {
                dst: Ipv4Addr::new(10, 9, 0, 0),
                prefix: 16,
                oif: 3
            })
        );
        assert_eq!(parse(&r, 3), None, "out of the interface asked about");
        let other_table = route(16, 100, UNICAST, [10, 9, 0, 0], &[oif(3)]);
        assert_eq!(parse(&other_table, 2), None);
        let blackhole = route(16, MAIN, libc::RTN_BLACKHOLE, [10, 9, 0, 0], &[]);
        assert_eq!(parse(&blackhole, 2), None);
    }

    #[test]
    fn a_multipath_route_with_a_hop_here_is_not() {
        let both = [hop(2), hop(3)].concat();
        let r = route(
            0,
            MAIN,
            UNICAST,
            [0; 4],
            &[attr(libc::RTA_MULTIPATH, &both)],
        );
        assert_eq!(parse(&r, 2), None);
        assert_eq!(parse(&r, 4).map(|e| e.oif), Some(2));
    }

    #[test]
    fn only_strict_filtering_with_routes_elsewhere_warns() {
        let e = vec![
            RouteElsewhere {
                dst: Ipv4Addr::new(10, 9, 0, 0),
                prefix: 16,
                oif: 3,
            };
            5
        ];
        let name = |i: u32| (i == 3).then(|| "eth1".to_string());
        assert_eq!(warning("eth0", 0, &e, name), None);
        assert_eq!(warning("eth0", 2, &e, name), None);
        assert_eq!(warning("eth0", 1, &[], name), None);
        let w = warning("eth0", 1, &e, name).unwrap();
        assert!(
            w.contains(
                "10.9.0.0/16 via eth1, 10.9.0.0/16 via eth1, 10.9.0.0/16 via eth1 and 2 more"
            ),
            "{w}"
        );
        assert!(w.contains("rp_filter is strict (1) on eth0"), "{w}");
    }
}
