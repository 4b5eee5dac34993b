//! The host side of the guest's NIC: a network namespace made for the VM, holding the tap that
//! QEMU opens. Nothing here touches the host's own interfaces or root-namespace sysctls. The
//! addresses come from 198.18.0.0/15 (benchmarking, RFC 2544), a /24 the namespace lab does not
//! use.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::proc::{checked_bounded, cleanup_bounded};

pub const NETNS: &str = "synguard-vm";
pub const TAP: &str = "sgvm0";
pub const HOST_ADDR: &str = "198.18.77.1";
pub const GUEST_ADDR: &str = "198.18.77.2";
pub const PREFIX_LEN: u8 = 24;
/// The only source address floods spoof: inside the test subnet, owned by nobody.
pub const SPOOF_ADDR: &str = "198.18.77.200";
/// Queue pairs of the virtio NIC: twice the guest's CPUs, so XDP_TX gets a queue per CPU of its
/// own (otherwise virtio-net falls back to a locked, shared TX queue; docs/virtio-net.md).
pub const NIC_QUEUES: u32 = 4;
pub const GUEST_CPUS: u32 = 2;

const IP_TIMEOUT: Duration = Duration::from_secs(20);

fn ip(args: &[&str]) -> Result<String> {
    checked_bounded(Command::new("ip").args(args), IP_TIMEOUT)
}

/// `ip netns exec NETNS <program>`: a command run on the host side of the guest's link.
pub fn in_ns(program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", NETNS, program]);
    cmd
}

pub fn exists() -> bool {
    std::path::Path::new("/run/netns").join(NETNS).exists()
}

/// The namespace and its tap, removed on drop unless kept (`vm up`).
pub struct Netns {
    keep: bool,
}

impl Netns {
    pub fn create() -> Result<Netns> {
        ip(&["netns", "add", NETNS]).context("creating the VM's network namespace")?;
        let ns = Netns { keep: false };
        let exec = |args: &[&str]| {
            let mut full = vec!["netns", "exec", NETNS, "ip"];
            full.extend_from_slice(args);
            ip(&full)
        };
        exec(&["link", "set", "lo", "up"])?;
        exec(&["tuntap", "add", "dev", TAP, "mode", "tap", "multi_queue"])
            .context("creating the multi-queue tap")?;
        let cidr = format!("{HOST_ADDR}/{PREFIX_LEN}");
        exec(&["addr", "add", &cidr, "dev", TAP])?;
        exec(&["link", "set", TAP, "up"])?;
        Ok(ns)
    }

    /// Leave the namespace in place when this value goes (`vm up`; `vm down` removes it).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

/// Removes the namespace (and with it the tap). Safe to call when it is gone already.
pub fn remove() -> Result<()> {
    if exists() {
        cleanup_bounded(Command::new("ip").args(["netns", "del", NETNS]), IP_TIMEOUT)
            .context("removing the VM's network namespace")?;
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.keep
            && let Err(e) = remove()
        {
            eprintln!("vm: {e:#}");
        }
    }
}

/// The tap's MAC address (the guest's neighbour entries for spoofed sources point here).
pub fn tap_mac() -> Result<String> {
    let out = ip(&[
        "netns",
        "exec",
        NETNS,
        "cat",
        &format!("/sys/class/net/{TAP}/address"),
    ])?;
    Ok(out.trim().to_string())
}
