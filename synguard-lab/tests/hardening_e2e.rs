//! End-to-end checks for issue 9 in the namespace lab (root; run one at a time through
//! `cargo xtask test`): after a SYN flood in auto mode, an ACK flood from the same spoofed source
//! must not reach the kernel through the request sockets of the kernel's own half-open
//! handshakes, and real clients still connect. A SYN the kernel answered itself, sent again
//! once cookies are on, reaches the kernel's request socket rather than a cookie.

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
use synguard_lab::testrun::frames::{Segment, Tags, linux_syn_options, tcp_v4};

mod common;
use common::e2e::table_maybes;
use common::raw::{mac, send_frames};

const PORT: u16 = 80;

fn addr(v6: bool) -> SocketAddr {
    synguard_lab::lab::topology::server_addr(v6, PORT)
}

/// synguard's arguments: port 80 in auto mode, on at `threshold` SYN/s, off after `hold` s.
fn auto_mode(threshold: &'static str, hold: &'static str) -> [&'static str; 8] {
    [
        "--ports",
        "80",
        "--mode",
        "auto",
        "--syn-threshold",
        threshold,
        "--hold",
        hold,
    ]
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
    let args = auto_mode("20000", "30");
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

/// A client whose SYN the kernel answered itself (auto mode with cookies off: a request socket)
/// but whose SYN-ACK it never got sends the SYN again once cookies are on. The kernel would
/// answer it from its request socket with the same ISN; a cookie would give the client another
/// ISN, whose ACK the request socket refuses (`drop_ack_bad_request`) for as long as it lives,
/// and the client, established on its side, would stall. So the retransmission reaches the
/// kernel, counted as `pass_syn_recent_close`.
#[test]
fn a_retransmitted_syn_of_a_kernel_request_socket_reaches_the_kernel() -> Result<()> {
    let lab = Lab::new()?;
    let _server = Server::start(&lab.server.ns, &[addr(false)])?;
    let bin = synguard_proc::binary()?;
    let args = auto_mode("2000", "60");
    let sg = Synguard::start(&bin, &lab.server.ns, &lab.server.ifname, &args)?;
    let macs = (mac(lab.attacker.mac)?, mac(lab.server.mac)?);
    let syn_from = |src: std::net::Ipv4Addr, sport: u16| {
        let seg = Segment::syn(sport, PORT, 0x0bad_cafe, linux_syn_options(1460, 1, 7));
        tcp_v4(src.octets(), SERVER_V4.octets(), Tags::None, macs, &seg)
    };
    // The pool address's SYN-ACKs never arrive (the lab drops the server's replies to the spoof
    // pool): a SYN-ACK lost on the way.
    let client = spoof_addr(91);
    let syn = syn_from(client, 41_000);
    let s0 = sg.stats()?;
    send_frames(&lab.attacker.ns, &lab.attacker.ifname, vec![syn.clone()])?;
    std::thread::sleep(Duration::from_millis(300));
    let s1 = sg.stats()?;
    ensure!(
        s1.delta(&s0, Reason::PassSynToKernel) == 1,
        "the first SYN did not go to the kernel"
    );
    ensure!(
        syn_recv_from(&lab, &client.to_string())? == 1,
        "the kernel holds no request socket for the client"
    );
    // A burst above the threshold from another address switches cookies on.
    let burst: Vec<_> = (0..1500u16)
        .map(|i| syn_from(spoof_addr(92), 20_000 + i))
        .collect();
    send_frames(&lab.attacker.ns, &lab.attacker.ifname, burst)?;
    std::thread::sleep(Duration::from_millis(300));
    let s2 = sg.stats()?;
    ensure!(
        s2.event_delta(&s1, synguard_common::reason::Event::CookieModeOn) == 1,
        "the burst did not switch cookies on"
    );
    send_frames(&lab.attacker.ns, &lab.attacker.ifname, vec![syn])?;
    std::thread::sleep(Duration::from_millis(300));
    let s3 = sg.stats()?;
    let (to_kernel, cookie) = (
        s3.delta(&s2, Reason::PassSynRecentClose),
        s3.delta(&s2, Reason::TxSynAckCookie),
    );
    eprintln!("the client's second SYN: pass_syn_recent_close +{to_kernel}, cookies +{cookie}");
    ensure!(
        to_kernel == 1 && cookie == 0,
        "the retransmitted SYN got a cookie"
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
