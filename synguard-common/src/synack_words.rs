//! The SYN-ACK's IP and TCP headers as 32-bit words, built and checksummed in registers.
//!
//! Each word is the value of the big-endian word on the wire (`u32::from_be_bytes` of its four
//! bytes): the one's-complement sums add the words themselves (RFC 1071 allows any word size
//! once the sum is folded, `checksum::finish`), with nothing written and read back, and the XDP
//! program stores two words per instruction ([`pack`], `frame_write`). Built byte by byte in
//! memory, the same headers cost the SYN path about a tenth of its time (docs/measuring.md).

use crate::checksum;

/// What a SYN-ACK carries in its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynAckOptions {
    pub mss: u16,
    /// (TSval, TSecr)
    pub timestamp: Option<(u32, u32)>,
    pub sack_permitted: bool,
    pub wscale: Option<u8>,
}

/// Option kinds and lengths, as the first bytes of a word.
const MSS_WORD: u32 = 0x0204_0000;
const NOP_NOP_SACK_PERM: u32 = 0x0101_0402;
const SACK_PERM_TIMESTAMP: u32 = 0x0402_080a;
const NOP_NOP_TIMESTAMP: u32 = 0x0101_080a;
const NOP_WSCALE: u32 = 0x0103_0300;

const IP_TTL: u32 = 64;
const IPPROTO_TCP: u32 = 6;

/// The SYN-ACK's options in the order and alignment Linux uses (`tcp_options_write`): MSS;
/// SACK-permitted folded into the timestamp's padding; window scale after a NOP. Unused words
/// are zero; returns the words and their length in bytes (a multiple of 4, at most 20).
#[inline(always)]
pub fn option_words(o: &SynAckOptions) -> ([u32; 5], u64) {
    let mut w = [MSS_WORD | o.mss as u32, 0, 0, 0, 0];
    let ws = |s: u8| NOP_WSCALE | s as u32;
    // Each branch writes constant positions: no variable offsets in BPF.
    let len = match (o.timestamp, o.wscale) {
        (Some((tsval, tsecr)), wscale) => {
            w[1] = if o.sack_permitted {
                SACK_PERM_TIMESTAMP
            } else {
                NOP_NOP_TIMESTAMP
            };
            w[2] = tsval;
            w[3] = tsecr;
            match wscale {
                Some(s) => {
                    w[4] = ws(s);
                    5
                }
                None => 4,
            }
        }
        (None, wscale) if o.sack_permitted => {
            w[1] = NOP_NOP_SACK_PERM;
            match wscale {
                Some(s) => {
                    w[2] = ws(s);
                    3
                }
                None => 2,
            }
        }
        (None, Some(s)) => {
            w[1] = ws(s);
            2
        }
        (None, None) => 1,
    };
    (w, 4 * len)
}

/// The SYN-ACK's TCP header fields other than its options and checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFields {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

/// The TCP header, options included, with its checksum zero and the words past its length
/// zero; returns the words and the header's length.
#[inline(always)]
pub fn tcp_words(f: &TcpFields, o: &SynAckOptions) -> ([u32; 10], u64) {
    let (opts, olen) = option_words(o);
    let len = 20 + olen;
    let words = [
        (f.sport as u32) << 16 | f.dport as u32,
        f.seq,
        f.ack,
        ((len / 4) as u32) << 28 | (f.flags as u32) << 16 | f.window as u32,
        0,
        opts[0],
        opts[1],
        opts[2],
        opts[3],
        opts[4],
    ];
    (words, len)
}

/// Fills in the TCP checksum of `tcp` (from [`tcp_words`]): `pseudo` is the pseudo-header's sum.
#[inline(always)]
pub fn set_tcp_checksum(tcp: &mut [u32; 10], pseudo: u64) {
    tcp[4] = (checksum::finish(checksum::add_u32s(pseudo, tcp)) as u32) << 16;
}

/// A fresh IPv4 header from `src` to `dst` (DF set and ID 0 as Linux does for SYN-ACKs with
/// path MTU discovery on; no options), checksum filled in, and the TCP pseudo-header's sum for
/// a segment of `tcp_len` bytes. Words 5 to 9 are zero.
#[inline(always)]
pub fn ipv4_words(src: u32, dst: u32, tcp_len: u64) -> ([u32; 10], u64) {
    let total = 20 + tcp_len as u32;
    let mut w = [
        0x4500_0000 | total,
        0x0000_4000,
        IP_TTL << 24 | IPPROTO_TCP << 16,
        src,
        dst,
        0,
        0,
        0,
        0,
        0,
    ];
    w[2] |= checksum::finish(checksum::add_u32s(0, &w[..5])) as u32;
    let pseudo = src as u64 + dst as u64 + IPPROTO_TCP as u64 + tcp_len;
    (w, pseudo)
}

/// A fresh IPv6 header from `src` to `dst` (no extension headers) and the TCP pseudo-header's
/// sum for a segment of `tcp_len` bytes.
#[inline(always)]
pub fn ipv6_words(src: &[u32; 4], dst: &[u32; 4], tcp_len: u64) -> ([u32; 10], u64) {
    let w = [
        0x6000_0000,
        (tcp_len as u32) << 16 | IPPROTO_TCP << 8 | IP_TTL,
        src[0],
        src[1],
        src[2],
        src[3],
        dst[0],
        dst[1],
        dst[2],
        dst[3],
    ];
    let pseudo = checksum::add_u32s(checksum::add_u32s(0, src), dst) + IPPROTO_TCP as u64 + tcp_len;
    (w, pseudo)
}

/// The words as they lie in memory, two per little-endian 64-bit word (the first in its low
/// half), for 8-byte stores.
#[inline(always)]
pub fn pack(w: &[u32; 10]) -> [u64; 5] {
    const { assert!(cfg!(target_endian = "little")) };
    let p = |i: usize| w[i].to_be() as u64 | (w[i + 1].to_be() as u64) << 32;
    [p(0), p(2), p(4), p(6), p(8)]
}

/// The bytes of the words, in order.
#[cfg(test)]
pub(crate) fn bytes<const N: usize, const B: usize>(w: &[u32; N]) -> [u8; B] {
    const { assert!(B == 4 * N) };
    let mut b = [0u8; B];
    for (i, word) in w.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    b
}

#[cfg(test)]
mod tests;
