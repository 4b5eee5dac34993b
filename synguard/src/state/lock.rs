//! The per-instance lock: one `synguard run` per interface of a network namespace.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

use log::warn;
use thiserror::Error;

use crate::{
    host::{
        io::{PathError, io_err},
        netns,
    },
    state::paths::{self, Key},
};

#[derive(Debug, Error)]
pub enum LockError {
    #[error("synguard needs root or CAP_BPF+CAP_NET_ADMIN ({what} was refused)")]
    NotPermitted { what: &'static str },
    #[error("interface {iface} is already guarded by synguard pid {pid} (lock {}){note}", lock.display())]
    AlreadyRunning {
        iface: String,
        pid: String,
        lock: PathBuf,
        note: String,
    },
    #[error(transparent)]
    Io(#[from] PathError),
}

/// Exclusive, non-blocking flock on the instance's lock file (`paths::lock`), holding our pid. The kernel drops
/// the lock when the process dies, so a crashed instance never blocks the next one.
#[derive(Debug)]
pub struct InstanceLock {
    path: PathBuf,
    _file: File,
}

impl InstanceLock {
    pub fn acquire(run_dir: &Path, key: &Key) -> Result<Self, LockError> {
        let iface = key.iface();
        let denied = |what| {
            move |e: io::Error| match e.kind() {
                io::ErrorKind::PermissionDenied => LockError::NotPermitted { what },
                _ => io_err("cannot create", run_dir)(e).into(),
            }
        };
        let path = paths::lock(run_dir, key);
        let dir = path.parent().unwrap_or(run_dir);
        fs::create_dir_all(dir).map_err(denied("creating the lock directory"))?;
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .map_err(denied("creating the lock file"))?;
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                    return Err(io_err("cannot lock", &path)(err).into());
                }
                return Err(held_by_other(iface, path));
            }
            // A previous holder unlinks the file before it exits; if we locked that unlinked
            // file, another process may already hold the new one. Retry on the current file.
            let ours = file.metadata().map_err(io_err("cannot stat", &path))?;
            match fs::metadata(&path) {
                Ok(m) if m.dev() == ours.dev() && m.ino() == ours.ino() => {}
                _ => continue,
            }
            file.set_len(0).map_err(io_err("cannot write", &path))?;
            writeln!(file, "{}", std::process::id()).map_err(io_err("cannot write", &path))?;
            return Ok(InstanceLock { path, _file: file });
        }
    }
}

/// The error for a lock another process holds: its pid (from the file) and, when it runs in
/// another network namespace, that note.
fn held_by_other(iface: &str, path: PathBuf) -> LockError {
    let pid = fs::read_to_string(&path)
        .unwrap_or_default()
        .trim()
        .to_string();
    let note = match (netns::of_pid(&pid), netns::current()) {
        (Some(theirs), Some(ours)) if theirs != ours => format!(
            "; that instance runs in another network namespace ({theirs}) and is of the \
             earlier release, whose instances are told apart by interface name only"
        ),
        _ => String::new(),
    };
    LockError::AlreadyRunning {
        iface: iface.to_string(),
        pid: if pid.is_empty() {
            "unknown".into()
        } else {
            pid
        },
        lock: path,
        note,
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock; see the inode check in `acquire`.
        if let Err(e) = fs::remove_file(&self.path) {
            warn!("cannot remove {}: {e}", self.path.display());
        }
        // The namespace's directory goes with its last file.
        if let Some(dir) = self.path.parent().filter(|d| {
            d.file_name()
                .is_some_and(|n| paths::is_netns_dir(&n.to_string_lossy()))
        }) && let Err(e) = paths::remove_if_empty(dir)
        {
            warn!("cannot remove {}: {e}", dir.display());
        }
    }
}

/// Whether some process holds the instance lock of `key`, without taking it for longer than
/// the check.
pub fn is_held(run_dir: &Path, key: &Key) -> bool {
    let Ok(file) = fs::File::open(paths::lock(run_dir, key)) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("synguard-lock-{}", std::process::id()));
        let (k0, k1) = (Key::scoped(1, "veth0", 2), Key::scoped(1, "veth1", 3));
        // The same name in another namespace is another instance.
        let k0_elsewhere = Key::scoped(2, "veth0", 2);
        let first = InstanceLock::acquire(&dir, &k0).unwrap();
        let pid = std::process::id().to_string();
        assert_eq!(
            fs::read_to_string(paths::lock(&dir, &k0)).unwrap().trim(),
            pid
        );
        assert!(is_held(&dir, &k0));
        assert!(!is_held(&dir, &k0_elsewhere));
        // flock locks belong to the open file description, so a second open in the same process
        // conflicts just like another process would.
        match InstanceLock::acquire(&dir, &k0) {
            Err(e @ LockError::AlreadyRunning { .. }) => {
                assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        // Another interface is independent.
        let other = InstanceLock::acquire(&dir, &k1).unwrap();
        let elsewhere = InstanceLock::acquire(&dir, &k0_elsewhere).unwrap();
        drop(first);
        assert!(!paths::lock(&dir, &k0).exists());
        assert!(!is_held(&dir, &k0));
        let again = InstanceLock::acquire(&dir, &k0).unwrap();
        drop((again, other, elsewhere));
        fs::remove_dir_all(&dir).unwrap();
    }
}
