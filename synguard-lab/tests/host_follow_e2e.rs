//! End to end, synguard following the host while it runs (`daemon::instance::host_follow`): the
//! server's MTU lowered, its MAC address changed and an AnyIP prefix routed to it under a
//! running program, with own cookies answering every SYN; a service stopped and started on a
//! protected port, and one bound to one of the server's addresses; the kernel's reverse-path
//! filter, strict then loose, against a second interface's route. Root, one at a time
//! (`cargo xtask test`).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use synguard_common::reason::Reason;
use synguard_lab::lab::{
    hping::FloodSpec,
    kstats::REVERSE_PATH_DROPS,
    synguard_proc::{Stats, Synguard},
    tcp_info::{TCPI_OPT_SACK, TCPI_OPT_TIMESTAMPS, TCPI_OPT_WSCALE, TS_SACK_WSCALE},
    topology::{CLIENT_V4, SERVER_V4, SERVER_V6, spoof_addr},
};

mod common;
use common::{
    Fixture,
    e2e::syn_flood,
    echo::{connect, echo_server, round_trip},
    ops::wait_log_within,
};

const MIB: u64 = 1 << 20;

/// How long the daemon may take to notice (it reads the host every second).
const NOTICE: Duration = Duration::from_secs(5);

/// The daemon's log line containing `text`, once it is there (within [`NOTICE`]).
fn wait_for_log(sg: &Synguard, text: &str) -> Result<String> {
    wait_log_within(sg, text, NOTICE)
}

/// `n` connections from the client to `to`, each with a round trip.
fn round_trips(fx: &Fixture, to: SocketAddr, n: usize) -> Result<()> {
    fx.lab.client.ns.enter(move || -> Result<()> {
        for i in 0..n {
            round_trip(&mut connect(to)?, i)?;
        }
        Ok(())
    })?
}

/// Four connections from the client to `to`, each with a round trip; what synguard counted
/// meanwhile as `pass_not_local` and as `tx_synack_cookie`.
fn four_round_trips(fx: &Fixture, sg: &Synguard, to: SocketAddr) -> Result<(u64, u64)> {
    let s0 = sg.stats()?;
    round_trips(fx, to, 4)?;
    let s1 = sg.stats()?;
    Ok((
        s1.delta(&s0, Reason::PassNotLocal),
        s1.delta(&s0, Reason::TxSynAckCookie),
    ))
}

/// The server's MTU lowered to 1400 while synguard answers every SYN: the next SYN-ACKs
/// advertise an MSS that fits (1360), so 1 MiB uploads still arrive (with the start-up MSS of
/// 1460 the client's full-size segments would not fit the server's interface and the transfer
/// would stall). Then its MAC address changes: SYNs to the new address are still answered in
/// XDP, none is passed as "not for this host".
#[test]
fn the_answers_follow_the_servers_mtu_and_mac_address() -> Result<()> {
    let fx = Fixture::new()?;
    let sg = fx.synguard(&["--ports", "80", "--mode", "always", "--cookies", "own"])?;
    let iface = fx.iface().to_string();

    let before = fx.exchange(false, 2, 1000)?;
    for r in &before {
        // MSS 1460 less the timestamp option.
        ensure!(r.info.snd_mss == 1448, "before: {}", r.info.snd_mss);
    }

    fx.ns().ip(&["link", "set", "dev", &iface, "mtu", "1400"])?;
    let line = wait_for_log(&sg, "MTU 1500 -> 1400")?;
    eprintln!("{line}");
    let s0 = sg.stats()?;
    let after = fx.exchange(false, 4, MIB)?;
    for r in &after {
        ensure!(
            r.info.snd_mss == 1348,
            "after the MTU change: {}",
            r.info.snd_mss
        );
    }
    let s1 = sg.stats()?;
    ensure!(
        s1.delta(&s0, Reason::TxSynAckCookie) >= 4,
        "SYN-ACKs from XDP: {}",
        s1.delta(&s0, Reason::TxSynAckCookie)
    );
    let status = fx.cli(&["status", "--iface", &iface])?;
    ensure!(
        status.contains("MSS at most 1360 (IPv4) / 1340 (IPv6)"),
        "status after the MTU change:\n{status}"
    );

    let new_mac = "02:00:00:5e:00:42";
    fx.ns()
        .ip(&["link", "set", "dev", &iface, "address", new_mac])?;
    let line = wait_for_log(&sg, &format!("-> {new_mac}"))?;
    eprintln!("{line}");
    // The client must learn the new address (the lab's bridge learns it from the reply).
    fx.lab.client.ns.ip(&["neigh", "flush", "all"])?;
    let s2 = sg.stats()?;
    fx.exchange(false, 4, 1000)?;
    let s3 = sg.stats()?;
    ensure!(
        s3.delta(&s2, Reason::PassNotForHost) == 0,
        "SYNs to the new MAC passed as not for this host: {}",
        s3.delta(&s2, Reason::PassNotForHost)
    );
    ensure!(
        s3.delta(&s2, Reason::TxSynAckCookie) >= 4,
        "SYN-ACKs from XDP after the MAC change: {}",
        s3.delta(&s2, Reason::TxSynAckCookie)
    );
    assert!(sg.stop()?.success());
    Ok(())
}

/// An AnyIP prefix routed to the server while synguard runs (`ip route add local
/// 198.18.0.192/26 dev lo`: every address in it is the server's, though no interface holds
/// one). The daemon reads it from the local routing table and stops telling the program which
/// IPv4 addresses are the host's; SYNs to an address in the prefix are answered in XDP, not
/// passed as for another host (`pass_not_local`, which they were while only interface
/// addresses were read).
#[test]
fn an_anyip_prefix_routed_while_running_is_guarded_as_the_hosts() -> Result<()> {
    const PORT: u16 = 8449;
    let fx = Fixture::new()?;
    let port = PORT.to_string();
    // The service listens on the whole port (an address of the prefix cannot be bound before
    // the route exists).
    echo_server(fx.ns(), SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)))?;
    let sg = fx.synguard(&["--ports", &port, "--mode", "always", "--cookies", "own"])?;
    fx.ns()
        .ip(&["route", "add", "local", "198.18.0.192/26", "dev", "lo"])?;
    // The family goes in the program's trie, prefix and all.
    let line = wait_for_log(&sg, "IPv4 address and local route 198.18.0.192/26")?;
    eprintln!("{line}");
    let anyip = SocketAddr::from((Ipv4Addr::new(198, 18, 0, 200), PORT));
    let (not_local, answered) = four_round_trips(&fx, &sg, anyip)?;
    ensure!(
        not_local == 0,
        "segments to the AnyIP address passed as not the host's: {not_local}"
    );
    ensure!(answered >= 4, "SYN-ACKs from XDP: {answered}");
    assert!(sg.stop()?.success());
    Ok(())
}

/// Seven addresses added to the server while synguard runs, eight in all, in one /24: the list
/// stays known (the loader picks a salt under which they fit; the fixed hash before put 198.18.0.1,
/// .21 and .25 in one pair and the log said "any IPv4"), and connects to an added address are
/// answered in XDP as the host's.
#[test]
fn eight_addresses_added_while_running_are_all_the_hosts() -> Result<()> {
    const PORT: u16 = 8452;
    let fx = Fixture::new()?;
    echo_server(fx.ns(), SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)))?;
    let port = PORT.to_string();
    let sg = fx.synguard(&["--ports", &port, "--mode", "always", "--cookies", "own"])?;
    let added: Vec<Ipv4Addr> = (20..27).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect();
    add_addresses(&fx, &added)?;
    // The last change's line lists every address (in the order of their slots).
    let all_listed = || {
        let log = sg.log_text();
        let last = log.lines().rfind(|l| l.contains("addresses "))?;
        let now = last.split(" -> ").nth(1)?.split(';').next()?;
        added
            .iter()
            .all(|a| now.split(", ").any(|w| w == a.to_string()))
            .then(|| last.to_string())
    };
    let line = common::ops::wait_for("all eight addresses listed", NOTICE, all_listed)
        .with_context(|| format!("run log:\n{}", sg.log_text()))?;
    eprintln!("{line}");
    ensure!(!line.contains("any IPv4"), "{line}");
    let to = SocketAddr::from((added[3], PORT));
    let (not_local, answered) = four_round_trips(&fx, &sg, to)?;
    ensure!(
        not_local == 0 && answered >= 4,
        "to {to}: pass_not_local +{not_local}, tx_synack_cookie +{answered}"
    );
    assert!(sg.stop()?.success());
    Ok(())
}

/// Twelve addresses added to the server while synguard runs, thirteen in all, more than the
/// config's slots hold: the family goes in the program's trie ("13 IPv4 addresses"), a connect
/// to the last one added is answered in XDP as the host's, and a SYN the client routes through
/// the server to an address that is not the host's passes untouched (`pass_not_local`: the
/// kernel, not forwarding, drops it). Before the trie such a host's list was not known, and
/// that SYN was answered in another host's name.
#[test]
fn more_addresses_than_the_slots_hold_are_the_hosts_and_no_other() -> Result<()> {
    const PORT: u16 = 8453;
    let fx = Fixture::new()?;
    echo_server(fx.ns(), SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)))?;
    let port = PORT.to_string();
    let sg = fx.synguard(&["--ports", &port, "--mode", "always", "--cookies", "own"])?;
    let added: Vec<Ipv4Addr> = (30..42).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect();
    add_addresses(&fx, &added)?;
    let line = wait_for_log(&sg, "13 IPv4 addresses")?;
    eprintln!("{line}");
    let status = fx.cli(&["status", "--iface", fx.iface()])?;
    ensure!(
        status.contains("host addresses: IPv4 in the program's table, IPv6 in the config's slots"),
        "status:\n{status}"
    );
    let to = SocketAddr::from((added[11], PORT));
    let (not_local, answered) = four_round_trips(&fx, &sg, to)?;
    ensure!(
        not_local == 0 && answered >= 4,
        "to {to}: pass_not_local +{not_local}, tx_synack_cookie +{answered}"
    );
    // Another host's address, routed by the client through the server.
    let server = SERVER_V4.to_string();
    fx.lab
        .client
        .ns
        .ip(&["route", "add", "198.18.5.0/24", "via", &server])?;
    let elsewhere = SocketAddr::from((Ipv4Addr::new(198, 18, 5, 1), PORT));
    let (not_local, answered) = unanswered(&fx, &sg, elsewhere, Reason::PassNotLocal)?;
    ensure!(
        not_local >= 1 && answered == 0,
        "to {elsewhere}: pass_not_local +{not_local}, tx_synack_cookie +{answered}"
    );
    assert!(sg.stop()?.success());
    Ok(())
}

/// Twelve addresses added to the server, more than the config's slots hold, and the service
/// bound to one of them: connects to that address are answered in XDP, and a connect to another
/// of the server's addresses is refused by the host, as without synguard (`pass_syn_no_listener`:
/// the loader wrote the bound address to `SG_BOUND` and set the port's `PORT_BOUND_ONLY_V4`).
/// Before, such a host's addresses had no slots to name, and the client of the other address
/// got a SYN-ACK and then a reset.
#[test]
fn a_service_bound_to_one_of_many_addresses_refuses_the_others() -> Result<()> {
    const PORT: u16 = 8455;
    let fx = Fixture::new()?;
    let added: Vec<Ipv4Addr> = (50..62).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect();
    add_addresses(&fx, &added)?;
    let bound = SocketAddr::from((added[3], PORT));
    echo_server(fx.ns(), bound)?;
    let port = PORT.to_string();
    let sg = fx.synguard(&["--ports", &port, "--mode", "always", "--cookies", "own"])?;
    let line = wait_for_log(
        &sg,
        &format!("port {PORT}: a listener over IPv4 only; IPv4 SYNs to addresses its listeners"),
    )?;
    eprintln!("{line}");
    let status = fx.cli(&["status", "--iface", fx.iface()])?;
    ensure!(
        status.contains(&format!(
            "port {PORT}: answered only at the addresses its listeners are bound to"
        )),
        "status:\n{status}"
    );
    let (not_local, answered) = four_round_trips(&fx, &sg, bound)?;
    ensure!(
        not_local == 0 && answered >= 4,
        "to {bound}: pass_not_local +{not_local}, tx_synack_cookie +{answered}"
    );
    let other = SocketAddr::from((added[5], PORT));
    let s0 = sg.stats()?;
    refused(&fx, other)?;
    let s1 = sg.stats()?;
    let (left, answered) = (
        s1.delta(&s0, Reason::PassSynNoListener),
        s1.delta(&s0, Reason::TxSynAckCookie),
    );
    ensure!(
        left >= 1 && answered == 0,
        "to {other}: pass_syn_no_listener +{left}, tx_synack_cookie +{answered}"
    );
    assert!(sg.stop()?.success());
    Ok(())
}

/// The server's packet filter rejects the client on a protected port (iptables on the nf_tables
/// backend, `REJECT --reject-with tcp-reset`). synguard says so when it attaches, and answers
/// the client's SYN in XDP all the same, before the rule sees it, and the client's final ACK
/// meets the rule (a reset), so no exchange is made. With the
/// client's address in synguard's block list, as the warning advises, its SYN is dropped in XDP
/// and the connect gets no answer, as the rule meant.
#[test]
fn a_packet_filter_on_the_way_in_is_said_and_mirrored_by_the_block_list() -> Result<()> {
    const PORT: u16 = 8454;
    let fx = Fixture::new()?;
    let port = PORT.to_string();
    echo_server(fx.ns(), SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)))?;
    let client = CLIENT_V4.to_string();
    fx.ns().run(
        "iptables",
        &[
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-s",
            &client,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ],
    )?;
    let sg = fx.synguard(&["--ports", &port, "--mode", "always", "--cookies", "own"])?;
    let line = wait_for_log(&sg, "netfilter filters what comes in")?;
    eprintln!("{line}");
    ensure!(
        line.contains("table ip filter (1 rule that drops or rejects)"),
        "{line}"
    );
    let to = SocketAddr::from((SERVER_V4, PORT));
    let s0 = sg.stats()?;
    // The reset of the final ACK may reach the client before its connect returns.
    let exchanged = fx.lab.client.ns.enter(move || -> bool {
        connect(to).is_ok_and(|mut conn| round_trip(&mut conn, 0).is_ok())
    })?;
    let s1 = sg.stats()?;
    ensure!(!exchanged, "an exchange through the REJECT rule succeeded");
    ensure!(
        s1.delta(&s0, Reason::TxSynAckCookie) >= 1,
        "the SYN was not answered in XDP"
    );
    fx.cli(&["block", "add", &format!("{client}/32")])?;
    let (blocked, answered) = unanswered(&fx, &sg, to, Reason::DropBlocklisted)?;
    ensure!(
        blocked >= 1 && answered == 0,
        "blocked: drop_blocklisted +{blocked}, tx_synack_cookie +{answered}"
    );
    assert!(sg.stop()?.success());
    Ok(())
}

/// `added` given to the server's interface, each in the lab's /24.
fn add_addresses(fx: &Fixture, added: &[Ipv4Addr]) -> Result<()> {
    for a in added {
        fx.ns()
            .ip(&["addr", "add", &format!("{a}/24"), "dev", fx.iface()])?;
    }
    Ok(())
}

/// A connect from the client to `to` that must fail (no answer within 1.5 s, or a refusal):
/// what synguard counted meanwhile as `reason` and as `tx_synack_cookie`.
fn unanswered(fx: &Fixture, sg: &Synguard, to: SocketAddr, reason: Reason) -> Result<(u64, u64)> {
    let s0 = sg.stats()?;
    let got =
        fx.lab.client.ns.enter(move || {
            TcpStream::connect_timeout(&to, Duration::from_millis(1500)).map(drop)
        })?;
    let s1 = sg.stats()?;
    ensure!(got.is_err(), "a connect to {to} succeeded");
    Ok((s1.delta(&s0, reason), s1.delta(&s0, Reason::TxSynAckCookie)))
}

/// The client's connect to `to` is refused (a RST), as the host refuses it without synguard.
fn refused(fx: &Fixture, to: SocketAddr) -> Result<()> {
    let got = fx
        .lab
        .client
        .ns
        .enter(move || TcpStream::connect_timeout(&to, Duration::from_secs(3)).map(drop))?;
    let e = got
        .err()
        .ok_or_else(|| anyhow::anyhow!("connect to {to} succeeded"))?;
    ensure!(
        e.kind() == std::io::ErrorKind::ConnectionRefused,
        "connect to {to}: {e}"
    );
    Ok(())
}

/// A protected port whose service is not running: the client's connect is refused, as without
/// synguard (answered with a cookie SYN-ACK, it succeeded, and a load balancer's TCP health
/// check saw the stopped service as up). Once a service listens over IPv4 only, IPv4 SYNs are
/// answered in XDP again and IPv6 ones are still refused by the host.
fn a_port_without_listener_refuses(cookies: &str) -> Result<()> {
    const PORT: u16 = 8450;
    let fx = Fixture::new()?;
    let port = PORT.to_string();
    let sg = fx.synguard(&["--ports", &port, "--mode", "always", "--cookies", cookies])?;
    let line = wait_for_log(&sg, &format!("port {PORT}: nothing listens"))?;
    eprintln!("{line}");
    let (to4, to6) = (
        SocketAddr::from((SERVER_V4, PORT)),
        SocketAddr::from((SERVER_V6, PORT)),
    );
    let refused = |to: SocketAddr| refused(&fx, to);
    // Left to the kernel: as having no listener, or (the kernel's cookies) as the port's
    // listener refresh of the second, which goes to the kernel whatever the listeners.
    let to_kernel = |a: &Stats, b: &Stats| {
        a.delta(b, Reason::PassSynNoListener) + a.delta(b, Reason::PassSynListenerRefresh)
    };
    let status = fx.cli(&["status", "--iface", fx.iface()])?;
    ensure!(
        status.contains(&format!("no listener on port {PORT} (IPv4, IPv6)")),
        "status without a listener:\n{status}"
    );
    let s0 = sg.stats()?;
    for to in [to4, to4, to6, to6] {
        refused(to)?;
    }
    let s1 = sg.stats()?;
    ensure!(
        s1.delta(&s0, Reason::PassSynNoListener) >= 2
            && to_kernel(&s1, &s0) == 4
            && s1.delta(&s0, Reason::TxSynAckCookie) == 0,
        "without a listener: pass_syn_no_listener +{}, to the kernel +{}, tx_synack_cookie +{}",
        s1.delta(&s0, Reason::PassSynNoListener),
        to_kernel(&s1, &s0),
        s1.delta(&s0, Reason::TxSynAckCookie)
    );

    echo_server(fx.ns(), to4)?;
    let line = wait_for_log(&sg, &format!("port {PORT}: a listener over IPv4 only"))?;
    eprintln!("{line}");
    let status = fx.cli(&["status", "--iface", fx.iface()])?;
    ensure!(
        status.contains(&format!("no listener on port {PORT} (IPv6)")),
        "status with an IPv4 listener:\n{status}"
    );
    let s2 = sg.stats()?;
    round_trips(&fx, to4, 3)?;
    refused(to6)?;
    let s3 = sg.stats()?;
    ensure!(
        s3.delta(&s2, Reason::TxSynAckCookie) >= 2 && to_kernel(&s3, &s2) <= 2,
        "with an IPv4 listener: tx_synack_cookie +{}, to the kernel +{}",
        s3.delta(&s2, Reason::TxSynAckCookie),
        to_kernel(&s3, &s2)
    );
    assert!(sg.stop()?.success());
    Ok(())
}

#[test]
fn a_port_without_listener_refuses_with_own_cookies() -> Result<()> {
    a_port_without_listener_refuses("own")
}

#[test]
fn a_port_without_listener_refuses_with_the_kernels_cookies() -> Result<()> {
    a_port_without_listener_refuses("kernel")
}

/// A service bound to one of the server's two addresses: connects to it are answered in XDP,
/// connects to the other address are refused, as without synguard (the host finds no listener
/// for that destination). Answered with a cookie SYN-ACK, the client's connect succeeded.
fn a_service_bound_to_one_address_refuses_the_other(cookies: &str) -> Result<()> {
    const PORT: u16 = 8451;
    let fx = Fixture::new()?;
    let second = Ipv4Addr::new(198, 18, 0, 9);
    fx.ns()
        .ip(&["addr", "add", &format!("{second}/24"), "dev", fx.iface()])?;
    let bound = SocketAddr::from((SERVER_V4, PORT));
    echo_server(fx.ns(), bound)?;
    let port = PORT.to_string();
    let sg = fx.synguard(&["--ports", &port, "--mode", "always", "--cookies", cookies])?;
    let line = wait_for_log(
        &sg,
        &format!("port {PORT}: a listener over IPv4 only; IPv4 SYNs to {second}"),
    )?;
    eprintln!("{line}");
    let status = fx.cli(&["status", "--iface", fx.iface()])?;
    ensure!(
        status.contains(&format!("no listener on port {PORT} at {second}")),
        "status with a listener bound to {SERVER_V4}:\n{status}"
    );
    let s0 = sg.stats()?;
    round_trips(&fx, bound, 3)?;
    for _ in 0..2 {
        refused(&fx, SocketAddr::from((second, PORT)))?;
    }
    let s1 = sg.stats()?;
    let (no_listener, answered) = (
        s1.delta(&s0, Reason::PassSynNoListener),
        s1.delta(&s0, Reason::TxSynAckCookie),
    );
    // The kernel's cookies: one SYN of the second may be the listener's refresh.
    ensure!(
        no_listener == 2 && answered >= 2,
        "pass_syn_no_listener +{no_listener} (want 2), tx_synack_cookie +{answered}"
    );
    assert!(sg.stop()?.success());
    Ok(())
}

#[test]
fn a_service_bound_to_one_address_refuses_the_other_with_own_cookies() -> Result<()> {
    a_service_bound_to_one_address_refuses_the_other("own")
}

#[test]
fn a_service_bound_to_one_address_refuses_the_other_with_the_kernels_cookies() -> Result<()> {
    a_service_bound_to_one_address_refuses_the_other("kernel")
}

/// The kernel's cookies on a host with SACK switched off (`tcp_sack=0`, a common mitigation of
/// CVE-2019-11477): the SYN-ACK must not offer SACK, or the kernel refuses the cookie
/// (`cookie_timestamp_decode`) and answers the client's final ACK with a RST. Switched back on
/// while synguard runs, SACK is offered again.
#[test]
fn kernel_cookies_offer_only_what_the_host_has_on() -> Result<()> {
    let fx = Fixture::new()?;
    fx.ns().sysctl("net.ipv4.tcp_sack", "0")?;
    let sg = fx.synguard(&["--ports", "80", "--mode", "always", "--cookies", "kernel"])?;
    let s0 = sg.stats()?;
    for r in fx.exchange(false, 4, 1000)? {
        ensure!(
            !r.info.has(TCPI_OPT_SACK) && r.info.has(TCPI_OPT_TIMESTAMPS | TCPI_OPT_WSCALE),
            "with tcp_sack=0: {}",
            r.info.summary()
        );
    }
    let s1 = sg.stats()?;
    // One SYN a second goes to the kernel for the listener refresh; the rest got synguard's.
    ensure!(
        s1.delta(&s0, Reason::PassCookieAck) >= 3,
        "cookie ACKs passed: {}",
        s1.delta(&s0, Reason::PassCookieAck)
    );

    fx.ns().sysctl("net.ipv4.tcp_sack", "1")?;
    let line = wait_for_log(&sg, "net.ipv4.tcp_sack off -> on")?;
    eprintln!("{line}");
    for r in fx.exchange(false, 4, 1000)? {
        ensure!(
            r.info.has(TS_SACK_WSCALE),
            "with tcp_sack=1: {}",
            r.info.summary()
        );
    }
    assert!(sg.stop()?.success());
    Ok(())
}

/// A protected interface deleted under a running synguard: its program went with the device and
/// nothing protects it any more, so the run ends with an error (status 1: systemd's
/// `Restart=on-failure` starts synguard again), detaching the lab's interface too and leaving no
/// state behind. Started again once the interface is back, synguard attaches to the new device.
#[test]
fn an_interface_that_goes_away_ends_the_run_with_an_error() -> Result<()> {
    let fx = Fixture::new()?;
    let extra = "sgx0";
    let add = || -> Result<()> {
        fx.ns()
            .ip(&["link", "add", extra, "type", "veth", "peer", "name", "sgx1"])?;
        fx.ns().ip(&["link", "set", extra, "up"])?;
        fx.ns().ip(&["link", "set", "sgx1", "up"])?;
        Ok(())
    };
    let args = [
        "--ports",
        "80",
        "--mode",
        "always",
        "--cookies",
        "own",
        "--iface",
        extra,
    ];
    add()?;
    let sg = fx.synguard(&args)?;
    // Started: `stats` answers for the first interface; the second follows.
    wait_for_log(&sg, "attached to sgx0")?;
    fx.ns().ip(&["link", "del", extra])?;
    let (status, log) = sg.wait_for_exit(NOTICE)?;
    ensure!(status.code() == Some(1), "exit status {status}:\n{log}");
    ensure!(log.contains("sgx0 went away"), "{log}");
    let st = fx.cli(&["status"])?;
    ensure!(
        st.contains("not attached anywhere"),
        "state left behind:\n{st}"
    );

    add()?;
    let sg = fx.synguard(&args)?;
    wait_for_log(&sg, "attached to sgx0")?;
    let st = fx.cli(&["status"])?;
    ensure!(
        st.matches("attached, synguard running").count() == 2,
        "after the restart:\n{st}"
    );
    assert!(sg.stop()?.success());
    Ok(())
}

/// The settings the kernel's cookies depend on, changed behind synguard's back (as `sysctl
/// --system` re-applying a distribution's `tcp_syncookies = 1` does): set back within a second,
/// and handshakes keep completing. Detach still restores the host's own values.
#[test]
fn the_kernel_settings_cookies_need_are_held() -> Result<()> {
    let fx = Fixture::new()?;
    let before = (
        fx.ns().sysctl_get("net.ipv4.tcp_syncookies")?,
        fx.ns().sysctl_get("net.ipv4.tcp_timestamps")?,
    );
    let sg = fx.synguard(&["--ports", "80", "--mode", "always", "--cookies", "kernel"])?;
    fx.ns().sysctl("net.ipv4.tcp_syncookies", "1")?;
    fx.ns().sysctl("net.ipv4.tcp_timestamps", "1")?;
    let line = wait_for_log(&sg, "net.ipv4.tcp_syncookies was changed to 1")?;
    eprintln!("{line}");
    wait_for_log(&sg, "net.ipv4.tcp_timestamps was changed to 1")?;
    ensure!(fx.ns().sysctl_get("net.ipv4.tcp_syncookies")? == "2");
    ensure!(fx.ns().sysctl_get("net.ipv4.tcp_timestamps")? == "2");
    let s0 = sg.stats()?;
    for r in fx.exchange(false, 4, 1000)? {
        ensure!(r.info.has(TS_SACK_WSCALE), "{}", r.info.summary());
    }
    ensure!(sg.stats()?.delta(&s0, Reason::PassCookieAck) >= 3);
    assert!(sg.stop()?.success());
    let after = (
        fx.ns().sysctl_get("net.ipv4.tcp_syncookies")?,
        fx.ns().sysctl_get("net.ipv4.tcp_timestamps")?,
    );
    ensure!(after == before, "after detach {after:?}, before {before:?}");
    Ok(())
}

/// The kernel's reverse-path filter, followed. Strict `rp_filter` on the server's interface and
/// one spoofed source routed out of a second interface: the kernel drops SYNs from it, so
/// synguard passes them unanswered (`pass_reverse_path`) while it answers the client, whose
/// source is routed here. Set to loose while running, the same source has a route (out of the
/// other interface) and its SYNs are answered.
#[test]
fn syns_the_reverse_path_filter_drops_are_left_to_the_kernel() -> Result<()> {
    let fx = Fixture::new()?;
    let ns = fx.ns();
    let (other, peer) = ("sg-rpf0", "sg-rpf1");
    ns.ip(&["link", "add", other, "type", "veth", "peer", "name", peer])?;
    for dev in [other, peer] {
        ns.ip(&["link", "set", dev, "up"])?;
    }
    let spoofed = spoof_addr(74);
    ns.ip(&["route", "add", &format!("{spoofed}/32"), "dev", other])?;
    let filter = format!("net.ipv4.conf.{}.rp_filter", fx.iface());
    ns.sysctl(&filter, "1")?;
    let sg = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    let line = wait_for_log(&sg, "rp_filter 1 (strict): SYNs from sources it drops")?;
    eprintln!("{line}");
    let flood = FloodSpec {
        spoof: Some(spoofed),
        interval_us: 500,
        ..syn_flood(200)
    };
    let (s0, k0) = (sg.stats()?, fx.kstats()?);
    let sent = fx.flood(flood)?.sent();
    fx.exchange(false, 4, 1000)?;
    let (s1, k1) = (sg.stats()?, fx.kstats()?);
    // The kernel did drop what was left to it: the program's model of the filter is the kernel's.
    let dropped = k1.delta(&k0, REVERSE_PATH_DROPS);
    ensure!(
        dropped >= sent,
        "the kernel's reverse-path filter dropped {dropped} of {sent}"
    );
    let (left, answered, refresh) = (
        s1.delta(&s0, Reason::PassReversePath),
        s1.delta(&s0, Reason::TxSynAckCookie),
        s1.delta(&s0, Reason::PassSynListenerRefresh),
    );
    eprintln!(
        "strict: {sent} spoofed SYNs, {left} left to the kernel, {answered} answered; {}",
        moved(&s0, &s1)
    );
    ensure!(
        left == sent,
        "SYNs left to the kernel's filter: {left} of {sent}"
    );
    // The kernel's cookies pass about one SYN a second to the listener (its refresh).
    ensure!(
        answered + refresh >= 4,
        "the client's SYNs answered: {answered}, refreshes {refresh}"
    );

    ns.sysctl(&filter, "2")?;
    let line = wait_for_log(&sg, "rp_filter 2 (loose)")?;
    eprintln!("{line}");
    let s2 = sg.stats()?;
    let sent = fx.flood(flood)?.sent();
    let s3 = sg.stats()?;
    let (left, answered, refresh) = (
        s3.delta(&s2, Reason::PassReversePath),
        s3.delta(&s2, Reason::TxSynAckCookie),
        s3.delta(&s2, Reason::PassSynListenerRefresh),
    );
    eprintln!("loose: {sent} spoofed SYNs, {answered} answered, {refresh} refreshes");
    ensure!(
        left == 0,
        "SYNs left to the kernel under loose filtering: {left}"
    );
    // The kernel's cookies pass about one SYN a second to the listener (its refresh).
    ensure!(
        answered + refresh == sent,
        "answered {answered} + refreshes {refresh} of {sent}"
    );
    let status = fx.cli(&["status", "--iface", fx.iface()])?;
    ensure!(
        status.contains("reverse-path check loose"),
        "status names the check:\n{status}"
    );
    assert!(sg.stop()?.success());
    Ok(())
}

/// Every reason whose count moved between two samples, for a failure's message.
fn moved(before: &Stats, after: &Stats) -> String {
    synguard_common::reason::REASONS
        .iter()
        .filter_map(|&r| {
            let d = after.delta(before, r);
            (d > 0).then(|| format!("{} +{d}", r.name()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
