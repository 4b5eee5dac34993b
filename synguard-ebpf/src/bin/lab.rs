//! The XDP programs the `synguard-lab` crate loads (into the lab, or into `BPF_PROG_TEST_RUN`);
//! never attached by `synguard run`:
//! - `lab_pass`: veth needs an XDP program on the peer for XDP_TX frames to arrive reliably
//!   (docs/veth-and-nics.md), so the lab attaches this on the far side of the server's veth.
//! - `lab_swap_tx`: swaps MAC and IPv4/IPv6 addresses and TCP ports and returns XDP_TX: the floor
//!   `cargo xtask bench` measures synguard against.
//! - `lab_drop`: XDP_DROP for everything.
//! - `lab_floor_tx`, `lab_floor_drop`: the flood runs' floors. `lab_swap_tx` and XDP_DROP for
//!   frames from the spoof pool (198.18.0.128/25, where every flood comes from); everything else
//!   passes to the stack, so the legitimate clients connect through a floor as through a
//!   defence, and their success and latency under the same flood have a reference. The check is
//!   the least any filter does (a bounds check, the ethertype and one address).
//! - `lab_sink`: on the server veth's bridge-side peer during flood runs: drops the server's
//!   replies to the attacker's spoof pool (198.18.0.128/25) there, as a NIC would put them on
//!   the wire, instead of forwarding them through the bridge on the generator's CPU; everything
//!   else passes. The peer's receive counter still counts every reply.
//! - `lab_restore`: benchmark wrapper. `BPF_PROG_TEST_RUN` with `repeat` runs a program again
//!   and again on the same buffer, so a program that rewrites a SYN into a SYN-ACK sees its own
//!   SYN-ACK from the second run on (docs/measuring.md). This wrapper puts the template frame back
//!   each time and tail-calls the program under test; its own cost is measured the same way with
//!   `lab_pass` as the target and subtracted. It can also empty one slot of the program's
//!   connection table before each run (`Template::forget_slot`), for a handshake's final ACK.
//! - `lab_gen`: the flood runs' packet generator, run with `BPF_PROG_TEST_RUN` in XDP live-frames
//!   mode in the attacker's namespace. Live frames recycle pages without rewriting their
//!   contents (kernel doc bpf_prog_run.rst, docs/measuring.md), so it writes the whole frame on
//!   every run and returns XDP_TX, which sends it out of the attacker's veth.
//!
//! `lab_restore`, `lab_pass`, `lab_swap_tx` and `lab_drop` are multi-buffer programs
//! (`xdp.frags`) as synguard's are: the first two share a program array with them (whose
//! programs must agree on it), the bench's floors are of the kind of the programs they are
//! compared with, and `lab_pass` on a veth peer must accept the jumbo MTU the end-to-end tests
//! set.
#![no_std]
#![no_main]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_store_bytes},
    macros::xdp,
    maps::{Array, PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use synguard_common::{
    checksum,
    lab::{GEN_LEN, GenConfig, MIX_ACK, MIX_SYN, TEMPLATE_MAX, Template, in_spoof_pool},
};
use synguard_ebpf::sg_map;

sg_map! {
    LAB_TEMPLATE => static LAB_TEMPLATE: Array<Template> = Array::with_max_entries(1, 0);
}

sg_map! {
    LAB_TARGET => static LAB_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);
}

sg_map! {
    /// One slot here; the bench loads this object with the program under test's connection
    /// table in its place (`map_pin_path`), whose size the verifier then checks against.
    LAB_CONNS => static LAB_CONNS: Array<u32> = Array::with_max_entries(1, 0);
}

#[xdp(frags)]
pub fn lab_restore(ctx: XdpContext) -> u32 {
    let Some(t) = LAB_TEMPLATE.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let cur = ctx.data_end() as u64 - ctx.data() as u64;
    // Verifier workaround: keep LLVM from folding the subtraction into pointer arithmetic.
    // SAFETY: reading a local.
    let cur = unsafe { core::ptr::read_volatile(&cur) };
    let len = t.len as u64;
    if len == 0 || len > TEMPLATE_MAX as u64 {
        return xdp_action::XDP_ABORTED;
    }
    if t.forget_slot != 0
        && let Some(slot) = LAB_CONNS.get_ptr_mut(t.forget_slot - 1)
    {
        // SAFETY: array value pointer.
        unsafe { *slot = 0 };
    }
    // Positive delta to adjust_head shrinks at the head, negative grows.
    let delta = cur as i64 - len as i64;
    // SAFETY: helper calls on our own context; the template is map memory of TEMPLATE_MAX bytes.
    unsafe {
        if delta != 0 && bpf_xdp_adjust_head(ctx.ctx, delta as i32) != 0 {
            return xdp_action::XDP_ABORTED;
        }
        let bytes = t.bytes.as_ptr() as *mut c_void;
        if bpf_xdp_store_bytes(ctx.ctx, 0, bytes, len as u32) != 0 {
            return xdp_action::XDP_ABORTED;
        }
        LAB_TARGET.tail_call(&ctx, 0);
    }
    xdp_action::XDP_ABORTED
}

sg_map! {
    LAB_GEN => static LAB_GEN: Array<GenConfig> = Array::with_max_entries(1, 0);
}

sg_map! {
    /// Per-CPU frame counter: varies source, port and sequence number from frame to frame.
    LAB_GEN_SEQ => static LAB_GEN_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// A cheap integer mix (splitmix64's finaliser) so ports and sequence numbers look random.
#[inline(always)]
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Fills in the fields that change per frame and both checksums.
#[inline(always)]
fn generate(b: &mut [u8; GEN_LEN], cfg: &GenConfig, n: u64) {
    const IP: usize = 14;
    const TCP: usize = 34;
    let r = mix64(n);
    // Whatever the template says, the frame stays inside 198.18.0.0/24 and its source inside the
    // attacker pool 198.18.0.128/25.
    b[IP + 12..IP + 15].copy_from_slice(&[198, 18, 0]);
    b[IP + 15] = 128 | (n as u8 & cfg.source_mask & 0x7f);
    b[IP + 16..IP + 19].copy_from_slice(&[198, 18, 0]);
    b[IP + 4..IP + 6].copy_from_slice(&(n as u16).to_be_bytes());
    b[IP + 10] = 0;
    b[IP + 11] = 0;
    let ip_sum = checksum::finish(checksum::add_slice(0, &b[IP..IP + 20]));
    b[IP + 10..IP + 12].copy_from_slice(&ip_sum.to_be_bytes());

    let sport = 1024 + (r as u16 & 0x7fff);
    b[TCP..TCP + 2].copy_from_slice(&sport.to_be_bytes());
    b[TCP + 4..TCP + 8].copy_from_slice(&((r >> 16) as u32).to_be_bytes());
    let flags = match cfg.mix {
        MIX_SYN => SYN,
        MIX_ACK => ACK,
        _ if n & 1 == 0 => SYN,
        _ => ACK,
    };
    let ack = if flags == ACK { (r >> 32) as u32 } else { 0 };
    b[TCP + 8..TCP + 12].copy_from_slice(&ack.to_be_bytes());
    b[TCP + 12] = 5 << 4;
    b[TCP + 13] = flags;
    b[TCP + 16] = 0;
    b[TCP + 17] = 0;
    let pseudo = checksum::pseudo_v4_slice(&b[IP + 12..IP + 20], 20);
    let tcp_sum = checksum::finish(checksum::add_slice(pseudo, &b[TCP..TCP + 20]));
    b[TCP + 16..TCP + 18].copy_from_slice(&tcp_sum.to_be_bytes());
}

#[xdp]
pub fn lab_gen(ctx: XdpContext) -> u32 {
    let (Some(cfg), Some(seq)) = (LAB_GEN.get(0), LAB_GEN_SEQ.get_ptr_mut(0)) else {
        return xdp_action::XDP_ABORTED;
    };
    let len = ctx.data_end() as u64 - ctx.data() as u64;
    // Verifier workaround (docs/verifier.md, "volatile lengths"): keep LLVM from folding the
    // subtraction into arithmetic on data_end.
    // SAFETY: reading a local.
    let len = unsafe { core::ptr::read_volatile(&len) };
    if len != GEN_LEN as u64 {
        return xdp_action::XDP_ABORTED;
    }
    // SAFETY: a per-CPU map value of this CPU; programs on one CPU do not run concurrently.
    let n = unsafe {
        *seq += 1;
        *seq
    };
    let mut b = cfg.template;
    generate(&mut b, cfg, n);
    // SAFETY: the frame is exactly GEN_LEN bytes long (checked above), b is GEN_LEN bytes.
    let rc =
        unsafe { bpf_xdp_store_bytes(ctx.ctx, 0, b.as_mut_ptr() as *mut c_void, GEN_LEN as u32) };
    if rc != 0 {
        return xdp_action::XDP_ABORTED;
    }
    xdp_action::XDP_TX
}

#[xdp(frags)]
pub fn lab_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp(frags)]
pub fn lab_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

const ETH_LEN: usize = 14;

#[xdp]
pub fn lab_sink(ctx: XdpContext) -> u32 {
    match ipv4_addr(&ctx, IPV4_DST) {
        Some(dst) if in_spoof_pool(dst) => xdp_action::XDP_DROP,
        _ => xdp_action::XDP_PASS,
    }
}

#[xdp]
pub fn lab_floor_drop(ctx: XdpContext) -> u32 {
    match ipv4_addr(&ctx, IPV4_SRC) {
        Some(src) if in_spoof_pool(src) => xdp_action::XDP_DROP,
        _ => xdp_action::XDP_PASS,
    }
}

#[xdp]
pub fn lab_floor_tx(ctx: XdpContext) -> u32 {
    match ipv4_addr(&ctx, IPV4_SRC) {
        Some(src) if in_spoof_pool(src) => swap_tx(&ctx),
        _ => xdp_action::XDP_PASS,
    }
}

const IPV4_SRC: usize = 12;
const IPV4_DST: usize = 16;

/// The IPv4 address at `at` in the IP header of an untagged IPv4 frame; `None` for anything else.
#[inline(always)]
fn ipv4_addr(ctx: &XdpContext, at: usize) -> Option<[u8; 4]> {
    let start = ctx.data();
    if start + ETH_LEN + 20 > ctx.data_end() {
        return None;
    }
    // SAFETY: 34 bytes checked above; `at` + 4 is at most 20.
    unsafe {
        if u16::from_be(*((start + 12) as *const u16)) != 0x0800 {
            return None;
        }
        Some(*((start + ETH_LEN + at) as *const [u8; 4]))
    }
}

#[inline(always)]
fn swap<const N: usize>(ctx: &XdpContext, a: usize, b: usize) -> Option<()> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + b + N > end || start + a + N > end {
        return None;
    }
    // In 16-bit halves, one load and one store each, as a bare XDP program would: every field
    // swapped here starts at an even offset of the frame. (`core::ptr::swap` of a byte array
    // became a BPF-to-BPF call to `memmove`, which made the floor slower than a bare program.)
    const { assert!(N.is_multiple_of(2)) };
    let (pa, pb) = ((start + a) as *mut u16, (start + b) as *mut u16);
    for i in 0..N / 2 {
        // SAFETY: both ranges were bounds-checked against data_end above; the frame starts
        // 2-byte aligned and `a`, `b` are even.
        unsafe {
            let x = pa.add(i).read();
            pa.add(i).write(pb.add(i).read());
            pb.add(i).write(x);
        }
    }
    Some(())
}

#[xdp(frags)]
pub fn lab_swap_tx(ctx: XdpContext) -> u32 {
    swap_tx(&ctx)
}

/// Swaps MAC and IPv4/IPv6 addresses and TCP ports, XDP_TX (XDP_PASS for anything else).
#[inline(always)]
fn swap_tx(ctx: &XdpContext) -> u32 {
    let start = ctx.data();
    if start + ETH_LEN > ctx.data_end() {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: 14 bytes checked above.
    let proto = unsafe { u16::from_be(*((start + 12) as *const u16)) };
    let ok = swap::<6>(ctx, 0, 6).and_then(|()| match proto {
        0x0800 => swap::<4>(ctx, ETH_LEN + 12, ETH_LEN + 16)
            .and_then(|()| swap::<2>(ctx, ETH_LEN + 20, ETH_LEN + 22)),
        0x86dd => swap::<16>(ctx, ETH_LEN + 8, ETH_LEN + 24)
            .and_then(|()| swap::<2>(ctx, ETH_LEN + 40, ETH_LEN + 42)),
        _ => None,
    });
    match ok {
        Some(()) => xdp_action::XDP_TX,
        None => xdp_action::XDP_PASS,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
