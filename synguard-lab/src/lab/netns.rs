//! Network namespaces: create and delete them, run commands in them (`nsenter --net=`), and run
//! closures in them on threads that `setns` into them (setns changes only the calling thread).
//!
//! Commands enter with `nsenter --net=/run/netns/NAME`, not `ip netns exec`: the latter gives the
//! command its own /sys, on which /sys/fs/bpf is not the BPF filesystem, so a second command would
//! not see maps pinned by the first (docs/veth-and-nics.md, "`ip netns exec` and bpffs").

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread::JoinHandle;

use anyhow::{Context as _, Result, anyhow, bail};
use nix::sched::{CloneFlags, setns};

/// Every namespace the lab creates starts with this, so stale ones can be found and deleted.
pub const PREFIX: &str = "sgl-";

/// A named network namespace (`/run/netns/NAME`). Deleted on drop, after its processes are
/// killed.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up.
    pub fn create(name: &str) -> Result<Netns> {
        if !name.starts_with(PREFIX) {
            bail!("namespace {name} must start with {PREFIX}");
        }
        run_checked(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, what `nsenter --net=` and `setns` open.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A command that runs `program` inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg(program);
        cmd
    }

    /// Runs `program args...` inside the namespace and returns its stdout; fails on a non-zero
    /// exit with the command's stderr.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let out = run_checked(self.command(program).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ip -n NAME args...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let out = run_checked(Command::new("ip").args(["-n", &self.name]).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Writes a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.run("sysctl", &["-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// Reads a sysctl inside the namespace.
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        Ok(self.run("sysctl", &["-n", key])?.trim().to_string())
    }

    /// Runs `f` on a new thread inside the namespace and waits for it.
    pub fn enter<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.spawn(&format!("in-{}", self.name), f)?
            .join()
            .map_err(|_| anyhow!("thread in {} panicked", self.name))?
    }

    /// Spawns a named thread that enters the namespace and then runs `f`. The join handle's
    /// `Err` is a failed `setns`.
    pub fn spawn<T, F>(&self, thread_name: &str, f: F) -> Result<JoinHandle<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = self.path();
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        std::thread::Builder::new()
            .name(thread_name.chars().take(15).collect())
            .spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("setns into {}", path.display()))?;
                Ok(f())
            })
            .context("spawning a namespace thread")
    }

    /// Kills every process still running inside the namespace (all of them were started by the
    /// lab: the namespace is ours).
    pub fn kill_all(&self) {
        kill_pids_in(&self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_pids_in(&self.name);
        if let Err(e) = run_checked(Command::new("ip").args(["netns", "del", &self.name])) {
            log::warn!("deleting namespace {}: {e:#}", self.name);
        }
    }
}

fn kill_pids_in(name: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run_checked(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Names of existing namespaces that start with [`PREFIX`].
pub fn lab_namespaces() -> Result<Vec<String>> {
    let out = run_checked(Command::new("ip").args(["netns", "list"]))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

/// The pid a lab namespace name carries (`sgl-<pid>-...`).
fn owner_pid(name: &str) -> Option<i32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Deletes lab namespaces left behind by processes that no longer run (a killed test, a crashed
/// demo), together with anything still running inside them. Namespaces of live lab processes are
/// left alone.
pub fn cleanup_stale() -> Result<usize> {
    let mut removed = 0;
    for name in lab_namespaces()? {
        let alive = owner_pid(&name)
            .map(|pid| PathBuf::from(format!("/proc/{pid}")).exists())
            .unwrap_or(false);
        if !alive {
            log::info!("removing stale lab namespace {name}");
            drop(Netns { name });
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn owner_pid_from_name() {
        assert_eq!(owner_pid("sgl-1234-0-srv"), Some(1234));
        assert_eq!(owner_pid("sgl-x-srv"), None);
        assert_eq!(owner_pid("other-1-srv"), None);
    }
}
