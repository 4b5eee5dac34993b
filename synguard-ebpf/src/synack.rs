//! Step 4a, act on a SYN: rewrite the frame in place into a SYN-ACK whose sequence number is a
//! SYN cookie the host kernel will accept, and send it back out of the same interface (XDP_TX).
//!
//! The reply's IP and TCP headers are built in this CPU's workspace (`Scratch`) and written into
//! the frame with packet stores (`frame_write`), after resizing the frame at the head (growing)
//! or the tail (shrinking).
//! Growing the tail fails for most hping3 SYNs on veth for lack of tailroom
//! (docs/veth-and-nics.md); headroom is always there (XDP_PACKET_HEADROOM).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{iphdr, ipv6hdr, tcphdr},
    helpers::generated::{
        bpf_tcp_raw_gen_syncookie_ipv4, bpf_tcp_raw_gen_syncookie_ipv6, bpf_xdp_adjust_head,
        bpf_xdp_adjust_tail, bpf_xdp_get_buff_len,
    },
    programs::XdpContext,
};
use synguard_common::{
    checksum, cookie,
    maps::{Config, HOST_NO_SACK, HOST_NO_TIMESTAMPS, HOST_NO_WSCALE},
    own_cookie,
    reason::Reason,
    synack_words::{self, SynAckOptions, TcpFields},
    tcp::{self, MAX_OPTIONS, SynOptions, WalkState},
};

use crate::{
    clock::Clocks,
    frame_write, own,
    parse::{self, IPV4_LEN, IPV6_LEN, Packet, TCP_LEN},
};

/// The SYN's TCP header with its options, as the cookie helper wants it (`th_len` must equal
/// the data offset).
#[repr(C, align(8))]
pub struct SynHeader {
    base: [u8; 20],
    opts: [u8; MAX_OPTIONS],
}

/// Buffers for building a reply, in this CPU's workspace (`workspace::Workspace::reply`).
/// Verifier workaround: these buffers together with the parsed headers exceed the 512-byte BPF
/// stack, so they live in a per-CPU array map value. Every byte that is read is written first
/// for each packet. Aligned for word-wise copies (see `parse::Packet`).
#[repr(C, align(8))]
pub struct Scratch {
    syn: SynHeader,
    /// The reply's TCP header, as `frame_write` stores it (`synack_words::pack`).
    tcp: [u64; 5],
    /// The reply's IP header: 20 (IPv4) or 40 (IPv6) bytes, packed as `tcp`.
    ip: [u64; 5],
    /// The option walk's state (`tcp::WalkState`: kept in map memory for the verifier).
    walk: WalkState,
    /// The SYN's TCP header length, passed through map memory (`load_syn_header`).
    th_len: u64,
}

/// Answers the SYN in `pkt` with a cookie SYN-ACK. On error the frame is untouched (every
/// failure point but one comes before the resize, the first change to the frame) and the reason
/// says which step failed; the one after it, `DropReplyUnwritten`, drops the frame.
///
/// `scratch`: this CPU's reply buffers; `clocks`: this CPU's clocks, `now_ns` the reading this
/// packet's way took (`Clocks::now_ns`). `own`: where the SYN's options settle (`own::settle`)
/// for an own cookie, none for the kernel's; `Some` or `None` at each call site, so that each
/// program carries only its kind of cookie (`synguard` the kernel's, `synguard_own_xdp` its own:
/// verifying both in one program went past the verifier's 1 M-instruction limit,
/// docs/verifier.md).
#[inline(always)]
pub fn answer(
    ctx: &XdpContext,
    pkt: &Packet,
    scratch: &mut Scratch,
    clocks: &mut Clocks,
    cfg: &Config,
    now_ns: u64,
    own: Option<*mut SynOptions>,
) -> Result<(), Reason> {
    let Scratch {
        syn,
        tcp,
        ip,
        walk,
        th_len,
    } = scratch;
    let (th_len, opts_sum) = load_syn_header(ctx, pkt, syn, th_len)?;
    let (isn, mss, class, ecn, opts) = if let Some(opts_slot) = own {
        let walked = host_options(
            tcp::parse_syn_options_in(&syn.opts, (th_len - TCP_LEN) as usize, walk),
            cfg,
        );
        // SAFETY: the workspace's `opts`, which only this step touches (the caller's).
        let opts = unsafe { own::settle(opts_slot, walked) };
        // Verifier workaround: checked after the option walk, not before it. Before it, the
        // checksum's two outcomes reach the walk with different knowledge of `th_len` and the
        // walk is verified twice over, past the 1 M-instruction limit (docs/verifier.md).
        crate::verify::tcp(pkt, &syn.base, opts_sum, th_len)?;
        let ecn = own::syn_ecn(pkt, cfg);
        let (isn, class) = own::syn_isn(pkt, &opts, ecn, clocks.tai_ns(now_ns));
        (
            isn,
            own_cookie::class_mss(class, pkt.ipv6),
            class,
            ecn,
            opts,
        )
    } else {
        crate::verify::tcp(pkt, &syn.base, opts_sum, th_len)?;
        let (isn, mss) = gen_cookie(pkt, syn, th_len)?;
        let opts = host_options(
            tcp::parse_syn_options_in(&syn.opts, (th_len - TCP_LEN) as usize, walk),
            cfg,
        );
        // ECN survives a kernel cookie only through the timestamp.
        let ecn = opts.tsval.is_some() && own::syn_ecn(pkt, cfg);
        // The kernel's cookie MSS is an entry of the same tables.
        let class = own_cookie::mss_class(mss, pkt.ipv6);
        (isn, mss, class, ecn, opts)
    };
    let c = Cookie {
        isn,
        mss,
        class,
        ecn,
        own: own.is_some(),
    };
    let (mut tcp_w, tcp_len) = tcp_words(pkt, cfg, &opts, &c, clocks.ms_of(now_ns) as u32);
    let (ip_w, pseudo, ip_len) = ip_words(pkt, tcp_len);
    synack_words::set_tcp_checksum(&mut tcp_w, pseudo);
    *tcp = synack_words::pack(&tcp_w);
    *ip = synack_words::pack(&ip_w);
    let eth = frame_write::Eth::read(ctx).ok_or(Reason::ErrLoadBytes)?;
    if !matches!(pkt.l2_len(), 14 | 18 | 22) {
        return Err(Reason::ErrStore);
    }
    let reply_len = pkt.l2_len() + ip_len + tcp_len;
    // The frame's whole length, not `pkt.frame_len()`, which `parse` makes it only when the IP
    // packet ends past the first buffer: the buffers after the first can hold bytes past the IP
    // packet too (an Ethernet trailer; a header-split NIC's data buffer behind a SYN's
    // headers), and the reply must not carry them out as trailing bytes.
    // SAFETY: helper call on our own context.
    let whole = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    // A multi-buffer SYN (one carrying kilobytes of data, `parse.rs`): the reply is written into
    // the first buffer, and shrinking the frame releases the others (`bpf_xdp_frags_shrink_tail`,
    // net/core/filter.c), so that buffer must hold the whole reply.
    let first = parse::frame_len(ctx);
    if whole != first && first < reply_len {
        return Err(Reason::ErrSynShortBuffer);
    }
    // Every failure up to here leaves the frame untouched (a failed resize too).
    resize(ctx, whole, reply_len)?;
    // The frame now has the reply's length but not its bytes: should the writing fail, the
    // frame is dropped (`DropReplyUnwritten`), never sent or passed half-written.
    frame_write::reply(ctx, &eth, pkt.l2_len(), pkt.ipv6, ip, tcp, tcp_len)
        .map_err(|_| Reason::DropReplyUnwritten)
}

/// Monitor mode's part of [`answer`]: what it checks before it changes anything that can turn
/// the SYN away (its TCP header read from the frame, the checksum over it), and nothing else;
/// the frame stays as it came.
#[inline(always)]
pub fn check_only(ctx: &XdpContext, pkt: &Packet, scratch: &mut Scratch) -> Result<(), Reason> {
    let Scratch { syn, th_len, .. } = scratch;
    let (th_len, opts_sum) = load_syn_header(ctx, pkt, syn, th_len)?;
    crate::verify::tcp(pkt, &syn.base, opts_sum, th_len)
}

/// The client's options less those the host's TCP has switched off (`HOST_NO_*` flags of
/// `Config::cookies`): the SYN-ACK must not offer what the host would refuse when the final ACK
/// comes back.
///
/// Verifier workaround: masks rather than branches. With three `if`s the rest of the
/// kernel-cookie answer was verified once more per outcome: `synguard` in 237 k instructions
/// instead of 189 k.
#[inline(always)]
fn host_options(mut opts: SynOptions, cfg: &Config) -> SynOptions {
    let on = |flag: u32| cfg.cookies & flag == 0;
    opts.tsval = opts.tsval.filter(|_| on(HOST_NO_TIMESTAMPS));
    opts.sack_permitted &= on(HOST_NO_SACK);
    opts.wscale = opts.wscale.filter(|_| on(HOST_NO_WSCALE));
    opts
}

/// Copies the SYN's whole TCP header into `syn`; returns its length and the sum of its option
/// words for the checksum (`checksum::add_slice`'s, taken as they pass: summed afterwards from
/// `syn`, each word was loaded again and byte-swapped). The fixed header comes from the parsed
/// packet, the options straight from the frame a word at a time (`parse::Frame`, one bounds
/// check and one load instruction per word; a `bpf_xdp_load_bytes` call cost more).
#[inline(always)]
fn load_syn_header(
    ctx: &XdpContext,
    pkt: &Packet,
    syn: &mut SynHeader,
    slot: &mut u64,
) -> Result<(u64, u64), Reason> {
    let len = pkt.tcp_len();
    if len < TCP_LEN {
        return Err(Reason::ErrLoadBytes);
    }
    copy_base(&pkt.tcp, &mut syn.base);
    let opt_len = len - TCP_LEN;
    let at = pkt.tcp_off() + TCP_LEN;
    // Only the header's own option words: every reader stays within `th_len` (the option walk,
    // the Linux layout's fixed compares at length 20, the kernel's cookie helper), and the
    // checksum takes the words' sum from here. Stores volatile, one per word, so that LLVM does
    // not make them a `memcpy`, which the BPF backend turns into a byte-wise loop (`opts` is
    // 4-byte aligned in the aligned scratch value, `maps::aligned`). Constant positions
    // (docs/verifier.md, "No loop with a counter over TCP options"); `tcp_len` is a multiple
    // of 4.
    let words = syn.opts.as_mut_ptr() as *mut u32;
    let frame = parse::Frame::of(ctx);
    let at = parse::Base::new(at).ok_or(Reason::ErrLoadBytes)?;
    let mut sum = 0u64;
    for i in 0..MAX_OPTIONS / 4 {
        let pos = 4 * i as u64;
        if pos >= opt_len {
            break;
        }
        let w = frame.u32_le(at, pos).ok_or(Reason::ErrLoadBytes)?;
        sum += w as u64;
        // SAFETY: in bounds of `opts`, and 4-byte aligned (above). Little-endian target: the
        // word's bytes land in the frame's order.
        unsafe { core::ptr::write_volatile(words.add(i), w) };
    }
    // Verifier workaround: the steps above leave one path per number of option words, each
    // knowing `len` within a different range, and every later step was verified once per path
    // (509 k instead of 217 k instructions for `synguard`). The length read back from map memory
    // is the same unknown value on every path, so they merge (docs/verifier.md).
    // SAFETY: volatile accesses to a field of this CPU's scratch value.
    let len = unsafe {
        core::ptr::write_volatile(slot, len);
        core::ptr::read_volatile(slot)
    } & 0x3c;
    if len < TCP_LEN {
        return Err(Reason::ErrLoadBytes);
    }
    Ok((len, checksum::le_sum_as_be(sum)))
}

const _: () = assert!(core::mem::offset_of!(Packet, tcp).is_multiple_of(8));

/// Copies the SYN's fixed TCP header as two 8-byte words and one 4-byte word. Codegen
/// workaround: LLVM cannot tell that the parsed packet and the scratch value (two map values)
/// do not overlap and made a plain assignment a call to a byte-wise `memmove`.
#[inline(always)]
fn copy_base(src: &[u8; 20], dst: &mut [u8; 20]) {
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    // SAFETY: both arrays are 8-byte aligned (`Packet::tcp` follows the 40-byte, 8-aligned IP
    // header in an 8-aligned struct; `SynHeader::base` is the first field of one), and the
    // accesses stay within their 20 bytes.
    unsafe {
        core::ptr::write(d as *mut u64, core::ptr::read(s as *const u64));
        core::ptr::write(
            d.add(8) as *mut u64,
            core::ptr::read(s.add(8) as *const u64),
        );
        core::ptr::write(
            d.add(16) as *mut u32,
            core::ptr::read(s.add(16) as *const u32),
        );
    }
}

/// The kernel's own cookie for this SYN (`__cookie_v4_init_sequence` /
/// `__cookie_v6_init_sequence` through `bpf_tcp_raw_gen_syncookie_ipv4/6`): (cookie, MSS the
/// cookie encodes, which is the largest table value not above the client's MSS).
#[inline(always)]
fn gen_cookie(pkt: &Packet, syn: &mut SynHeader, th_len: u64) -> Result<(u32, u16), Reason> {
    if th_len < TCP_LEN || th_len > TCP_LEN + MAX_OPTIONS as u64 {
        return Err(Reason::ErrCookieGen);
    }
    let ip = &pkt.ip as *const _ as *mut c_void;
    let th = syn as *mut SynHeader as *mut tcphdr;
    // SAFETY: helper calls; `ip` points at the initialised header of the packet's family,
    // `th` at th_len initialised bytes.
    let ret = unsafe {
        if pkt.ipv6 {
            bpf_tcp_raw_gen_syncookie_ipv6(ip as *mut ipv6hdr, th, th_len as u32)
        } else {
            bpf_tcp_raw_gen_syncookie_ipv4(ip as *mut iphdr, th, th_len as u32)
        }
    };
    if ret < 0 {
        return Err(Reason::ErrCookieGen);
    }
    Ok((ret as u32, (ret >> 32) as u16))
}

/// The SYN-ACK's cookie: its ISN, the MSS it encodes and that MSS's class, whether it agreed to
/// ECN, and whose it is.
struct Cookie {
    isn: u32,
    mss: u16,
    class: u8,
    ecn: bool,
    own: bool,
}

/// The SYN-ACK's TCP header as words (`synguard_common::synack_words`, checksum still zero) and
/// its length.
#[inline(always)]
fn tcp_words(
    pkt: &Packet,
    cfg: &Config,
    opts: &SynOptions,
    c: &Cookie,
    now_ms: u32,
) -> ([u32; 10], u64) {
    let mss_cap = if pkt.ipv6 { cfg.mss_v6 } else { cfg.mss_v4 };
    let mss = tcp::synack_mss(c.mss, opts.mss, mss_cap as u16, pkt.ipv6);
    let timestamp = match opts.tsval {
        // Own cookies: any TSval will do; the kernel takes its offset from the echo
        // (`bpf_sk_assign_tcp_reqsk`).
        Some(client_ts) if c.own => Some((now_ms, client_ts)),
        Some(client_ts) => {
            let tsval = cookie::cookie_tsval(now_ms, opts.wscale, opts.sack_permitted, c.ecn);
            Some((tsval, client_ts))
        }
        None => None,
    };
    // Window scaling and SACK survive a kernel cookie only inside the timestamp
    // (cookie_timestamp_decode); an own cookie carries them itself.
    let with_ts = c.own || timestamp.is_some();
    let options = SynAckOptions {
        mss,
        timestamp,
        sack_permitted: with_ts && opts.sack_permitted,
        wscale: if with_ts && opts.wscale.is_some() {
            Some(cfg.wscale as u8)
        } else {
            None
        },
    };
    let slot = cookie::window_slot(pkt.ipv6, c.class);
    // Verifier workaround: `pkt.ipv6` is a byte of map memory to the verifier, and LLVM drops
    // a mask it knows a `bool` does not need; the mask on a value read back is kept.
    // SAFETY: reading a local.
    let slot = unsafe { core::ptr::read_volatile(&slot) } & 7;
    let fields = TcpFields {
        sport: pkt.dport(),
        dport: pkt.sport(),
        seq: c.isn,
        ack: pkt.seq().wrapping_add(1),
        flags: tcp::SYN | tcp::ACK | if c.ecn { tcp::ECE } else { 0 },
        window: cfg.synack_windows[slot],
    };
    synack_words::tcp_words(&fields, &options)
}

/// The reply's IP header as words (addresses swapped; IPv4: DF set, ID 0, IP options of the SYN
/// not echoed; IPv6: no extension headers), the TCP pseudo-header's sum, and the IP header's
/// length.
#[inline(always)]
fn ip_words(pkt: &Packet, tcp_len: u64) -> ([u32; 10], u64, u64) {
    let a = pkt.addresses().map(u32::from_be);
    if pkt.ipv6 {
        let (src, dst) = ([a[0], a[1], a[2], a[3]], [a[4], a[5], a[6], a[7]]);
        let (words, pseudo) = synack_words::ipv6_words(&dst, &src, tcp_len);
        (words, pseudo, IPV6_LEN)
    } else {
        let (words, pseudo) = synack_words::ipv4_words(a[1], a[0], tcp_len);
        (words, pseudo, IPV4_LEN)
    }
}

/// Makes the frame exactly `new_len` bytes: grow at the head, shrink at the tail.
#[inline(always)]
fn resize(ctx: &XdpContext, old_len: u64, new_len: u64) -> Result<(), Reason> {
    let delta = new_len as i64 - old_len as i64;
    // SAFETY: helper calls on our own context; packet pointers are not used afterwards.
    let r = unsafe {
        if delta > 0 {
            bpf_xdp_adjust_head(ctx.ctx, -(delta as i32))
        } else if delta < 0 {
            bpf_xdp_adjust_tail(ctx.ctx, delta as i32)
        } else {
            0
        }
    };
    if r != 0 {
        return Err(Reason::ErrAdjust);
    }
    Ok(())
}
