//! Lab-only XDP programs, never attached by `synguard run`:
//! - `lab_pass`: veth needs an XDP program on the peer for XDP_TX frames to arrive reliably
//!   (platform notes), so the lab attaches this on the far side of the server's veth.
//! - `lab_swap_tx`: swaps MAC and IPv4/IPv6 addresses and TCP ports and returns XDP_TX: the floor
//!   `cargo xtask bench` measures synguard against.
//! - `lab_drop`: XDP_DROP for everything.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

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
