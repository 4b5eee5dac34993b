//! The own cookies' time slots a program run may have used: the programs read CLOCK_TAI from
//! the coarse clock and a cached offset (`synguard_common::tai`), within
//! [`TAI_READING_SLACK_NS`] of the host's CLOCK_TAI, so near a slot's edge a cookie made during a
//! run carries the slot on either side of it.

use synguard_common::{own_cookie::slot_of, tai::TAI_READING_SLACK_NS};

/// Runs `run` and returns its result with the first and last slot it may have made cookies in.
pub fn around<T>(run: impl FnOnce() -> T) -> (T, [u32; 2]) {
    let before = synguard::host::clock::tai_ns();
    let r = run();
    let after = synguard::host::clock::tai_ns();
    let first = slot_of(before.saturating_sub(TAI_READING_SLACK_NS));
    (r, [first, slot_of(after + TAI_READING_SLACK_NS)])
}

/// Whether `isn` is `cookie(slot)` for a slot in `slots` (first..=last).
pub fn made_in(slots: [u32; 2], isn: u32, cookie: impl Fn(u32) -> u32) -> bool {
    (slots[0]..=slots[1]).any(|s| isn == cookie(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_of_a_run_cover_the_slack_on_both_sides() {
        let ((), [first, last]) = around(|| ());
        let now = slot_of(synguard::host::clock::tai_ns());
        assert!(first <= now && now <= last && last - first <= 1);
    }

    #[test]
    fn a_cookie_counts_in_any_slot_of_the_window() {
        let cookie = |s: u32| s.wrapping_mul(7);
        assert!(made_in([10, 11], 77, cookie));
        assert!(made_in([10, 11], 70, cookie));
        assert!(!made_in([10, 11], 84, cookie));
    }
}
