//! `--cookies auto` where the kernel refuses own cookies: the own-cookie XDP program is made
//! unverifiable (`SYNGUARD_FAIL_AT=own-verifier`, `synguard::host::fault`), so the kernel's
//! verifier really refuses it. `auto` then runs the kernel's cookies exactly as `--cookies
//! kernel` does, with nothing of own cookies left; `--cookies own` refuses to start. Root, real
//! TCP stacks and a bounded flood in the lab's namespaces; run with `--test-threads=1`.

use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use synguard_common::{names, reason::Reason};
use synguard_lab::lab::synguard_proc::Synguard;

mod common;
use common::ops::{cleanup, pins_of, tcx_ingress_programs, wait_log, xdp_attached};
use common::{Fixture, bin};

const FAULT: (&str, &str) = ("SYNGUARD_FAIL_AT", "own-verifier");
const SYSCTLS: [&str; 2] = ["net.ipv4.tcp_timestamps", "net.ipv4.tcp_syncookies"];

/// The cookie settings' current values, in `SYSCTLS` order.
fn settings(fx: &Fixture) -> Result<Vec<String>> {
    SYSCTLS.iter().map(|k| fx.sysctl(k)).collect()
}

fn start(fx: &Fixture, cookies: &str) -> Result<Synguard> {
    let args = ["--ports", "80", "--mode", "always", "--cookies", cookies];
    Synguard::start_with_env(&bin()?, fx.ns(), fx.iface(), &args, &[FAULT])
}

/// The entries of a pinned map, as bpftool dumps them.
fn map_entries(pin: &Path) -> Result<Vec<serde_json::Value>> {
    let out = std::process::Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(pin)
        .output()
        .context("running bpftool")?;
    ensure!(
        out.status.success(),
        "bpftool map dump {}: {}",
        pin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// Nothing of own cookies: no TC program, no TC link pinned, no key, no program to tail-call.
fn no_own_cookies_left(fx: &Fixture) -> Result<()> {
    let tc = tcx_ingress_programs(fx.ns(), fx.iface())?;
    ensure!(tc.is_empty(), "TC programs left: {tc:?}");
    let dir = pins_of(fx.ns(), fx.iface())?
        .into_iter()
        .next()
        .context("no pin directory")?;
    ensure!(!dir.join("tc_link").exists(), "a TC link is pinned");
    for entry in map_entries(&dir.join(names::COOKIE_SECRET))? {
        let value = entry["value"].as_array().context("secret value")?;
        ensure!(
            value.iter().all(|b| b.as_str() == Some("0x00")),
            "the cookie secret map holds a key: {entry}"
        );
    }
    let slots = map_entries(&dir.join(names::OWN_PROG))?;
    ensure!(
        slots.is_empty(),
        "own-cookie program left in the tail-call map: {slots:?}"
    );
    Ok(())
}

/// The fault gives a real verifier refusal; `auto` falls back with one line saying so, status
/// says kernel cookies, nothing of own cookies is left, the kernel's cookie settings are in
/// place, cookies answer a flood and the listener refresh runs (kernel cookies' duties), and
/// real clients connect throughout; after the stop every setting is back.
#[test]
fn auto_falls_back_to_kernel_cookies_when_the_verifier_refuses_own() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let before = settings(&fx)?;
    let sg = start(&fx, "auto")?;
    wait_log(&sg, "protecting TCP ports")?;
    let log = sg.log_text();
    let fallback = log
        .lines()
        .find(|l| l.contains("own cookies unavailable"))
        .with_context(|| format!("no fall-back line:\n{log}"))?;
    eprintln!("{fallback}");
    ensure!(
        fallback.contains("synguard_own_xdp rejected by the verifier (R7 !read_ok")
            && fallback.contains("insns processed); using kernel cookies (--cookies auto)"),
        "{fallback}"
    );
    ensure!(!log.contains("own cookies (--cookies"), "{log}");
    let status = fx.status()?;
    ensure!(status["cookies"] == "kernel", "status: {status}");
    no_own_cookies_left(&fx)?;
    for (key, want) in SYSCTLS.iter().zip(["2", "2"]) {
        ensure!(fx.sysctl(key)? == want, "{key} is {}", fx.sysctl(key)?);
    }

    let s0 = sg.stats()?;
    let client = fx.continuous()?;
    let flood = fx.flood(common::e2e::syn_flood(20_000))?;
    let legit = client.stop();
    fx.connections(5)?;
    let s1 = sg.stats()?;
    let cookies = s1.delta(&s0, Reason::TxSynAckCookie);
    let refresh = s1.delta(&s0, Reason::PassSynListenerRefresh);
    eprintln!(
        "kernel cookies after the fall-back: {} flood SYNs, {cookies} cookies, {refresh} \
         listener refreshes; legit {} ok {} failed",
        flood.sent(),
        legit.ok,
        legit.failed
    );
    common::assert_no_failures("legit clients", &legit);
    ensure!(
        cookies >= flood.sent(),
        "{cookies} cookies for {} SYNs",
        flood.sent()
    );
    ensure!(
        refresh > 0,
        "no listener refresh: not the kernel-cookie path"
    );
    ensure!(sg.stop()?.success(), "synguard run did not stop cleanly");
    let after = settings(&fx)?;
    ensure!(after == before, "settings {after:?}, were {before:?}");
    Ok(())
}

/// `--cookies own` with the same refusal: no start, the reason in the error, nothing left.
#[test]
fn own_fails_hard_when_the_verifier_refuses_it() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let before = settings(&fx)?;
    let err = match start(&fx, "own") {
        Ok(_) => anyhow::bail!("--cookies own started although its program was refused"),
        Err(e) => format!("{e:#}"),
    };
    ensure!(
        err.contains("--cookies own: synguard_own_xdp rejected by the verifier (R7 !read_ok"),
        "{err}"
    );
    ensure!(!xdp_attached(fx.ns(), fx.iface())?, "XDP left attached");
    ensure!(
        pins_of(fx.ns(), fx.iface())?.is_empty(),
        "pins left: {:?}",
        pins_of(fx.ns(), fx.iface())?
    );
    ensure!(
        tcx_ingress_programs(fx.ns(), fx.iface())?.is_empty(),
        "TC program left"
    );
    let after = settings(&fx)?;
    ensure!(after == before, "settings {after:?}, were {before:?}");
    Ok(())
}
