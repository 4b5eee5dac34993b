//! The option parser and encoder against tables of real and malformed SYNs.

use super::*;

fn opts(bytes: &[u8]) -> ([u8; MAX_OPTIONS], usize) {
    let mut a = [0u8; MAX_OPTIONS];
    a[..bytes.len()].copy_from_slice(bytes);
    (a, bytes.len())
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
    assert_eq!(linux_layout(&a, n), Some(walk_options(&a, n)));
    // Window scale above 14 is clamped on both paths.
    let mut big = linux;
    big[19] = 20;
    let (a, n) = opts(&big);
    assert_eq!(linux_layout(&a, n), Some(walk_options(&a, n)));
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
    let mut out = [0u8; SYNACK_OPTIONS_MAX];
    let n = encode_synack_options(
        &SynAckOptions {
            mss: 1460,
            timestamp: Some((0x01020304, 0x0a0b0c0d)),
            sack_permitted: true,
            wscale: Some(10),
        },
        &mut out,
    );
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
                let mut out = [0u8; SYNACK_OPTIONS_MAX];
                let n = encode_synack_options(&o, &mut out);
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
