//! An I/O error with what was being done and to which path: the one shape every layer's errors
//! use for files (`cannot create /run/synguard`, `cannot list /sys/fs/bpf/synguard/eth0`).

use std::{
    io,
    path::{Path, PathBuf},
};

use thiserror::Error;

#[derive(Debug, Error)]
#[error("{what} {}", path.display())]
pub struct PathError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// For `map_err`: the error of doing `what` to `path` (`?` turns it into the caller's error).
pub fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PathError {
    let path = path.to_path_buf();
    move |source| PathError { what, path, source }
}
