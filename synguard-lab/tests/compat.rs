//! Compatibility with an earlier release: a pinned instance started by an older synguard (kill -9
//! after it attached) is taken over by this one without a reset: same pins and layouts, its
//! run-info read, its kernel settings restored when this one stops. Root, namespaces and real
//! traffic, like `ops.rs`; run with `--test-threads=1`.
//!
//! The older binary comes from `SYNGUARD_OLD_BIN`, e.g. built from commit 0434865 with
//! `git worktree add /tmp/sg-old 0434865 && cargo build -p synguard` there. Without it the test
//! says so and checks nothing; the fixtures in `synguard/tests/fixtures` (the run-info file and
//! the pin layout that release wrote) are checked by host tests on every build.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use nix::sys::signal::Signal;
use synguard_common::reason::Reason;
use synguard_lab::lab::Lab;
use synguard_lab::lab::synguard_proc::{self, Synguard};
use synguard_lab::lab::traffic::{self, Server, Transfer};

const PORT: u16 = 80;
const PIN_BASE: &str = "/sys/fs/bpf/synguard";

fn connections(lab: &Lab, n: usize) -> Result<()> {
    let addr = synguard_lab::lab::topology::server_addr(false, PORT);
    let small = |_: usize| Transfer {
        upload: 1000,
        download: 1000,
    };
    for (i, r) in traffic::run_batch(&lab.client.ns, addr, n, small)?
        .into_iter()
        .enumerate()
    {
        r.with_context(|| format!("connection {i} to {addr}"))?;
    }
    Ok(())
}

fn wait_log(sg: &Synguard, needle: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sg.log_text().contains(needle) {
        ensure!(
            Instant::now() < deadline,
            "no '{needle}' in the run log:\n{}",
            sg.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Detaches with this synguard whatever is left, also when the test fails half-way.
struct Cleanup<'a> {
    lab: &'a Lab,
    bin: PathBuf,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let iface = &self.lab.server.ifname;
        if Path::new(PIN_BASE).join(iface).exists() {
            let ns = self.lab.server.ns.path();
            let _ = synguard_proc::run_once(&self.bin, &ns, &["detach", "--iface", iface]);
        }
    }
}

#[test]
fn takes_over_an_instance_of_an_earlier_release() -> Result<()> {
    let Some(old) = std::env::var_os("SYNGUARD_OLD_BIN").map(PathBuf::from) else {
        eprintln!("skipped: SYNGUARD_OLD_BIN names no earlier synguard binary");
        return Ok(());
    };
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the compat test needs root");
    let bin = synguard_proc::binary()?;
    let lab = Lab::new()?;
    let _server = Server::start(
        &lab.server.ns,
        &[synguard_lab::lab::topology::server_addr(false, PORT)],
    )?;
    let _clean = Cleanup {
        lab: &lab,
        bin: bin.clone(),
    };
    let (ns, iface) = (&lab.server.ns, lab.server.ifname.as_str());
    let original_ts = ns.sysctl_get("net.ipv4.tcp_timestamps")?;
    let args = ["--ports", "80", "--mode", "always"];

    let first = Synguard::start(&old, ns, iface, &args)?;
    connections(&lab, 5)?;
    let s0 = first.stats()?;
    first.signal_and_wait(Signal::SIGKILL)?;

    let second = Synguard::start(&bin, ns, iface, &args)?;
    wait_log(&second, "taking over from synguard pid")?;
    wait_log(&second, "replaced the running program")?;
    let log = second.log_text();
    ensure!(!log.contains(" reset ("), "pinned state was reset:\n{log}");
    let s1 = second.stats()?;
    ensure!(
        s1.packets(Reason::TxSynAckCookie) >= s0.packets(Reason::TxSynAckCookie),
        "the counters of the earlier instance were not carried over"
    );
    connections(&lab, 5)?;
    let s2 = second.stats()?;
    // Always mode: every SYN but the listener's refresh SYN (one a second) gets a cookie.
    let cookies = s2.delta(&s1, Reason::TxSynAckCookie);
    eprintln!("{cookies} cookies for 5 connections after the take-over");
    ensure!(
        cookies >= 3,
        "{cookies} cookies for 5 connections after the take-over"
    );
    ensure!(second.stop()?.success(), "synguard did not stop cleanly");
    ensure!(
        ns.sysctl_get("net.ipv4.tcp_timestamps")? == original_ts,
        "the setting the earlier instance changed was not restored"
    );
    ensure!(
        !Path::new(PIN_BASE).join(iface).exists(),
        "pins left after a clean stop"
    );
    Ok(())
}
