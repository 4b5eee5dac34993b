//! Step 1, parse: a header cursor over Ethernet, up to two VLAN tags, IPv4 (with options) or
//! IPv6 (with a bounded walk over extension headers), and TCP. Anything that does not parse to a
//! TCP header comes back as the reason it passes.
//!
//! In two parts, so that traffic to ports synguard does not protect pays for no more than it
//! needs: [`locate`] checks every header where it is in the frame and finds the destination
//! port; only a segment to a protected port then has its fixed headers copied into the
//! workspace ([`copy`]), through the pointers `locate` checked.
//!
//! Verifier workarounds used here:
//! - every read goes through a pointer bounds-checked on itself ([`load`], or a header's
//!   [`View`]): a packet pointer plus a variable offset has no proven range of its own;
//! - offsets and lengths are u64: with u32 the checked and the used registers can differ;
//! - the frame length is read through a volatile local, because LLVM may rewrite
//!   `data_end - data` into arithmetic on `data_end`, which the verifier rejects.
//!
//! Multi-buffer frames (jumbo frames; the programs are loaded as `xdp.frags`): packet pointers
//! reach only the first buffer, which holds the headers on every driver synguard knows (a
//! veth's first buffer is a page; NICs put at least the first 256 bytes in it). Every header
//! read is bounds-checked against that buffer. Only the IP length check needs the whole frame,
//! and only a frame whose IP packet ends past its first buffer pays the helper call that
//! measures it (`bpf_xdp_get_buff_len`).

use aya_ebpf::{helpers::generated::bpf_xdp_get_buff_len, programs::XdpContext};
use synguard_common::{maps::flow_hash_of, reason::Reason};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const IPPROTO_TCP: u8 = 6;
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
pub const IPV6_FRAGMENT: u8 = 44;
const IPV6_DSTOPTS: u8 = 60;

pub const ETH_LEN: u64 = 14;
pub const VLAN_LEN: u64 = 4;
pub const IPV4_LEN: u64 = 20;
pub const IPV6_LEN: u64 = 40;
pub const TCP_LEN: u64 = 20;
/// Largest offset `load` reads at. XDP sees a frame's first buffer, at most a page (or a jumbo
/// frame's), and the verifier marks a bounds check only while offset + size stays within
/// `MAX_PACKET_OFF` (0xffff, `find_good_pkt_pointers`).
const MAX_FRAME: u64 = 0x7fff;
/// Bound of a whole frame's length, all buffers (a multi-buffer frame holds at most 17 pages
/// after its first, `MAX_SKB_FRAGS`).
const MAX_WHOLE_FRAME: u64 = 0x1_ffff;

/// The fixed IP header of a segment: IPv4 (first 20 bytes; options are not kept) or IPv6. A
/// union rather than a 40-byte array so that the IPv4 case does not pay for clearing bytes it
/// never reads (LLVM turned that into a call to a byte-wise `memset`).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub union IpHeader {
    pub v4: [u8; 20],
    pub v6: [u8; 40],
}

/// A parsed TCP segment: fixed headers copied out of the frame, offsets into it.
///
/// 8-byte aligned so that LLVM copies and clears the header arrays a word at a time; with the
/// arrays' natural alignment of 1 it emits byte loops and calls to a byte-wise `memset`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Packet {
    /// Which member is valid is `ipv6`.
    pub ip: IpHeader,
    /// TCP fixed header.
    pub tcp: [u8; 20],
    /// Ethernet plus VLAN tags: 14, 18 or 22.
    l2_len: u64,
    tcp_off: u64,
    /// TCP header length with options (data offset * 4).
    tcp_len: u64,
    /// The whole frame, every buffer of a multi-buffer frame.
    frame_len: u64,
    pub ipv6: bool,
}

/// The lengths and offsets come back masked to the widths they can have. Verifier workaround:
/// the path after parsing reads the packet from map memory (`workspace::Workspace::pkt`), whose values
/// the verifier does not track; a mask gives each an unsigned bound it proves at once (a range
/// check instead may be turned by LLVM into a signed comparison that leaves the minimum
/// negative). Parsing guaranteed the same bounds, so the masks change nothing.
impl Packet {
    /// Ethernet plus VLAN tags: 14, 18 or 22.
    #[inline(always)]
    pub fn l2_len(&self) -> u64 {
        self.l2_len & 0x1f
    }

    /// Where the TCP header starts in the frame.
    #[inline(always)]
    pub fn tcp_off(&self) -> u64 {
        self.tcp_off & MAX_FRAME
    }

    /// TCP header length with options (data offset * 4).
    #[inline(always)]
    pub fn tcp_len(&self) -> u64 {
        self.tcp_len & 0x3c
    }

    /// The whole frame's length, every buffer included.
    #[inline(always)]
    pub fn frame_len(&self) -> u64 {
        self.frame_len & MAX_WHOLE_FRAME
    }

    /// The IPv4 header; only for `!ipv6` packets.
    pub fn ip4(&self) -> &[u8; 20] {
        // SAFETY: `copy` wrote `v4` for IPv4 packets; every byte of it is initialised, and for
        // IPv6 packets the first 20 bytes are initialised too.
        unsafe { &self.ip.v4 }
    }

    /// The IPv6 header; only for `ipv6` packets.
    pub fn ip6(&self) -> &[u8; 40] {
        // SAFETY: `copy` wrote `v6` for IPv6 packets; callers check `ipv6` first.
        unsafe { &self.ip.v6 }
    }

    /// The source and destination addresses as the header's words in memory (network) order,
    /// source first: IPv4's in the first two, the rest zero. The one place that says where a
    /// segment's addresses are; `u32::from_be` of a word is it as a number.
    #[inline(always)]
    pub fn addresses(&self) -> [u32; 8] {
        if self.ipv6 {
            let w = |i| self.ip6_raw(i);
            [w(2), w(3), w(4), w(5), w(6), w(7), w(8), w(9)]
        } else {
            [self.ip4_raw(3), self.ip4_raw(4), 0, 0, 0, 0, 0, 0]
        }
    }

    /// Hash of the 4-tuple as the client sends it (`synguard_common::maps::flow_hash_of`).
    #[inline(always)]
    pub fn flow_hash(&self) -> u64 {
        flow_hash_of(self.ipv6, &self.addresses(), self.sport(), self.dport())
    }

    /// The TCP header's 32-bit word `i` as a number (the wire's big-endian order undone): 0 is
    /// source port << 16 | destination port, 1 the sequence number, 2 the acknowledgment
    /// number. Codegen workaround: read as one aligned word (`tcp` is 8-aligned, asserted in
    /// `synack.rs`); from byte arrays, LLVM loaded some of these fields a byte at a time and
    /// joined them with shifts on the SYN path.
    #[inline(always)]
    pub fn tcp_word(&self, i: usize) -> u32 {
        let words = self.tcp.as_ptr() as *const u32;
        // SAFETY: `i` < 5 at every call site (a constant): within the 20 bytes, 4-aligned.
        u32::from_be(unsafe { words.add(i % 5).read() })
    }

    /// The IPv4 header's 32-bit word `i` as its bytes lie in memory (network order): 3 is the
    /// source address, 4 the destination ([`Packet::addresses`]). Codegen workaround: from a byte array, whose alignment LLVM
    /// does not know, the BPF backend loads a word a byte at a time; this is one aligned load.
    #[inline(always)]
    fn ip4_raw(&self, i: usize) -> u32 {
        let words = self.ip4().as_ptr() as *const u32;
        // SAFETY: as in `tcp_word`: the header is the 8-aligned first field.
        unsafe { words.add(i % 5).read() }
    }

    /// The IPv6 header's 32-bit word `i` as its bytes lie in memory, as [`Packet::ip4_raw`]: 2
    /// to 5 are the source address, 6 to 9 the destination (the flow hash of an IPv6 segment
    /// loaded its 32 address bytes one at a time).
    #[inline(always)]
    fn ip6_raw(&self, i: usize) -> u32 {
        let words = self.ip6().as_ptr() as *const u32;
        // SAFETY: as in `tcp_word`, within the 40 bytes.
        unsafe { words.add(i % 10).read() }
    }

    pub fn dport(&self) -> u16 {
        self.tcp_word(0) as u16
    }

    pub fn sport(&self) -> u16 {
        (self.tcp_word(0) >> 16) as u16
    }

    pub fn flags(&self) -> u8 {
        self.tcp[13]
    }

    pub fn seq(&self) -> u32 {
        self.tcp_word(1)
    }

    pub fn ack(&self) -> u32 {
        self.tcp_word(2)
    }
}

/// Length of the frame's first buffer (all of it unless the frame is a multi-buffer one),
/// through a volatile local (see the module comment).
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> u64 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    // SAFETY: reading a local we own.
    unsafe { core::ptr::read_volatile(&len) }
}

/// Copies `N` bytes at `off` out of the frame, if they are all inside it.
#[inline(always)]
pub fn load<const N: usize>(ctx: &XdpContext, off: u64) -> Option<[u8; N]> {
    Some(load_between(ctx.data() as u64, ctx.data_end() as u64, off)?.0)
}

/// [`load`] for any program with direct packet access: `start` and `end` are its context's
/// `data` and `data_end` (for TC, the skb's linear data).
#[inline(always)]
pub fn load_between<const N: usize>(start: u64, end: u64, off: u64) -> Option<Words<N>> {
    let mut out = Words([0; N]);
    copy_between(start, end, off, &mut out.0)?;
    Some(out)
}

/// Copies `N` bytes at `off` of the packet between `start` and `end` into `dst` (8-byte
/// aligned, so that the stores are whole words), if they are all inside it.
#[inline(always)]
fn copy_between<const N: usize>(start: u64, end: u64, off: u64, dst: &mut [u8; N]) -> Option<()> {
    // Verifier workaround: offsets read back from map memory (the kept `Packet`) carry no
    // bounds, and a packet pointer may only move by a bounded amount.
    if off > MAX_FRAME {
        return None;
    }
    let p = start + off;
    if p + N as u64 > end {
        return None;
    }
    // SAFETY: [p, p + N) is inside the packet, checked just above on this pointer.
    unsafe { copy_words(p, dst) };
    Some(())
}

/// The frame's bounds, read once for a run of loads at offsets from one base (the SYN's option
/// words): each load then costs an add, one bounds check and the load, where [`load`] reads
/// the context's pointers again and checks the offset's range each time.
pub struct Frame {
    start: u64,
    end: u64,
}

impl Frame {
    #[inline(always)]
    pub fn of(ctx: &XdpContext) -> Self {
        Frame {
            start: ctx.data() as u64,
            end: ctx.data_end() as u64,
        }
    }

    /// The four bytes at `base + pos` as a little-endian word (the frame's byte order in
    /// memory), if they are inside the frame. `base` is at most `MAX_FRAME` ([`Base::new`]) and
    /// `pos` must be small: the verifier lets a packet pointer move only by a bounded amount.
    #[inline(always)]
    pub fn u32_le(&self, base: Base, pos: u64) -> Option<u32> {
        let p = self.start + base.0 + pos;
        if p + 4 > self.end {
            return None;
        }
        // SAFETY: [p, p + 4) is inside the packet, checked just above on this pointer.
        Some(unsafe { load_u32(p) })
    }
}

/// An offset into the frame known to be within `MAX_FRAME`, for [`Frame::u32_le`].
#[derive(Clone, Copy)]
pub struct Base(u64);

impl Base {
    /// `off`, if it is within `MAX_FRAME`. Verifier workaround: offsets read back from map
    /// memory (the kept `Packet`) carry no bounds.
    #[inline(always)]
    pub fn new(off: u64) -> Option<Self> {
        (off <= MAX_FRAME).then_some(Base(off))
    }
}

/// An 8-byte aligned byte array: the stores into it can be whole words, and so can the loads
/// from it ([`Words::u32_ne`]).
#[repr(C, align(8))]
pub struct Words<const N: usize>(pub [u8; N]);

impl<const N: usize> Words<N> {
    /// The four bytes at `i` (a multiple of four) as one aligned load, in memory order (network
    /// order for a header's fields). Codegen workaround: from a byte array the BPF backend
    /// loads a word a byte at a time.
    #[inline(always)]
    pub fn u32_ne(&self, i: usize) -> u32 {
        let words = self.0.as_ptr() as *const u32;
        // SAFETY: the array is 8-aligned and the index is reduced into it.
        unsafe { words.add((i / 4) % (N / 4)).read() }
    }
}

/// Copies `N` bytes from packet address `p` a word at a time where it can.
///
/// Codegen workaround: packet data has no alignment Rust could promise, and the BPF backend
/// turns every load it cannot prove aligned into single-byte loads, shifts and ors (a 20-byte
/// header took 40 instructions). The loads here are written in BPF assembly, one instruction
/// each whatever the address: the kernel allows unaligned packet loads where the architecture
/// does them efficiently (`check_pkt_ptr_alignment` is strict only under
/// `BPF_F_STRICT_ALIGNMENT`, which synguard never sets) and the JITs emit plain moves. The
/// stores go to the stack, whose alignment the verifier does check: `dst` is word-aligned
/// (`Words`).
///
/// # Safety
/// `[p, p + N)` must be inside the packet, checked on this very pointer.
#[inline(always)]
unsafe fn copy_words<const N: usize>(p: u64, dst: &mut [u8; N]) {
    let mut i = 0;
    while i + 8 <= N {
        // SAFETY: within the checked range (caller).
        let w = unsafe { load_u64(p + i as u64) };
        dst[i..i + 8].copy_from_slice(&w.to_ne_bytes());
        i += 8;
    }
    if i + 4 <= N {
        // SAFETY: as above.
        let w = unsafe { load_u32(p + i as u64) };
        dst[i..i + 4].copy_from_slice(&w.to_ne_bytes());
        i += 4;
    }
    if i + 2 <= N {
        // SAFETY: as above.
        let w = unsafe { load_u16(p + i as u64) };
        dst[i..i + 2].copy_from_slice(&w.to_ne_bytes());
        i += 2;
    }
    if i < N {
        // SAFETY: as above.
        dst[i] = unsafe { *((p + i as u64) as *const u8) };
    }
}

macro_rules! packet_load {
    ($name:ident, $ty:ty, $size:literal) => {
        /// One unaligned packet load (see [`copy_words`]).
        ///
        /// # Safety
        /// The bytes must be inside the packet, checked on a pointer this one derives from by a
        /// constant offset.
        #[inline(always)]
        unsafe fn $name(p: u64) -> $ty {
            let v: u64;
            // SAFETY: a load the caller proved in bounds; the verifier checks it again.
            unsafe {
                core::arch::asm!(
                    concat!("{v} = *(", $size, " *)({p} + 0)"),
                    p = in(reg) p,
                    v = lateout(reg) v,
                    options(pure, readonly, nostack, preserves_flags),
                )
            };
            v as $ty
        }
    };
}
packet_load!(load_u64, u64, "u64");
packet_load!(load_u32, u32, "u32");
packet_load!(load_u16, u16, "u16");
packet_load!(load_u8, u8, "u8");

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Walks Ethernet and up to two 802.1Q/802.1ad tags: (ethertype, L2 length). Only the
/// ethertype fields are read (the MAC addresses are `classify`'s, read there when a packet gets
/// that far): two bytes each, where a copy of the 14-byte header cost three loads, three stores
/// to the stack and two byte loads back.
#[inline(always)]
fn l2(ctx: &XdpContext) -> Result<(u16, u64), Reason> {
    let mut proto = ethertype(ctx, ETH_LEN)?;
    let mut len = ETH_LEN;
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        proto = ethertype(ctx, len + VLAN_LEN)?;
        len += VLAN_LEN;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            proto = ethertype(ctx, len + VLAN_LEN)?;
            len += VLAN_LEN;
        }
    }
    Ok((proto, len))
}

/// The ethertype in the two bytes that end at `end` (the Ethernet header's or a VLAN tag's).
#[inline(always)]
fn ethertype(ctx: &XdpContext, end: u64) -> Result<u16, Reason> {
    let b: [u8; 2] = load(ctx, end - 2).ok_or(Reason::PassMalformedL2)?;
    Ok(be16(b))
}

/// Whether an IP packet that ends at `end` fits in the frame, whose length `frame` is known so
/// far as its first buffer's: a packet that ends past it asks for the whole frame's length
/// (a multi-buffer frame) and updates `frame` to it.
#[inline(always)]
fn ends_within(ctx: &XdpContext, end: u64, frame: &mut u64) -> bool {
    if end <= *frame {
        return true;
    }
    // SAFETY: helper call on our own context.
    let whole = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    if end <= whole {
        *frame = whole;
        return true;
    }
    false
}

/// IPv4: checks the fixed header in the frame; returns the offset of the TCP header and the end
/// of the IP packet.
#[inline(always)]
fn ipv4(ctx: &XdpContext, off: u64, frame: &mut u64) -> Result<(View<20>, u64, u64), Reason> {
    let h = View::<20>::at(ctx, off).ok_or(Reason::PassMalformedIp)?;
    let ver_ihl = h.u8(0);
    let ihl = (ver_ihl & 0x0f) as u64 * 4;
    let total = h.be16(2) as u64;
    if ver_ihl >> 4 != 4 || ihl < IPV4_LEN || total < ihl || !ends_within(ctx, off + total, frame) {
        return Err(Reason::PassMalformedIp);
    }
    // More-fragments flag or a fragment offset: ports are only in the first fragment.
    if h.be16(6) & 0x3fff != 0 {
        return Err(Reason::PassFragment);
    }
    if h.u8(9) != IPPROTO_TCP {
        return Err(Reason::PassNotTcp);
    }
    Ok((h, off + ihl, off + total))
}

/// Whether `nh` is an IPv6 extension header the parsers skip (hop-by-hop, routing,
/// destination options; a fragment header ends the walk).
#[inline(always)]
pub fn is_v6_ext(nh: u8) -> bool {
    nh == IPV6_HOPOPTS || nh == IPV6_ROUTING || nh == IPV6_DSTOPTS
}

/// One extension header: (next header, offset after it).
#[inline(always)]
fn v6_ext(ctx: &XdpContext, nh: u8, off: u64) -> Result<(u8, u64), Reason> {
    if !is_v6_ext(nh) {
        return Ok((nh, off));
    }
    let e: [u8; 2] = load(ctx, off).ok_or(Reason::PassMalformedIp)?;
    Ok((e[0], off + (e[1] as u64 + 1) * 8))
}

/// IPv6: checks the fixed header in the frame and skips up to four hop-by-hop, routing and
/// destination-options headers (an unrolled, fixed sequence for the verifier); returns the
/// offset of the TCP header and the end of the IP packet.
#[inline(always)]
fn ipv6(ctx: &XdpContext, off: u64, frame: &mut u64) -> Result<(View<40>, u64, u64), Reason> {
    let h = View::<40>::at(ctx, off).ok_or(Reason::PassMalformedIp)?;
    let payload = h.be16(4) as u64;
    if h.u8(0) >> 4 != 6 || !ends_within(ctx, off + IPV6_LEN + payload, frame) {
        return Err(Reason::PassMalformedIp);
    }
    let (nh, next) = v6_ext(ctx, h.u8(6), off + IPV6_LEN)?;
    let (nh, next) = v6_ext(ctx, nh, next)?;
    let (nh, next) = v6_ext(ctx, nh, next)?;
    let (nh, next) = v6_ext(ctx, nh, next)?;
    if is_v6_ext(nh) {
        return Err(Reason::PassIpv6ExtLimit);
    }
    if nh == IPV6_FRAGMENT {
        return Err(Reason::PassFragment);
    }
    if nh != IPPROTO_TCP {
        return Err(Reason::PassNotTcp);
    }
    Ok((h, next, off + IPV6_LEN + payload))
}

/// Where a TCP segment's headers are in the frame, every check of parsing passed
/// ([`locate`]), and its destination port: what the first decision needs, before anything is
/// copied ([`copy`]).
pub struct Located {
    ip: IpView,
    tcp: View<20>,
    l2_len: u64,
    tcp_off: u64,
    tcp_len: u64,
    pub dport: u16,
}

/// The fixed IP header in the frame, by family.
#[derive(Clone, Copy)]
enum IpView {
    V4(View<20>),
    V6(View<40>),
}

/// Parses a frame whose first buffer is `frame` bytes long ([`frame_len`], read once per packet
/// by the entry point) down to its TCP header, reading the fields it checks in place: traffic
/// to a port that is not protected leaves after one more load ([`Located::dport`]) and copies
/// nothing. When the IP packet goes on past the first buffer, `frame` becomes the whole frame's
/// length, whatever the outcome (the byte counters count it).
#[inline(always)]
pub fn locate(ctx: &XdpContext, frame: &mut u64) -> Result<Located, Reason> {
    let (proto, l2_len) = l2(ctx)?;
    let (ip, tcp_off, ip_end) = match proto {
        ETH_P_IP => {
            let (h, tcp_off, ip_end) = ipv4(ctx, l2_len, frame)?;
            (IpView::V4(h), tcp_off, ip_end)
        }
        ETH_P_IPV6 => {
            let (h, tcp_off, ip_end) = ipv6(ctx, l2_len, frame)?;
            (IpView::V6(h), tcp_off, ip_end)
        }
        _ => return Err(Reason::PassNotIp),
    };
    let tcp = View::<20>::at(ctx, tcp_off).ok_or(Reason::PassMalformedTcp)?;
    let tcp_len = (tcp.u8(12) >> 4) as u64 * 4;
    // The IP end is within the frame (checked above), so this also keeps the header in the frame.
    if tcp_len < TCP_LEN || tcp_off + tcp_len > ip_end {
        return Err(Reason::PassMalformedTcp);
    }
    Ok(Located {
        ip,
        tcp,
        l2_len,
        tcp_off,
        tcp_len,
        dport: tcp.be16(2),
    })
}

/// Copies the located segment's fixed headers into `out` (this CPU's workspace,
/// `workspace.rs`: once, straight where the rest of the path and the own-cookie program read
/// them), through the pointers `locate` checked. `frame`: the frame's length as `locate` left
/// it.
#[inline(always)]
pub fn copy(at: &Located, frame: u64, out: &mut Packet) {
    // SAFETY: writing one member of a union of byte arrays.
    let ipv6 = unsafe {
        match at.ip {
            IpView::V4(h) => {
                h.copy_to(&mut out.ip.v4);
                false
            }
            IpView::V6(h) => {
                h.copy_to(&mut out.ip.v6);
                true
            }
        }
    };
    at.tcp.copy_to(&mut out.tcp);
    out.l2_len = at.l2_len;
    out.tcp_off = at.tcp_off;
    out.tcp_len = at.tcp_len;
    out.frame_len = frame;
    out.ipv6 = ipv6;
    // Codegen workaround: without this, LLVM keeps the words it just stored in registers and
    // takes the rest of the path's header fields out of them by shifts; with the registers
    // short, it spilled a dozen of those bytes to the stack. An empty block that may write
    // memory makes later reads load from the workspace, as they did when parsing copied first.
    // SAFETY: no instruction.
    unsafe { core::arch::asm!("", options(nostack, preserves_flags)) };
}

/// `N` bytes of the frame at a checked offset, read in place a field at a time: one bounds
/// check for the header, then loads at constant offsets from the checked pointer.
#[derive(Clone, Copy)]
struct View<const N: usize>(u64);

impl<const N: usize> View<N> {
    #[inline(always)]
    fn at(ctx: &XdpContext, off: u64) -> Option<Self> {
        let end = ctx.data_end() as u64;
        // Verifier workaround: as in `load_into`.
        if off > MAX_FRAME {
            return None;
        }
        let p = ctx.data() as u64 + off;
        (p + N as u64 <= end).then_some(View(p))
    }

    #[inline(always)]
    fn u8(self, i: usize) -> u8 {
        debug_assert!(i < N);
        // SAFETY: `i` < N (a constant at every call site), inside the checked range.
        unsafe { load_u8(self.0 + (i % N) as u64) }
    }

    /// Copies the whole header into `dst`.
    #[inline(always)]
    fn copy_to(self, dst: &mut [u8; N]) {
        // SAFETY: the N bytes at the pointer were checked when the view was made, and the
        // verifier keeps that range with the pointer (in a register or spilled).
        unsafe { copy_words(self.0, dst) }
    }

    /// The big-endian 16-bit field at `i`.
    #[inline(always)]
    fn be16(self, i: usize) -> u16 {
        debug_assert!(i + 2 <= N);
        // SAFETY: `i` + 2 <= N (a constant at every call site), inside the checked range.
        u16::from_be(unsafe { load_u16(self.0 + (i % (N - 1)) as u64) })
    }
}
