//! The connection table on crafted frames (BPF_PROG_TEST_RUN): a stamped 4-tuple passes as
//! established without the kernel's socket lookup, an unstamped one is checked for a cookie
//! without it while the loader's promise holds, and without the promise (or once it lapsed)
//! the lookup decides as before. No socket exists for any frame here, so a pass as established
//! can only come from the table. Root (`cargo xtask test`).

use std::time::Duration;

use synguard::host::clock::monotonic_ns;
use synguard_common::{
    conns::CONN_TTL_NS,
    maps::Config,
    reason::{Event, Reason},
    tcp::{ACK, FIN},
};
use synguard_lab::testrun::{
    fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX, default_config},
    frames::*,
};

mod common;
use common::syn::*;
use common::{PORT, own_config};

const HOUR: u64 = 3_600_000_000_000;

fn fixture(cfg: Config) -> Fixture {
    common::testrun_fixture_with_secret(cfg)
}

/// An ACK of the client's tuple (`CLIENT_PORT` -> `PORT`) with an ack number no cookie has.
fn stray_ack(ipv6: bool, tags: Tags, flags: u8) -> Vec<u8> {
    stray_ack_from(CLIENT_PORT, ipv6, tags, flags)
}

fn stray_ack_from(sport: u16, ipv6: bool, tags: Tags, flags: u8) -> Vec<u8> {
    let seg = Segment {
        sport,
        dport: PORT,
        seq: ISN.wrapping_add(1),
        ack: 0x0bad_c0de,
        flags,
        window: 502,
        options: vec![],
        payload: b"data".to_vec(),
    };
    if ipv6 {
        client_syn_v6(tags, &seg)
    } else {
        client_syn_v4(tags, &seg)
    }
}

#[test]
fn a_stamped_connection_passes_without_a_socket_lookup() {
    for cfg in [default_config(), own_config()] {
        let mut f = fixture(cfg);
        f.set_conns_state(monotonic_ns() + HOUR).unwrap();
        let mut n = 0;
        for (sport, ipv6, tags) in [
            (CLIENT_PORT, false, Tags::None),
            (CLIENT_PORT, true, Tags::None),
            (CLIENT_PORT + 1, false, Tags::QinQ(3, 4)),
        ] {
            let frame = stray_ack_from(sport, ipv6, tags, ACK);
            // Not stamped: no socket, no cookie: an ACK flood's packet.
            assert_eq!(f.run(&frame).unwrap().action, XDP_DROP, "ipv6={ipv6}");
            f.stamp_conn(&frame, monotonic_ns()).unwrap();
            let out = f.run(&frame).unwrap();
            assert_eq!(out.action, XDP_PASS, "ipv6={ipv6} {tags:?}");
            assert_eq!(out.frame, frame);
            n += 1;
        }
        assert_eq!(f.verdict(Reason::PassEstablished).unwrap(), n);
        assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), n);
        assert_eq!(f.event(Event::AckLookupSkipped).unwrap(), n);
    }
}

#[test]
fn an_unstamped_ack_is_checked_for_a_cookie_without_the_lookup() {
    let mut f = fixture(default_config());
    f.set_conns_state(monotonic_ns() + HOUR).unwrap();
    let syn = Syn::linux(Tags::None, false);
    let out = f.run(&syn.frame()).unwrap();
    assert_eq!(out.action, XDP_TX);
    let good = final_ack(&syn, &out.frame);
    assert_eq!(f.run(&good).unwrap().action, XDP_PASS);
    assert_eq!(f.verdict(Reason::PassCookieAck).unwrap(), 1);
    let bogus = stray_ack_from(CLIENT_PORT + 7, false, Tags::None, ACK);
    assert_eq!(f.run(&bogus).unwrap().action, XDP_DROP);
    assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 1);
    assert_eq!(f.event(Event::AckLookupSkipped).unwrap(), 2);
}

/// The client's segments right behind a valid final ACK reach XDP before the stack has made
/// the connection: they pass on the handshake's stamp (none is dropped for a cookie its moved
/// sequence number no longer matches, none is handed over as a second handshake). Once the
/// moment is over, the lookup and the cookie check decide again.
#[test]
fn the_segments_behind_a_valid_final_ack_pass() {
    for (cfg, own) in [(default_config(), false), (own_config(), true)] {
        for ipv6 in [false, true] {
            let mut f = fixture(cfg);
            // The ACK and the segments behind it come through one CPU, as from one NIC queue.
            assert!(f.on_cpu(0).unwrap(), "CPU 0 is online");
            f.set_conns_state(monotonic_ns() + HOUR).unwrap();
            let syn = Syn::linux(Tags::None, ipv6);
            let synack = f.run(&syn.frame()).unwrap().frame;
            assert_eq!(f.run(&final_ack(&syn, &synack)).unwrap().action, XDP_PASS);
            for (sent, len) in [(0, 1000), (1000, 1000), (2000, 1400)] {
                let seg = data_after_handshake(&syn, &synack, sent, len);
                let out = f.run(&seg).unwrap();
                assert_eq!(
                    (out.action, &out.frame),
                    (XDP_PASS, &seg),
                    "own={own} {sent}"
                );
            }
            assert_eq!(f.verdict(Reason::PassCookieAck).unwrap(), 1, "own={own}");
            assert_eq!(f.verdict(Reason::PassEstablished).unwrap(), 3, "own={own}");
            if own {
                assert_eq!(f.event(Event::OwnCookieAckMarked).unwrap(), 1);
            }
            // A second later: no socket came of it here, and the lookup finds none.
            let late = data_after_handshake(&syn, &synack, 3400, 100);
            f.stamp_handshake(&late, monotonic_ns() - 1_000_000_000, false)
                .unwrap();
            assert_eq!(f.run(&late).unwrap().action, XDP_DROP, "own={own}");
            assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 1);
            // Waiting for the TC program's handoff: passes in XDP on the CPU that passed the
            // own cookie's ACK (kernel cookies never wait for one: the lookup decides).
            f.stamp_handshake(&late, monotonic_ns(), true).unwrap();
            let want = if own { XDP_PASS } else { XDP_DROP };
            assert_eq!(f.run(&late).unwrap().action, want, "own={own}");
        }
    }
}

/// Own cookies: the client's segments behind a final ACK that came through another CPU (a
/// NIC queue that changed for the 4-tuple) may reach the stack before the ACK, and at the
/// listener without the request socket they would earn a RST. So on another CPU the socket
/// lookup decides: with no connection yet, the first segment's own cookie (its sequence and
/// ack numbers are the ACK's) is checked and the segment handed over marked; a later one,
/// which no cookie can vouch for, is dropped and sent again by the client.
#[test]
fn behind_an_own_cookie_ack_on_another_cpu_the_segments_are_checked() {
    let mut f = fixture(own_config());
    assert!(f.on_cpu(0).unwrap(), "CPU 0 is online");
    if !f.on_cpu(1).unwrap() {
        eprintln!("skipped: CPU 1 is not online; the test needs two CPUs");
        return;
    }
    f.on_cpu(0).unwrap();
    f.set_conns_state(monotonic_ns() + HOUR).unwrap();
    let syn = Syn::linux(Tags::None, false);
    let synack = f.run(&syn.frame()).unwrap().frame;
    assert_eq!(f.run(&final_ack(&syn, &synack)).unwrap().action, XDP_PASS);
    let first = data_after_handshake(&syn, &synack, 0, 1000);
    let second = data_after_handshake(&syn, &synack, 1000, 1000);
    assert!(f.on_cpu(1).unwrap());
    assert_eq!(f.run(&second).unwrap().action, XDP_DROP);
    assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 1);
    assert_eq!(f.run(&first).unwrap().action, XDP_PASS);
    assert_eq!(f.verdict(Reason::PassCookieAck).unwrap(), 2);
    assert_eq!(f.event(Event::OwnCookieAckMarked).unwrap(), 2);
    assert_eq!(f.verdict(Reason::PassEstablished).unwrap(), 0);
    // Behind the segment handed over here, and on the CPU that passed the ACK, the segments
    // pass unmarked.
    assert_eq!(f.run(&second).unwrap().action, XDP_PASS);
    assert!(f.on_cpu(0).unwrap());
    assert_eq!(f.run(&second).unwrap().action, XDP_PASS);
    assert_eq!(f.verdict(Reason::PassEstablished).unwrap(), 2);
    assert_eq!(f.event(Event::OwnCookieAckMarked).unwrap(), 2);
}

#[test]
fn without_the_promise_the_socket_lookup_decides() {
    let mut f = fixture(default_config());
    let bogus = stray_ack(false, Tags::None, ACK);
    // Never promised (a loader without the table, or before its first pass).
    assert_eq!(f.run(&bogus).unwrap().action, XDP_DROP);
    // A promise that lapsed (the loader stopped or is late).
    f.set_conns_state(monotonic_ns().saturating_sub(1)).unwrap();
    assert_eq!(f.run(&bogus).unwrap().action, XDP_DROP);
    assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 2);
    assert_eq!(f.event(Event::AckLookupSkipped).unwrap(), 0);
    // A stamp still says "maybe" without the promise.
    f.stamp_conn(&bogus, monotonic_ns()).unwrap();
    assert_eq!(f.run(&bogus).unwrap().action, XDP_PASS);
    assert_eq!(f.verdict(Reason::PassEstablished).unwrap(), 1);
}

/// Any stamp is a "maybe", however old: the loader's pass empties expired slots, and until it
/// does, the packet only goes to the kernel as without the table.
#[test]
fn an_old_stamp_still_passes_until_the_pass_empties_it() {
    let mut f = fixture(default_config());
    f.set_conns_state(monotonic_ns() + HOUR).unwrap();
    let ack = stray_ack(true, Tags::Dot1q(9), ACK);
    let old = monotonic_ns() - CONN_TTL_NS - 3 * Duration::from_secs(1).as_nanos() as u64;
    f.stamp_conn(&ack, old).unwrap();
    assert_eq!(f.run(&ack).unwrap().action, XDP_PASS);
    f.clear_conn(&ack).unwrap();
    assert_eq!(f.run(&ack).unwrap().action, XDP_DROP);
    assert_eq!(f.event(Event::AckLookupSkipped).unwrap(), 1);
}

/// A request socket's stamp keeps the socket lookup, which alone can tell the final ACK of the
/// kernel's own handshake from an ACK flood's guess at it.
#[test]
fn a_request_sockets_stamp_sends_its_acks_to_the_lookup() {
    let mut f = fixture(default_config());
    f.set_conns_state(monotonic_ns() + HOUR).unwrap();
    let ack = stray_ack(false, Tags::None, ACK);
    f.stamp_request(&ack, monotonic_ns()).unwrap();
    // No socket behind it here: the lookup finds nothing, the cookie check fails.
    assert_eq!(f.run(&ack).unwrap().action, XDP_DROP);
    assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 1);
    assert_eq!(f.event(Event::AckLookupSkipped).unwrap(), 0);
}

/// Another 4-tuple's stamp in the slot vouches for nothing: the lookup decides.
#[test]
fn another_tuples_stamp_in_the_slot_sends_the_ack_to_the_lookup() {
    let mut f = fixture(default_config());
    f.set_conns_state(monotonic_ns() + HOUR).unwrap();
    let ack = stray_ack(true, Tags::None, ACK);
    f.stamp_other_in_slot(&ack, monotonic_ns()).unwrap();
    assert_eq!(f.run(&ack).unwrap().action, XDP_DROP);
    assert_eq!(f.verdict(Reason::DropAckBadCookie).unwrap(), 1);
    assert_eq!(f.event(Event::AckLookupSkipped).unwrap(), 0);
}

/// Under the promise, a filter entry no writer renewed lately means no socket, whatever the
/// slot still holds (a stamp the pass has not emptied yet): the table is not read.
#[test]
fn a_stale_filter_entry_is_no_socket_while_trusted() {
    let mut f = fixture(default_config());
    let ack = stray_ack(false, Tags::None, ACK);
    f.stamp_conn(&ack, monotonic_ns()).unwrap();
    f.age_conn_filter(&ack).unwrap();
    // Not trusted: the slot's stamp still answers.
    assert_eq!(f.run(&ack).unwrap().action, XDP_PASS);
    f.set_conns_state(monotonic_ns() + HOUR).unwrap();
    assert_eq!(f.run(&ack).unwrap().action, XDP_DROP);
    assert_eq!(f.event(Event::AckLookupSkipped).unwrap(), 1);
}

/// A FIN of a connection the table vouches for is remembered like one the lookup found: a new
/// SYN on its 4-tuple then reaches the kernel (TIME_WAIT recycling).
#[test]
fn a_fin_of_a_stamped_connection_is_remembered() {
    let mut f = fixture(default_config());
    f.set_conns_state(monotonic_ns() + HOUR).unwrap();
    let fin = stray_ack(false, Tags::None, FIN | ACK);
    f.stamp_conn(&fin, monotonic_ns()).unwrap();
    assert_eq!(f.run(&fin).unwrap().action, XDP_PASS);
    let syn = Syn::linux(Tags::None, false).frame();
    let out = f.run(&syn).unwrap();
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(f.verdict(Reason::PassSynRecentClose).unwrap(), 1);
}
