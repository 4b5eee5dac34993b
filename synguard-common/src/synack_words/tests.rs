//! The word-built headers against byte-wise checksums and the layouts on the wire.

extern crate std;

use super::*;
use crate::{checksum::add_slice, testrand::Rng};

fn random_options(r: &mut Rng) -> SynAckOptions {
    SynAckOptions {
        mss: r.next() as u16,
        timestamp: (r.below(2) == 0).then(|| (r.next() as u32, r.next() as u32)),
        sack_permitted: r.below(2) == 0,
        wscale: (r.below(2) == 0).then(|| r.below(15) as u8),
    }
}

fn random_fields(r: &mut Rng) -> TcpFields {
    TcpFields {
        sport: r.next() as u16,
        dport: r.next() as u16,
        seq: r.next() as u32,
        ack: r.next() as u32,
        flags: r.next() as u8,
        window: r.next() as u16,
    }
}

#[test]
fn tcp_header_lies_where_the_wire_has_it() {
    let f = TcpFields {
        sport: 80,
        dport: 40000,
        seq: 0x0102_0304,
        ack: 0x0a0b_0c0d,
        flags: 0x12,
        window: 64240,
    };
    let o = SynAckOptions {
        mss: 1460,
        timestamp: None,
        sack_permitted: true,
        wscale: Some(7),
    };
    let (w, len) = tcp_words(&f, &o);
    assert_eq!(len, 32);
    let b: [u8; 40] = bytes(&w);
    assert_eq!(
        b[..32],
        [
            0, 80, 0x9c, 0x40, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x80, 0x12, 0xfa, 0xf0, 0, 0, 0,
            0, 2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7
        ]
    );
    assert_eq!(b[32..], [0; 8]);
}

#[test]
fn every_option_layout_is_a_whole_number_of_words_with_zeros_after() {
    let mut r = Rng::new(21);
    for _ in 0..20_000 {
        let o = random_options(&mut r);
        let (w, len) = option_words(&o);
        assert!(len.is_multiple_of(4) && (4..=20).contains(&len));
        assert!(w[(len / 4) as usize..].iter().all(|x| *x == 0));
        let want =
            4 + if o.timestamp.is_some() {
                12
            } else if o.sack_permitted {
                4
            } else {
                0
            } + if o.wscale.is_some() { 4 } else { 0 };
        assert_eq!(len, want);
    }
}

#[test]
fn tcp_checksum_matches_the_bytewise_sum() {
    let mut r = Rng::new(22);
    for _ in 0..20_000 {
        let (mut w, len) = tcp_words(&random_fields(&mut r), &random_options(&mut r));
        let pseudo = r.next() >> 24;
        set_tcp_checksum(&mut w, pseudo);
        let b: [u8; 40] = bytes(&w);
        // The header with its checksum sums to all ones with the pseudo header.
        assert_eq!(checksum::finish(add_slice(pseudo, &b[..len as usize])), 0);
        assert_eq!(w[4] & 0xffff, 0, "urgent pointer stays zero");
    }
}

#[test]
fn ipv4_header_verifies_and_carries_the_fields() {
    let mut r = Rng::new(23);
    for _ in 0..20_000 {
        let (src, dst) = (r.next() as u32, r.next() as u32);
        let tcp_len = 20 + 4 * r.below(6);
        let (w, pseudo) = ipv4_words(src, dst, tcp_len);
        let b: [u8; 40] = bytes(&w);
        let h: [u8; 20] = b[..20].try_into().unwrap();
        assert!(checksum::ipv4_header_ok(&h, 0));
        assert_eq!(h[0], 0x45);
        assert_eq!(u16::from_be_bytes([h[2], h[3]]) as u64, 20 + tcp_len);
        assert_eq!(h[6..10], [0x40, 0, 64, 6]);
        assert_eq!(h[12..16], src.to_be_bytes());
        assert_eq!(h[16..20], dst.to_be_bytes());
        assert_eq!(b[20..], [0; 20]);
        assert_eq!(
            pseudo,
            checksum::pseudo_v4_slice(&h[12..20], tcp_len as u16)
        );
    }
}

#[test]
fn ipv6_header_carries_the_fields() {
    let mut r = Rng::new(24);
    for _ in 0..20_000 {
        let src = [
            r.next() as u32,
            r.next() as u32,
            r.next() as u32,
            r.next() as u32,
        ];
        let dst = [
            r.next() as u32,
            r.next() as u32,
            r.next() as u32,
            r.next() as u32,
        ];
        let tcp_len = 20 + 4 * r.below(6);
        let (w, pseudo) = ipv6_words(&src, &dst, tcp_len);
        let b: [u8; 40] = bytes(&w);
        assert_eq!(b[..4], [0x60, 0, 0, 0]);
        assert_eq!(u16::from_be_bytes([b[4], b[5]]) as u64, tcp_len);
        assert_eq!(b[6..8], [6, 64]);
        let addrs: [u8; 32] = bytes::<8, 32>(&[
            src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3],
        ]);
        assert_eq!(b[8..40], addrs);
        assert_eq!(pseudo, checksum::pseudo_v6_slice(&b[8..40], tcp_len as u32));
    }
}

#[test]
fn packed_words_lie_in_memory_as_the_bytes() {
    let mut r = Rng::new(25);
    for _ in 0..1000 {
        let w: [u32; 10] = core::array::from_fn(|_| r.next() as u32);
        let mem: std::vec::Vec<u8> = pack(&w).iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: [u8; 40] = bytes(&w);
        assert_eq!(mem[..], b[..]);
    }
}
