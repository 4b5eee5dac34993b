//! The two clocks synguard converts between: CLOCK_MONOTONIC_COARSE (the programs',
//! `bpf_ktime_get_coarse_ns`) and wall-clock time (what files and humans read).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// CLOCK_MONOTONIC_COARSE in nanoseconds: what `bpf_ktime_get_coarse_ns` returns. The loader
/// reads the programs' clock, not the finer CLOCK_MONOTONIC: a stamp it writes for the program
/// to compare against (the kernel's readiness, `ReadyState::ready_since_ns`) must not lie up to
/// a tick ahead of the program's clock, or every SYN of that tick would look due a listener
/// refresh.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into `ts`; CLOCK_MONOTONIC_COARSE exists since Linux
    // 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Unix time in seconds (0 if the clock is before 1970).
pub fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A stamp of the programs' clock as unix seconds.
pub fn mono_to_unix(stamp_ns: u64) -> Option<u64> {
    let ago = Duration::from_nanos(monotonic_ns().checked_sub(stamp_ns)?);
    Some(
        SystemTime::now()
            .checked_sub(ago)?
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
