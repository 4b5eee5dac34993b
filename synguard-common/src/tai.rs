//! CLOCK_TAI for own cookies' time slot, cheaply: a fleet's servers share no monotonic clock
//! (each counts from its own boot) but agree on TAI once NTP or PTP keeps them in step
//! (docs/own-cookies.md, "A fleet"). Reading TAI (`bpf_ktime_get_tai_ns`) reads the TSC, which
//! in a guest costs about as much as the coarse clock saves (docs/measuring.md). So each CPU
//! keeps TAI minus CLOCK_MONOTONIC_COARSE (`bpf_ktime_get_coarse_ns`), read in the kernel, and
//! adds it to the coarse clock; it reads TAI again when its copy is more than
//! [`TAI_REFRESH_NS`] old.
//!
//! The difference only changes when the system clock is stepped (`settimeofday`, an NTP step,
//! a TAI offset set through `adjtimex`): NTP's frequency corrections slew CLOCK_MONOTONIC and
//! CLOCK_TAI alike. A reading is off by at most a tick (the coarse clock lags by up to one:
//! 1-4 ms) plus, for at most [`TAI_REFRESH_NS`] after a step, the step. The offset is read in
//! the kernel and not by the loader: a loader in a time namespace sees a shifted
//! CLOCK_MONOTONIC (`timens_add_monotonic`), the programs do not.

/// How far a program's TAI reading may stray from CLOCK_TAI read at the same moment, outside
/// a step: the coarse clock's lag when the offset was read and its lag now, a tick each (10 ms
/// at the lowest HZ, 100). Near a slot's edge, a cookie can carry the slot on either side of it.
pub const TAI_READING_SLACK_NS: u64 = 20_000_000;

/// How old (coarse clock, ns) a CPU's offset may be before TAI is read again.
pub const TAI_REFRESH_NS: u64 = 1_000_000_000;

/// One CPU's TAI minus CLOCK_MONOTONIC_COARSE, and when it was read (per-CPU map value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaiOffset {
    /// CLOCK_MONOTONIC_COARSE when TAI was read; 0: never.
    pub read_at: u64,
    /// TAI minus CLOCK_MONOTONIC_COARSE at that moment (wrapping).
    pub offset: u64,
}
const _: () = assert!(core::mem::size_of::<TaiOffset>() == 16);

impl TaiOffset {
    /// The offset from TAI and the coarse clock read together.
    #[inline(always)]
    pub fn read(tai_ns: u64, coarse_ns: u64) -> Self {
        TaiOffset {
            read_at: coarse_ns,
            offset: tai_ns.wrapping_sub(coarse_ns),
        }
    }

    /// Whether TAI is to be read again at coarse time `coarse_ns`: never read, more than
    /// [`TAI_REFRESH_NS`] old, or read "later" than now (another CPU's clock state cannot be
    /// ahead of this one's, but a zeroed or foreign value can).
    #[inline(always)]
    pub fn stale(&self, coarse_ns: u64) -> bool {
        self.read_at == 0 || coarse_ns.wrapping_sub(self.read_at) > TAI_REFRESH_NS
    }

    /// CLOCK_TAI at coarse time `coarse_ns`.
    #[inline(always)]
    pub fn tai(&self, coarse_ns: u64) -> u64 {
        coarse_ns.wrapping_add(self.offset)
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain old data, two u64 fields, no padding (size checked above).
    unsafe impl aya::Pod for super::TaiOffset {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    /// 2026-11-30 in TAI ns, and a machine up for an hour.
    const TAI: u64 = 1_796_000_000 * S;
    const UP: u64 = 3600 * S;

    #[test]
    fn tai_is_the_coarse_clock_plus_the_offset_read_with_it() {
        let o = TaiOffset::read(TAI, UP);
        assert_eq!(o.tai(UP), TAI);
        assert_eq!(o.tai(UP + 750_000_000), TAI + 750_000_000);
    }

    #[test]
    fn machines_booted_at_different_times_read_the_same_tai() {
        // A up for an hour, B for ten seconds, at the same moment: their coarse clocks differ
        // by almost an hour, their TAI readings not at all.
        let a = TaiOffset::read(TAI, UP);
        let b = TaiOffset::read(TAI, 10 * S);
        assert_eq!(a.tai(UP + S / 2), b.tai(10 * S + S / 2));
    }

    #[test]
    fn refreshed_after_a_second_and_when_never_read() {
        let o = TaiOffset::read(TAI, UP);
        assert!(!o.stale(UP));
        assert!(!o.stale(UP + TAI_REFRESH_NS));
        assert!(o.stale(UP + TAI_REFRESH_NS + 1));
        assert!(TaiOffset::default().stale(UP));
        // A reading from a coarse time after now (not possible on one machine's clock) is
        // not trusted either.
        assert!(o.stale(UP - 1));
    }

    #[test]
    fn a_clock_step_shows_at_the_next_refresh() {
        let o = TaiOffset::read(TAI, UP);
        // The system clock is stepped 5 s forward: TAI moves, the monotonic clock does not.
        let later = UP + TAI_REFRESH_NS + 1;
        assert!(o.stale(later));
        let n = TaiOffset::read(TAI + (later - UP) + 5 * S, later);
        assert_eq!(n.tai(later) - o.tai(later), 5 * S);
    }

    #[test]
    fn the_coarse_clocks_lag_errs_by_at_most_a_tick() {
        // The coarse clock lags the real monotonic time by 0..tick; read with a lag of a full
        // tick and used with none, the estimate is one tick ahead at most.
        let tick = 4_000_000;
        let o = TaiOffset::read(TAI, UP - tick);
        let est = o.tai(UP + S / 2);
        let real = TAI + S / 2;
        assert!(est >= real && est - real <= tick);
    }
}
