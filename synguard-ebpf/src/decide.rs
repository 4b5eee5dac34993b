//! Step 3, decide: is the port protected, are cookies on, and does this listener need a SYN
//! passed to the kernel to keep accepting cookies.
//!
//! Flood detection (auto mode) runs here, in the program, from per-CPU window counters and the
//! kernel clock: each CPU counts SYNs to protected ports in 100 ms windows aligned to the clock;
//! the first SYN a CPU sees in a new window sums every CPU's last closed window
//! (`bpf_map_lookup_percpu_elem`) and updates the shared mode state. No userspace round trip.

use aya_ebpf::{helpers::generated::bpf_map_lookup_percpu_elem, programs::XdpContext};
use aya_log_ebpf::debug;
use synguard_common::{
    maps::{
        BoundKey, Config, MAX_CPUS, MODE_AUTO, ModeState, PORT_PROTECTED, SYN_WINDOW_NS, SynWindow,
        WINDOWS_PER_SEC, cookies_called_for, cookies_own, port_bound_only, port_no_listener,
        port_no_listener_at, refresh_slot,
    },
    policy::{FLOOD_END, FLOOD_START, FloodEvent},
    reason::Event,
};

use crate::{
    classify, count,
    maps::{SG_BOUND, SG_FLOOD_EVENTS, SG_MODE, SG_PORTS, SG_READY, SG_REFRESH, SG_SYN_WINDOW},
    parse::Packet,
};

/// Every packet's first decision: one load at the port's place in the table (a global,
/// `synguard_ebpf::Global`: no lookup).
#[inline(always)]
pub fn port_protected(port: u16) -> bool {
    port_flags(port) & PORT_PROTECTED != 0
}

/// Whether something listens on the SYN's port over its family, and at its destination, as the
/// loader last saw it (`PORT_NO_LISTENER_*`): the same entry, and cache line, [`port_protected`]
/// read. The destination's slot in the address list is looked for only when the port has
/// per-address bits (its listeners are all bound to particular addresses).
#[inline(always)]
pub fn listening(pkt: &Packet, cfg: &Config) -> bool {
    let flags = port_flags(pkt.dport());
    if flags & port_no_listener(pkt.ipv6) != 0 {
        return false;
    }
    if flags & port_bound_only(pkt.ipv6) != 0 {
        return bound_here(pkt);
    }
    let at = flags & port_no_listener_at(pkt.ipv6, 0xff);
    at == 0 || at & port_no_listener_at(pkt.ipv6, classify::dst_slots(pkt, cfg)) == 0
}

/// Whether a listener is bound to the SYN's destination and port (`SG_BOUND`), for a port whose
/// listeners over the family are all bound to particular addresses while the host's addresses
/// are in the trie (`PORT_BOUND_ONLY_*`).
#[inline(always)]
fn bound_here(pkt: &Packet) -> bool {
    let a = pkt.addresses();
    let mut key = BoundKey {
        port: pkt.dport(),
        ipv6: pkt.ipv6 as u8,
        ..BoundKey::default()
    };
    let words: [u32; 4] = if pkt.ipv6 {
        [a[4], a[5], a[6], a[7]]
    } else {
        [a[1], 0, 0, 0]
    };
    // SAFETY: same size, every bit pattern of either is valid.
    key.addr = unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(words) };
    // SAFETY: a lookup; the value is not read.
    unsafe { SG_BOUND.get(key) }.is_some()
}

/// `port`'s entry in the port table.
#[inline(always)]
fn port_flags(port: u16) -> u32 {
    // SAFETY: `table_index` is at most 0xffff, and the table has 65536 entries.
    unsafe { SG_PORTS.get().get_unchecked(table_index(port)) }.flags
}

/// `port` as an index the verifier knows to be inside the table. Verifier workaround: a port
/// taken from the frame is byte-swapped (`BPF_END`), and a verifier that keeps nothing of a
/// swap's result refuses the index as unbounded (the VM test's 6.12 guest: "R3 unbounded memory
/// access"; this machine's 6.18 accepted it). LLVM knows the value fits in 16 bits and drops a
/// mask written in Rust; this one is an instruction it cannot see through.
#[inline(always)]
fn table_index(port: u16) -> usize {
    let mut i = port as u64;
    // SAFETY: an AND on a register; no memory, no stack.
    unsafe {
        core::arch::asm!(
            "{i} &= 0xffff",
            i = inout(reg) i,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    i as usize
}

/// What to do with a SYN to a protected port.
pub enum SynAction {
    /// Cookies are off: the kernel handles the SYN as usual.
    ToKernel,
    /// Cookies are on, but this listener is due a SYN of its own (see [`refresh_due`]).
    Refresh,
    /// Answer with a cookie.
    Cookie,
}

/// Counts a SYN to a protected port for flood detection and returns whether auto mode wants
/// cookies. Runs for every such SYN before any list or limit decides its fate: a flood whose
/// sources are being dropped is still a flood. (Also a verifier workaround: the bounded loop over
/// CPUs in `summed_rate` is then verified once per parsed-packet shape, not once more for every
/// policy outcome.)
#[inline(always)]
pub fn observe_syn(ctx: &XdpContext, cfg: &Config, port: u16, now: u64) -> bool {
    track_rate(ctx, cfg, port, now)
}

/// What to do with a SYN that the lists and limits let through. `monitor`: decide as if the
/// kernel were ready (monitor mode sends nothing, so the loader does not switch the kernel's
/// settings for it) and skip the listener refresh; so do own cookies.
#[inline(always)]
pub fn syn_action(
    cfg: &Config,
    wanted: bool,
    port: u16,
    ipv6: bool,
    now: u64,
    monitor: bool,
) -> SynAction {
    let on = cookies_called_for(cfg.mode, wanted);
    // Own cookies change nothing in the kernel, so the loader has them ready from the start
    // (`Controller::start`), and no listener needs a refresh: two map reads and a store fewer
    // per SYN.
    if monitor || cookies_own(cfg.cookies) {
        return if on {
            SynAction::Cookie
        } else {
            SynAction::ToKernel
        };
    }
    let ready = SG_READY.get();
    // Fail safe: until the loader says the kernel accepts cookie ACKs, a cookie would only earn
    // the client an RST.
    if !on || ready.kernel_ready == 0 {
        return SynAction::ToKernel;
    }
    if refresh_due(port, ipv6, now, ready.ready_since_ns, cfg.refresh_ns) {
        return SynAction::Refresh;
    }
    SynAction::Cookie
}

/// The kernel accepts a cookie ACK only if the listener's SYN queue overflowed in the last
/// 120 s (`tcp_synq_no_recent_overflow`, net/ipv4/syncookies.c). The raw cookie helpers never
/// touch the listener, so with `tcp_syncookies=2` one SYN per listener per refresh period goes
/// to the kernel, whose `cookie_init_sequence` calls `tcp_synq_overflow` and keeps the listener
/// accepting. A stamp older than the loader's `ready_since_ns` is stale (the sysctl was not 2
/// then), so the first SYN after it always goes through.
#[inline(always)]
fn refresh_due(port: u16, ipv6: bool, now: u64, ready_since: u64, period: u64) -> bool {
    let Some(slot) = SG_REFRESH.get_ptr_mut(refresh_slot(port, ipv6)) else {
        return false;
    };
    // SAFETY: array value pointer from the map; racing CPUs at worst both pass one SYN.
    unsafe {
        let last = *slot;
        if last < ready_since || now.wrapping_sub(last) >= period {
            *slot = now;
            return true;
        }
    }
    false
}

/// Counts the SYN in this CPU's window; when the window rolls over, recomputes the summed rate
/// and auto mode's decision. Returns whether cookies are wanted.
#[inline(always)]
fn track_rate(ctx: &XdpContext, cfg: &Config, port: u16, now: u64) -> bool {
    count::event(Event::SynProtected);
    count::port_syn(port);
    let mode = SG_MODE.as_ptr();
    let Some(w) = SG_SYN_WINDOW.get_ptr_mut(0) else {
        // SAFETY: the global's value.
        return unsafe { (*mode).cookies_wanted != 0 };
    };
    // SAFETY: per-CPU slot of this CPU; mode is a shared array value (plain stores, benign races).
    unsafe {
        // Still in this CPU's window: no division (a `div` per SYN; the window's start is
        // computed only when it rolls over). Not `wrapping_sub`: a reading a tick behind the
        // stamp (another CPU's) must not look like a new window.
        if now >= (*w).start_ns + SYN_WINDOW_NS {
            let start = now - now % SYN_WINDOW_NS;
            roll_window(&mut *w, start);
            let rate = summed_rate(cfg, start - SYN_WINDOW_NS);
            update_mode(ctx, cfg, &mut *mode, rate, port, now);
        }
        (*w).count += 1;
        // Switch on inside the window too: waiting for it to close let up to two windows of a
        // flood (200 ms) through to the kernel's slower path, where the receive ring overflowed
        // and real SYNs were lost with the flood's (a 1 s retransmission). This CPU's count alone
        // is a lower bound on the rate, so this never switches on below the threshold.
        let own = (*w).count * WINDOWS_PER_SEC;
        if cfg.mode == MODE_AUTO && (*mode).cookies_wanted == 0 && own >= cfg.syn_on_pps as u64 {
            update_mode(ctx, cfg, &mut *mode, own, port, now);
        }
        (*mode).cookies_wanted != 0
    }
}

#[inline(always)]
fn roll_window(w: &mut SynWindow, start: u64) {
    if w.start_ns + SYN_WINDOW_NS == start {
        w.prev_start_ns = w.start_ns;
        w.prev_count = w.count;
    } else {
        // This CPU saw nothing in the window that just closed.
        w.prev_start_ns = start - SYN_WINDOW_NS;
        w.prev_count = 0;
    }
    w.start_ns = start;
    w.count = 0;
}

/// SYNs per second over all CPUs in the window starting at `closed`. A CPU that has not rolled
/// over yet still holds that window as its current one.
#[inline(always)]
fn summed_rate(cfg: &Config, closed: u64) -> u64 {
    let key = 0u32;
    let map = &SG_SYN_WINDOW as *const _ as *mut core::ffi::c_void;
    let mut sum = 0u64;
    for cpu in 0..MAX_CPUS {
        if cpu >= cfg.nr_cpus {
            break;
        }
        // SAFETY: helper call with a valid map and key; the result is checked for null.
        let p = unsafe { bpf_map_lookup_percpu_elem(map, &key as *const u32 as *const _, cpu) }
            as *const SynWindow;
        if p.is_null() {
            continue;
        }
        // SAFETY: non-null value pointer of the map.
        sum += unsafe { &*p }.count_in(closed);
    }
    sum * WINDOWS_PER_SEC
}

/// Auto mode's hysteresis: on at `syn_on_pps`, off once the rate stayed below `syn_off_pps` for
/// `hold_ns`. The program only gets here when a SYN closes a window, so the loader applies the
/// same off rule on its own clock when no SYN comes (synguard `daemon/mode.rs`).
#[inline(always)]
fn update_mode(ctx: &XdpContext, cfg: &Config, m: &mut ModeState, rate: u64, port: u16, now: u64) {
    m.last_rate_pps = rate;
    if rate >= cfg.syn_off_pps as u64 {
        m.last_above_ns = now;
    }
    if cfg.mode != MODE_AUTO {
        return;
    }
    if m.cookies_wanted == 0 && rate >= cfg.syn_on_pps as u64 {
        m.cookies_wanted = 1;
        m.wanted_since_ns = now;
        m.switches += 1;
        count::event(Event::CookieModeOn);
        flood_event(FLOOD_START, port, rate, now);
        // Debug only: the loader logs the flood event (with its sources) once.
        debug!(ctx, "cookies on: {} SYN/s to protected ports", rate);
    } else if m.hold_expired(cfg.hold_ns, now) {
        m.cookies_wanted = 0;
        m.switches += 1;
        count::event(Event::CookieModeOff);
        flood_event(FLOOD_END, port, rate, now);
        debug!(ctx, "cookies off: {} SYN/s to protected ports", rate);
    }
}

/// Tells the loader a flood started or ended. A full ring buffer loses the event, not the
/// decision; the loss is counted.
#[inline(always)]
fn flood_event(kind: u32, port: u16, rate: u64, now: u64) {
    let ev = FloodEvent {
        kind,
        port: port as u32,
        rate_pps: rate,
        time_ns: now,
    };
    if SG_FLOOD_EVENTS.output::<FloodEvent>(&ev, 0).is_err() {
        count::event(Event::FloodEventLost);
    }
}
