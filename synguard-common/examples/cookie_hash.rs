//! Host cost of the keyed hashes an own cookie could use, per cookie (IPv4: two words and a
//! five-byte tail, 21 bytes; IPv6: five words and the tail, 45 bytes), for docs/own-cookies.md: SipHash-1-3 (used), SipHash-2-4, and a cheaper keyed
//! multiply-xorshift mix that is not a MAC. `cargo run --release -p synguard-common --example
//! cookie_hash`. The figures are host ns; the XDP program's own cost comes from `cargo xtask
//! bench`.

use std::{hint::black_box, time::Instant};

use synguard_common::siphash::{Key, siphash_tail};

/// The tail an own cookie hashes: slot and option byte, five bytes.
const TAIL: u64 = 0x12_3456_789a;

/// A keyed mix in the style of a fast hash-table hash: one multiply and shift per word, the tail
/// as one more. Fast, but anyone who sees a few cookies can solve for the key: no
/// authentication.
fn keyed_mix<const N: usize>(key: &Key, msg: &[u64; N]) -> u64 {
    let mut h = key[0];
    for m in msg.iter().chain([&TAIL]) {
        h = (h ^ m ^ key[1]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    h
}

fn time<const N: usize>(name: &str, f: impl Fn(&Key, &[u64; N]) -> u64) {
    const RUNS: u64 = 20_000_000;
    let key = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
    let mut msg = [0u64; N];
    let mut acc = 0u64;
    let start = Instant::now();
    for i in 0..RUNS {
        msg[0] = i;
        acc ^= f(black_box(&key), black_box(&msg));
    }
    let ns = start.elapsed().as_nanos() as f64 / RUNS as f64;
    black_box(acc);
    println!("{name:<28} {} bytes  {ns:6.2} ns", 8 * N + 5);
}

fn main() {
    time::<2>("siphash-1-3 (own cookies)", |k, m| {
        siphash_tail::<1, 3, 2, 5>(k, m, TAIL)
    });
    time::<2>("siphash-2-4", |k, m| siphash_tail::<2, 4, 2, 5>(k, m, TAIL));
    time::<2>("keyed mix (not a MAC)", keyed_mix::<2>);
    time::<5>("siphash-1-3 (own cookies)", |k, m| {
        siphash_tail::<1, 3, 5, 5>(k, m, TAIL)
    });
    time::<5>("siphash-2-4", |k, m| siphash_tail::<2, 4, 5, 5>(k, m, TAIL));
    time::<5>("keyed mix (not a MAC)", keyed_mix::<5>);
}
