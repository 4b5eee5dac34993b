//! What rtnetlink says about one interface (`ip -d link show`): its link partner, whether that
//! partner lives in another network namespace, and whether an XDP program is attached. For a veth
//! the partner is its peer. Asked on a socket in the caller's network namespace.

use std::io;

use crate::host::netlink::{self, attrs, u32_at};

/// Attribute numbers from include/uapi/linux/if_link.h.
const IFLA_LINK: u16 = 5;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
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
    let sock = netlink::socket(libc::NETLINK_ROUTE)?;
    // ifinfomsg: family (AF_UNSPEC), pad, type, then the index.
    let mut ifinfo = [0u8; IFINFOMSG];
    ifinfo[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    netlink::send(&sock, &netlink::request(libc::RTM_GETLINK, 0, &ifinfo))?;
    parse_reply(&netlink::recv(&sock)?)
}

/// The first message of a reply: an `RTM_NEWLINK` with attributes, or an `NLMSG_ERROR`.
fn parse_reply(datagram: &[u8]) -> io::Result<LinkFacts> {
    let (kind, body) = netlink::messages(datagram)
        .next()
        .unwrap_or_else(|| Err(netlink::short()))?;
    if kind != libc::RTM_NEWLINK {
        return Err(netlink::short());
    }
    let mut facts = LinkFacts::default();
    for (ty, value) in attrs(body.get(IFINFOMSG..).ok_or_else(netlink::short)?) {
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
}
