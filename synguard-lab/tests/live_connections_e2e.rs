//! End-to-end (root; run one at a time through `cargo xtask test`): a connection opened before
//! synguard attached, and idle since, keeps working while an ACK flood hits its port. Whatever
//! the ACK path does to skip work for flood ACKs, it must never drop a packet of a live
//! connection, including one synguard never saw being opened. And a client that lost a live
//! connection and comes back on the same ports gets through, as it does without synguard.

use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd as _, FromRawFd as _, IntoRawFd as _};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use synguard_common::reason::Reason;
use synguard_lab::lab::Lab;
use synguard_lab::lab::hping::{Flood, FloodKind, FloodSpec};
use synguard_lab::lab::synguard_proc::{self, Synguard};
use synguard_lab::lab::tcp_info::TcpInfo;
use synguard_lab::lab::topology::{CLIENT_V4, SERVER_V4, spoof_addr};

mod common;
use common::echo::{echo_server, round_trip};

/// A port of its own: the lab's usual server is not running here.
const PORT: u16 = 8443;
/// How long the connection stays silent after synguard attached. Long enough that nothing about
/// the connection is fresh in any cache; the test budget keeps it from being minutes.
const IDLE: Duration = Duration::from_secs(15);
const ROUNDS: usize = 20;

#[test]
fn a_connection_from_before_attach_survives_an_ack_flood_after_idling() -> Result<()> {
    let lab = Lab::new()?;
    echo_server(&lab.server.ns, SocketAddr::from((SERVER_V4, PORT)))?;
    let (tx, rx) = mpsc::channel::<()>();
    // The client: connects before synguard runs, exchanges once, idles, then talks through the
    // flood (told to by `rx`).
    let client = lab.client.ns.spawn("old-client", move || -> Result<u32> {
        let mut conn = TcpStream::connect_timeout(
            &SocketAddr::from((SERVER_V4, PORT)),
            Duration::from_secs(5),
        )?;
        conn.set_read_timeout(Some(Duration::from_millis(800)))?;
        round_trip(&mut conn, 0)?;
        rx.recv()?;
        for i in 1..=ROUNDS {
            round_trip(&mut conn, i)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        // Only the client's segments cross synguard (on the server's ingress): one it dropped
        // would have been sent again.
        Ok(TcpInfo::of(&conn)?.total_retrans)
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let sg = always_on(&lab, PORT, &[])?;
    std::thread::sleep(IDLE);
    let s0 = sg.stats()?;
    let flood = Flood::start(
        &lab.attacker,
        FloodSpec {
            kind: FloodKind::Ack,
            dst: SERVER_V4,
            port: PORT,
            count: 400_000,
            interval_us: 5,
            spoof: Some(spoof_addr(9)),
        },
    )?;
    std::thread::sleep(Duration::from_millis(200));
    tx.send(())?;
    // Each round must come back within its read timeout, and nothing may have been sent twice.
    let talked = client
        .join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"))?;
    let report = flood.wait(&lab.attacker)?;
    let s1 = sg.stats()?;
    let retrans = talked.context("netns")?.context("the old connection")?;
    let dropped = s1.delta(&s0, Reason::DropAckBadCookie);
    let established = s1.delta(&s0, Reason::PassEstablished);
    eprintln!(
        "ACK flood {} sent; dropped {dropped}, passed as established {established}",
        report.sent()
    );
    ensure!(
        dropped > 0,
        "no flood ACK was dropped: the test proves nothing"
    );
    ensure!(
        retrans == 0,
        "the old connection's client retransmitted {retrans} segments"
    );
    ensure!(
        established >= ROUNDS as u64,
        "the old connection's segments were not seen as established ({established})"
    );
    ensure!(sg.stop()?.success());
    Ok(())
}

/// synguard on the lab's server, cookies always on for `port`, with `extra` arguments.
fn always_on(lab: &Lab, port: u16, extra: &[&str]) -> Result<Synguard> {
    let port = port.to_string();
    let mut args = vec!["--ports", &port, "--mode", "always"];
    args.extend_from_slice(extra);
    Synguard::start(
        &synguard_proc::binary()?,
        &lab.server.ns,
        &lab.server.ifname,
        &args,
    )
}

/// The client's port for the connection it loses and opens again.
const REUSED_PORT: u16 = 41000;

/// A client connection from `REUSED_PORT`, read timeout set.
fn dial_from_reused_port(port: u16) -> Result<TcpStream> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    let local = SockaddrIn::from(SocketAddrV4::new(CLIENT_V4, REUSED_PORT));
    socket::bind(fd.as_raw_fd(), &local)?;
    let server = SockaddrIn::from(SocketAddrV4::new(SERVER_V4, port));
    socket::connect(fd.as_raw_fd(), &server).context("connect")?;
    // SAFETY: a connected stream socket this function owns.
    let conn = unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) };
    conn.set_read_timeout(Some(Duration::from_millis(1500)))?;
    Ok(conn)
}

/// The client loses its connection without the server hearing of it (its RST dropped on the
/// way out) and connects again from the same port. The host answers that SYN with a challenge
/// ACK (RFC 5961), on which the client resets the old connection and tries again; answered with
/// a cookie instead, the client's final ACK reached the old connection, which refused it, and
/// the new connection never got its first echo.
fn reconnect_on_the_live_tuple(cookies: &str) -> Result<()> {
    const PORT: u16 = 8447;
    let lab = Lab::new()?;
    echo_server(&lab.server.ns, SocketAddr::from((SERVER_V4, PORT)))?;
    let sg = always_on(&lab, PORT, &["--cookies", cookies])?;
    let old = lab.client.ns.enter(|| -> Result<TcpStream> {
        let mut conn = dial_from_reused_port(PORT)?;
        round_trip(&mut conn, 0)?;
        Ok(conn)
    })??;
    let s0 = sg.stats()?;
    // Lose the connection: its RST goes nowhere while the client's link is down.
    let link = |state: &str| {
        lab.client
            .ns
            .ip(&["link", "set", "dev", &lab.client.ifname, state])
    };
    link("down")?;
    nix::sys::socket::setsockopt(
        &old,
        nix::sys::socket::sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )?;
    drop(old);
    link("up")?;
    let again = lab.client.ns.enter(|| -> Result<()> {
        let mut conn = dial_from_reused_port(PORT)?;
        round_trip(&mut conn, 1)
    })?;
    let s1 = sg.stats()?;
    let (to_kernel, answered) = (
        s1.delta(&s0, Reason::PassSynLiveConn),
        s1.delta(&s0, Reason::TxSynAckCookie),
    );
    eprintln!("{cookies} cookies: pass_syn_live_conn +{to_kernel}, tx_synack_cookie +{answered}");
    again.context("the new connection on the same 4-tuple")?;
    ensure!(
        to_kernel >= 1,
        "the SYN on the live 4-tuple was not left to the kernel"
    );
    ensure!(sg.stop()?.success());
    Ok(())
}

#[test]
fn a_client_reconnecting_on_a_live_tuple_gets_through_with_the_kernels_cookies() -> Result<()> {
    reconnect_on_the_live_tuple("kernel")
}

#[test]
fn a_client_reconnecting_on_a_live_tuple_gets_through_with_own_cookies() -> Result<()> {
    reconnect_on_the_live_tuple("own")
}
