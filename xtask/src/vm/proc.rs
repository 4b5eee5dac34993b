//! Child processes with bounded waits, and the Ctrl-C flag every wait checks. The signal handler
//! only sets a flag: the waits notice it, return an error, and the guards' `Drop` then stops and
//! removes everything (a handler cannot safely do that work itself).

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP set the flag instead of killing xtask before its guards ran.
pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Fails once Ctrl-C (or SIGTERM) arrived, so the caller unwinds to its guards.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps in short steps, failing early on Ctrl-C.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_interrupted()?;
        thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    Ok(())
}

/// Polls `ready` every `step` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    step: Duration,
    mut ready: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        check_interrupted()?;
        if let Some(v) = ready()? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        sleep(step)?;
    }
}

fn drain(mut r: impl std::io::Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Whether a bounded wait gives up on Ctrl-C (work) or not (clean-up, which must finish).
#[derive(Clone, Copy, PartialEq)]
pub enum OnCtrlC {
    Abort,
    Finish,
}

/// Runs `cmd` to completion, killing it after `timeout` (or on Ctrl-C); returns its output
/// whatever the exit status.
pub fn output_bounded(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    output_bounded_with(cmd, timeout, OnCtrlC::Abort)
}

fn output_bounded_with(cmd: &mut Command, timeout: Duration, on_int: OnCtrlC) -> Result<Output> {
    let mut child = cmd
        // A process group of its own: a timeout or Ctrl-C stops the command with everything it
        // forked (mmdebstrap's workers, `ip netns exec`'s program), not the leader alone.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let out = drain(child.stdout.take().expect("piped"));
    let err = drain(child.stderr.take().expect("piped"));
    let status =
        wait_bounded_with(&mut child, timeout, on_int).with_context(|| format!("{cmd:?}"))?;
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Like `output_bounded`, but fails on a non-zero exit, with stderr in the message.
pub fn checked_bounded(cmd: &mut Command, timeout: Duration) -> Result<String> {
    checked_bounded_with(cmd, timeout, OnCtrlC::Abort)
}

/// `checked_bounded` for clean-up steps: runs to the end (bounded) even after Ctrl-C.
pub fn cleanup_bounded(cmd: &mut Command, timeout: Duration) -> Result<String> {
    checked_bounded_with(cmd, timeout, OnCtrlC::Finish)
}

fn checked_bounded_with(cmd: &mut Command, timeout: Duration, on_int: OnCtrlC) -> Result<String> {
    let out = output_bounded_with(cmd, timeout, on_int)?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits for `child`, stopping it (SIGTERM, then SIGKILL) once `timeout` passed or Ctrl-C
/// arrived.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    wait_bounded_with(child, timeout, OnCtrlC::Abort)
}

fn wait_bounded_with(child: &mut Child, timeout: Duration, on_int: OnCtrlC) -> Result<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("waiting for child")? {
            return Ok(status);
        }
        let over = start.elapsed() > timeout;
        let abort = on_int == OnCtrlC::Abort && check_interrupted().is_err();
        if over || abort {
            // SIGTERM first: mmdebstrap and tcpdump clean up (mounts, buffers) on it.
            let _ = stop_group(child, Duration::from_secs(10));
            if over {
                bail!("killed after {timeout:?}");
            }
            bail!("interrupted");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a process with this PID exists (and is not a zombie we own).
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state letter follows the parenthesised command name.
    stat.rsplit_once(") ")
        .map(|(_, rest)| !rest.starts_with('Z'))
        .unwrap_or(false)
}

/// SIGTERM, then SIGKILL if the process is still there after `grace`. Waits until it is gone.
pub fn stop_pid(pid: i32, grace: Duration) -> Result<()> {
    if pid <= 1 {
        bail!("refusing to signal pid {pid}");
    }
    // SAFETY: kill(2) on a PID we started and recorded.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let start = Instant::now();
    while alive(pid) {
        if start.elapsed() > grace {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            if start.elapsed() > grace * 2 {
                bail!("pid {pid} survived SIGKILL");
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Stops a child started as a process group leader, and everything in its group: SIGTERM to the
/// group, SIGKILL to it once the leader exited or `grace` passed (members the leader left behind
/// would otherwise run on as orphans). Reaps the leader.
fn stop_group(child: &mut Child, grace: Duration) -> Result<()> {
    let pgid = child.id() as i32;
    if pgid <= 1 {
        bail!("refusing to signal process group {pgid}");
    }
    // SAFETY: kill(2) on the process group of a child we started as its leader.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let start = Instant::now();
    // Not reaped until the end: the leader's PID, and so the group's ID, stays ours meanwhile.
    while alive(pgid) && start.elapsed() < grace {
        thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above; ESRCH once the group is empty is fine.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    child.wait().context("reaping child")?;
    Ok(())
}

/// A background child that is stopped (SIGTERM, then SIGKILL) and reaped when dropped.
pub struct Bg {
    pub name: String,
    child: Option<Child>,
}

impl Bg {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Bg> {
        let child = cmd
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Bg {
            name: name.to_string(),
            child: Some(child),
        })
    }

    /// Waits (bounded) for the child to exit by itself.
    pub fn wait(mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().expect("child present until waited");
        wait_bounded(&mut child, timeout).with_context(|| format!("waiting for {}", self.name))
    }

    /// Stops the child now and returns its captured stdout, if it was piped.
    pub fn stop(mut self) -> Result<String> {
        let mut child = self.child.take().expect("child present until stopped");
        terminate(&mut child);
        let mut out = String::new();
        if let Some(mut s) = child.stdout.take() {
            s.read_to_string(&mut out).context("reading output")?;
        }
        Ok(out)
    }
}

fn terminate(child: &mut Child) {
    if let Err(e) = stop_group(child, Duration::from_secs(5)) {
        eprintln!("vm: stopping a child: {e:#}");
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            terminate(child);
        }
    }
}
