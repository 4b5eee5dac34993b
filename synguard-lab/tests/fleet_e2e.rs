//! End to end, own cookies across a fleet (`lab::fleet`): two servers hold one anycast address,
//! the router sends a client's SYN to A and its final ACK and all data to B. With one secret
//! file the handshake completes on B from A's cookie; with different keys B drops the ACK; a
//! rotation keeps working when the servers that check cookies rotate before the ones that make
//! them, also when their loaders' monotonic clocks differ (docs/own-cookies.md, "A fleet"). Root, one at a time (`cargo xtask test`).

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use synguard_common::reason::{Event, Reason};
use synguard_lab::lab::fleet::service_addr;
use synguard_lab::lab::synguard_proc::{Stats, Synguard};
use synguard_lab::lab::tcp_info::{TCPI_OPT_SACK, TCPI_OPT_TIMESTAMPS, TCPI_OPT_WSCALE};
use synguard_lab::lab::traffic::{self, ConnReport, Server, ServerConn, Transfer};

mod common;
use common::PORT;
use common::fleet::{FleetFixture, reload};

const KEY_1: &str = "00112233445566778899aabbccddeeff";
const KEY_2: &str = "ffeeddccbbaa99887766554433221100";
const KEY_3: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const SERVER_WAIT: Duration = Duration::from_secs(5);

/// Both servers' counters, and the router's steering counter, at one moment.
struct Sample {
    a: Stats,
    b: Stats,
    steered: u64,
}

fn sample(fx: &FleetFixture, a: &Synguard, b: &Synguard) -> Result<Sample> {
    Ok(Sample {
        a: a.stats()?,
        b: b.stats()?,
        steered: fx.fleet.steered_packets()?,
    })
}

/// Waits until `srv`'s server recorded `n` connections in all, and returns the new ones.
fn new_conns(srv: &Server, seen: usize, n: usize) -> Result<Vec<ServerConn>> {
    let conns = srv.wait_for(seen + n, SERVER_WAIT)?;
    Ok(conns[seen..].to_vec())
}

/// Every client connection has `opts` (timestamps exactly as asked) and the window scale B's
/// socket uses; B's sockets have the same options and moved the data.
fn check_options(client: &[ConnReport], on_b: &[ServerConn], opts: u8) {
    let wscale = on_b[0].info.rcv_wscale;
    for r in client {
        assert!(r.info.has(opts), "client options {:#x}", r.info.options);
        assert_eq!(
            r.info.options & TCPI_OPT_TIMESTAMPS,
            opts & TCPI_OPT_TIMESTAMPS
        );
        assert_eq!(r.info.snd_wscale, wscale, "A advertised what B uses");
    }
    for c in on_b {
        assert!(c.error.is_none(), "B's side of {}: {:?}", c.peer, c.error);
        assert!(c.info.has(opts), "B's options {:#x}", c.info.options);
        assert_eq!(
            c.info.options & TCPI_OPT_TIMESTAMPS,
            opts & TCPI_OPT_TIMESTAMPS
        );
        assert_eq!(c.info.rcv_wscale, wscale);
    }
    let big = on_b
        .iter()
        .filter(|c| c.received == 1 << 20 && c.sent == 1 << 20);
    assert_eq!(big.count(), 2, "one 1 MiB transfer per family on B");
}

/// One round of `n` steered connections per family: all complete on B, none reach A's
/// application, with `opts`.
fn steered_round(fx: &FleetFixture, n: usize, opts: u8) -> Result<()> {
    let (seen_a, seen_b) = (fx.a.connections().len(), fx.b.connections().len());
    let mut client = fx.batch(false, n)?;
    client.extend(fx.batch(true, n)?);
    let on_b = new_conns(&fx.b, seen_b, 2 * n)?;
    ensure!(
        fx.a.connections().len() == seen_a,
        "A's application accepted a steered connection"
    );
    check_options(&client, &on_b, opts);
    Ok(())
}

/// A fleet sharing a secret file: the client's SYN goes to A, its final ACK and data to B, and
/// B's kernel makes the connection from A's cookie, with window scaling and SACK negotiated
/// with and without client timestamps, over IPv4 and IPv6.
#[test]
fn a_handshake_steered_to_another_server_completes_there() -> Result<()> {
    let fx = FleetFixture::new()?;
    let key = fx.key_file("shared.key", KEY_1)?;
    let sg_a = fx.synguard(&fx.fleet.a, &key)?;
    let sg_b = fx.synguard(&fx.fleet.b, &key)?;
    fx.fleet.steer(true)?;
    let s0 = sample(&fx, &sg_a, &sg_b)?;
    let n = 20;
    steered_round(
        &fx,
        n,
        TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE,
    )?;
    fx.fleet.client.sysctl("net.ipv4.tcp_timestamps", "0")?;
    steered_round(&fx, n, TCPI_OPT_SACK | TCPI_OPT_WSCALE)?;
    let s1 = sample(&fx, &sg_a, &sg_b)?;
    let conns = 4 * n as u64;
    let a_cookies = s1.a.delta(&s0.a, Reason::TxSynAckCookie);
    let b_assigned = s1.b.event_delta(&s0.b, Event::OwnReqskAssigned);
    eprintln!(
        "A: {a_cookies} cookies, {} request sockets; B: {} cookies, {b_assigned} request \
         sockets, {} bad ACKs; router steered {} segments",
        s1.a.event_delta(&s0.a, Event::OwnReqskAssigned),
        s1.b.delta(&s0.b, Reason::TxSynAckCookie),
        s1.b.delta(&s0.b, Reason::DropAckBadCookie),
        s1.steered - s0.steered
    );
    assert!(a_cookies >= conns, "A answered {a_cookies} SYNs of {conns}");
    assert_eq!(
        s1.a.event_delta(&s0.a, Event::OwnReqskAssigned),
        0,
        "ACK reached A"
    );
    assert_eq!(
        s1.b.delta(&s0.b, Reason::TxSynAckCookie),
        0,
        "a SYN reached B"
    );
    // Exactly one each: the segments behind a final ACK pass on its handshake stamp, none is
    // handed over as a second handshake (which the kernel would discard).
    assert_eq!(
        b_assigned, conns,
        "B's request sockets for {conns} connections"
    );
    assert_eq!(s1.b.event_delta(&s0.b, Event::OwnReqskFailed), 0);
    assert_eq!(s1.b.delta(&s0.b, Reason::DropAckBadCookie), 0);
    assert!(
        s1.steered - s0.steered >= conns,
        "the router steered too little"
    );
    assert!(sg_b.stop()?.success() && sg_a.stop()?.success());
    Ok(())
}

/// The same with the TC program that checks cookies again on B (a driver without XDP
/// metadata): it validates A's cookie itself.
#[test]
fn a_steered_handshake_completes_through_the_checking_tc_program() -> Result<()> {
    let fx = FleetFixture::new()?;
    let key = fx.key_file("shared.key", KEY_1)?;
    let sg_a = fx.synguard(&fx.fleet.a, &key)?;
    let sg_b = fx.synguard_with(&fx.fleet.b, &key, &["--own-tc", "check"])?;
    fx.fleet.steer(true)?;
    let s0 = sg_b.stats()?;
    steered_round(
        &fx,
        10,
        TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE,
    )?;
    let assigned = sg_b.stats()?.event_delta(&s0, Event::OwnReqskAssigned);
    // One each: the TC program hands over the final ACK, not the segments behind it.
    assert_eq!(assigned, 20, "B's request sockets for 20 connections");
    assert!(sg_b.stop()?.success() && sg_a.stop()?.success());
    Ok(())
}

/// With different keys on A and B the steered ACK is dropped on B as a bad cookie and the
/// request is never answered; unsteered, the same client completes on A.
#[test]
fn different_secrets_drop_the_steered_ack() -> Result<()> {
    let fx = FleetFixture::new()?;
    let sg_a = fx.synguard(&fx.fleet.a, &fx.key_file("a.key", KEY_1)?)?;
    let sg_b = fx.synguard(&fx.fleet.b, &fx.key_file("b.key", KEY_2)?)?;
    fx.batch(false, 3)?;
    fx.batch(true, 3)?;
    new_conns(&fx.a, 0, 6).context("unsteered connections on A")?;

    fx.fleet.steer(true)?;
    let s0 = sample(&fx, &sg_a, &sg_b)?;
    for v6 in [false, true] {
        assert!(!fx.probe_answered(v6)?, "answered with B on another key");
    }
    let s1 = sample(&fx, &sg_a, &sg_b)?;
    let dropped = s1.b.delta(&s0.b, Reason::DropAckBadCookie);
    eprintln!("B dropped {dropped} steered segments as bad cookies");
    // The final ACK and the request of each probe at least.
    assert!(dropped >= 4, "B dropped {dropped}");
    assert_eq!(s1.b.event_delta(&s0.b, Event::OwnReqskAssigned), 0);
    assert_eq!(
        fx.b.connections().len(),
        0,
        "B's application got a connection"
    );
    assert_eq!(
        fx.a.connections().len(),
        6,
        "A's application got a steered one"
    );
    assert!(sg_b.stop()?.success() && sg_a.stop()?.success());
    Ok(())
}

/// A rotation across the fleet, one server at a time: B (which checks, here) first, then A
/// (which makes the cookies). While B is ahead it accepts A's cookies under the previous key.
/// Rotated the other way round (the maker first), B refuses the new key's cookies until it
/// rotates too, and a client caught in between stalls until then: so a fleet reloads all its
/// servers within a short time, or the ones that check first.
#[test]
fn rotation_across_the_fleet() -> Result<()> {
    let fx = FleetFixture::new()?;
    let key = fx.key_file("shared.key", KEY_1)?;
    let sg_a = fx.synguard(&fx.fleet.a, &key)?;
    let sg_b = fx.synguard(&fx.fleet.b, &key)?;
    fx.fleet.steer(true)?;
    let all = TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE;
    steered_round(&fx, 3, all)?;

    // B ahead: current key 2, previous key 1 (A's).
    fx.key_file("shared.key", KEY_2)?;
    reload(&sg_b)?;
    steered_round(&fx, 3, all).context("B a key ahead of A")?;
    reload(&sg_a)?;
    steered_round(&fx, 3, all).context("both on key 2")?;

    // A ahead: it makes cookies under key 3, which B does not know yet. A client connecting
    // now stalls (its ACK and request are dropped on B) until B reloads; then a retransmission
    // of its request is accepted, the cookie still being alive.
    fx.key_file("shared.key", KEY_3)?;
    reload(&sg_a)?;
    let s0 = sg_b.stats()?;
    let b_seen = fx.b.connections().len();
    let stalled = fx.fleet.client.spawn("fleet-stalled", || {
        let small = Transfer {
            upload: 1000,
            download: 1000,
        };
        traffic::connect_once(service_addr(false, PORT), small)
    })?;
    assert!(
        !fx.probe_answered(false)?,
        "B accepted a key it does not have"
    );
    let dropped = sg_b.stats()?.delta(&s0, Reason::DropAckBadCookie);
    assert!(dropped >= 4, "B dropped {dropped}");
    reload(&sg_b)?;
    let late = stalled
        .join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"))??
        .context("the stalled client after B's reload")?;
    new_conns(&fx.b, b_seen, 1).context("the stalled client's connection on B")?;
    eprintln!(
        "B dropped {dropped} segments while a key behind; the stalled client then completed \
         ({} bytes)",
        late.downloaded
    );
    steered_round(&fx, 3, all).context("both on key 3")?;
    assert!(sg_b.stop()?.success() && sg_a.stop()?.success());
    Ok(())
}

/// The servers of a real fleet run on different machines, booted at different times, so their
/// CLOCK_MONOTONIC readings (time since boot) differ; the cookie's time slot comes from
/// CLOCK_TAI, which NTP keeps the same on all of them. One kernel has one clock for the
/// programs whatever a test does, so the programs' side is checked where it can fail: the
/// SYN-ACK's cookie is the one of the TAI slot the host computes, not of the monotonic slot
/// (`the_cookies_time_slot_is_the_tai_slot`, own_fixtures.rs; `synguard_common::tai` for the
/// clock arithmetic). Here the loader's side: B's loader runs in a time namespace that shifts its
/// CLOCK_MONOTONIC as if its machine had booted 30 s ago, and rotates its key first; it still
/// accepts A's cookies under the previous key, because the rotation's slot (`previous_until`)
/// is TAI's too. With the slot from the loader's monotonic clock the previous key expired at
/// once and B dropped the steered ACKs.
#[test]
fn servers_booted_at_different_times_accept_each_others_cookies() -> Result<()> {
    let uptime_s = common::uptime_s()?;
    // The monotonic slot is 68.7 s long: at least three slots apart, or the test shows nothing.
    ensure!(uptime_s > 240, "the host is up {uptime_s} s, too short");
    let fx = FleetFixture::new()?;
    let key = fx.key_file("shared.key", KEY_1)?;
    let sg_a = fx.synguard(&fx.fleet.a, &key)?;
    let sg_b = fx.synguard_booted_later(&fx.fleet.b, &key, uptime_s - 30)?;
    fx.fleet.steer(true)?;
    let all = TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE;
    steered_round(&fx, 3, all)?;
    fx.key_file("shared.key", KEY_2)?;
    reload(&sg_b)?;
    let s0 = sg_b.stats()?;
    steered_round(&fx, 3, all).context("B rotated, A's cookies under B's previous key")?;
    let s1 = sg_b.stats()?;
    assert_eq!(s1.delta(&s0, Reason::DropAckBadCookie), 0);
    assert!(s1.event_delta(&s0, Event::OwnReqskAssigned) >= 6);
    reload(&sg_a)?;
    steered_round(&fx, 3, all).context("both on key 2")?;
    assert!(sg_b.stop()?.success() && sg_a.stop()?.success());
    Ok(())
}
