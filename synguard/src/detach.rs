//! `synguard detach --iface IF`: removes what a synguard left on an interface when it did not
//! detach itself (kill -9, OOM, a hand-over nobody took): the pinned link (which detaches the
//! program), the pinned maps, the run-info, and the kernel settings it recorded changing.

use anyhow::{Context as _, bail};
use log::info;

use crate::{
    cli::DetachArgs,
    loader::{self, InstanceLock, LoaderError, PrevRun},
    pin,
    sysctl::Sysctls,
};

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
        Err(LoaderError::AlreadyRunning { pid, .. }) => bail!(
            "synguard pid {pid} is guarding {iface}: stop it (SIGINT/SIGTERM, or `systemctl stop \
             synguard`) and it detaches itself"
        ),
        Err(e) => return Err(e.into()),
    };
    let mut done = Vec::new();
    let dir = args.pin_base.join(iface);
    if dir.exists() {
        if dir.join(pin::LINK).exists() {
            done.push("detached the XDP program".to_string());
        }
        // Removing the link pin releases the last reference to the link: the program detaches.
        pin::remove_dir(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        done.push(format!("removed {}", dir.display()));
    }
    let history = crate::events::history_path(&args.run_dir, iface);
    if history.exists() {
        std::fs::remove_file(&history)
            .with_context(|| format!("cannot remove {}", history.display()))?;
        done.push(format!("removed {}", history.display()));
    }
    let run_info = args.run_dir.join(format!("{iface}.json"));
    if let Some(prev) = PrevRun::read(&run_info) {
        for change in loader::restore_recorded_sysctls(&prev, &Sysctls::default()) {
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
