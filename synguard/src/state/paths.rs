//! The one owner of synguard's file names. Everything else asks here.
//!
//! An instance is keyed by its network namespace (the inode of `/proc/self/ns/net`) and its
//! interface (ifindex, with the name in front for people):
//!
//! ```text
//! <run_dir>/<netns>/<iface>-<ifindex>.lock         the instance lock (flock), holding the pid
//! <run_dir>/<netns>/<iface>-<ifindex>.json         the run-info file (see `run_info`)
//! <run_dir>/<netns>/<iface>-<ifindex>.events.json  the flood history
//! <run_dir>/<netns>/<iface>-<ifindex>.lists.json   list entries added at run time (`runtime_lists`)
//! <run_dir>/<netns>/<iface>-<ifindex>.sock         the control socket of the running process
//! <pin_base>/<netns>/<iface>-<ifindex>/            the pinned state on bpffs (`datapath::pins`)
//! ```
//!
//! The release before this layout (commit 0434865) keyed everything by interface name alone:
//! `<run_dir>/<iface>.{lock,json,events.json}` and `<pin_base>/<iface>/`. [`Key::Legacy`] names
//! those files, so `run` can take such an instance over and `detach` can remove it.

use std::path::{Path, PathBuf};

const LOCK: &str = ".lock";
const RUN_INFO: &str = ".json";
const HISTORY: &str = ".events.json";
const LISTS: &str = ".lists.json";
const SOCKET: &str = ".sock";

/// Which instance a file belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// Namespace inode, interface index and name.
    Scoped {
        netns: u64,
        iface: String,
        ifindex: u32,
    },
    /// The flat layout of the earlier release: the interface name only.
    Legacy { iface: String },
}

impl Key {
    pub fn scoped(netns: u64, iface: &str, ifindex: u32) -> Key {
        Key::Scoped {
            netns,
            iface: iface.to_string(),
            ifindex,
        }
    }

    pub fn iface(&self) -> &str {
        match self {
            Key::Scoped { iface, .. } | Key::Legacy { iface } => iface,
        }
    }

    pub fn ifindex(&self) -> Option<u32> {
        match self {
            Key::Scoped { ifindex, .. } => Some(*ifindex),
            Key::Legacy { .. } => None,
        }
    }

    pub fn is_legacy(&self) -> bool {
        matches!(self, Key::Legacy { .. })
    }

    /// The file and directory name stem: `<iface>-<ifindex>`, or `<iface>` for the old layout.
    fn stem(&self) -> String {
        match self {
            Key::Scoped { iface, ifindex, .. } => format!("{iface}-{ifindex}"),
            Key::Legacy { iface } => iface.clone(),
        }
    }

    /// Where this key's entries live under a base directory.
    fn under(&self, base: &Path) -> PathBuf {
        match self {
            Key::Scoped { netns, .. } => netns_dir(base, *netns),
            Key::Legacy { .. } => base.to_path_buf(),
        }
    }

    fn file(&self, base: &Path, suffix: &str) -> PathBuf {
        self.under(base).join(format!("{}{suffix}", self.stem()))
    }

    /// Parses a stem `<iface>-<ifindex>` found under the directory of namespace `netns`.
    pub fn from_stem(netns: u64, stem: &str) -> Option<Key> {
        let (iface, index) = stem.rsplit_once('-')?;
        let ifindex = index.parse().ok().filter(|&i| i > 0)?;
        (!iface.is_empty()).then(|| Key::scoped(netns, iface, ifindex))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.iface())
    }
}

/// The directory of one namespace's instances under the run directory or the pin base.
pub fn netns_dir(base: &Path, netns: u64) -> PathBuf {
    base.join(netns.to_string())
}

/// Removes `dir`, a namespace's directory under the run directory or the pin base, if nothing is
/// left in it: a namespace's directory goes with its last file. True when it was removed; an
/// absent or non-empty directory is left as it is.
pub fn remove_if_empty(dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::DirectoryNotEmpty =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Whether a directory entry name under a base is a namespace directory (all digits); every
/// other directory there is an instance of the flat, earlier layout.
pub fn is_netns_dir(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

pub fn lock(run_dir: &Path, key: &Key) -> PathBuf {
    key.file(run_dir, LOCK)
}

pub fn run_info(run_dir: &Path, key: &Key) -> PathBuf {
    key.file(run_dir, RUN_INFO)
}

pub fn history(run_dir: &Path, key: &Key) -> PathBuf {
    key.file(run_dir, HISTORY)
}

pub fn runtime_lists(run_dir: &Path, key: &Key) -> PathBuf {
    key.file(run_dir, LISTS)
}

pub fn control_socket(run_dir: &Path, key: &Key) -> PathBuf {
    key.file(run_dir, SOCKET)
}

pub fn pin_dir(pin_base: &Path, key: &Key) -> PathBuf {
    key.under(pin_base).join(key.stem())
}

/// Where a file is written before it is renamed over `path`, so that a reader never sees half
/// a file.
pub fn tmp_of(path: &Path) -> PathBuf {
    path.with_extension("json.tmp")
}

/// The stem of a run-dir file name if it is a run-info file; None for every other file (the
/// flood history, the lists and the temporary files included).
pub fn run_info_stem(file_name: &str) -> Option<&str> {
    if file_name.ends_with(HISTORY) || file_name.ends_with(LISTS) {
        return None;
    }
    file_name.strip_suffix(RUN_INFO).filter(|n| !n.is_empty())
}

/// The stem of a run-dir file name if it is a runtime-lists file.
pub fn runtime_lists_stem(file_name: &str) -> Option<&str> {
    file_name.strip_suffix(LISTS).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_paths_carry_namespace_name_and_index() {
        let key = Key::scoped(4026532000, "veth-a", 7);
        let run = Path::new("/run/synguard");
        assert_eq!(
            run_info(run, &key),
            Path::new("/run/synguard/4026532000/veth-a-7.json")
        );
        assert_eq!(
            pin_dir(Path::new("/sys/fs/bpf/synguard"), &key),
            Path::new("/sys/fs/bpf/synguard/4026532000/veth-a-7")
        );
        assert_eq!(Key::from_stem(4026532000, "veth-a-7"), Some(key));
        assert_eq!(Key::from_stem(1, "veth"), None);
        assert_eq!(Key::from_stem(1, "-7"), None);
        assert!(is_netns_dir("4026532000") && !is_netns_dir("eth0"));
    }

    #[test]
    fn a_namespace_directory_goes_only_when_empty() {
        let base = std::env::temp_dir().join(format!("synguard-paths-{}", std::process::id()));
        let dir = netns_dir(&base, 4026532000);
        std::fs::create_dir_all(&dir).unwrap();
        let key = Key::scoped(4026532000, "eth0", 2);
        std::fs::write(run_info(&base, &key), "{}").unwrap();
        assert!(
            !remove_if_empty(&dir).unwrap(),
            "removed with a run-info in it"
        );
        assert!(dir.exists());
        std::fs::remove_file(run_info(&base, &key)).unwrap();
        assert!(remove_if_empty(&dir).unwrap());
        assert!(!dir.exists());
        assert!(!remove_if_empty(&dir).unwrap(), "absent is not an error");
        std::fs::remove_dir(&base).unwrap();
    }

    #[test]
    fn legacy_paths_are_those_of_the_earlier_release() {
        let key = Key::Legacy {
            iface: "eth0".into(),
        };
        let run = Path::new("/r");
        assert_eq!(run_info(run, &key), Path::new("/r/eth0.json"));
        assert_eq!(lock(run, &key), Path::new("/r/eth0.lock"));
        assert_eq!(history(run, &key), Path::new("/r/eth0.events.json"));
        assert_eq!(pin_dir(Path::new("/p"), &key), Path::new("/p/eth0"));
    }

    #[test]
    fn run_info_names_are_told_from_the_others() {
        let key = Key::scoped(1, "eth0", 2);
        let dir = Path::new("/r");
        let name = |p: PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(run_info_stem(&name(run_info(dir, &key))), Some("eth0-2"));
        assert_eq!(run_info_stem(&name(history(dir, &key))), None);
        assert_eq!(run_info_stem(&name(lock(dir, &key))), None);
        assert_eq!(run_info_stem(&name(runtime_lists(dir, &key))), None);
        assert_eq!(
            runtime_lists_stem(&name(runtime_lists(dir, &key))),
            Some("eth0-2")
        );
        assert_eq!(run_info_stem("eth0.json.tmp"), None);
    }
}
