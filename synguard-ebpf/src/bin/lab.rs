//! Lab-only XDP programs, never attached by `synguard run`:
//! - `lab_pass`: veth needs an XDP program on the peer for XDP_TX frames to arrive reliably
//!   (platform notes), so the lab attaches this on the far side of the server's veth.
//! - `lab_swap_tx`: swaps MAC and IPv4/IPv6 addresses and TCP ports and returns XDP_TX: the floor
//!   `cargo xtask bench` measures synguard against.
//! - `lab_drop`: XDP_DROP for everything.
//! - `lab_restore`: benchmark wrapper. `BPF_PROG_TEST_RUN` with `repeat` runs a program again
//!   and again on the same buffer, so a program that rewrites a SYN into a SYN-ACK sees its own
//!   SYN-ACK from the second run on (platform notes). This wrapper puts the template frame back
//!   each time and tail-calls the program under test; its own cost is measured the same way with
//!   `lab_pass` as the target and subtracted.
#![no_std]
#![no_main]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_store_bytes},
    macros::{map, xdp},
    maps::{Array, ProgramArray},
    programs::XdpContext,
};

/// Largest template frame.
pub const TEMPLATE_MAX: usize = 128;

/// The frame `lab_restore` writes before every run.
#[repr(C)]
pub struct Template {
    pub len: u32,
    pub _pad: u32,
    pub bytes: [u8; TEMPLATE_MAX],
}

#[map(name = "LAB_TEMPLATE")]
static LAB_TEMPLATE: Array<Template> = Array::with_max_entries(1, 0);

#[map(name = "LAB_TARGET")]
static LAB_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[xdp]
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

#[xdp]
pub fn lab_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp]
pub fn lab_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

const ETH_LEN: usize = 14;

#[inline(always)]
fn swap<const N: usize>(ctx: &XdpContext, a: usize, b: usize) -> Option<()> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + b + N > end || start + a + N > end {
        return None;
    }
    let pa = (start + a) as *mut [u8; N];
    let pb = (start + b) as *mut [u8; N];
    // SAFETY: both ranges were bounds-checked against data_end above.
    unsafe { core::ptr::swap(pa, pb) };
    Some(())
}

#[xdp]
pub fn lab_swap_tx(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + ETH_LEN > ctx.data_end() {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: 14 bytes checked above.
    let proto = unsafe { u16::from_be(*((start + 12) as *const u16)) };
    let ok = swap::<6>(&ctx, 0, 6).and_then(|()| match proto {
        0x0800 => swap::<4>(&ctx, ETH_LEN + 12, ETH_LEN + 16)
            .and_then(|()| swap::<2>(&ctx, ETH_LEN + 20, ETH_LEN + 22)),
        0x86dd => swap::<16>(&ctx, ETH_LEN + 8, ETH_LEN + 24)
            .and_then(|()| swap::<2>(&ctx, ETH_LEN + 40, ETH_LEN + 42)),
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
