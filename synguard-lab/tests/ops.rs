//! Operating synguard: restarts during a flood, kill -9 followed by `run` or `detach`, two
//! interfaces in one process. Root, namespaces and real traffic, like `e2e.rs`; run with
//! `--test-threads=1`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use nix::sys::signal::Signal;
use synguard_common::reason::Reason;
use synguard_lab::lab::hping::{Flood, FloodKind, FloodSpec};
use synguard_lab::lab::kstats;
use synguard_lab::lab::topology::{SERVER_V4, spoof_addr};
use synguard_lab::lab::traffic::{self, Continuous, Server};

mod common;
use common::ops::*;
use common::{Fixture, PORT, addr, assert_no_failures};

/// A restart (hand-over, then a new `run`) in the middle of a SYN flood: the pinned link keeps
/// the old program answering until the new one replaces it in one step, so the kernel sees only
/// the refresh SYNs, every legit connection completes, and the counters go on from where they
/// were.
#[test]
fn restart_during_flood_leaves_no_gap() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let args = ["--ports", "80,443", "--mode", "always"];
    let first = fx.synguard(&args)?;
    let s0 = first.stats()?;
    let k0 = fx.kstats()?;
    let client = Continuous::start(
        &fx.lab.client.ns,
        vec![addr(false), addr(true)],
        Duration::from_millis(20),
    )?;
    let started = Instant::now();
    let flood = Flood::start(
        &fx.lab.attacker,
        FloodSpec {
            kind: FloodKind::Syn,
            dst: SERVER_V4,
            port: PORT,
            count: 250_000,
            interval_us: 20,
            spoof: Some(spoof_addr(72)),
        },
    )?;
    std::thread::sleep(Duration::from_millis(800));
    let before = first.stats()?;
    let status = first.signal_and_wait(Signal::SIGUSR1)?;
    assert_eq!(status.code(), Some(HAND_OVER_EXIT), "hand-over exit status");
    ensure!(
        xdp_attached(fx.ns(), fx.iface())?,
        "program gone after the hand-over"
    );
    let second = fx.synguard(&args)?;
    wait_log(&second, "replaced the running program")?;
    let after_restart = second.stats()?;
    let report = flood.wait(&fx.lab.attacker)?;
    let legit = client.stop();
    let s1 = second.stats()?;
    let k1 = fx.kstats()?;
    let secs = started.elapsed().as_secs() + 1;
    eprintln!("kernel: {}", k1.summary(&k0));
    eprintln!(
        "synguard: SYNs to the kernel: {} (cookies off) {} (refresh) {} (recently closed)",
        s1.delta(&s0, Reason::PassSynToKernel),
        s1.delta(&s0, Reason::PassSynListenerRefresh),
        s1.delta(&s0, Reason::PassSynRecentClose)
    );
    eprintln!(
        "synguard: {} cookie ACKs passed, {} bad ACKs dropped, {} established",
        s1.delta(&s0, Reason::PassCookieAck),
        s1.delta(&s0, Reason::DropAckBadCookie),
        s1.delta(&s0, Reason::PassEstablished)
    );
    assert_no_failures("legit across the restart", &legit);

    // Counters continue: never below what the first program had counted.
    for r in [Reason::TxSynAckCookie, Reason::PassEstablished] {
        assert!(
            after_restart.packets(r) >= before.packets(r),
            "{} went back from {} to {} across the restart",
            r.name(),
            before.packets(r),
            after_restart.packets(r)
        );
    }
    let cookies = s1.delta(&s0, Reason::TxSynAckCookie);
    let refresh = s1.delta(&s0, Reason::PassSynListenerRefresh);
    assert!(
        cookies + refresh >= report.sent(),
        "{cookies} cookies + {refresh} refresh counted, {} flood SYNs sent: some were not seen",
        report.sent()
    );
    assert_eq!(s1.delta(&s0, Reason::PassSynToKernel), 0);
    // The kernel answered only the refresh SYNs (about one per listener per second).
    let kernel_cookies = k1.delta(&k0, kstats::SYNCOOKIES_SENT);
    assert!(
        kernel_cookies <= 5 * secs + 10,
        "kernel sent {kernel_cookies} cookies in {secs} s: flood SYNs reached it"
    );
    assert!(second.stop()?.success());
    ensure!(
        !pins_left(fx.ns(), fx.iface())?,
        "pins left after a clean stop"
    );
    Ok(())
}

/// kill -9 leaves the program protecting from its pinned link; the next `run` takes it over
/// (counters kept) and, when it stops, restores the settings the killed one changed.
#[test]
fn kill9_then_run_adopts() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let original_ts = fx.sysctl("net.ipv4.tcp_timestamps")?;
    let original_sc = fx.sysctl("net.ipv4.tcp_syncookies")?;
    let first = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    fx.connections(5)?;
    let s0 = first.stats()?;
    first.signal_and_wait(Signal::SIGKILL)?;

    let st = fx.status()?;
    assert_eq!(st["attached"], true, "{st}");
    assert_eq!(st["process_running"], false, "{st}");
    // Still protecting: cookies go on without a process.
    fx.connections(5)?;
    let s1 = fx.stats(fx.iface())?;
    assert!(
        s1.delta(&s0, Reason::TxSynAckCookie) >= 10,
        "no cookies after kill -9"
    );

    let second = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    wait_log(&second, "taking over from synguard pid")?;
    wait_log(&second, "replaced the running program")?;
    let s2 = second.stats()?;
    assert!(s2.packets(Reason::TxSynAckCookie) >= s1.packets(Reason::TxSynAckCookie));
    fx.connections(5)?;
    assert!(second.stop()?.success());
    assert_eq!(fx.sysctl("net.ipv4.tcp_timestamps")?, original_ts);
    assert_eq!(fx.sysctl("net.ipv4.tcp_syncookies")?, original_sc);
    ensure!(
        !pins_left(fx.ns(), fx.iface())?,
        "pins left after a clean stop"
    );
    ensure!(!xdp_attached(fx.ns(), fx.iface())?, "XDP still attached");
    Ok(())
}

/// kill -9 then `detach`: program, pins and run-info gone, kernel settings restored, and the
/// kernel alone serves connections again.
#[test]
fn kill9_then_detach_cleans_up() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let original_ts = fx.sysctl("net.ipv4.tcp_timestamps")?;
    let original_sc = fx.sysctl("net.ipv4.tcp_syncookies")?;
    let sg = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    assert_eq!(fx.sysctl("net.ipv4.tcp_syncookies")?, "2");
    sg.signal_and_wait(Signal::SIGKILL)?;
    ensure!(
        xdp_attached(fx.ns(), fx.iface())?,
        "kill -9 removed the program"
    );

    fx.cli(&["detach", "--iface", fx.iface()])?;
    ensure!(!xdp_attached(fx.ns(), fx.iface())?, "XDP still attached");
    ensure!(!pins_left(fx.ns(), fx.iface())?, "pins left");
    ensure!(!run_info_left(fx.ns(), fx.iface())?, "run-info left");
    assert_eq!(fx.sysctl("net.ipv4.tcp_timestamps")?, original_ts);
    assert_eq!(fx.sysctl("net.ipv4.tcp_syncookies")?, original_sc);
    let st = fx.status()?;
    assert_eq!(st["attached"], false, "{st}");
    fx.connections(5)?;
    // Nothing of the namespace is left in the run directory or on bpffs, not even its
    // directories.
    let ino = netns_inode(fx.ns())?.to_string();
    let dirs = [
        Path::new(RUN_DIR).join(&ino),
        Path::new(PIN_BASE).join(&ino),
    ];
    for d in &dirs {
        ensure!(!d.exists(), "{} left after detach", d.display());
    }
    // A second detach finds nothing and says so without failing; an empty directory some
    // earlier run left goes with it.
    std::fs::create_dir_all(&dirs[0])?;
    fx.cli(&["detach", "--iface", fx.iface()])?;
    ensure!(
        !dirs[0].exists(),
        "{} left by the second detach",
        dirs[0].display()
    );
    Ok(())
}

/// One process guards two interfaces: both attached, each counting its own traffic.
#[test]
fn two_interfaces_one_process() -> Result<()> {
    let fx = Fixture::new()?;
    // A second link between server and client: a veth created in the server namespace with
    // its peer moved straight into the client's (no device in the host namespace).
    let second = format!("{}b", fx.iface());
    let second = &second[second.len().saturating_sub(15)..];
    fx.ns().ip(&[
        "link",
        "add",
        second,
        "type",
        "veth",
        "peer",
        "name",
        second,
        "netns",
        fx.lab.client.ns.name(),
    ])?;
    let (srv2, cli2) = (Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2));
    fx.ns()
        .ip(&["addr", "add", &format!("{srv2}/24"), "dev", second])?;
    fx.ns().ip(&["link", "set", second, "up"])?;
    fx.lab
        .client
        .ns
        .ip(&["addr", "add", &format!("{cli2}/24"), "dev", second])?;
    fx.lab.client.ns.ip(&["link", "set", second, "up"])?;
    let server2 = Server::start(fx.ns(), &[SocketAddr::new(srv2.into(), PORT)])?;
    let _clean = cleanup(&fx, &[fx.iface(), second]);

    // Auto mode with a high threshold: SYNs go to the kernel, so the second link needs no XDP
    // program on its peer (XDP_TX on veth does, see docs/veth-and-nics.md).
    let sg = fx.synguard(&[
        "--iface",
        second,
        "--ports",
        "80",
        "--syn-threshold",
        "100000",
    ])?;
    let a0 = fx.stats(fx.iface())?;
    let b0 = wait_for("the second interface", Duration::from_secs(20), || {
        fx.stats(second).ok()
    })?;
    fx.connections(5)?;
    for (i, r) in traffic::run_batch(
        &fx.lab.client.ns,
        SocketAddr::new(srv2.into(), PORT),
        7,
        small,
    )?
    .into_iter()
    .enumerate()
    {
        r.with_context(|| format!("connection {i} over {second}"))?;
    }
    let a1 = fx.stats(fx.iface())?;
    let b1 = fx.stats(second)?;
    assert_eq!(
        a1.delta(&a0, Reason::PassSynToKernel),
        10,
        "first interface SYNs"
    );
    assert_eq!(
        b1.delta(&b0, Reason::PassSynToKernel),
        7,
        "second interface SYNs"
    );
    ensure!(
        xdp_attached(fx.ns(), second)?,
        "second interface not attached"
    );
    server2.stop();
    assert!(sg.stop()?.success());
    for iface in [fx.iface(), second] {
        ensure!(!xdp_attached(fx.ns(), iface)?, "{iface} still attached");
        ensure!(!pins_left(fx.ns(), iface)?, "{iface}: pins left");
    }
    Ok(())
}
