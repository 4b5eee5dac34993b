//! The loader killed at every step of start-up (`SYNGUARD_FAIL_AT=<step>` makes `run` SIGKILL
//! itself there, see `synguard::host::fault`), fresh and during a take-over: the next `detach`,
//! or the next `run` and its clean stop, leaves the host as it was (no program, no pins, no
//! run-info, the kernel settings back). Root, namespaces and real traffic, like `ops.rs`; run
//! with `--test-threads=1`.

use std::os::unix::process::ExitStatusExt as _;

use anyhow::{Context as _, Result, ensure};
use nix::sys::signal::Signal;

mod common;
use common::Fixture;
use common::ops::{cleanup, pins_left, run_info_left, wait_log, xdp_attached};

/// The steps `synguard::host::fault::Step` names.
const STEPS: [&str; 4] = ["recorded", "sysctls", "loaded", "attached"];
/// Kernel cookies: their kernel settings are what a crash must not leave changed.
const ARGS: [&str; 6] = ["--ports", "80", "--mode", "always", "--cookies", "kernel"];
const SYSCTLS: [&str; 2] = ["net.ipv4.tcp_timestamps", "net.ipv4.tcp_syncookies"];

/// The host as the test found it: the namespace's kernel settings.
fn settings(fx: &Fixture) -> Result<Vec<String>> {
    SYSCTLS.iter().map(|k| fx.sysctl(k)).collect()
}

/// `synguard run` that dies at `step`; it must die by SIGKILL, not exit.
fn run_dying_at(fx: &Fixture, step: &str) -> Result<()> {
    let out = fx
        .ns()
        .command(&common::bin()?.to_string_lossy())
        .args(["run", "--iface", fx.iface()])
        .args(ARGS)
        .env("SYNGUARD_FAIL_AT", step)
        .output()
        .context("running synguard")?;
    ensure!(
        out.status.signal() == Some(Signal::SIGKILL as i32),
        "{step}: expected death by SIGKILL, got {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Nothing of synguard left, settings as `before`, and the kernel alone serves connections.
fn as_before(fx: &Fixture, before: &[String], what: &str) -> Result<()> {
    ensure!(
        !xdp_attached(fx.ns(), fx.iface())?,
        "{what}: XDP still attached"
    );
    ensure!(!pins_left(fx.ns(), fx.iface())?, "{what}: pins left");
    ensure!(
        !run_info_left(fx.ns(), fx.iface())?,
        "{what}: run-info left"
    );
    ensure!(
        settings(fx)? == before,
        "{what}: kernel settings {:?}, were {before:?}",
        settings(fx)?
    );
    fx.connections(2)
        .with_context(|| format!("{what}: connections"))
}

/// One step, fresh start: killed there, then `detach`; killed again, then `run` and a stop.
fn fresh(step: &str) -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let before = settings(&fx)?;
    run_dying_at(&fx, step)?;
    fx.cli(&["detach"])?;
    as_before(&fx, &before, &format!("{step}, then detach"))?;

    run_dying_at(&fx, step)?;
    let sg = fx.synguard(&ARGS)?;
    // Killed after attaching, it left a directory that answers `stats` at once: this run is
    // done only when it says so.
    wait_log(&sg, "protecting TCP ports")?;
    fx.connections(2)?;
    ensure!(sg.stop()?.success());
    as_before(&fx, &before, &format!("{step}, then run and stop"))
}

/// One step during a take-over of a killed instance: the killed one's program keeps
/// protecting; then `detach`, or `run` (which takes over) and a stop.
fn takeover(step: &str) -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let before = settings(&fx)?;
    for then_run in [false, true] {
        let first = fx.synguard(&ARGS)?;
        first.signal_and_wait(Signal::SIGKILL)?;
        run_dying_at(&fx, step)?;
        ensure!(
            xdp_attached(fx.ns(), fx.iface())?,
            "{step}: a failed take-over removed the running program"
        );
        fx.connections(2)?;
        if then_run {
            let sg = fx.synguard(&ARGS)?;
            wait_log(&sg, "taking over from synguard pid")?;
            // The taken-over directory answers `stats` from the start: done only when it says so.
            wait_log(&sg, "protecting TCP ports")?;
            fx.connections(2)?;
            ensure!(sg.stop()?.success());
        } else {
            fx.cli(&["detach"])?;
        }
        let what = format!(
            "{step} during a take-over, then {}",
            if then_run { "run" } else { "detach" }
        );
        as_before(&fx, &before, &what)?;
    }
    Ok(())
}

#[test]
fn killed_at_every_start_up_step_then_detach_or_run() -> Result<()> {
    for step in STEPS {
        fresh(step).with_context(|| format!("fresh start, killed at {step}"))?;
        eprintln!("{step}: fresh start killed there, host restored by detach and by run");
    }
    Ok(())
}

#[test]
fn killed_at_every_step_of_a_take_over_then_detach_or_run() -> Result<()> {
    for step in STEPS {
        takeover(step).with_context(|| format!("take-over, killed at {step}"))?;
        eprintln!("{step}: take-over killed there, host restored by detach and by run");
    }
    Ok(())
}
