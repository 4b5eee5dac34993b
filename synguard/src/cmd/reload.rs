//! `synguard reload`: asks every running `synguard run` to re-read its configuration.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::{
    config::DEFAULT_RUN_DIR,
    state::{ifaces, paths, run_info::RunInfo},
};

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

/// `synguard reload`: SIGHUP to every running `synguard run` (found by its run-info files).
pub fn signal(args: &ReloadArgs) -> Result<()> {
    let mut pids = Vec::new();
    let recorded = ifaces::recorded(&args.run_dir).with_context(|| {
        format!(
            "no synguard is running ({} unreadable)",
            args.run_dir.display()
        )
    })?;
    for iface in recorded {
        let Ok(Some(info)) = RunInfo::read(&paths::run_info(&args.run_dir, &iface)) else {
            continue;
        };
        let pid = info.pid as i32;
        // Only live processes: a run-info file can outlive a kill -9.
        // SAFETY: kill with signal 0 only checks that the process exists.
        if pid > 0 && !pids.contains(&pid) && unsafe { libc::kill(pid, 0) } == 0 {
            pids.push(pid);
        }
    }
    if pids.is_empty() {
        bail!(
            "no running synguard found (no live pid in {}/*.json)",
            args.run_dir.display()
        );
    }
    for pid in pids {
        // SAFETY: plain kill(2).
        if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
            bail!(
                "cannot signal synguard pid {pid}: {}",
                std::io::Error::last_os_error()
            );
        }
        println!("asked synguard pid {pid} to reload its configuration");
    }
    Ok(())
}
