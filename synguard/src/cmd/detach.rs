//! `synguard detach --iface IF`: removes what a synguard left on an interface when it did not
//! detach itself (kill -9, OOM, a hand-over nobody took): the pinned link (which detaches the
//! program), the pinned maps, the run-info, and the kernel settings it recorded changing.

use anyhow::{Context as _, bail};
use log::info;

use std::path::PathBuf;

use clap::Args;

use crate::{
    config::{DEFAULT_PIN_BASE, DEFAULT_RUN_DIR},
    datapath::pins,
    host::sysctl::Sysctls,
    state::{
        lock::{InstanceLock, LockError},
        paths,
        run_info::RunInfo,
    },
};

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Interface to clean up (repeat for several).
    #[arg(long = "iface", value_name = "IFACE", required = true)]
    pub ifaces: Vec<String>,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

pub fn detach(args: &DetachArgs) -> anyhow::Result<()> {
    for iface in &args.ifaces {
        detach_one(args, iface).with_context(|| format!("cannot detach from {iface}"))?;
    }
    Ok(())
}

fn detach_one(args: &DetachArgs, iface: &str) -> anyhow::Result<()> {
    crate::config::validate_iface(iface)?;
    // Holding the lock proves no `run` guards the interface; a running one detaches itself.
    let _lock = match InstanceLock::acquire(&args.run_dir, iface) {
        Ok(l) => l,
        Err(LockError::AlreadyRunning { pid, .. }) => bail!(
            "synguard pid {pid} is guarding {iface}: stop it (SIGINT/SIGTERM, or `systemctl stop \
             synguard`) and it detaches itself"
        ),
        Err(e) => return Err(e.into()),
    };
    let mut done = Vec::new();
    let dir = paths::pin_dir(&args.pin_base, iface);
    if dir.exists() {
        if dir.join(pins::LINK).exists() {
            done.push("detached the XDP program".to_string());
        }
        // Removing the link pin releases the last reference to the link: the program detaches.
        pins::remove_dir(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        done.push(format!("removed {}", dir.display()));
    }
    let history = paths::history(&args.run_dir, iface);
    if history.exists() {
        std::fs::remove_file(&history)
            .with_context(|| format!("cannot remove {}", history.display()))?;
        done.push(format!("removed {}", history.display()));
    }
    let run_info = paths::run_info(&args.run_dir, iface);
    if let Some(prev) = RunInfo::of(&args.run_dir, iface) {
        for change in prev.restore_sysctls(&Sysctls::default()) {
            done.push(format!("restored {change}"));
        }
    }
    if run_info.exists() {
        std::fs::remove_file(&run_info)
            .with_context(|| format!("cannot remove {}", run_info.display()))?;
        done.push(format!("removed {}", run_info.display()));
    }
    if done.is_empty() {
        info!("{iface}: nothing to detach (synguard left nothing there)");
    }
    for d in done {
        info!("{iface}: {d}");
    }
    Ok(())
}
