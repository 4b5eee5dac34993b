//! Compatibility with an earlier release: a pinned instance started by an older synguard (kill -9
//! after it attached) is taken over by this one without a reset: same pins and layouts, its
//! run-info read, its pins moved into this namespace's place (`synguard::state::paths`), its
//! kernel settings restored when this one stops; or removed by this one's `detach`. Root,
//! namespaces and real traffic, like `ops.rs`; run with `--test-threads=1`.
//!
//! The older binary comes from `SYNGUARD_OLD_BIN`: `cargo xtask test` builds it from commit
//! 0434865 (a git worktree under `target/`). Without it the test says so and checks nothing;
//! the fixtures in `synguard/tests/fixtures` (the run-info file and the pin layout that release
//! wrote) are checked by host tests on every build.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, ensure};
use nix::sys::signal::Signal;
use synguard_common::reason::Reason;
use synguard_lab::lab::synguard_proc::Synguard;

mod common;
use common::Fixture;
use common::ops::{PIN_BASE, cleanup, pins_left, run_info_left, wait_log};

#[test]
fn takes_over_an_instance_of_an_earlier_release() -> Result<()> {
    let Some(old) = std::env::var_os("SYNGUARD_OLD_BIN").map(PathBuf::from) else {
        eprintln!("skipped: SYNGUARD_OLD_BIN names no earlier synguard binary");
        return Ok(());
    };
    let fx = Fixture::new()?;
    let bin = common::bin()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let (ns, iface) = (fx.ns(), fx.iface());
    let original_ts = ns.sysctl_get("net.ipv4.tcp_timestamps")?;
    let args = ["--ports", "80", "--mode", "always"];

    let first = Synguard::start_as_given(&old, ns, iface, &args)?;
    ensure!(
        Path::new(PIN_BASE).join(iface).exists(),
        "the earlier release did not pin in its flat layout"
    );
    fx.connections(5)?;
    let s0 = first.stats()?;
    first.signal_and_wait(Signal::SIGKILL)?;

    let second = Synguard::start(&bin, ns, iface, &args)?;
    wait_log(&second, "taking over from synguard pid")?;
    wait_log(&second, "replaced the running program")?;
    let log = second.log_text();
    // Only maps that hold no state may start afresh, and their layouts changed since that
    // release: the config map and the port table (every start writes all of each) and the
    // per-packet scratch value (`datapath::pins`' golden-layout test says the same).
    let reset: Vec<&str> = log.lines().filter(|l| l.contains(" reset (")).collect();
    ensure!(
        reset.iter().all(|l| ["SG_CONFIG", "SG_PORTS", "SG_SCRATCH"]
            .iter()
            .any(|m| l.contains(&format!("{m} reset")))),
        "pinned state was reset:\n{log}"
    );
    let s1 = second.stats()?;
    ensure!(
        s1.packets(Reason::TxSynAckCookie) >= s0.packets(Reason::TxSynAckCookie),
        "the counters of the earlier instance were not carried over"
    );
    // That release had no connection table: the new program gets one, and trusts it once its
    // first pass is done.
    common::ops::wait_for(
        "a trusted connection table",
        Duration::from_secs(10),
        || (fx.status().ok()?["conn_table"]["trusted"] == true).then_some(()),
    )?;
    fx.connections(5)?;
    let s2 = second.stats()?;
    // Always mode: every SYN but the listener's refresh SYN (one a second) gets a cookie.
    let cookies = s2.delta(&s1, Reason::TxSynAckCookie);
    eprintln!("{cookies} cookies for 10 connections after the take-over");
    ensure!(
        cookies >= 6,
        "{cookies} cookies for 10 connections after the take-over"
    );
    ensure!(
        !Path::new(PIN_BASE).join(iface).exists() && pins_left(ns, iface)?,
        "the pins were not moved into this namespace's place"
    );
    ensure!(second.stop()?.success(), "synguard did not stop cleanly");
    ensure!(
        ns.sysctl_get("net.ipv4.tcp_timestamps")? == original_ts,
        "the setting the earlier instance changed was not restored"
    );
    ensure!(!pins_left(ns, iface)?, "pins left after a clean stop");
    ensure!(
        !run_info_left(ns, iface)?,
        "run-info left after a clean stop"
    );
    Ok(())
}

/// kill -9 of an earlier release's instance, then this release's `detach`: its flat-layout
/// state is found and removed, and its kernel settings restored.
#[test]
fn detaches_an_instance_of_an_earlier_release() -> Result<()> {
    let Some(old) = std::env::var_os("SYNGUARD_OLD_BIN").map(PathBuf::from) else {
        eprintln!("skipped: SYNGUARD_OLD_BIN names no earlier synguard binary");
        return Ok(());
    };
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let (ns, iface) = (fx.ns(), fx.iface());
    let original_ts = ns.sysctl_get("net.ipv4.tcp_timestamps")?;
    let first = Synguard::start_as_given(&old, ns, iface, &["--ports", "80", "--mode", "always"])?;
    first.signal_and_wait(Signal::SIGKILL)?;
    ensure!(pins_left(ns, iface)?, "the earlier release left no pins");
    let st = fx.status()?;
    ensure!(st["attached"] == true && st["legacy"] == true, "{st}");
    fx.cli(&["detach"])?;
    ensure!(!pins_left(ns, iface)?, "pins left after detach");
    ensure!(!run_info_left(ns, iface)?, "run-info left after detach");
    ensure!(
        !common::ops::xdp_attached(ns, iface)?,
        "XDP still attached after detach"
    );
    ensure!(
        ns.sysctl_get("net.ipv4.tcp_timestamps")? == original_ts,
        "the setting the earlier instance changed was not restored"
    );
    fx.connections(5)?;
    Ok(())
}
