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

/// `SO_NETNS_COOKIE` from include/uapi/asm-generic/socket.h (Linux 5.14), not in every libc.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// Our network namespace's cookie: unlike its inode, which the kernel hands to a new namespace
/// once the old one is gone, a cookie is never reused while the machine runs
/// (`net_alloc` / `net_cookie`). None on kernels without it.
pub fn current_cookie() -> Option<u64> {
    // SAFETY: a plain socket, closed below; getsockopt writes at most `len` bytes to `cookie`.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let mut cookie = 0u64;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        );
        libc::close(fd);
        (rc == 0).then_some(cookie)
    }
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
        assert_eq!(current_cookie(), current_cookie());
    }
}
