//! Hand-built frames for what hping3 cannot send: an 802.1Q-tagged TCP SYN.

use super::pcap::{fold, pseudo_header, sum};

/// An Ethernet frame with one 802.1Q tag carrying an IPv4 TCP SYN (MSS option), checksums set.
pub fn tagged_syn(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    vid: u16,
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
) -> Vec<u8> {
    let mut tcp = vec![0u8; 24];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    tcp[12] = 6 << 4; // 24-byte header
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    tcp[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let total = (ip.len() + tcp.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let ipc = !fold(sum(&ip, 0));
    ip[10..12].copy_from_slice(&ipc.to_be_bytes());
    let tc = !fold(sum(&tcp, pseudo_header(&ip, tcp.len())));
    tcp[16..18].copy_from_slice(&tc.to_be_bytes());
    let mut f = Vec::with_capacity(18 + ip.len() + tcp.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend(ip);
    f.extend(tcp);
    f
}

/// "aa:bb:cc:dd:ee:ff" -> bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .trim()
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    parts.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::pcap;

    #[test]
    fn tagged_syn_parses_back_with_good_checksums() {
        let f = tagged_syn(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            77,
            ([10, 0, 0, 1], 40000),
            ([10, 0, 0, 2], 8080),
        );
        let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&65535u32.to_le_bytes());
        file.extend_from_slice(&1u32.to_le_bytes());
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&(f.len() as u32).to_le_bytes());
        file.extend_from_slice(&(f.len() as u32).to_le_bytes());
        file.extend(f);
        let segs = pcap::segments(&file).unwrap();
        assert_eq!(segs.len(), 1);
        let s = &segs[0];
        assert!(s.is_syn() && s.ip_csum_ok && s.tcp_csum_ok);
        assert_eq!((s.vlan, s.sport, s.dport), (Some(77), 40000, 8080));
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00"), None);
    }
}
