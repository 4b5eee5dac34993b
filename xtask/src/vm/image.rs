//! The guest image: Debian bookworm from Debian packages only (mmdebstrap), the cloud kernel from
//! bookworm-backports, a tiny init script, and an ssh key made for this image. Cached under
//! `/var/cache/synguard-vm/<key>/`, where the key hashes every input (release, packages, kernel,
//! init script, recipe version), so a machine builds it once and a changed input builds anew.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::net;
use super::packages;
use super::proc::{checked_bounded, cleanup_bounded};

const CACHE_ROOT: &str = "/var/cache/synguard-vm";
/// Bump when the build steps change in a way the other inputs do not show.
const RECIPE: &str = "1";
const GUEST_RELEASE: &str = "bookworm";
/// Debian's kernel for VMs: virtio drivers, BTF, BPF; 6.12 from backports (bookworm's own 6.1
/// predates several XDP fixes in virtio-net).
const KERNEL: &str = "linux-image-cloud-amd64/bookworm-backports";
const PACKAGES: &[&str] = &[
    "mount",
    "initramfs-tools",
    "udev",
    "kmod",
    "procps",
    "iproute2",
    "openssh-server",
    "python3",
    "curl",
    "tcpdump",
    "ethtool",
    "bpftool",
];
const ROOTFS_SIZE: &str = "1G";
const INIT_PATH: &str = "/sbin/synguard-vm-init";
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);
/// The line the init script writes to the serial console once sshd runs.
pub const READY_LINE: &str = "synguard-vm-ready";

/// What a boot needs, all inside one cache directory.
pub struct Image {
    pub dir: PathBuf,
}

impl Image {
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("root.ext4")
    }
    pub fn ssh_key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    pub fn init_path() -> &'static str {
        INIT_PATH
    }
}

/// The init script (PID 1 in the guest): filesystems incl. bpffs, the static address, sshd.
fn init_script() -> String {
    format!(
        "#!/bin/sh\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sys /sys 2>/dev/null\n\
         mount -t devtmpfs dev /dev 2>/dev/null\n\
         mkdir -p /dev/pts && mount -t devpts devpts /dev/pts\n\
         mount -t tmpfs tmpfs /run\n\
         mount -t tmpfs tmpfs /tmp\n\
         mount -t bpf bpf /sys/fs/bpf\n\
         hostname synguard-vm\n\
         ip link set lo up\n\
         ip addr add {guest}/{prefix} dev eth0\n\
         ip link set eth0 up\n\
         mkdir -p /run/sshd\n\
         /usr/sbin/sshd -e\n\
         echo {READY_LINE} > /dev/ttyS0\n\
         while true; do sleep 3600; done\n",
        guest = net::GUEST_ADDR,
        prefix = net::PREFIX_LEN,
    )
}

/// FNV-1a, 64 bits: stable across Rust releases (std's hasher is not promised to be).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn cache_key() -> String {
    let inputs = format!(
        "{RECIPE}\n{GUEST_RELEASE}\n{KERNEL}\n{}\n{ROOTFS_SIZE}\n{}",
        PACKAGES.join(","),
        init_script()
    );
    format!("{GUEST_RELEASE}-{:016x}", fnv1a(inputs.as_bytes()))
}

/// The cached image, built first if this machine has none for the current inputs.
pub fn ensure() -> Result<Image> {
    let dir = Path::new(CACHE_ROOT).join(cache_key());
    if dir.join("complete").exists() {
        eprintln!("vm: guest image cached at {}", dir.display());
        return Ok(Image { dir });
    }
    let work = Path::new(CACHE_ROOT).join(format!("{}.build-{}", cache_key(), std::process::id()));
    let guard = RemoveOnDrop(work.clone());
    eprintln!("vm: building the guest image in {}", work.display());
    build(&work)?;
    std::fs::rename(&work, &dir)
        .with_context(|| format!("moving {} to {}", work.display(), dir.display()))?;
    std::mem::forget(guard);
    Ok(Image { dir })
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        // An interrupted mmdebstrap can leave /proc, /sys or /dev mounted inside the staging
        // root; deleting through such a mount would delete the host's files.
        let mounts = mounts_under(&self.0);
        for m in mounts.iter().rev() {
            let _ = cleanup_bounded(
                Command::new("umount").arg("-l").arg(m),
                Duration::from_secs(30),
            );
        }
        if !mounts_under(&self.0).is_empty() {
            eprintln!(
                "vm: left {} in place: filesystems are still mounted inside it",
                self.0.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Mount points at or below `dir` (from /proc/self/mountinfo), outermost first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn build(work: &Path) -> Result<()> {
    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    debootstrap(&rootfs)?;
    install_init(&rootfs)?;
    make_ssh_key(work, &rootfs)?;
    copy_boot_files(&rootfs, work)?;
    checked_bounded(
        Command::new("mke2fs")
            .args(["-q", "-t", "ext4", "-F", "-d"])
            .arg(&rootfs)
            .arg(work.join("root.ext4"))
            .arg(ROOTFS_SIZE),
        Duration::from_secs(300),
    )
    .context("making the root filesystem")?;
    std::fs::remove_dir_all(&rootfs).context("removing the staging rootfs")?;
    std::fs::write(work.join("complete"), cache_key())?;
    Ok(())
}

fn debootstrap(rootfs: &Path) -> Result<()> {
    let uri = packages::debian_uri(&packages::codename()?)?;
    let include = std::iter::once(KERNEL)
        .chain(PACKAGES.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--variant=minbase", "--components=main", "--quiet"])
        .arg(format!("--include={include}"))
        .arg(GUEST_RELEASE)
        .arg(rootfs)
        .arg(format!("deb {uri} {GUEST_RELEASE} main"))
        .arg(format!("deb {uri} {GUEST_RELEASE}-backports main"));
    checked_bounded(&mut cmd, BUILD_TIMEOUT).context("mmdebstrap of the guest")?;
    Ok(())
}

fn install_init(rootfs: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = rootfs.join(INIT_PATH.trim_start_matches('/'));
    std::fs::write(&path, init_script()).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A key pair per image: the private half stays in the cache directory (root only).
fn make_ssh_key(work: &Path, rootfs: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let key = work.join("id_ed25519");
    checked_bounded(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "synguard-vm", "-f"])
            .arg(&key),
        Duration::from_secs(30),
    )?;
    let ssh_dir = rootfs.join("root/.ssh");
    std::fs::create_dir_all(&ssh_dir)?;
    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700))?;
    std::fs::copy(key.with_extension("pub"), ssh_dir.join("authorized_keys"))
        .context("installing authorized_keys")?;
    Ok(())
}

/// The kernel and initrd the guest installed, copied out for QEMU's `-kernel`/`-initrd`.
fn copy_boot_files(rootfs: &Path, work: &Path) -> Result<()> {
    let boot = rootfs.join("boot");
    for (prefix, name) in [("vmlinuz-", "vmlinuz"), ("initrd.img-", "initrd.img")] {
        let found = std::fs::read_dir(&boot)
            .with_context(|| format!("reading {}", boot.display()))?
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with(prefix));
        let Some(entry) = found else {
            bail!("no {prefix}* in the guest's /boot");
        };
        std::fs::copy(entry.path(), work.join(name))
            .with_context(|| format!("copying {}", entry.path().display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_with_inputs() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert!(cache_key().starts_with("bookworm-"));
    }
}
