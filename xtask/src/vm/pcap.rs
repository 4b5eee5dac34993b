//! Reads the tap capture (pcap, Ethernet) and checks the SYN-ACKs the guest sent: IPv4 header
//! checksum and TCP checksum, computed here independently of synguard's own code, plus the TCP
//! options of each SYN and SYN-ACK (to compare with what the guest's TCP_INFO reports).

use anyhow::{Result, bail};

/// One IPv4 TCP segment from the capture.
#[derive(Debug, Clone)]
pub struct Segment {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// Payload bytes.
    pub len: usize,
    /// Capture time, in the capture's units (micro- or nanoseconds) since the epoch.
    pub at: u64,
    pub ip_csum_ok: bool,
    pub tcp_csum_ok: bool,
    /// The TCP checksum field holds only the pseudo-header sum: the sender's stack left the
    /// rest to checksum offload (CHECKSUM_PARTIAL). A tap shows the guest kernel's own segments
    /// so, since the host completes the sum only later; a frame built in XDP never is.
    pub tcp_csum_partial: bool,
    /// Window scale option, if present.
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    pub timestamp: bool,
    /// The 802.1Q tag's VLAN id when the frame carried one.
    pub vlan: Option<u16>,
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;

impl Segment {
    /// One line for a failure's detail: time (capture units), ports, flags, seq, ack, length.
    pub fn line(&self) -> String {
        format!(
            "{} {}:{} -> {}:{} flags {:#04x} seq {} ack {} len {}",
            self.at,
            std::net::Ipv4Addr::from(self.src),
            self.sport,
            std::net::Ipv4Addr::from(self.dst),
            self.dport,
            self.flags,
            self.seq,
            self.ack,
            self.len
        )
    }

    pub fn is_syn_ack(&self) -> bool {
        self.flags & (SYN | ACK) == SYN | ACK
    }
    pub fn is_syn(&self) -> bool {
        self.flags & (SYN | ACK) == SYN
    }
}

/// Every IPv4 TCP segment in a pcap file (microsecond or nanosecond, either byte order).
pub fn segments(pcap: &[u8]) -> Result<Vec<Segment>> {
    if pcap.len() < 24 {
        bail!("capture too short ({} bytes) for a pcap header", pcap.len());
    }
    let magic = u32::from_le_bytes(pcap[0..4].try_into().expect("4 bytes"));
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => bail!("not a pcap file (magic {m:#x})"),
    };
    let u32_at = |b: &[u8], o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    if u32_at(pcap, 20) != 1 {
        bail!("capture link type {} is not Ethernet", u32_at(pcap, 20));
    }
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let caplen = u32_at(pcap, off + 8) as usize;
        let start = off + 16;
        if start + caplen > pcap.len() {
            break;
        }
        if let Some(mut seg) = parse_frame(&pcap[start..start + caplen]) {
            let (secs, frac) = (u32_at(pcap, off), u32_at(pcap, off + 4));
            seg.at = u64::from(secs) * 1_000_000_000 + u64::from(frac);
            out.push(seg);
        }
        off = start + caplen;
    }
    Ok(out)
}

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

fn parse_frame(f: &[u8]) -> Option<Segment> {
    let mut l3 = 14;
    let mut ethertype = be16(f.get(..14)?, 12);
    let mut vlan = None;
    if ethertype == 0x8100 {
        vlan = Some(be16(f.get(..18)?, 14) & 0x0fff);
        ethertype = be16(f, 16);
        l3 = 18;
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = f.get(l3..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(be16(ip.get(..4)?, 2));
    if ip.get(9) != Some(&6) || ihl < 20 || total > ip.len() {
        return None;
    }
    let tcp = ip.get(ihl..total)?;
    let doff = usize::from(tcp.get(12)? >> 4) * 4;
    let opts = parse_options(tcp.get(20..doff)?);
    Some(Segment {
        src: ip[12..16].try_into().ok()?,
        dst: ip[16..20].try_into().ok()?,
        sport: be16(tcp, 0),
        dport: be16(tcp, 2),
        flags: tcp[13],
        seq: u32::from_be_bytes(tcp[4..8].try_into().ok()?),
        ack: u32::from_be_bytes(tcp[8..12].try_into().ok()?),
        len: tcp.len() - doff,
        at: 0,
        ip_csum_ok: fold(sum(&ip[..ihl], 0)) == 0xffff,
        tcp_csum_ok: fold(sum(tcp, pseudo_header(ip, tcp.len()))) == 0xffff,
        tcp_csum_partial: be16(tcp, 16) == fold(pseudo_header(ip, tcp.len())),
        wscale: opts.0,
        sack_perm: opts.1,
        timestamp: opts.2,
        vlan,
    })
}

/// (window scale, SACK permitted, timestamps) from a TCP options block.
fn parse_options(mut o: &[u8]) -> (Option<u8>, bool, bool) {
    let (mut ws, mut sack, mut ts) = (None, false, false);
    while let Some(&kind) = o.first() {
        match kind {
            0 => break,
            1 => o = &o[1..],
            _ => {
                let len = usize::from(*o.get(1).unwrap_or(&0));
                if len < 2 || len > o.len() {
                    break;
                }
                match (kind, len) {
                    (3, 3) => ws = Some(o[2]),
                    (4, 2) => sack = true,
                    (8, 10) => ts = true,
                    _ => {}
                }
                o = &o[len..];
            }
        }
    }
    (ws, sack, ts)
}

/// The TCP pseudo-header's contribution (RFC 793): addresses, protocol, TCP length.
pub fn pseudo_header(ip: &[u8], tcp_len: usize) -> u32 {
    sum(&ip[12..20], 0) + 6 + tcp_len as u32
}

/// One's-complement sum of 16-bit big-endian words (odd tail padded with zero).
pub fn sum(b: &[u8], init: u32) -> u32 {
    let mut acc = init;
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN-ACK 10.0.0.2:80 -> 10.0.0.1:1234 with MSS, SACK-perm and WS 7; its checksums are
    /// filled in by the sums above, and a flipped bit must then be caught.
    fn frame(corrupt_tcp: bool) -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
        ];
        let tcp = vec![
            0, 80, 0x04, 0xd2, 0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0x12, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 5,
            0xb4, 4, 2, 1, 3, 3, 7, 0, 0,
        ];
        let total = (ip.len() + tcp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let ipc = !fold(sum(&ip, 0));
        ip[10..12].copy_from_slice(&ipc.to_be_bytes());
        let mut tcp = tcp;
        let tc = !fold(sum(&tcp, pseudo_header(&ip, tcp.len())));
        tcp[16..18].copy_from_slice(&tc.to_be_bytes());
        if corrupt_tcp {
            tcp[17] ^= 1;
        }
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend(ip);
        f.extend(tcp);
        f
    }

    /// The IPv4 header example with a known-good checksum (0xb861) from the literature.
    #[test]
    fn known_ip_header_checksum() {
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum(&h, 0)), 0xffff);
    }

    #[test]
    fn checks_checksums_and_options() {
        let s = parse_frame(&frame(false)).unwrap();
        assert!(s.is_syn_ack() && s.ip_csum_ok && s.tcp_csum_ok);
        assert_eq!(s.wscale, Some(7));
        assert!(s.sack_perm && !s.timestamp);
        assert!(!s.tcp_csum_partial);
        let bad = parse_frame(&frame(true)).unwrap();
        assert!(bad.ip_csum_ok && !bad.tcp_csum_ok && !bad.tcp_csum_partial);
        let mut partial = frame(false);
        let ip = partial[14..34].to_vec();
        let pseudo = fold(pseudo_header(&ip, partial.len() - 34)).to_be_bytes();
        partial[50..52].copy_from_slice(&pseudo);
        assert!(parse_frame(&partial).unwrap().tcp_csum_partial);
    }
}
