//! Writing a finished reply into the frame through packet pointers, in place of
//! `bpf_xdp_store_bytes` (a helper call and the kernel's generic copy cost about 15-20 ns per
//! SYN, measured with `synguard-bench`).
//!
//! Verifier workarounds used here (docs/verifier.md, "Replies written with packet stores"):
//! - one bounds check covers the first [`FIRST`] bytes (every reply is at least that long), then
//!   each further word has its own check on a pointer at a constant offset from `data`, and the
//!   last word, at a variable offset, is checked on its own pointer;
//! - the stores and the loads from the scratch buffer are BPF assembly, one instruction each:
//!   LLVM splits every access it cannot prove aligned into single bytes (see
//!   `parse::copy_words`); the kernel allows unaligned packet and map value accesses unless the
//!   program is loaded with `BPF_F_STRICT_ALIGNMENT`, which synguard never sets.

use aya_ebpf::programs::XdpContext;

/// Shortest reply: Ethernet, IPv4, TCP without options.
pub const MIN_LEN: u64 = 14 + 20 + 20;
/// Bytes written after the single first check: the whole words below [`MIN_LEN`].
const FIRST: u64 = MIN_LEN / 8 * 8;
/// Words past [`FIRST`] that a reply of at most `FRAME_MAX` bytes can still need.
const MORE_WORDS: u64 = 7;

/// The frame was shorter than the reply (cannot happen after `synack::resize` made it exactly
/// `len` bytes; the checks are for the verifier).
pub struct TooShort;

/// Copies `len` bytes from `src` over the frame's first `len` bytes, a word at a time, the last
/// word overlapping the one before it where `len` is not a multiple of 8.
///
/// `len` must be in `[MIN_LEN, FIRST + 8 * MORE_WORDS]`, checked by the caller on this
/// register; `src` must point at `len` initialised bytes of map memory. On `TooShort` part of
/// the frame may already be written.
#[inline(always)]
pub fn copy_to_frame(ctx: &XdpContext, src: *const u8, len: u64) -> Result<(), TooShort> {
    let data = ctx.data() as u64;
    let end = ctx.data_end() as u64;
    if data + FIRST > end {
        return Err(TooShort);
    }
    let mut off = 0;
    while off < FIRST {
        // SAFETY: [data, data + FIRST) checked above; `src` holds `len` >= FIRST bytes.
        unsafe { store_u64(data + off, load_u64(src as u64 + off)) };
        off += 8;
    }
    let mut i = 0;
    while i < MORE_WORDS {
        let off = FIRST + 8 * i;
        if off + 8 > len {
            break;
        }
        if data + off + 8 > end {
            return Err(TooShort);
        }
        // SAFETY: checked just above on this pointer; off + 8 <= len bytes of `src`.
        unsafe { store_u64(data + off, load_u64(src as u64 + off)) };
        i += 1;
    }
    // The last word, overlapping: `len` >= MIN_LEN > 8, so `off` >= 0.
    let off = len - 8;
    // Verifier workaround: opaque to LLVM, which would otherwise check `data + len` and store at
    // that pointer minus 8, a negative offset from the checked pointer that the verifier refuses.
    let p = opaque(data + off);
    if p + 8 > end {
        return Err(TooShort);
    }
    // SAFETY: checked just above on this pointer; within `len` bytes of `src`.
    unsafe { store_u64(p, load_u64(src as u64 + off)) };
    Ok(())
}

/// `v`, through an assembly move LLVM cannot see into (an empty block left two line-info
/// records at one instruction, which the kernel refuses: "Invalid line_info").
#[inline(always)]
fn opaque(mut v: u64) -> u64 {
    // SAFETY: a register move; it only hides the value from the optimiser.
    unsafe {
        core::arch::asm!("{v} = {v}", v = inout(reg) v, options(pure, nomem, nostack, preserves_flags))
    };
    v
}

/// One unaligned 8-byte load from map memory.
///
/// # Safety
/// The 8 bytes at `p` must be readable map memory.
#[inline(always)]
unsafe fn load_u64(p: u64) -> u64 {
    let v: u64;
    // SAFETY: caller's promise; the verifier checks it again.
    unsafe {
        core::arch::asm!(
            "{v} = *(u64 *)({p} + 0)",
            p = in(reg) p,
            v = lateout(reg) v,
            options(readonly, nostack, preserves_flags),
        )
    };
    v
}

/// One unaligned 8-byte store into the packet.
///
/// # Safety
/// The 8 bytes at `p` must be inside the packet, checked on a pointer this one derives from by
/// a constant offset.
#[inline(always)]
unsafe fn store_u64(p: u64, v: u64) {
    // SAFETY: caller's promise; the verifier checks it again.
    unsafe {
        core::arch::asm!(
            "*(u64 *)({p} + 0) = {v}",
            p = in(reg) p,
            v = in(reg) v,
            options(nostack, preserves_flags),
        )
    };
}
