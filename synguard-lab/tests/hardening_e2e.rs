//! End-to-end checks for issue 9 in the namespace lab (root; run one at a time through
//! `cargo xtask test`): after a SYN flood in auto mode, an ACK flood from the same spoofed source
//! must not reach the kernel through the request sockets of the kernel's own half-open
//! handshakes, and real clients still connect.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use synguard_common::reason::Reason;
use synguard_lab::lab::Lab;
use synguard_lab::lab::hping::{Flood, FloodKind, FloodSpec};
use synguard_lab::lab::kstats::{self, KStats};
use synguard_lab::lab::synguard_proc::{self, Synguard};
use synguard_lab::lab::topology::{SERVER_V4, spoof_addr};
use synguard_lab::lab::traffic::{Continuous, Server};

mod common;
use common::e2e::table_maybes;

const PORT: u16 = 80;

fn addr(v6: bool) -> SocketAddr {
    synguard_lab::lab::topology::server_addr(v6, PORT)
}

/// Half-open handshakes (request sockets, SYN-RECV) the server's kernel holds for `src`.
fn syn_recv_from(lab: &Lab, src: &str) -> Result<usize> {
    let out = lab.server.ns.run("ss", &["-Htn", "state", "syn-recv"])?;
    Ok(out.lines().filter(|l| l.contains(src)).count())
}

fn time_wait(lab: &Lab) -> Result<usize> {
    Ok(lab
        .server
        .ns
        .run("ss", &["-Htn", "state", "time-wait"])?
        .lines()
        .count())
}

#[test]
fn auto_mode_ack_flood_after_a_syn_flood_does_not_reach_the_kernel() -> Result<()> {
    let lab = Lab::new()?;
    let _server = Server::start(&lab.server.ns, &[addr(false), addr(true)])?;
    let bin = synguard_proc::binary()?;
    let args = [
        "--ports",
        "80",
        "--mode",
        "auto",
        "--syn-threshold",
        "20000",
        "--hold",
        "30",
    ];
    let sg = Synguard::start(&bin, &lab.server.ns, &lab.server.ifname, &args)?;
    let client = Continuous::start(&lab.client.ns, vec![addr(false)], Duration::from_millis(20))?;
    let spoof = spoof_addr(72);
    let syn = FloodSpec {
        kind: FloodKind::Syn,
        dst: SERVER_V4,
        port: PORT,
        count: 100_000,
        interval_us: 10,
        spoof: Some(spoof),
    };
    // The flood's first part reaches the kernel (auto mode is off until the rate is measured),
    // which opens request sockets for it, answering with SYN-ACKs nobody completes.
    let r = Flood::start(&lab.attacker, syn)?.wait(&lab.attacker)?;
    let half_open = syn_recv_from(&lab, &spoof.to_string())?;
    let tw = time_wait(&lab)?;
    eprintln!(
        "SYN flood: {} sent; server holds {half_open} SYN-RECV request sockets from {spoof}, \
         {tw} TIME_WAIT sockets",
        r.sent()
    );
    ensure!(
        half_open > 0,
        "the kernel holds no request socket from the flood"
    );

    let (s0, k0) = (sg.stats()?, KStats::read(&lab.server.ns)?);
    // ACKs from the same source: hping3 walks the source ports, so many hit a request socket.
    let ack = FloodSpec {
        kind: FloodKind::Ack,
        count: 300_000,
        ..syn
    };
    let a = Flood::start(&lab.attacker, ack)?.wait(&lab.attacker)?;
    let (s1, k1) = (sg.stats()?, KStats::read(&lab.server.ns)?);
    let legit = client.stop();
    let est = s1.delta(&s0, Reason::PassEstablished);
    let bad_req = s1.delta(&s0, Reason::DropAckBadRequest);
    let bad_cookie = s1.delta(&s0, Reason::DropAckBadCookie);
    let rsts = k1.delta(&k0, "Tcp.OutRsts");
    let failed = k1.delta(&k0, kstats::SYNCOOKIES_FAILED);
    eprintln!(
        "ACK flood: {} sent; pass_established {est}, drop_ack_bad_request {bad_req}, \
         drop_ack_bad_cookie {bad_cookie}; kernel OutRsts +{rsts}, SyncookiesFailed +{failed}; \
         legit {} ok / {} failed",
        a.sent(),
        legit.ok,
        legit.failed
    );
    ensure!(
        bad_req > 0,
        "no ACK matched a request socket: the test proves nothing"
    );
    // The legit client's own established traffic is the only thing that may pass.
    ensure!(
        est <= 8 * (legit.ok + legit.failed) + 100,
        "{est} flood ACKs reached the kernel"
    );
    // Besides the legit clients', only ACKs the connection table let pass as "maybe".
    ensure!(
        rsts <= legit.ok + 20 + table_maybes(a.sent()),
        "the kernel answered {rsts} flood ACKs with RSTs"
    );
    // Every legit connection's handshake went through a request socket of the kernel (auto mode
    // passes quiet SYNs to it) or a cookie: their ACKs passed.
    ensure!(
        legit.ok > 0 && legit.failed == 0,
        "legit: {} ok, {} failed",
        legit.ok,
        legit.failed
    );
    ensure!(sg.stop()?.success());
    Ok(())
}

/// Packets the node's interface received so far (`ip -s -j link`).
fn rx_packets(node: &synguard_lab::lab::topology::Node) -> Result<u64> {
    let out = node
        .ns
        .ip(&["-s", "-j", "link", "show", "dev", &node.ifname])?;
    let json: serde_json::Value = serde_json::from_str(&out)?;
    json[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no stats64.rx.packets in `ip -s -j link` output"))
}

/// The reflection cap on the wire: a spoofed SYN flood naming one /24 as its source gets at
/// most the cap of SYN-ACKs per second (plus the burst), counted where they arrive: the
/// attacker's interface, which the spoofed source's replies reach.
#[test]
fn reflection_cap_holds_on_the_wire() -> Result<()> {
    const CAP: u64 = 2000;
    let lab = Lab::new()?;
    let _server = Server::start(&lab.server.ns, &[addr(false)])?;
    let bin = synguard_proc::binary()?;
    let cap = CAP.to_string();
    let args = ["--ports", "80", "--mode", "always", "--reflect-cap", &cap];
    let sg = Synguard::start(&bin, &lab.server.ns, &lab.server.ifname, &args)?;
    let spec = FloodSpec {
        kind: FloodKind::Syn,
        dst: SERVER_V4,
        port: PORT,
        count: 100_000,
        interval_us: 10,
        spoof: Some(spoof_addr(72)),
    };
    let (s0, rx0) = (sg.stats()?, rx_packets(&lab.attacker)?);
    let r = Flood::start(&lab.attacker, spec)?.wait(&lab.attacker)?;
    // Replies still in flight land within a moment.
    std::thread::sleep(Duration::from_millis(300));
    let (s1, rx1) = (sg.stats()?, rx_packets(&lab.attacker)?);
    let answered = s1.delta(&s0, Reason::TxSynAckCookie);
    let capped = s1.delta(&s0, Reason::DropReflectionCap);
    let on_wire = rx1 - rx0;
    let secs = r.elapsed.as_secs_f64();
    eprintln!(
        "{} SYNs in {secs:.2} s ({:.0}/s): {answered} answered, {capped} capped; {on_wire} \
         packets reached the spoofed source's side ({:.0}/s, cap {CAP}/s)",
        r.sent(),
        r.pps(),
        on_wire as f64 / secs
    );
    ensure!(
        r.pps() > 2.0 * CAP as f64,
        "the flood was too slow to test the cap"
    );
    // The burst allowance is one second's worth (the default); a few ARP/ND frames ride along.
    let bound = CAP as f64 * (secs + 0.5) + CAP as f64 + 20.0;
    ensure!(
        (on_wire as f64) <= bound,
        "{on_wire} replies on the wire, bound {bound:.0}"
    );
    ensure!(
        answered as f64 <= bound,
        "{answered} answered, bound {bound:.0}"
    );
    ensure!(
        on_wire + 20 >= answered,
        "{answered} answered but only {on_wire} arrived"
    );
    // The rest went to the kernel as listener refreshes (about one a second).
    let refresh = s1.delta(&s0, Reason::PassSynListenerRefresh);
    ensure!(
        capped > 0 && answered + capped + refresh >= r.sent(),
        "every SYN answered, capped or a refresh"
    );
    ensure!(sg.stop()?.success());
    Ok(())
}
