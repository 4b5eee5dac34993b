//! What own-cookie mode hands the kernel, and how the XDP program tells the TC program about a
//! valid cookie ACK: the kfunc argument `bpf_tcp_req_attrs`, the XDP metadata in front of the
//! packet, the secret's map value, and the pure functions that fill them.
//!
//! `bpf_sk_assign_tcp_reqsk` (net/core/filter.c, Linux 6.9) checks its argument struct by size
//! only (`attrs__sz != sizeof(*attrs)` -> -EINVAL), so the layout below is copied field by field
//! from include/net/tcp.h and its size fixed at compile time.

use crate::{own_cookie::CookieOpts, siphash::Key};

/// `struct bpf_tcp_req_attrs` (include/net/tcp.h), field by field. `reserved` must be zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfTcpReqAttrs {
    pub rcv_tsval: u32,
    pub rcv_tsecr: u32,
    pub mss: u16,
    pub rcv_wscale: u8,
    pub snd_wscale: u8,
    pub ecn_ok: u8,
    pub wscale_ok: u8,
    pub sack_ok: u8,
    pub tstamp_ok: u8,
    pub usec_ts_ok: u8,
    pub reserved: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<BpfTcpReqAttrs>() == 20);

/// Written by the XDP program in front of a valid cookie ACK (`bpf_xdp_adjust_meta`), read by
/// the TC program (`__sk_buff.data_meta`). The metadata area must be a multiple of 4 bytes and at
/// most 32 (`xdp_metalen_invalid`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnAckMeta {
    pub attrs: BpfTcpReqAttrs,
    /// Offset of the TCP header from the start of the IP header.
    pub tcp_off: u16,
    /// 1 for IPv6.
    pub ipv6: u8,
    pub _pad: u8,
    /// [`META_MAGIC`]: a frame with metadata that is not ours is left alone.
    pub magic: u32,
}
const _: () = assert!(core::mem::size_of::<OwnAckMeta>() == 28);
pub const META_LEN: usize = core::mem::size_of::<OwnAckMeta>();
pub const META_MAGIC: u32 = 0x5347_4f43; // "SGOC"

/// The single entry of the cookie secret map. Written by the loader at start and on reload; the
/// previous key stays valid up to and including slot `previous_until`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CookieSecret {
    pub current: Key,
    pub previous: Key,
    pub previous_until: u32,
    /// Non-zero when `previous` holds a key.
    pub has_previous: u32,
}
const _: () = assert!(core::mem::size_of::<CookieSecret>() == 40);

impl CookieSecret {
    /// The value after rotating to `next` at time slot `now_slot`: the key in use until now stays
    /// valid for the rest of this slot and the next, as long as its cookies live.
    pub fn rotate(&self, next: Key, now_slot: u32) -> Self {
        CookieSecret {
            current: next,
            previous: self.current,
            previous_until: now_slot.wrapping_add(1),
            has_previous: 1,
        }
    }

    /// Whether `previous` may still validate a cookie at `now_slot`.
    #[inline(always)]
    pub fn previous_valid(&self, now_slot: u32) -> bool {
        self.has_previous != 0 && (self.previous_until.wrapping_sub(now_slot) as i32) >= 0
    }
}

/// The request socket's attributes for a handshake whose cookie decoded to `opts`: MSS from the
/// cookie's class, the client's window scale and ours (`rcv_wscale`, the one the SYN-ACK
/// advertised), SACK and ECN from the cookie, timestamps from the ACK (`ts` = its TSval and
/// TSecr). The kernel computes the connection's timestamp offset from the TSecr
/// (`tsoff = rcv_tsecr - now` in `bpf_sk_assign_tcp_reqsk`), so any TSval we sent works.
#[inline(always)]
pub fn req_attrs(
    opts: &CookieOpts,
    ipv6: bool,
    rcv_wscale: u8,
    ts: Option<(u32, u32)>,
) -> BpfTcpReqAttrs {
    let (tsval, tsecr) = ts.unwrap_or((0, 0));
    BpfTcpReqAttrs {
        rcv_tsval: tsval,
        rcv_tsecr: tsecr,
        mss: opts.mss(ipv6),
        rcv_wscale: if opts.wscale.is_some() { rcv_wscale } else { 0 },
        snd_wscale: opts.wscale.unwrap_or(0),
        ecn_ok: opts.ecn as u8,
        wscale_ok: opts.wscale.is_some() as u8,
        sack_ok: opts.sack as u8,
        tstamp_ok: ts.is_some() as u8,
        usec_ts_ok: 0,
        reserved: [0; 3],
    }
}

/// How much of an ACK's option area [`ack_timestamp`] reads: NOP, NOP and the option.
pub const ACK_TS_HEAD: usize = 12;

/// TCP option kinds read here.
const OPT_NOP: u8 = 1;
const OPT_TIMESTAMP: u8 = 8;

/// The timestamp option of an ACK (TSval, TSecr), from the first 12 bytes of its option area
/// (`len` bytes long), where
/// every common stack puts it in an ACK: NOP, NOP, timestamp first (Linux `tcp_options_write`,
/// the BSDs, Windows). Only that layout is read. Verifier workaround: a walk over the options
/// here, on top of the SYN's, made verification ten times slower (docs/verifier.md); an ACK
/// with the option elsewhere gets a connection without timestamps, which TCP tolerates
/// (RFC 7323 section 3.2: a side that did not negotiate them ignores them).
#[inline(always)]
pub fn ack_timestamp(opts: &[u8; ACK_TS_HEAD], len: usize) -> Option<(u32, u32)> {
    if len >= 12
        && opts[0] == OPT_NOP
        && opts[1] == OPT_NOP
        && opts[2] == OPT_TIMESTAMP
        && opts[3] == 10
    {
        return Some(ts_at(opts, 2));
    }
    None
}

#[inline(always)]
fn ts_at(opts: &[u8; ACK_TS_HEAD], i: usize) -> (u32, u32) {
    let b = |k: usize| opts.get(i + k).copied().unwrap_or(0);
    (
        u32::from_be_bytes([b(2), b(3), b(4), b(5)]),
        u32::from_be_bytes([b(6), b(7), b(8), b(9)]),
    )
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), no padding (sizes asserted above), every bit pattern valid.
    unsafe impl aya::Pod for super::CookieSecret {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_from_a_cookie() {
        let o = CookieOpts {
            mss_class: 3,
            wscale: Some(7),
            sack: true,
            ecn: false,
        };
        let a = req_attrs(&o, false, 10, Some((111, 222)));
        assert_eq!(
            a,
            BpfTcpReqAttrs {
                rcv_tsval: 111,
                rcv_tsecr: 222,
                mss: 1460,
                rcv_wscale: 10,
                snd_wscale: 7,
                ecn_ok: 0,
                wscale_ok: 1,
                sack_ok: 1,
                tstamp_ok: 1,
                usec_ts_ok: 0,
                reserved: [0; 3],
            }
        );
        let o = CookieOpts {
            mss_class: 0,
            wscale: None,
            sack: false,
            ecn: true,
        };
        let a = req_attrs(&o, true, 10, None);
        assert_eq!(
            (
                a.mss,
                a.wscale_ok,
                a.rcv_wscale,
                a.snd_wscale,
                a.tstamp_ok,
                a.ecn_ok
            ),
            (1220, 0, 0, 0, 0, 1)
        );
    }

    #[test]
    fn ack_timestamp_fixed_layout_only() {
        let o = [1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 9];
        assert_eq!(ack_timestamp(&o, 12), Some((5, 9)));
        assert_eq!(ack_timestamp(&o, 40), Some((5, 9)));
        // Elsewhere than first: not read.
        let o = [1, 1, 5, 2, 1, 1, 8, 10, 0, 0, 1, 0];
        assert_eq!(ack_timestamp(&o, 16), None);
        // Too short for the option it announces.
        let o = [1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 9];
        assert_eq!(ack_timestamp(&o, 11), None);
        assert_eq!(ack_timestamp(&[0u8; 12], 0), None);
        // Truncated option, EOL first, bad length.
        let o = [8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(ack_timestamp(&o, 4), None);
        assert_eq!(ack_timestamp(&[0u8; 12], 12), None);
        let mut o = [0u8; 12];
        o[0] = 8;
        o[1] = 1;
        assert_eq!(ack_timestamp(&o, 12), None);
    }

    #[test]
    fn rotation_keeps_the_previous_key_one_slot() {
        let s = CookieSecret {
            current: [1, 2],
            ..Default::default()
        };
        assert!(!s.previous_valid(5));
        let r = s.rotate([3, 4], 10);
        assert_eq!((r.current, r.previous), ([3, 4], [1, 2]));
        assert!(r.previous_valid(10) && r.previous_valid(11));
        assert!(!r.previous_valid(12));
    }
}
