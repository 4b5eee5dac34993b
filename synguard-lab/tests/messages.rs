//! The binary's messages and exit statuses where they need root, a namespace or a running
//! instance: a user without privileges is told what is needed, an interface that does not exist
//! is named, `doctor` exits 1 when it warns, and a veth start warns about nothing. (Usage errors
//! are in `synguard/tests/cli.rs`.) Run with `--test-threads=1`.

use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, Result};

mod common;
use common::ops::*;
use common::{Fixture, bin};

/// `synguard <args>` in the server namespace as the user nobody, without capabilities.
fn as_nobody(fx: &Fixture, args: &[&str]) -> Result<Output> {
    Command::new("nsenter")
        .arg(format!("--net={}", fx.ns().path().display()))
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(bin()?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running synguard through setpriv")
}

/// `synguard <args>` in the server namespace as root, whatever its exit status.
fn as_root(fx: &Fixture, args: &[&str]) -> Result<Output> {
    synguard_lab::lab::synguard_proc::run_once(&bin()?, &fx.ns().path(), args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn without_privileges_every_command_says_what_it_needs() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let sg = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    for args in [
        &["status"][..],
        &["status", "--iface", fx.iface()],
        &["block", "add", "198.18.0.200"],
        &["allow", "list"],
        &["stats", "--count", "1"],
        &["top"],
        &["detach", "--iface", fx.iface()],
        &["reload"],
    ] {
        let o = as_nobody(&fx, args)?;
        let t = text(&o);
        eprintln!("{args:?}: {t}");
        assert_eq!(o.status.code(), Some(1), "{args:?}: {t}");
        assert!(
            t.contains("needs root, or the capabilities CAP_BPF and CAP_NET_ADMIN"),
            "{args:?}: {t}"
        );
        assert!(!t.contains("no synguard is running"), "{args:?}: {t}");
    }
    // Nothing of it touched the instance.
    assert_eq!(fx.status()?["process_running"], true);
    assert!(sg.stop()?.success());
    Ok(())
}

#[test]
fn status_of_an_interface_that_does_not_exist_says_so() -> Result<()> {
    let fx = Fixture::new()?;
    for args in [
        &["status", "--iface", "nosuch0"][..],
        &["stats", "--iface", "nosuch0", "--count", "1"],
    ] {
        let o = as_root(&fx, args)?;
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {t}");
        assert!(
            t.contains("no interface 'nosuch0' in this network namespace"),
            "{args:?}: {t}"
        );
        assert!(
            t.contains(fx.iface()),
            "names the interfaces there are: {t}"
        );
    }
    Ok(())
}

#[test]
fn doctor_exits_1_while_it_warns() -> Result<()> {
    let fx = Fixture::new()?;
    // The namespace is the test's own: a value doctor warns about.
    fx.ns().sysctl("net.ipv4.tcp_synack_retries", "5")?;
    let o = as_root(&fx, &["doctor"])?;
    let t = text(&o);
    assert!(t.contains("WARN net.ipv4.tcp_synack_retries"), "{t}");
    assert_eq!(o.status.code(), Some(1), "{t}");
    let o = as_root(&fx, &["doctor", "--apply"])?;
    let t = text(&o);
    assert!(t.contains("applied net.ipv4.tcp_synack_retries"), "{t}");
    let o = as_root(&fx, &["doctor"])?;
    let t = text(&o);
    // Whatever --apply cannot set (the kernel, BTF) is fine on this machine.
    assert!(!t.contains("WARN"), "{t}");
    assert_eq!(o.status.code(), Some(0), "{t}");
    Ok(())
}

#[test]
fn a_veth_without_vlans_starts_without_a_vlan_warning() -> Result<()> {
    let fx = Fixture::new()?;
    let _clean = cleanup(&fx, &[fx.iface()]);
    let sg = fx.synguard(&["--ports", "80", "--mode", "always"])?;
    wait_log(&sg, "attached")?;
    let log = sg.log_text();
    assert!(!log.contains("VLAN"), "{log}");
    assert!(
        !log.contains("WARN"),
        "a clean start warns about nothing: {log}"
    );
    assert!(sg.stop()?.success());
    Ok(())
}
