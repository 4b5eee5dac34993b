//! Netlink sockets and their message format, for `rtnl` (one interface's link facts),
//! `local_routes` (the local routing table) and `listeners` (the listening sockets, through
//! sock_diag): a request, the messages of its answer, their attributes. Asked on a socket in the
//! caller's network namespace.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// `struct nlmsghdr`'s size.
pub const NLMSG_HDR: usize = 16;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flag bits of an attribute's type.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// include/uapi/linux/netlink.h: `NLM_F_ROOT | NLM_F_MATCH`, and the socket option that makes
/// the kernel apply a dump request's header as a filter (Linux 4.20).
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_DONE: u16 = 3;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;
/// Large enough for any one datagram of a dump (the kernel fills at most 32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// A netlink socket of `protocol` (`NETLINK_ROUTE`, `NETLINK_SOCK_DIAG`).
pub fn socket(protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A request message: the header (`kind`, `NLM_F_REQUEST | flags`, sequence 1), then `body`.
pub fn request(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDR + body.len();
    let mut req = Vec::with_capacity(len);
    req.extend_from_slice(&(len as u32).to_ne_bytes());
    req.extend_from_slice(&kind.to_ne_bytes());
    req.extend_from_slice(&(libc::NLM_F_REQUEST as u16 | flags).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(body);
    req
}

pub fn send(sock: &OwnedFd, req: &[u8]) -> io::Result<()> {
    // SAFETY: send(2) reads `req.len()` bytes of `req`.
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One datagram of the answer.
pub fn recv(sock: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; RECV_BUF];
    // SAFETY: recv(2) writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// A dump on a socket of `protocol` (`kind` with `NLM_F_DUMP`, `body` its filter where the
/// kernel applies one): `each` gets every message's type and body, until the kernel says it is
/// done.
pub fn dump(
    protocol: libc::c_int,
    kind: u16,
    body: &[u8],
    mut each: impl FnMut(u16, &[u8]),
) -> io::Result<()> {
    let sock = socket(protocol)?;
    // Best effort: without it (before 4.20) the kernel dumps everything, which the caller
    // filters anyway.
    let on: libc::c_int = 1;
    // SAFETY: setsockopt(2) reads one int.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_NETLINK,
            NETLINK_GET_STRICT_CHK,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    send(&sock, &request(kind, NLM_F_DUMP, body))?;
    loop {
        let datagram = recv(&sock)?;
        if datagram.is_empty() {
            return Err(short());
        }
        for msg in messages(&datagram) {
            match msg? {
                (NLMSG_DONE, _) => return Ok(()),
                (kind, body) => each(kind, body),
            }
        }
    }
}

/// A dump on a `NETLINK_ROUTE` socket (`request`, its filter `body`) collected: each message of
/// type `reply` that `parse` takes.
pub fn route_dump<T>(
    request: u16,
    body: &[u8],
    reply: u16,
    mut parse: impl FnMut(&[u8]) -> Option<T>,
) -> io::Result<Vec<T>> {
    let mut found = Vec::new();
    dump(libc::NETLINK_ROUTE, request, body, |kind, msg| {
        if kind == reply
            && let Some(t) = parse(msg)
        {
            found.push(t);
        }
    })?;
    Ok(found)
}

/// The messages of one datagram, each as its type and body; an `NLMSG_ERROR` as its error (an
/// acknowledgement, errno 0, is skipped).
pub fn messages(mut b: &[u8]) -> impl Iterator<Item = io::Result<(u16, &[u8])>> {
    std::iter::from_fn(move || {
        loop {
            if b.is_empty() {
                return None;
            }
            let Some((kind, body, rest)) = split_message(b) else {
                b = &[];
                return Some(Err(short()));
            };
            b = rest;
            if kind != libc::NLMSG_ERROR as u16 {
                return Some(Ok((kind, body)));
            }
            match u32_at(body, 0).map(|e| e as i32) {
                Some(0) => continue,
                Some(errno) => return Some(Err(io::Error::from_raw_os_error(-errno))),
                None => return Some(Err(short())),
            }
        }
    })
}

/// The first message of `b`: its type, its body and what follows it (messages are padded to 4
/// bytes).
fn split_message(b: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let len = u32_at(b, 0)? as usize;
    let kind = u16_at(b, 4)?;
    let body = b.get(NLMSG_HDR..len)?;
    let rest = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    Some((kind, body, rest))
}

pub fn short() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "short rtnetlink reply")
}

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The (type, value) pairs of a run of netlink attributes, each padded to 4 bytes.
pub fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16_at(b, 0)? as usize;
        let ty = u16_at(b, 2)? & NLA_TYPE_MASK;
        let value = b.get(4..len)?;
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((ty, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_walked_with_padding() {
        // Type 5 = 7, a 5-byte attribute padded to 8, then a nested 43 { 2 = 1 }.
        let mut b = vec![8, 0, 5, 0, 7, 0, 0, 0];
        b.extend([5, 0, 99, 0, 1, 0, 0, 0]);
        b.extend([12, 0, 43, 0x80, 5, 0, 2, 0, 1, 0, 0, 0]);
        let got: Vec<(u16, Vec<u8>)> = attrs(&b).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(got[0], (5, vec![7, 0, 0, 0]));
        assert_eq!(got[1], (99, vec![1]));
        assert_eq!(got[2].0, 43);
        assert_eq!(attrs(&got[2].1).next(), Some((2, &[1u8][..])));
    }

    /// A message of `kind` with `body`, padded as the kernel pads it.
    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = request(kind, 0, body);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    #[test]
    fn messages_are_split_and_errors_surface() {
        let mut b = message(24, &[1, 2, 3]);
        b.extend(message(libc::NLMSG_ERROR as u16, &0i32.to_ne_bytes()));
        b.extend(message(25, &[4; 8]));
        b.extend(message(
            libc::NLMSG_ERROR as u16,
            &(-libc::EPERM).to_ne_bytes(),
        ));
        let got: Vec<_> = messages(&b).collect();
        assert_eq!(got.len(), 3, "the acknowledgement is skipped");
        assert_eq!(got[0].as_ref().unwrap(), &(24, &[1u8, 2, 3][..]));
        assert_eq!(got[1].as_ref().unwrap(), &(25, &[4u8; 8][..]));
        assert_eq!(
            got[2].as_ref().unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
    }

    #[test]
    fn a_cut_message_is_an_error_not_a_panic() {
        let b = message(24, &[1; 12]);
        for cut in 1..b.len() {
            let got: Vec<_> = messages(&b[..cut]).collect();
            assert!(got.iter().all(|m| m.is_err()), "cut at {cut}: {got:?}");
        }
    }
}
