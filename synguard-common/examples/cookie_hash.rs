//! Host cost of the keyed hashes an own cookie could use, per cookie (IPv4: three words; IPv6:
//! six), for docs/own-cookies.md: SipHash-1-3 (used), SipHash-2-4, and a cheaper keyed
//! multiply-xorshift mix that is not a MAC. `cargo run --release -p synguard-common --example
//! cookie_hash`. The figures are host ns; the XDP program's own cost comes from `cargo xtask
//! bench`.

use std::{hint::black_box, time::Instant};

use synguard_common::siphash::{Key, siphash};

/// A keyed mix in the style of a fast hash-table hash: one multiply and shift per word. Fast,
/// but anyone who sees a few cookies can solve for the key: no authentication.
fn keyed_mix<const N: usize>(key: &Key, msg: &[u64; N]) -> u64 {
    let mut h = key[0];
    for m in msg {
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
    println!("{name:<28} {N} words  {ns:6.2} ns");
}

fn main() {
    time::<3>("siphash-1-3 (own cookies)", siphash::<1, 3, 3>);
    time::<3>("siphash-2-4", siphash::<2, 4, 3>);
    time::<3>("keyed mix (not a MAC)", keyed_mix::<3>);
    time::<6>("siphash-1-3 (own cookies)", siphash::<1, 3, 6>);
    time::<6>("siphash-2-4", siphash::<2, 4, 6>);
    time::<6>("keyed mix (not a MAC)", keyed_mix::<6>);
}
