//! QEMU: which accelerator, the command line (multi-queue virtio-net on the namespace's tap, the
//! root disk as a throw-away snapshot, serial console to a file), start, wait for the guest, stop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::image::{self, Image};
use super::net;
use super::proc;

/// Where a running VM keeps its PID file and serial log.
pub const RUN_DIR: &str = "/run/synguard-vm";
const GUEST_MEM_MB: u32 = 1024;
/// Under software emulation the guest needs 20-30 s to sshd on an idle host; a busy host (a build
/// beside it) can triple that.
const TCG_BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const KVM_BOOT_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    fn args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => &["-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }

    fn boot_timeout(self) -> Duration {
        match self {
            Accel::Kvm => KVM_BOOT_TIMEOUT,
            Accel::Tcg => TCG_BOOT_TIMEOUT,
        }
    }
}

/// KVM first only where the CPU offers hardware virtualisation (vmx/svm) and /dev/kvm exists:
/// some hypervisors expose a /dev/kvm that cannot run a stock guest kernel. TCG always follows.
pub fn candidates() -> Vec<Accel> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if hw && Path::new("/dev/kvm").exists() {
        vec![Accel::Kvm, Accel::Tcg]
    } else {
        vec![Accel::Tcg]
    }
}

pub fn pid_file() -> PathBuf {
    Path::new(RUN_DIR).join("qemu.pid")
}

pub fn serial_log() -> PathBuf {
    Path::new(RUN_DIR).join("serial.log")
}

fn command(img: &Image, accel: Accel) -> Command {
    let mut cmd = net::in_ns("qemu-system-x86_64");
    let append = format!(
        "console=ttyS0 root=/dev/vda rw net.ifnames=0 init={} panic=-1",
        Image::init_path()
    );
    let netdev = format!(
        "tap,id=n0,ifname={},script=no,downscript=no,queues={},vhost=off",
        net::TAP,
        net::NIC_QUEUES
    );
    // MSI-X vectors: one per queue per direction plus config and control.
    let vectors = 2 * net::NIC_QUEUES + 2;
    cmd.args(accel.args())
        .args(["-smp", &net::GUEST_CPUS.to_string()])
        .args(["-m", &GUEST_MEM_MB.to_string()])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-daemonize",
        ])
        .arg("-kernel")
        .arg(img.kernel())
        .arg("-initrd")
        .arg(img.initrd())
        .args(["-append", &append])
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,snapshot=on",
            img.rootfs().display()
        ))
        .args(["-netdev", &netdev])
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=n0,mq=on,vectors={vectors}"))
        .arg("-serial")
        .arg(format!("file:{}", serial_log().display()))
        .arg("-pidfile")
        .arg(pid_file());
    cmd
}

/// A running QEMU, stopped by PID on drop unless kept (`vm up`).
pub struct Qemu {
    pub pid: i32,
    pub accel: Accel,
    keep: bool,
}

impl Qemu {
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if !self.keep {
            stop(self.pid);
        }
    }
}

/// Stops QEMU (SIGTERM, then SIGKILL) and removes its files.
pub fn stop(pid: i32) {
    if let Err(e) = proc::stop_pid(pid, Duration::from_secs(10)) {
        eprintln!("vm: stopping qemu: {e:#}");
    }
    let _ = std::fs::remove_file(pid_file());
}

/// Boots the guest with the first accelerator that brings it to sshd.
pub fn boot(img: &Image) -> Result<Qemu> {
    let mut last = None;
    for accel in candidates() {
        match boot_with(img, accel) {
            Ok(q) => return Ok(q),
            Err(e) => {
                eprintln!("vm: boot with {accel:?} failed: {e:#}");
                last = Some(e);
            }
        }
    }
    Err(last.expect("at least TCG was tried"))
}

fn boot_with(img: &Image, accel: Accel) -> Result<Qemu> {
    proc::check_interrupted()?;
    std::fs::create_dir_all(RUN_DIR).with_context(|| format!("creating {RUN_DIR}"))?;
    let _ = std::fs::remove_file(serial_log());
    eprintln!(
        "vm: accelerator {}",
        match accel {
            Accel::Kvm => "KVM (the CPU offers vmx/svm)",
            Accel::Tcg =>
                "TCG, software emulation (no usable KVM): timings say nothing about speed",
        }
    );
    proc::checked_bounded(&mut command(img, accel), Duration::from_secs(60))
        .context("starting qemu")?;
    let pid = read_pid()?;
    let qemu = Qemu {
        pid,
        accel,
        keep: false,
    };
    let start = Instant::now();
    proc::wait_for(
        "the guest's ready line on the serial console",
        accel.boot_timeout(),
        Duration::from_millis(500),
        || {
            if !proc::alive(pid) {
                bail!("qemu exited; serial log: {}", tail(&serial_log(), 15));
            }
            let log = std::fs::read_to_string(serial_log()).unwrap_or_default();
            Ok(log.contains(image::READY_LINE).then_some(()))
        },
    )
    .with_context(|| format!("serial log tail:\n{}", tail(&serial_log(), 15)))?;
    eprintln!("vm: guest up after {:.1} s", start.elapsed().as_secs_f64());
    Ok(qemu)
}

fn read_pid() -> Result<i32> {
    let text = std::fs::read_to_string(pid_file())
        .with_context(|| format!("reading {}", pid_file().display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("bad pid in {}: {text:?}", pid_file().display()))
}

/// The PID of a QEMU left running by `vm up`, if it still runs.
pub fn running_pid() -> Option<i32> {
    read_pid().ok().filter(|&p| proc::alive(p))
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
