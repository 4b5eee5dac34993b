//! TCP flag classification and SYN / SYN-ACK option handling.

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// Longest TCP option area (data offset 15).
pub const MAX_OPTIONS: usize = 40;
/// Longest TCP header.
pub const MAX_HEADER: usize = 20 + MAX_OPTIONS;
/// Largest window shift (RFC 7323); the kernel clamps larger ones to this.
pub const MAX_WSCALE: u8 = 14;

const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WSCALE: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_TIMESTAMP: u8 = 8;

/// What a segment's flags make of it, for a protected port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagClass {
    /// Opening SYN (ECE/CWR/PSH/URG may ride along).
    Syn,
    /// SYN with ACK: a server's answer, not ours to handle.
    SynAck,
    /// SYN with FIN: invalid.
    SynFin,
    /// SYN with RST: invalid.
    SynRst,
    /// None of FIN, SYN, RST, PSH, ACK, URG.
    NoFlags,
    /// FIN/PSH/URG without ACK: invalid after the handshake and before it.
    NoAck,
    /// ACK without SYN and RST: a handshake's last ACK or established traffic.
    Ack,
    /// RST (with or without ACK).
    Rst,
}

/// Classifies the flags byte of a TCP header.
#[inline(always)]
pub fn classify(flags: u8) -> FlagClass {
    let f = flags & (FIN | SYN | RST | PSH | ACK | URG);
    if f == 0 {
        FlagClass::NoFlags
    } else if f & SYN != 0 {
        if f & FIN != 0 {
            FlagClass::SynFin
        } else if f & RST != 0 {
            FlagClass::SynRst
        } else if f & ACK != 0 {
            FlagClass::SynAck
        } else {
            FlagClass::Syn
        }
    } else if f & RST != 0 {
        FlagClass::Rst
    } else if f & ACK != 0 {
        FlagClass::Ack
    } else {
        FlagClass::NoAck
    }
}

/// The options of a client's SYN that a cookie connection can keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynOptions {
    /// MSS option value, 0 when absent.
    pub mss: u16,
    /// Window shift the client asked for (clamped to [`MAX_WSCALE`]), when it sent one.
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// The client's TSval, when it sent a timestamp.
    pub tsval: Option<u32>,
}

#[inline(always)]
fn byte(opts: &[u8; MAX_OPTIONS], i: usize) -> u8 {
    // `i` is a constant after unrolling; `get` keeps a panic path out of the BPF code.
    opts.get(i).copied().unwrap_or(0)
}

/// One position of the option walk. `next` is where the next option starts; everything before it
/// has been consumed. Returns false when the walk is over: the end of the option area, an
/// end-of-options byte, or a malformed option (length < 2 or past the end), keeping what was read
/// before it. The rules are the kernel's `tcp_parse_options` for a SYN, each tested below:
/// - a known kind with the wrong length is skipped and the walk goes on;
/// - a repeated option: the last one wins (MSS: the last non-zero one);
/// - MSS 0 is ignored; window scale above 14 is clamped to 14;
/// - unknown kinds are skipped by their length.
#[inline(always)]
fn step(
    opts: &[u8; MAX_OPTIONS],
    len: usize,
    i: usize,
    next: &mut usize,
    o: &mut SynOptions,
) -> bool {
    if i >= len {
        return false;
    }
    if *next != i {
        // Inside an option that an earlier position consumed.
        return true;
    }
    let kind = byte(opts, i);
    if kind == OPT_EOL {
        return false;
    }
    if kind == OPT_NOP {
        *next = i + 1;
        return true;
    }
    let olen = byte(opts, i + 1) as usize;
    if olen < 2 || i + olen > len {
        return false;
    }
    match (kind, olen) {
        (OPT_MSS, 4) => {
            // An MSS of 0 is ignored, not taken as "no option": `tcp_parse_options` keeps the
            // last non-zero MSS, so `MSS 88, MSS 0` means 88.
            let mss = u16::from_be_bytes([byte(opts, i + 2), byte(opts, i + 3)]);
            if mss != 0 {
                o.mss = mss;
            }
        }
        (OPT_WSCALE, 3) => o.wscale = Some(byte(opts, i + 2).min(MAX_WSCALE)),
        (OPT_SACK_PERM, 2) => o.sack_permitted = true,
        (OPT_TIMESTAMP, 10) => {
            o.tsval = Some(u32::from_be_bytes([
                byte(opts, i + 2),
                byte(opts, i + 3),
                byte(opts, i + 4),
                byte(opts, i + 5),
            ]))
        }
        _ => {}
    }
    *next = i + olen;
    true
}

/// Parses the option area of a SYN: `opts[..len]` (`len` = data offset * 4 - 20).
///
/// Verifier workaround: a loop over options with a counter hits the 1 M-instruction limit, so
/// the walk is a fully unrolled sequence of 40 steps, each at a constant position, that stops at
/// the end of the options (an hping3 SYN has none: one comparison).
#[inline(always)]
pub fn parse_syn_options(opts: &[u8; MAX_OPTIONS], len: usize) -> SynOptions {
    if let Some(o) = linux_layout(opts, len) {
        return o;
    }
    walk_options(opts, len)
}

/// The option layout every Linux client sends in its SYN (`tcp_syn_options` and
/// `tcp_options_write`): MSS, SACK-permitted, timestamp, NOP, window scale, 20 bytes. Recognised
/// with fixed-offset compares, so the common SYN skips the byte-by-byte walk (about 28 ns of the
/// SYN path in `cargo xtask bench`).
#[inline(always)]
fn linux_layout(opts: &[u8; MAX_OPTIONS], len: usize) -> Option<SynOptions> {
    let layout = len == 20
        && opts[0] == OPT_MSS
        && opts[1] == 4
        && opts[4] == OPT_SACK_PERM
        && opts[5] == 2
        && opts[6] == OPT_TIMESTAMP
        && opts[7] == 10
        && opts[16] == OPT_NOP
        && opts[17] == OPT_WSCALE
        && opts[18] == 3;
    if !layout {
        return None;
    }
    Some(SynOptions {
        mss: u16::from_be_bytes([opts[2], opts[3]]),
        wscale: Some(opts[19].min(MAX_WSCALE)),
        sack_permitted: true,
        tsval: Some(u32::from_be_bytes([opts[8], opts[9], opts[10], opts[11]])),
    })
}

/// The general walk, for any other layout.
#[inline(always)]
fn walk_options(opts: &[u8; MAX_OPTIONS], len: usize) -> SynOptions {
    let mut o = SynOptions::default();
    let mut next = 0usize;
    macro_rules! steps {
        ($($i:literal)*) => { $( if !step(opts, len, $i, &mut next, &mut o) { return o; } )* };
    }
    steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
           20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39);
    o
}

/// MSS a client may assume without the option: RFC 9293 (536) for IPv4, the IPv6 minimum MTU
/// less headers (RFC 8200: 1280 - 60) for IPv6.
pub const DEFAULT_MSS_V4: u16 = 536;
pub const DEFAULT_MSS_V6: u16 = 1220;

/// The MSS the SYN-ACK advertises: the cookie's MSS (the kernel's table value at or below the
/// client's), never above the client's own MSS, nor above the interface's (`cap`, 0 = none).
#[inline(always)]
pub fn synack_mss(cookie_mss: u16, client_mss: u16, cap: u16, ipv6: bool) -> u16 {
    let client = if client_mss != 0 {
        client_mss
    } else if ipv6 {
        DEFAULT_MSS_V6
    } else {
        DEFAULT_MSS_V4
    };
    let mut mss = cookie_mss.min(client);
    if cap != 0 {
        mss = mss.min(cap);
    }
    mss
}

/// What a SYN-ACK carries in its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynAckOptions {
    pub mss: u16,
    /// (TSval, TSecr)
    pub timestamp: Option<(u32, u32)>,
    pub sack_permitted: bool,
    pub wscale: Option<u8>,
}

/// Longest option area [`encode_synack_options`] writes.
pub const SYNACK_OPTIONS_MAX: usize = 20;

/// Writes SYN-ACK options in the order and alignment Linux uses (`tcp_options_write`): MSS;
/// SACK-permitted folded into the timestamp's padding; window scale after a NOP. Returns the
/// length written, a multiple of 4.
#[inline(always)]
pub fn encode_synack_options(o: &SynAckOptions, out: &mut [u8; SYNACK_OPTIONS_MAX]) -> usize {
    let [mh, ml] = o.mss.to_be_bytes();
    out[0] = OPT_MSS;
    out[1] = 4;
    out[2] = mh;
    out[3] = ml;
    // Each branch writes at constant positions: no variable stack offsets in BPF.
    let ws_at = match o.timestamp {
        Some((tsval, tsecr)) => {
            if o.sack_permitted {
                out[4] = OPT_SACK_PERM;
                out[5] = 2;
            } else {
                out[4] = OPT_NOP;
                out[5] = OPT_NOP;
            }
            out[6] = OPT_TIMESTAMP;
            out[7] = 10;
            let v = tsval.to_be_bytes();
            out[8] = v[0];
            out[9] = v[1];
            out[10] = v[2];
            out[11] = v[3];
            let e = tsecr.to_be_bytes();
            out[12] = e[0];
            out[13] = e[1];
            out[14] = e[2];
            out[15] = e[3];
            16
        }
        None if o.sack_permitted => {
            out[4] = OPT_NOP;
            out[5] = OPT_NOP;
            out[6] = OPT_SACK_PERM;
            out[7] = 2;
            8
        }
        None => 4,
    };
    match (o.wscale, ws_at) {
        (Some(ws), 16) => {
            out[16] = OPT_NOP;
            out[17] = OPT_WSCALE;
            out[18] = 3;
            out[19] = ws;
            20
        }
        (Some(ws), 8) => {
            out[8] = OPT_NOP;
            out[9] = OPT_WSCALE;
            out[10] = 3;
            out[11] = ws;
            12
        }
        (Some(ws), _) => {
            out[4] = OPT_NOP;
            out[5] = OPT_WSCALE;
            out[6] = 3;
            out[7] = ws;
            8
        }
        (None, n) => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                        (8, 10) => {
                            o.tsval = Some(u32::from_be_bytes([arg[0], arg[1], arg[2], arg[3]]))
                        }
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
            let mut out = [0u8; SYNACK_OPTIONS_MAX];
            let n = encode_synack_options(&o, &mut out);
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
}
