//! Step 3b, before answering a SYN: would the host's stack accept it? A SYN the kernel would
//! discard for a bad checksum must not get a SYN-ACK either. The checks are pure functions in
//! `synguard_common::checksum`; docs/host-checks.md ("Checksums") says why the TCP check
//! accepts the partial form of veth, and what the checks cost.

use aya_ebpf::programs::XdpContext;
use synguard_common::{
    checksum::{self, ipv4_header_ok, tcp_checksum_ok},
    reason::Reason,
};

use crate::parse::{self, IPV4_LEN, IPV6_LEN, Packet};

/// IPv4 header checksum, options included (`ip_rcv_core` drops the packet otherwise). IPv6 has
/// no header checksum.
#[inline(always)]
pub fn ip_header(ctx: &XdpContext, pkt: &Packet) -> Result<(), Reason> {
    if pkt.ipv6 {
        return Ok(());
    }
    let ihl = pkt.tcp_off() - pkt.l2_len();
    let mut opts = 0u64;
    // Up to ten option words, an unrolled sequence at constant offsets (verifier workaround:
    // no loop counter); each load is bounds-checked on its own pointer.
    macro_rules! words {
        ($($k:literal)*) => { $(
            if IPV4_LEN + 4 * $k < ihl {
                let w: [u8; 4] = parse::load(ctx, pkt.l2_len() + IPV4_LEN + 4 * $k)
                    .ok_or(Reason::PassMalformedIp)?;
                opts += u32::from_be_bytes(w) as u64;
            }
        )* };
    }
    words!(0 1 2 3 4 5 6 7 8 9);
    if ipv4_header_ok(pkt.ip4(), opts) {
        Ok(())
    } else {
        Err(Reason::DropBadIpChecksum)
    }
}

/// TCP checksum of a SYN whose fixed header (`base`) has been copied out and whose option words
/// sum to `opts_sum` (`checksum::add_slice`'s sum). Checked only when the segment is the header alone, which every SYN
/// without data is; a SYN carrying data is answered unchecked (docs/host-checks.md).
#[inline(always)]
pub fn tcp(pkt: &Packet, base: &[u8; 20], opts_sum: u64, th_len: u64) -> Result<(), Reason> {
    let (pseudo, seg_len) = if pkt.ipv6 {
        let ip = pkt.ip6();
        let payload = u16::from_be_bytes([ip[4], ip[5]]) as u64;
        let seg_len = (pkt.l2_len() + IPV6_LEN + payload).wrapping_sub(pkt.tcp_off());
        (
            checksum::pseudo_v6_slice(&ip[8..40], seg_len as u32),
            seg_len,
        )
    } else {
        let ip = pkt.ip4();
        let total = u16::from_be_bytes([ip[2], ip[3]]) as u64;
        let seg_len = total.wrapping_sub(pkt.tcp_off() - pkt.l2_len());
        (
            checksum::pseudo_v4_slice(&ip[12..20], seg_len as u16),
            seg_len,
        )
    };
    if seg_len != th_len {
        return Ok(());
    }
    let sum = checksum::add_words(opts_sum, base);
    let field = u16::from_be_bytes([base[16], base[17]]);
    if tcp_checksum_ok(pseudo, sum, field) {
        Ok(())
    } else {
        Err(Reason::DropBadTcpChecksum)
    }
}
