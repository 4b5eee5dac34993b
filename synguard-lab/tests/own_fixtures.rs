//! Own cookies on crafted frames (BPF_PROG_TEST_RUN): `synguard` tail-calls its own-cookie
//! program, which answers a SYN with an ISN from `synguard_common::own_cookie` under a key the
//! test knows, keeps window scale and SACK without a timestamp, and passes the returning ACK
//! marked for the TC program; bogus and tampered ACKs are dropped. Root (`cargo xtask test`).

use aya::programs::{TestRun as _, TestRunOptions};
use etherparse::{SlicedPacket, TcpOptionElement, TransportSlice};
use synguard_common::{
    maps::{COOKIES_OWN, MODE_ALWAYS, MODE_AUTO},
    own_cookie::{self, CookieOpts, Flow},
    reason::{Event, Reason},
    reqsk::CookieSecret,
    tcp::{ACK, CWR, ECE, SYN},
};
use synguard_lab::testrun::{
    fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX, default_config},
    frames::*,
    own_slots,
};

mod common;
use common::PORT;

const CLIENT_PORT: u16 = 40001;
const ISN: u32 = 0x2345_6789;
const KEY: [u64; 2] = [0x1111_2222_3333_4444, 0x5555_6666_7777_8888];

fn fixture() -> Fixture {
    let mut cfg = default_config();
    cfg.cookies = COOKIES_OWN;
    let mut f = Fixture::new(cfg, &[PORT]).expect("load synguard (needs root)");
    f.set_secret(CookieSecret {
        current: KEY,
        ..Default::default()
    })
    .unwrap();
    f
}

/// The cookies' time slot now: CLOCK_TAI's, as in the programs (`bpf_ktime_get_tai_ns`).
fn now_slot() -> u32 {
    own_cookie::slot_of(synguard::host::clock::tai_ns())
}

#[derive(Clone, Copy, Debug)]
struct Syn {
    ipv6: bool,
    tags: Tags,
    mss: u16,
    ts: bool,
    sack: bool,
    wscale: Option<u8>,
    ecn: bool,
}

impl Syn {
    fn segment(&self, flags: u8, seq: u32, ack: u32, options: Vec<TcpOptionElement>) -> Vec<u8> {
        let seg = Segment {
            sport: CLIENT_PORT,
            dport: PORT,
            seq,
            ack,
            flags,
            window: 64240,
            options,
            payload: Vec::new(),
        };
        if self.ipv6 {
            client_syn_v6(self.tags, &seg)
        } else {
            client_syn_v4(self.tags, &seg)
        }
    }

    fn frame(&self) -> Vec<u8> {
        let mut o = vec![TcpOptionElement::MaximumSegmentSize(self.mss)];
        if self.sack {
            o.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
        }
        if self.ts {
            o.push(TcpOptionElement::Timestamp(777, 0));
        }
        if let Some(w) = self.wscale {
            o.push(TcpOptionElement::Noop);
            o.push(TcpOptionElement::WindowScale(w));
        }
        let flags = if self.ecn { SYN | ECE | CWR } else { SYN };
        self.segment(flags, ISN, 0, o)
    }

    fn flow(&self) -> Flow {
        if self.ipv6 {
            Flow::v6(&CLIENT_V6, &SERVER_V6, CLIENT_PORT, PORT)
        } else {
            Flow::v4(CLIENT_V4, SERVER_V4, CLIENT_PORT, PORT)
        }
    }

    fn opts(&self) -> CookieOpts {
        CookieOpts {
            mss_class: own_cookie::mss_class(self.mss, self.ipv6),
            wscale: self.wscale,
            sack: self.sack,
            ecn: self.ecn,
        }
    }

    /// The client's last ACK for a SYN-ACK with `cookie` (and `tsval`, echoed).
    fn ack(&self, cookie: u32, tsval: Option<u32>) -> Vec<u8> {
        let o = match tsval {
            Some(t) => vec![
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(778, t),
            ],
            None => Vec::new(),
        };
        self.segment(ACK, ISN.wrapping_add(1), cookie.wrapping_add(1), o)
    }
}

/// What a SYN-ACK says: (ISN, flags, MSS, SACK-permitted, (TSval, TSecr), window scale).
type Said = (u32, u8, Option<u16>, bool, Option<(u32, u32)>, Option<u8>);

fn synack(frame: &[u8]) -> Said {
    let p = SlicedPacket::from_ethernet(frame).expect("SYN-ACK parses");
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("no TCP");
    };
    let (mut mss, mut sack, mut ts, mut ws) = (None, false, None, None);
    for o in tcp.options_iterator() {
        match o.unwrap() {
            TcpOptionElement::MaximumSegmentSize(m) => mss = Some(m),
            TcpOptionElement::SelectiveAcknowledgementPermitted => sack = true,
            TcpOptionElement::Timestamp(v, e) => ts = Some((v, e)),
            TcpOptionElement::WindowScale(w) => ws = Some(w),
            _ => {}
        }
    }
    (tcp.sequence_number(), tcp.slice()[13], mss, sack, ts, ws)
}

fn variants() -> Vec<Syn> {
    let mut v = Vec::new();
    for ipv6 in [false, true] {
        for tags in [Tags::None, Tags::Dot1q(5), Tags::QinQ(6, 7)] {
            for ts in [true, false] {
                v.push(Syn {
                    ipv6,
                    tags,
                    mss: 1460,
                    ts,
                    sack: true,
                    wscale: Some(7),
                    ecn: false,
                });
            }
        }
        v.push(Syn {
            ipv6,
            tags: Tags::None,
            mss: 1300,
            ts: false,
            sack: false,
            wscale: None,
            ecn: true,
        });
        v.push(Syn {
            ipv6,
            tags: Tags::None,
            mss: 9000,
            ts: false,
            sack: true,
            wscale: Some(14),
            ecn: true,
        });
        v.push(Syn {
            ipv6,
            tags: Tags::None,
            mss: 536,
            ts: true,
            sack: false,
            wscale: Some(0),
            ecn: false,
        });
    }
    v
}

/// SYN -> SYN-ACK with exactly the own cookie and the client's options kept without a
/// timestamp -> final ACK passed, marked for TC; counters as expected.
#[test]
fn own_cookie_handshake_keeps_options_without_timestamps() {
    let mut f = fixture();
    let cfg = default_config();
    let mut n = 0;
    for syn in variants() {
        let (out, slots) = own_slots::around(|| f.run(&syn.frame()).unwrap());
        assert_eq!(out.action, XDP_TX, "{syn:?}");
        let (isn, flags, mss, sack, ts, ws) = synack(&out.frame);
        let cookie = |s| own_cookie::make(&KEY, &syn.flow(), ISN, s, &syn.opts());
        let made = own_slots::made_in(slots, isn, cookie);
        assert!(made, "ISN {isn:#x} is not the own cookie, {syn:?}");
        assert_eq!(flags, SYN | ACK | if syn.ecn { ECE } else { 0 }, "{syn:?}");
        assert!(mss.is_some(), "{syn:?}");
        assert_eq!(sack, syn.sack, "SACK kept without a timestamp, {syn:?}");
        assert_eq!(
            ws,
            syn.wscale.map(|_| cfg.wscale as u8),
            "our wscale, {syn:?}"
        );
        assert_eq!(
            ts.map(|t| t.1),
            syn.ts.then_some(777),
            "TSecr echoes, {syn:?}"
        );

        let ack = syn.ack(isn, ts.map(|t| t.0));
        let a = f.run(&ack).unwrap();
        assert_eq!(a.action, XDP_PASS, "final ACK, {syn:?}");
        // The variants share a 4-tuple, whose packets pass for a moment after a valid final
        // ACK (`conn_handshake_stamp`): each variant is a later handshake.
        f.clear_conn(&ack).unwrap();
        n += 1;
    }
    assert_eq!(f.verdict(Reason::TxSynAckCookie).unwrap(), n);
    assert_eq!(f.verdict(Reason::PassCookieAck).unwrap(), n);
    assert_eq!(f.event(Event::CookieAckAccepted).unwrap(), n);
    // BPF_PROG_TEST_RUN gives XDP a metadata area, as veth does.
    assert_eq!(f.event(Event::OwnCookieAckMarked).unwrap(), n);
    assert_eq!(f.verdict(Reason::PassSynListenerRefresh).unwrap(), 0);
}

/// `synguard_own_xdp` answers only the SYN `synguard` just handed over: run without a hand-over
/// on the same CPU right after an answered SYN (as at a take-over, when a program of another
/// build may tail-call it), it finds the hand-over consumed and passes the frame untouched,
/// counted as a configuration error (fail open), instead of answering it from the previous
/// packet's parsed headers.
#[test]
fn the_own_cookie_program_answers_only_a_fresh_hand_over() {
    // One CPU for both runs: the hand-over lives in this CPU's workspace.
    synguard_lab::testrun::bench::pin(None).unwrap();
    let f = fixture();
    let syn = variants().remove(0).frame();
    assert_eq!(
        f.run(&syn).unwrap().action,
        XDP_TX,
        "answered through the hand-over"
    );
    let other = variants().remove(1).frame();
    assert_ne!(other, syn);
    let mut out = vec![0u8; other.len() + 256];
    let r = f
        .own_xdp_program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(&other),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .unwrap();
    out.truncate(r.data_size_out as usize);
    assert_eq!(r.return_value, XDP_PASS, "no hand-over: the frame passes");
    assert_eq!(out, other, "and is not rewritten");
    assert_eq!(f.verdict(Reason::ErrConfig).unwrap(), 1);
    assert_eq!(f.verdict(Reason::TxSynAckCookie).unwrap(), 1);
}

/// The cookie's time slot is CLOCK_TAI's, the clock a fleet shares, and not the monotonic
/// clock's (time since this machine booted): the ISN is the cookie of the TAI slot computed
/// here, and an ACK whose cookie was made in the monotonic slot is dropped.
#[test]
fn the_cookies_time_slot_is_the_tai_slot() {
    let f = fixture();
    let syn = variants()[0];
    let mono = own_cookie::slot_of(synguard::host::clock::monotonic_ns());
    let (out, slots) = own_slots::around(|| f.run(&syn.frame()).unwrap());
    assert!(
        mono + 1 < slots[0],
        "TAI slots {slots:?} too close to {mono}"
    );
    let (isn, ..) = synack(&out.frame);
    let cookie = |slot| own_cookie::make(&KEY, &syn.flow(), ISN, slot, &syn.opts());
    assert!(
        own_slots::made_in(slots, isn, cookie),
        "ISN {isn:#x} is not the cookie of TAI slots {slots:?}"
    );
    let a = f.run(&syn.ack(cookie(mono), None)).unwrap();
    assert_eq!(a.action, XDP_DROP, "a cookie of the monotonic slot passed");
    assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 1);
}

/// Random, tampered, wrong-key and expired-key ACKs are dropped in XDP; the previous key is
/// accepted while it lasts.
#[test]
fn bogus_and_tampered_acks_are_dropped_and_the_previous_key_lasts_one_slot() {
    let mut f = fixture();
    let syn = variants()[1];
    let out = f.run(&syn.frame()).unwrap();
    let (isn, ..) = synack(&out.frame);
    for bit in [0, 3, 5, 7, 8, 12, 20, 31] {
        let a = f.run(&syn.ack(isn ^ 1 << bit, None)).unwrap();
        assert_eq!(a.action, XDP_DROP, "bit {bit} flipped");
    }
    assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 8);
    assert_eq!(f.run(&syn.ack(isn, None)).unwrap().action, XDP_PASS);
    // Each ACK below stands for a handshake of its own: the last one's moment is over.
    f.clear_conn(&syn.ack(isn, None)).unwrap();

    // Rotated: the old key as previous, valid through the next slot.
    let next = [KEY[0] ^ 0xff, KEY[1]];
    let rotated = CookieSecret {
        current: KEY,
        ..Default::default()
    }
    .rotate(next, now_slot());
    f.set_secret(rotated).unwrap();
    assert_eq!(
        f.run(&syn.ack(isn, None)).unwrap().action,
        XDP_PASS,
        "previous key"
    );
    f.clear_conn(&syn.ack(isn, None)).unwrap();
    // Expired (its last slot is behind us) or a wrong key alone: dropped.
    f.set_secret(CookieSecret {
        previous_until: now_slot().wrapping_sub(1),
        ..rotated
    })
    .unwrap();
    assert_eq!(
        f.run(&syn.ack(isn, None)).unwrap().action,
        XDP_DROP,
        "expired key"
    );
    f.set_secret(CookieSecret {
        current: next,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        f.run(&syn.ack(isn, None)).unwrap().action,
        XDP_DROP,
        "wrong key"
    );
}

/// Two servers loaded with one key (`--cookie-secret-file` on both): a handshake answered by
/// one completes on the other, as when a route change steers the ACK elsewhere; a server with
/// another key drops it.
#[test]
fn servers_sharing_a_key_accept_each_others_cookies() {
    let a = fixture();
    let b = fixture();
    let mut c = fixture();
    c.set_secret(CookieSecret {
        current: [KEY[0], KEY[1] ^ 1],
        ..Default::default()
    })
    .unwrap();
    for syn in variants() {
        let out = a.run(&syn.frame()).unwrap();
        assert_eq!(out.action, XDP_TX);
        let (isn, _, _, _, ts, _) = synack(&out.frame);
        let ack = syn.ack(isn, ts.map(|t| t.0));
        assert_eq!(b.run(&ack).unwrap().action, XDP_PASS, "shared key, {syn:?}");
        assert_eq!(c.run(&ack).unwrap().action, XDP_DROP, "other key, {syn:?}");
    }
}

/// A host with timestamps, SACK and window scaling switched off: the SYN-ACK offers none of
/// them (the kernel would refuse a request socket asking for them), and the handshake completes.
#[test]
fn options_the_host_switched_off_are_not_offered() {
    use synguard_common::maps::{HOST_NO_SACK, HOST_NO_TIMESTAMPS, HOST_NO_WSCALE};
    let mut cfg = default_config();
    cfg.cookies = COOKIES_OWN | HOST_NO_TIMESTAMPS | HOST_NO_SACK | HOST_NO_WSCALE;
    let mut f = Fixture::new(cfg, &[PORT]).unwrap();
    f.set_secret(CookieSecret {
        current: KEY,
        ..Default::default()
    })
    .unwrap();
    let syn = variants()[0];
    assert!(syn.ts && syn.sack && syn.wscale.is_some());
    let out = f.run(&syn.frame()).unwrap();
    assert_eq!(out.action, XDP_TX);
    let (isn, _, mss, sack, ts, ws) = synack(&out.frame);
    assert_eq!((mss.is_some(), sack, ts, ws), (true, false, None, None));
    let ack = syn.ack(isn, Some(5));
    assert_eq!(f.run(&ack).unwrap().action, XDP_PASS);
}

/// An ACK for a cookie the kernel made itself (its SYN queue overflowed while SYNs still went
/// to it) passes unmarked for the kernel to check while the kernel may have sent one: auto mode
/// with cookies off. In always mode the kernel answers no SYN, and a sustained flood's bogus
/// ACKs are spared the kernel's hash (`maps::kernel_cookies_possible`).
#[test]
fn kernel_made_cookies_pass_while_the_kernel_may_have_sent_them() {
    let mut own = fixture();
    let kernel = Fixture::new(default_config(), &[PORT]).unwrap();
    let syn = variants()[0];
    let out = kernel.run(&syn.frame()).unwrap();
    assert_eq!(out.action, XDP_TX);
    let (isn, _, _, _, ts, _) = synack(&out.frame);
    let ack = syn.ack(isn, ts.map(|t| t.0));
    let mut cfg = default_config();
    cfg.cookies = COOKIES_OWN;
    cfg.mode = MODE_AUTO;
    own.set_config(cfg).unwrap();
    assert_eq!(own.run(&ack).unwrap().action, XDP_PASS);
    assert_eq!(own.verdict(Reason::PassCookieAck).unwrap(), 1);
    assert_eq!(
        own.event(Event::OwnCookieAckMarked).unwrap(),
        0,
        "not marked for TC"
    );
    own.clear_conn(&ack).unwrap();
    cfg.mode = MODE_ALWAYS;
    own.set_config(cfg).unwrap();
    assert_eq!(own.run(&ack).unwrap().action, XDP_DROP, "always mode");
    assert_eq!(own.verdict(Reason::DropAckBadCookie).unwrap(), 1);
}

/// The TC program for drivers without XDP metadata checks the cookie itself: a valid unmarked
/// cookie ACK gets as far as the listener lookup (no listener in this test: `own_no_listener`),
/// a bogus one, an established-looking segment and a SYN do not. Untagged and behind one tag
/// (what TC sees of a frame with two: the kernel took the outer one out).
#[test]
fn the_checking_tc_program_validates_unmarked_acks() {
    use aya::programs::{TestRun as _, TestRunOptions};
    let f = fixture();
    let tc = f.tc_check_program().unwrap();
    let run = |frame: &[u8]| {
        let r = tc
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(r.return_value, 0, "TC_ACT_OK");
    };
    let mut reached = 0;
    for syn in variants()
        .into_iter()
        .filter(|s| !matches!(s.tags, Tags::QinQ(..)))
    {
        let out = f.run(&syn.frame()).unwrap();
        let (isn, _, _, _, ts, _) = synack(&out.frame);
        run(&syn.ack(isn, ts.map(|t| t.0)));
        reached += 1;
        assert_eq!(
            f.event(Event::OwnNoListener).unwrap(),
            reached,
            "valid, {syn:?}"
        );
        run(&syn.ack(isn ^ 0x100, None));
        run(&syn.frame());
        assert_eq!(
            f.event(Event::OwnNoListener).unwrap(),
            reached,
            "bogus or SYN, {syn:?}"
        );
    }
    assert!(reached >= 10);
}
