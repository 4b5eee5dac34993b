//! SipHash over whole 64-bit words, with the number of compression and finalisation rounds as
//! parameters: SipHash-1-3 keys the own SYN cookies (docs/own-cookies.md says why), SipHash-2-4
//! is the reference variant the tests compare with `core::hash::SipHasher`.
//!
//! The message is a fixed-size array of words, so that in the XDP program every loop unrolls to
//! straight-line code (no counter for the verifier to track). A message of `N` words hashes like
//! the `8 * N` little-endian bytes of those words under the reference algorithm; with a tail of
//! `t` < 8 bytes ([`siphash_tail`]), like those bytes followed by the tail's `t` low bytes. A
//! tail costs nothing: it shares the last block with the length byte, which a whole number of
//! words leaves alone in a block of its own (one compression more).

/// A 128-bit key as two little-endian words (`k0`, `k1` of the reference implementation).
pub type Key = [u64; 2];

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn compress<const C: usize>(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    for _ in 0..C {
        round(v);
    }
    v[0] ^= m;
}

/// SipHash-`C`-`D` of `msg` (`8 * N` bytes) under `key`.
#[inline(always)]
pub fn siphash<const C: usize, const D: usize, const N: usize>(key: &Key, msg: &[u64; N]) -> u64 {
    siphash_tail::<C, D, N, 0>(key, msg, 0)
}

/// SipHash-`C`-`D` under `key` of the `8 * N` bytes of `msg` followed by the `T` low bytes of
/// `tail` (little-endian; its other bytes must be zero).
#[inline(always)]
pub fn siphash_tail<const C: usize, const D: usize, const N: usize, const T: usize>(
    key: &Key,
    msg: &[u64; N],
    tail: u64,
) -> u64 {
    const { assert!(T < 8, "a tail is shorter than a word") };
    debug_assert!(T == 0 || tail >> (8 * T) == 0, "tail wider than its length");
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    for m in msg {
        compress::<C>(&mut v, *m);
    }
    // The last block: the tail's bytes and the length byte on top.
    compress::<C>(&mut v, tail | ((8 * N + T) as u64 & 0xff) << 56);
    v[2] ^= 0xff;
    for _ in 0..D {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// SipHash-1-3, the variant the cookies use.
#[inline(always)]
pub fn siphash13<const N: usize>(key: &Key, msg: &[u64; N]) -> u64 {
    siphash::<1, 3, N>(key, msg)
}

/// [`siphash_tail`] with SipHash-1-3.
#[inline(always)]
pub fn siphash13_tail<const N: usize, const T: usize>(key: &Key, msg: &[u64; N], tail: u64) -> u64 {
    siphash_tail::<1, 3, N, T>(key, msg, tail)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[allow(deprecated)]
    fn reference_24(key: &Key, msg: &[u64]) -> u64 {
        use core::hash::{Hasher, SipHasher};
        let mut h = SipHasher::new_with_keys(key[0], key[1]);
        for m in msg {
            h.write(&m.to_le_bytes());
        }
        h.finish()
    }

    #[test]
    fn siphash24_matches_the_reference() {
        let key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        assert_eq!(
            siphash::<2, 4, 2>(&key, &[0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908]),
            reference_24(&key, &[0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908])
        );
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let msg = [x, x.rotate_left(17), x ^ 0x5555, x.wrapping_mul(3)];
            let key = [x.rotate_left(5), !x];
            assert_eq!(siphash::<2, 4, 4>(&key, &msg), reference_24(&key, &msg));
            assert_eq!(
                siphash::<2, 4, 1>(&key, &msg[..1].try_into().unwrap()),
                reference_24(&key, &msg[..1])
            );
        }
    }

    #[allow(deprecated)]
    fn reference_24_bytes(key: &Key, bytes: &[u8]) -> u64 {
        use core::hash::{Hasher, SipHasher};
        let mut h = SipHasher::new_with_keys(key[0], key[1]);
        h.write(bytes);
        h.finish()
    }

    /// The bytes `siphash_tail` hashes: the words, then the tail's `t` low bytes.
    fn bytes_of(msg: &[u64], tail: u64, t: usize) -> std::vec::Vec<u8> {
        let mut b: std::vec::Vec<u8> = msg.iter().flat_map(|m| m.to_le_bytes()).collect();
        b.extend_from_slice(&tail.to_le_bytes()[..t]);
        b
    }

    #[test]
    fn siphash24_with_a_tail_matches_the_reference_on_bytes() {
        let mut x = 0x0fed_cba9_8765_4321u64;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let msg = [x, x.rotate_left(29), !x];
            let key = [x.rotate_left(3), x ^ 0xaaaa];
            let tail5 = x.rotate_left(11) & 0xff_ffff_ffff;
            assert_eq!(
                siphash_tail::<2, 4, 3, 5>(&key, &msg, tail5),
                reference_24_bytes(&key, &bytes_of(&msg, tail5, 5))
            );
            let tail7 = x >> 8;
            assert_eq!(
                siphash_tail::<2, 4, 2, 7>(&key, &msg[..2].try_into().unwrap(), tail7),
                reference_24_bytes(&key, &bytes_of(&msg[..2], tail7, 7))
            );
            assert_eq!(
                siphash_tail::<2, 4, 3, 0>(&key, &msg, 0),
                siphash::<2, 4, 3>(&key, &msg)
            );
        }
    }

    #[test]
    fn siphash13_tail_depends_on_every_byte_of_the_tail() {
        let key = [1, 2];
        let base = siphash13_tail::<2, 5>(&key, &[10, 20], 0x12_3456_789a);
        for byte in 0..5 {
            let other = 0x12_3456_789a ^ (1u64 << (8 * byte));
            assert_ne!(base, siphash13_tail::<2, 5>(&key, &[10, 20], other));
        }
        // The tail's length is part of the message.
        assert_ne!(
            base,
            siphash13_tail::<2, 6>(&key, &[10, 20], 0x12_3456_789a)
        );
    }

    #[test]
    fn siphash13_depends_on_every_word_and_the_key() {
        let key = [1, 2];
        let base = siphash13(&key, &[10, 20, 30]);
        assert_ne!(base, siphash13(&key, &[11, 20, 30]));
        assert_ne!(base, siphash13(&key, &[10, 20, 31]));
        assert_ne!(base, siphash13(&[1, 3], &[10, 20, 30]));
        assert_ne!(base, siphash::<2, 4, 3>(&key, &[10, 20, 30]));
    }
}
