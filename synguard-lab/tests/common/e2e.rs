//! What the end-to-end tests drive through the lab: batches and continuous clients, bounded
//! hping3 floods.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use synguard_lab::lab::hping::{Flood, FloodKind, FloodReport, FloodSpec};
use synguard_lab::lab::synguard_proc::{Stats, Synguard};
use synguard_lab::lab::tcp_info::{TS_SACK_WSCALE, TcpInfo};
use synguard_lab::lab::topology::{SERVER_V4, spoof_addr};
use synguard_lab::lab::traffic::{self, ConnReport, Continuous, Transfer};

use super::{Fixture, PORT, addr};

/// Bound on how long the server may lag behind its clients in recording connections.
pub const SERVER_WAIT: Duration = Duration::from_secs(5);

impl Fixture {
    /// `n` connections from the client, one after another; every one must succeed.
    pub fn batch(
        &self,
        v6: bool,
        n: usize,
        transfer: fn(usize) -> Transfer,
    ) -> Result<Vec<ConnReport>> {
        traffic::run_batch(&self.lab.client.ns, addr(v6), n, transfer)?
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.with_context(|| format!("connection {i} to {}", addr(v6))))
            .collect()
    }

    /// `n` connections from the client, one after another, each moving `bytes` both ways; every
    /// one must succeed, and the server must have received every byte of each.
    pub fn exchange(&self, v6: bool, n: usize, bytes: u64) -> Result<Vec<ConnReport>> {
        let seen = self.server.connections().len();
        let reports = traffic::run_batch(&self.lab.client.ns, addr(v6), n, move |_| Transfer {
            upload: bytes,
            download: bytes,
        })?
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("connection {i} to {}", addr(v6))))
        .collect::<Result<Vec<_>>>()?;
        let conns = self.server.wait_for(seen + n, SERVER_WAIT)?;
        for c in &conns[seen..] {
            ensure!(
                c.error.is_none(),
                "server side of {}: {:?}",
                c.peer,
                c.error
            );
            ensure!(
                c.received == bytes,
                "server received {} of {bytes}",
                c.received
            );
        }
        Ok(reports)
    }

    /// Clients connecting every 20 ms to the server over IPv4 and IPv6.
    pub fn continuous(&self) -> Result<Continuous> {
        Continuous::start(
            &self.lab.client.ns,
            vec![addr(false), addr(true)],
            Duration::from_millis(20),
        )
    }

    /// A bounded hping3 flood from the attacker, waited for; it must finish on its own.
    pub fn flood(&self, spec: FloodSpec) -> Result<FloodReport> {
        let report = Flood::start(&self.lab.attacker, spec)?.wait(&self.lab.attacker)?;
        eprintln!(
            "flood {:?}: sent {} (hping3 {:?}, tx {}) in {:.1?}, {:.0} pps, killed: {}",
            spec.kind,
            report.sent(),
            report.hping_sent,
            report.tx_packets,
            report.elapsed,
            report.pps(),
            report.killed
        );
        ensure!(!report.killed, "hping3 did not finish within its deadline");
        Ok(report)
    }
}

/// Flood ACKs that may pass to the kernel out of `sent`: those whose slot in the connection
/// table a live or recently closed connection of the host stamped get a "maybe" and pass as
/// they would without synguard (docs/connection-table.md). The lab's clients make a few hundred
/// connections a minute, which stamp well under 0.1% of the 2^20 slots.
pub fn table_maybes(sent: u64) -> u64 {
    sent / 1000 + 5
}

/// A spoofed SYN flood to [`PORT`], 20 us apart.
pub fn syn_flood(count: u64) -> FloodSpec {
    FloodSpec {
        kind: FloodKind::Syn,
        dst: SERVER_V4,
        port: PORT,
        count,
        interval_us: 20,
        spoof: Some(spoof_addr(72)),
    }
}

/// The same as an ACK flood from another spoofed source.
pub fn ack_flood(count: u64) -> FloodSpec {
    FloodSpec {
        kind: FloodKind::Ack,
        spoof: Some(spoof_addr(73)),
        ..syn_flood(count)
    }
}

/// The window scale the server's kernel chooses for itself: what a plain kernel handshake (no
/// synguard) advertises.
pub fn kernel_wscale(fx: &Fixture) -> Result<u8> {
    let before = fx.server.connections().len();
    fx.batch(false, 1, |_| Transfer::default())?;
    let conns = fx.server.wait_for(before + 1, SERVER_WAIT)?;
    let conn = conns
        .get(before)
        .context("baseline connection not seen by the server")?;
    ensure!(
        conn.info.has(TS_SACK_WSCALE),
        "kernel handshake lacks options: {:?}",
        conn.info
    );
    Ok(conn.info.rcv_wscale)
}

/// Every client connection negotiated timestamps, SACK and window scaling, with the server's
/// window scale `wscale`.
pub fn check_client_options(reports: &[ConnReport], wscale: u8) {
    for r in reports {
        assert!(
            r.info.has(TS_SACK_WSCALE),
            "client to {} negotiated options {:#x}, want ts+sack+wscale",
            r.peer,
            r.info.options
        );
        assert_eq!(
            r.info.snd_wscale, wscale,
            "server's advertised wscale (client view)"
        );
    }
}

/// The same from the server's side of each connection.
pub fn check_server_options(infos: &[TcpInfo], wscale: u8) {
    for info in infos {
        assert!(
            info.has(TS_SACK_WSCALE),
            "server side options {:#x}",
            info.options
        );
        assert_eq!(
            info.rcv_wscale, wscale,
            "server's own wscale differs from the kernel's choice"
        );
    }
}

/// Polls synguard's stats until `pred` holds or `timeout` passes; returns the matching sample.
pub fn wait_for_stats(
    sg: &Synguard,
    timeout: Duration,
    pred: impl Fn(&Stats) -> bool,
) -> Result<Stats> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = sg.stats()?;
        if pred(&s) {
            return Ok(s);
        }
        ensure!(
            Instant::now() < deadline,
            "condition not reached in {timeout:?}; last: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
