//! The kernel's reverse-path filter (`rp_filter`, `__fib_validate_source` in
//! net/ipv4/fib_frontend.c), as the program applies it to IPv4 SYNs. Strict (1): a segment is
//! dropped unless the route back to its source is unicast with a next hop out of the interface
//! it came in on. Loose (2): unless that route is unicast at all. Either way a source with no
//! route, or a blackhole, unreachable or prohibit one, is dropped. The program cannot ask the
//! kernel (`bpf_fib_lookup` answers `BPF_FIB_LKUP_RET_FWD_DISABLED` on an interface that does not
//! forward, as a server's do not), so the loader copies the main table's IPv4 routes into
//! `SG_RP_V4`, each with its kind for this interface (`RP_ROUTE_*`), and sets `HOST_RP_*` in
//! the config where the check can tell anything: a SYN the host would drop is passed to it
//! unanswered (`pass_reverse_path`).
//!
//! Not modelled, and then not checked (the program answers as before): policy routing (any
//! rule beyond the three default ones: the lookup may then use other tables), a main table of
//! more than `RP_ROUTES` routes. Of several routes to one prefix (metrics, TOS) the most lenient
//! counts, and a route through a nexthop object (no interface in the route itself) counts as
//! leaving here. Read every second with the host's other facts; one dump of the main table.

use std::{
    collections::{BTreeMap, hash_map::DefaultHasher},
    hash::{Hash as _, Hasher as _},
    io,
    net::Ipv4Addr,
};

use synguard_common::maps::{
    HOST_RP_LOOSE, HOST_RP_STRICT, RP_ROUTE_BLOCKED, RP_ROUTE_ELSEWHERE, RP_ROUTE_HERE, RP_ROUTES,
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
/// `struct fib_rule_hdr` (include/uapi/linux/fib_rules.h): its size and its table byte.
const FIB_RULE_HDR: usize = 12;
const FRH_TABLE: usize = 4;
const FRA_TABLE: u16 = 15;
/// The rules every namespace starts with: lookup local, main, default.
const DEFAULT_RULE_TABLES: [u32; 3] = [
    libc::RT_TABLE_LOCAL as u32,
    libc::RT_TABLE_MAIN as u32,
    libc::RT_TABLE_DEFAULT as u32,
];

/// `rp_filter`'s strict mode.
pub const STRICT: u64 = 1;
/// `rp_filter`'s loose mode.
pub const LOOSE: u64 = 2;

/// One route of the main table, as the check sees it: its prefix and an `RP_ROUTE_*` kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub kind: u32,
}

/// Why the program does not check reverse paths although `rp_filter` is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unchecked {
    /// Policy routing: rules beyond the default three.
    Rules,
    /// More routes than `SG_RP_V4` holds.
    TooMany(usize),
    /// The routes or rules could not be read.
    Unreadable,
}

/// What the program is told: the `HOST_RP_*` flags, and a digest of the routes it is given
/// (so that a change of either is a change of the host's facts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Check {
    /// `rp_filter` as the interface gets it (`Sysctls::rp_filter`).
    pub mode: u64,
    pub flags: u32,
    /// How many routes `SG_RP_V4` holds for it.
    pub routes: usize,
    pub digest: u64,
    pub unchecked: Option<Unchecked>,
}

/// One route as `SG_RP_V4` holds it: (prefix address, prefix length, `RP_ROUTE_*` kind).
pub type RouteEntry = (Ipv4Addr, u8, u32);

/// A check and the routes it needs in `SG_RP_V4`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub check: Check,
    pub entries: Vec<RouteEntry>,
}

/// The plan for the interface with index `ifindex` under `rp_filter` `mode`, from the
/// namespace's rules and main table.
pub fn read(ifindex: u32, mode: u64) -> Plan {
    if mode == 0 {
        return Plan::default();
    }
    match (custom_rules(), main_routes(ifindex)) {
        (Ok(rules), Ok(routes)) => plan(mode, &routes, rules),
        _ => unchecked(mode, Unchecked::Unreadable),
    }
}

/// The plan where the interface cannot be found: not checked, if `rp_filter` is on at all.
pub fn read_unreadable(mode: u64) -> Plan {
    if mode == 0 {
        return Plan::default();
    }
    unchecked(mode, Unchecked::Unreadable)
}

fn unchecked(mode: u64, why: Unchecked) -> Plan {
    Plan {
        check: Check {
            mode,
            unchecked: Some(why),
            ..Check::default()
        },
        entries: Vec::new(),
    }
}

/// Pure: the plan for `routes` under `mode`. Where every source passes (strict: a default route
/// and every route out of this interface; loose: a unicast default route and nothing
/// blackholed) the program is told nothing and pays nothing.
pub fn plan(mode: u64, routes: &[Route], custom_rules: bool) -> Plan {
    if mode != STRICT && mode != LOOSE {
        return Plan::default();
    }
    if custom_rules {
        return unchecked(mode, Unchecked::Rules);
    }
    // One kind per prefix: the most lenient of its routes.
    let mut by_prefix: BTreeMap<(Ipv4Addr, u8), u32> = BTreeMap::new();
    for r in routes {
        let kind = by_prefix.entry((r.dst, r.prefix)).or_insert(r.kind);
        *kind = (*kind).max(r.kind);
    }
    if by_prefix.len() > RP_ROUTES as usize {
        return unchecked(mode, Unchecked::TooMany(by_prefix.len()));
    }
    let default = by_prefix.get(&(Ipv4Addr::UNSPECIFIED, 0)).copied();
    let (flags, need) = if mode == STRICT {
        (HOST_RP_STRICT, RP_ROUTE_HERE)
    } else {
        (HOST_RP_LOOSE, RP_ROUTE_ELSEWHERE)
    };
    let all_pass = default.is_some_and(|k| k >= need) && by_prefix.values().all(|&k| k >= need);
    if all_pass {
        return Plan {
            check: Check {
                mode,
                ..Check::default()
            },
            entries: Vec::new(),
        };
    }
    let entries: Vec<RouteEntry> = by_prefix.into_iter().map(|((a, p), k)| (a, p, k)).collect();
    let mut h = DefaultHasher::new();
    entries.hash(&mut h);
    Plan {
        check: Check {
            mode,
            flags,
            routes: entries.len(),
            digest: h.finish(),
            unchecked: None,
        },
        entries,
    }
}

impl Check {
    /// One phrase for the log and `doctor`; `None` where `rp_filter` is off.
    pub fn text(&self) -> Option<String> {
        let filter = match self.mode {
            0 => return None,
            STRICT => "rp_filter 1 (strict)",
            LOOSE => "rp_filter 2 (loose)",
            _ => "rp_filter",
        };
        Some(match (self.unchecked, self.flags) {
            (Some(Unchecked::Rules), _) => format!(
                "{filter}, not checked by synguard: policy routing rules are in use (`ip rule`), \
                 so SYNs the kernel's filter drops may be answered"
            ),
            (Some(Unchecked::TooMany(n)), _) => format!(
                "{filter}, not checked by synguard: the main table has {n} routes, more than \
                 {RP_ROUTES}, so SYNs the kernel's filter drops may be answered"
            ),
            (Some(Unchecked::Unreadable), _) => format!(
                "{filter}, not checked by synguard: the routes could not be read, so SYNs the \
                 kernel's filter drops may be answered"
            ),
            (None, 0) => format!("{filter}: every source passes it (the routes lead here)"),
            (None, _) => format!(
                "{filter}: SYNs from sources it drops are left to the kernel \
                 (`pass_reverse_path`; {} routes copied)",
                self.routes
            ),
        })
    }

    /// Whether the check could not follow `rp_filter`.
    pub fn is_unchecked(&self) -> bool {
        self.unchecked.is_some()
    }
}

/// The main table's IPv4 routes: unicast ones as here or elsewhere for `ifindex`, blackhole,
/// unreachable and prohibit ones as blocked.
pub fn main_routes(ifindex: u32) -> io::Result<Vec<Route>> {
    let mut filter = [0u8; RTMSG];
    filter[RTM_FAMILY] = libc::AF_INET as u8;
    filter[RTM_TABLE] = libc::RT_TABLE_MAIN;
    netlink::route_dump(libc::RTM_GETROUTE, &filter, libc::RTM_NEWROUTE, |body| {
        parse_route(body, ifindex)
    })
}

/// One `RTM_NEWROUTE` body: an IPv4 route of the main table (filtered here too: kernels before
/// 4.20 dump every table) with its kind for `ifindex`.
fn parse_route(body: &[u8], ifindex: u32) -> Option<Route> {
    let header = body.get(..RTMSG)?;
    if i32::from(header[RTM_FAMILY]) != libc::AF_INET {
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
    if table != u32::from(libc::RT_TABLE_MAIN) {
        return None;
    }
    // A route that names no interface (a nexthop object, `RTA_NH_ID`) counts as here: of what
    // the check cannot tell, it takes the lenient side.
    let kind = match header[RTM_TYPE] {
        libc::RTN_UNICAST if oifs.is_empty() || oifs.contains(&ifindex) => RP_ROUTE_HERE,
        libc::RTN_UNICAST => RP_ROUTE_ELSEWHERE,
        libc::RTN_BLACKHOLE | libc::RTN_UNREACHABLE | libc::RTN_PROHIBIT => RP_ROUTE_BLOCKED,
        _ => return None,
    };
    Some(Route {
        dst,
        prefix: header[RTM_DST_LEN],
        kind,
    })
}

/// The interfaces of a multipath route's next hops (`struct rtnexthop` each, padded to 4).
fn next_hops(mut b: &[u8]) -> Vec<u32> {
    let mut oifs = Vec::new();
    while let (Some(len), Some(oif)) = (u16_at(b, 0).map(usize::from), u32_at(b, RTNH_IFINDEX)) {
        oifs.push(oif);
        if len < 8 {
            break;
        }
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    oifs
}

/// Whether the namespace has IPv4 routing rules beyond the default three.
pub fn custom_rules() -> io::Result<bool> {
    let mut filter = [0u8; FIB_RULE_HDR];
    filter[0] = libc::AF_INET as u8;
    let tables = netlink::route_dump(libc::RTM_GETRULE, &filter, libc::RTM_NEWRULE, rule_table)?;
    Ok(tables.len() != DEFAULT_RULE_TABLES.len()
        || tables.iter().any(|t| !DEFAULT_RULE_TABLES.contains(t)))
}

/// One `RTM_NEWRULE` body's table, if it is an IPv4 rule.
fn rule_table(body: &[u8]) -> Option<u32> {
    let header = body.get(..FIB_RULE_HDR)?;
    if i32::from(header[0]) != libc::AF_INET {
        return None;
    }
    let mut table = u32::from(header[FRH_TABLE]);
    for (ty, value) in attrs(&body[FIB_RULE_HDR..]) {
        if ty == FRA_TABLE {
            table = u32_at(value, 0)?;
        }
    }
    Some(table)
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

    fn body(prefix: u8, table: u8, kind: u8, dst: [u8; 4], tail: &[Vec<u8>]) -> Vec<u8> {
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

    fn oif(i: u32) -> Vec<u8> {
        attr(libc::RTA_OIF, &i.to_ne_bytes())
    }

    fn route(a: [u8; 4], prefix: u8, kind: u32) -> Route {
        Route {
            dst: Ipv4Addr::from(a),
            prefix,
            kind,
        }
    }

    #[test]
    fn routes_of_the_main_table_get_their_kind() {
        let r = body(16, MAIN, libc::RTN_UNICAST, [10, 9, 0, 0], &[oif(3)]);
        assert_eq!(
            parse_route(&r, 2),
            Some(route([10, 9, 0, 0], 16, RP_ROUTE_ELSEWHERE))
        );
        assert_eq!(parse_route(&r, 3).map(|r| r.kind), Some(RP_ROUTE_HERE));
        let hole = body(8, MAIN, libc::RTN_BLACKHOLE, [10, 0, 0, 0], &[]);
        assert_eq!(
            parse_route(&hole, 2).map(|r| r.kind),
            Some(RP_ROUTE_BLOCKED)
        );
        assert_eq!(
            parse_route(&body(16, 100, 1, [10, 9, 0, 0], &[oif(3)]), 2),
            None
        );
        // A nexthop object's route names no interface itself: lenient.
        let nhid = body(
            0,
            MAIN,
            libc::RTN_UNICAST,
            [0; 4],
            &[attr(30, &7u32.to_ne_bytes())],
        );
        assert_eq!(parse_route(&nhid, 2).map(|r| r.kind), Some(RP_ROUTE_HERE));
        let both = [hop(2), hop(3)].concat();
        let multi = body(
            0,
            MAIN,
            libc::RTN_UNICAST,
            [0; 4],
            &[attr(libc::RTA_MULTIPATH, &both)],
        );
        assert_eq!(parse_route(&multi, 3).map(|r| r.kind), Some(RP_ROUTE_HERE));
        assert_eq!(
            parse_route(&multi, 4).map(|r| r.kind),
            Some(RP_ROUTE_ELSEWHERE)
        );
    }

    #[test]
    fn a_single_homed_host_needs_no_check() {
        let routes = [
            route([0; 4], 0, RP_ROUTE_HERE),
            route([198, 18, 0, 0], 24, RP_ROUTE_HERE),
        ];
        for mode in [STRICT, LOOSE] {
            let p = plan(mode, &routes, false);
            assert_eq!((p.check.flags, p.entries.len()), (0, 0), "mode {mode}");
            assert!(p.check.text().unwrap().contains("every source passes"));
        }
        assert_eq!(plan(0, &routes, false), Plan::default());
    }

    #[test]
    fn strict_filtering_with_a_route_elsewhere_is_checked() {
        let routes = [
            route([0; 4], 0, RP_ROUTE_HERE),
            route([10, 9, 0, 0], 16, RP_ROUTE_ELSEWHERE),
        ];
        let p = plan(STRICT, &routes, false);
        assert_eq!(p.check.flags, HOST_RP_STRICT);
        assert_eq!(
            p.entries,
            [
                (Ipv4Addr::UNSPECIFIED, 0, RP_ROUTE_HERE),
                (Ipv4Addr::new(10, 9, 0, 0), 16, RP_ROUTE_ELSEWHERE)
            ]
        );
        // Loose: a route elsewhere is a route; nothing to check.
        assert_eq!(plan(LOOSE, &routes, false).check.flags, 0);
        // A blackhole is dropped under loose filtering too.
        let hole = [routes[0], route([10, 0, 0, 0], 8, RP_ROUTE_BLOCKED)];
        assert_eq!(plan(LOOSE, &hole, false).check.flags, HOST_RP_LOOSE);
        // No default route: sources outside the table have no route back.
        let no_default = [route([198, 18, 0, 0], 24, RP_ROUTE_HERE)];
        assert_eq!(plan(LOOSE, &no_default, false).check.flags, HOST_RP_LOOSE);
    }

    #[test]
    fn the_most_lenient_of_one_prefixs_routes_counts() {
        let routes = [
            route([0; 4], 0, RP_ROUTE_ELSEWHERE),
            route([0; 4], 0, RP_ROUTE_HERE),
        ];
        assert_eq!(plan(STRICT, &routes, false).check.flags, 0);
    }

    #[test]
    fn what_is_not_modelled_is_not_checked() {
        let routes = [route([10, 9, 0, 0], 16, RP_ROUTE_ELSEWHERE)];
        let p = plan(STRICT, &routes, true);
        assert_eq!(
            (p.check.flags, p.check.unchecked),
            (0, Some(Unchecked::Rules))
        );
        let many: Vec<Route> = (0..=RP_ROUTES)
            .map(|i| route([10, (i >> 8) as u8, i as u8, 0], 24, RP_ROUTE_ELSEWHERE))
            .collect();
        let p = plan(STRICT, &many, false);
        assert_eq!(p.check.unchecked, Some(Unchecked::TooMany(1025)));
        assert!(p.check.text().unwrap().contains("not checked"));
    }

    #[test]
    fn a_changed_route_changes_the_digest() {
        let a = [
            route([0; 4], 0, RP_ROUTE_HERE),
            route([10, 9, 0, 0], 16, RP_ROUTE_ELSEWHERE),
        ];
        let mut b = a;
        b[1].prefix = 24;
        assert_ne!(
            plan(STRICT, &a, false).check.digest,
            plan(STRICT, &b, false).check.digest
        );
    }

    #[test]
    fn default_rules_are_not_custom() {
        let rule = |table: u8| {
            let mut b = vec![0u8; FIB_RULE_HDR];
            b[0] = libc::AF_INET as u8;
            b[FRH_TABLE] = table;
            b
        };
        assert_eq!(rule_table(&rule(254)), Some(254));
        let mut big = rule(252);
        big.extend(attr(FRA_TABLE, &1000u32.to_ne_bytes()));
        assert_eq!(rule_table(&big), Some(1000));
        // This namespace's own rules: the test runs in whatever the host has; only readable.
        assert!(custom_rules().is_ok());
    }
}
