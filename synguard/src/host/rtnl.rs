//! What rtnetlink says about one interface (`ip -d link show`): its link partner, whether that
//! partner lives in another network namespace, whether an XDP program is attached, and for a bond
//! its mode and slaves. For a veth the partner is its peer. Asked on a socket in the caller's
//! network namespace (sysfs shows the namespace that mounted it, which under `nsenter` is not
//! the caller's).

use std::io;

use crate::host::netlink::{self, attrs, u32_at};

/// Attribute numbers from include/uapi/linux/if_link.h.
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
/// include/uapi/linux/if_link.h, `IFLA_BOND_*`.
const IFLA_BOND_MODE: u16 = 1;
const IFLA_BOND_XMIT_HASH_POLICY: u16 = 14;
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
    /// A bond's settings (`IFLA_INFO_KIND` "bond").
    pub bond: Option<BondLink>,
    /// `IFLA_MASTER`: the index of the device this one is enslaved to (a bond's slave's bond).
    pub master: Option<u32>,
}

/// A bond's mode and transmit hash policy, as the bonding driver numbers them
/// (`BOND_MODE_*`, `BOND_XMIT_POLICY_*` in include/net/bonding.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BondLink {
    pub mode: u8,
    pub xmit_hash_policy: u8,
}

/// The interfaces whose master is the interface with index `master` (a bond's slaves): index and
/// name, from a dump of every link.
pub fn lower_links(master: u32) -> io::Result<Vec<(u32, String)>> {
    netlink::route_dump(
        libc::RTM_GETLINK,
        &[0u8; IFINFOMSG],
        libc::RTM_NEWLINK,
        |body| lower_of(body, master),
    )
}

/// The index and name of the link in an `RTM_NEWLINK` body, if its master is `master`.
fn lower_of(body: &[u8], master: u32) -> Option<(u32, String)> {
    let index = u32_at(body, 4)?;
    let mut name = None;
    let mut is_lower = false;
    for (ty, value) in attrs(body.get(IFINFOMSG..)?) {
        match ty {
            IFLA_MASTER => is_lower = u32_at(value, 0) == Some(master),
            IFLA_IFNAME => name = Some(c_string(value)),
            _ => {}
        }
    }
    is_lower.then_some((index, name?))
}

/// A NUL-terminated string attribute.
fn c_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// `IFLA_LINKINFO`: a bond's mode and hash policy, `None` for any other kind of link.
fn bond_of(linkinfo: &[u8]) -> Option<BondLink> {
    let mut bond = false;
    let mut link = BondLink::default();
    for (ty, value) in attrs(linkinfo) {
        match ty {
            IFLA_INFO_KIND => bond = c_string(value) == "bond",
            IFLA_INFO_DATA => {
                for (t, v) in attrs(value) {
                    match (t, v.first()) {
                        (IFLA_BOND_MODE, Some(&m)) => link.mode = m,
                        (IFLA_BOND_XMIT_HASH_POLICY, Some(&p)) => link.xmit_hash_policy = p,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    bond.then_some(link)
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
            IFLA_LINKINFO => facts.bond = bond_of(value),
            IFLA_MASTER => facts.master = u32_at(value, 0),
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

    /// One attribute as the kernel lays it out: length, type, value, padding to 4 bytes.
    fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    #[test]
    fn a_bonds_linkinfo_gives_its_mode_and_hash_policy() {
        let data = [
            attr(IFLA_BOND_MODE, &[4]),
            attr(IFLA_BOND_XMIT_HASH_POLICY, &[5]),
        ]
        .concat();
        let info = [attr(IFLA_INFO_KIND, b"bond\0"), attr(IFLA_INFO_DATA, &data)].concat();
        assert_eq!(
            bond_of(&info),
            Some(BondLink {
                mode: 4,
                xmit_hash_policy: 5
            })
        );
        let veth = attr(IFLA_INFO_KIND, b"veth\0");
        assert_eq!(bond_of(&veth), None);
    }

    #[test]
    fn a_lower_link_is_one_whose_master_is_asked_for() {
        let mut body = vec![0u8; IFINFOMSG];
        body[4..8].copy_from_slice(&7u32.to_ne_bytes());
        body.extend(attr(IFLA_IFNAME, b"eth1\0"));
        body.extend(attr(IFLA_MASTER, &3u32.to_ne_bytes()));
        assert_eq!(lower_of(&body, 3), Some((7, "eth1".to_string())));
        assert_eq!(lower_of(&body, 4), None);
    }

    #[test]
    fn loopback_is_no_bond_and_no_master() {
        let lo = link_facts(1).unwrap();
        assert_eq!((lo.bond, lo.master), (None, None));
        assert!(lower_links(1).unwrap().is_empty());
    }

    #[test]
    fn a_missing_index_is_the_kernels_error() {
        let e = link_facts(0x7fff_fff0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
    }
}
