//! `cargo xtask vm test`: checks on the virtio-net driver that can fail, each printed with its
//! figures. Order matters only to save program loads (each takes tens of seconds under software
//! emulation): fresh attach -> traffic checks -> hand-over and take-over -> SIGTERM -> crash and
//! `detach` -> short queues -> jumbo MTU -> bond. `wire` checks what crosses the link,
//! `lifecycle` what attach, hand-over, restart and detach leave on the NIC, `queues` that
//! synguard refuses a NIC whose XDP_TX would run in the driver's locked mode, `jumbo` that it
//! attaches natively at a jumbo MTU, `bond` that it works on a bond over the NIC and on the
//! NIC as the bond's slave.

mod bond;
mod jumbo;
mod lifecycle;
mod queues;
mod wire;

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

use super::guest::{self, XdpState};
use super::net;
use super::phases::Phases;
use super::qemu;
use super::release::ReleaseBuild;
use super::session;
use super::ssh::Guest;

const SHORT: Duration = Duration::from_secs(60);

/// Pass/fail lines, printed as they come.
struct Verdicts {
    failed: Vec<String>,
    passed: usize,
}

impl Verdicts {
    fn check(&mut self, name: &str, ok: bool, figures: String) {
        println!(
            "vm test: {} {name}: {figures}",
            if ok { "PASS" } else { "FAIL" }
        );
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(name.to_string());
        }
    }
}

pub fn run(build: ReleaseBuild) -> Result<()> {
    let mut phases = Phases::new();
    let mut v = Verdicts {
        failed: Vec::new(),
        passed: 0,
    };
    let vm = session::start(&mut phases)?;
    let g = &vm.guest;
    phases.begin("release build (what remained after boot)");
    let synguard = build.finish()?;
    phases.begin("copy synguard in, start servers");
    guest::prepare(g, &synguard)?;
    let syncookies_before = g.run("sysctl -n net.ipv4.tcp_syncookies", SHORT)?;
    print_driver("before attach", g)?;
    phases.begin("fresh attach (load and verify)");
    let first = guest::start_synguard(g, "first")?;
    check_native(&mut v, g, &first)?;
    check_cookie_kind(&mut v, g, &first)?;
    print_driver("after attach", g)?;
    phases.begin("floods, capture, handshake");
    // The capture stays in the run directory beside the serial log, for a look after a failure.
    wire::traffic_checks(&mut v, g, Path::new(qemu::RUN_DIR))?;
    phases.begin("hand-over and restart");
    lifecycle::restart_checks(&mut v, g, &first)?;
    phases.begin("crash, then detach");
    lifecycle::detach_check(&mut v, g)?;
    phases.begin("too few queue pairs: refused");
    queues::short_queue_check(&mut v, g)?;
    phases.begin("jumbo MTU: native attach");
    jumbo::jumbo_check(&mut v, g)?;
    phases.begin("bond over the NIC: native attach to the bond and to its slave");
    bond::bond_check(&mut v, g)?;
    let syncookies_after = g.run("sysctl -n net.ipv4.tcp_syncookies", SHORT)?;
    v.check(
        "kernel settings restored",
        syncookies_before == syncookies_after,
        format!(
            "tcp_syncookies {} before the first run, {} after the last",
            syncookies_before.trim(),
            syncookies_after.trim()
        ),
    );
    println!("{}", phases.summary());
    if !v.failed.is_empty() {
        bail!(
            "vm test: {} checks failed: {}",
            v.failed.len(),
            v.failed.join(", ")
        );
    }
    println!("vm test: all {} checks passed ({:?})", v.passed, vm.accel);
    Ok(())
}

/// What the driver shows: queues, offloads, and its kernel messages (for `doctor`-style checks).
fn print_driver(when: &str, g: &Guest) -> Result<()> {
    let (_, out, _) = g.try_run(
        &format!(
            "ethtool -l {i} | tail -4 | tr -s '\\t\\n' ' '; echo; ethtool -k {i} | grep -E \
             'rx-checksumming|generic-receive|large-receive|rx-vlan-offload|tx-checksumming|\
             tcp-segmentation' | tr -s '\\t\\n' ' '",
            i = guest::IFACE
        ),
        SHORT,
    )?;
    println!(
        "vm test: driver {when}: {}",
        out.replace('\n', " | ").trim()
    );
    Ok(())
}

/// Whether `run` attached in native mode without falling back, and what shows it.
fn native_attach(g: &Guest, run: &guest::Run) -> Result<(bool, String)> {
    let state = guest::xdp_state(g)?;
    let log = run.log_text(g)?;
    let attach_line = log
        .lines()
        .find(|l| l.contains("synguard attached to"))
        .unwrap_or("(no attach line)");
    let native = state == XdpState::Native
        && !log.contains("falling back")
        && attach_line.contains("native");
    Ok((
        native,
        format!("ip link: {state:?}; log: {}", attach_line.trim()),
    ))
}

fn check_native(v: &mut Verdicts, g: &Guest, run: &guest::Run) -> Result<()> {
    let (native, figures) = native_attach(g, run)?;
    v.check("native attach, no fallback", native, figures);
    let dmesg = guest::driver_messages(g)?;
    let locked = dmesg.lines().find(|l| l.contains("locked tx mode"));
    v.check(
        "XDP_TX has its own TX queues",
        locked.is_none(),
        format!(
            "{} queue pairs for {} guest CPUs; dmesg: {}",
            net::NIC_QUEUES,
            net::GUEST_CPUS,
            locked.unwrap_or("no locked-mode warning")
        ),
    );
    Ok(())
}

/// Which cookies `--cookies auto` (the default) chose in the guest, with the log's reason and
/// what the verifier processed for each synguard program (the limit is 1 M). The guest's kernel (6.12) has `bpf_sk_assign_tcp_reqsk`,
/// so anything but own cookies there is a failure unless the kernel lacks it.
fn check_cookie_kind(v: &mut Verdicts, g: &Guest, run: &guest::Run) -> Result<()> {
    let log = run.log_text(g)?;
    let choice = log
        .lines()
        .find(|l| {
            l.contains("own cookies (--cookies")
                || l.contains("own cookies unavailable")
                || l.contains("kernel cookies (--cookies")
        })
        .unwrap_or("(no line says which cookies)")
        .to_string();
    // `synguard run` in the guest logs these at debug level (`datapath::load::log_verified`).
    let verified: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("synguard::datapath::load] ").map(|(_, m)| m))
        .filter(|m| m.contains("the verifier processed"))
        .collect();
    v.check(
        "cookie kind chosen (default --cookies auto)",
        choice.contains("own cookies (--cookies auto") || choice.contains("has no"),
        format!("log: {}; {}", choice.trim(), verified.join("; ")),
    );
    Ok(())
}

/// A dotted-quad constant as bytes.
fn addr(s: &str) -> [u8; 4] {
    let ip: std::net::Ipv4Addr = s.parse().expect("constant address");
    ip.octets()
}
