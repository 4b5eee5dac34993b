//! The programs' one clock.
//!
//! `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC_COARSE, `ktime_get_coarse_ns`) rather than
//! `bpf_ktime_get_ns`: the fine clock reads the TSC, which in a guest cost about a tenth of the
//! whole SYN path (docs/measuring.md, "Where the time goes"), while the coarse one reads the
//! time of the last tick. Everything the programs time is far longer than a tick (1-4 ms): the
//! 100 ms flood-detection windows, the per-source and reflection rates (GCRA stays exact on
//! average; a tick's SYNs meet the burst allowance together), the 1 s listener refresh, the
//! 60 s close records, the cookies' 64 s time slots and millisecond timestamps. It shares
//! CLOCK_MONOTONIC's base, so the loader's clock and the programs' stamps compare directly
//! (they differ by at most a tick).

use aya_ebpf::helpers::generated::bpf_ktime_get_coarse_ns;

#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}
