//! Is a frame addressed to this host, and is its source one the host's stack would accept? The
//! rules follow the kernel's receive path: `eth_type_trans` sets `pkt_type` from the destination
//! MAC and `tcp_v4_rcv` / `tcp_v6_rcv` discard anything that is not `PACKET_HOST`; the IPv4
//! routing input (`ip_route_input_slow`) drops martian sources; `ip6_rcv_core` and
//! `tcp_v6_rcv` refuse multicast, loopback and IPv4-mapped sources. docs/host-checks.md has the
//! whole table.

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

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use crate::testrand::Rng;

    const OWN: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

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
