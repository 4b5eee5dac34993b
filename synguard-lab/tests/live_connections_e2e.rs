//! End-to-end (root; run one at a time through `cargo xtask test`): a connection opened before
//! synguard attached, and idle since, keeps working while an ACK flood hits its port. Whatever
//! the ACK path does to skip work for flood ACKs, it must never drop a packet of a live
//! connection, including one synguard never saw being opened.

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use synguard_common::reason::Reason;
use synguard_lab::lab::Lab;
use synguard_lab::lab::hping::{Flood, FloodKind, FloodSpec};
use synguard_lab::lab::synguard_proc::{self, Synguard};
use synguard_lab::lab::tcp_info::TcpInfo;
use synguard_lab::lab::topology::{SERVER_V4, spoof_addr};

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
    let bin = synguard_proc::binary()?;
    let port = PORT.to_string();
    let sg = Synguard::start(
        &bin,
        &lab.server.ns,
        &lab.server.ifname,
        &["--ports", &port, "--mode", "always"],
    )?;
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
