//! Structure-aware frame generator: VLAN depth, IPv4 options, IPv6 extension chains, fragments,
//! every flag combination, TCP option layouts (well-formed, duplicated, zero, oversized, wrong
//! lengths), payloads, non-unicast addresses and MACs, correct or wrong checksums; then
//! mutations: inconsistent length fields, truncation at every header boundary, flipped bytes,
//! trailing bytes.

use super::rng::Rng;
use crate::testrun::frames::{CLIENT_MAC, CLIENT_V4, CLIENT_V6, SERVER_MAC, SERVER_V4, SERVER_V6};

/// Ports the fuzzer protects.
pub const PROTECTED: [u16; 2] = [80, 443];

/// One generated frame with where its headers start (for targeted mutations).
#[derive(Clone, Debug)]
pub struct Case {
    pub frame: Vec<u8>,
    /// Offsets of: IP header, TCP header, end of TCP header, end of IP packet.
    pub marks: [usize; 4],
    pub ipv6: bool,
}

/// RFC 1071 sum of 16-bit words, folded, not complemented.
pub fn sum16(data: &[u8], mut sum: u32) -> u32 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += w as u32;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The TCP pseudo-header sum (folded, not complemented).
pub fn pseudo_sum(src: &[u8], dst: &[u8], len: usize) -> u32 {
    let mut s = sum16(src, 0);
    s = sum16(dst, s);
    let l = (len as u32).to_be_bytes();
    sum16(&[l[0], l[1], l[2], l[3], 0, 0, 0, 6], s)
}

fn options(rng: &mut Rng) -> Vec<u8> {
    if rng.pct(10) {
        let n = rng.below(41) as usize;
        return rng.bytes(n);
    }
    if rng.pct(30) {
        // The layout every Linux client sends.
        let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
        o.extend(rng.bytes(4));
        o.extend([0, 0, 0, 0, 1, 3, 3, rng.below(16) as u8]);
        if rng.pct(20) {
            let mss = rng.pick(&[0u16, 88, 536, 1300, 9000]).to_be_bytes();
            o[2..4].copy_from_slice(&mss);
        }
        return o;
    }
    let mut o = Vec::new();
    for _ in 0..rng.below(7) {
        match rng.below(12) {
            0 => o.extend([2, 4, 0, 0]),
            1 | 2 => {
                let m = rng.pick(&[88u16, 535, 536, 1220, 1300, 1440, 1460, 9000, 65535]);
                o.extend([2, 4]);
                o.extend(m.to_be_bytes());
            }
            3 => o.extend([3, 3, rng.below(20) as u8]),
            4 => o.extend([4, 2]),
            5 => {
                o.extend([8, 10]);
                o.extend(rng.bytes(8));
            }
            6 => o.push(1),
            7 => o.push(0),
            // A known kind with a wrong length.
            8 => {
                let kind = rng.pick(&[2u8, 3, 4, 8]);
                let len = rng.below(12) as u8;
                o.extend([kind, len]);
                o.extend(rng.bytes(len.saturating_sub(2) as usize));
            }
            // Length 0 or 1, or past the end.
            9 => o.extend([rng.pick(&[2u8, 3, 8, 30]), rng.pick(&[0u8, 1, 40, 255])]),
            _ => {
                let len = 2 + rng.below(8) as u8;
                o.extend([rng.pick(&[5u8, 19, 28, 30, 34, 254]), len]);
                o.extend(rng.bytes(len as usize - 2));
            }
        }
    }
    o.truncate(40);
    while o.len() % 4 != 0 {
        o.push(if rng.pct(50) { 1 } else { 0 });
    }
    o
}

fn flags(rng: &mut Rng) -> u8 {
    use synguard_common::tcp::*;
    match rng.below(10) {
        0..=4 => SYN | rng.pick(&[0, 0, 0, ECE | CWR, PSH, URG, ECE]),
        5 => ACK | rng.pick(&[0, PSH, FIN]),
        _ => rng.byte(),
    }
}

fn mac(rng: &mut Rng) -> [u8; 6] {
    match rng.below(20) {
        0 => [0xff; 6],
        1 => [0x01, 0x00, 0x5e, 0, 0, rng.byte()],
        2 => [0x33, 0x33, 0, 0, 0, rng.byte()],
        3 => [0x02, 0, 0, 0, 0, 0x77],
        _ => SERVER_MAC,
    }
}

fn src_v4(rng: &mut Rng) -> [u8; 4] {
    match rng.below(20) {
        0 => rng.pick(&[
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [224, 0, 0, 5],
            [240, 1, 2, 3],
            [255, 255, 255, 255],
            SERVER_V4,
        ]),
        1..=5 => [198, 18, 0, 2 + rng.below(250) as u8],
        _ => CLIENT_V4,
    }
}

fn src_v6(rng: &mut Rng) -> [u8; 16] {
    let mut a = CLIENT_V6;
    match rng.below(20) {
        0 => {
            let pick = rng.below(5);
            a = [0; 16];
            match pick {
                0 => {}
                1 => a[15] = 1,
                2 => {
                    a[0] = 0xff;
                    a[1] = 2;
                    a[15] = 1;
                }
                3 => {
                    a[10] = 0xff;
                    a[11] = 0xff;
                    a[12..16].copy_from_slice(&CLIENT_V4);
                }
                _ => a = SERVER_V6,
            }
        }
        1..=5 => a[15] = 2 + rng.below(250) as u8,
        _ => {}
    }
    a
}

/// The Ethernet header and VLAN tags.
fn l2(rng: &mut Rng, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(mac(rng));
    f.extend(CLIENT_MAC);
    for _ in 0..rng.pick(&[0u8, 0, 0, 1, 1, 2, 3]) {
        f.extend(rng.pick(&[0x8100u16, 0x88a8]).to_be_bytes());
        f.extend(((rng.below(4096)) as u16).to_be_bytes());
    }
    f.extend(ethertype.to_be_bytes());
    f
}

/// The TCP header with options; checksum zero.
fn tcp(rng: &mut Rng) -> Vec<u8> {
    let opts = options(rng);
    let mut t = Vec::new();
    t.extend(rng.pick(&[40000u16, 40001, 1024, 65535]).to_be_bytes());
    let dport = if rng.pct(85) {
        rng.pick(&PROTECTED)
    } else {
        rng.byte() as u16
    };
    t.extend(dport.to_be_bytes());
    t.extend((rng.next_u64() as u32).to_be_bytes());
    t.extend((rng.next_u64() as u32).to_be_bytes());
    t.push((((20 + opts.len()) / 4) as u8) << 4);
    t.push(flags(rng));
    t.extend((rng.next_u64() as u16).to_be_bytes());
    t.extend([0, 0, 0, 0]);
    t.extend(opts);
    t
}

/// IPv6 extension headers before TCP: (bytes, first next-header value).
fn v6_ext(rng: &mut Rng) -> (Vec<u8>, u8) {
    let n = rng.pick(&[0usize, 0, 0, 1, 2, 4, 5]);
    let kinds: Vec<u8> = (0..n).map(|_| rng.pick(&[0u8, 43, 60, 60, 44])).collect();
    let mut out = Vec::new();
    for (i, _) in kinds.iter().enumerate() {
        let next = kinds.get(i + 1).copied().unwrap_or(6);
        let len8 = rng.below(3) as u8;
        out.push(next);
        out.push(len8);
        out.extend(rng.bytes(6 + 8 * len8 as usize));
    }
    (out, kinds.first().copied().unwrap_or(6))
}

/// The host's addresses beside the server's that a batch lists (`model::Locals::others`): a
/// quarter of the frames go to one of them.
pub type Others = (Vec<[u8; 4]>, Vec<[u8; 16]>);

/// A fresh, mostly well-formed frame.
pub fn build(rng: &mut Rng, others: &Others) -> Case {
    let ipv6 = rng.pct(45);
    let mut t = tcp(rng);
    let payload = if rng.pct(25) {
        let n = 1 + rng.below(120) as usize;
        rng.bytes(n)
    } else {
        Vec::new()
    };
    let tcp_hdr_len = t.len();
    let seg_len = t.len() + payload.len();
    let mut f = l2(rng, if ipv6 { 0x86dd } else { 0x0800 });
    let ip_at = f.len();
    let other = rng.pct(25);
    let (src, dst): (Vec<u8>, Vec<u8>) = if ipv6 {
        let dst = match &others.1[..] {
            o if other && !o.is_empty() => rng.pick(o),
            _ => SERVER_V6,
        };
        (src_v6(rng).to_vec(), dst.to_vec())
    } else {
        let dst = match &others.0[..] {
            o if other && !o.is_empty() => rng.pick(o),
            _ => SERVER_V4,
        };
        (src_v4(rng).to_vec(), dst.to_vec())
    };
    let csum_mode = rng.below(20);
    let pseudo = pseudo_sum(&src, &dst, seg_len);
    let full = !sum16(&payload, sum16(&t, pseudo)) as u16;
    let field = match csum_mode {
        0 => rng.next_u64() as u16,
        1 => pseudo as u16,
        _ => full,
    };
    t[16..18].copy_from_slice(&field.to_be_bytes());
    if ipv6 {
        let (ext, first) = v6_ext(rng);
        f.extend([0x60, 0, 0, 0]);
        f.extend(((ext.len() + seg_len) as u16).to_be_bytes());
        f.extend([first, 64]);
        f.extend(&src);
        f.extend(&dst);
        f.extend(ext);
    } else {
        let opts = if rng.pct(15) {
            let n = 4 * (1 + rng.below(10)) as usize;
            rng.bytes(n)
        } else {
            Vec::new()
        };
        let ihl = 20 + opts.len();
        let mut h = vec![0x40 | (ihl / 4) as u8, 0];
        h.extend(((ihl + seg_len) as u16).to_be_bytes());
        h.extend([0, 0]);
        let frag = if rng.pct(5) {
            rng.pick(&[0x2000u16, 0x0001, 0x3fff])
        } else {
            0x4000
        };
        h.extend(frag.to_be_bytes());
        h.extend([64, if rng.pct(3) { 17 } else { 6 }, 0, 0]);
        h.extend(&src);
        h.extend(&dst);
        h.extend(opts);
        let mut c = !sum16(&h, 0) as u16;
        if rng.pct(5) {
            c ^= 1 + rng.below(0xfffe) as u16;
        }
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(h);
    }
    let tcp_at = f.len();
    f.extend(t);
    f.extend(payload);
    let end = f.len();
    Case {
        frame: f,
        marks: [ip_at, tcp_at, tcp_at + tcp_hdr_len, end],
        ipv6,
    }
}

/// Applies one to three mutations.
pub fn mutate(rng: &mut Rng, c: &mut Case) {
    for _ in 0..1 + rng.below(3) {
        let f = &mut c.frame;
        let [ip, tcp, tcp_end, _] = c.marks;
        match rng.below(6) {
            // Truncate at a header boundary, or just before or after one.
            0 => {
                let at = rng.pick(&[
                    0,
                    6,
                    12,
                    13,
                    14,
                    16,
                    ip,
                    ip + 19,
                    ip + 39,
                    tcp,
                    tcp + 12,
                    tcp + 19,
                    tcp_end,
                ]);
                let at = (at as i64 + rng.pick(&[-1i64, 0, 0, 1])).max(0) as usize;
                f.truncate(at);
            }
            1 => {
                let n = f.len();
                if n > 0 {
                    let i = rng.below(n as u64) as usize;
                    f[i] ^= 1 << rng.below(8);
                }
            }
            // A length field set to something inconsistent.
            2 => {
                let (at, width) = if c.ipv6 {
                    rng.pick(&[(ip + 4, 2usize), (tcp + 12, 1), (ip + 41, 1)])
                } else {
                    rng.pick(&[(ip, 1usize), (ip + 2, 2), (tcp + 12, 1)])
                };
                for k in 0..width {
                    if at + k < f.len() {
                        f[at + k] = rng.byte();
                    }
                }
            }
            3 => {
                let n = 1 + rng.below(64) as usize;
                f.extend(rng.bytes(n));
            }
            4 => {
                let n = rng.below(f.len() as u64 + 1) as usize;
                f.truncate(n);
            }
            _ => {
                // The flags byte: every combination.
                if tcp + 13 < f.len() {
                    f[tcp + 13] = rng.byte();
                }
            }
        }
    }
}

/// Shortest frame `BPF_PROG_TEST_RUN` accepts for XDP (an Ethernet header, `bpf_test_init`);
/// drivers drop runts before XDP anyway.
pub const MIN_FRAME: usize = 14;

/// The next case: a built frame, mutated about a third of the time.
pub fn next(rng: &mut Rng, others: &Others) -> Case {
    let mut c = build(rng, others);
    if rng.pct(35) {
        mutate(rng, &mut c);
    }
    if c.frame.len() < MIN_FRAME {
        c.frame.resize(MIN_FRAME, 0);
    }
    c
}
