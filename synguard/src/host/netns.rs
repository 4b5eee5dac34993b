//! Network namespaces: an instance is keyed by the namespace it runs in (the inode of
//! `/proc/self/ns/net`) and its interface, so same-named interfaces in two namespaces are two
//! instances, and each command acts on the instances of its own namespace.

use std::{fs, io, os::unix::fs::MetadataExt as _};

/// The identity of a process's network namespace, e.g. "net:[4026531840]"; `pid` may be "self".
pub fn of_pid(pid: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Ours.
pub fn current() -> Option<String> {
    of_pid("self")
}

/// The inode number of our network namespace (the number in "net:[N]"): the part of an
/// instance's key that tells namespaces apart.
pub fn current_inode() -> io::Result<u64> {
    fs::metadata("/proc/self/ns/net").map(|m| m.ino())
}

/// The inode in an identity string "net:[N]".
pub fn inode_of(identity: &str) -> Option<u64> {
    identity
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_inode_agree() {
        let ours = current().unwrap();
        assert_eq!(inode_of(&ours), Some(current_inode().unwrap()));
        assert_eq!(inode_of("net:[12]"), Some(12));
        assert_eq!(inode_of("mnt:[12]"), None);
    }
}
