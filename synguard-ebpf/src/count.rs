//! Per-CPU counters: one verdict per packet, plus events. Per-CPU slots need no atomics; the
//! loader sums the CPUs (xdp-tools' per-action `datarec` pattern).

use synguard_common::reason::{Event, Reason};

use crate::maps::{SG_EVENTS, SG_VERDICTS};

#[inline(always)]
pub fn verdict(reason: Reason, bytes: u64) {
    if let Some(c) = SG_VERDICTS.get_ptr_mut(reason.index()) {
        // SAFETY: a per-CPU slot is only touched by this CPU, and XDP does not nest.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
        }
    }
}

#[inline(always)]
pub fn event(event: Event) {
    if let Some(c) = SG_EVENTS.get_ptr_mut(event.index()) {
        // SAFETY: as above.
        unsafe { *c += 1 };
    }
}
