//! Division by constants without a division instruction. The BPF instruction set has no
//! "multiply high", so LLVM cannot turn `n / constant` into a multiplication as it does on
//! x86: it emits `div`, which the JIT makes an x86 `div` of some 10 ns here, per use
//! (docs/measuring.md). The multiplication done by hand in 32-bit halves is a handful of
//! cheap instructions.

/// The upper 64 bits of the 128-bit product `a * b`.
#[inline(always)]
pub const fn mul_high(a: u64, b: u64) -> u64 {
    let (a0, a1) = (a & 0xffff_ffff, a >> 32);
    let (b0, b1) = (b & 0xffff_ffff, b >> 32);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    // Each term is below 2^32: the sum cannot overflow.
    let mid = (p00 >> 32) + (p01 & 0xffff_ffff) + (p10 & 0xffff_ffff);
    a1 * b1 + (p01 >> 32) + (p10 >> 32) + (mid >> 32)
}

/// `ns / 1_000_000` for every `u64`: 10^6 = 2^6 * 15625, and for a dividend below 2^58,
/// `m / 15625 = mul_high(m, ceil(2^71 / 15625)) >> 7` (the rounding error of the constant times
/// 2^58 stays below 2^71).
#[inline(always)]
pub const fn ms_of_ns(ns: u64) -> u64 {
    mul_high(ns >> 6, 0x0218_def4_16bd_b1a7) >> 7
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrand::Rng;

    #[test]
    fn mul_high_matches_u128() {
        let mut r = Rng::new(7);
        for _ in 0..200_000 {
            let (a, b) = (r.next(), r.next());
            assert_eq!(mul_high(a, b), ((a as u128 * b as u128) >> 64) as u64);
        }
        assert_eq!(mul_high(u64::MAX, u64::MAX), u64::MAX - 1);
    }

    #[test]
    fn ms_of_ns_is_exact() {
        let mut r = Rng::new(11);
        let edges = [
            0,
            1,
            999_999,
            1_000_000,
            1_000_001,
            u64::MAX,
            u64::MAX - 1,
            1 << 58,
        ];
        for n in edges {
            assert_eq!(ms_of_ns(n), n / 1_000_000, "{n}");
        }
        for _ in 0..200_000 {
            let n = r.next();
            assert_eq!(ms_of_ns(n), n / 1_000_000, "{n}");
            // Both sides of a millisecond boundary.
            let b = n / 1_000_000 * 1_000_000;
            for m in [b, b.wrapping_sub(1), b + 999_999] {
                assert_eq!(ms_of_ns(m), m / 1_000_000, "{m}");
            }
        }
    }
}
