//! Maps under pressure (issue 9, "Faults"): the per-source table full under a spoofed flood from
//! more sources than it holds, and the recently-closed table overwritten. Each has a defined,
//! counted behaviour, checked here on the compiled program through BPF_PROG_TEST_RUN.
//!
//! Needs root (loading BPF programs, a namespace); run through `cargo xtask test`.

use std::net::{TcpListener, TcpStream};

use aya::maps::HashMap;
use synguard_common::{
    maps::{CLOSING_WAYS, Config, closing_entry, flow_hash_v4},
    policy::{AddrKey, Policy, SOURCE_SLOTS, SourceState, names},
    reason::{Event, Reason},
    tcp::{ACK, FIN},
};
use synguard_lab::{
    lab::idle_xdp::IdleXdp,
    testrun::fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX, default_config, loopback_config},
    testrun::frames::{self, CLIENT_MAC, SERVER_MAC, SERVER_V4, Segment, Tags},
};

const PORT: u16 = 80;

fn syn_from(src: [u8; 4]) -> Vec<u8> {
    let seg = Segment::syn(40000, PORT, 7, frames::linux_syn_options(1460, 1, 7));
    frames::tcp_v4(src, SERVER_V4, Tags::None, (CLIENT_MAC, SERVER_MAC), &seg)
}

/// The i-th spoofed source: 10.0.0.0/8, never a martian.
fn source(i: u32) -> [u8; 4] {
    let [_, b, c, d] = (i + 1).to_be_bytes();
    [10, b, c, d]
}

#[test]
fn a_full_source_table_evicts_unused_sources_which_start_over() {
    let _fast = IdleXdp::new("press").expect("idle XDP device (needs root)");
    let mut f = Fixture::new(default_config(), &[PORT]).unwrap();
    // One SYN per minute, a burst of one: a tracked source's second SYN is dropped, an
    // untracked (new or evicted) source's first SYN is answered.
    f.set_policy(Policy {
        src_cost_ns: 60_000_000_000,
        src_burst_ns: 60_000_000_000,
        ..Default::default()
    })
    .unwrap();
    // A spoofed flood from twice as many sources as the table holds: every SYN is still
    // answered and every new source tracked (counted once each).
    let sent = 2 * SOURCE_SLOTS;
    for i in 0..sent {
        let out = f.run(&syn_from(source(i))).unwrap();
        assert_eq!(out.action, XDP_TX, "source {i}");
    }
    let tracked = f.event(Event::SourceTracked).unwrap();
    assert_eq!(tracked, u64::from(sent), "every new source counted once");
    let held = {
        let table: HashMap<_, AddrKey, SourceState> =
            HashMap::try_from(f.map_ref(names::SOURCES).unwrap()).unwrap();
        table.keys().filter(|k| k.is_ok()).count() as u64
    };
    assert!(held <= u64::from(SOURCE_SLOTS), "{held} entries");
    // The newest source is still tracked: its second SYN is over its rate.
    let newest = syn_from(source(sent - 1));
    assert_eq!(f.run(&newest).unwrap().action, XDP_DROP);
    assert_eq!(f.verdict(Reason::DropSourceRate).unwrap(), 1);
    // The first one was evicted long ago: it starts over, answered and tracked anew.
    assert_eq!(
        f.run(&syn_from(source(0))).unwrap().action,
        XDP_TX,
        "evicted source"
    );
    assert_eq!(f.event(Event::SourceTracked).unwrap(), tracked + 1);
    eprintln!(
        "{sent} sources through a table of {SOURCE_SLOTS}: {tracked} tracked, {held} held, {} \
         evicted",
        tracked - held
    );
}

/// `flow_hash_v4` of a loopback 4-tuple as the program computes it (addresses as read from the
/// packet, ports as numbers).
fn lo_hash(sport: u16, dport: u16) -> u64 {
    let lo = u32::from_ne_bytes([127, 0, 0, 1]);
    flow_hash_v4(lo, lo, sport, dport)
}

fn bucket(sport: u16, dport: u16) -> u32 {
    closing_entry(lo_hash(sport, dport), 0).0
}

/// A listener port and a client port whose 4-tuple shares `want`'s bucket (2^17 buckets, so
/// about one pair in 131 072), the listener on none of `avoid`.
fn colliding_pair(want: u32, avoid: &[u16]) -> Option<(TcpListener, TcpStream)> {
    for dport in 20000..30000u16 {
        if avoid.contains(&dport) {
            continue;
        }
        for sport in 40000..60000u16 {
            if bucket(sport, dport) != want {
                continue;
            }
            let Ok(l) = TcpListener::bind(("127.0.0.1", dport)) else {
                break;
            };
            let sock = connect_from(sport, dport);
            if let Some(s) = sock {
                return Some((l, s));
            }
        }
    }
    None
}

/// Connects from 127.0.0.1:`sport` (bound first) to 127.0.0.1:`dport`.
fn connect_from(sport: u16, dport: u16) -> Option<TcpStream> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor we own; on success ownership moves into the
    // TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return None;
        }
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            4,
        );
        let addr = |port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let (a, b) = (addr(sport), addr(dport));
        if libc::bind(fd, &a as *const _ as *const libc::sockaddr, len) != 0
            || libc::connect(fd, &b as *const _ as *const libc::sockaddr, len) != 0
        {
            libc::close(fd);
            return None;
        }
        Some(TcpStream::from_raw_fd(fd))
    }
}

/// A bucket of the recently-closed table holds `CLOSING_WAYS` live records: the next close in
/// it loses the oldest, which is counted, and that flow's reconnect gets a cookie (as without
/// the table; the README's limits say so).
#[test]
fn an_overwritten_recently_closed_record_is_counted_and_its_flow_gets_a_cookie() {
    let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let p1 = l1.local_addr().unwrap().port();
    let c1 = TcpStream::connect(l1.local_addr().unwrap()).unwrap();
    let s1 = c1.local_addr().unwrap().port();
    let want = bucket(s1, p1);
    // CLOSING_WAYS more real connections on loopback whose 4-tuples share that bucket.
    let mut others = Vec::new();
    let mut ports = vec![p1];
    for _ in 0..CLOSING_WAYS {
        let (l, c) = colliding_pair(want, &ports).expect("a colliding 4-tuple");
        let (p, sp) = (
            l.local_addr().unwrap().port(),
            c.local_addr().unwrap().port(),
        );
        assert_eq!(bucket(sp, p), want);
        ports.push(p);
        let accepted = l.accept().unwrap();
        others.push((l, c, accepted, sp, p));
    }
    let _accepted = l1.accept().unwrap();

    let cfg = loopback_config();
    let f = Fixture::new(cfg, &ports).unwrap();
    let lo = [127, 0, 0, 1];
    let frame = |sport: u16, dport: u16, flags: u8| {
        let mut seg = Segment::syn(sport, dport, 1, vec![]);
        seg.flags = flags;
        seg.ack = 1;
        frames::tcp_v4(lo, lo, Tags::None, (CLIENT_MAC, SERVER_MAC), &seg)
    };
    let syn = |sport: u16, dport: u16| {
        let seg = Segment::syn(sport, dport, 9, frames::linux_syn_options(1460, 1, 7));
        frames::tcp_v4(lo, lo, Tags::None, (CLIENT_MAC, SERVER_MAC), &seg)
    };
    // Client 1 closes first, then all but one of the others: every record fits.
    assert_eq!(f.run(&frame(s1, p1, FIN | ACK)).unwrap().action, XDP_PASS);
    // The records' times are in units of ~1.07 s: client 1's must be the oldest.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let n = others.len();
    for &(_, _, _, sp, p) in &others[..n - 1] {
        assert_eq!(f.run(&frame(sp, p, FIN | ACK)).unwrap().action, XDP_PASS);
    }
    assert_eq!(f.event(Event::CloseRecordReplaced).unwrap(), 0);
    // One close more than the bucket holds: the oldest record, client 1's, is lost and counted.
    let (_, _, _, s_last, p_last) = others[n - 1];
    assert_eq!(
        f.run(&frame(s_last, p_last, FIN | ACK)).unwrap().action,
        XDP_PASS
    );
    assert_eq!(f.event(Event::CloseRecordReplaced).unwrap(), 1);
    // Every other client's reconnect reaches the kernel; client 1's gets a cookie.
    for &(_, _, _, sp, p) in &others {
        assert_eq!(f.run(&syn(sp, p)).unwrap().action, XDP_PASS);
    }
    assert_eq!(
        f.verdict(Reason::PassSynRecentClose).unwrap(),
        others.len() as u64
    );
    assert_eq!(f.run(&syn(s1, p1)).unwrap().action, XDP_TX);
    // A second FIN of a recorded client rewrites its own record: nothing lost.
    assert_eq!(
        f.run(&frame(s_last, p_last, FIN | ACK)).unwrap().action,
        XDP_PASS
    );
    assert_eq!(f.event(Event::CloseRecordReplaced).unwrap(), 1);
}

/// The flood-event ring buffer full because userspace does not read it: the program still takes
/// every mode decision, and counts each event it could not queue (`flood_event_lost`).
#[test]
fn a_full_event_ring_loses_events_not_decisions() {
    use std::time::{Duration, Instant};
    use synguard_common::maps::{MODE_AUTO, SYN_WINDOW_NS};
    // One page: room for 4096 / (8-byte header + 24-byte event) = 128 events.
    const RING: u32 = 4096;
    let cfg = Config {
        mode: MODE_AUTO,
        // One SYN in a 100 ms window is 10 SYN/s: cookies on; the next window's single SYN
        // is below the off threshold and the hold is zero: off again. Every window rolls over
        // into a switch, and every switch queues an event.
        syn_on_pps: 10,
        syn_off_pps: 20,
        hold_ns: 0,
        ..default_config()
    };
    let f = Fixture::with_event_ring(cfg, &[PORT], Some(RING)).unwrap();
    let syn = syn_from([10, 1, 2, 3]);
    let capacity = u64::from(RING) / 32;
    let deadline = Instant::now() + Duration::from_secs(90);
    let gap = Duration::from_nanos(SYN_WINDOW_NS + SYN_WINDOW_NS / 10);
    while f.event(Event::FloodEventLost).unwrap() < 5 {
        assert!(Instant::now() < deadline, "the ring never filled");
        f.run(&syn).unwrap();
        std::thread::sleep(gap);
    }
    let on = f.event(Event::CookieModeOn).unwrap();
    let off = f.event(Event::CookieModeOff).unwrap();
    let lost = f.event(Event::FloodEventLost).unwrap();
    let mut f = f;
    let queued = f.flood_events().unwrap().len() as u64;
    eprintln!("{on} on + {off} off switches: {queued} events queued, {lost} lost");
    assert!(
        queued <= capacity,
        "{queued} events in a ring of {capacity}"
    );
    assert_eq!(
        queued + lost,
        on + off,
        "every switch either queued or counted as lost"
    );
}
