//! Is a frame addressed to this host, and is its source one the host's stack would accept? The
//! rules follow the kernel's receive path: `eth_type_trans` sets `pkt_type` from the destination
//! MAC and `tcp_v4_rcv` / `tcp_v6_rcv` discard anything that is not `PACKET_HOST`; the IPv4
//! routing input (`ip_route_input_slow`) drops martian sources; `ip6_rcv_core` and
//! `tcp_v6_rcv` refuse multicast, loopback and IPv4-mapped sources. docs/host-checks.md has the
//! whole table.

use crate::maps::{LOCAL_ADDRS, LOCAL_IN_MAP};

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
/// the pair its [`local_pair`] names under `salt`, `Config::local_salt`). `known` 0
/// (`Config::local_v4_n`): not known, every destination counts as the host's (fail open). A segment to another address is one the host
/// would forward, not receive (`ip_route_input_slow`: not `RTN_LOCAL`).
///
/// Verifier workaround: two compares at a computed place, not one per slot. Comparing every
/// slot (with a count, or with the slots past it repeating an address) left each outcome a
/// state of its own for the rest of the program: `synguard` verified in 170 k instructions
/// instead of 109 k, and without the count it went past the 1 M limit.
#[inline(always)]
pub fn dst_local_v4(dst: u32, known: u32, salt: u32, addrs: &[u32; LOCAL_ADDRS]) -> bool {
    if !in_slots(known) {
        return true;
    }
    let at = local_pair(dst, salt) * 2;
    addrs[at] == dst || addrs[at + 1] == dst
}

/// [`dst_local_v4`] as the slots of `addrs` that hold `dst` (slot `i`: bit `i`), or
/// [`SLOTS_NOT_KNOWN`] when the list is not known; 0: not the host's. The listener check reads
/// the port's `PORT_NO_LISTENER_AT_*` bits of these slots (`maps::port_no_listener_at`), and
/// only for a port that has such bits: every other segment takes [`dst_local_v4`]'s two
/// short-circuit compares. Without branches on which slot matched.
#[inline(always)]
pub fn dst_slots_v4(dst: u32, known: u32, salt: u32, addrs: &[u32; LOCAL_ADDRS]) -> u32 {
    if !in_slots(known) {
        return SLOTS_NOT_KNOWN;
    }
    let at = local_pair(dst, salt) * 2;
    (((addrs[at] == dst) as u32) << at) | (((addrs[at + 1] == dst) as u32) << (at + 1))
}

/// Whether `known` (`Config::local_v4_n` / `local_v6_n`) says the family's addresses are in the
/// config's slots. Neither 0 (not known) nor [`LOCAL_IN_MAP`]: for the latter the program looks
/// in the family's trie before these functions are asked (`classify::not_ours`), and they answer
/// as for a list not known (the address counts as the host's destination, not as its source,
/// and names no slot).
#[inline(always)]
pub const fn in_slots(known: u32) -> bool {
    known != 0 && known != LOCAL_IN_MAP
}

/// What [`dst_slots_v4`] and [`dst_slots_v6`] give where the address list is not known: every
/// destination counts as the host's, and no slot is named.
pub const SLOTS_NOT_KNOWN: u32 = 1 << LOCAL_ADDRS;

/// Whether an IPv4 segment's source `src` is one of the host's own addresses, which the kernel
/// takes as a martian on any interface but loopback unless `accept_local` is set
/// (`fib_validate_source`: `inet_lookup_ifaddr_rcu` finds the source, or the full check's
/// lookup gives `RTN_LOCAL`). Not known (`known` 0): no source counts as local.
#[inline(always)]
pub fn src_local_v4(src: u32, known: u32, salt: u32, addrs: &[u32; LOCAL_ADDRS]) -> bool {
    in_slots(known) && dst_local_v4(src, known, salt, addrs)
}

/// [`src_local_v4`] for IPv6. The kernel has no such check for IPv6: it answers a SYN from one
/// of its own addresses arriving on a NIC, to itself over loopback (seen in namespaces, as it
/// answers an IPv6 LAND SYN). No client on the wire sends one; the program drops it as it drops
/// LAND (`martian_v6`), rather than send a SYN-ACK for the host's own address out of the NIC.
#[inline(always)]
pub fn src_local_v6(
    src: &[u32; 4],
    known: u32,
    salt: u32,
    addrs: &[[u32; 4]; LOCAL_ADDRS],
) -> bool {
    in_slots(known) && dst_local_v6(src, known, salt, addrs)
}

/// [`dst_local_v4`] for IPv6: `dst` and each of `addrs` as four header words.
#[inline(always)]
pub fn dst_local_v6(
    dst: &[u32; 4],
    known: u32,
    salt: u32,
    addrs: &[[u32; 4]; LOCAL_ADDRS],
) -> bool {
    if !in_slots(known) {
        return true;
    }
    let at = local_pair(dst[0] ^ dst[1] ^ dst[2] ^ dst[3], salt) * 2;
    let same =
        |a: &[u32; 4]| ((a[0] ^ dst[0]) | (a[1] ^ dst[1]) | (a[2] ^ dst[2]) | (a[3] ^ dst[3])) == 0;
    same(&addrs[at]) || same(&addrs[at + 1])
}

/// [`dst_slots_v4`] for IPv6.
#[inline(always)]
pub fn dst_slots_v6(dst: &[u32; 4], known: u32, salt: u32, addrs: &[[u32; 4]; LOCAL_ADDRS]) -> u32 {
    if !in_slots(known) {
        return SLOTS_NOT_KNOWN;
    }
    let at = local_pair(dst[0] ^ dst[1] ^ dst[2] ^ dst[3], salt) * 2;
    let same =
        |a: &[u32; 4]| ((a[0] ^ dst[0]) | (a[1] ^ dst[1]) | (a[2] ^ dst[2]) | (a[3] ^ dst[3])) == 0;
    ((same(&addrs[at]) as u32) << at) | ((same(&addrs[at + 1]) as u32) << (at + 1))
}

/// Which pair of slots an address (IPv6: its four words xor-ed) may sit in under `salt`: the top
/// two bits of the word times the salt (odd), so that every bit of the word counts and each salt
/// splits a set of addresses another way. The loader picks a salt under which no pair holds
/// three of the host's addresses ([`local_salt`]).
#[inline(always)]
pub const fn local_pair(w: u32, salt: u32) -> usize {
    (w.wrapping_mul(salt) >> (32 - PAIR_BITS)) as usize
}

/// `LOCAL_ADDRS / 2` pairs, numbered by this many bits.
const PAIR_BITS: u32 = 2;
const _: () = assert!(1 << PAIR_BITS == LOCAL_ADDRS / 2);

/// What fills an empty slot: an address no segment the host accepts is sent to (the limited
/// broadcast; for IPv6, a reserved multicast address).
pub const NO_ADDR_V4: [u8; 4] = [0xff; 4];
pub const NO_ADDR_V6: [u8; 16] = [0xff; 16];

/// The loader's side of [`dst_local_v4`]: `Config::local_v4_n` (the number of addresses plus
/// one, or 0 for "not known" when they do not fit under `salt`: a pair with a third address)
/// and `local_v4`, each address in the first free slot of its pair, the others [`NO_ADDR_V4`].
pub fn local_words_v4(addrs: &[[u8; 4]], salt: u32) -> (u32, [u32; LOCAL_ADDRS]) {
    place(
        addrs,
        u32::from_ne_bytes(NO_ADDR_V4),
        |a| u32::from_ne_bytes(*a),
        |w| local_pair(*w, salt),
    )
}

/// [`local_words_v4`] for IPv6.
pub fn local_words_v6(addrs: &[[u8; 16]], salt: u32) -> (u32, [[u32; 4]; LOCAL_ADDRS]) {
    place(addrs, addr_words(&NO_ADDR_V6), addr_words, |w| {
        local_pair(w[0] ^ w[1] ^ w[2] ^ w[3], salt)
    })
}

/// The salt (`Config::local_salt`) under which both lists fit, or else the one that fits, the
/// IPv4 list first: the first of a fixed sequence of odd multipliers, so that the same
/// addresses always get the same salt. With at most [`LOCAL_ADDRS`] addresses in each family a
/// fit is all but certain: eight addresses fit a salt two at a time with odds of 1 in 26 (8! /
/// 2^4 of 4^8 ways), sixteen of both families 1 in 680, and [`SALT_TRIES`] salts are tried.
pub fn local_salt(v4: &[[u8; 4]], v6: &[[u8; 16]]) -> u32 {
    let fits4 = |salt| local_words_v4(v4, salt).0 != 0;
    let fits6 = |salt| local_words_v6(v6, salt).0 != 0;
    let salts = || (0..SALT_TRIES).map(salt_at);
    salts()
        .find(|&s| fits4(s) && fits6(s))
        .or_else(|| salts().find(|&s| fits4(s)))
        .or_else(|| salts().find(|&s| fits6(s)))
        .unwrap_or(salt_at(0))
}

/// How many salts [`local_salt`] tries: at worst (two full lists that fit no salt) a few
/// milliseconds of the loader's second; sixteen addresses that fit take 680 tries on average.
pub const SALT_TRIES: u32 = 1 << 15;

/// The `i`-th salt tried: odd multiples of the golden ratio's 32-bit fraction.
const fn salt_at(i: u32) -> u32 {
    0x9e37_79b9u32.wrapping_mul(2 * i + 1) | 1
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
    pair: impl Fn(&W) -> usize,
) -> (u32, [W; LOCAL_ADDRS]) {
    let mut out = [empty; LOCAL_ADDRS];
    if addrs.len() > LOCAL_ADDRS {
        return (0, out);
    }
    for a in addrs {
        let w = words(a);
        let at = pair(&w) * 2;
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

    type V4 = (u32, [u32; LOCAL_ADDRS]);
    type V6 = (u32, [[u32; 4]; LOCAL_ADDRS]);

    /// Both lists placed as the loader places them: one salt for both families.
    fn placed(v4: &[[u8; 4]], v6: &[[u8; 16]]) -> (u32, V4, V6) {
        let salt = local_salt(v4, v6);
        (salt, local_words_v4(v4, salt), local_words_v6(v6, salt))
    }

    fn word(a: [u8; 4]) -> u32 {
        u32::from_ne_bytes(a)
    }

    fn v6_of(a: &[u8; 4]) -> [u8; 16] {
        let mut v6 = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        v6[12..].copy_from_slice(a);
        v6
    }

    #[test]
    fn a_source_is_local_only_if_listed_and_never_when_the_list_is_not_known() {
        let one = |last: u8| {
            let mut a = [0u8; 16];
            a[0] = 0x20;
            a[1] = 0x01;
            a[15] = last;
            a
        };
        let (salt, (n, w), (n6, w6)) = placed(&[[198, 18, 0, 1], [10, 0, 0, 7]], &[one(1), one(9)]);
        assert!(src_local_v4(word([10, 0, 0, 7]), n, salt, &w));
        assert!(!src_local_v4(word([10, 0, 0, 8]), n, salt, &w));
        assert!(!src_local_v4(word([10, 0, 0, 7]), 0, salt, &w));
        assert!(src_local_v6(&addr_words(&one(9)), n6, salt, &w6));
        assert!(!src_local_v6(&addr_words(&one(2)), n6, salt, &w6));
        assert!(!src_local_v6(&addr_words(&one(9)), 0, salt, &w6));
    }

    /// A family in the program's trie (`LOCAL_IN_MAP`) is asked there first; the slots' functions,
    /// asked anyway, answer as for a list not known and never read the slots, whatever they
    /// hold.
    #[test]
    fn a_family_in_the_trie_is_not_read_from_the_slots() {
        let (salt, (_, w), (_, w6)) = placed(&[[198, 18, 0, 1]], &[[0x20; 16]]);
        let n = LOCAL_IN_MAP;
        assert!(!in_slots(n) && !in_slots(0) && in_slots(1) && in_slots(9));
        assert!(dst_local_v4(word([198, 18, 0, 99]), n, salt, &w));
        assert!(!src_local_v4(word([198, 18, 0, 1]), n, salt, &w));
        assert_eq!(
            dst_slots_v4(word([198, 18, 0, 1]), n, salt, &w),
            SLOTS_NOT_KNOWN
        );
        let other = addr_words(&[0x30; 16]);
        assert!(dst_local_v6(&other, n, salt, &w6));
        assert!(!src_local_v6(&addr_words(&[0x20; 16]), n, salt, &w6));
        assert_eq!(dst_slots_v6(&other, n, salt, &w6), SLOTS_NOT_KNOWN);
    }

    #[test]
    fn a_destination_is_local_only_if_listed_unless_the_list_is_not_known() {
        let (salt, (n, w), _) = placed(&[[198, 18, 0, 1], [10, 0, 0, 7]], &[]);
        assert_eq!(n, 3);
        assert!(dst_local_v4(word([198, 18, 0, 1]), n, salt, &w));
        assert!(dst_local_v4(word([10, 0, 0, 7]), n, salt, &w));
        assert!(!dst_local_v4(word([198, 18, 0, 99]), n, salt, &w));
        // The unused slots hold no address a segment is sent to: 0.0.0.0 is not local.
        assert!(!dst_local_v4(0, n, salt, &w));
        // None listed: nothing is local. Not known: everything is.
        let (s0, (n0, w0), _) = placed(&[], &[]);
        assert!(!dst_local_v4(word([198, 18, 0, 1]), n0, s0, &w0));
        assert!(dst_local_v4(word([198, 18, 0, 99]), 0, salt, &w));
        // More than fit: not known.
        let many: std::vec::Vec<[u8; 4]> = (0..=LOCAL_ADDRS as u8).map(|i| [10, 0, 0, i]).collect();
        assert_eq!(placed(&many, &[]).1.0, 0);
        // Whatever fits is found, and nothing else.
        let mut rng = Rng::new(7);
        for _ in 0..2000 {
            let n = (rng.next() % 9) as usize;
            let addrs: std::vec::Vec<[u8; 4]> =
                (0..n).map(|_| (rng.next() as u32).to_ne_bytes()).collect();
            let (salt, (k, w), _) = placed(&addrs, &[]);
            assert_ne!(k, 0, "{addrs:?} fit no salt");
            for a in &addrs {
                assert!(dst_local_v4(word(*a), k, salt, &w));
            }
            let other = (rng.next() as u32).to_ne_bytes();
            assert_eq!(
                dst_local_v4(word(other), k, salt, &w),
                addrs.contains(&other)
            );
        }
    }

    /// The addresses hosts have: runs in one /24 (a bridge per container network, secondary
    /// addresses), which a hash of a few bytes would put three to a pair. Up to eight of each
    /// family always fit, together, under one salt.
    #[test]
    fn up_to_eight_addresses_of_each_family_always_fit_together() {
        let mut rng = Rng::new(3);
        for _ in 0..300 {
            let base = rng.next() as u32;
            let (n4, n6) = (1 + (rng.next() % 8) as usize, 1 + (rng.next() % 8) as usize);
            let v4: std::vec::Vec<[u8; 4]> = (0..n4)
                .map(|i| (base.wrapping_add((i as u32) << 24)).to_ne_bytes())
                .collect();
            let v6: std::vec::Vec<[u8; 16]> = (0..n6)
                .map(|i| v6_of(&[10, 0, rng.next() as u8 & 1, i as u8]))
                .collect();
            let (_, (k4, _), (k6, _)) = placed(&v4, &v6);
            assert_eq!((k4, k6), (n4 as u32 + 1, n6 as u32 + 1), "{v4:?} {v6:?}");
        }
        // The same addresses get the same salt: the loader rewrites nothing while none change.
        let v4 = [[10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3]];
        assert_eq!(local_salt(&v4, &[]), local_salt(&v4, &[]));
    }

    #[test]
    fn a_local_destination_names_the_one_slot_that_holds_it() {
        let mut rng = Rng::new(11);
        for _ in 0..2000 {
            let n = (rng.next() % 10) as usize;
            let addrs: std::vec::Vec<[u8; 4]> =
                (0..n).map(|_| (rng.next() as u32).to_ne_bytes()).collect();
            let words: std::vec::Vec<[u8; 16]> = addrs.iter().map(v6_of).collect();
            let (salt, (k, w), (k6, w6)) = placed(&addrs, &words);
            let other = (rng.next() as u32).to_ne_bytes();
            for a in addrs.iter().chain([&other]) {
                let dst = u32::from_ne_bytes(*a);
                let slots = dst_slots_v4(dst, k, salt, &w);
                if k == 0 {
                    assert_eq!(slots, SLOTS_NOT_KNOWN);
                } else if addrs.contains(a) {
                    assert_eq!(slots.count_ones(), 1, "{a:?} in {w:x?}");
                    assert_eq!(w[slots.trailing_zeros() as usize], dst);
                } else {
                    assert_eq!(slots, 0);
                }
            }
            for a in &words {
                let slots = dst_slots_v6(&addr_words(a), k6, salt, &w6);
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
        let (salt, _, (n, w)) = placed(&[], &[own]);
        assert!(dst_local_v6(&addr_words(&own), n, salt, &w));
        for byte in 0..16 {
            let mut other = own;
            other[byte] ^= 0x40;
            assert!(
                !dst_local_v6(&addr_words(&other), n, salt, &w),
                "byte {byte}"
            );
        }
        assert!(dst_local_v6(&addr_words(&[0xfe; 16]), 0, salt, &w));
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
