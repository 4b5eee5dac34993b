//! The clocks synguard reads: CLOCK_MONOTONIC_COARSE (the programs',
//! `bpf_ktime_get_coarse_ns`), CLOCK_TAI (own cookies' time slot, shared by a fleet) and
//! wall-clock time (what files and humans read).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// CLOCK_MONOTONIC_COARSE in nanoseconds: what `bpf_ktime_get_coarse_ns` returns. The loader
/// reads the programs' clock, not the finer CLOCK_MONOTONIC: a stamp it writes for the program
/// to compare against (the kernel's readiness, `ReadyState::ready_since_ns`) must not lie up to
/// a tick ahead of the program's clock, or every SYN of that tick would look due a listener
/// refresh.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// The programs' clock (`bpf_ktime_get_coarse_ns`) as this process can know it:
/// CLOCK_MONOTONIC_COARSE less its time namespace's offset. In a time namespace
/// (`unshare --time`) `clock_gettime` adds the namespace's offset (`timens_add_monotonic`);
/// the programs read the host's clock. What must be compared with the programs' clock exactly
/// (the connection table's stamps and promise) is read here.
pub fn programs_monotonic_ns() -> u64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    // A namespace's offsets are fixed once a process entered it (`timens_offsets` refuses
    // writes then): read once.
    let offset = *OFFSET.get_or_init(|| {
        std::fs::read_to_string(TIMENS_OFFSETS)
            .ok()
            .and_then(|t| monotonic_offset_ns(&t))
            .unwrap_or(0)
    });
    monotonic_ns().wrapping_add_signed(offset.wrapping_neg())
}

/// This process's time namespace offsets (`proc_timens_show_offsets`); absent on kernels
/// without time namespaces, where there is no offset.
const TIMENS_OFFSETS: &str = "/proc/self/timens_offsets";

/// The monotonic offset in nanoseconds from the text of a `timens_offsets` file
/// (`monotonic <seconds> <nanoseconds>` per line, seconds signed).
pub fn monotonic_offset_ns(text: &str) -> Option<i64> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        // The clock is named, or given by its id (CLOCK_MONOTONIC = 1) on older kernels.
        if !matches!(f.next()?, "monotonic" | "1") {
            return None;
        }
        let s: i64 = f.next()?.parse().ok()?;
        let ns: i64 = f.next()?.parse().ok()?;
        s.checked_mul(1_000_000_000)?.checked_add(ns)
    })
}

/// CLOCK_TAI in nanoseconds: own cookies' time slot (`synguard_common::own_cookie::slot_of`),
/// the clock a fleet's servers share (the programs read it through `bpf_ktime_get_tai_ns`).
/// Unlike CLOCK_MONOTONIC it is not shifted in a time namespace (`timens_add_monotonic`
/// covers MONOTONIC and BOOTTIME only), so the loader and the programs agree wherever the
/// loader runs.
pub fn tai_ns() -> u64 {
    clock_ns(libc::CLOCK_TAI)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into `ts`; both clocks synguard reads exist since
    // Linux 3.10.
    unsafe { libc::clock_gettime(clock, &mut ts) };
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
    fn time_namespace_offsets_parse() {
        let text = "monotonic      -3600         0\nboottime       -3600         0\n";
        assert_eq!(monotonic_offset_ns(text), Some(-3_600_000_000_000));
        assert_eq!(monotonic_offset_ns("1 5 7\n7 0 0\n"), Some(5_000_000_007));
        assert_eq!(monotonic_offset_ns("boottime 1 0\n"), None);
        assert_eq!(monotonic_offset_ns("monotonic x 0\n"), None);
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }

    /// The programs' way to TAI (`synguard_common::tai`: the coarse clock plus a cached
    /// offset) against CLOCK_TAI itself, on this machine's clocks: within a tick (at most 4 ms
    /// at HZ=250) plus the time between the reads.
    #[test]
    fn tai_from_the_coarse_clock_and_a_cached_offset() {
        use synguard_common::tai::TaiOffset;
        let cached = TaiOffset::read(tai_ns(), monotonic_ns());
        std::thread::sleep(std::time::Duration::from_millis(30));
        let (before, coarse, after) = (tai_ns(), monotonic_ns(), tai_ns());
        let est = cached.tai(coarse);
        let tick = 4_000_000 + 1_000_000;
        assert!(
            est + tick >= before && est <= after + tick,
            "estimate {est}, TAI {before}..{after}"
        );
        // And TAI is not the monotonic clock: it counts from 1970, not from boot.
        assert!(before > 1_700_000_000 * 1_000_000_000, "TAI {before}");
    }
}
