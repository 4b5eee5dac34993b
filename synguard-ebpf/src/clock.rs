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
//! so it comes from CLOCK_TAI ([`Clocks::tai_ns`]), derived from the coarse clock through a
//! per-CPU offset (`synguard_common::tai`).

use aya_ebpf::helpers::generated::{bpf_jiffies64, bpf_ktime_get_coarse_ns, bpf_ktime_get_tai_ns};
use synguard_common::{tai::TaiOffset, tick::TickClock};

/// This CPU's clock caches. They live in the per-CPU workspace (`workspace::Workspace::clocks`),
/// which the XDP programs look up once per packet anyway: as maps of their own they cost a
/// per-CPU lookup at each reading, up to three on an own cookie's way (docs/measuring.md,
/// "The clocks in the workspace").
#[repr(C, align(8))]
pub struct Clocks {
    tick: TickClock,
    tai: TaiOffset,
}

impl Clocks {
    /// CLOCK_MONOTONIC_COARSE, read once a tick per CPU and cached for the rest of it
    /// (`synguard_common::tick`): per packet, an inlined jiffies load and two of this value's.
    #[inline(always)]
    pub fn now_ns(&mut self) -> u64 {
        // SAFETY: helper without arguments (inlined by the verifier).
        let jiffies = unsafe { bpf_jiffies64() };
        if let Some(ns) = self.tick.at(jiffies) {
            return ns;
        }
        // A program that interrupts another on this CPU (XDP during a sock_ops program) stores
        // a reading of the same tick; any mix of the two is one.
        let ns = coarse_ns();
        self.tick = TickClock::read(jiffies, ns);
        ns
    }

    /// `now_ns` (a reading of [`Clocks::now_ns`]) in milliseconds: this CPU's cached value for
    /// its tick.
    #[inline(always)]
    pub fn ms_of(&self, now_ns: u64) -> u64 {
        self.tick.ms_of(now_ns)
    }

    /// CLOCK_TAI (`bpf_ktime_get_tai_ns`, Linux 6.1), within a tick, from the coarse reading
    /// `coarse_ns` and this CPU's cached offset; TAI itself is read at most once a second per
    /// CPU (`synguard_common::tai`).
    #[inline(always)]
    pub fn tai_ns(&mut self, coarse_ns: u64) -> u64 {
        // XDP and TC ingress run in softirq context and do not nest on a CPU; if they ever did,
        // either writer stores a valid reading.
        if self.tai.stale(coarse_ns) {
            // SAFETY: helper without arguments.
            self.tai = TaiOffset::read(unsafe { bpf_ktime_get_tai_ns() }, coarse_ns);
        }
        // Verifier workaround: the offset read back from the map on both paths, so that the
        // two join in one state (an unknown scalar from the map) rather than carrying the fresh
        // helper result down one of them (docs/verifier.md).
        // SAFETY: a field of this value.
        let offset = unsafe { core::ptr::read_volatile(&self.tai.offset) };
        TaiOffset {
            read_at: coarse_ns,
            offset,
        }
        .tai(coarse_ns)
    }
}

#[inline(always)]
fn coarse_ns() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}
