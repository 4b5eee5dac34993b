//! Whether the namespace's addresses or local routes may have changed: the kernel's own
//! notifications, so that the host's address list (`addrs`) is read again only when one came.
//! A node with thousands of addresses (a service address each) made the once-a-second reading
//! cost the daemon about 0.5% of a core at 5 000 addresses (README, "The daemon's own cost"),
//! growing with the list.
//!
//! A netlink socket bound to the address, route and link groups (`RTMGRP_IPV4_IFADDR`,
//! `RTMGRP_IPV6_IFADDR`, `RTMGRP_IPV4_ROUTE`, `RTMGRP_IPV6_ROUTE`, `RTMGRP_LINK`: a bond's new
//! master changes which link-local addresses count), drained without blocking. Anything other
//! than "nothing came" counts as a change, a full socket (`ENOBUFS`: notifications were lost)
//! included, and the caller still reads the list now and then whatever the socket says.

use std::{
    io,
    os::fd::{AsRawFd as _, OwnedFd},
};

use crate::host::netlink;

/// The groups watched.
const GROUPS: libc::c_int = libc::RTMGRP_IPV4_IFADDR
    | libc::RTMGRP_IPV6_IFADDR
    | libc::RTMGRP_IPV4_ROUTE
    | libc::RTMGRP_IPV6_ROUTE
    | libc::RTMGRP_LINK;

/// A subscription to the caller's namespace's address, route and link notifications.
pub struct AddrWatch {
    sock: OwnedFd,
}

impl AddrWatch {
    /// Subscribes. Made before the list is first read, so that no change after that reading
    /// goes unseen.
    pub fn new() -> io::Result<Self> {
        let sock = netlink::socket(libc::NETLINK_ROUTE)?;
        // SAFETY: a zeroed sockaddr_nl is valid; family and groups are set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = GROUPS as u32;
        // SAFETY: bind(2) reads `size_of::<sockaddr_nl>()` bytes of `addr`.
        let r = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(AddrWatch { sock })
    }

    /// Whether anything came since the last call (or the socket overflowed, or failed):
    /// everything waiting is read and dropped.
    pub fn changed(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut any = false;
        loop {
            // SAFETY: recv(2) writes at most `buf.len()` bytes into `buf`.
            let n = unsafe {
                libc::recv(
                    self.sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                any = true;
                continue;
            }
            let e = io::Error::last_os_error();
            return any || n == 0 || e.kind() != io::ErrorKind::WouldBlock;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address added in a namespace of the test's own is seen, once; nothing after it.
    #[test]
    fn an_address_change_is_seen_once() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for a network namespace of its own");
            return;
        }
        let seen = std::thread::spawn(|| -> io::Result<(bool, bool, bool)> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            let watch = AddrWatch::new()?;
            let quiet = watch.changed();
            let ok = std::process::Command::new("ip")
                .args(["addr", "add", "192.0.2.1/32", "dev", "lo"])
                .status()?
                .success();
            assert!(ok, "ip addr add");
            Ok((quiet, watch.changed(), watch.changed()))
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(seen, (false, true, false));
    }
}
