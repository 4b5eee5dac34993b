//! What rtnetlink says about one interface (`ip -d link show`): its link partner, whether that
//! partner lives in another network namespace, and whether an XDP program is attached. For a veth
//! the partner is its peer. Asked on a socket in the caller's network namespace.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// Attribute numbers from include/uapi/linux/if_link.h.
const IFLA_LINK: u16 = 5;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flag bits of an attribute's type.
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;

/// What `RTM_GETLINK` answered for one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkFacts {
    /// `IFLA_LINK`: the partner's index (a veth's peer), in the partner's namespace.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: present only when the partner is in another namespace.
    pub link_in_other_netns: bool,
    /// `IFLA_XDP_ATTACHED` is not `XDP_ATTACHED_NONE`.
    pub xdp_attached: bool,
}

/// Asks the kernel about the interface with index `ifindex`.
pub fn link_facts(ifindex: u32) -> io::Result<LinkFacts> {
    let sock = netlink_socket()?;
    let mut req = [0u8; NLMSG_HDR + IFINFOMSG];
    req[0..4].copy_from_slice(&((NLMSG_HDR + IFINFOMSG) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&libc::RTM_GETLINK.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // ifinfomsg: family (AF_UNSPEC), pad, type, then the index.
    req[NLMSG_HDR + 4..NLMSG_HDR + 8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    // SAFETY: send(2) reads `req.len()` bytes of `req`.
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32 * 1024];
    // SAFETY: recv(2) writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_reply(&buf[..n as usize])
}

fn netlink_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The first message of a reply: an `RTM_NEWLINK` with attributes, or an `NLMSG_ERROR`.
fn parse_reply(msg: &[u8]) -> io::Result<LinkFacts> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "short rtnetlink reply");
    let len = u32_at(msg, 0).ok_or_else(bad)? as usize;
    let kind = u16_at(msg, 4).ok_or_else(bad)?;
    let msg = msg.get(..len).ok_or_else(bad)?;
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = u32_at(msg, NLMSG_HDR).ok_or_else(bad)? as i32;
        return Err(io::Error::from_raw_os_error(-errno));
    }
    if kind != libc::RTM_NEWLINK {
        return Err(bad());
    }
    let mut facts = LinkFacts::default();
    for (ty, value) in attrs(msg.get(NLMSG_HDR + IFINFOMSG..).ok_or_else(bad)?) {
        match ty {
            IFLA_LINK => facts.link = u32_at(value, 0),
            IFLA_LINK_NETNSID => facts.link_in_other_netns = true,
            IFLA_XDP => {
                facts.xdp_attached = attrs(value)
                    .any(|(t, v)| t == IFLA_XDP_ATTACHED && v.first().is_some_and(|&m| m != 0))
            }
            _ => {}
        }
    }
    Ok(facts)
}

/// The (type, value) pairs of a run of netlink attributes, each padded to 4 bytes.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
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
    fn loopback_has_no_partner_and_no_program() {
        let facts = link_facts(1).unwrap();
        assert!(
            !facts.xdp_attached && !facts.link_in_other_netns,
            "{facts:?}"
        );
    }

    #[test]
    fn a_missing_index_is_the_kernels_error() {
        let e = link_facts(0x7fff_fff0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
    }

    #[test]
    fn attributes_are_walked_with_padding() {
        // IFLA_LINK = 7, a 5-byte attribute padded to 8, then IFLA_XDP { ATTACHED = 1 }.
        let mut b = vec![8, 0, 5, 0, 7, 0, 0, 0];
        b.extend([5, 0, 99, 0, 1, 0, 0, 0]);
        b.extend([12, 0, 43, 0x80, 5, 0, 2, 0, 1, 0, 0, 0]);
        let got: Vec<(u16, Vec<u8>)> = attrs(&b).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(got[0], (IFLA_LINK, vec![7, 0, 0, 0]));
        assert_eq!(got[1], (99, vec![1]));
        assert_eq!(got[2].0, IFLA_XDP);
        assert_eq!(
            attrs(&got[2].1).next(),
            Some((IFLA_XDP_ATTACHED, &[1u8][..]))
        );
    }
}
