//! The option parser and encoder against tables of real and malformed SYNs, and the walk against
//! a line-by-line port of the kernel's `tcp_parse_options`.

use super::*;
use crate::synack_words::{SynAckOptions, bytes, option_words};

/// The SYN-ACK option encoder's bytes and length.
fn encode_synack_options(o: &SynAckOptions) -> ([u8; 20], usize) {
    let (w, len) = option_words(o);
    (bytes(&w), len as usize)
}

fn opts(bytes: &[u8]) -> ([u8; MAX_OPTIONS], usize) {
    let mut a = [0u8; MAX_OPTIONS];
    a[..bytes.len()].copy_from_slice(bytes);
    (a, bytes.len())
}

#[test]
fn mss_zero_is_ignored_like_the_kernel() {
    // MSS 88 then MSS 0: the kernel keeps 88.
    let (a, n) = opts(&[2, 4, 0, 88, 2, 4, 0, 0]);
    assert_eq!(parse_syn_options(&a, n).mss, 88);
    // MSS 0 alone: no MSS, the default applies.
    let (a, n) = opts(&[2, 4, 0, 0]);
    assert_eq!(parse_syn_options(&a, n).mss, 0);
    assert_eq!(synack_mss(536, 0, 1460, false), 536);
    // And the SYN-ACK never offers more than the client's 88.
    assert_eq!(synack_mss(536, 88, 1460, false), 88);
}

#[test]
fn duplicates_last_one_wins() {
    let (a, n) = opts(&[2, 4, 0x05, 0xb4, 2, 4, 0x02, 0x18, 3, 3, 2, 3, 3, 9]);
    let o = parse_syn_options(&a, n);
    assert_eq!(o.mss, 536);
    assert_eq!(o.wscale, Some(9));
    let (a, n) = opts(&[8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 8, 10, 0, 0, 0, 2, 0, 0, 0, 0]);
    assert_eq!(parse_syn_options(&a, n).tsval, Some(2));
}

#[test]
fn oversized_and_wrong_lengths() {
    // A length of 1 stops the walk ("silly option").
    let (a, n) = opts(&[4, 2, 3, 1, 2, 4, 0, 88]);
    let o = parse_syn_options(&a, n);
    assert!(o.sack_permitted);
    assert_eq!(o.mss, 0);
    // A length past the option area stops the walk ("partial option").
    let (a, n) = opts(&[4, 2, 30, 8, 1, 1, 1, 1]);
    assert!(parse_syn_options(&a, n).sack_permitted);
    // Wrong lengths for known kinds are skipped; the walk goes on.
    let (a, n) = opts(&[3, 4, 7, 0, 4, 3, 0, 8, 9, 1, 2, 3, 4, 5, 6, 7, 3, 3, 5, 1]);
    let o = parse_syn_options(&a, n);
    assert_eq!(o.wscale, Some(5));
    assert!(!o.sack_permitted);
    assert_eq!(o.tsval, None);
}

/// The kernel's `tcp_parse_options` for a SYN, written straight from its C as a loop over a
/// slice: the reference the unrolled walk is checked against.
fn reference(bytes: &[u8]) -> SynOptions {
    let mut o = SynOptions::default();
    let mut p = 0usize;
    let mut length = bytes.len();
    while length > 0 {
        let opcode = bytes[p];
        p += 1;
        match opcode {
            0 => return o,
            1 => {
                length -= 1;
                continue;
            }
            _ => {
                if length < 2 {
                    return o;
                }
                let opsize = bytes[p] as usize;
                p += 1;
                if opsize < 2 || opsize > length {
                    return o;
                }
                let arg = &bytes[p..p + opsize - 2];
                match (opcode, opsize) {
                    (2, 4) => {
                        let m = u16::from_be_bytes([arg[0], arg[1]]);
                        if m != 0 {
                            o.mss = m;
                        }
                    }
                    (3, 3) => o.wscale = Some(arg[0].min(14)),
                    (4, 2) => o.sack_permitted = true,
                    (8, 10) => o.tsval = Some(u32::from_be_bytes([arg[0], arg[1], arg[2], arg[3]])),
                    _ => {}
                }
                p += opsize - 2;
                length -= opsize;
            }
        }
    }
    o
}

#[test]
fn the_walk_matches_the_kernel_rules_on_random_options() {
    let mut rng = crate::testrand::Rng::new(7);
    for case in 0..200_000 {
        let len = (rng.below(11) * 4) as usize;
        let mut a = [0u8; MAX_OPTIONS];
        let mut i = 0;
        // Mostly well-formed options with random kinds and lengths, sometimes garbage.
        while i < MAX_OPTIONS {
            let kind = [0u8, 1, 2, 3, 4, 8, 5, 30, 254][rng.below(9) as usize];
            let olen = match rng.below(6) {
                0 => rng.below(12) as u8,
                _ => match kind {
                    2 => 4,
                    3 => 3,
                    4 => 2,
                    8 => 10,
                    _ => 2 + rng.below(6) as u8,
                },
            };
            a[i] = kind;
            if i + 1 < MAX_OPTIONS {
                a[i + 1] = olen;
            }
            for j in 2..olen.max(2) as usize {
                if i + j < MAX_OPTIONS {
                    a[i + j] = if rng.below(8) == 0 {
                        0
                    } else {
                        rng.next() as u8
                    };
                }
            }
            i += if kind < 2 { 1 } else { olen.max(2) as usize };
        }
        if case % 3 == 0 {
            a = rng.bytes::<MAX_OPTIONS>();
        }
        assert_eq!(
            parse_syn_options(&a, len),
            reference(&a[..len]),
            "case {case}: {:?}",
            &a[..len]
        );
    }
}

#[test]
fn encoding_round_trips_on_random_options() {
    let mut rng = crate::testrand::Rng::new(8);
    for _ in 0..50_000 {
        let ts = (rng.below(2) == 0).then(|| (rng.next() as u32, rng.next() as u32));
        let o = SynAckOptions {
            mss: (rng.next() as u16).max(1),
            timestamp: ts,
            sack_permitted: rng.below(2) == 0,
            wscale: (rng.below(2) == 0).then(|| rng.below(15) as u8),
        };
        let (out, n) = encode_synack_options(&o);
        assert_eq!(n % 4, 0);
        let mut a = [0u8; MAX_OPTIONS];
        a[..n].copy_from_slice(&out[..n]);
        let p = parse_syn_options(&a, n);
        assert_eq!(p, reference(&a[..n]));
        assert_eq!(p.mss, o.mss);
        assert_eq!(p.sack_permitted, o.sack_permitted);
        assert_eq!(p.wscale, o.wscale);
        assert_eq!(p.tsval, ts.map(|t| t.0));
    }
}

#[test]
fn classify_table() {
    let table = [
        (SYN, FlagClass::Syn),
        (SYN | ECE | CWR, FlagClass::Syn),
        (SYN | PSH, FlagClass::Syn),
        (SYN | ACK, FlagClass::SynAck),
        (SYN | FIN, FlagClass::SynFin),
        (SYN | FIN | ACK, FlagClass::SynFin),
        (SYN | RST, FlagClass::SynRst),
        (SYN | RST | FIN, FlagClass::SynFin),
        (0, FlagClass::NoFlags),
        (ECE | CWR, FlagClass::NoFlags),
        (FIN, FlagClass::NoAck),
        (FIN | PSH | URG, FlagClass::NoAck),
        (PSH, FlagClass::NoAck),
        (ACK, FlagClass::Ack),
        (ACK | PSH, FlagClass::Ack),
        (ACK | FIN, FlagClass::Ack),
        (RST, FlagClass::Rst),
        (RST | ACK, FlagClass::Rst),
    ];
    for (flags, want) in table {
        assert_eq!(classify(flags), want, "flags {flags:#04x}");
    }
}

#[test]
fn every_flag_byte_classifies() {
    // No flag combination is left out; exactly one class each, consistent with the bits.
    for f in 0..=255u8 {
        let c = classify(f);
        if f & SYN != 0 {
            assert!(matches!(
                c,
                FlagClass::Syn | FlagClass::SynAck | FlagClass::SynFin | FlagClass::SynRst
            ));
        }
    }
}

#[test]
fn linux_syn_options() {
    // Linux SYN: MSS 1460, SACK_PERM, TS, NOP, WS 7.
    let (a, n) = opts(&[
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 1, 3, 3, 7,
    ]);
    let o = parse_syn_options(&a, n);
    assert_eq!(o.mss, 1460);
    assert_eq!(o.wscale, Some(7));
    assert!(o.sack_permitted);
    assert_eq!(o.tsval, Some(0x11223344));
}

#[test]
fn the_fast_path_agrees_with_the_walk() {
    let linux = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    let (a, n) = opts(&linux);
    assert!(linux_layout(&a, n).is_some());
    assert_eq!(
        linux_layout(&a, n),
        Some(walk_options(&a, n, &mut WalkState::default()))
    );
    // Window scale above 14 is clamped on both paths.
    let mut big = linux;
    big[19] = 20;
    let (a, n) = opts(&big);
    assert_eq!(
        linux_layout(&a, n),
        Some(walk_options(&a, n, &mut WalkState::default()))
    );
    // Any other layout takes the walk: same bytes, one flipped, or a different length.
    for i in [0usize, 1, 4, 5, 6, 7, 16, 17, 18] {
        let mut other = linux;
        other[i] ^= 0x40;
        let (a, n) = opts(&other);
        assert_eq!(linux_layout(&a, n), None, "byte {i}");
    }
    let (a, _) = opts(&linux);
    assert_eq!(linux_layout(&a, 24), None);
}

#[test]
fn mss_only_and_none() {
    let (a, n) = opts(&[2, 4, 0x02, 0x18]);
    assert_eq!(
        parse_syn_options(&a, n),
        SynOptions {
            mss: 536,
            ..Default::default()
        }
    );
    let (a, n) = opts(&[]);
    assert_eq!(parse_syn_options(&a, n), SynOptions::default());
}

#[test]
fn wscale_is_clamped_like_the_kernel() {
    let (a, n) = opts(&[1, 3, 3, 15]);
    assert_eq!(parse_syn_options(&a, n).wscale, Some(14));
}

#[test]
fn malformed_options_stop_the_walk() {
    // Length 0 after MSS: stop, keep the MSS.
    let (a, n) = opts(&[2, 4, 0x05, 0xb4, 8, 0, 1, 1]);
    let o = parse_syn_options(&a, n);
    assert_eq!(o.mss, 1460);
    assert_eq!(o.tsval, None);
    // Timestamp running past the option area: ignored.
    let (a, n) = opts(&[8, 10, 1, 2, 3, 4]);
    assert_eq!(parse_syn_options(&a, n).tsval, None);
    // Wrong length for a known kind: skipped, walk goes on.
    let (a, n) = opts(&[2, 3, 5, 4, 2, 0, 0, 0]);
    let o = parse_syn_options(&a, n);
    assert_eq!(o.mss, 0);
    assert!(o.sack_permitted);
}

#[test]
fn eol_ends_options_and_bytes_past_len_are_ignored() {
    let (a, _) = opts(&[0, 4, 2, 0, 4, 2]);
    assert!(!parse_syn_options(&a, 6).sack_permitted);
    let (a, _) = opts(&[1, 1, 4, 2]);
    assert!(!parse_syn_options(&a, 2).sack_permitted);
    assert!(parse_syn_options(&a, 4).sack_permitted);
}

#[test]
fn option_at_the_last_position() {
    let mut bytes = [1u8; 40];
    bytes[36] = 1;
    bytes[37] = 3;
    bytes[38] = 3;
    bytes[39] = 5;
    let o = parse_syn_options(&bytes, 40);
    assert_eq!(o.wscale, Some(5));
    // A timestamp that would end at byte 46: ignored.
    let mut bytes = [1u8; 40];
    bytes[36] = 8;
    bytes[37] = 10;
    assert_eq!(parse_syn_options(&bytes, 40).tsval, None);
}

#[test]
fn synack_mss_never_exceeds_the_client_or_the_interface() {
    assert_eq!(synack_mss(1460, 1460, 1460, false), 1460);
    assert_eq!(synack_mss(1440, 1460, 1400, false), 1400);
    // No MSS option over IPv6: the cookie table's smallest entry is 1220, the default too.
    assert_eq!(synack_mss(1220, 0, 1440, true), 1220);
    assert_eq!(synack_mss(536, 0, 1460, false), 536);
    assert_eq!(synack_mss(1220, 1000, 1440, true), 1000);
    assert_eq!(synack_mss(1460, 9000, 0, false), 1460);
}

#[test]
fn encode_full() {
    let (out, n) = encode_synack_options(&SynAckOptions {
        mss: 1460,
        timestamp: Some((0x01020304, 0x0a0b0c0d)),
        sack_permitted: true,
        wscale: Some(10),
    });
    assert_eq!(n, 20);
    assert_eq!(
        out,
        [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 1, 3, 3, 10
        ]
    );
}

#[test]
fn encode_variants_round_trip_through_the_parser() {
    for ts in [None, Some((7u32, 9u32))] {
        for sack in [false, true] {
            for ws in [None, Some(0u8), Some(14)] {
                let o = SynAckOptions {
                    mss: 1220,
                    timestamp: ts,
                    sack_permitted: sack,
                    wscale: ws,
                };
                let (out, n) = encode_synack_options(&o);
                assert_eq!(n % 4, 0);
                let mut a = [0u8; MAX_OPTIONS];
                a[..n].copy_from_slice(&out[..n]);
                let p = parse_syn_options(&a, n);
                assert_eq!(p.mss, 1220);
                assert_eq!(p.sack_permitted, sack);
                assert_eq!(p.wscale, ws);
                assert_eq!(p.tsval, ts.map(|t| t.0));
            }
        }
    }
}
