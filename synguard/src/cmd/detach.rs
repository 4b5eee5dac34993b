//! `synguard detach [--iface IF]`: removes what a synguard left on the interfaces of this
//! network namespace when it did not detach itself (kill -9, OOM, a hand-over nobody took): the
//! pinned links (which detach the programs), the pinned maps, the run-info, the flood history,
//! the runtime list entries, and the kernel settings it recorded changing. Instances of the
//! earlier release's flat layout are found too (`state::scope`).

use anyhow::{Context as _, bail};
use log::info;

use std::path::{Path, PathBuf};

use clap::Args;

use crate::{
    config::{DEFAULT_PIN_BASE, DEFAULT_RUN_DIR},
    datapath::pins,
    host::{netns, sysctl::Sysctls},
    state::{
        lock::{InstanceLock, LockError},
        paths::{self, Key},
        run_info::RunInfo,
        scope,
    },
};

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Interface to clean up (repeat for several) [default: every instance in this network
    /// namespace].
    #[arg(long = "iface", value_name = "IFACE")]
    pub ifaces: Vec<String>,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

pub fn detach(args: &DetachArgs) -> anyhow::Result<()> {
    for iface in &args.ifaces {
        crate::config::validate_iface(iface)?;
    }
    let keys = instances(args)?;
    if keys.is_empty() {
        info!("nothing to detach (synguard left nothing in this network namespace)");
    }
    for key in keys {
        detach_one(args, &key).with_context(|| format!("cannot detach from {key}"))?;
    }
    remove_empty_netns_dirs(args)
}

/// This namespace's directories under the run directory and the pin base, if detaching (or an
/// earlier run) left them empty.
fn remove_empty_netns_dirs(args: &DetachArgs) -> anyhow::Result<()> {
    let ours = netns::current_inode().context("cannot read this network namespace")?;
    for base in [&args.run_dir, &args.pin_base] {
        let dir = paths::netns_dir(base, ours);
        if paths::remove_if_empty(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?
        {
            info!("removed {}", dir.display());
        }
    }
    Ok(())
}

/// The instances to clean: with state (pins, run-info) or only runtime list entries left.
fn instances(args: &DetachArgs) -> anyhow::Result<Vec<Key>> {
    let wanted = |k: &Key| args.ifaces.is_empty() || args.ifaces.iter().any(|i| i == k.iface());
    let mut keys = Vec::new();
    let names: Vec<Option<&str>> = if args.ifaces.is_empty() {
        vec![None]
    } else {
        args.ifaces.iter().map(|i| Some(i.as_str())).collect()
    };
    for name in names {
        keys.extend(scope::select(&args.pin_base, &args.run_dir, name)?);
    }
    let ours = netns::current_inode().context("cannot read this network namespace")?;
    keys.extend(
        scope::with_lists(&args.run_dir, ours)?
            .into_iter()
            .filter(wanted),
    );
    keys.sort();
    keys.dedup();
    Ok(keys)
}

fn detach_one(args: &DetachArgs, key: &Key) -> anyhow::Result<()> {
    // Holding the lock proves no `run` guards the interface; a running one detaches itself.
    let _lock = match InstanceLock::acquire(&args.run_dir, key) {
        Ok(l) => l,
        Err(LockError::AlreadyRunning { pid, .. }) => bail!(
            "synguard pid {pid} is guarding {key}: stop it (SIGINT/SIGTERM, or `systemctl stop \
             synguard`) and it detaches itself"
        ),
        Err(e) => return Err(e.into()),
    };
    let mut done = Vec::new();
    let dir = paths::pin_dir(&args.pin_base, key);
    if dir.exists() {
        if dir.join(pins::LINK).exists() {
            done.push("detached the XDP program".to_string());
        }
        if dir.join(pins::CONNS_LINK).exists() {
            done.push("detached the connection table's sock_ops program".to_string());
        }
        // Removing the link pin releases the last reference to the link: the program detaches.
        pins::remove_dir(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        done.push(format!("removed {}", dir.display()));
    }
    if let Some(prev) = RunInfo::load(&args.run_dir, key) {
        for change in prev.restore_sysctls(&Sysctls::default()) {
            done.push(format!("restored {change}"));
        }
    }
    for file in [
        paths::history(&args.run_dir, key),
        paths::runtime_lists(&args.run_dir, key),
        paths::control_socket(&args.run_dir, key),
        paths::run_info(&args.run_dir, key),
    ] {
        remove(&file, &mut done)?;
    }
    if done.is_empty() {
        info!("{key}: nothing to detach (synguard left nothing there)");
    }
    for d in done {
        info!("{key}: {d}");
    }
    Ok(())
}

fn remove(file: &Path, done: &mut Vec<String>) -> anyhow::Result<()> {
    if file.exists() {
        std::fs::remove_file(file).with_context(|| format!("cannot remove {}", file.display()))?;
        done.push(format!("removed {}", file.display()));
    }
    Ok(())
}
