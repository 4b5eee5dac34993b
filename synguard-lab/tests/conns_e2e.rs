//! End to end, the connection table (docs/connection-table.md): while it is trusted, ACKs that
//! belong to no socket skip the kernel's socket lookup and are dropped, and no packet of a live
//! connection is: not of one opened before synguard attached and idle past a stamp's lifetime,
//! not of one opened during an ACK flood, not of a handshake the kernel answered itself, over
//! IPv4, IPv6 and a dual-stack listener's IPv4 connections. Root, one at a time
//! (`cargo xtask test`).

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use synguard_common::reason::{Event, Reason};
use synguard_common::tcp::ACK;
use synguard_lab::lab::hping::{Flood, FloodKind, FloodSpec};
use synguard_lab::lab::netns::Netns;
use synguard_lab::lab::synguard_proc::Stats;
use synguard_lab::lab::tcp_info::TcpInfo;
use synguard_lab::lab::topology::{SERVER_V4, SERVER_V6, spoof_addr};
use synguard_lab::testrun::frames::{Segment, Tags, tcp_v6};

mod common;
use common::Fixture;
use common::echo::{connect, echo_server, round_trip};
use common::ops::wait_for;
use common::raw::{mac, send_frames};

/// An echo service on the server's IPv4 address.
const V4_PORT: u16 = 8443;
/// An echo service on `[::]`: IPv6, and IPv4 as mapped addresses.
const DUAL_PORT: u16 = 8444;
const PORTS: &str = "80,8443,8444";
/// Longer than a stamp lives (`CONN_TTL_NS`, 60 s): only the loader's passes keep an idle
/// connection from before the attach in the table.
const IDLE_PAST_TTL: Duration = Duration::from_secs(70);
const IDLE: Duration = Duration::from_secs(12);
const ROUNDS: usize = 15;
/// Bogus IPv6 ACKs sent (hping3 sends IPv4 only).
const V6_ACKS: u16 = 500;

/// A client connection opened now (before synguard attaches), which talks once, then waits
/// for [`OldConn::talk`] and talks [`ROUNDS`] times more.
struct OldConn {
    to: SocketAddr,
    go: mpsc::Sender<()>,
    done: JoinHandle<Result<Result<u32>>>,
}

impl OldConn {
    fn open(client: &Netns, to: SocketAddr) -> Result<OldConn> {
        let (go, wait) = mpsc::channel::<()>();
        let (ready_tx, ready) = mpsc::channel::<()>();
        let done = client.spawn("old-client", move || -> Result<u32> {
            let mut conn = connect(to)?;
            round_trip(&mut conn, 0)?;
            ready_tx.send(()).ok();
            wait.recv()?;
            for i in 1..=ROUNDS {
                round_trip(&mut conn, i)?;
                std::thread::sleep(Duration::from_millis(50));
            }
            // Only the client's segments cross synguard (the server's ingress): one it dropped
            // would have been sent again.
            Ok(TcpInfo::of(&conn)?.total_retrans)
        })?;
        ready
            .recv_timeout(Duration::from_secs(5))
            .with_context(|| format!("old connection to {to} did not open"))?;
        Ok(OldConn { to, go, done })
    }

    fn talk(&self) -> Result<()> {
        self.go.send(()).context("old client gone")
    }

    /// Every round came back and nothing was sent twice.
    fn check(self) -> Result<()> {
        let retrans = self
            .done
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))?
            .context("netns")?
            .with_context(|| format!("the old connection to {}", self.to))?;
        ensure!(
            retrans == 0,
            "the old connection to {} retransmitted {retrans} segments",
            self.to
        );
        Ok(())
    }
}

/// `n` new connections to `to`, each with a round trip, one after another.
fn new_connections(
    client: &Netns,
    to: SocketAddr,
    n: usize,
) -> Result<JoinHandle<Result<Result<()>>>> {
    client.spawn("new-clients", move || -> Result<()> {
        for i in 0..n {
            let mut conn = connect(to).with_context(|| format!("new connection {i}"))?;
            round_trip(&mut conn, i).with_context(|| format!("new connection {i}"))?;
        }
        Ok(())
    })
}

fn joined(h: JoinHandle<Result<Result<()>>>) -> Result<()> {
    h.join()
        .map_err(|_| anyhow::anyhow!("thread panicked"))?
        .context("netns")?
}

/// `status --json` says the table is trusted; returns the sockets its last pass stamped.
fn wait_trusted(fx: &Fixture, at_least: u64) -> Result<u64> {
    wait_for(
        "status: connection table trusted",
        Duration::from_secs(10),
        || {
            let t = fx.status().ok()?["conn_table"].clone();
            let n = t["sockets"].as_u64()?;
            (t["trusted"].as_bool()? && n >= at_least).then_some(n)
        },
    )
}

fn ack_flood(port: u16, count: u64) -> FloodSpec {
    FloodSpec {
        kind: FloodKind::Ack,
        dst: SERVER_V4,
        port,
        count,
        interval_us: 5,
        spoof: Some(spoof_addr(91)),
    }
}

/// The flood was dropped, nearly all of it without the socket lookup. Not every ACK of it
/// need skip it: one whose slot a socket of the host stamped (any namespace, any test running
/// beside this one, on a protected port number) goes to the lookup (another tuple's stamp) or,
/// once in 2^16 such, passes to the kernel as a "maybe" (the same tag), as designed
/// (docs/connection-table.md); a few in 100 000 here.
fn check_flood_dropped(s0: &Stats, s1: &Stats, sent: u64) -> Result<()> {
    let dropped = s1.delta(s0, Reason::DropAckBadCookie);
    let skipped = s1.event_delta(s0, Event::AckLookupSkipped);
    eprintln!("{sent} flood ACKs sent: {dropped} dropped, lookup skipped for {skipped}");
    ensure!(
        dropped > 0 && dropped * 100 >= sent * 99,
        "flood ACKs dropped: {dropped} of {sent}"
    );
    ensure!(
        skipped <= dropped && skipped * 100 >= dropped * 99,
        "the socket lookup was skipped for {skipped} ACKs, {dropped} dropped: the table was not \
         trusted"
    );
    Ok(())
}

/// (a) + (b): an IPv4 connection opened before synguard attached (default mode) and idle
/// past a stamp's lifetime, then an ACK flood at its port: the old connection and new ones
/// opened during the flood carry data both ways; the flood is dropped without the lookup.
#[test]
fn old_idle_and_new_connections_live_through_an_ack_flood() -> Result<()> {
    let fx = Fixture::new()?;
    let to = SocketAddr::from((SERVER_V4, V4_PORT));
    echo_server(fx.ns(), to)?;
    let old = OldConn::open(&fx.lab.client.ns, to)?;
    let sg = fx.synguard(&["--ports", PORTS])?;
    let stamped = wait_trusted(&fx, 1)?;
    eprintln!("first pass stamped {stamped} sockets; idling {IDLE_PAST_TTL:?}");
    std::thread::sleep(IDLE_PAST_TTL);
    let s0 = sg.stats()?;
    let flood = Flood::start(&fx.lab.attacker, ack_flood(V4_PORT, 300_000))?;
    std::thread::sleep(Duration::from_millis(200));
    old.talk()?;
    let fresh = new_connections(&fx.lab.client.ns, to, 20)?;
    let old_result = old.check();
    let fresh_result = joined(fresh);
    let report = flood.wait(&fx.lab.attacker)?;
    let s1 = sg.stats()?;
    old_result?;
    fresh_result.context("new connections during the flood")?;
    check_flood_dropped(&s0, &s1, report.sent())?;
    ensure!(
        s1.delta(&s0, Reason::PassEstablished) >= ROUNDS as u64,
        "the connections' segments did not pass as established"
    );
    wait_trusted(&fx, 0)?;
    let text = fx.cli(&["status", "--iface", fx.iface()])?;
    ensure!(text.contains("connection table trusted"), "status:\n{text}");
    ensure!(sg.stop()?.success());
    Ok(())
}

/// (c): auto mode with cookies off: the kernel answers the SYN itself, with a request socket,
/// and the client's final ACK and data reach it while the table is trusted.
#[test]
fn handshakes_the_kernel_answers_complete_while_trusted() -> Result<()> {
    let fx = Fixture::new()?;
    let to = SocketAddr::from((SERVER_V4, V4_PORT));
    echo_server(fx.ns(), to)?;
    let sg = fx.synguard(&["--ports", PORTS, "--mode", "auto"])?;
    wait_trusted(&fx, 0)?;
    ensure!(
        fx.status()?["cookies_active"] == false,
        "cookies must be off here"
    );
    let s0 = sg.stats()?;
    joined(new_connections(&fx.lab.client.ns, to, 30)?)?;
    let s1 = sg.stats()?;
    let (bad, passed) = (
        s1.delta(&s0, Reason::DropAckBadCookie),
        s1.delta(&s0, Reason::PassEstablished),
    );
    eprintln!("30 kernel handshakes: {passed} segments passed as established, {bad} dropped");
    ensure!(bad == 0, "{bad} ACKs of real connections were dropped");
    ensure!(passed >= 60, "only {passed} segments passed as established");
    ensure!(fx.status()?["conn_table"]["trusted"] == true);
    ensure!(sg.stop()?.success());
    Ok(())
}

/// `n` bare ACKs over IPv6 from the attacker's own address to `port`, none of a connection.
fn bogus_v6_acks(fx: &Fixture, port: u16, n: u16) -> Result<()> {
    let macs = (mac(fx.lab.attacker.mac)?, mac(fx.lab.server.mac)?);
    let frames = (0..n)
        .map(|i| {
            let seg = Segment {
                flags: ACK,
                ack: 0x0bad_0000 + u32::from(i),
                ..Segment::syn(20_000 + i, port, 0x5eed_0000 + u32::from(i), Vec::new())
            };
            tcp_v6(
                fx.lab.attacker.v6.octets(),
                SERVER_V6.octets(),
                Tags::None,
                macs,
                &seg,
            )
        })
        .collect();
    send_frames(&fx.lab.attacker.ns, &fx.lab.attacker.ifname, frames)
}

/// (d): IPv6, and a dual-stack listener's IPv4 connection (a v4-mapped socket), both opened
/// before the attach: they keep talking after bogus ACKs of both families were dropped
/// without the lookup.
#[test]
fn ipv6_and_v4_mapped_connections_from_before_attach_keep_talking() -> Result<()> {
    let fx = Fixture::new()?;
    echo_server(fx.ns(), SocketAddr::from(([0u16; 8], DUAL_PORT)))?;
    let v6 = OldConn::open(
        &fx.lab.client.ns,
        SocketAddr::new(IpAddr::V6(SERVER_V6), DUAL_PORT),
    )?;
    let mapped = OldConn::open(
        &fx.lab.client.ns,
        SocketAddr::new(IpAddr::V4(SERVER_V4), DUAL_PORT),
    )?;
    let sg = fx.synguard(&["--ports", PORTS])?;
    wait_trusted(&fx, 2)?;
    std::thread::sleep(IDLE);
    let s0 = sg.stats()?;
    bogus_v6_acks(&fx, DUAL_PORT, V6_ACKS)?;
    let s_v6 = sg.stats()?;
    let report = fx.flood(ack_flood(DUAL_PORT, 50_000))?;
    v6.talk()?;
    mapped.talk()?;
    let (r6, r4) = (v6.check(), mapped.check());
    let s1 = sg.stats()?;
    r6.context("IPv6")?;
    r4.context("IPv4 on the dual-stack listener")?;
    check_flood_dropped(&s0, &s_v6, V6_ACKS.into()).context("IPv6 ACKs")?;
    check_flood_dropped(&s_v6, &s1, report.sent()).context("IPv4 flood")?;
    ensure!(sg.stop()?.success());
    Ok(())
}

/// A loader in a time namespace (its CLOCK_MONOTONIC an hour behind the programs', or as far
/// as the host's uptime allows: a fresh machine is up for less): its stamps and promise are
/// still in the programs' time, so the table is trusted and an old connection's packets pass
/// while a flood is dropped without the lookup.
#[test]
fn a_loader_in_a_time_namespace_stamps_in_the_programs_time() -> Result<()> {
    let shift_s = common::uptime_s()?.saturating_sub(30).min(3600);
    // Far past the table's horizons (a stamp's life, the promise's), or the test shows nothing.
    ensure!(
        shift_s >= 200,
        "the host is up for too short a time to shift the loader's clock"
    );
    let fx = Fixture::new()?;
    let to = SocketAddr::from((SERVER_V4, V4_PORT));
    echo_server(fx.ns(), to)?;
    let old = OldConn::open(&fx.lab.client.ns, to)?;
    let sg = synguard_lab::lab::synguard_proc::Synguard::start_booted_later(
        &common::bin()?,
        fx.ns(),
        fx.iface(),
        &["--ports", PORTS, "--cookies", "kernel"],
        shift_s,
    )?;
    wait_trusted(&fx, 1)?;
    let s0 = sg.stats()?;
    let report = fx.flood(ack_flood(V4_PORT, 50_000))?;
    old.talk()?;
    old.check()?;
    let s1 = sg.stats()?;
    check_flood_dropped(&s0, &s1, report.sent())?;
    ensure!(sg.stop()?.success());
    Ok(())
}

/// Accepts connections on `addr` in `ns` and holds them open, without a thread each.
fn holding_server(ns: &Netns, addr: SocketAddr) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    drop(ns.spawn("holder", move || -> Result<()> {
        let listener = TcpListener::bind(addr)?;
        tx.send(()).ok();
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn?);
        }
        Ok(())
    })?);
    rx.recv_timeout(Duration::from_secs(5))
        .with_context(|| format!("server on {addr} did not start"))
}

/// CPU time (user + system) of process `pid` in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// The pass over a namespace with a few thousand sockets: every one on a protected port is
/// stamped (status counts them), and what a pass and the daemon cost is printed (a figure,
/// not a check).
#[test]
fn a_pass_stamps_thousands_of_sockets() -> Result<()> {
    const CONNS: usize = 3000;
    let fx = Fixture::new()?;
    let to = SocketAddr::from((SERVER_V4, V4_PORT));
    holding_server(fx.ns(), to)?;
    let opened = fx
        .lab
        .client
        .ns
        .spawn("many-clients", move || -> Result<Vec<TcpStream>> {
            (0..CONNS).map(|_| connect(to)).collect()
        })?;
    let clients = opened
        .join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"))?
        .context("netns")??;
    let sg = synguard_lab::lab::synguard_proc::Synguard::start_with_env(
        &common::bin()?,
        fx.ns(),
        fx.iface(),
        &["--ports", PORTS, "--cookies", "kernel"],
        &[("RUST_LOG", "info,synguard::daemon::conns=debug")],
    )?;
    let stamped = wait_trusted(&fx, CONNS as u64)?;
    let pid = sg.pid().context("synguard pid")?;
    let (t0, c0) = (std::time::Instant::now(), cpu_ticks(pid)?);
    std::thread::sleep(Duration::from_secs(31));
    let (t1, c1) = (t0.elapsed(), cpu_ticks(pid)?);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let passes: Vec<String> = sg
        .log_text()
        .lines()
        .filter(|l| l.contains("connection table:"))
        .map(str::to_string)
        .collect();
    eprintln!(
        "{stamped} sockets stamped; passes:\n{}\ndaemon CPU over {t1:.1?}: {:.2}% of one core",
        passes.join("\n"),
        (c1 - c0) as f64 / hz / t1.as_secs_f64() * 100.0
    );
    ensure!(
        passes.len() >= 3,
        "fewer passes than expected:\n{}",
        sg.log_text()
    );
    drop(clients);
    ensure!(sg.stop()?.success());
    Ok(())
}

/// No cgroup v2 hierarchy: one line says so, the table is never trusted, and everything else
/// works: flood ACKs are dropped after the socket lookup, connections complete.
#[test]
fn without_cgroup2_the_table_is_never_trusted() -> Result<()> {
    let fx = Fixture::new()?;
    let to = SocketAddr::from((SERVER_V4, V4_PORT));
    echo_server(fx.ns(), to)?;
    let sg = synguard_lab::lab::synguard_proc::Synguard::start_without_cgroup2(
        &common::bin()?,
        fx.ns(),
        fx.iface(),
        &["--ports", PORTS],
    )?;
    common::ops::wait_log(&sg, "connection table unavailable")?;
    let s0 = sg.stats()?;
    let report = fx.flood(ack_flood(V4_PORT, 20_000))?;
    joined(new_connections(&fx.lab.client.ns, to, 10)?)?;
    let s1 = sg.stats()?;
    let (dropped, skipped) = (
        s1.delta(&s0, Reason::DropAckBadCookie),
        s1.event_delta(&s0, Event::AckLookupSkipped),
    );
    eprintln!(
        "{} flood ACKs: {dropped} dropped, lookup skipped for {skipped}",
        report.sent()
    );
    ensure!(dropped * 100 >= report.sent() * 99, "flood not dropped");
    ensure!(skipped == 0, "the lookup was skipped without a table");
    let st = fx.status()?;
    ensure!(st["conn_table"]["trusted"] == false, "{st}");
    let lines = sg.log_text().matches("connection table").count();
    ensure!(
        lines == 1,
        "{lines} lines about the table:\n{}",
        sg.log_text()
    );
    ensure!(sg.stop()?.success());
    Ok(())
}
