//! The programs' one clock.
//!
//! `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC_COARSE, `ktime_get_coarse_ns`) rather than
//! `bpf_ktime_get_ns`: the fine clock reads the TSC, which in a guest cost about a tenth of the
//! whole SYN path (docs/measuring.md, "Where the time goes"), while the coarse one reads the
//! time of the last tick. Everything the programs time is far longer than a tick (1-4 ms): the
//! 100 ms flood-detection windows, the per-source and reflection rates (GCRA stays exact on
//! average; a tick's SYNs meet the burst allowance together), the 1 s listener refresh, the
//! 60 s close records and millisecond timestamps. It shares CLOCK_MONOTONIC's base, so the
//! loader's clock and the programs' stamps compare directly (they differ by at most two ticks:
//! each CPU keeps its reading for the rest of the tick, `synguard_common::tick`, since even the
//! coarse clock's helper call cost ~12 ns a packet).
//!
//! Own cookies' time slot is the exception: it must mean the same on every server of a fleet,
//! so it comes from CLOCK_TAI ([`tai_ns`]), derived from the coarse clock through a per-CPU
//! offset (`synguard_common::tai`).

use aya_ebpf::helpers::generated::{bpf_jiffies64, bpf_ktime_get_coarse_ns, bpf_ktime_get_tai_ns};
use synguard_common::{tai::TaiOffset, tick::TickClock};

use crate::maps::{SG_TAI_OFFSET, SG_TICK_CLOCK};

/// CLOCK_MONOTONIC_COARSE, read once a tick per CPU and cached for the rest of it
/// (`synguard_common::tick`): per packet, an inlined jiffies load and a per-CPU value.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: helper without arguments (inlined by the verifier).
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(p) = SG_TICK_CLOCK.get_ptr_mut(0) else {
        return coarse_ns();
    };
    let p = crate::maps::aligned(p);
    // SAFETY: this CPU's slot. A program that interrupts another on this CPU (XDP during a
    // sock_ops program) stores a reading of the same tick; any mix of the two is one.
    unsafe {
        if let Some(ns) = (*p).at(jiffies) {
            return ns;
        }
        let ns = coarse_ns();
        *p = TickClock::read(jiffies, ns);
        ns
    }
}

/// `now_ns` (a reading of [`now_ns`]) in milliseconds: this CPU's cached value for its tick.
#[inline(always)]
pub fn ms_of(now_ns: u64) -> u64 {
    match SG_TICK_CLOCK.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, read only.
        Some(p) => unsafe { (*crate::maps::aligned(p)).ms_of(now_ns) },
        None => synguard_common::divide::ms_of_ns(now_ns),
    }
}

#[inline(always)]
fn coarse_ns() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// CLOCK_TAI (`bpf_ktime_get_tai_ns`, Linux 6.1), within a tick, from the coarse reading
/// `coarse_ns` and this CPU's cached offset; TAI itself is read at most once a second per CPU
/// (`synguard_common::tai`). Without the map (cannot happen once loaded) it reads TAI.
#[inline(always)]
pub fn tai_ns(coarse_ns: u64) -> u64 {
    let Some(p) = SG_TAI_OFFSET.get_ptr_mut(0) else {
        // SAFETY: helper without arguments.
        return unsafe { bpf_ktime_get_tai_ns() };
    };
    let p = crate::maps::aligned(p);
    // SAFETY: this CPU's slot. XDP and TC ingress run in softirq context and do not nest on a
    // CPU; if they ever did, either writer stores a valid reading.
    unsafe {
        if (*p).stale(coarse_ns) {
            *p = TaiOffset::read(bpf_ktime_get_tai_ns(), coarse_ns);
        }
        // Verifier workaround: the offset read back from the map on both paths, so that the
        // two join in one state (an unknown scalar from the map) rather than carrying the fresh
        // helper result down one of them (docs/verifier.md).
        let offset = core::ptr::read_volatile(&(*p).offset);
        TaiOffset {
            read_at: coarse_ns,
            offset,
        }
        .tai(coarse_ns)
    }
}
