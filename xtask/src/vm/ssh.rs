//! ssh and scp to the guest, over the tap, from the VM's namespace, with the image's own key.
//! The guest's host keys are new with every image, so they are not recorded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::net;
use super::proc;

/// Where synguard goes in the guest (on root's PATH).
pub const SYNGUARD_PATH: &str = "/usr/local/sbin/synguard";

#[derive(Clone)]
pub struct Guest {
    key: PathBuf,
}

fn common_opts(cmd: &mut Command, key: &Path) {
    cmd.arg("-i")
        .arg(key)
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "LogLevel=ERROR"])
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "ConnectTimeout=10"])
        .args(["-o", "ServerAliveInterval=5"])
        .args(["-o", "ServerAliveCountMax=6"]);
}

impl Guest {
    pub fn new(key: PathBuf) -> Guest {
        Guest { key }
    }

    /// An ssh command running `script` (a shell command line) in the guest.
    pub fn command(&self, script: &str) -> Command {
        let mut cmd = net::in_ns("ssh");
        common_opts(&mut cmd, &self.key);
        cmd.arg(format!("root@{}", net::GUEST_ADDR)).arg(script);
        cmd
    }

    /// Runs `script` in the guest; fails on a non-zero exit with its stderr.
    pub fn run(&self, script: &str, timeout: Duration) -> Result<String> {
        proc::checked_bounded(&mut self.command(script), timeout)
            .with_context(|| format!("in the guest: {script}"))
    }

    /// Runs `script`, returning (exit code, stdout, stderr) whatever the exit.
    pub fn try_run(&self, script: &str, timeout: Duration) -> Result<(i32, String, String)> {
        let out = proc::output_bounded(&mut self.command(script), timeout)?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Copies a host file to `dest` in the guest.
    pub fn copy_in(&self, src: &Path, dest: &str) -> Result<()> {
        let mut cmd = net::in_ns("scp");
        common_opts(&mut cmd, &self.key);
        cmd.arg("-q")
            .arg(src)
            .arg(format!("root@{}:{dest}", net::GUEST_ADDR));
        proc::checked_bounded(&mut cmd, Duration::from_secs(120))
            .with_context(|| format!("copying {} into the guest", src.display()))?;
        Ok(())
    }

    /// Writes `content` to `dest` in the guest (small scripts).
    pub fn write_file(&self, dest: &str, content: &str) -> Result<()> {
        let tmp = std::env::temp_dir().join(format!(
            "synguard-vm-{}-{}",
            std::process::id(),
            dest.replace('/', "_")
        ));
        std::fs::write(&tmp, content)?;
        let r = self.copy_in(&tmp, dest);
        let _ = std::fs::remove_file(&tmp);
        r
    }

    /// Waits until sshd answers (the serial ready line can come a moment before it accepts).
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        proc::wait_for(
            "ssh into the guest",
            timeout,
            Duration::from_secs(1),
            || {
                Ok(self
                    .try_run("true", Duration::from_secs(20))
                    .map(|(code, _, _)| code == 0)
                    .unwrap_or(false)
                    .then_some(()))
            },
        )
    }

    /// An interactive session (`vm ssh`), or one command when `args` are given.
    pub fn interactive(&self, args: &[String]) -> Result<()> {
        let mut cmd = net::in_ns("ssh");
        common_opts(&mut cmd, &self.key);
        cmd.arg(format!("root@{}", net::GUEST_ADDR)).args(args);
        let status = cmd.status().context("starting ssh")?;
        if !status.success() {
            bail!("ssh: {status}");
        }
        Ok(())
    }
}
