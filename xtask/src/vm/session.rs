//! One VM's lifetime: host packages, image, namespace, boot, ssh. Dropping a `Vm` stops QEMU by
//! PID and then removes the namespace; `vm up` keeps both for `vm ssh` and `vm down`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::image::{self, Image};
use super::net::{self, Netns};
use super::packages;
use super::phases::Phases;
use super::qemu::{self, Accel, Qemu};
use super::release::ReleaseBuild;
use super::ssh::{self, Guest};

/// Where `vm up` records which image the running VM booted (for `vm ssh`'s key).
fn image_record() -> PathBuf {
    Path::new(qemu::RUN_DIR).join("image")
}

/// Field order is drop order: QEMU stops before its namespace goes.
pub struct Vm {
    pub guest: Guest,
    pub accel: Accel,
    qemu: Qemu,
    ns: Netns,
    pub image_dir: PathBuf,
}

/// One `cargo xtask vm` at a time on a machine: the namespace, tap and run directory have fixed
/// names. An flock on a file in the run directory, released when the process ends however it
/// ends. Taken before anything else starts (the release build included).
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub fn acquire() -> Result<RunLock> {
        use std::os::fd::AsRawFd as _;
        std::fs::create_dir_all(qemu::RUN_DIR)
            .with_context(|| format!("creating {}", qemu::RUN_DIR))?;
        let path = Path::new(qemu::RUN_DIR).join("lock");
        let file =
            std::fs::File::create(&path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock(2) on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!(
                "another `cargo xtask vm` runs on this machine (it holds {})",
                path.display()
            );
        }
        Ok(RunLock { _file: file })
    }
}

/// Packages, image, namespace, boot; each a timed phase.
pub fn start(phases: &mut Phases) -> Result<Vm> {
    clear_stale()?;
    phases.begin("host packages (apt, idempotent)");
    packages::ensure()?;
    phases.begin("guest image (cached per inputs)");
    let img = image::ensure()?;
    phases.begin("boot to ssh");
    let ns = Netns::create()?;
    let qemu = qemu::boot(&img)?;
    let guest = Guest::new(img.ssh_key());
    guest.wait_ready(Duration::from_secs(120))?;
    Ok(Vm {
        guest,
        accel: qemu.accel,
        qemu,
        ns,
        image_dir: img.dir.clone(),
    })
}

/// Refuses to run beside a VM `vm up` left running; removes what a killed run left behind.
fn clear_stale() -> Result<()> {
    if let Some(pid) = qemu::running_pid() {
        bail!(
            "a VM started by `cargo xtask vm up` runs (qemu pid {pid}): `cargo xtask vm down` first"
        );
    }
    if net::exists() {
        eprintln!(
            "vm: removing the namespace {} a killed run left",
            net::NETNS
        );
        net::remove()?;
    }
    Ok(())
}

pub fn up(build: ReleaseBuild) -> Result<()> {
    let mut phases = Phases::new();
    let vm = start(&mut phases)?;
    phases.begin("release build (what remained after boot), copy in");
    vm.guest.copy_in(&build.finish()?, ssh::SYNGUARD_PATH)?;
    std::fs::write(image_record(), vm.image_dir.to_string_lossy().as_bytes())
        .context("recording the image")?;
    eprintln!("{}", phases.summary());
    eprintln!(
        "vm: running (qemu pid {}), guest {} on the tap {} in namespace {}, synguard in {}; \
         `cargo xtask vm ssh`, `cargo xtask vm down`",
        vm.qemu.pid,
        net::GUEST_ADDR,
        net::TAP,
        net::NETNS,
        ssh::SYNGUARD_PATH
    );
    vm.keep();
    Ok(())
}

impl Vm {
    fn keep(self) {
        let Vm { qemu, ns, .. } = self;
        qemu.keep();
        ns.keep();
    }
}

pub fn down() -> Result<()> {
    match qemu::running_pid() {
        Some(pid) => {
            qemu::stop(pid);
            eprintln!("vm: stopped qemu pid {pid}");
        }
        None => eprintln!("vm: no qemu running"),
    }
    net::remove()?;
    let _ = std::fs::remove_file(image_record());
    eprintln!("vm: namespace {} removed", net::NETNS);
    Ok(())
}

pub fn ssh(args: &[String]) -> Result<()> {
    if qemu::running_pid().is_none() {
        bail!("no VM runs: `cargo xtask vm up` first");
    }
    let dir = std::fs::read_to_string(image_record()).context("no image recorded by `vm up`")?;
    let img = Image {
        dir: PathBuf::from(dir.trim()),
    };
    Guest::new(img.ssh_key()).interactive(args)
}
