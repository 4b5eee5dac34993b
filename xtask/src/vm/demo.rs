//! `cargo xtask vm demo`: the README's hping3 guide, for real, on a virtio-net NIC. A web server
//! and `synguard run` in the guest; from the host side a bounded SYN flood and then an ACK flood,
//! both spoofing one address of the test subnet, with curl fetches throughout; then synguard's
//! stats and the fetch success.

use std::time::Duration;

use anyhow::Result;

use super::guest;
use super::phases::Phases;
use super::release::ReleaseBuild;
use super::session;
use super::traffic::{FetchLoop, Flood};

const SYN_FLOOD: (u64, u64) = (30_000, 200);
const ACK_FLOOD: (u64, u64) = (30_000, 200);

pub fn run(build: ReleaseBuild) -> Result<()> {
    let mut phases = Phases::new();
    let vm = session::start(&mut phases)?;
    let g = &vm.guest;
    phases.begin("release build (what remained after boot)");
    let synguard = build.finish()?;
    phases.begin("copy synguard in, start the web server");
    guest::prepare(g, &synguard)?;
    phases.begin("synguard run (load and verify in the guest)");
    let run = guest::start_synguard(g, "demo")?;
    eprintln!("{}", run.log_text(g)?.trim_end());
    phases.begin("floods with curl fetches throughout");
    let fetches = FetchLoop::start(Duration::from_millis(200));
    Flood::syn(guest::WEB_PORT, SYN_FLOOD.0, SYN_FLOOD.1).run()?;
    Flood::ack(ACK_FLOOD.0, ACK_FLOOD.1).run()?;
    let (tried, ok) = fetches.finish();
    phases.begin("results");
    let (_, stats, _) = g.try_run(
        &format!("{} stats --iface {} --count 1", guest::BIN, guest::IFACE),
        Duration::from_secs(60),
    )?;
    println!("synguard stats in the guest:\n{stats}");
    println!("curl fetches during the floods: {ok} of {tried} succeeded");
    run.signal_and_wait(g, "TERM")?;
    println!("{}", phases.summary());
    Ok(())
}
