//! Helpers the lab crate's test files share. Every test file is its own crate and uses only some
//! of them, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod e2e;
pub mod echo;
pub mod fleet;
pub mod ops;
pub mod raw;
pub mod syn;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Result, ensure};
use synguard_common::maps::{COOKIES_OWN, Config, MODE_AUTO};
use synguard_common::reqsk::CookieSecret;
use synguard_lab::lab::Lab;
use synguard_lab::lab::kstats::KStats;
use synguard_lab::lab::netns::Netns;
use synguard_lab::lab::synguard_proc::{self, Synguard};
use synguard_lab::lab::traffic::{ContinuousStats, Server};
use synguard_lab::testrun::fixture::{Fixture as TestRunFixture, default_config};

/// The protected port every test's server listens on.
pub const PORT: u16 = 80;

/// Fails the test at once, with the way to run it, unless it runs as root.
pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "the lab tests need root: run them through `cargo xtask test`"
    );
}

/// The server's address on [`PORT`].
pub fn addr(v6: bool) -> SocketAddr {
    synguard_lab::lab::topology::server_addr(v6, PORT)
}

/// The synguard binary under test (`SYNGUARD_BIN`).
pub fn bin() -> Result<PathBuf> {
    synguard_proc::binary()
}

/// Seconds since the host booted (`/proc/uptime`): how far back a time namespace can shift
/// CLOCK_MONOTONIC (the kernel refuses an offset that makes it negative: ERANGE).
pub fn uptime_s() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/uptime")?;
    let whole = text.split('.').next().unwrap_or_default();
    Ok(whole.parse::<u64>()?)
}

/// The XDP program loaded for `BPF_PROG_TEST_RUN` with the default configuration, protecting
/// `ports`.
pub fn testrun_fixture(ports: &[u16]) -> TestRunFixture {
    TestRunFixture::new(default_config(), ports).expect("load synguard (needs root)")
}

/// The XDP program loaded for `BPF_PROG_TEST_RUN` with `cfg`, protecting [`PORT`], with a fixed
/// own-cookie secret (so that runs can be compared).
pub fn testrun_fixture_with_secret(cfg: Config) -> TestRunFixture {
    let mut f = TestRunFixture::new(cfg, &[PORT]).expect("load synguard (needs root)");
    f.set_secret(CookieSecret {
        current: [0x0101_0202_0303_0404, 0x0505_0606_0707_0808],
        ..Default::default()
    })
    .expect("set the cookie secret");
    f
}

/// The default configuration with own cookies.
pub fn own_config() -> Config {
    Config {
        cookies: COOKIES_OWN,
        ..default_config()
    }
}

/// Auto mode that switches on at the second SYN in one 100 ms window (20 SYN/s; one SYN alone
/// stays with the kernel), off below 20 after 1 ms.
pub fn eager_auto_mode() -> Config {
    let mut cfg = default_config();
    cfg.mode = MODE_AUTO;
    cfg.syn_on_pps = 20;
    cfg.syn_off_pps = 20;
    cfg.hold_ns = 1_000_000;
    cfg
}

/// The legitimate clients of `s` all got through, and some did.
pub fn assert_no_failures(what: &str, s: &ContinuousStats) {
    eprintln!(
        "{what}: {} ok, {} failed, p50 {:?} us, p99 {:?} us",
        s.ok,
        s.failed,
        s.latency_percentile_us(50.0),
        s.latency_percentile_us(99.0)
    );
    assert!(s.ok > 0, "{what}: no legit connection completed");
    assert_eq!(
        s.failed, 0,
        "{what}: legit connections failed: {:?}",
        s.last_error
    );
}

/// A lab with a server listening on [`PORT`] over IPv4 and IPv6. Declared before the guards of a
/// test, so that their cleanup runs while the namespaces still exist.
pub struct Fixture {
    pub server: Server,
    pub lab: Lab,
}

impl Fixture {
    pub fn new() -> Result<Fixture> {
        require_root();
        let lab = Lab::new()?;
        let server = Server::start(&lab.server.ns, &[addr(false), addr(true)])?;
        Ok(Fixture { server, lab })
    }

    /// The server's namespace.
    pub fn ns(&self) -> &Netns {
        &self.lab.server.ns
    }

    /// The server's interface, the one synguard protects.
    pub fn iface(&self) -> &str {
        &self.lab.server.ifname
    }

    /// `synguard run <args>` on the server's interface.
    pub fn synguard(&self, args: &[&str]) -> Result<Synguard> {
        Synguard::start(&bin()?, self.ns(), self.iface(), args)
    }

    /// `synguard <args>` in the server namespace; its stdout, or an error with its stderr.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        cli_ok(self.ns(), args)
    }

    /// The server kernel's TCP counters.
    pub fn kstats(&self) -> Result<KStats> {
        KStats::read(self.ns())
    }
}

/// Whatever a test left for the server's interface (pins, run-info, runtime list entries) goes
/// with the lab: the files live on the host, the namespace does not.
impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(bin) = bin() {
            let iface = self.iface().to_string();
            let _ =
                synguard_proc::run_once(&bin, &self.ns().path(), &["detach", "--iface", &iface]);
        }
    }
}

/// `synguard <args>` in `ns`, which must succeed; its stdout, or an error with its stderr.
pub fn cli_ok(ns: &Netns, args: &[&str]) -> Result<String> {
    let out = synguard_proc::run_once(&bin()?, &ns.path(), args)?;
    ensure!(
        out.status.success(),
        "synguard {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
