//! TCP flag classification and SYN / SYN-ACK option handling.

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// Longest TCP option area (data offset 15).
pub const MAX_OPTIONS: usize = 40;
/// Longest TCP header.
pub const MAX_HEADER: usize = 20 + MAX_OPTIONS;
/// Largest window shift (RFC 7323); the kernel clamps larger ones to this.
pub const MAX_WSCALE: u8 = 14;

const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WSCALE: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_TIMESTAMP: u8 = 8;

/// What a segment's flags make of it, for a protected port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagClass {
    /// Opening SYN (ECE/CWR/PSH/URG may ride along).
    Syn,
    /// SYN with ACK: a server's answer, not ours to handle.
    SynAck,
    /// SYN with FIN: invalid.
    SynFin,
    /// SYN with RST: invalid.
    SynRst,
    /// None of FIN, SYN, RST, PSH, ACK, URG.
    NoFlags,
    /// FIN/PSH/URG without ACK: invalid after the handshake and before it.
    NoAck,
    /// ACK without SYN and RST: a handshake's last ACK or established traffic.
    Ack,
    /// RST (with or without ACK).
    Rst,
}

/// Classifies the flags byte of a TCP header.
#[inline(always)]
pub fn classify(flags: u8) -> FlagClass {
    let f = flags & (FIN | SYN | RST | PSH | ACK | URG);
    if f == 0 {
        FlagClass::NoFlags
    } else if f & SYN != 0 {
        if f & FIN != 0 {
            FlagClass::SynFin
        } else if f & RST != 0 {
            FlagClass::SynRst
        } else if f & ACK != 0 {
            FlagClass::SynAck
        } else {
            FlagClass::Syn
        }
    } else if f & RST != 0 {
        FlagClass::Rst
    } else if f & ACK != 0 {
        FlagClass::Ack
    } else {
        FlagClass::NoAck
    }
}

/// The options of a client's SYN that a cookie connection can keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynOptions {
    /// MSS option value, 0 when absent.
    pub mss: u16,
    /// Window shift the client asked for (clamped to [`MAX_WSCALE`]), when it sent one.
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// The client's TSval, when it sent a timestamp.
    pub tsval: Option<u32>,
}

#[inline(always)]
fn byte(opts: &[u8; MAX_OPTIONS], i: usize) -> u8 {
    // `i` is a constant after unrolling; `get` keeps a panic path out of the BPF code.
    opts.get(i).copied().unwrap_or(0)
}

/// One position of the option walk. `next` is where the next option starts; everything before it
/// has been consumed. Returns false when the walk is over: the end of the option area, an
/// end-of-options byte, or a malformed option (length < 2 or past the end), keeping what was read
/// before it. The rules are the kernel's `tcp_parse_options` for a SYN, each tested below:
/// - a known kind with the wrong length is skipped and the walk goes on;
/// - a repeated option: the last one wins (MSS: the last non-zero one);
/// - MSS 0 is ignored; window scale above 14 is clamped to 14;
/// - unknown kinds are skipped by their length.
#[inline(always)]
fn step(opts: &[u8; MAX_OPTIONS], len: usize, i: usize, st: &mut WalkState) -> bool {
    if i >= len {
        return false;
    }
    if get(&st.next) != i as u64 {
        // Inside an option that an earlier position consumed.
        return true;
    }
    let kind = byte(opts, i);
    if kind == OPT_EOL {
        return false;
    }
    if kind == OPT_NOP {
        set(&mut st.next, i as u64 + 1);
        return true;
    }
    let olen = byte(opts, i + 1) as usize;
    if olen < 2 || i + olen > len {
        return false;
    }
    match (kind, olen) {
        (OPT_MSS, 4) => {
            // An MSS of 0 is ignored, not taken as "no option": `tcp_parse_options` keeps the
            // last non-zero MSS, so `MSS 88, MSS 0` means 88.
            let mss = u16::from_be_bytes([byte(opts, i + 2), byte(opts, i + 3)]);
            if mss != 0 {
                set(&mut st.mss, mss as u64);
            }
        }
        (OPT_WSCALE, 3) => set(
            &mut st.wscale,
            WALK_SEEN | byte(opts, i + 2).min(MAX_WSCALE) as u64,
        ),
        (OPT_SACK_PERM, 2) => set(&mut st.sack, 1),
        (OPT_TIMESTAMP, 10) => set(
            &mut st.tsval,
            WALK_SEEN
                | u32::from_be_bytes([
                    byte(opts, i + 2),
                    byte(opts, i + 3),
                    byte(opts, i + 4),
                    byte(opts, i + 5),
                ]) as u64,
        ),
        _ => {}
    }
    set(&mut st.next, (i + olen) as u64);
    true
}

/// The option walk's state: where the next option starts and what was found so far.
///
/// Verifier workaround: kept in memory and read and written with volatile accesses, so that in
/// the XDP program it lives in map memory (the per-CPU scratch value), whose contents the
/// verifier does not track. Held in registers, every combination of options found so far and
/// every position of the next option was a state of its own at each of the 40 steps, and the
/// walk alone took 200 k (kernel cookies) to 800 k (own cookies) of the verifier's 1 M
/// instructions; in memory the paths meet again after every step (docs/verifier.md).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkState {
    next: u64,
    mss: u64,
    /// `WALK_SEEN | shift` once a window scale option was read.
    wscale: u64,
    sack: u64,
    /// `WALK_SEEN | TSval` once a timestamp was read.
    tsval: u64,
}

const WALK_SEEN: u64 = 1 << 32;

#[inline(always)]
fn get(v: &u64) -> u64 {
    // SAFETY: a plain read of a reference.
    unsafe { core::ptr::read_volatile(v) }
}

#[inline(always)]
fn set(v: &mut u64, x: u64) {
    // SAFETY: a plain write through a unique reference.
    unsafe { core::ptr::write_volatile(v, x) }
}

impl WalkState {
    #[inline(always)]
    fn start(&mut self) {
        set(&mut self.next, 0);
        set(&mut self.mss, 0);
        set(&mut self.wscale, 0);
        set(&mut self.sack, 0);
        set(&mut self.tsval, 0);
    }

    #[inline(always)]
    fn options(&self) -> SynOptions {
        let (ws, ts) = (get(&self.wscale), get(&self.tsval));
        SynOptions {
            mss: get(&self.mss) as u16,
            wscale: (ws & WALK_SEEN != 0).then_some(ws as u8),
            sack_permitted: get(&self.sack) != 0,
            tsval: (ts & WALK_SEEN != 0).then_some(ts as u32),
        }
    }
}

/// Parses the option area of a SYN: `opts[..len]` (`len` = data offset * 4 - 20).
///
/// Verifier workaround: a loop over options with a counter hits the 1 M-instruction limit, so
/// the walk is a fully unrolled sequence of 40 steps, each at a constant position, that stops at
/// the end of the options (an hping3 SYN has none: one comparison).
#[inline(always)]
pub fn parse_syn_options(opts: &[u8; MAX_OPTIONS], len: usize) -> SynOptions {
    parse_syn_options_in(opts, len, &mut WalkState::default())
}

/// [`parse_syn_options`] with the walk's state in `st` (in the XDP program: map memory, see
/// [`WalkState`]).
#[inline(always)]
pub fn parse_syn_options_in(
    opts: &[u8; MAX_OPTIONS],
    len: usize,
    st: &mut WalkState,
) -> SynOptions {
    if let Some(o) = linux_layout(opts, len) {
        return o;
    }
    walk_options(opts, len, st)
}

/// The option layout every Linux client sends in its SYN (`tcp_syn_options` and
/// `tcp_options_write`): MSS, SACK-permitted, timestamp, NOP, window scale, 20 bytes. Recognised
/// with fixed-offset compares, so the common SYN skips the byte-by-byte walk (about 28 ns of the
/// SYN path in `cargo xtask bench`). Compared a 32-bit word at a time: written byte by byte,
/// LLVM loaded the ten bytes once for this and the walk together and kept them on the stack;
/// read as words (the option area is 4-aligned in the XDP program's workspace, which LLVM
/// knows there) it is four loads and three compares (docs/measuring.md).
#[inline(always)]
fn linux_layout(opts: &[u8; MAX_OPTIONS], len: usize) -> Option<SynOptions> {
    // Little-endian words, first byte lowest: on the BPF target each is one plain load.
    let w = |i: usize| -> u32 {
        // SAFETY: `i + 4 <= MAX_OPTIONS` at every call below; an unaligned read of the array.
        u32::from_le(unsafe { opts.as_ptr().add(i).cast::<u32>().read_unaligned() })
    };
    const MSS_KIND_LEN: u32 = u32::from_le_bytes([OPT_MSS, 4, 0, 0]);
    const SACK_PERM_TIMESTAMP: u32 = u32::from_le_bytes([OPT_SACK_PERM, 2, OPT_TIMESTAMP, 10]);
    const NOP_WSCALE: u32 = u32::from_le_bytes([OPT_NOP, OPT_WSCALE, 3, 0]);
    let (mss, sack_ts, tsval, ws) = (w(0), w(4), w(8), w(16));
    let layout = len == 20
        && mss & 0xffff == MSS_KIND_LEN
        && sack_ts == SACK_PERM_TIMESTAMP
        && ws & 0x00ff_ffff == NOP_WSCALE;
    if !layout {
        return None;
    }
    Some(SynOptions {
        mss: ((mss >> 16) as u16).swap_bytes(),
        wscale: Some(((ws >> 24) as u8).min(MAX_WSCALE)),
        sack_permitted: true,
        tsval: Some(tsval.swap_bytes()),
    })
}

/// The general walk, for any other layout.
#[inline(always)]
fn walk_options(opts: &[u8; MAX_OPTIONS], len: usize, st: &mut WalkState) -> SynOptions {
    st.start();
    macro_rules! steps {
        ($($i:literal)*) => { $( if !step(opts, len, $i, st) { return st.options(); } )* };
    }
    steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
           20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39);
    st.options()
}

/// MSS a client may assume without the option: RFC 9293 (536) for IPv4, the IPv6 minimum MTU
/// less headers (RFC 8200: 1280 - 60) for IPv6.
pub const DEFAULT_MSS_V4: u16 = 536;
pub const DEFAULT_MSS_V6: u16 = 1220;

/// The MSS the SYN-ACK advertises: the cookie's MSS (the kernel's table value at or below the
/// client's), never above the client's own MSS, nor above the interface's (`cap`, 0 = none).
#[inline(always)]
pub fn synack_mss(cookie_mss: u16, client_mss: u16, cap: u16, ipv6: bool) -> u16 {
    let client = if client_mss != 0 {
        client_mss
    } else if ipv6 {
        DEFAULT_MSS_V6
    } else {
        DEFAULT_MSS_V4
    };
    let mut mss = cookie_mss.min(client);
    if cap != 0 {
        mss = mss.min(cap);
    }
    mss
}

#[cfg(test)]
mod tests;
