//! Client SYNs as the TestRun fixtures send them, and checks on the SYN-ACKs the program
//! answers with (expected bytes built with etherparse, independent of synguard's code).

use etherparse::{Ipv4HeaderSlice, SlicedPacket, TcpOptionElement, TransportSlice};
use synguard_common::tcp::{ACK, CWR, ECE, SYN};
use synguard_lab::testrun::{fixture::default_config, frames::*};

use super::PORT;

pub const CLIENT_PORT: u16 = 40000;
pub const ISN: u32 = 0x1234_5678;

/// The kernel's cookie MSS tables (`msstab` in net/ipv4/syncookies.c and net/ipv6/syncookies.c):
/// the cookie carries the largest entry not above the client's MSS (the first entry if none).
pub fn cookie_mss(client: u16, ipv6: bool) -> u16 {
    let table: [u16; 4] = if ipv6 {
        [1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60]
    } else {
        [536, 1300, 1440, 1460]
    };
    *table
        .iter()
        .rev()
        .find(|&&m| client >= m)
        .unwrap_or(&table[0])
}

/// The programs' clock (`bpf_ktime_get_coarse_ns`) in milliseconds.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain libc call with a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// A client SYN as the fixtures send it.
pub struct Syn {
    pub tags: Tags,
    pub ipv6: bool,
    pub mss: Option<u16>,
    pub tsval: Option<u32>,
    pub sack: bool,
    pub wscale: Option<u8>,
    pub ecn: bool,
}

impl Syn {
    pub fn linux(tags: Tags, ipv6: bool) -> Self {
        Syn {
            tags,
            ipv6,
            mss: Some(1460),
            tsval: Some(0x0a0b_0c0d),
            sack: true,
            wscale: Some(7),
            ecn: false,
        }
    }

    pub fn options(&self) -> Vec<TcpOptionElement> {
        let mut o = Vec::new();
        if let Some(m) = self.mss {
            o.push(TcpOptionElement::MaximumSegmentSize(m));
        }
        if self.sack {
            o.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
        }
        if let Some(t) = self.tsval {
            o.push(TcpOptionElement::Timestamp(t, 0));
        }
        if let Some(w) = self.wscale {
            o.push(TcpOptionElement::Noop);
            o.push(TcpOptionElement::WindowScale(w));
        }
        o
    }

    pub fn segment(&self) -> Segment {
        let mut s = Segment::syn(CLIENT_PORT, PORT, ISN, self.options());
        if self.ecn {
            s.flags |= ECE | CWR;
        }
        s
    }

    pub fn frame(&self) -> Vec<u8> {
        if self.ipv6 {
            client_syn_v6(self.tags, &self.segment())
        } else {
            client_syn_v4(self.tags, &self.segment())
        }
    }

    /// The SYN-ACK synguard must send, given the cookie and TSval it chose (the two values that
    /// depend on the kernel's secret and clock; both are checked separately).
    pub fn expected_synack(&self, cookie: u32, tsval: u32) -> Vec<u8> {
        let cfg = default_config();
        let cmss = cookie_mss(self.mss.unwrap_or(0), self.ipv6);
        let default_mss = if self.ipv6 { 1220 } else { 536 };
        let cap = if self.ipv6 { cfg.mss_v6 } else { cfg.mss_v4 } as u16;
        let mss = cmss.min(self.mss.unwrap_or(default_mss)).min(cap);
        let mut opts = vec![TcpOptionElement::MaximumSegmentSize(mss)];
        let with_ts = self.tsval.is_some();
        if let Some(client_ts) = self.tsval {
            if self.sack {
                opts.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
            } else {
                opts.push(TcpOptionElement::Noop);
                opts.push(TcpOptionElement::Noop);
            }
            opts.push(TcpOptionElement::Timestamp(tsval, client_ts));
            if self.wscale.is_some() {
                opts.push(TcpOptionElement::Noop);
                opts.push(TcpOptionElement::WindowScale(cfg.wscale as u8));
            }
        }
        let window = (65535 / cmss as u32 * cmss as u32) as u16;
        let mut seg = Segment {
            sport: PORT,
            dport: CLIENT_PORT,
            seq: cookie,
            ack: ISN.wrapping_add(1),
            flags: SYN | ACK,
            window,
            options: opts,
            payload: Vec::new(),
        };
        if self.ecn && with_ts {
            seg.flags |= ECE;
        }
        let macs = (SERVER_MAC, CLIENT_MAC);
        if self.ipv6 {
            tcp_v6(SERVER_V6, CLIENT_V6, self.tags, macs, &seg)
        } else {
            // Built by hand below rather than by `tcp_v4`: the SYN-ACK's IPv4 ID is 0 and DF set,
            // which `tcp_v4` also does; TTL 64.
            tcp_v4(SERVER_V4, CLIENT_V4, self.tags, macs, &seg)
        }
    }

    /// The TSval's low six bits, as `cookie_init_timestamp` encodes the client's options.
    pub fn expected_ts_bits(&self) -> u32 {
        let ws = self.wscale.map(|w| w as u32).unwrap_or(0xf);
        let ecn = self.ecn && self.tsval.is_some();
        ws | (self.sack as u32) << 4 | (ecn as u32) << 5
    }
}

pub fn l2_len(tags: Tags) -> usize {
    match tags {
        Tags::None => 14,
        Tags::Dot1q(_) => 18,
        Tags::QinQ(..) => 22,
    }
}

/// (cookie, TSval if any) read from a SYN-ACK frame.
pub fn cookie_and_tsval(frame: &[u8], tags: Tags) -> (u32, Option<u32>) {
    let p = SlicedPacket::from_ethernet(frame).expect("SYN-ACK parses");
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("SYN-ACK has no TCP header");
    };
    let ts = tcp.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::Timestamp(v, _)) => Some(v),
        _ => None,
    });
    let _ = tags;
    (tcp.sequence_number(), ts)
}

/// Verifies IPv4 header and TCP checksums of a frame with etherparse's own code.
pub fn assert_checksums(frame: &[u8]) {
    let p = SlicedPacket::from_ethernet(frame).expect("frame parses");
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("no TCP");
    };
    match p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let hs = Ipv4HeaderSlice::from_slice(h.slice()).unwrap();
            assert_eq!(
                hs.to_header().calc_header_checksum(),
                hs.header_checksum(),
                "IPv4 header checksum"
            );
            let c = tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap();
            assert_eq!(c, tcp.checksum(), "TCP checksum over IPv4");
        }
        Some(etherparse::NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let c = tcp.calc_checksum_ipv6(h.source(), h.destination()).unwrap();
            assert_eq!(c, tcp.checksum(), "TCP checksum over IPv6");
        }
        other => panic!("unexpected network layer {other:?}"),
    }
}

/// The final ACK of a client that got `synack`: seq ISN+1, ack cookie+1, echoing the TSval.
pub fn final_ack(syn: &Syn, synack: &[u8]) -> Vec<u8> {
    data_after_handshake(syn, synack, 0, 0)
}

/// A segment of `len` bytes of data that the client sends after `sent` bytes, acknowledging
/// `synack` (`final_ack` when both are 0).
pub fn data_after_handshake(syn: &Syn, synack: &[u8], sent: u32, len: usize) -> Vec<u8> {
    let (cookie, tsval) = cookie_and_tsval(synack, syn.tags);
    let mut opts = Vec::new();
    if let Some(ts) = tsval {
        opts.push(TcpOptionElement::Noop);
        opts.push(TcpOptionElement::Noop);
        opts.push(TcpOptionElement::Timestamp(syn.tsval.unwrap() + 1, ts));
    }
    let seg = Segment {
        sport: CLIENT_PORT,
        dport: PORT,
        seq: ISN.wrapping_add(1).wrapping_add(sent),
        ack: cookie.wrapping_add(1),
        flags: ACK,
        window: 502,
        options: opts,
        payload: vec![0x5a; len],
    };
    if syn.ipv6 {
        client_syn_v6(syn.tags, &seg)
    } else {
        client_syn_v4(syn.tags, &seg)
    }
}

pub fn refresh_v4_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let c = {
        let p = SlicedPacket::from_ethernet(&frame).unwrap();
        let (Some(TransportSlice::Tcp(tcp)), Some(etherparse::NetSlice::Ipv4(ip))) =
            (p.transport, p.net)
        else {
            panic!("not an IPv4 TCP frame")
        };
        tcp.calc_checksum_ipv4(ip.header().source(), ip.header().destination())
            .unwrap()
    };
    frame[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&c.to_be_bytes());
    frame
}

/// A segment to the protected port with these flags.
pub fn flagged(flags: u8, ipv6: bool) -> Vec<u8> {
    let mut seg = Segment::syn(CLIENT_PORT, PORT, ISN, vec![]);
    seg.flags = flags;
    seg.ack = if flags & ACK != 0 { 99 } else { 0 };
    if ipv6 {
        client_syn_v6(Tags::None, &seg)
    } else {
        client_syn_v4(Tags::None, &seg)
    }
}
