//! `cargo xtask vm`: synguard on a real NIC driver. A Debian guest under QEMU with a multi-queue
//! virtio-net NIC whose tap lives in a network namespace made for it; the freshly built release
//! synguard is copied in and attached natively to the guest's eth0.
//!
//! Layers, imported one way: `proc` (bounded child processes, Ctrl-C) <- `packages`, `net`,
//! `image`, `qemu`, `ssh`, `release` <- `session` (one VM's lifetime) <- `guest`, `traffic`, `pcap` <-
//! `demo`, `checks`.

mod checks;
mod demo;
mod frame;
mod guest;
mod image;
mod net;
mod packages;
mod pcap;
mod phases;
mod proc;
mod qemu;
mod release;
mod session;
mod ssh;
mod traffic;

use std::path::Path;

use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum VmCmd {
    /// Build (or reuse) the guest image, boot it, copy the release synguard in and leave it
    /// running (`vm down` stops it).
    Up,
    /// Stop the VM `vm up` left running and remove its namespace.
    Down,
    /// ssh into the running VM (`vm up` first); extra arguments run as a command.
    Ssh {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Web server and synguard in the guest, hping3 SYN and ACK floods from the host side, curl
    /// fetches throughout; prints synguard's stats and the fetch success.
    Demo,
    /// End-to-end checks on the virtio-net driver (part of `cargo xtask test`).
    Test,
}

pub fn main(root: &Path, cmd: VmCmd) -> Result<()> {
    if !crate::is_root() {
        bail!("`cargo xtask vm` creates a network namespace and a tap: run it as root");
    }
    packages::check_host()?;
    proc::install_signal_handlers();
    // Every command but `ssh` holds the machine's one VM slot while it runs.
    let _lock = match cmd {
        VmCmd::Ssh { .. } => None,
        _ => Some(session::RunLock::acquire()?),
    };
    match cmd {
        VmCmd::Up => session::up(release::ReleaseBuild::start(root)?),
        VmCmd::Down => session::down(),
        VmCmd::Ssh { args } => session::ssh(&args),
        VmCmd::Demo => demo::run(release::ReleaseBuild::start(root)?),
        VmCmd::Test => checks::run(release::ReleaseBuild::start(root)?),
    }
}
