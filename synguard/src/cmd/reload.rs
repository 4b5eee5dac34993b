//! `synguard reload`: asks the running `synguard run` of each instance in this network namespace
//! (or of `--iface`) to re-read its configuration, and reports what each answered through its
//! control socket (`daemon::control`): applied, refused with the reason, or applied except what
//! needs a restart. Exits non-zero when one refused or did not answer.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::{
    config::{DEFAULT_PIN_BASE, DEFAULT_RUN_DIR},
    daemon::control::{self, Outcome, Reply},
    state::{
        paths::{self, Key},
        run_info::RunInfo,
        scope,
    },
};

/// How long a daemon may take to answer (re-reading the file and writing the maps).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Only the instance on this interface [default: every instance in this network namespace].
    #[arg(long)]
    pub iface: Option<String>,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_BASE, hide = true)]
    pub pin_base: PathBuf,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR, hide = true)]
    pub run_dir: PathBuf,
}

/// The live processes of the selected instances, each once, with one of its instances' keys.
fn processes(args: &ReloadArgs) -> Result<Vec<(i32, Key)>> {
    let keys = scope::select(&args.pin_base, &args.run_dir, args.iface.as_deref())
        .with_context(|| format!("cannot list {}", args.run_dir.display()))?;
    let mut out: Vec<(i32, Key)> = Vec::new();
    for key in keys {
        let Some(info) = RunInfo::load(&args.run_dir, &key) else {
            continue;
        };
        let pid = info.pid as i32;
        // Only live processes: a run-info file can outlive a kill -9.
        // SAFETY: kill with signal 0 only checks that the process exists.
        if pid > 0 && !out.iter().any(|(p, _)| *p == pid) && unsafe { libc::kill(pid, 0) } == 0 {
            out.push((pid, key));
        }
    }
    Ok(out)
}

/// Returns the exit status: 0 when every process applied the file, 1 when one refused it or
/// could not be asked.
pub fn reload(args: &ReloadArgs) -> Result<i32> {
    let procs = processes(args)?;
    if procs.is_empty() {
        match &args.iface {
            Some(i) => bail!("no synguard is running on {i} in this network namespace"),
            None => bail!("no synguard is running in this network namespace"),
        }
    }
    let mut failed = false;
    for (pid, key) in procs {
        match ask(pid, &key, args) {
            Ok(reply) => failed |= !report(&key, &reply),
            Err(e) => {
                eprintln!("synguard pid {pid} ({key}): {e:#}");
                failed = true;
            }
        }
    }
    Ok(failed as i32)
}

fn ask(pid: i32, key: &Key, args: &ReloadArgs) -> Result<Reply> {
    if key.is_legacy() {
        bail!(
            "runs an earlier release, which has no control socket: `kill -HUP {pid}` reloads it \
             without an answer (its log says what came of it)"
        );
    }
    let socket = paths::control_socket(&args.run_dir, key);
    control::ask(&socket, control::RELOAD, ANSWER_TIMEOUT)
        .with_context(|| format!("no answer on {}", socket.display()))
}

/// Prints the answer; true when the file was applied.
fn report(key: &Key, r: &Reply) -> bool {
    let who = format!("synguard pid {} ({key})", r.pid);
    match r.outcome {
        Outcome::Applied => println!("{who}: reloaded: {}", r.message),
        Outcome::NeedsRestart => {
            println!("{who}: reloaded: {}", r.message);
            eprintln!(
                "{who}: {} changed, which takes a restart (the running value stays)",
                r.restart.join(", ")
            );
        }
        // The daemon's reason starts with "reload refused, nothing changed".
        Outcome::Refused => eprintln!("{who}: {}", r.message),
    }
    r.outcome != Outcome::Refused
}
