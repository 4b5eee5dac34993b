//! Runs `synguard run` in the server namespace and reads its counters with
//! `synguard stats --json --count 1`. Both go through `nsenter --net=` so that the second
//! invocation sees the maps the first pinned under /sys/fs/bpf (docs/veth-and-nics.md,
//! "`ip netns exec` and bpffs").

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use synguard_common::reason::{Event, Reason};

use crate::lab::netns::Netns;

/// How long `synguard run` may take to attach and pin its maps.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to detach and restore sysctls after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The synguard binary: `$SYNGUARD_BIN` (set by `cargo xtask`), else `<target>/debug/synguard`
/// next to the running test or demo binary.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SYNGUARD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // Test binaries live in <target>/<profile>/deps/, the demo in <target>/<profile>/.
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("synguard");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("synguard binary not found: set SYNGUARD_BIN or build it (`cargo build -p synguard`)")
}

/// Where a `synguard run` in `ns` writes its output: one file per process, since a take-over
/// test runs a second one in the same namespace while the first still writes to its own.
fn log_path(ns: &Netns) -> PathBuf {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("{}-synguard-{n}.log", ns.name()))
}

/// A running `synguard run`.
pub struct Synguard {
    bin: PathBuf,
    child: Option<Child>,
    ns_path: PathBuf,
    iface: String,
    log: PathBuf,
}

impl Synguard {
    /// Starts `synguard run --iface <iface> <args>` in `ns` and waits until `stats` answers, i.e.
    /// its maps are pinned and readable.
    pub fn start(bin: &Path, ns: &Netns, iface: &str, args: &[&str]) -> Result<Synguard> {
        // Tests written before own cookies test the kernel's: they say `--cookies` when they
        // mean otherwise (`auto` picks own cookies on Linux 6.9+).
        let mut all = args.to_vec();
        if !args.contains(&"--cookies") {
            all.extend(["--cookies", "kernel"]);
        }
        Self::start_as_given(bin, ns, iface, &all)
    }

    /// As [`Synguard::start`] with `args` exactly as given: for an earlier release, which knows
    /// no `--cookies` (and has only the kernel's).
    pub fn start_as_given(bin: &Path, ns: &Netns, iface: &str, args: &[&str]) -> Result<Synguard> {
        Self::start_with_env(bin, ns, iface, args, &[])
    }

    /// As [`Synguard::start_as_given`] with variables added to its environment (a fault to
    /// inject, `SYNGUARD_FAIL_AT`).
    pub fn start_with_env(
        bin: &Path,
        ns: &Netns,
        iface: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Synguard> {
        let cmd = ns.command(&bin.to_string_lossy());
        Self::start_command(cmd, bin, ns, iface, args, env)
    }

    /// As [`Synguard::start`], in a new time namespace whose CLOCK_MONOTONIC and
    /// CLOCK_BOOTTIME run `shift_s` seconds behind the host's: the process sees a machine booted
    /// `shift_s` seconds later (`unshare --time`, which execs without forking since Linux 5.18,
    /// so the process is still the child this struct signals). The programs it loads do not
    /// see the shift: it is what a loader on another machine sees of its own clock.
    pub fn start_booted_later(
        bin: &Path,
        ns: &Netns,
        iface: &str,
        args: &[&str],
        shift_s: u64,
    ) -> Result<Synguard> {
        let mut cmd = std::process::Command::new("unshare");
        cmd.args([
            "--time".to_string(),
            format!("--monotonic=-{shift_s}"),
            format!("--boottime=-{shift_s}"),
            "nsenter".to_string(),
            format!("--net={}", ns.path().display()),
            bin.to_string_lossy().into_owned(),
        ]);
        Self::start_command(cmd, bin, ns, iface, args, &[])
    }

    /// As [`Synguard::start`], in a mount namespace of its own where no cgroup v2 hierarchy is
    /// mounted (each cgroup2 mount the test sees is unmounted there): a host where the
    /// connection table's sock_ops program cannot be attached. The BPF filesystem stays the
    /// test's, so `stats` and `status` see the pins.
    pub fn start_without_cgroup2(
        bin: &Path,
        ns: &Netns,
        iface: &str,
        args: &[&str],
    ) -> Result<Synguard> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        // `id parent dev root mount-point options [optional...] - fstype ...`
        let cgroup2: Vec<String> = mountinfo
            .lines()
            .filter_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                (right.split_whitespace().next()? == "cgroup2")
                    .then(|| left.split_whitespace().nth(4).map(str::to_string))?
            })
            .collect();
        let mut cmd = std::process::Command::new("unshare");
        // `run --iface ...` follows as "$@".
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "for m in $SG_CGROUP2; do umount -l \"$m\" || exit 1; done; \
                 exec nsenter --net=\"$SG_NETNS\" \"$0\" \"$@\"",
            )
            .arg(bin);
        let netns = ns.path().to_string_lossy().into_owned();
        let mut all = args.to_vec();
        all.extend(["--cookies", "kernel"]);
        Self::start_command(
            cmd,
            bin,
            ns,
            iface,
            &all,
            &[("SG_CGROUP2", &cgroup2.join(" ")), ("SG_NETNS", &netns)],
        )
    }

    fn start_command(
        mut cmd: std::process::Command,
        bin: &Path,
        ns: &Netns,
        iface: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Synguard> {
        let log = log_path(ns);
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .args(["run", "--iface", iface])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {} run", bin.display()))?;
        let mut sg = Synguard {
            bin: bin.to_path_buf(),
            child: Some(child),
            ns_path: ns.path(),
            iface: iface.to_string(),
            log,
        };
        sg.wait_ready()?;
        Ok(sg)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child_mut()?.try_wait()? {
                bail!("synguard run exited early ({status}):\n{}", self.log_text());
            }
            match self.stats() {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    bail!(
                        "synguard stats not answering after {START_TIMEOUT:?}: {e:#}\nrun log:\n{}",
                        self.log_text()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn child_mut(&mut self) -> Result<&mut Child> {
        self.child.as_mut().context("synguard already stopped")
    }

    /// What `synguard run` printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One `synguard stats --json --count 1` sample.
    pub fn stats(&self) -> Result<Stats> {
        stats_once(&self.bin, &self.ns_path, &self.iface)
    }

    /// SIGINT, then waits for a clean exit (detach, sysctls restored); SIGKILL after a timeout.
    pub fn stop(mut self) -> Result<ExitStatus> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().context("synguard already stopped")?;
        match signal_and_reap(&mut child, Signal::SIGINT)? {
            Some(status) => Ok(status),
            None => bail!(
                "synguard run ignored SIGINT for {STOP_TIMEOUT:?}; killed\n{}",
                self.log_text()
            ),
        }
    }
}

impl Synguard {
    /// The `synguard run` process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the process (SIGSTOP) until the guard drops (SIGCONT): the programs and pinned maps
    /// go on without the loader, as when a flood leaves it no CPU.
    pub fn pause(&self) -> Result<Paused> {
        let pid = Pid::from_raw(self.pid().context("synguard already stopped")? as i32);
        kill(pid, Signal::SIGSTOP).context("SIGSTOP to synguard run")?;
        Ok(Paused(pid))
    }

    /// Waits up to `timeout` for the process to exit on its own; its status and log. Killed
    /// (and an error) if it does not.
    pub fn wait_for_exit(mut self, timeout: Duration) -> Result<(ExitStatus, String)> {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().context("synguard already stopped")?;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status, self.log_text()));
            }
            if Instant::now() >= deadline {
                let _ = signal_and_reap(&mut child, Signal::SIGKILL);
                bail!(
                    "synguard run still running after {timeout:?}; killed\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` and waits (bounded) for the process to exit, e.g. SIGKILL (a crash) or
    /// SIGUSR1 (hand-over). Unlike `stop`, nothing is expected to be cleaned up.
    pub fn signal_and_wait(mut self, signal: Signal) -> Result<ExitStatus> {
        let mut child = self.child.take().context("synguard already stopped")?;
        match signal_and_reap(&mut child, signal)? {
            Some(status) => Ok(status),
            None => bail!("synguard run ignored {signal:?} for {STOP_TIMEOUT:?}; killed"),
        }
    }
}

/// A stopped `synguard run` ([`Synguard::pause`]); continued when dropped, also on a failure.
pub struct Paused(Pid);

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

/// Sends `signal` to `child` and waits up to [`STOP_TIMEOUT`] for it to exit; `None` if it had
/// to be killed.
fn signal_and_reap(child: &mut Child, signal: Signal) -> Result<Option<ExitStatus>> {
    let _ = kill(Pid::from_raw(child.id() as i32), signal);
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `synguard <args>` once in the namespace at `ns_path` and returns its output, whatever
/// its exit status (callers check it: some tests expect failures).
pub fn run_once(bin: &Path, ns_path: &Path, args: &[&str]) -> Result<std::process::Output> {
    std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns_path.display()))
        .arg(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running synguard {}", args.join(" ")))
}

impl Drop for Synguard {
    /// Stops the process if it still runs, and removes its log: every error above quotes the
    /// log, so it is kept only while a test is failing (unwinding), for what came after.
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop_inner();
        }
        if std::thread::panicking() {
            eprintln!("synguard run log kept: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Runs `synguard stats --iface <iface> --json --count 1` in the namespace at `ns_path`.
pub fn stats_once(bin: &Path, ns_path: &Path, iface: &str) -> Result<Stats> {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns_path.display()))
        .arg(bin)
        .args(["stats", "--iface", iface, "--json", "--count", "1"])
        .output()
        .context("running synguard stats")?;
    if !out.status.success() {
        bail!(
            "synguard stats failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rfind(|l| l.trim_start().starts_with('{'))
        .context("synguard stats printed no JSON line")?;
    Stats::parse(line)
}

/// One line of `synguard stats --json`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Stats {
    pub iface: String,
    pub time_ns: u64,
    #[serde(default)]
    pub interval_s: f64,
    pub mode: String,
    pub cookies_active: bool,
    #[serde(default)]
    pub syn_rate_pps: u64,
    #[serde(default)]
    pub verdicts: BTreeMap<String, VerdictStat>,
    #[serde(default)]
    pub events: BTreeMap<String, EventStat>,
    /// SYNs per protected port ("80" -> total and rate).
    #[serde(default)]
    pub ports: BTreeMap<String, EventStat>,
    #[serde(default)]
    pub totals: Totals,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct VerdictStat {
    pub packets: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub pps: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EventStat {
    pub total: u64,
    #[serde(default)]
    pub rate: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Totals {
    pub pass: u64,
    pub tx: u64,
    pub drop: u64,
}

impl Stats {
    pub fn parse(line: &str) -> Result<Stats> {
        serde_json::from_str(line).with_context(|| format!("parsing synguard stats line: {line}"))
    }

    /// Packets counted under `reason` (0 if never seen).
    pub fn packets(&self, reason: Reason) -> u64 {
        self.verdicts.get(reason.name()).map_or(0, |v| v.packets)
    }

    /// Total of `event` (0 if never seen).
    pub fn event(&self, event: Event) -> u64 {
        self.events.get(event.name()).map_or(0, |e| e.total)
    }

    /// Growth of a reason's packet count since `before`.
    pub fn delta(&self, before: &Stats, reason: Reason) -> u64 {
        self.packets(reason).saturating_sub(before.packets(reason))
    }

    /// Growth of an event's total since `before`.
    pub fn event_delta(&self, before: &Stats, event: Event) -> u64 {
        self.event(event).saturating_sub(before.event(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_line() {
        let line = r#"{"iface":"eth0","time_ns":5,"interval_s":1.0,"mode":"always","cookies_active":true,"syn_rate_pps":10,"verdicts":{"tx_synack_cookie":{"packets":7,"bytes":420,"pps":7.0},"drop_ack_bad_cookie":{"packets":3,"bytes":120,"pps":3.0}},"events":{"cookie_mode_on":{"total":1,"rate":0.0}},"totals":{"pass":0,"tx":7,"drop":3}}"#;
        let s = Stats::parse(line).unwrap();
        assert_eq!(s.packets(Reason::TxSynAckCookie), 7);
        assert_eq!(s.packets(Reason::PassCookieAck), 0);
        assert_eq!(s.event(Event::CookieModeOn), 1);
        assert!(s.cookies_active);
        assert_eq!(s.totals.drop, 3);
        let before = Stats::default();
        assert_eq!(s.delta(&before, Reason::DropAckBadCookie), 3);
    }
}
