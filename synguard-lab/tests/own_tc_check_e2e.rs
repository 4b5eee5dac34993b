//! End to end, own cookies with the TC program that checks cookies again
//! (`synguard_own_check`, forced with `--own-tc check`): what a driver without XDP metadata
//! gets (docs/own-cookies.md, "XDP metadata, and drivers without it"). Root, one at a time
//! (`cargo xtask test`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, ensure};
use synguard::datapath::own::TC_CHECK_PROGRAM;
use synguard_common::reason::{Event, Reason};
use synguard_lab::lab::netns;
use synguard_lab::lab::tcp_info::{TCPI_OPT_SACK, TCPI_OPT_TIMESTAMPS, TCPI_OPT_WSCALE, TcpInfo};
use synguard_lab::lab::traffic::{ConnReport, Transfer};

mod common;
use common::e2e::{SERVER_WAIT, ack_flood, kernel_wscale, table_maybes};
use common::{Fixture, assert_no_failures};

const ARGS: [&str; 8] = [
    "--ports",
    "80",
    "--mode",
    "always",
    "--cookies",
    "own",
    "--own-tc",
    "check",
];

fn small(_: usize) -> Transfer {
    Transfer {
        upload: 1000,
        download: 1000,
    }
}

/// The pinned TC link of the interface (`<pin base>/.../<stem with the interface>/tc_link`).
fn tc_link_pin(dir: &Path, iface: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name()? == "tc_link" && path.to_string_lossy().contains(iface) {
            return Some(path);
        }
        if entry.file_type().ok()?.is_dir()
            && let Some(p) = tc_link_pin(&path, iface)
        {
            return Some(p);
        }
    }
    None
}

/// The name of the program behind the interface's pinned tcx link, from `bpftool` (the full
/// name, from the program's BTF).
fn tc_program_name(fx: &Fixture) -> Result<String> {
    let base = Path::new("/sys/fs/bpf/synguard");
    let pin = tc_link_pin(base, fx.iface()).context("no pinned TC link")?;
    let bpftool = |args: &[&str]| -> Result<serde_json::Value> {
        let out = netns::run_checked(Command::new("bpftool").arg("-j").args(args))?;
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let link = bpftool(&["link", "show", "pinned", &pin.to_string_lossy()])?;
    let id = link["prog_id"].as_u64().context("no prog_id")?;
    let prog = bpftool(&["prog", "show", "id", &id.to_string()])?;
    Ok(prog["name"].as_str().unwrap_or_default().to_string())
}

/// `n` connections per family with `opts` on both ends and the kernel's window scale.
fn round(fx: &Fixture, n: usize, opts: u8, wscale: u8) -> Result<()> {
    let seen = fx.server.connections().len();
    let mut client: Vec<ConnReport> = fx.batch(false, n, small)?;
    client.extend(fx.batch(true, n, small)?);
    let conns = fx.server.wait_for(seen + 2 * n, SERVER_WAIT)?;
    let server: Vec<TcpInfo> = conns[seen..].iter().map(|c| c.info).collect();
    let ts = opts & TCPI_OPT_TIMESTAMPS;
    for (who, info) in client
        .iter()
        .map(|r| ("client", &r.info))
        .chain(server.iter().map(|i| ("server", i)))
    {
        ensure!(
            info.has(opts),
            "{who}: options {:#x}, want {opts:#x}",
            info.options
        );
        ensure!(
            info.options & TCPI_OPT_TIMESTAMPS == ts,
            "{who}: timestamps"
        );
    }
    for r in &client {
        ensure!(
            r.info.snd_wscale == wscale,
            "client sees wscale {}",
            r.info.snd_wscale
        );
    }
    for i in &server {
        ensure!(i.rcv_wscale == wscale, "server's wscale {}", i.rcv_wscale);
    }
    Ok(())
}

/// With the checking TC program in place from the start: clients with and without timestamps
/// complete with window scaling and SACK over IPv4 and IPv6, every handshake is handed over by
/// that program, and a bogus ACK flood is dropped while legit clients keep connecting.
#[test]
fn the_checking_tc_program_completes_handshakes_and_floods_are_dropped() -> Result<()> {
    let fx = Fixture::new()?;
    let wscale = kernel_wscale(&fx)?;
    assert!(
        fx.synguard(&["--ports", "80", "--own-tc", "check"])
            .is_err(),
        "--own-tc check accepted with kernel cookies"
    );
    let sg = fx.synguard(&ARGS)?;
    let log = sg.log_text();
    assert!(log.contains("from the start (--own-tc check)"), "{log}");
    assert_eq!(tc_program_name(&fx)?, TC_CHECK_PROGRAM);
    let s0 = sg.stats()?;
    let n = 30;
    round(
        &fx,
        n,
        TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE,
        wscale,
    )?;
    fx.lab.client.ns.sysctl("net.ipv4.tcp_timestamps", "0")?;
    round(&fx, n, TCPI_OPT_SACK | TCPI_OPT_WSCALE, wscale)?;
    let s1 = sg.stats()?;
    let assigned = s1.event_delta(&s0, Event::OwnReqskAssigned);
    eprintln!("{assigned} request sockets for {} connections", 4 * n);
    assert!(assigned >= 4 * n as u64, "{assigned} assigned");
    assert_eq!(s1.event_delta(&s0, Event::OwnReqskFailed), 0);

    let client = fx.continuous()?;
    let flood = fx.flood(ack_flood(30_000))?;
    let legit = client.stop();
    let s2 = sg.stats()?;
    let dropped = s2.delta(&s1, Reason::DropAckBadCookie);
    eprintln!("ACK flood: {} sent, {dropped} dropped", flood.sent());
    assert_no_failures("legit clients during the ACK flood", &legit);
    assert!(
        dropped + table_maybes(flood.sent()) >= flood.sent(),
        "{dropped} of {} dropped",
        flood.sent()
    );
    assert_eq!(s2.event_delta(&s1, Event::OwnReqskFailed), 0);
    assert_eq!(tc_program_name(&fx)?, TC_CHECK_PROGRAM, "switched back");
    assert!(sg.stop()?.success());
    Ok(())
}
