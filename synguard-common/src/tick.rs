//! The programs' clock, cheaply: CLOCK_MONOTONIC_COARSE cached per CPU for the current tick.
//!
//! `bpf_ktime_get_coarse_ns` is a helper call, about 12 ns per packet on the measuring VM (the
//! call and return, with the kernel's return-thunk mitigation, cost more than the read), while
//! `bpf_jiffies64` is turned into two loads by the verifier (`do_misc_fixups`, "Implement
//! bpf_jiffies64 inline", 64-bit JITs). The coarse clock only moves on a tick, when jiffies
//! moves (`tick_do_update_jiffies64` then `update_wall_time`), so each CPU keeps the coarse
//! time it read with the jiffies value of the moment and reads the clock again only when
//! jiffies has moved on: once a tick per CPU instead of once a packet.
//!
//! A reading taken between the jiffies increment and the timekeeper's update is the previous
//! tick's time and is kept for the new tick: readings lag the true time by at most two ticks
//! (2-8 ms) instead of one. Everything the programs time is far longer (docs/measuring.md).

use crate::divide::ms_of_ns;

/// One CPU's cached reading (per-CPU map value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickClock {
    /// `jiffies_64` when the clock was read.
    pub jiffies: u64,
    /// CLOCK_MONOTONIC_COARSE then; 0: never read.
    pub coarse_ns: u64,
    /// The same reading in milliseconds, for SYN-ACK timestamps: the division (by
    /// multiplication, `divide::ms_of_ns`) once a tick rather than once a SYN.
    pub coarse_ms: u64,
}
const _: () = assert!(core::mem::size_of::<TickClock>() == 24);

impl TickClock {
    /// The cache entry for a reading `coarse_ns` taken at `jiffies`.
    #[inline(always)]
    pub fn read(jiffies: u64, coarse_ns: u64) -> Self {
        TickClock {
            jiffies,
            coarse_ns,
            coarse_ms: ms_of_ns(coarse_ns),
        }
    }

    /// `ms_of_ns(ns)`, from the cache when `ns` is its reading.
    #[inline(always)]
    pub fn ms_of(&self, ns: u64) -> u64 {
        if ns == self.coarse_ns && ns != 0 {
            self.coarse_ms
        } else {
            ms_of_ns(ns)
        }
    }

    /// The cached reading if it is of tick `jiffies` (never one that was never taken: 0 is no
    /// reading, and `jiffies_64` does pass 0, five minutes after boot).
    #[inline(always)]
    pub fn at(&self, jiffies: u64) -> Option<u64> {
        (self.jiffies == jiffies && self.coarse_ns != 0).then_some(self.coarse_ns)
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain old data, three u64 fields, no padding (size checked above).
    unsafe impl aya::Pod for super::TickClock {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_serves_its_own_tick_only() {
        let c = TickClock::read(4_294_967_296, 3_600_000_000_000);
        assert_eq!(c.at(4_294_967_296), Some(3_600_000_000_000));
        assert_eq!(c.at(4_294_967_297), None);
        assert_eq!(c.at(4_294_967_295), None);
    }

    #[test]
    fn no_reading_is_never_served() {
        assert_eq!(TickClock::default().at(0), None);
        let zero = TickClock::read(7, 0);
        assert_eq!(zero.at(7), None);
        assert_eq!(zero.ms_of(0), 0);
    }

    #[test]
    fn milliseconds_of_the_reading_and_of_any_other_time() {
        let mut r = crate::testrand::Rng::new(11);
        for _ in 0..10_000 {
            let ns = r.next() >> (r.next() % 64);
            let c = TickClock::read(r.next(), ns);
            assert_eq!(c.ms_of(ns), ns / 1_000_000);
            let other = r.next();
            assert_eq!(c.ms_of(other), other / 1_000_000);
        }
    }
}
