//! Own SYN cookies: the SYN-ACK's sequence number (ISN) authenticates the connection's 4-tuple,
//! the client's ISN, a time slot and the client's options under a secret key, and carries those
//! options itself, so that window scaling, SACK and ECN survive without a timestamp. The TC
//! program hands the decoded options to the kernel through `bpf_sk_assign_tcp_reqsk`
//! (docs/own-cookies.md).
//!
//! ```text
//!  31                         9   8   7 6    5     4    3 2 1 0
//! | MAC (23 bits)              | slot | MSS | ECN | SACK | WScale |
//! ```
//!
//! MAC = the top 23 bits of SipHash-1-3(key; addresses, ports, client ISN, slot, option bits)
//! folded to 32. The option byte is the layout the kernel's own cookies keep in the timestamp
//! (`TS_OPT_*` in net/ipv4/syncookies.c), with the MSS class on top. "slot" is the low bit of
//! the time slot the cookie was made in: a cookie is valid in its own slot and the next one.

use crate::siphash::{Key, siphash13_tail};

/// A time slot is 2^36 ns (68.7 s): a cookie lives 68.7 to 137 s (the kernel's: up to 2 min).
pub const SLOT_NS_SHIFT: u32 = 36;
/// Bits of the ISN that carry the MAC.
pub const MAC_BITS: u32 = 23;
const MAC_SHIFT: u32 = 32 - MAC_BITS;
const SLOT_BIT: u32 = 1 << 8;
/// Window scale field; all ones means the client sent no window scale.
pub const OPT_WSCALE_MASK: u8 = 0x0f;
pub const OPT_SACK: u8 = 1 << 4;
pub const OPT_ECN: u8 = 1 << 5;
const OPT_MSS_SHIFT: u8 = 6;

/// MSS classes, as the kernel's cookie tables (`msstab` in net/ipv4/syncookies.c and
/// net/ipv6/syncookies.c): the class is the largest entry not above the client's MSS.
pub const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
pub const MSS_V6: [u16; 4] = [1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60];

/// The time slot of a CLOCK_TAI reading (`bpf_ktime_get_tai_ns`, [`crate::tai`]): the same
/// on every server whose clock NTP or PTP keeps in step, whenever it booted.
#[inline(always)]
pub fn slot_of(now_ns: u64) -> u32 {
    (now_ns >> SLOT_NS_SHIFT) as u32
}

/// The client's options a cookie keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CookieOpts {
    /// Index into [`MSS_V4`] / [`MSS_V6`].
    pub mss_class: u8,
    /// The client's window shift (at most 14), when it sent one.
    pub wscale: Option<u8>,
    pub sack: bool,
    pub ecn: bool,
}

impl CookieOpts {
    /// The low byte of the cookie.
    #[inline(always)]
    pub fn bits(&self) -> u8 {
        let mut b = match self.wscale {
            Some(w) if w < OPT_WSCALE_MASK => w,
            _ => OPT_WSCALE_MASK,
        };
        if self.sack {
            b |= OPT_SACK;
        }
        if self.ecn {
            b |= OPT_ECN;
        }
        b | (self.mss_class & 3) << OPT_MSS_SHIFT
    }

    #[inline(always)]
    pub fn from_bits(b: u8) -> Self {
        let ws = b & OPT_WSCALE_MASK;
        CookieOpts {
            mss_class: b >> OPT_MSS_SHIFT,
            wscale: (ws != OPT_WSCALE_MASK).then_some(ws),
            sack: b & OPT_SACK != 0,
            ecn: b & OPT_ECN != 0,
        }
    }

    /// The MSS this class stands for.
    #[inline(always)]
    pub fn mss(&self, ipv6: bool) -> u16 {
        class_mss(self.mss_class, ipv6)
    }
}

/// The largest MSS a SYN-ACK can offer on an interface whose MTU allows `cap` (0: no cap):
/// the cookie keeps the client's MSS as a class of these tables, which the kernel's cookies
/// share, and a SYN-ACK never offers more than the cookie's MSS (`tcp::synack_mss`). Over
/// IPv4 that is at most 1460, whatever the MTU.
pub fn largest_synack_mss(cap: u32, ipv6: bool) -> u32 {
    let table = u32::from(class_mss(3, ipv6));
    if cap == 0 { table } else { table.min(cap) }
}

/// The MSS an MSS class stands for.
#[inline(always)]
pub fn class_mss(class: u8, ipv6: bool) -> u16 {
    let table = if ipv6 { &MSS_V6 } else { &MSS_V4 };
    table[(class & 3) as usize]
}

/// The MSS class of a client's MSS option (0 when it sent none: the default MSS is class 0).
#[inline(always)]
pub fn mss_class(client_mss: u16, ipv6: bool) -> u8 {
    let t = if ipv6 { &MSS_V6 } else { &MSS_V4 };
    if client_mss >= t[3] {
        3
    } else if client_mss >= t[2] {
        2
    } else if client_mss >= t[1] {
        1
    } else {
        0
    }
}

/// The connection as the client sent it (source = client), as hash input words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub ipv6: bool,
    /// IPv4: one word (source, destination); IPv6: four words (source, destination).
    pub addrs: [u64; 4],
    /// Source port << 16 | destination port.
    pub ports: u32,
}

impl Flow {
    /// From the addresses as 32-bit numbers (each four of their bytes in network order, as a
    /// header's words read big-endian), source then destination: IPv4's in `a[0]` and `a[1]`,
    /// the rest unused. `ports`: source port << 16 | destination port, the TCP header's first
    /// word. The one place that says how a 4-tuple becomes the hash's input words.
    #[inline(always)]
    pub fn from_words(ipv6: bool, a: &[u32; 8], ports: u32) -> Self {
        let pair = |i: usize| (a[i] as u64) << 32 | a[i + 1] as u64;
        if ipv6 {
            Flow {
                ipv6: true,
                addrs: [pair(0), pair(2), pair(4), pair(6)],
                ports,
            }
        } else {
            Flow {
                ipv6: false,
                addrs: [pair(0), 0, 0, 0],
                ports,
            }
        }
    }

    #[inline(always)]
    pub fn v4(saddr: [u8; 4], daddr: [u8; 4], sport: u16, dport: u16) -> Self {
        let (s, d) = (u32::from_be_bytes(saddr), u32::from_be_bytes(daddr));
        Self::from_words(false, &[s, d, 0, 0, 0, 0, 0, 0], ports(sport, dport))
    }

    #[inline(always)]
    pub fn v6(saddr: &[u8; 16], daddr: &[u8; 16], sport: u16, dport: u16) -> Self {
        let w = |a: &[u8; 16], i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
        let a = [
            w(saddr, 0),
            w(saddr, 4),
            w(saddr, 8),
            w(saddr, 12),
            w(daddr, 0),
            w(daddr, 4),
            w(daddr, 8),
            w(daddr, 12),
        ];
        Self::from_words(true, &a, ports(sport, dport))
    }
}

#[inline(always)]
fn ports(sport: u16, dport: u16) -> u32 {
    (sport as u32) << 16 | dport as u32
}

/// The MAC bits of a cookie, in place (bits 31..9).
#[inline(always)]
fn mac(key: &Key, flow: &Flow, client_isn: u32, slot: u32, opts: u8) -> u32 {
    let ports_isn = (flow.ports as u64) << 32 | client_isn as u64;
    // Five bytes, the message's tail: it shares the last block with the length byte.
    let slot_opts = (slot as u64) << 8 | opts as u64;
    let a = &flow.addrs;
    let h = if flow.ipv6 {
        siphash13_tail::<5, 5>(key, &[a[0], a[1], a[2], a[3], ports_isn], slot_opts)
    } else {
        siphash13_tail::<2, 5>(key, &[a[0], ports_isn], slot_opts)
    };
    ((h ^ (h >> 32)) as u32) << MAC_SHIFT
}

/// The ISN of the SYN-ACK for a SYN of `flow` with sequence number `client_isn`.
#[inline(always)]
pub fn make(key: &Key, flow: &Flow, client_isn: u32, slot: u32, opts: &CookieOpts) -> u32 {
    let b = opts.bits();
    mac(key, flow, client_isn, slot, b) | (slot & 1) << 8 | b as u32
}

/// Checks the cookie `isn` (the ACK's acknowledgment number - 1) of a handshake whose client ISN
/// was `client_isn` (the ACK's sequence number - 1) at time slot `now_slot`: the options, when
/// it was made under `key` in this slot or the one before.
#[inline(always)]
pub fn check(
    key: &Key,
    flow: &Flow,
    client_isn: u32,
    isn: u32,
    now_slot: u32,
) -> Option<CookieOpts> {
    let b = isn as u8;
    let slot = if isn & SLOT_BIT == (now_slot & 1) << 8 {
        now_slot
    } else {
        now_slot.wrapping_sub(1)
    };
    if isn >> MAC_SHIFT == mac(key, flow, client_isn, slot, b) >> MAC_SHIFT {
        Some(CookieOpts::from_bits(b))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    const KEY: Key = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];

    fn flows() -> [Flow; 2] {
        [
            Flow::v4([10, 0, 0, 2], [10, 0, 0, 1], 40000, 80),
            Flow::v6(&[0xfd; 16], &[0xfe; 16], 40000, 443),
        ]
    }

    fn all_opts() -> impl Iterator<Item = CookieOpts> {
        (0..4u8).flat_map(|mss_class| {
            (0..=15u8).flat_map(move |w| {
                (0..4u8).map(move |f| CookieOpts {
                    mss_class,
                    wscale: (w <= 14).then_some(w),
                    sack: f & 1 != 0,
                    ecn: f & 2 != 0,
                })
            })
        })
    }

    /// The hash's input words are the addresses' bytes in network order, source first: the
    /// XDP program, the checking TC program and every other server of a fleet must build the
    /// same ones.
    #[test]
    fn flow_words_are_the_address_bytes_in_network_order() {
        let v4 = Flow::v4([10, 0, 0, 2], [10, 0, 0, 1], 40000, 80);
        assert_eq!(v4.addrs, [0x0a00_0002_0a00_0001, 0, 0, 0]);
        assert_eq!(v4.ports, 40000 << 16 | 80);
        let s: [u8; 16] = core::array::from_fn(|i| i as u8);
        let d: [u8; 16] = core::array::from_fn(|i| 0x80 | i as u8);
        let v6 = Flow::v6(&s, &d, 1, 443);
        assert_eq!(
            v6.addrs,
            [
                0x0001_0203_0405_0607,
                0x0809_0a0b_0c0d_0e0f,
                0x8081_8283_8485_8687,
                0x8889_8a8b_8c8d_8e8f
            ]
        );
        assert!(v6.ipv6 && !v4.ipv6);
    }

    #[test]
    fn every_option_combination_round_trips() {
        let mut n = 0;
        for flow in flows() {
            for o in all_opts() {
                assert_eq!(CookieOpts::from_bits(o.bits()), o);
                let isn = make(&KEY, &flow, 0xdead_beef, 1000, &o);
                assert_eq!(check(&KEY, &flow, 0xdead_beef, isn, 1000), Some(o));
                // Still valid one slot later, across the slot bit's change.
                assert_eq!(check(&KEY, &flow, 0xdead_beef, isn, 1001), Some(o));
                n += 1;
            }
        }
        assert_eq!(n, 2 * 4 * 16 * 4);
    }

    #[test]
    fn expires_after_two_slots_and_is_not_valid_before_its_slot() {
        for flow in flows() {
            let o = CookieOpts {
                mss_class: 2,
                wscale: Some(7),
                sack: true,
                ecn: false,
            };
            for slot in [0u32, 1, 1000, 1001, u32::MAX] {
                let isn = make(&KEY, &flow, 7, slot, &o);
                assert!(check(&KEY, &flow, 7, isn, slot.wrapping_add(2)).is_none());
                assert!(check(&KEY, &flow, 7, isn, slot.wrapping_add(3)).is_none());
                assert!(check(&KEY, &flow, 7, isn, slot.wrapping_sub(1)).is_none());
                assert!(check(&KEY, &flow, 7, isn, slot.wrapping_add(1)).is_some());
            }
        }
        assert_eq!(slot_of(0), 0);
        assert_eq!(slot_of(1 << 36), 1);
        assert_eq!(slot_of((1 << 36) - 1), 0);
    }

    #[test]
    fn wrong_secret_or_tuple_or_client_isn_is_refused() {
        let o = CookieOpts {
            mss_class: 3,
            wscale: None,
            sack: true,
            ecn: true,
        };
        for flow in flows() {
            let isn = make(&KEY, &flow, 1, 50, &o);
            assert!(check(&[KEY[0], KEY[1] ^ 1], &flow, 1, isn, 50).is_none());
            assert!(check(&KEY, &flow, 2, isn, 50).is_none());
            let mut other = flow;
            other.ports ^= 1 << 16;
            assert!(check(&KEY, &other, 1, isn, 50).is_none());
            let mut other = flow;
            other.addrs[0] ^= 1;
            assert!(check(&KEY, &other, 1, isn, 50).is_none());
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        for flow in flows() {
            for o in all_opts().step_by(7) {
                let isn = make(&KEY, &flow, 99, 77, &o);
                for bit in 0..32 {
                    // The slot bit flipped points at the other slot, whose MAC differs.
                    assert!(
                        check(&KEY, &flow, 99, isn ^ 1 << bit, 77).is_none(),
                        "bit {bit}"
                    );
                }
            }
        }
    }

    /// Property: over many pseudo-random tuples, ISNs, slots and options, cookies round trip
    /// and random ISNs are accepted at about the MAC's rate (2^-23).
    #[test]
    fn property_round_trip_and_forgery_rate() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut forged = 0;
        for i in 0..200_000u32 {
            let r = next();
            let flow = if r & 1 == 0 {
                Flow::v4(
                    (r as u32).to_be_bytes(),
                    ((r >> 32) as u32).to_be_bytes(),
                    r as u16,
                    80,
                )
            } else {
                let a = [(r >> 8) as u8; 16];
                Flow::v6(&a, &[(r >> 16) as u8; 16], (r >> 24) as u16, 443)
            };
            let o = CookieOpts::from_bits((r >> 40) as u8);
            let o = CookieOpts {
                wscale: o.wscale.map(|w| w.min(14)),
                ..o
            };
            let slot = (r >> 20) as u32;
            let isn = make(&KEY, &flow, i, slot, &o);
            assert_eq!(check(&KEY, &flow, i, isn, slot), Some(o));
            if check(&KEY, &flow, i, next() as u32, slot).is_some() {
                forged += 1;
            }
        }
        // 200 000 random guesses at 2^-23 accept ~0.02 on average; more than 2 would be a
        // MAC far weaker than its width.
        assert!(forged <= 2, "{forged} random ISNs accepted");
    }

    #[test]
    fn mss_classes_like_the_kernel_tables() {
        assert_eq!(mss_class(0, false), 0);
        assert_eq!(mss_class(1460, false), 3);
        assert_eq!(mss_class(1459, false), 2);
        assert_eq!(mss_class(65495, false), 3);
        assert_eq!(mss_class(1300, false), 1);
        assert_eq!(mss_class(9000, true), 3);
        assert_eq!(mss_class(1440, true), 2);
        assert_eq!(mss_class(1220, true), 0);
        for c in 0..4 {
            let o = CookieOpts {
                mss_class: c,
                ..Default::default()
            };
            assert_eq!(mss_class(o.mss(false), false), c);
            assert_eq!(mss_class(o.mss(true), true), c);
        }
    }

    #[test]
    fn the_largest_synack_mss_is_the_tables_or_the_interfaces() {
        assert_eq!(largest_synack_mss(8960, false), 1460);
        assert_eq!(largest_synack_mss(8940, true), 8940);
        assert_eq!(largest_synack_mss(1360, false), 1360);
        assert_eq!(largest_synack_mss(1440, true), 1440);
        assert_eq!(largest_synack_mss(0, false), 1460);
    }
}
