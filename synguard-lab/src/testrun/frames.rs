//! Crafted frames for fixtures and benchmarks. IP and TCP come from etherparse (its own
//! checksum code, independent of synguard's); Ethernet and VLAN tags are laid out by hand so the
//! tests control the tag protocol identifiers exactly.

use etherparse::{IpNumber, Ipv4Header, Ipv6Header, TcpHeader, TcpOptionElement};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_V4: [u8; 4] = [198, 18, 0, 2];
pub const SERVER_V4: [u8; 4] = [198, 18, 0, 1];
pub const CLIENT_V6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const SERVER_V6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// VLAN tagging of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tags {
    None,
    /// One 802.1Q tag with this VLAN id.
    Dot1q(u16),
    /// 802.1ad outer tag, 802.1Q inner tag (QinQ).
    QinQ(u16, u16),
}

/// Ethernet header plus tags for `ethertype`.
pub fn l2(src: [u8; 6], dst: [u8; 6], tags: Tags, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(22);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    match tags {
        Tags::None => {}
        Tags::Dot1q(id) => {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
        }
        Tags::QinQ(outer, inner) => {
            f.extend_from_slice(&0x88a8u16.to_be_bytes());
            f.extend_from_slice(&outer.to_be_bytes());
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&inner.to_be_bytes());
        }
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A TCP segment's header fields.
#[derive(Clone, Debug)]
pub struct Segment {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// Raw flag byte (synguard_common::tcp constants).
    pub flags: u8,
    pub window: u16,
    pub options: Vec<TcpOptionElement>,
    pub payload: Vec<u8>,
}

impl Segment {
    pub fn syn(sport: u16, dport: u16, seq: u32, options: Vec<TcpOptionElement>) -> Self {
        Segment {
            sport,
            dport,
            seq,
            ack: 0,
            flags: synguard_common::tcp::SYN,
            window: 64240,
            options,
            payload: Vec::new(),
        }
    }

    pub fn header(&self) -> TcpHeader {
        let mut h = TcpHeader::new(self.sport, self.dport, self.seq, self.window);
        h.acknowledgment_number = self.ack;
        let f = self.flags;
        use synguard_common::tcp::*;
        h.fin = f & FIN != 0;
        h.syn = f & SYN != 0;
        h.rst = f & RST != 0;
        h.psh = f & PSH != 0;
        h.ack = f & ACK != 0;
        h.urg = f & URG != 0;
        h.ece = f & ECE != 0;
        h.cwr = f & CWR != 0;
        h.set_options(&self.options)
            .expect("fixture TCP options fit in 40 bytes");
        h
    }
}

/// The options a Linux client puts in its SYN: MSS, SACK permitted, timestamp, window scale.
pub fn linux_syn_options(mss: u16, tsval: u32, wscale: u8) -> Vec<TcpOptionElement> {
    vec![
        TcpOptionElement::MaximumSegmentSize(mss),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(tsval, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(wscale),
    ]
}

/// IPv4 header for a TCP segment of `tcp_len` bytes, DF set (as Linux sends SYNs).
pub fn ipv4_header(src: [u8; 4], dst: [u8; 4], tcp_len: usize, ttl: u8) -> Ipv4Header {
    let mut ip = Ipv4Header::new(tcp_len as u16, ttl, IpNumber::TCP, src, dst)
        .expect("fixture IPv4 payload fits");
    ip.dont_fragment = true;
    ip.header_checksum = ip.calc_header_checksum();
    ip
}

/// A whole IPv4 TCP frame with correct checksums.
pub fn tcp_v4(
    src: [u8; 4],
    dst: [u8; 4],
    tags: Tags,
    macs: ([u8; 6], [u8; 6]),
    seg: &Segment,
) -> Vec<u8> {
    let mut tcp = seg.header();
    let ip = ipv4_header(src, dst, tcp.header_len() + seg.payload.len(), 64);
    tcp.checksum = tcp
        .calc_checksum_ipv4(&ip, &seg.payload)
        .expect("fixture checksum");
    let mut f = l2(macs.0, macs.1, tags, 0x0800);
    ip.write(&mut f).expect("write ipv4");
    tcp.write(&mut f).expect("write tcp");
    f.extend_from_slice(&seg.payload);
    f
}

/// IPv6 header for `payload_len` bytes after it, first next header `next`.
pub fn ipv6_header(src: [u8; 16], dst: [u8; 16], payload_len: usize, next: IpNumber) -> Ipv6Header {
    Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: payload_len as u16,
        next_header: next,
        hop_limit: 64,
        source: src,
        destination: dst,
    }
}

/// A whole IPv6 TCP frame with correct checksums; `ext` is raw extension-header bytes placed
/// between the IPv6 header and TCP, with `first_next` the IPv6 header's next-header value.
pub fn tcp_v6_ext(
    src: [u8; 16],
    dst: [u8; 16],
    tags: Tags,
    macs: ([u8; 6], [u8; 6]),
    seg: &Segment,
    ext: &[u8],
    first_next: IpNumber,
) -> Vec<u8> {
    let mut tcp = seg.header();
    let tcp_len = tcp.header_len() + seg.payload.len();
    let ip = ipv6_header(src, dst, ext.len() + tcp_len, first_next);
    let pseudo = ipv6_header(src, dst, tcp_len, IpNumber::TCP);
    tcp.checksum = tcp
        .calc_checksum_ipv6(&pseudo, &seg.payload)
        .expect("fixture checksum");
    let mut f = l2(macs.0, macs.1, tags, 0x86dd);
    ip.write(&mut f).expect("write ipv6");
    f.extend_from_slice(ext);
    tcp.write(&mut f).expect("write tcp");
    f.extend_from_slice(&seg.payload);
    f
}

pub fn tcp_v6(
    src: [u8; 16],
    dst: [u8; 16],
    tags: Tags,
    macs: ([u8; 6], [u8; 6]),
    seg: &Segment,
) -> Vec<u8> {
    tcp_v6_ext(src, dst, tags, macs, seg, &[], IpNumber::TCP)
}

/// A client SYN over IPv4 from CLIENT to SERVER.
pub fn client_syn_v4(tags: Tags, seg: &Segment) -> Vec<u8> {
    tcp_v4(CLIENT_V4, SERVER_V4, tags, (CLIENT_MAC, SERVER_MAC), seg)
}

/// A client segment over IPv6 from CLIENT to SERVER with raw extension headers `ext` before TCP.
pub fn client_v6_ext(seg: &Segment, ext: &[u8], first_next: IpNumber) -> Vec<u8> {
    tcp_v6_ext(
        CLIENT_V6,
        SERVER_V6,
        Tags::None,
        (CLIENT_MAC, SERVER_MAC),
        seg,
        ext,
        first_next,
    )
}

/// A client SYN over IPv6 from CLIENT to SERVER.
pub fn client_syn_v6(tags: Tags, seg: &Segment) -> Vec<u8> {
    tcp_v6(CLIENT_V6, SERVER_V6, tags, (CLIENT_MAC, SERVER_MAC), seg)
}

/// `synguard_common::maps::flow_hash` of a frame's 4-tuple (as its sender sends it), whatever
/// its tags and IP version: the connection table's and the recently-closed table's key.
pub fn flow_hash_of(frame: &[u8]) -> anyhow::Result<u64> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use synguard_common::maps::{flow_hash, flow_hash_v4};
    let p = SlicedPacket::from_ethernet(frame)?;
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        anyhow::bail!("not a TCP frame");
    };
    let (sport, dport) = (tcp.source_port(), tcp.destination_port());
    // Addresses as the program loads them: native-endian words of the network-order bytes.
    let words = |b: &[u8]| -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    match p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let (s, d) = (words(&h.source()), words(&h.destination()));
            Ok(flow_hash_v4(s[0], d[0], sport, dport))
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let (s, d) = (words(&h.source()), words(&h.destination()));
            Ok(flow_hash(
                &[s[0], s[1], s[2], s[3]],
                &[d[0], d[1], d[2], d[3]],
                sport,
                dport,
            ))
        }
        _ => anyhow::bail!("no IP header"),
    }
}
