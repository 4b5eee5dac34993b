//! What attach, hand-over, restart and detach leave on the NIC, and whether protection holds
//! across them.

use std::time::Duration;

use anyhow::Result;

use super::{SHORT, Verdicts};
use crate::vm::guest::{self, XdpState};
use crate::vm::proc;
use crate::vm::ssh::Guest;
use crate::vm::traffic::{self, Flood};

/// SYNs sent to show that protection holds across a hand-over.
const PROBE_COUNT: u64 = 300;

/// SYN-ACKs synguard sent for a short probe burst (stats read from the pinned maps, which also
/// works while no synguard process runs).
fn probe(g: &Guest) -> Result<u64> {
    let before = guest::verdict(&guest::stats(g)?, "tx_synack_cookie");
    Flood::syn(guest::WEB_PORT, PROBE_COUNT, 2_000).run()?;
    proc::sleep(Duration::from_secs(1))?;
    Ok(guest::verdict(&guest::stats(g)?, "tx_synack_cookie") - before)
}

/// SIGUSR1 hands over (exits, program stays), the next `run` takes over in place; SIGTERM then
/// leaves the NIC clean.
pub(super) fn restart_checks(v: &mut Verdicts, g: &Guest, first: &guest::Run) -> Result<()> {
    let before = guest::verdict(&guest::stats(g)?, "tx_synack_cookie");
    first.signal_and_wait(g, "USR1")?;
    let state = guest::xdp_state(g)?;
    let answered = probe(g)?;
    let (fetched, why) = fetch_watched(g)?;
    v.check(
        "protection stays while no synguard process runs (hand-over)",
        state == XdpState::Native && answered * 10 >= PROBE_COUNT * 9 && fetched,
        format!(
            "ip link: {state:?}; {answered} of {PROBE_COUNT} probe SYNs answered in XDP; fetch \
             ok {fetched}{why}"
        ),
    );
    let second = guest::start_synguard(g, "restart")?;
    let log = second.log_text(g)?;
    let after = guest::verdict(&guest::stats(g)?, "tx_synack_cookie");
    let answered = probe(g)?;
    let fetched = traffic::fetch(guest::WEB_PORT, 30).is_ok();
    v.check(
        "restart takes over in place and keeps protecting",
        log.contains("synguard replaced") && after >= before + answered && fetched,
        format!(
            "log: {}; tx_synack_cookie carried over ({before} before the hand-over, {after} \
             after the take-over); {answered} of {PROBE_COUNT} probe SYNs answered; fetch ok \
             {fetched}",
            log.lines()
                .find(|l| l.contains("synguard replaced"))
                .unwrap_or("(no take-over line)")
        ),
    );
    second.signal_and_wait(g, "TERM")?;
    let state = guest::xdp_state(g)?;
    let pins = pins_left(g)?;
    v.check(
        "SIGTERM leaves the NIC clean",
        state == XdpState::None && !pins,
        format!("ip link: {state:?}; pins left under /sys/fs/bpf/synguard/eth0: {pins}"),
    );
    Ok(())
}

/// One fetch; when it fails, why: curl's error and the counters that moved while it
/// ran (the pinned maps are read, so this works with no synguard process).
fn fetch_watched(g: &Guest) -> Result<(bool, String)> {
    let (before, tcp_before) = (guest::stats(g)?, guest::counters(g)?);
    let Err(e) = traffic::fetch(guest::WEB_PORT, 30) else {
        return Ok((true, String::new()));
    };
    let moved = guest::counters_moved(&before, &guest::stats(g)?);
    let tcp = guest::tcp_moved(&tcp_before, &guest::counters(g)?);
    Ok((
        false,
        format!(" ({e:#}; synguard counters meanwhile: {moved}; guest TCP counters: {tcp})"),
    ))
}

fn pins_left(g: &Guest) -> Result<bool> {
    let (code, _, _) = g.try_run(
        &format!("test -e /sys/fs/bpf/synguard/{}", guest::IFACE),
        SHORT,
    )?;
    Ok(code == 0)
}

/// kill -9 leaves the program attached; `synguard detach` removes it and its pins.
pub(super) fn detach_check(v: &mut Verdicts, g: &Guest) -> Result<()> {
    let third = guest::start_synguard(g, "crash")?;
    third.signal_and_wait(g, "KILL")?;
    let orphaned = guest::xdp_state(g)?;
    let out = g.run(
        &format!("{} detach --iface {} 2>&1", guest::BIN, guest::IFACE),
        SHORT,
    )?;
    let state = guest::xdp_state(g)?;
    let pins = pins_left(g)?;
    v.check(
        "`synguard detach` after kill -9 leaves the NIC clean",
        orphaned == XdpState::Native && state == XdpState::None && !pins,
        format!(
            "after kill -9: {orphaned:?}; after detach: {state:?}, pins left {pins}; detach said: \
             {}",
            out.trim().replace('\n', "; ")
        ),
    );
    Ok(())
}
