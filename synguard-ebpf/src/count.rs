//! Per-CPU counters: one verdict per packet, plus events. Per-CPU slots need no atomics; the
//! loader sums the CPUs (xdp-tools' per-action `datarec` pattern).

use synguard_common::reason::{Event, Reason};

use crate::maps::{SG_EVENTS, SG_MONITOR, SG_PORT_SYNS, SG_VERDICTS};

#[inline(always)]
pub fn verdict(reason: Reason, bytes: u64) {
    add(&SG_VERDICTS, reason, bytes);
}

/// Monitor mode: what would have been done to a packet that passes instead.
#[inline(always)]
pub fn would(reason: Reason, bytes: u64) {
    add(&SG_MONITOR, reason, bytes);
}

#[inline(always)]
pub fn port_syn(port: u16) {
    if let Some(c) = SG_PORT_SYNS.get_ptr_mut(port as u32) {
        // SAFETY: this CPU's slot.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn add(
    map: &aya_ebpf::maps::PerCpuArray<synguard_common::maps::Counter>,
    reason: Reason,
    bytes: u64,
) {
    if let Some(c) = map.get_ptr_mut(reason.index()) {
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
