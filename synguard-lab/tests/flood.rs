//! The flood runs' own pieces (root): topology teardown, the generator's frames and bounds, and a
//! short lab run's JSON. No timing thresholds: the lab reports speed, it does not assert it.

use std::net::Ipv4Addr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use synguard_lab::flood::generator::{GenFlood, GenSpec, Generator, Mix, Route, template};
use synguard_lab::lab::Lab;
use synguard_lab::lab::netns;

fn spec(mix: Mix, sources: u8, count: u64) -> GenSpec {
    GenSpec {
        mix,
        route: Route::Bridge,
        sources,
        dst: Ipv4Addr::new(198, 18, 0, 1),
        dport: 80,
        count,
        duration: Duration::from_secs(10),
    }
}

const ATK_MAC: [u8; 6] = [2, 0x5e, 0, 0, 0, 3];
const SRV_MAC: [u8; 6] = [2, 0x5e, 0, 0, 0, 1];

/// Parses a generated frame with etherparse and checks every field the generator promises,
/// checksums recomputed by etherparse. Returns (source last octet, SYN, ACK).
fn check_frame(frame: &[u8]) -> (u8, bool, bool) {
    let p = SlicedPacket::from_ethernet(frame).expect("frame parses");
    let eth = p
        .link
        .as_ref()
        .and_then(|l| l.to_header())
        .expect("ethernet");
    let eth = match eth {
        etherparse::LinkHeader::Ethernet2(e) => e,
        other => panic!("not Ethernet II: {other:?}"),
    };
    assert_eq!(eth.source, ATK_MAC);
    assert_eq!(eth.destination, SRV_MAC);
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    let iph = ip.header().to_header();
    assert_eq!(
        iph.header_checksum,
        iph.calc_header_checksum(),
        "IPv4 checksum"
    );
    assert_eq!(iph.destination, [198, 18, 0, 1]);
    let src = iph.source;
    assert_eq!(&src[..3], &[198, 18, 0], "source outside 198.18.0.0/24");
    assert!(
        src[3] >= 128,
        "source {src:?} outside the attacker pool /25"
    );
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        panic!("not TCP")
    };
    let th = tcp.to_header();
    assert_eq!(th.destination_port, 80);
    assert!(th.source_port >= 1024);
    let want = th
        .calc_checksum_ipv4(&iph, tcp.payload())
        .expect("checksum computable");
    assert_eq!(th.checksum, want, "TCP checksum");
    assert!(!th.rst && !th.fin);
    (src[3], th.syn, th.ack)
}

#[test]
fn generator_frames_parse_back_and_stay_in_the_pool() {
    let mut g = Generator::load().unwrap();
    let cases = [
        (Mix::Syn, 128u8, true, false),
        (Mix::Ack, 4, false, true),
        (Mix::Mixed, 1, true, true),
    ];
    for (mix, sources, want_syn, want_ack) in cases {
        let s = spec(mix, sources, 1000);
        g.configure(&s, template(ATK_MAC, SRV_MAC, s.dst, s.dport))
            .unwrap();
        let frames = g.render(300).unwrap();
        let mut seen_src = std::collections::BTreeSet::new();
        let (mut syns, mut acks) = (0, 0);
        for f in &frames {
            assert_eq!(f.len(), 54);
            let (src, syn, ack) = check_frame(f);
            assert!(!(syn && ack), "SYN+ACK generated");
            seen_src.insert(src);
            syns += usize::from(syn);
            acks += usize::from(ack);
        }
        assert_eq!(seen_src.len(), usize::from(sources), "{mix:?}: sources");
        assert_eq!(syns > 0, want_syn, "{mix:?}: SYNs");
        assert_eq!(acks > 0, want_ack, "{mix:?}: ACKs");
        // Sources and ports vary from frame to frame: a flood, not one packet repeated.
        let ports: std::collections::BTreeSet<_> = frames.iter().map(|f| &f[34..36]).collect();
        assert!(
            ports.len() > 250,
            "{mix:?}: only {} source ports",
            ports.len()
        );
    }
}

#[test]
fn generator_refuses_out_of_bounds_specs() {
    let mut g = Generator::load().unwrap();
    let mut s = spec(Mix::Syn, 128, 1000);
    s.dst = Ipv4Addr::new(192, 0, 2, 1);
    assert!(
        g.configure(&s, template(ATK_MAC, SRV_MAC, s.dst, 80))
            .is_err()
    );
    let s = spec(Mix::Syn, 200, 1000);
    assert!(
        g.configure(&s, template(ATK_MAC, SRV_MAC, s.dst, 80))
            .is_err()
    );
    let s = spec(Mix::Syn, 128, 0);
    assert!(
        g.send_live(1, &s, &AtomicBool::new(false)).is_err(),
        "a zero count must be refused"
    );
}

#[test]
fn live_flood_sends_exactly_its_count_into_the_lab() {
    let lab = Lab::new().unwrap();
    let _peer = lab.attach_peer_pass("atk").unwrap();
    // The direct route needs the server's veth to poll in NAPI (GRO on, no XDP program here).
    let _napi = lab.server_receive_thread(0).unwrap();
    let rx = |lab: &Lab| {
        let s = synguard_lab::lab::kstats::KStats::read(&lab.server.ns).unwrap();
        s.get(&format!("Dev.{}.RxPackets", lab.server.ifname))
    };
    for route in [Route::Bridge, Route::Direct] {
        let before = rx(&lab);
        let count = 50_000;
        let mut spec = spec(Mix::Syn, 128, count);
        spec.route = route;
        let report = GenFlood::start(&lab, spec, None).unwrap().wait().unwrap();
        assert_eq!(report.sent, count);
        assert!(report.pps > 0.0);
        std::thread::sleep(Duration::from_millis(300));
        let arrived = rx(&lab) - before;
        // Frames can be lost on the way (full queues), never added: the server sees at most the
        // count plus the odd neighbour-discovery frame, and a good part of it.
        assert!(
            arrived <= count + 20,
            "{route:?}: server received {arrived} > {count}"
        );
        assert!(
            arrived > 0,
            "{route:?}: no generated frame reached the server"
        );
    }
}

#[test]
fn topology_teardown_leaves_nothing_behind() {
    let lab = Lab::new().unwrap();
    let names: Vec<String> = netns::lab_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&lab.id))
        .collect();
    assert_eq!(
        names.len(),
        4,
        "server, client, attacker, bridge: {names:?}"
    );
    // A process inside the lab, as a flood would be.
    let mut child = lab.attacker.ns.command("sleep").arg("30").spawn().unwrap();
    drop(lab);
    let left: Vec<String> = netns::lab_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    // Killed with the lab, long before its 30 s were up.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process in the lab still running after teardown"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "sleep was not killed: {status}");
}

#[test]
fn a_short_lab_run_writes_a_complete_json_result() {
    use synguard_lab::flood::{measure::METRICS, runner, scenario};
    let mut plan = runner::Plan::quick(scenario::by_name("mixed").unwrap());
    plan.config.lead = Duration::from_millis(300);
    plan.config.flood = Duration::from_millis(1000);
    plan.config.tail = Duration::from_millis(300);
    let bin = synguard_lab::lab::synguard_proc::binary().unwrap();
    let report = runner::run(&plan, &bin, &AtomicBool::new(false)).unwrap();
    let dir = std::env::temp_dir().join(format!("synguard-lab-test-{}", std::process::id()));
    let files = runner::write(&report, &dir).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lab.json")).unwrap()).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), synguard_lab::flood::defence::ALL.len());
    for (cell, defence) in cells.iter().zip(synguard_lab::flood::defence::ALL) {
        assert_eq!(cell["defence"], defence.name());
        for m in METRICS {
            let spread = &cell["metrics"][m];
            for k in ["min", "median", "max"] {
                assert!(
                    spread.get(k).is_some(),
                    "{}: {m}.{k} missing",
                    defence.name()
                );
            }
        }
        let run = &cell["runs"][0];
        // Measured, not defaulted: every defence saw the flood.
        assert!(run["generator"]["sent"].as_u64().unwrap() > 0);
        assert!(cell["metrics"]["offered_pps"]["median"].as_f64().unwrap() > 0.0);
        assert!(!run["timeline"].as_array().unwrap().is_empty());
        let is_synguard = defence.name().starts_with("synguard");
        assert_eq!(
            cell["metrics"]["drops_pps"]["median"].is_number(),
            is_synguard,
            "{}: drops come from synguard's counters only",
            defence.name()
        );
        for m in ["legit_cps", "connect_samples"] {
            assert!(
                cell["metrics"][m]["median"].is_number(),
                "{}: no {m}",
                defence.name()
            );
        }
        let attempts = cell["metrics"]["legit_attempts"]["median"]
            .as_f64()
            .unwrap();
        let success = cell["metrics"]["legit_success_pct"]["median"]
            .as_f64()
            .unwrap();
        if is_synguard {
            // Under synguard real clients connect throughout the flood. (Without a defence, or
            // with a floor, a connect can hang past a one-second flood window: those figures are
            // measurements, not promises.)
            assert!(attempts > 0.0, "{}: no legit attempt", defence.name());
            assert_eq!(
                success,
                100.0,
                "{}: legit connections failed",
                defence.name()
            );
        } else {
            assert!(attempts >= 0.0 && (0.0..=100.0).contains(&success));
        }
    }
    assert!(json["machine"]["cpus"].as_u64().unwrap() > 0);
    assert!(!json["ratios"].as_array().unwrap().is_empty());
    for f in &files {
        assert!(
            std::fs::metadata(f).unwrap().len() > 0,
            "{} empty",
            f.display()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // Every run tore its lab down.
    let left: Vec<String> = netns::lab_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&format!("sgl-{}-", std::process::id())))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}
