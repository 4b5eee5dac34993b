//! What crosses the link: SYN-ACKs built in XDP (checksums, VLAN tag), a real client's cookie
//! handshake under a SYN flood, the ACK flood, and what of the floods reached the guest's stack.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::{SHORT, Verdicts, addr};
use crate::vm::frame;
use crate::vm::guest;
use crate::vm::net;
use crate::vm::pcap::{self, Segment};
use crate::vm::proc;
use crate::vm::ssh::Guest;
use crate::vm::traffic::{self, Capture, Flood};

/// Floods in the traffic check: count and spacing (2 500/s, within what the emulated guest
/// handles, so the tap does not drop and every sent packet can be accounted for).
const FLOOD_COUNT: u64 = 5_000;
const FLOOD_GAP_US: u64 = 400;

/// SYN flood with a real handshake in the middle, then an ACK flood; everything captured on the
/// tap and counted in synguard and in the guest's TCP stack.
pub(super) fn traffic_checks(v: &mut Verdicts, g: &Guest, work: &Path) -> Result<()> {
    // Built first: reading the guest's MAC takes an ssh session, whose SYN the guest's TCP
    // stack would count between the two samples.
    let tagged = tagged_syns(g)?;
    let s0 = guest::stats(g)?;
    let n0 = guest::counters(g)?;
    let cap = Capture::start(work)?;
    // The SYN flood goes to the port the real client uses: synguard lets about one SYN per port
    // and second through to the kernel (listener refresh), and on a quiet port that would be
    // the client's, answered by the guest kernel instead of XDP.
    let syn = Flood::syn(guest::INFO_PORT, FLOOD_COUNT, FLOOD_GAP_US);
    let flood = syn.start()?;
    proc::sleep(Duration::from_millis(500))?;
    let info = traffic::fetch(guest::INFO_PORT, 30);
    flood.wait(syn.timeout())?;
    Flood::ack(FLOOD_COUNT, FLOOD_GAP_US).run()?;
    traffic::send_frames(&tagged)?;
    // Let the last replies leave the guest before the capture stops.
    proc::sleep(Duration::from_secs(2))?;
    let s1 = guest::stats(g)?;
    let n1 = guest::counters(g)?;
    let segs = pcap::segments(&cap.finish()?)?;
    synack_check(v, &segs, &s0, &s1);
    vlan_check(v, &segs);
    handshake_check(v, &segs, info, (&s0, &s1), (&n0, &n1))?;
    flood_checks(v, &segs, (&s0, &s1), (&n0, &n1));
    Ok(())
}

/// 802.1Q-tagged SYNs: virtio-net has no receive VLAN offload (`rx-vlan-offload: off [fixed]`),
/// so the tag reaches XDP inside the frame and the SYN-ACK must leave with it.
const VLAN_ID: u16 = 77;
const VLAN_SYNS: u16 = 20;
const VLAN_SPORT: u16 = 41000;

fn tagged_syns(g: &Guest) -> Result<Vec<Vec<u8>>> {
    let guest_mac = g.run(
        &format!("cat /sys/class/net/{}/address", guest::IFACE),
        SHORT,
    )?;
    let dst = frame::parse_mac(&guest_mac).context("the guest's MAC")?;
    let src = frame::parse_mac(&net::tap_mac()?).context("the tap's MAC")?;
    let frames: Vec<Vec<u8>> = (0..VLAN_SYNS)
        .map(|i| {
            frame::tagged_syn(
                dst,
                src,
                VLAN_ID,
                (addr(net::SPOOF_ADDR), VLAN_SPORT + i),
                (addr(net::GUEST_ADDR), guest::INFO_PORT),
            )
        })
        .collect();
    Ok(frames)
}

fn vlan_check(v: &mut Verdicts, segs: &[Segment]) {
    let guest = addr(net::GUEST_ADDR);
    let replies: Vec<&Segment> = segs
        .iter()
        .filter(|s| s.src == guest && s.is_syn_ack())
        .filter(|s| (VLAN_SPORT..VLAN_SPORT + VLAN_SYNS).contains(&s.dport))
        .collect();
    let tagged = replies.iter().filter(|s| s.vlan == Some(VLAN_ID)).count();
    let good = replies
        .iter()
        .filter(|s| s.vlan == Some(VLAN_ID) && s.ip_csum_ok && s.tcp_csum_ok)
        .count();
    // One may go to the kernel as a listener refresh (and die there: no VLAN device).
    v.check(
        "802.1Q-tagged SYNs answered in XDP with the tag",
        good + 1 >= usize::from(VLAN_SYNS) && tagged == replies.len(),
        format!(
            "{} SYN-ACKs for {VLAN_SYNS} SYNs tagged {VLAN_ID}: {tagged} tagged {VLAN_ID}, {good} \
             of those with correct checksums",
            replies.len()
        ),
    );
}

fn synack_check(v: &mut Verdicts, segs: &[Segment], s0: &Value, s1: &Value) {
    let (guest, spoof) = (addr(net::GUEST_ADDR), addr(net::SPOOF_ADDR));
    let synacks: Vec<&Segment> = segs
        .iter()
        .filter(|s| s.src == guest && s.is_syn_ack())
        .collect();
    // The guest kernel's own SYN-ACKs (to the SYNs passed on purpose) leave with offloaded,
    // partial checksums; every other one was built in XDP and must be complete and correct.
    let (kernel, xdp): (Vec<&Segment>, Vec<&Segment>) =
        synacks.iter().partition(|s| s.tcp_csum_partial);
    let bad = xdp
        .iter()
        .filter(|s| !(s.ip_csum_ok && s.tcp_csum_ok))
        .count();
    let to_spoof = xdp
        .iter()
        .filter(|s| s.dst == spoof && s.vlan.is_none())
        .count() as u64;
    let tx = guest::verdict(s1, "tx_synack_cookie") - guest::verdict(s0, "tx_synack_cookie");
    let refresh = guest::verdict(s1, "pass_syn_listener_refresh")
        - guest::verdict(s0, "pass_syn_listener_refresh");
    let tagged = synacks.iter().filter(|s| s.vlan.is_some()).count();
    v.check(
        "XDP SYN-ACKs reach the host with correct checksums",
        bad == 0 && to_spoof * 10 >= FLOOD_COUNT * 9 && xdp.len() as u64 * 100 >= tx * 99,
        format!(
            "{} SYN-ACKs built in XDP captured on the tap (tx_synack_cookie +{tx}; {to_spoof} \
             to the spoofed source of {FLOOD_COUNT} SYNs sent), {bad} of them with a bad IPv4 \
             or TCP checksum, {tagged} VLAN-tagged; {} from the guest kernel (offloaded \
             checksum: listener refreshes, {refresh} passed, and the ssh sessions reading the \
             counters)",
            xdp.len(),
            kernel.len()
        ),
    );
}

/// The real client's handshake during the SYN flood: a cookie handshake (synguard counted it)
/// whose negotiated options, read from TCP_INFO in the guest, match the SYN and SYN-ACK on the
/// wire.
fn handshake_check(
    v: &mut Verdicts,
    segs: &[Segment],
    info: Result<String>,
    (s0, s1): (&Value, &Value),
    (n0, n1): (&Counters, &Counters),
) -> Result<()> {
    let body = match info {
        Ok(b) => b,
        Err(e) => {
            v.check(
                "cookie handshake under a SYN flood",
                false,
                format!(
                    "{e:#}; synguard counters meanwhile: {}; guest TCP counters: {}",
                    guest::counters_moved(s0, s1),
                    guest::tcp_moved(n0, n1)
                ),
            );
            return Ok(());
        }
    };
    let ti: Value = serde_json::from_str(body.trim()).with_context(|| format!("{body:?}"))?;
    let port = ti["port"].as_u64().unwrap_or(0) as u16;
    let host = addr(net::HOST_ADDR);
    let syn = segs
        .iter()
        .find(|s| s.src == host && s.sport == port && s.is_syn());
    let synack = segs
        .iter()
        .find(|s| s.dst == host && s.dport == port && s.is_syn_ack());
    let opts = ti["options"].as_u64().unwrap_or(0);
    // TCPI_OPT_TIMESTAMPS 1, TCPI_OPT_SACK 2, TCPI_OPT_WSCALE 4 (include/uapi/linux/tcp.h).
    let (ts, sack, ws) = (opts & 1 != 0, opts & 2 != 0, opts & 4 != 0);
    let snd = ti["snd_wscale"].as_u64();
    let rcv = ti["rcv_wscale"].as_u64();
    let client_ws = syn.and_then(|s| s.wscale).map(u64::from);
    let server_ws = synack.and_then(|s| s.wscale).map(u64::from);
    let accepted = guest::verdict(s1, "pass_cookie_ack") - guest::verdict(s0, "pass_cookie_ack");
    let csum_ok = synack.is_some_and(|s| s.ip_csum_ok && s.tcp_csum_ok && !s.tcp_csum_partial);
    let synack_opts = synack.is_some_and(|s| s.sack_perm && s.timestamp);
    v.check(
        "cookie handshake under a SYN flood keeps window scale and SACK",
        ts && sack
            && ws
            && snd == client_ws
            && rcv == server_ws
            && accepted >= 1
            && csum_ok
            && synack_opts,
        format!(
            "TCP_INFO options {opts:#x} (ts {ts}, sack {sack}, wscale {ws}), snd_wscale {snd:?} \
             vs client SYN {client_ws:?}, rcv_wscale {rcv:?} vs SYN-ACK {server_ws:?}, SYN-ACK \
             built in XDP with correct checksums {csum_ok}, SYN-ACK has SACK-perm and TS \
             {synack_opts}, pass_cookie_ack +{accepted}"
        ),
    );
    Ok(())
}

type Counters = std::collections::HashMap<String, u64>;

/// Every captured segment of `seg`'s connection, one per line: what a failure's detail shows.
fn flow_of(segs: &[Segment], seg: &Segment) -> String {
    let same = |s: &&Segment| {
        (s.src, s.sport, s.dst, s.dport) == (seg.src, seg.sport, seg.dst, seg.dport)
            || (s.src, s.sport, s.dst, s.dport) == (seg.dst, seg.dport, seg.src, seg.sport)
    };
    let lines: Vec<String> = segs.iter().filter(same).map(Segment::line).collect();
    format!("flow: {}", lines.join(" | "))
}

fn flood_checks(
    v: &mut Verdicts,
    segs: &[Segment],
    (s0, s1): (&Value, &Value),
    (n0, n1): (&Counters, &Counters),
) {
    let dropped =
        guest::verdict(s1, "drop_ack_bad_cookie") - guest::verdict(s0, "drop_ack_bad_cookie");
    let guest_addr = addr(net::GUEST_ADDR);
    let rsts: Vec<String> = segs
        .iter()
        .filter(|s| s.src == guest_addr && s.flags & 0x04 != 0)
        .map(|rst| flow_of(segs, rst))
        .collect();
    v.check(
        "ACK flood dropped in XDP",
        dropped * 10 >= FLOOD_COUNT * 9 && rsts.is_empty(),
        format!(
            "drop_ack_bad_cookie +{dropped} of {FLOOD_COUNT} sent; {} RSTs from the guest{}",
            rsts.len(),
            if rsts.is_empty() {
                String::new()
            } else {
                format!(" ({})", rsts.join(", "))
            }
        ),
    );
    let d = |k: &str| guest::delta(n0, n1, k);
    let rx = d("eth0:rx");
    let in_segs = d("Tcp:InSegs");
    let (sent, failed, rst) = (
        d("TcpExt:SyncookiesSent"),
        d("TcpExt:SyncookiesFailed"),
        d("Tcp:OutRsts"),
    );
    // Let through on purpose: about one SYN per port and second (listener refresh). Besides
    // them the kernel sees the SYNs of the two ssh sessions that read the counters (port 22 gets
    // a kernel cookie too while tcp_syncookies=2), plus one of slack.
    let refresh = guest::verdict(s1, "pass_syn_listener_refresh")
        - guest::verdict(s0, "pass_syn_listener_refresh");
    let floods = 2 * FLOOD_COUNT;
    v.check(
        "floods do not reach the guest's TCP stack",
        sent <= refresh + 3 && failed <= 2 && rst <= 2 && in_segs * 20 < floods,
        format!(
            "eth0 rx +{rx} for {floods} flood packets; guest TCP stack: InSegs +{in_segs}, \
             SyncookiesSent +{sent} (listener refreshes passed: {refresh}), SyncookiesFailed \
             +{failed}, OutRsts +{rst}"
        ),
    );
}
