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
        store_u16(data, eth.u16_at(6));
        store_u32(data + 2, eth.u32_at(8));
        store_u32(data + 6, eth.u32_at(0));
        store_u16(data + 10, eth.u16_at(4));
        // The ethertype or TPID, and each tag with the type after it, as they came.
        store_u16(data + 12, eth.u16_at(12));
        if L2 >= 18 {
            store_u16(data + 14, eth.u16_at(14));
            store_u16(data + 16, eth.u16_at(16));
        }
        if L2 >= 22 {
            store_u16(data + 18, eth.u16_at(18));
            store_u16(data + 20, eth.u16_at(20));
        }
        let ip_at = data + L2 as u64;
        let mut i = 0;
        while i + 8 <= IP {
            store_u64(ip_at + i as u64, ip[i / 8]);
            i += 8;
        }
        if i < IP {
            // The IPv4 header's last 4 bytes (little-endian: the low half of the word).
            store_u32(ip_at + i as u64, ip[i / 8]);
        }
        let tcp_at = ip_at + IP as u64;
        store_u64(tcp_at, tcp[0]);
        store_u64(tcp_at + 8, tcp[1]);
        store_u32(tcp_at + 16, tcp[2]);
    }
    // The options, a word at a time from TCP byte 20: the upper half of `tcp[2]`, then `tcp[3]`
    // and `tcp[4]` in halves (little-endian word order).
    let words = [tcp[2] >> 32, tcp[3], tcp[3] >> 32, tcp[4], tcp[4] >> 32];
    let opt_len = tcp_len - TCP_LEN;
    let mut k = 0;
    while k < words.len() {
        let off = 4 * k as u64;
        if off >= opt_len {
            break;
        }
        let p = data + fixed + off;
        if p + 4 > end {
            return Err(TooShort);
        }
        // SAFETY: checked just above on this pointer.
        unsafe { store_u32(p, words[k]) };
        k += 1;
    }
    Ok(())
}

macro_rules! packet_store {
    ($name:ident, $size:literal) => {
        /// One unaligned packet store of the value's low bytes (see the module comment).
        ///
        /// # Safety
        /// The bytes must be inside the packet, checked on a pointer this one derives from by a
        /// constant offset.
        #[inline(always)]
        unsafe fn $name(p: u64, v: u64) {
            // SAFETY: a store the caller proved in bounds; the verifier checks it again.
            unsafe {
                core::arch::asm!(
                    concat!("*(", $size, " *)({p} + 0) = {v}"),
                    p = in(reg) p,
                    v = in(reg) v,
                    options(nostack, preserves_flags),
                )
            };
        }
    };
}
packet_store!(store_u64, "u64");
packet_store!(store_u32, "u32");
packet_store!(store_u16, "u16");
