//! Instances keyed by network namespace and interface, commands scoped to their own namespace,
//! a reload that answers, and list entries added at run time that survive a restart. Root,
//! namespaces and real traffic, like `ops.rs`; run with `--test-threads=1`.

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use nix::sys::signal::Signal;
use synguard_lab::lab::netns::{Netns, PREFIX};
use synguard_lab::lab::synguard_proc::{self, Synguard};

mod common;
use common::ops::{cleanup, netns_inode, pins_left, wait_log, xdp_attached};
use common::{Fixture, bin, require_root};

/// The interface name both namespaces use.
const IFACE: &str = "sgscope0";

/// A namespace with its own `sgscope0` (a veth whose peer stays in the same namespace: no
/// traffic is needed, only an interface to attach to).
struct Site {
    ns: Netns,
    config: PathBuf,
}

impl Site {
    fn new(tag: &str) -> Result<Site> {
        // `<prefix><pid>-`: a lab's stale-namespace cleanup leaves those of live processes alone.
        let ns = Netns::create(&format!("{PREFIX}{}-scope{tag}", std::process::id()))?;
        ns.ip(&[
            "link",
            "add",
            IFACE,
            "type",
            "veth",
            "peer",
            "name",
            "sgscope0p",
        ])?;
        ns.ip(&["link", "set", IFACE, "up"])?;
        ns.ip(&["link", "set", "sgscope0p", "up"])?;
        let config = std::env::temp_dir().join(format!("{}.toml", ns.name()));
        let site = Site { ns, config };
        site.write_config(5000, "[80]")?;
        Ok(site)
    }

    fn write_config(&self, threshold: u32, ports: &str) -> Result<()> {
        std::fs::write(
            &self.config,
            format!(
                "interfaces = [\"{IFACE}\"]\nports = {ports}\nmode = \"auto\"\n\
                 syn_threshold = {threshold}\n"
            ),
        )
        .context("writing the config file")
    }

    fn start(&self) -> Result<Synguard> {
        let config = self.config.to_string_lossy().into_owned();
        Synguard::start(&bin()?, &self.ns, IFACE, &["--config", &config])
    }

    /// `synguard <args>`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        common::cli_ok(&self.ns, args)
    }

    /// Every instance `status --json` shows in this namespace.
    fn status(&self) -> Result<Vec<serde_json::Value>> {
        let v: serde_json::Value = serde_json::from_str(self.ok(&["status", "--json"])?.trim())?;
        Ok(v["interfaces"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Ok(bin) = bin() {
            let _ = synguard_proc::run_once(&bin, &self.ns.path(), &["detach"]);
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Two namespaces, each with an interface of the same name and its own instance: every command
/// run in one namespace sees and changes only that namespace's instance.
#[test]
fn same_named_interfaces_in_two_namespaces_are_two_instances() -> Result<()> {
    require_root();
    let (a, b) = (Site::new("a")?, Site::new("b")?);
    let sa = a.start()?;
    let sb = b.start()?;

    // status: one instance each, keyed by its own namespace.
    for site in [&a, &b] {
        let all = site.status()?;
        ensure!(all.len() == 1, "{all:?}");
        ensure!(all[0]["netns"] == netns_inode(&site.ns)?, "{all:?}");
        ensure!(all[0]["attached"] == true && all[0]["process_running"] == true);
    }

    // block/allow add without --iface: this namespace's instance only, recorded as runtime.
    a.ok(&["block", "add", "192.0.2.0/24"])?;
    a.ok(&["allow", "add", "198.51.100.0/24", "--iface", IFACE])?;
    let listed = a.ok(&["block", "list", "--json"])?;
    ensure!(listed.contains("\"origin\":\"runtime\""), "{listed}");
    ensure!(!b.ok(&["block", "list", "--json"])?.contains("192.0.2.0"));
    ensure!(!b.ok(&["allow", "list"])?.contains("198.51.100.0"));
    b.ok(&["block", "add", "203.0.113.0/24"])?;
    ensure!(!a.ok(&["block", "list"])?.contains("203.0.113.0"));
    a.ok(&["block", "del", "192.0.2.0/24"])?;
    ensure!(!a.ok(&["block", "list"])?.contains("192.0.2.0"));
    ensure!(b.ok(&["block", "list"])?.contains("203.0.113.0"));

    // reload: only this namespace's process, and it answers.
    a.write_config(777, "[80, 8080]")?;
    b.write_config(888, "[80]")?;
    let out = a.ok(&["reload"])?;
    ensure!(
        out.contains(&format!("pid {}", sa.pid().unwrap_or(0))),
        "{out}"
    );
    ensure!(
        !out.contains(&format!("pid {}", sb.pid().unwrap_or(0))),
        "{out}"
    );
    ensure!(a.status()?[0]["syn_threshold"] == 777);
    ensure!(
        b.status()?[0]["syn_threshold"] == 5000,
        "b reloaded by a's command"
    );

    // stats and top: without --iface the one instance of this namespace is unambiguous.
    for site in [&a, &b] {
        site.ok(&["stats", "--json", "--count", "1"])?;
        let top = site.ok(&["top", "--json"])?;
        ensure!(top.lines().count() == 1, "{top}");
    }

    // detach: kill -9 in a, detach in a; b keeps running, attached.
    sa.signal_and_wait(Signal::SIGKILL)?;
    a.ok(&["detach"])?;
    ensure!(!pins_left(&a.ns, IFACE)? && !xdp_attached(&a.ns, IFACE)?);
    ensure!(a.status()?.is_empty(), "{:?}", a.status()?);
    ensure!(
        pins_left(&b.ns, IFACE)? && xdp_attached(&b.ns, IFACE)?,
        "detach in a touched b"
    );
    let st = b.status()?;
    ensure!(st[0]["process_running"] == true, "{st:?}");
    // A detach in a namespace without instances leaves the others alone.
    a.ok(&["detach"])?;
    ensure!(xdp_attached(&b.ns, IFACE)?);
    ensure!(sb.stop()?.success());
    ensure!(!pins_left(&b.ns, IFACE)?);
    Ok(())
}

/// `synguard reload` gets the daemon's answer: a refused file exits non-zero with the reason and
/// changes nothing; a good one is applied and `status` shows it.
#[test]
fn reload_answers_refused_or_applied() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let file = std::env::temp_dir().join(format!("{}-reload.toml", fx.lab.id));
    let write = |threshold: u32, ports: &str| {
        std::fs::write(
            &file,
            format!("ports = {ports}\nmode = \"auto\"\nsyn_threshold = {threshold}\n"),
        )
    };
    write(5000, "[80]")?;
    let sg = fx.synguard(&["--config", &file.to_string_lossy()])?;

    write(6000, "[80, 70000]")?;
    let out = synguard_proc::run_once(&bin()?, &fx.ns().path(), &["reload"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "refused reload: exit {:?}, stderr: {stderr}",
        out.status.code()
    );
    ensure!(!out.status.success(), "a refused reload exited 0");
    ensure!(
        stderr.contains("refused") && stderr.contains("70000"),
        "{stderr}"
    );
    let st = fx.status()?;
    ensure!(
        st["syn_threshold"] == 5000 && st["ports"] == serde_json::json!([80]),
        "{st}"
    );

    write(777, "[80, 8080]")?;
    let out = fx.cli(&["reload"])?;
    eprintln!("applied reload: {out}");
    ensure!(out.contains("reloaded"), "{out}");
    let st = fx.status()?;
    ensure!(st["syn_threshold"] == 777, "{st}");
    ensure!(st["ports"] == serde_json::json!([80, 8080]), "{st}");
    ensure!(sg.stop()?.success());
    let _ = std::fs::remove_file(&file);
    Ok(())
}

/// One IPv4 connection from the client; whether it was established within a second.
fn connects(fx: &Fixture) -> Result<bool> {
    let a = common::addr(false);
    fx.lab
        .client
        .ns
        .enter(move || TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// `block add` at run time, then a restart (stop and start): the prefix is still blocked, and
/// `list` says it was added at run time.
#[test]
fn runtime_block_survives_a_restart() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let args = ["--ports", "80", "--mode", "always"];
    let sg = fx.synguard(&args)?;
    fx.connections(2)?;
    let client = fx.lab.client.addr(false);
    let prefix = format!("{client}/32");
    fx.cli(&["block", "add", &prefix])?;
    ensure!(!connects(&fx)?, "not blocked at once");
    ensure!(sg.stop()?.success());

    let sg = fx.synguard(&args)?;
    // The restore is logged after the attach line `synguard` waits for: wait for it too.
    wait_log(&sg, "restored 0 allowed and 1 blocked prefixes")?;
    let listed = fx.cli(&["block", "list", "--json"])?;
    eprintln!("after the restart: {listed}");
    ensure!(
        listed.contains(&format!(
            "{{\"origin\":\"runtime\",\"prefix\":\"{prefix}\"}}"
        )),
        "{listed}"
    );
    let text = fx.cli(&["block", "list"])?;
    ensure!(text.contains("runtime"), "{text}");
    ensure!(!connects(&fx)?, "the block did not survive the restart");
    fx.cli(&["block", "del", &prefix])?;
    ensure!(connects(&fx)?, "still blocked after del");
    let left = fx.cli(&["block", "list", "--json"])?;
    ensure!(!left.contains(&prefix), "{left}");
    ensure!(sg.stop()?.success());
    Ok(())
}
