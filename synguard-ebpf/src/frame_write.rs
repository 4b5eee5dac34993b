//! Writing the SYN-ACK into the frame through packet pointers, in place of building it in a
//! scratch buffer and storing it with `bpf_xdp_store_bytes` (that helper call and the kernel's
//! generic copy cost about 15-20 ns per SYN, measured with `synguard-bench`).
//!
//! Each (L2 length, IP version) layout has its own straight-line copy, so every offset but the
//! options' is a constant. Verifier workarounds used here (docs/verifier.md, "Replies written
//! with packet stores"):
//! - one bounds check covers the Ethernet, IP and fixed TCP headers (a constant length per
//!   layout), then each option word has its own check on a pointer at a constant offset;
//! - the stores are BPF assembly, one instruction each: packet data has no alignment LLVM could
//!   prove, and it splits every store it cannot prove aligned into single bytes (see
//!   `parse::copy_words` for the loads). The kernel allows unaligned packet accesses unless the
//!   program is loaded with `BPF_F_STRICT_ALIGNMENT`, which synguard never sets. The sources are
//!   8-byte aligned (stack and map memory, whose alignment the verifier does check for the stack).

use aya_ebpf::programs::XdpContext;

use crate::parse::{self, IPV4_LEN, IPV6_LEN, TCP_LEN};

/// One unaligned packet store of the value's low bytes, `st!(u32, base, offset, value)`, as one
/// BPF instruction with the offset in it (see the module comment).
///
/// Safety: the bytes must be inside the packet, checked on `base` plus a constant.
macro_rules! st {
    ($size:ident, $p:expr, $off:tt, $v:expr) => {
        core::arch::asm!(
            concat!("*(", stringify!($size), " *)({p} + {off}) = {v}"),
            p = in(reg) $p,
            off = const $off,
            v = in(reg) $v,
            options(nostack, preserves_flags),
        )
    };
}

/// The SYN's Ethernet header and VLAN tags, 8-byte aligned so that its pieces are read with
/// aligned loads.
#[repr(C, align(8))]
pub struct Eth([u8; 22]);

impl Eth {
    /// The frame's first 22 bytes (every frame `parse` accepted as TCP is longer).
    #[inline(always)]
    pub fn read(ctx: &XdpContext) -> Option<Eth> {
        parse::load(ctx, 0).map(Eth)
    }

    #[inline(always)]
    fn u16_at(&self, off: usize) -> u64 {
        // SAFETY: callers pass even offsets below 21 into an 8-byte aligned array.
        unsafe { core::ptr::read(self.0.as_ptr().add(off) as *const u16) as u64 }
    }

    #[inline(always)]
    fn u32_at(&self, off: usize) -> u64 {
        // SAFETY: callers pass offsets that are multiples of 4, below 19.
        unsafe { core::ptr::read(self.0.as_ptr().add(off) as *const u32) as u64 }
    }
}

/// The frame was shorter than the reply (cannot happen after `synack::resize` made it exactly
/// the reply's length; the checks are for the verifier). Part of the frame may be written.
pub struct TooShort;

/// Writes the reply over a frame already resized to its length: Ethernet with the addresses
/// swapped and the tags kept, `ip` (the fresh IP header, 20 or 40 bytes) and `tcp` (the TCP header
/// with options and checksum, `tcp_len` bytes).
#[inline(always)]
pub fn reply(
    ctx: &XdpContext,
    eth: &Eth,
    l2_len: u64,
    ipv6: bool,
    ip: &[u64; 5],
    tcp: &[u64; 5],
    tcp_len: u64,
) -> Result<(), TooShort> {
    match (ipv6, l2_len) {
        (false, 14) => layout::<14, { IPV4_LEN as usize }>(ctx, eth, ip, tcp, tcp_len),
        (false, 18) => layout::<18, { IPV4_LEN as usize }>(ctx, eth, ip, tcp, tcp_len),
        (false, 22) => layout::<22, { IPV4_LEN as usize }>(ctx, eth, ip, tcp, tcp_len),
        (true, 14) => layout::<14, { IPV6_LEN as usize }>(ctx, eth, ip, tcp, tcp_len),
        (true, 18) => layout::<18, { IPV6_LEN as usize }>(ctx, eth, ip, tcp, tcp_len),
        (true, 22) => layout::<22, { IPV6_LEN as usize }>(ctx, eth, ip, tcp, tcp_len),
        _ => Err(TooShort),
    }
}

#[inline(always)]
fn layout<const L2: usize, const IP: usize>(
    ctx: &XdpContext,
    eth: &Eth,
    ip: &[u64; 5],
    tcp: &[u64; 5],
    tcp_len: u64,
) -> Result<(), TooShort> {
    let fixed = (L2 + IP) as u64 + TCP_LEN;
    let data = ctx.data() as u64;
    let end = ctx.data_end() as u64;
    if data + fixed > end {
        return Err(TooShort);
    }
    // SAFETY (every store below up to the options): within [data, data + fixed), checked above.
    unsafe {
        // Destination MAC = the SYN's source, source MAC = the SYN's destination.
        st!(u16, data, 0, eth.u16_at(6));
        st!(u32, data, 2, eth.u32_at(8));
        st!(u32, data, 6, eth.u32_at(0));
        st!(u16, data, 10, eth.u16_at(4));
        // The ethertype or TPID, and each tag with the type after it, as they came.
        st!(u16, data, 12, eth.u16_at(12));
        if L2 >= 18 {
            st!(u16, data, 14, eth.u16_at(14));
            st!(u16, data, 16, eth.u16_at(16));
        }
        if L2 >= 22 {
            st!(u16, data, 18, eth.u16_at(18));
            st!(u16, data, 20, eth.u16_at(20));
        }
        let ip_at = data + L2 as u64;
        st!(u64, ip_at, 0, ip[0]);
        st!(u64, ip_at, 8, ip[1]);
        if IP == IPV6_LEN as usize {
            st!(u64, ip_at, 16, ip[2]);
            st!(u64, ip_at, 24, ip[3]);
            st!(u64, ip_at, 32, ip[4]);
        } else {
            // The IPv4 header's last 4 bytes (little-endian: the low half of the word).
            st!(u32, ip_at, 16, ip[2]);
        }
        let tcp_at = ip_at + IP as u64;
        st!(u64, tcp_at, 0, tcp[0]);
        st!(u64, tcp_at, 8, tcp[1]);
        st!(u32, tcp_at, 16, tcp[2]);
    }
    // The options, a word at a time from TCP byte 20 (`opts` below): the upper half of `tcp[2]`,
    // then `tcp[3]` and `tcp[4]` in halves (little-endian word order). Each word has its own
    // bounds check, on `opts` plus a constant.
    let opts = data + fixed;
    let opt_len = tcp_len - TCP_LEN;
    macro_rules! option_word {
        ($k:literal, $v:expr) => {
            if opt_len <= 4 * $k {
                return Ok(());
            }
            if opts + 4 * $k + 4 > end {
                return Err(TooShort);
            }
            // SAFETY: checked just above, on `opts` plus a constant.
            unsafe { st!(u32, opts, (4 * $k), $v) };
        };
    }
    option_word!(0, tcp[2] >> 32);
    option_word!(1, tcp[3]);
    option_word!(2, tcp[3] >> 32);
    option_word!(3, tcp[4]);
    option_word!(4, tcp[4] >> 32);
    Ok(())
}
