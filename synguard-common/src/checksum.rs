//! Internet checksum (RFC 1071) over fixed-size buffers.
//!
//! The XDP program builds headers in zeroed stack buffers of a fixed size; zero bytes add nothing
//! to a one's-complement sum, so summing the whole buffer equals summing the header it holds.

/// Adds `buf` to `sum` as big-endian words (no folding yet). Summing 32-bit words into a u64 and
/// folding at the end gives the same one's-complement sum as 16-bit words (RFC 1071 section 2),
/// with half the loads; on an aligned buffer LLVM makes each a single load and byte swap.
#[inline(always)]
pub fn add_words<const N: usize>(sum: u64, buf: &[u8; N]) -> u64 {
    const {
        assert!(
            N.is_multiple_of(2),
            "checksummed buffers have an even length"
        )
    };
    add_slice(sum, buf)
}

/// Adds the big-endian words of `buf` to `sum`; a trailing odd byte is padded with zero. For the
/// XDP program's in-place headers, where `buf` is a constant-offset, constant-length range of a
/// larger buffer.
#[inline(always)]
pub fn add_slice(mut sum: u64, buf: &[u8]) -> u64 {
    let mut quads = buf.chunks_exact(4);
    for q in &mut quads {
        sum += u32::from_be_bytes([q[0], q[1], q[2], q[3]]) as u64;
    }
    let rest = quads.remainder();
    let mut pairs = rest.chunks_exact(2);
    for pair in &mut pairs {
        sum += u16::from_be_bytes([pair[0], pair[1]]) as u64;
    }
    if let [last] = pairs.remainder() {
        sum += (*last as u64) << 8;
    }
    sum
}

/// Adds 32-bit words, each the value of a big-endian word on the wire, to `sum` (no folding
/// yet): the same sum as [`add_slice`] over their bytes, for headers built as words
/// (`crate::synack_words`).
#[inline(always)]
pub fn add_u32s(sum: u64, words: &[u32]) -> u64 {
    words.iter().fold(sum, |s, w| s + *w as u64)
}

/// Pseudo-header sum from the IPv4 header's address bytes (source then destination, 8 bytes).
#[inline(always)]
pub fn pseudo_v4_slice(addrs: &[u8], tcp_len: u16) -> u64 {
    add_slice(0, addrs) + 6 + tcp_len as u64
}

/// Pseudo-header sum from the IPv6 header's address bytes (source then destination, 32 bytes).
#[inline(always)]
pub fn pseudo_v6_slice(addrs: &[u8], tcp_len: u32) -> u64 {
    add_slice(0, addrs) + 6 + tcp_len as u64
}

/// Folds a 64-bit one's-complement sum to 16 bits and complements it: the value that goes into
/// the header's checksum field.
#[inline(always)]
pub fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// Folds a 64-bit one's-complement sum to 16 bits.
#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    // Four folds bring any u64 down to 16 bits; a fixed count keeps the BPF code loop-free.
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// A sum of words read in little-endian order (`u32::from_le_bytes`, a plain load on BPF and
/// x86, no byte swap) as a term of a sum of big-endian words: byte order does not change a
/// one's-complement sum but swaps the bytes of the folded result (RFC 1071 section 2(B)).
#[inline(always)]
pub fn le_sum_as_be(sum: u64) -> u64 {
    fold(sum).swap_bytes() as u64
}

/// Sum of the IPv4 pseudo header (RFC 793) for a TCP segment of `tcp_len` bytes.
#[inline(always)]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], tcp_len: u16) -> u64 {
    let sum = add_words(0, &src);
    let sum = add_words(sum, &dst);
    sum + 6 + tcp_len as u64
}

/// Sum of the IPv6 pseudo header (RFC 8200 section 8.1) for a TCP segment of `tcp_len` bytes.
#[inline(always)]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], tcp_len: u32) -> u64 {
    let sum = add_words(0, &src);
    let sum = add_words(sum, &dst);
    sum + 6 + tcp_len as u64
}

/// Whether an IPv4 header verifies: `fixed` is its first 20 bytes (checksum field included) and
/// `options_sum` the [`add_slice`] sum of its option bytes. A correct header sums to all ones
/// (`ip_fast_csum` returns 0 in `ip_rcv_core`, which drops the packet otherwise).
#[inline(always)]
pub fn ipv4_header_ok(fixed: &[u8; 20], options_sum: u64) -> bool {
    finish(add_words(options_sum, fixed)) == 0
}

/// Whether a TCP checksum is one the host accepts. `pseudo` is the pseudo-header sum,
/// `segment` the sum over the whole segment (header with its checksum field, and payload),
/// `field` the checksum field.
///
/// Two forms are accepted (docs/host-checks.md, "Checksums"):
/// - complete: everything sums to all ones, what a NIC or a remote host delivers;
/// - partial: the field holds the folded pseudo-header sum and nothing else, what a segment sent
///   from a sibling namespace over veth carries (`CHECKSUM_PARTIAL`: `__tcp_v4_send_check` leaves
///   the rest to an offload that never runs; the receiving stack trusts the skb's flag, which
///   XDP cannot see).
#[inline(always)]
pub fn tcp_checksum_ok(pseudo: u64, segment: u64, field: u16) -> bool {
    finish(pseudo + segment) == 0 || field == !finish(pseudo)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn little_endian_sums_count_as_big_endian_ones() {
        let mut rng = crate::testrand::Rng::new(11);
        for _ in 0..10_000 {
            let mut buf = [0u8; 40];
            buf.iter_mut().for_each(|b| *b = rng.next() as u8);
            let base = rng.next() >> 20;
            let le = buf
                .chunks_exact(4)
                .map(|q| u32::from_le_bytes([q[0], q[1], q[2], q[3]]) as u64)
                .sum::<u64>();
            assert_eq!(
                finish(add_slice(base, &buf)),
                finish(base + le_sum_as_be(le)),
                "{buf:?}"
            );
        }
    }

    #[test]
    fn words_sum_as_their_bytes() {
        let mut rng = crate::testrand::Rng::new(5);
        for _ in 0..10_000 {
            let w: [u32; 10] = core::array::from_fn(|_| rng.next() as u32);
            let bytes: std::vec::Vec<u8> = w.iter().flat_map(|x| x.to_be_bytes()).collect();
            let start = rng.next() >> 20;
            assert_eq!(add_u32s(start, &w), add_slice(start, &bytes));
        }
    }

    #[test]
    fn ipv4_header_verification() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xac, 0x10,
            0x0a, 0x63, 0xac, 0x10, 0x0a, 0x0c,
        ];
        let c = finish(add_words(0, &hdr));
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(ipv4_header_ok(&hdr, 0));
        // Options count: a header with options verifies only with their sum.
        let opts = [0x94u8, 0x04, 0x00, 0x00];
        assert!(!ipv4_header_ok(&hdr, add_slice(0, &opts)));
        let mut rng = crate::testrand::Rng::new(4);
        for _ in 0..20_000 {
            let mut h = rng.bytes::<20>();
            let o = rng.bytes::<8>();
            h[10] = 0;
            h[11] = 0;
            let c = finish(add_slice(add_words(0, &h), &o));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            assert!(ipv4_header_ok(&h, add_slice(0, &o)));
            // Any single flipped bit breaks it.
            let bit = rng.below(160) as usize;
            h[bit / 8] ^= 1 << (bit % 8);
            assert!(!ipv4_header_ok(&h, add_slice(0, &o)));
        }
    }

    #[test]
    fn tcp_checksum_complete_and_partial_forms() {
        let mut rng = crate::testrand::Rng::new(5);
        for _ in 0..20_000 {
            let src = rng.bytes::<4>();
            let dst = rng.bytes::<4>();
            let mut seg = rng.bytes::<32>();
            seg[16] = 0;
            seg[17] = 0;
            let pseudo = pseudo_v4(src, dst, 32);
            // Complete: the reference 16-bit definition over pseudo header and segment.
            let mut whole = std::vec::Vec::new();
            whole.extend_from_slice(&src);
            whole.extend_from_slice(&dst);
            whole.extend_from_slice(&[0, 6, 0, 32]);
            whole.extend_from_slice(&seg);
            let c = reference(&whole);
            let mut good = seg;
            good[16..18].copy_from_slice(&c.to_be_bytes());
            assert!(tcp_checksum_ok(pseudo, add_slice(0, &good), c));
            // Partial (CHECKSUM_PARTIAL): the field holds ~csum_tcpudp_magic(.., 0).
            let partial = !reference(&whole[..12]);
            let mut part = seg;
            part[16..18].copy_from_slice(&partial.to_be_bytes());
            assert!(tcp_checksum_ok(pseudo, add_slice(0, &part), partial));
            // Anything else: rejected (unless it happens to equal one of the two forms).
            let wrong = rng.next() as u16;
            if wrong != c && wrong != partial {
                let mut bad = seg;
                bad[16..18].copy_from_slice(&wrong.to_be_bytes());
                assert!(!tcp_checksum_ok(pseudo, add_slice(0, &bad), wrong));
            }
        }
    }

    #[test]
    fn folding_matches_the_reference_on_random_buffers() {
        let mut rng = crate::testrand::Rng::new(6);
        for _ in 0..5_000 {
            let len = rng.below(1500) as usize;
            let buf: std::vec::Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert_eq!(finish(add_slice(0, &buf)), reference(&buf), "len {len}");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded), checksum 220d.
        let buf = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(add_words(0, &buf)), !0xddf2);
    }

    #[test]
    fn ipv4_header_checksum() {
        // A real header (from a capture) with its checksum field zeroed; the checksum is b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(add_words(0, &hdr)), 0xb861);
    }

    #[test]
    fn a_correct_checksum_verifies_to_zero() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xac, 0x10,
            0x0a, 0x63, 0xac, 0x10, 0x0a, 0x0c,
        ];
        let c = finish(add_words(0, &hdr));
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(finish(add_words(0, &hdr)), 0);
    }

    #[test]
    fn folding_handles_large_carries() {
        assert_eq!(finish(0xffff_ffff_ffff_ffff), 0);
        assert_eq!(finish(0x1_0000), !1);
        assert_eq!(finish(0), 0xffff);
    }

    #[test]
    fn trailing_zeros_do_not_change_the_sum() {
        let a = [1u8, 2, 3, 4];
        let b = [1u8, 2, 3, 4, 0, 0, 0, 0];
        assert_eq!(add_words(0, &a), add_words(0, &b));
    }

    /// The textbook definition, 16-bit words, as an independent reference.
    fn reference(buf: &[u8]) -> u16 {
        let mut sum = 0u32;
        for c in buf.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += w as u32;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn wide_words_match_the_16_bit_definition() {
        let mut x = 0x1234_5678u32;
        let mut buf = [0u8; 64];
        for b in buf.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        for len in 0..64usize {
            let b = &buf[..len];
            assert_eq!(finish(add_slice(0, b)), reference(b), "len {len}");
        }
        let ones = [0xffu8; 40];
        assert_eq!(finish(add_words(0, &ones)), reference(&ones));
    }

    #[test]
    fn slices_sum_like_arrays_and_pad_odd_bytes() {
        let a = [0x12u8, 0x34, 0x56, 0x78, 0x9a, 0xbc];
        assert_eq!(add_slice(0, &a), add_words(0, &a));
        assert_eq!(add_slice(0, &[0xab]), 0xab00);
        let v4 = [10u8, 0, 0, 1, 10, 0, 0, 2];
        assert_eq!(
            pseudo_v4_slice(&v4, 20),
            pseudo_v4([10, 0, 0, 1], [10, 0, 0, 2], 20)
        );
        let mut v6 = [0u8; 32];
        v6[15] = 1;
        v6[31] = 2;
        let (s, d) = v6.split_at(16);
        assert_eq!(
            pseudo_v6_slice(&v6, 40),
            pseudo_v6(s.try_into().unwrap(), d.try_into().unwrap(), 40)
        );
    }

    #[test]
    fn pseudo_headers_include_protocol_and_length() {
        assert_eq!(pseudo_v4([0; 4], [0; 4], 20), 26);
        let s = pseudo_v6([0; 16], [0; 16], 40);
        assert_eq!(s, 46);
        assert_eq!(
            finish(pseudo_v4([10, 0, 0, 1], [10, 0, 0, 2], 0)),
            !(0x0a00u16 + 0x0001 + 0x0a00 + 0x0002 + 6)
        );
    }
}
