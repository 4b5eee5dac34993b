//! Is a frame addressed to this host, and is its source one the host's stack would accept? The
//! rules follow the kernel's receive path: `eth_type_trans` sets `pkt_type` from the destination
//! MAC and `tcp_v4_rcv` / `tcp_v6_rcv` discard anything that is not `PACKET_HOST`; the IPv4
//! routing input (`ip_route_input_slow`) drops martian sources; `ip6_rcv_core` and
//! `tcp_v6_rcv` refuse multicast, loopback and IPv4-mapped sources. docs/host-checks.md has the
//! whole table.

use crate::maps::LOCAL_ADDRS;

/// What the destination MAC makes of a frame (the kernel's `pkt_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacClass {
    /// Addressed to this interface (`PACKET_HOST`).
    Host,
    /// ff:ff:ff:ff:ff:ff (`PACKET_BROADCAST`).
    Broadcast,
    /// Group bit set (`PACKET_MULTICAST`).
    Multicast,
    /// Another host's unicast address: promiscuous mode, a bridge port, macvlan
    /// (`PACKET_OTHERHOST`).
    OtherHost,
}

/// Classifies a destination MAC against the interface's own. `own` all zero means the loader
/// did not say (an older loader, or a device without an address): every unicast frame then
/// counts as ours, so the check fails open.
#[inline(always)]
pub fn mac_class(dst: &[u8; 6], own: &[u8; 6]) -> MacClass {
    if dst[0] & 1 != 0 {
        if *dst == [0xff; 6] {
            return MacClass::Broadcast;
        }
        return MacClass::Multicast;
    }
    if *own == [0; 6] || dst == own {
        MacClass::Host
    } else {
        MacClass::OtherHost
    }
}

/// An IPv4 source the kernel would never accept a TCP segment from: 0.0.0.0/8 ("this network"),
/// 127.0.0.0/8 (loopback, arriving on a real interface), 224.0.0.0/4 (multicast), 240.0.0.0/4
/// (reserved, including the limited broadcast 255.255.255.255), or the destination itself (LAND).
/// On a loopback device (`loopback`), loopback sources and LAND are what the host sends itself.
#[inline(always)]
pub fn martian_v4(src: &[u8; 4], dst: &[u8; 4], loopback: bool) -> bool {
    let first = src[0];
    if first == 0 || first >= 224 {
        return true;
    }
    !loopback && (first == 127 || src == dst)
}

/// An IPv6 source the kernel would never accept a TCP segment from: multicast (ff00::/8), the
/// unspecified address, loopback (::1), IPv4-mapped (::ffff:0:0/96, `ip6_rcv_core` drops them
/// on the wire, RFC 4291 section 2.5.5.2), or the destination itself (LAND).
/// On a loopback device (`loopback`), ::1 and LAND are what the host sends itself.
#[inline(always)]
pub fn martian_v6(src: &[u8; 16], dst: &[u8; 16], loopback: bool) -> bool {
    if src[0] == 0xff {
        return true;
    }
    if src == dst {
        return !loopback;
    }
    let mut zero_prefix = true;
    let mut i = 0;
    while i < 10 {
        zero_prefix &= src[i] == 0;
        i += 1;
    }
    if !zero_prefix {
        return false;
    }
    let mapped = src[10] == 0xff && src[11] == 0xff;
    let low = u32::from_be_bytes([src[12], src[13], src[14], src[15]]);
    let unspecified_or_lo = src[10] == 0 && src[11] == 0 && (low == 0 || (low == 1 && !loopback));
    mapped || unspecified_or_lo
}

/// Whether `dst` (an IPv4 address as the header's word) is one of the host's own, `addrs`
/// (`Config::local_v4`, laid out by [`local_words_v4`]: each address in one of the two slots of
/// the pair its [`local_pair`] names). `known` 0 (`Config::local_v4_n`): not known, every
/// destination counts as the host's (fail open). A segment to another address is one the host
/// would forward, not receive (`ip_route_input_slow`: not `RTN_LOCAL`).
///
/// Verifier workaround: two compares at a computed place, not one per slot. Comparing every
/// slot (with a count, or with the slots past it repeating an address) left each outcome a
/// state of its own for the rest of the program: `synguard` verified in 170 k instructions
/// instead of 109 k, and without the count it went past the 1 M limit.
#[inline(always)]
pub fn dst_local_v4(dst: u32, known: u32, addrs: &[u32; LOCAL_ADDRS]) -> bool {
    dst_slots_v4(dst, known, addrs) != 0
}

/// [`dst_local_v4`] as the slots of `addrs` that hold `dst` (slot `i`: bit `i`), or
/// [`SLOTS_NOT_KNOWN`] when the list is not known; 0: not the host's. The listener check reads
/// the port's `PORT_NO_LISTENER_AT_*` bits of these slots (`maps::port_no_listener_at`).
/// Without branches on which slot matched: the verifier sees one state, as with the bool.
#[inline(always)]
pub fn dst_slots_v4(dst: u32, known: u32, addrs: &[u32; LOCAL_ADDRS]) -> u32 {
    if known == 0 {
        return SLOTS_NOT_KNOWN;
    }
    let at = local_pair(dst) * 2;
    (((addrs[at] == dst) as u32) << at) | (((addrs[at + 1] == dst) as u32) << (at + 1))
}

/// What [`dst_slots_v4`] and [`dst_slots_v6`] give where the address list is not known: every
/// destination counts as the host's, and no slot is named.
pub const SLOTS_NOT_KNOWN: u32 = 1 << LOCAL_ADDRS;

/// Whether an IPv4 segment's source `src` is one of the host's own addresses, which the kernel
/// takes as a martian on any interface but loopback unless `accept_local` is set
/// (`fib_validate_source`: `inet_lookup_ifaddr_rcu` finds the source, or the full check's
/// lookup gives `RTN_LOCAL`). Not known (`known` 0): no source counts as local.
#[inline(always)]
pub fn src_local_v4(src: u32, known: u32, addrs: &[u32; LOCAL_ADDRS]) -> bool {
    known != 0 && dst_local_v4(src, known, addrs)
}

/// [`src_local_v4`] for IPv6. The kernel has no such check for IPv6: it answers a SYN from one
/// of its own addresses arriving on a NIC, to itself over loopback (seen in namespaces, as it
/// answers an IPv6 LAND SYN). No client on the wire sends one; the program drops it as it drops
/// LAND (`martian_v6`), rather than send a SYN-ACK for the host's own address out of the NIC.
#[inline(always)]
pub fn src_local_v6(src: &[u32; 4], known: u32, addrs: &[[u32; 4]; LOCAL_ADDRS]) -> bool {
    known != 0 && dst_local_v6(src, known, addrs)
}

/// [`dst_local_v4`] for IPv6: `dst` and each of `addrs` as four header words.
#[inline(always)]
pub fn dst_local_v6(dst: &[u32; 4], known: u32, addrs: &[[u32; 4]; LOCAL_ADDRS]) -> bool {
    dst_slots_v6(dst, known, addrs) != 0
}

/// [`dst_slots_v4`] for IPv6.
#[inline(always)]
pub fn dst_slots_v6(dst: &[u32; 4], known: u32, addrs: &[[u32; 4]; LOCAL_ADDRS]) -> u32 {
    if known == 0 {
        return SLOTS_NOT_KNOWN;
    }
    let at = local_pair(dst[0] ^ dst[1] ^ dst[2] ^ dst[3]) * 2;
    let same =
        |a: &[u32; 4]| ((a[0] ^ dst[0]) | (a[1] ^ dst[1]) | (a[2] ^ dst[2]) | (a[3] ^ dst[3])) == 0;
    ((same(&addrs[at]) as u32) << at) | ((same(&addrs[at + 1]) as u32) << (at + 1))
}

/// Which pair of slots an address (IPv6: its four words xor-ed) may sit in: every byte of the
/// word counts.
#[inline(always)]
pub const fn local_pair(w: u32) -> usize {
    let f = w ^ (w >> 16);
    ((f ^ (f >> 8)) as usize) & (LOCAL_ADDRS / 2 - 1)
}

/// What fills an empty slot: an address no segment the host accepts is sent to (the limited
/// broadcast; for IPv6, a reserved multicast address).
pub const NO_ADDR_V4: [u8; 4] = [0xff; 4];
pub const NO_ADDR_V6: [u8; 16] = [0xff; 16];

/// The loader's side of [`dst_local_v4`]: `Config::local_v4_n` (the number of addresses plus
/// one, or 0 for "not known" when they do not fit: a pair with a third address) and
/// `local_v4`, each address in the first free slot of its pair, the others [`NO_ADDR_V4`].
pub fn local_words_v4(addrs: &[[u8; 4]]) -> (u32, [u32; LOCAL_ADDRS]) {
    place(
        addrs,
        u32::from_ne_bytes(NO_ADDR_V4),
        |a| u32::from_ne_bytes(*a),
        |w| *w,
    )
}

/// [`local_words_v4`] for IPv6.
pub fn local_words_v6(addrs: &[[u8; 16]]) -> (u32, [[u32; 4]; LOCAL_ADDRS]) {
    place(addrs, addr_words(&NO_ADDR_V6), addr_words, |w| {
        w[0] ^ w[1] ^ w[2] ^ w[3]
    })
}

/// An IPv6 address as the header's four words, as the program loads them.
pub fn addr_words(a: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
    [w(0), w(1), w(2), w(3)]
}

fn place<A, W: Copy + PartialEq>(
    addrs: &[A],
    empty: W,
    words: impl Fn(&A) -> W,
    key: impl Fn(&W) -> u32,
) -> (u32, [W; LOCAL_ADDRS]) {
    let mut out = [empty; LOCAL_ADDRS];
    for a in addrs {
        let w = words(a);
        let at = local_pair(key(&w)) * 2;
        match (out[at] == empty, out[at + 1] == empty) {
            (true, _) => out[at] = w,
            (false, true) => out[at + 1] = w,
            (false, false) => return (0, [empty; LOCAL_ADDRS]),
        }
    }
    (addrs.len() as u32 + 1, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use crate::testrand::Rng;

    const OWN: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

    #[test]
    fn a_source_is_local_only_if_listed_and_never_when_the_list_is_not_known() {
        let (n, w) = local_words_v4(&[[198, 18, 0, 1], [10, 0, 0, 7]]);
        let word = |a: [u8; 4]| u32::from_ne_bytes(a);
        assert!(src_local_v4(word([10, 0, 0, 7]), n, &w));
        assert!(!src_local_v4(word([10, 0, 0, 8]), n, &w));
        assert!(!src_local_v4(word([10, 0, 0, 7]), 0, &w));
        let one = |last: u8| {
            let mut a = [0u8; 16];
            a[0] = 0x20;
            a[1] = 0x01;
            a[15] = last;
            a
        };
        let (n6, w6) = local_words_v6(&[one(1), one(9)]);
        assert!(src_local_v6(&addr_words(&one(9)), n6, &w6));
        assert!(!src_local_v6(&addr_words(&one(2)), n6, &w6));
        assert!(!src_local_v6(&addr_words(&one(9)), 0, &w6));
    }

    #[test]
    fn a_destination_is_local_only_if_listed_unless_the_list_is_not_known() {
        let (n, w) = local_words_v4(&[[198, 18, 0, 1], [10, 0, 0, 7]]);
        assert_eq!(n, 3);
        let word = |a: [u8; 4]| u32::from_ne_bytes(a);
        assert!(dst_local_v4(word([198, 18, 0, 1]), n, &w));
        assert!(dst_local_v4(word([10, 0, 0, 7]), n, &w));
        assert!(!dst_local_v4(word([198, 18, 0, 99]), n, &w));
        // The unused slots hold zeros, which must not make 0.0.0.0 local.
        assert!(!dst_local_v4(0, n, &w));
        // None listed: nothing is local. Not known: everything is.
        let (n0, w0) = local_words_v4(&[]);
        assert!(!dst_local_v4(word([198, 18, 0, 1]), n0, &w0));
        assert!(dst_local_v4(word([198, 18, 0, 99]), 0, &w));
        // More than fit: not known. A third address in one pair does not fit either.
        let many: std::vec::Vec<[u8; 4]> = (0..=LOCAL_ADDRS as u8).map(|i| [10, 0, 0, i]).collect();
        assert_eq!(local_words_v4(&many).0, 0);
        let same_pair: std::vec::Vec<[u8; 4]> = (0..=255u8)
            .map(|i| [10, 0, 1, i])
            .filter(|a| local_pair(word(*a)) == 0)
            .take(3)
            .collect();
        assert_eq!(local_words_v4(&same_pair[..2]).0, 3);
        assert_eq!(local_words_v4(&same_pair).0, 0);
        // Whatever fits is found, and nothing else.
        let mut rng = Rng::new(7);
        for _ in 0..2000 {
            let n = (rng.next() % 5) as usize;
            let addrs: std::vec::Vec<[u8; 4]> =
                (0..n).map(|_| (rng.next() as u32).to_ne_bytes()).collect();
            let (k, w) = local_words_v4(&addrs);
            if k == 0 {
                continue;
            }
            for a in &addrs {
                assert!(dst_local_v4(word(*a), k, &w));
            }
            let other = (rng.next() as u32).to_ne_bytes();
            assert_eq!(dst_local_v4(word(other), k, &w), addrs.contains(&other));
        }
    }

    #[test]
    fn a_local_destination_names_the_one_slot_that_holds_it() {
        let mut rng = Rng::new(11);
        for _ in 0..2000 {
            let n = (rng.next() % 9) as usize;
            let addrs: std::vec::Vec<[u8; 4]> =
                (0..n).map(|_| (rng.next() as u32).to_ne_bytes()).collect();
            let (k, w) = local_words_v4(&addrs);
            let other = (rng.next() as u32).to_ne_bytes();
            for a in addrs.iter().chain([&other]) {
                let dst = u32::from_ne_bytes(*a);
                let slots = dst_slots_v4(dst, k, &w);
                if k == 0 {
                    assert_eq!(slots, SLOTS_NOT_KNOWN);
                } else if addrs.contains(a) {
                    assert_eq!(slots.count_ones(), 1, "{a:?} in {w:x?}");
                    assert_eq!(w[slots.trailing_zeros() as usize], dst);
                } else {
                    assert_eq!(slots, 0);
                }
            }
            let words: std::vec::Vec<[u8; 16]> = addrs
                .iter()
                .map(|a| {
                    let mut v6 = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                    v6[12..].copy_from_slice(a);
                    v6
                })
                .collect();
            let (k6, w6) = local_words_v6(&words);
            for a in &words {
                let slots = dst_slots_v6(&addr_words(a), k6, &w6);
                if k6 == 0 {
                    assert_eq!(slots, SLOTS_NOT_KNOWN);
                } else {
                    assert_eq!(slots.count_ones(), 1);
                    assert_eq!(w6[slots.trailing_zeros() as usize], addr_words(a));
                }
            }
        }
    }

    #[test]
    fn an_ipv6_destination_matches_all_four_words() {
        let own = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let (n, w) = local_words_v6(&[own]);
        assert!(dst_local_v6(&addr_words(&own), n, &w));
        for byte in 0..16 {
            let mut other = own;
            other[byte] ^= 0x40;
            assert!(!dst_local_v6(&addr_words(&other), n, &w), "byte {byte}");
        }
        assert!(dst_local_v6(&addr_words(&[0xfe; 16]), 0, &w));
    }

    #[test]
    fn mac_classes() {
        let table = [
            ([0xff; 6], MacClass::Broadcast),
            ([0x01, 0x00, 0x5e, 0, 0, 1], MacClass::Multicast),
            ([0x33, 0x33, 0, 0, 0, 1], MacClass::Multicast),
            (OWN, MacClass::Host),
            ([0x02, 0, 0, 0, 0, 2], MacClass::OtherHost),
        ];
        for (dst, want) in table {
            assert_eq!(mac_class(&dst, &OWN), want, "{dst:02x?}");
        }
        // Own address unknown: unicast is ours, group addresses still are not.
        assert_eq!(mac_class(&[0x02, 0, 0, 0, 0, 2], &[0; 6]), MacClass::Host);
        assert_eq!(mac_class(&[0xff; 6], &[0; 6]), MacClass::Broadcast);
    }

    #[test]
    fn mac_class_property() {
        // Host exactly when unicast and equal to ours; group bit decides multicast/broadcast.
        let mut rng = Rng::new(1);
        for _ in 0..20_000 {
            let mut dst = rng.bytes::<6>();
            if rng.below(4) == 0 {
                dst = OWN;
            }
            let c = mac_class(&dst, &OWN);
            assert_eq!(c == MacClass::Host, dst == OWN, "{dst:02x?}");
            assert_eq!(
                matches!(c, MacClass::Broadcast | MacClass::Multicast),
                dst[0] & 1 == 1
            );
        }
    }

    #[test]
    fn martian_v4_table() {
        let dst = [198, 18, 0, 1];
        for (src, want) in [
            ([0, 0, 0, 0], true),
            ([0, 1, 2, 3], true),
            ([127, 0, 0, 1], true),
            ([224, 0, 0, 1], true),
            ([239, 255, 255, 255], true),
            ([240, 0, 0, 1], true),
            ([255, 255, 255, 255], true),
            ([198, 18, 0, 1], true),
            ([198, 18, 0, 2], false),
            ([10, 0, 0, 1], false),
            ([223, 255, 255, 255], false),
            ([1, 0, 0, 0], false),
        ] {
            assert_eq!(martian_v4(&src, &dst, false), want, "{src:?}");
        }
    }

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn martian_v6_table() {
        let dst = v6("2001:2::1");
        for (src, want) in [
            ("::", true),
            ("::1", true),
            ("ff02::1", true),
            ("ff05::2", true),
            ("::ffff:198.18.0.2", true),
            ("::ffff:0.0.0.0", true),
            ("2001:2::1", true),
            ("2001:2::2", false),
            ("fe80::1", false),
            ("::2", false),
            ("::198.18.0.2", false),
            ("64:ff9b::c612:2", false),
        ] {
            assert_eq!(martian_v6(&v6(src), &dst, false), want, "{src}");
        }
    }

    #[test]
    fn martian_v6_agrees_with_std() {
        // Reference: the standard library's own address predicates.
        let dst = v6("2001:2::1");
        let mut rng = Rng::new(2);
        for _ in 0..50_000 {
            let mut src = rng.bytes::<16>();
            // Bias towards the interesting prefixes.
            match rng.below(5) {
                0 => src[..10].fill(0),
                1 => {
                    src[..10].fill(0);
                    src[10..12].fill(0xff);
                }
                2 => src[..15].fill(0),
                _ => {}
            }
            let a = std::net::Ipv6Addr::from(src);
            let want = a.is_multicast()
                || a.is_unspecified()
                || a.is_loopback()
                || a.to_ipv4_mapped().is_some()
                || src == dst;
            assert_eq!(martian_v6(&src, &dst, false), want, "{a}");
        }
    }

    #[test]
    fn on_loopback_the_host_talks_to_itself() {
        let lo4 = [127, 0, 0, 1];
        assert!(!martian_v4(&lo4, &lo4, true));
        assert!(martian_v4(&lo4, &lo4, false));
        assert!(martian_v4(&[0, 0, 0, 0], &lo4, true));
        let lo6 = v6("::1");
        assert!(!martian_v6(&lo6, &lo6, true));
        assert!(martian_v6(&lo6, &lo6, false));
        assert!(martian_v6(&v6("::"), &lo6, true));
        assert!(martian_v6(&v6("ff02::1"), &lo6, true));
    }

    #[test]
    fn martian_v4_agrees_with_std() {
        let dst = [198, 18, 0, 1];
        let mut rng = Rng::new(3);
        for _ in 0..50_000 {
            let src = rng.bytes::<4>();
            let a = std::net::Ipv4Addr::from(src);
            let want = a.octets()[0] == 0
                || a.is_loopback()
                || a.is_multicast()
                || a.octets()[0] >= 240
                || src == dst;
            assert_eq!(martian_v4(&src, &dst, false), want, "{a}");
        }
    }
}
