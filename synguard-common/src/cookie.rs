//! How a cookie connection keeps its TCP options, and the window the SYN-ACK offers.
//!
//! A SYN cookie has room only for an MSS index, so Linux hides the client's window scale, SACK
//! and ECN in the low bits of the SYN-ACK's TSval, which the client echoes in its ACK's TSecr
//! (`cookie_init_timestamp` / `cookie_timestamp_decode` in net/ipv4/syncookies.c). This module
//! writes exactly the encoding the kernel decodes.

use crate::own_cookie;

/// Low TSval bits that carry options (`TSBITS`).
pub const TS_BITS: u32 = 6;
/// Window scale field; all ones means "no window scaling" (`TS_OPT_WSCALE_MASK`).
pub const TS_OPT_WSCALE_MASK: u32 = 0xf;
/// `TS_OPT_SACK`
pub const TS_OPT_SACK: u32 = 1 << 4;
/// `TS_OPT_ECN`
pub const TS_OPT_ECN: u32 = 1 << 5;

/// The TSval of a cookie SYN-ACK, as `cookie_init_timestamp` builds it: the current millisecond
/// clock with its low 6 bits replaced by the options, never ahead of the clock.
///
/// `now_ms` must be the clock the kernel uses for TCP timestamps, `tcp_clock_ms()` (CLOCK_MONOTONIC
/// in ms), or its coarse reading, at most a tick behind (the programs read
/// `bpf_ktime_get_coarse_ns`: the first RTT sample grows by up to a tick, nothing else changes).
/// `net.ipv4.tcp_timestamps` must be 2 so that no per-connection offset is added
/// (`secure_tcp_ts_off`).
#[inline(always)]
pub fn cookie_tsval(now_ms: u32, client_wscale: Option<u8>, sack: bool, ecn: bool) -> u32 {
    let mut options = match client_wscale {
        Some(ws) => ws as u32 & TS_OPT_WSCALE_MASK,
        None => TS_OPT_WSCALE_MASK,
    };
    if sack {
        options |= TS_OPT_SACK;
    }
    if ecn {
        options |= TS_OPT_ECN;
    }
    let ts = ((now_ms >> TS_BITS) << TS_BITS) | options;
    if ts > now_ms {
        ts.wrapping_sub(1 << TS_BITS)
    } else {
        ts
    }
}

/// What the kernel reads back from an echoed TSval (`cookie_timestamp_decode`):
/// (window scale, SACK, ECN).
pub fn cookie_ts_decode(tsecr: u32) -> (Option<u8>, bool, bool) {
    let ws = tsecr & TS_OPT_WSCALE_MASK;
    (
        (ws != TS_OPT_WSCALE_MASK).then_some(ws as u8),
        tsecr & TS_OPT_SACK != 0,
        tsecr & TS_OPT_ECN != 0,
    )
}

/// The window shift the kernel picks for a new connection (`tcp_select_initial_window`): the
/// largest window it could ever offer, `max(tcp_rmem[2], rmem_max)`, brought under 16 bits.
pub fn kernel_rcv_wscale(tcp_rmem_max: u64, rmem_max: u64) -> u8 {
    let space = tcp_rmem_max.max(rmem_max).min(u32::MAX as u64);
    if space == 0 {
        return 0;
    }
    let log = 63 - space.leading_zeros() as i64;
    (log - 15).clamp(0, 14) as u8
}

/// Receive space a new connection starts with: `tcp_win_from_space(tcp_rmem[1])` with the
/// default scaling ratio of one half (net/ipv4/tcp_input.c, `TCP_DEFAULT_SCALING_RATIO`).
pub fn initial_rcv_space(tcp_rmem_default: u64) -> u32 {
    (tcp_rmem_default / 2).min(u32::MAX as u64) as u32
}

/// The window field of the SYN-ACK: no more than the kernel's first window for the connection,
/// which it computes from `rcv_space` rounded down to whole segments and capped at 65535
/// (`tcp_select_initial_window`). Never zero: a zero window stalls the client.
#[inline(always)]
pub fn synack_window(rcv_space: u32, mss: u16) -> u16 {
    let space = if rcv_space == 0 || rcv_space > 65535 {
        65535
    } else {
        rcv_space
    };
    let mss = if mss == 0 { 536 } else { mss as u32 };
    let w = if space > mss {
        space - space % mss
    } else {
        space
    };
    w as u16
}

/// [`synack_window`] for every cookie MSS class: IPv4's classes ([`own_cookie::MSS_V4`]) then
/// IPv6's ([`own_cookie::MSS_V6`]), the tables both kinds of cookie share with the kernel.
pub fn synack_windows(rcv_space: u32) -> [u16; 8] {
    let mut w = [0u16; 8];
    for (i, mss) in own_cookie::MSS_V4
        .iter()
        .chain(&own_cookie::MSS_V6)
        .enumerate()
    {
        w[i] = synack_window(rcv_space, *mss);
    }
    w
}

/// The slot of [`synack_windows`] for a cookie MSS class.
#[inline(always)]
pub fn window_slot(ipv6: bool, mss_class: u8) -> usize {
    (ipv6 as usize) << 2 | (mss_class & 3) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsval_round_trips_on_random_clocks() {
        // What the kernel decodes (cookie_timestamp_decode) is what was encoded, and the TSval
        // trails the clock by less than 64 ms (mod 2^32: a clock below 64 wraps).
        let mut rng = crate::testrand::Rng::new(9);
        for _ in 0..100_000 {
            let now = rng.next() as u32;
            let ws = (rng.below(2) == 0).then(|| rng.below(15) as u8);
            let (sack, ecn) = (rng.below(2) == 0, rng.below(2) == 0);
            let ts = cookie_tsval(now, ws, sack, ecn);
            assert_eq!(cookie_ts_decode(ts), (ws, sack, ecn), "now {now}");
            assert!(now.wrapping_sub(ts) < 64, "now {now} ts {ts}");
        }
    }

    #[test]
    fn tsval_carries_options_in_low_bits() {
        let ts = cookie_tsval(1_000_000, Some(7), true, false);
        assert_eq!(ts & 0x3f, 7 | TS_OPT_SACK);
        assert!(ts <= 1_000_000 && 1_000_000 - ts < 64);
        assert_eq!(cookie_ts_decode(ts), (Some(7), true, false));
    }

    #[test]
    fn tsval_without_wscale_uses_the_mask() {
        let ts = cookie_tsval(123_456, None, false, false);
        assert_eq!(ts & 0xf, 0xf);
        assert_eq!(cookie_ts_decode(ts), (None, false, false));
        let ts = cookie_tsval(123_456, Some(0), false, true);
        assert_eq!(cookie_ts_decode(ts), (Some(0), false, true));
    }

    #[test]
    fn tsval_never_runs_ahead_of_the_clock() {
        for now in [64u32, 65, 127, 128, 1000, 0xffff_ffc0, 0xffff_ffff] {
            for opt in 0..64u32 {
                let ws = if opt & 0xf == 0xf {
                    None
                } else {
                    Some((opt & 0xf) as u8)
                };
                let ts = cookie_tsval(now, ws, opt & 0x10 != 0, opt & 0x20 != 0);
                assert_eq!(ts & 0x3f, opt, "now {now} opt {opt}");
                assert!(ts <= now, "now {now} ts {ts}");
                assert!(now - ts < 64);
            }
        }
    }

    #[test]
    fn wscale_like_the_kernel() {
        // Debian defaults: tcp_rmem max 6 MiB, rmem_max 208 KiB: ilog2(6291456) = 22 -> 7.
        assert_eq!(kernel_rcv_wscale(6_291_456, 212_992), 7);
        // 32 MiB -> 10.
        assert_eq!(kernel_rcv_wscale(33_554_432, 212_992), 10);
        assert_eq!(kernel_rcv_wscale(65_535, 0), 0);
        assert_eq!(kernel_rcv_wscale(1 << 40, 0), 14);
        assert_eq!(kernel_rcv_wscale(0, 0), 0);
    }

    #[test]
    fn synack_windows_hold_each_class_window() {
        for space in [0, 1000, 65536, 1 << 20] {
            let w = synack_windows(space);
            for class in 0..4u8 {
                let v4 = own_cookie::MSS_V4[class as usize];
                let v6 = own_cookie::MSS_V6[class as usize];
                assert_eq!(w[window_slot(false, class)], synack_window(space, v4));
                assert_eq!(w[window_slot(true, class)], synack_window(space, v6));
            }
        }
    }

    #[test]
    fn synack_window_is_whole_segments_and_bounded() {
        assert_eq!(synack_window(65536, 1460), 64240);
        assert_eq!(synack_window(1 << 20, 1448), 65160);
        assert_eq!(synack_window(0, 1460), 64240);
        assert_eq!(synack_window(1000, 1460), 1000);
        assert_eq!(synack_window(65536, 0), 65535 / 536 * 536);
        assert_eq!(initial_rcv_space(131072), 65536);
    }
}
