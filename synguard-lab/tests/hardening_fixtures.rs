//! Fixtures for issue 9: synguard answers only SYNs the host's own stack would accept. Each case
//! runs the compiled program (BPF_PROG_TEST_RUN) on a crafted frame and checks the action, the
//! bytes and the one counter it lands in.
//!
//! Needs root (loading BPF programs); run through `cargo xtask test`.

use etherparse::{SlicedPacket, TcpOptionElement, TransportSlice};
use synguard_common::{reason::Reason, tcp::ACK};
use synguard_lab::{
    testrun::fixture::{
        Fixture, XDP_DROP, XDP_PASS, XDP_TX, default_config, loopback_config, with_local,
    },
    testrun::frames::*,
};

const PORT: u16 = 80;

fn fixture() -> Fixture {
    Fixture::new(default_config(), &[PORT]).expect("load synguard (needs root)")
}

/// The checks hold for both kinds of cookie: a fixture with the kernel's and one with own
/// cookies (the own-cookie program tail-called, its key set).
fn both_kinds() -> [(&'static str, Fixture); 2] {
    let own_cfg = synguard_common::maps::Config {
        cookies: synguard_common::maps::COOKIES_OWN,
        ..default_config()
    };
    let mut own = Fixture::new(own_cfg, &[PORT]).expect("load synguard (needs root)");
    own.set_secret(synguard_common::reqsk::CookieSecret {
        current: [0x0123_4567_89ab_cdef, 0x0f1e_2d3c_4b5a_6978],
        ..Default::default()
    })
    .unwrap();
    [("kernel", fixture()), ("own", own)]
}

/// [`expect`] on each kind of cookie, the case names prefixed with the kind.
fn expect_both(cases: &[(String, Vec<u8>, u32, Reason)]) {
    for (kind, f) in both_kinds() {
        let named: Vec<_> = cases
            .iter()
            .map(|(w, fr, a, r)| (format!("{kind} cookies: {w}"), fr.clone(), *a, *r))
            .collect();
        expect(&f, &named);
    }
}

fn syn_seg() -> Segment {
    Segment::syn(40000, PORT, 7, linux_syn_options(1460, 1, 7))
}

fn v4(src: [u8; 4], dst: [u8; 4], macs: ([u8; 6], [u8; 6]), seg: &Segment) -> Vec<u8> {
    tcp_v4(src, dst, Tags::None, macs, seg)
}

fn v6(src: [u8; 16], dst: [u8; 16], seg: &Segment) -> Vec<u8> {
    tcp_v6(src, dst, Tags::None, (CLIENT_MAC, SERVER_MAC), seg)
}

fn ip6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

/// Runs each frame once and checks action, unchanged bytes for PASS and DROP, and that exactly
/// one packet was counted under the expected reason.
fn expect(f: &Fixture, cases: &[(String, Vec<u8>, u32, Reason)]) {
    for (what, frame, action, reason) in cases {
        let before = f.verdicts().unwrap();
        let out = f.run(frame).unwrap();
        assert_eq!(out.action, *action, "{what}");
        if *action != XDP_TX {
            assert_eq!(&out.frame, frame, "{what}: bytes changed");
        }
        let after = f.verdicts().unwrap();
        for (i, (a, b)) in after.iter().zip(&before).enumerate() {
            let want = u64::from(i as u32 == reason.index());
            assert_eq!(a - b, want, "{what}: verdict slot {i}");
        }
    }
}

/// A SYN to a protected port nothing listens on over its family goes to the kernel untouched
/// (which resets it): a SYN-ACK would tell a health check the stopped service is up. The other
/// family, listened on, is answered; an ACK meets the cookie check as before.
#[test]
fn syns_to_a_port_nothing_listens_on_go_to_the_kernel() {
    use synguard_common::maps::{PORT_NO_LISTENER_V4, PORT_NO_LISTENER_V6};
    let syn = syn_seg();
    let mut ack = Segment::syn(40000, PORT, 8, vec![]);
    ack.flags = ACK;
    ack.ack = 12345;
    let macs = (CLIENT_MAC, SERVER_MAC);
    let (syn4, syn6) = (
        v4(CLIENT_V4, SERVER_V4, macs, &syn),
        v6(CLIENT_V6, SERVER_V6, &syn),
    );
    let ack4 = v4(CLIENT_V4, SERVER_V4, macs, &ack);
    for (kind, mut f) in both_kinds() {
        let case = |w: &str, fr: &Vec<u8>, a, r| (format!("{kind} cookies: {w}"), fr.clone(), a, r);
        f.set_no_listener(&[(PORT, PORT_NO_LISTENER_V4)]).unwrap();
        expect(
            &f,
            &[
                case(
                    "IPv4 SYN, no IPv4 listener",
                    &syn4,
                    XDP_PASS,
                    Reason::PassSynNoListener,
                ),
                case(
                    "IPv6 SYN, an IPv6 listener",
                    &syn6,
                    XDP_TX,
                    Reason::TxSynAckCookie,
                ),
                case("bogus ACK", &ack4, XDP_DROP, Reason::DropAckBadCookie),
            ],
        );
        f.set_no_listener(&[(PORT, PORT_NO_LISTENER_V4 | PORT_NO_LISTENER_V6)])
            .unwrap();
        expect(
            &f,
            &[case(
                "IPv6 SYN, no listener",
                &syn6,
                XDP_PASS,
                Reason::PassSynNoListener,
            )],
        );
        f.set_no_listener(&[(PORT, 0)]).unwrap();
        expect(
            &f,
            &[case(
                "IPv4 SYN, listening again",
                &syn4,
                XDP_TX,
                Reason::TxSynAckCookie,
            )],
        );
    }
}

/// A port whose listeners are each bound to one address: a SYN to another of the host's
/// addresses gets a RST from the host (`__inet_lookup_listener` finds no listener for it), so
/// the program leaves it to the kernel; a SYN to the bound address is answered. The loader sets
/// the refusing addresses' slots in the port's `PORT_NO_LISTENER_AT_*` bits.
#[test]
fn syns_to_an_address_no_listener_is_bound_to_go_to_the_kernel() {
    use synguard_common::{
        host::{dst_slots_v4, dst_slots_v6},
        maps::{COOKIES_KERNEL, COOKIES_OWN, Config, port_no_listener_at},
    };
    let (other, other6) = ([198, 18, 0, 77], ip6("2001:2::77"));
    let two = with_local(default_config(), &[SERVER_V4, other], &[SERVER_V6, other6]);
    let (salt, local_v4_n, local_v4) = (two.local_salt, two.local_v4_n, two.local_v4);
    let (local_v6_n, local_v6) = (two.local_v6_n, two.local_v6);
    let slot4 = dst_slots_v4(u32::from_ne_bytes(other), local_v4_n, salt, &local_v4);
    let words6 = synguard_common::host::addr_words(&other6);
    let slot6 = dst_slots_v6(&words6, local_v6_n, salt, &local_v6);
    assert_eq!((slot4.count_ones(), slot6.count_ones()), (1, 1));
    let macs = (CLIENT_MAC, SERVER_MAC);
    let to_bound = v4(CLIENT_V4, SERVER_V4, macs, &syn_seg());
    let to_other = v4(CLIENT_V4, other, macs, &syn_seg());
    let to_bound6 = v6(CLIENT_V6, SERVER_V6, &syn_seg());
    let to_other6 = v6(CLIENT_V6, other6, &syn_seg());
    for (kind, mut f) in both_kinds() {
        let cookies = if kind == "own" {
            COOKIES_OWN
        } else {
            COOKIES_KERNEL
        };
        f.set_config(Config { cookies, ..two }).unwrap();
        let case = |w: &str, fr: &Vec<u8>, a, r| (format!("{kind} cookies: {w}"), fr.clone(), a, r);
        let bits = port_no_listener_at(false, slot4) | port_no_listener_at(true, slot6);
        f.set_no_listener(&[(PORT, bits)]).unwrap();
        expect(
            &f,
            &[
                case(
                    "IPv4, bound address",
                    &to_bound,
                    XDP_TX,
                    Reason::TxSynAckCookie,
                ),
                case(
                    "IPv4, another address",
                    &to_other,
                    XDP_PASS,
                    Reason::PassSynNoListener,
                ),
                case(
                    "IPv6, bound address",
                    &to_bound6,
                    XDP_TX,
                    Reason::TxSynAckCookie,
                ),
                case(
                    "IPv6, another address",
                    &to_other6,
                    XDP_PASS,
                    Reason::PassSynNoListener,
                ),
            ],
        );
        // The other family's slots, or none: the other address is answered again.
        f.set_no_listener(&[(PORT, port_no_listener_at(true, slot4))])
            .unwrap();
        expect(
            &f,
            &[case(
                "IPv4, another address, IPv6 bits only",
                &to_other,
                XDP_TX,
                Reason::TxSynAckCookie,
            )],
        );
    }
}

/// An IPv4 segment from another of the host's own addresses is a martian to the kernel
/// (`fib_validate_source`) unless the interface has `accept_local`: dropped, not answered. The
/// same SYN from an address that is not the host's is answered; with `accept_local` set, so is
/// the one from the host's own. IPv6 has no such rule in the kernel (it answers itself over
/// loopback); the program drops it as it drops LAND, `accept_local` or not.
#[test]
fn sources_of_the_hosts_own_are_martians_unless_accept_local() {
    let other = [198, 18, 0, 77];
    let other6 = ip6("2001:2::77");
    let two = with_local(default_config(), &[SERVER_V4, other], &[SERVER_V6, other6]);
    let macs = (CLIENT_MAC, SERVER_MAC);
    let from_own = v4(other, SERVER_V4, macs, &syn_seg());
    let from_own6 = v6(other6, SERVER_V6, &syn_seg());
    let from_client = v4(CLIENT_V4, SERVER_V4, macs, &syn_seg());
    let from_client6 = v6(CLIENT_V6, SERVER_V6, &syn_seg());
    let f = Fixture::new(two, &[PORT]).expect("load synguard (needs root)");
    expect(
        &f,
        &[
            (
                "from the host's own".into(),
                from_own.clone(),
                XDP_DROP,
                Reason::DropMartianSource,
            ),
            (
                "from a client".into(),
                from_client,
                XDP_TX,
                Reason::TxSynAckCookie,
            ),
            (
                "v6 from the host's own".into(),
                from_own6.clone(),
                XDP_DROP,
                Reason::DropMartianSource,
            ),
            (
                "v6 from a client".into(),
                from_client6,
                XDP_TX,
                Reason::TxSynAckCookie,
            ),
        ],
    );
    let taking = synguard_common::maps::Config {
        accept_local: 1,
        ..two
    };
    let f = Fixture::new(taking, &[PORT]).expect("load synguard (needs root)");
    expect(
        &f,
        &[
            (
                "accept_local".into(),
                from_own.clone(),
                XDP_TX,
                Reason::TxSynAckCookie,
            ),
            (
                "accept_local, v6".into(),
                from_own6.clone(),
                XDP_DROP,
                Reason::DropMartianSource,
            ),
        ],
    );
    // On a loopback device the host talks to itself from its own addresses.
    let lo = synguard_common::maps::Config { loopback: 1, ..two };
    let f = Fixture::new(lo, &[PORT]).expect("load synguard (needs root)");
    expect(
        &f,
        &[
            ("loopback".into(), from_own, XDP_TX, Reason::TxSynAckCookie),
            (
                "loopback, v6".into(),
                from_own6,
                XDP_TX,
                Reason::TxSynAckCookie,
            ),
        ],
    );
}

/// The kernel's reverse-path filter (`fib_validate_source`): a SYN from a source it drops on
/// this interface goes to it unanswered. Strict: the route back must leave through this
/// interface; loose: it must be unicast. No route at all fails both. Neither flag: no check.
#[test]
fn syns_the_reverse_path_filter_drops_go_to_the_kernel() {
    use synguard_common::maps::{
        Config, HOST_RP_LOOSE, HOST_RP_STRICT, RP_ROUTE_BLOCKED, RP_ROUTE_ELSEWHERE, RP_ROUTE_HERE,
    };
    let macs = (CLIENT_MAC, SERVER_MAC);
    // CLIENT_V4 routed here; 198.18.9.0/24 out of another interface; 198.18.10.0/24
    // blackholed; nothing covers 203.0.113.7.
    let (here, elsewhere, blocked, nowhere) = (
        CLIENT_V4,
        [198, 18, 9, 5],
        [198, 18, 10, 5],
        [203, 0, 113, 7],
    );
    let syn_from = |src| v4(src, SERVER_V4, macs, &syn_seg());
    let v6_syn = v6(CLIENT_V6, SERVER_V6, &syn_seg());
    let run = |flags: u32, cases: &[([u8; 4], u32, Reason)]| {
        let cfg = Config {
            cookies: default_config().cookies | flags,
            ..default_config()
        };
        let mut f = Fixture::new(cfg, &[PORT]).expect("load synguard (needs root)");
        f.route_add(
            [CLIENT_V4[0], CLIENT_V4[1], CLIENT_V4[2], 0],
            24,
            RP_ROUTE_HERE,
        )
        .unwrap();
        f.route_add([198, 18, 9, 0], 24, RP_ROUTE_ELSEWHERE)
            .unwrap();
        f.route_add([198, 18, 10, 0], 24, RP_ROUTE_BLOCKED).unwrap();
        let mut all: Vec<(String, Vec<u8>, u32, Reason)> = cases
            .iter()
            .map(|&(src, action, reason)| {
                (
                    format!("flags {flags:#x}, from {src:?}"),
                    syn_from(src),
                    action,
                    reason,
                )
            })
            .collect();
        // IPv6 has no reverse-path filter.
        all.push((
            format!("flags {flags:#x}, IPv6"),
            v6_syn.clone(),
            XDP_TX,
            Reason::TxSynAckCookie,
        ));
        expect(&f, &all);
    };
    let (tx, pass) = (
        (XDP_TX, Reason::TxSynAckCookie),
        (XDP_PASS, Reason::PassReversePath),
    );
    let cases = |r: [(u32, Reason); 4]| {
        [
            (here, r[0].0, r[0].1),
            (elsewhere, r[1].0, r[1].1),
            (blocked, r[2].0, r[2].1),
            (nowhere, r[3].0, r[3].1),
        ]
    };
    run(HOST_RP_STRICT, &cases([tx, pass, pass, pass]));
    run(HOST_RP_LOOSE, &cases([tx, tx, pass, pass]));
    run(0, &cases([tx, tx, tx, tx]));
}

#[test]
fn syns_not_addressed_to_this_host_pass_untouched() {
    let f = fixture();
    let seg = syn_seg();
    let mut cases = Vec::new();
    for (name, dst) in [
        ("broadcast", [0xff; 6]),
        ("IPv4 multicast", [0x01, 0x00, 0x5e, 0, 0, 1]),
        ("IPv6 multicast", [0x33, 0x33, 0, 0, 0, 1]),
        ("another host", [0x02, 0, 0, 0, 0, 0x99]),
    ] {
        cases.push((
            name.to_string(),
            v4(CLIENT_V4, SERVER_V4, (CLIENT_MAC, dst), &seg),
            XDP_PASS,
            Reason::PassNotForHost,
        ));
        let mut f6 = v6(CLIENT_V6, SERVER_V6, &seg);
        f6[..6].copy_from_slice(&dst);
        cases.push((format!("{name} v6"), f6, XDP_PASS, Reason::PassNotForHost));
    }
    cases.push((
        "own MAC".into(),
        v4(CLIENT_V4, SERVER_V4, (CLIENT_MAC, SERVER_MAC), &seg),
        XDP_TX,
        Reason::TxSynAckCookie,
    ));
    expect(&f, &cases);
}

/// Eight addresses of each family, in runs as hosts have them (container bridges, secondary
/// addresses): the list stays known, every one of them is answered as the host's and the
/// address next to them is not. Before the loader chose the salt, a fixed hash put three of
/// eight such addresses in one pair and the check was off for the family.
#[test]
fn eight_addresses_of_each_family_are_all_known() {
    let v4s: Vec<[u8; 4]> = (0..8).map(|i| [172, 17 + i, 0, 1]).collect();
    let v6s: Vec<[u8; 16]> = (0..8)
        .map(|i| ip6(&format!("2001:db8::{}", i + 1)))
        .collect();
    let cfg = with_local(default_config(), &v4s, &v6s);
    assert_eq!((cfg.local_v4_n, cfg.local_v6_n), (9, 9));
    let macs = (CLIENT_MAC, SERVER_MAC);
    let mut cases = Vec::new();
    for a in &v4s {
        let frame = v4(CLIENT_V4, *a, macs, &syn_seg());
        cases.push((
            format!("SYN to {a:?}"),
            frame,
            XDP_TX,
            Reason::TxSynAckCookie,
        ));
    }
    for a in &v6s {
        let frame = v6(CLIENT_V6, *a, &syn_seg());
        cases.push((
            format!("SYN to {a:x?}"),
            frame,
            XDP_TX,
            Reason::TxSynAckCookie,
        ));
    }
    let next4 = v4(CLIENT_V4, [172, 25, 0, 1], macs, &syn_seg());
    cases.push((
        "SYN to 172.25.0.1".into(),
        next4,
        XDP_PASS,
        Reason::PassNotLocal,
    ));
    let next6 = v6(CLIENT_V6, ip6("2001:db8::9"), &syn_seg());
    cases.push((
        "SYN to 2001:2::9".into(),
        next6,
        XDP_PASS,
        Reason::PassNotLocal,
    ));
    let f = Fixture::new(cfg, &[PORT]).expect("load synguard (needs root)");
    expect(&f, &cases);
}

/// Twelve addresses of each family (172.17.0.1 ..., 2001:db8::1 ...) and `routes`, placed and
/// written as the loader does (`LocalAddrs::with_table`): both families in the trie. The
/// addresses, the placement and the tries' entries, and the default config holding it.
fn in_the_trie(
    routes: &[synguard::host::local_routes::LocalRoute],
) -> (
    Vec<[u8; 4]>,
    Vec<[u8; 16]>,
    synguard::host::addrs::LocalAddrs,
    synguard::host::addrs::LocalTable,
    synguard_common::maps::Config,
) {
    use std::net::IpAddr;
    let v4s: Vec<[u8; 4]> = (0..12).map(|i| [172, 17 + i, 0, 1]).collect();
    let v6s: Vec<[u8; 16]> = (0..12)
        .map(|i| ip6(&format!("2001:db8::{}", i + 1)))
        .collect();
    let found = v4s
        .iter()
        .map(|a| IpAddr::from(*a))
        .chain(v6s.iter().map(|a| IpAddr::from(*a)))
        .map(|a| ("eth0".to_string(), a));
    let (addrs, table) = synguard::host::addrs::LocalAddrs::with_table(&["eth0"], found, routes);
    let mut cfg = default_config();
    addrs.set(&mut cfg);
    (v4s, v6s, addrs, table, cfg)
}

/// Cases whose expected action and reason come as a pair, as [`expect`] takes them.
fn flat(cases: Vec<(String, Vec<u8>, (u32, Reason))>) -> Vec<(String, Vec<u8>, u32, Reason)> {
    cases
        .into_iter()
        .map(|(w, f, (a, r))| (w, f, a, r))
        .collect()
}

/// More addresses than the config's slots hold, and an AnyIP prefix: the loader puts each
/// family in its trie (`LOCAL_IN_MAP`, `SG_LOCAL_V4` / `SG_LOCAL_V6`), and the program takes
/// exactly those as the host's: every listed address and every address of the prefix is
/// answered, another destination passes as forwarded traffic, and one of the host's addresses
/// as a source is a martian. Before the tries, such a host's list was not known and every
/// destination counted as its own: a forwarded SYN was answered in another host's name.
#[test]
fn addresses_beyond_the_slots_and_local_prefixes_are_the_hosts() {
    use std::net::IpAddr;
    use synguard::host::local_routes::LocalRoute;
    use synguard_common::maps::LOCAL_IN_MAP;

    let anyip = LocalRoute {
        addr: IpAddr::from([192, 0, 2, 0]),
        prefix: 24,
    };
    let (v4s, v6s, _, table, cfg) = in_the_trie(&[anyip]);
    assert_eq!(
        (cfg.local_v4_n, cfg.local_v6_n),
        (LOCAL_IN_MAP, LOCAL_IN_MAP)
    );
    let macs = (CLIENT_MAC, SERVER_MAC);
    let mut ack = Segment::syn(40000, PORT, 8, vec![]);
    ack.flags = ACK;
    ack.ack = 12345;
    let mut cases = Vec::new();
    let answered = (XDP_TX, Reason::TxSynAckCookie);
    let forwarded = (XDP_PASS, Reason::PassNotLocal);
    let martian = (XDP_DROP, Reason::DropMartianSource);
    for a in v4s.iter().chain([&[192, 0, 2, 77]]) {
        cases.push((
            format!("SYN to {a:?}"),
            v4(CLIENT_V4, *a, macs, &syn_seg()),
            answered,
        ));
    }
    for a in &v6s {
        cases.push((
            format!("SYN to {a:x?}"),
            v6(CLIENT_V6, *a, &syn_seg()),
            answered,
        ));
    }
    for (what, seg) in [("SYN", syn_seg()), ("ACK", ack)] {
        for a in [[172, 30, 0, 1], [192, 0, 3, 1]] {
            cases.push((
                format!("{what} to {a:?}"),
                v4(CLIENT_V4, a, macs, &seg),
                forwarded,
            ));
        }
        let other6 = ip6("2001:db8::99");
        cases.push((
            format!("{what} to 2001:db8::99"),
            v6(CLIENT_V6, other6, &seg),
            forwarded,
        ));
    }
    let from_own4 = v4([172, 25, 0, 1], v4s[0], macs, &syn_seg());
    cases.push(("SYN from 172.25.0.1".into(), from_own4, martian));
    let from_prefix = v4([192, 0, 2, 9], v4s[0], macs, &syn_seg());
    cases.push(("SYN from 192.0.2.9".into(), from_prefix, martian));
    let from_own6 = v6(v6s[11], v6s[0], &syn_seg());
    cases.push(("SYN from 2001:db8::c".into(), from_own6, martian));
    let cases = flat(cases);
    let mut f = Fixture::new(cfg, &[PORT]).expect("load synguard (needs root)");
    f.local_table(&table).unwrap();
    expect(&f, &cases);
}

/// A port whose listeners are bound to one of the host's addresses, on a host whose addresses
/// are in the trie (no slots to name): the loader sets `PORT_BOUND_ONLY_V4` and writes the
/// bound address to `SG_BOUND` (its own `Listening` and writing), and a SYN to another of the
/// host's addresses is left to the kernel, which resets it, as `pass_syn_no_listener`. IPv6,
/// with a wildcard listener, is answered at every address. Before, every address counted as
/// listened to, and a client of an address no service is bound to got a SYN-ACK and then a
/// reset.
#[test]
fn a_port_bound_to_one_of_many_addresses_leaves_the_others_to_the_kernel() {
    use std::net::IpAddr;
    use synguard::host::listeners::Listening;
    use synguard_common::maps::PORT_BOUND_ONLY_V4;

    let (v4s, v6s, addrs, table, cfg) = in_the_trie(&[]);
    let mut listening = Listening::default();
    listening
        .v4
        .at
        .entry(PORT)
        .or_default()
        .insert(IpAddr::from(v4s[0]));
    listening.v6.any.insert(PORT);
    let bits = listening.no_listener_flags(PORT, &addrs);
    assert_ne!(bits & PORT_BOUND_ONLY_V4, 0);
    let mut f = Fixture::new(cfg, &[PORT]).expect("load synguard (needs root)");
    f.local_table(&table).unwrap();
    f.set_bound(&listening.bound_keys(&[PORT], &addrs)).unwrap();
    f.set_no_listener(&[(PORT, bits)]).unwrap();
    let macs = (CLIENT_MAC, SERVER_MAC);
    let answered = (XDP_TX, Reason::TxSynAckCookie);
    let refused = (XDP_PASS, Reason::PassSynNoListener);
    let mut cases = vec![(
        "SYN to the bound address".to_string(),
        v4(CLIENT_V4, v4s[0], macs, &syn_seg()),
        answered,
    )];
    for a in &v4s[1..] {
        cases.push((
            format!("SYN to {a:?}"),
            v4(CLIENT_V4, *a, macs, &syn_seg()),
            refused,
        ));
    }
    for a in &v6s[..3] {
        cases.push((
            format!("SYN to {a:x?}"),
            v6(CLIENT_V6, *a, &syn_seg()),
            answered,
        ));
    }
    let cases = flat(cases);
    expect(&f, &cases);
}

/// Through the host's MAC to an address that is not the host's: traffic it forwards (a router,
/// a node whose containers' addresses are routed to it). Neither answered nor dropped, SYN or
/// ACK, with either kind of cookie; with the host's addresses not known (the loader lists none
/// on a loopback device or beyond `LOCAL_ADDRS`), every destination counts as the host's.
#[test]
fn segments_the_host_forwards_pass_untouched() {
    let syn = syn_seg();
    let mut ack = Segment::syn(40000, PORT, 8, vec![]);
    ack.flags = ACK;
    ack.ack = 12345;
    let (other4, other6) = ([198, 18, 0, 99], ip6("2001:2::99"));
    let macs = (CLIENT_MAC, SERVER_MAC);
    let mut cases = Vec::new();
    for (what, seg) in [("SYN", &syn), ("ACK", &ack)] {
        let to4 = v4(CLIENT_V4, other4, macs, seg);
        let to6 = v6(CLIENT_V6, other6, seg);
        cases.push((
            format!("{what} to {other4:?}"),
            to4,
            XDP_PASS,
            Reason::PassNotLocal,
        ));
        cases.push((
            format!("{what} to 2001:2::99"),
            to6,
            XDP_PASS,
            Reason::PassNotLocal,
        ));
    }
    let to_host = |seg: &Segment| v4(CLIENT_V4, SERVER_V4, macs, seg);
    cases.push((
        "SYN to the host".into(),
        to_host(&syn),
        XDP_TX,
        Reason::TxSynAckCookie,
    ));
    let to_host6 = v6(CLIENT_V6, SERVER_V6, &syn);
    cases.push((
        "SYN to the host v6".into(),
        to_host6,
        XDP_TX,
        Reason::TxSynAckCookie,
    ));
    cases.push((
        "bogus ACK to the host".into(),
        to_host(&ack),
        XDP_DROP,
        Reason::DropAckBadCookie,
    ));
    expect_both(&cases);

    let unknown = synguard_common::maps::Config {
        local_v4_n: 0,
        local_v6_n: 0,
        ..default_config()
    };
    let f = Fixture::new(unknown, &[PORT]).expect("load synguard (needs root)");
    let to_other = v4(CLIENT_V4, other4, macs, &syn);
    expect(
        &f,
        &[(
            "not known: answered".into(),
            to_other,
            XDP_TX,
            Reason::TxSynAckCookie,
        )],
    );
}

#[test]
fn unknown_own_mac_fails_open_for_unicast_only() {
    let mut cfg = default_config();
    cfg.own_mac = [0; 6];
    let f = Fixture::new(cfg, &[PORT]).unwrap();
    let seg = syn_seg();
    expect(
        &f,
        &[
            (
                "another unicast MAC".into(),
                v4(
                    CLIENT_V4,
                    SERVER_V4,
                    (CLIENT_MAC, [2, 0, 0, 0, 0, 0x99]),
                    &seg,
                ),
                XDP_TX,
                Reason::TxSynAckCookie,
            ),
            (
                "broadcast".into(),
                v4(CLIENT_V4, SERVER_V4, (CLIENT_MAC, [0xff; 6]), &seg),
                XDP_PASS,
                Reason::PassNotForHost,
            ),
        ],
    );
}

#[test]
fn martian_sources_are_dropped() {
    let seg = syn_seg();
    let mut ack = Segment::syn(40000, PORT, 7, vec![]);
    ack.flags = ACK;
    ack.ack = 1234;
    let mut cases = Vec::new();
    for src in [
        [0, 0, 0, 0],
        [0, 9, 9, 9],
        [127, 0, 0, 1],
        [224, 0, 0, 1],
        [239, 1, 2, 3],
        [240, 0, 0, 1],
        [255, 255, 255, 255],
        SERVER_V4,
    ] {
        let macs = (CLIENT_MAC, SERVER_MAC);
        cases.push((
            format!("SYN from {src:?}"),
            v4(src, SERVER_V4, macs, &seg),
            XDP_DROP,
            Reason::DropMartianSource,
        ));
        cases.push((
            format!("ACK from {src:?}"),
            v4(src, SERVER_V4, macs, &ack),
            XDP_DROP,
            Reason::DropMartianSource,
        ));
    }
    for src in ["::", "::1", "ff02::1", "::ffff:198.18.0.2", "2001:2::1"] {
        cases.push((
            format!("SYN from {src}"),
            v6(ip6(src), SERVER_V6, &seg),
            XDP_DROP,
            Reason::DropMartianSource,
        ));
    }
    // Close to the edges, but fine.
    cases.push((
        "SYN from 223.255.255.254".into(),
        v4(
            [223, 255, 255, 254],
            SERVER_V4,
            (CLIENT_MAC, SERVER_MAC),
            &seg,
        ),
        XDP_TX,
        Reason::TxSynAckCookie,
    ));
    cases.push((
        "SYN from fe80::2".into(),
        v6(ip6("fe80::2"), SERVER_V6, &seg),
        XDP_TX,
        Reason::TxSynAckCookie,
    ));
    expect_both(&cases);
}

/// Offset of the TCP checksum in an untagged frame.
fn tcp_csum_at(ipv6: bool) -> usize {
    14 + if ipv6 { 40 } else { 20 } + 16
}

#[test]
fn bad_checksums_are_dropped_and_the_partial_form_is_answered() {
    let seg = syn_seg();
    let good4 = client_syn_v4(Tags::None, &seg);
    let good6 = client_syn_v6(Tags::None, &seg);
    let mut cases = Vec::new();

    let mut bad_ip = good4.clone();
    bad_ip[14 + 10] ^= 0x01;
    cases.push((
        "IPv4 header checksum".into(),
        bad_ip,
        XDP_DROP,
        Reason::DropBadIpChecksum,
    ));
    // A changed TTL without a new header checksum.
    let mut bad_ttl = good4.clone();
    bad_ttl[14 + 8] = 3;
    cases.push((
        "TTL edited".into(),
        bad_ttl,
        XDP_DROP,
        Reason::DropBadIpChecksum,
    ));

    for (ipv6, good) in [(false, &good4), (true, &good6)] {
        let at = tcp_csum_at(ipv6);
        let mut bad = good.clone();
        bad[at + 1] ^= 0x40;
        cases.push((
            format!("TCP checksum ipv6={ipv6}"),
            bad,
            XDP_DROP,
            Reason::DropBadTcpChecksum,
        ));
        // The option bytes count: a changed MSS without a new checksum.
        let mut bad_opt = good.clone();
        bad_opt[at + 4 + 3] ^= 0x10;
        cases.push((
            format!("option byte ipv6={ipv6}"),
            bad_opt,
            XDP_DROP,
            Reason::DropBadTcpChecksum,
        ));
        // CHECKSUM_PARTIAL from a sibling namespace over veth: the field holds the folded
        // pseudo-header sum only.
        let mut partial = good.clone();
        let p = partial_field(&partial);
        partial[at..at + 2].copy_from_slice(&p.to_be_bytes());
        cases.push((
            format!("partial form ipv6={ipv6}"),
            partial,
            XDP_TX,
            Reason::TxSynAckCookie,
        ));
    }
    expect_both(&cases);
}

/// `~csum_tcpudp_magic(saddr, daddr, len, IPPROTO_TCP, 0)`, as `__tcp_v4_send_check` leaves it,
/// computed here with 16-bit words.
fn partial_field(frame: &[u8]) -> u16 {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("no TCP")
    };
    let len = tcp.slice().len() as u32;
    let mut words: Vec<u8> = match p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            [h.source(), h.destination()].concat()
        }
        Some(etherparse::NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            [h.source(), h.destination()].concat()
        }
        _ => panic!("no IP"),
    };
    words.extend_from_slice(&len.to_be_bytes());
    words.extend_from_slice(&[0, 0, 0, 6]);
    let mut sum = 0u32;
    for w in words.chunks(2) {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The MSS option of a SYN-ACK.
fn synack_mss(frame: &[u8]) -> Option<u16> {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("no TCP")
    };
    tcp.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    })
}

#[test]
fn option_rules_follow_the_kernel_and_the_mss_never_exceeds_the_clients() {
    use TcpOptionElement::*;
    let f = fixture();
    // (what, options, SYN-ACK MSS over IPv4, over IPv6): the cookie's table value at or below
    // the client's MSS, never above the client's own.
    let table: Vec<(&str, Vec<TcpOptionElement>, u16, u16)> = vec![
        // Issue 9: MSS 88 then MSS 0 got MSS 536.
        (
            "MSS 88, MSS 0",
            vec![MaximumSegmentSize(88), MaximumSegmentSize(0)],
            88,
            88,
        ),
        (
            "MSS 0, MSS 88",
            vec![MaximumSegmentSize(0), MaximumSegmentSize(88)],
            88,
            88,
        ),
        (
            "MSS 0 alone: default",
            vec![MaximumSegmentSize(0)],
            536,
            1220,
        ),
        (
            "MSS 1460, MSS 1300: the last",
            vec![MaximumSegmentSize(1460), MaximumSegmentSize(1300)],
            1300,
            1220,
        ),
        ("MSS 100", vec![MaximumSegmentSize(100)], 100, 100),
        ("no options", vec![], 536, 1220),
    ];
    for (what, opts, want4, want6) in table {
        let seg = Segment::syn(40000, PORT, 7, opts);
        for ipv6 in [false, true] {
            let frame = if ipv6 {
                client_syn_v6(Tags::None, &seg)
            } else {
                client_syn_v4(Tags::None, &seg)
            };
            let out = f.run(&frame).unwrap();
            assert_eq!(out.action, XDP_TX, "{what}");
            let want = if ipv6 { want6 } else { want4 };
            assert_eq!(synack_mss(&out.frame), Some(want), "{what} ipv6={ipv6}");
        }
    }
}

/// `rcv_nxt` of a connected socket: the peer's ISN + 1 before any data (`TCP_REPAIR` lets
/// root read it with `TCP_QUEUE_SEQ`). The socket stays in repair mode, so closing it sends
/// nothing.
fn rcv_nxt(fd: std::os::fd::RawFd) -> u32 {
    const TCP_REPAIR: libc::c_int = 19;
    const TCP_REPAIR_QUEUE: libc::c_int = 20;
    const TCP_QUEUE_SEQ: libc::c_int = 21;
    const TCP_RECV_QUEUE: libc::c_int = 1;
    let set = |opt: libc::c_int, v: libc::c_int| {
        // SAFETY: setsockopt with a pointer to a local int of the size given.
        let r =
            unsafe { libc::setsockopt(fd, libc::IPPROTO_TCP, opt, &v as *const _ as *const _, 4) };
        assert_eq!(
            r,
            0,
            "setsockopt {opt}: {}",
            std::io::Error::last_os_error()
        );
    };
    set(TCP_REPAIR, 1);
    set(TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
    let mut seq: u32 = 0;
    let mut len: libc::socklen_t = 4;
    // SAFETY: getsockopt into a local u32 of the size given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            TCP_QUEUE_SEQ,
            &mut seq as *mut _ as *mut _,
            &mut len,
        )
    };
    assert_eq!(r, 0, "TCP_QUEUE_SEQ: {}", std::io::Error::last_os_error());
    seq
}

#[test]
fn acks_to_a_request_socket_must_acknowledge_its_isn() {
    use std::os::fd::AsRawFd;
    // A real half-open handshake on loopback: with TCP_DEFER_ACCEPT the server keeps the
    // request socket (SYN-RECV) after the client's data-less ACK, and the lookup finds it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let secs: libc::c_int = 30;
    // SAFETY: setsockopt with a pointer to a local int.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            &secs as *const _ as *const _,
            4,
        )
    };
    assert_eq!(r, 0);
    let port = listener.local_addr().unwrap().port();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let cport = client.local_addr().unwrap().port();
    let isn_plus_1 = rcv_nxt(client.as_raw_fd());

    let cfg = loopback_config();
    assert_ne!(
        cfg.reqsk_isn_off, 0,
        "no kernel BTF offset for tcp_request_sock.snt_isn"
    );
    let f = Fixture::new(cfg, &[port]).unwrap();
    let lo = [127, 0, 0, 1];
    let ack = |ack: u32| {
        let mut seg = Segment::syn(cport, port, 1, vec![]);
        seg.flags = ACK;
        seg.ack = ack;
        tcp_v4(lo, lo, Tags::None, (CLIENT_MAC, SERVER_MAC), &seg)
    };
    expect(
        &f,
        &[
            (
                "the handshake's own ACK".into(),
                ack(isn_plus_1),
                XDP_PASS,
                Reason::PassEstablished,
            ),
            (
                "an ACK flood packet on the same 4-tuple".into(),
                ack(isn_plus_1.wrapping_add(12345)),
                XDP_DROP,
                Reason::DropAckBadRequest,
            ),
        ],
    );
    // Without the offset (no kernel BTF), such ACKs pass as before: fail open.
    let f = Fixture::new(
        synguard_common::maps::Config {
            reqsk_isn_off: 0,
            ..cfg
        },
        &[port],
    )
    .unwrap();
    let wrong = ack(isn_plus_1.wrapping_add(12345));
    expect(
        &f,
        &[("no offset".into(), wrong, XDP_PASS, Reason::PassEstablished)],
    );
    drop(client);
}
