//! The one owner of synguard's file names. Everything else asks here.
//!
//! ```text
//! <run_dir>/<iface>.lock         the instance lock (flock), holding the pid
//! <run_dir>/<iface>.json         the run-info file (see `run_info`)
//! <run_dir>/<iface>.events.json  the flood history
//! <pin_base>/<iface>/            the pinned state on bpffs (see `datapath::pins`)
//! ```

use std::path::{Path, PathBuf};

const RUN_INFO_SUFFIX: &str = ".json";
const HISTORY_SUFFIX: &str = ".events.json";

pub fn lock(run_dir: &Path, iface: &str) -> PathBuf {
    run_dir.join(format!("{iface}.lock"))
}

pub fn run_info(run_dir: &Path, iface: &str) -> PathBuf {
    run_dir.join(format!("{iface}{RUN_INFO_SUFFIX}"))
}

pub fn history(run_dir: &Path, iface: &str) -> PathBuf {
    run_dir.join(format!("{iface}{HISTORY_SUFFIX}"))
}

pub fn pin_dir(pin_base: &Path, iface: &str) -> PathBuf {
    pin_base.join(iface)
}

/// Where a file is written before it is renamed over `path`, so that a reader never sees half
/// a file.
pub fn tmp_of(path: &Path) -> PathBuf {
    path.with_extension("json.tmp")
}

/// The interface a run-dir file name is the run-info of; None for every other file (the flood
/// history included).
pub fn run_info_iface(file_name: &str) -> Option<&str> {
    if file_name.ends_with(HISTORY_SUFFIX) {
        return None;
    }
    file_name
        .strip_suffix(RUN_INFO_SUFFIX)
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_info_names_are_told_from_the_others() {
        let dir = Path::new("/r");
        let name = |p: PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(run_info_iface(&name(run_info(dir, "eth0"))), Some("eth0"));
        assert_eq!(run_info_iface(&name(history(dir, "eth0"))), None);
        assert_eq!(run_info_iface(&name(lock(dir, "eth0"))), None);
        assert_eq!(run_info_iface("eth0.json.tmp"), None);
    }
}
