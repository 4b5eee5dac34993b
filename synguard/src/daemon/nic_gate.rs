//! The NIC check `run` makes before it attaches, and the same findings for `doctor`: reads the
//! driver's facts (`host::ethtool`, `host::rtnl`, `host::nic`) and judges them with
//! `datapath::nic_check`.

use log::{debug, warn};
use thiserror::Error;

use crate::{
    config::{RunConfig, XdpAttach},
    datapath::nic_check::{BondFacts, Level, NicFacts, Peer, RX_VLAN, judge},
    host::{ethtool, nic, rtnl, tuning::Finding},
};

/// Reads the facts of `iface` in the caller's network namespace; what cannot be read stays
/// unknown (and is judged as such). A bond's slaves are read too: its program runs in their
/// drivers.
pub fn gather(iface: &str) -> NicFacts {
    let index = nic::check_interface(iface).ok();
    let link = index.and_then(|index| rtnl::link_facts(index).ok());
    let mut facts = gather_one(iface, link);
    if let (Some(index), Some(bond)) = (index, link.and_then(|l| l.bond)) {
        facts.bond = Some(bond_facts(index, bond, facts.xdp_attached));
    }
    facts
}

/// A bond's slaves, each with its own facts. A program on the bond is on each slave too,
/// though rtnetlink shows it only on the bond: the slaves count it as attached (the virtio-net
/// queue rule counts the pairs it holds).
fn bond_facts(index: u32, bond: rtnl::BondLink, bond_xdp: bool) -> BondFacts {
    let slaves = rtnl::lower_links(index)
        .unwrap_or_default()
        .into_iter()
        .map(|(i, name)| {
            let mut slave = gather_one(&name, rtnl::link_facts(i).ok());
            slave.xdp_attached |= bond_xdp;
            slave
        })
        .collect();
    BondFacts {
        mode: bond.mode,
        xmit_hash_policy: bond.xmit_hash_policy,
        slaves,
    }
}

/// The facts of one interface whose rtnetlink answer is `link`.
fn gather_one(iface: &str, link: Option<rtnl::LinkFacts>) -> NicFacts {
    let peer = match link {
        Some(l) if l.link_in_other_netns => Peer::OtherNetns,
        Some(rtnl::LinkFacts {
            link: Some(peer), ..
        }) => visible_peer(peer),
        _ => Peer::Unknown,
    };
    NicFacts {
        iface: iface.to_string(),
        driver: nic::driver(iface).ok(),
        cpus: aya::util::nr_cpus().map_or(1, |n| n as u32),
        channels: ethtool::channels(iface).ok(),
        xdp_attached: link.is_some_and(|l| l.xdp_attached),
        offloads: ethtool::rx_offloads(iface).ok(),
        peer,
        bond: None,
    }
}

/// The peer with index `index` in this namespace: its name and whether it has a program.
fn visible_peer(index: u32) -> Peer {
    let name = nix::net::if_::if_indextoname(index)
        .ok()
        .map(|n| n.to_string_lossy().into_owned());
    match (name, rtnl::link_facts(index)) {
        (Some(name), Ok(facts)) => Peer::Visible {
            name,
            xdp: facts.xdp_attached,
        },
        _ => Peer::Unknown,
    }
}

/// `run` will not attach natively where a finding says it would break the host.
#[derive(Debug, Error)]
#[error(
    "{message}. Refusing to attach; after the fix run synguard again, or attach anyway with \
     --ignore-nic-checks (`ignore_nic_checks = true`) or in generic mode with --xdp-mode skb"
)]
pub struct NicRefusal {
    pub message: String,
}

/// The check `run` makes before it attaches to `iface`: warnings in the log, notes in the debug
/// log, and an error for a refusal unless `ignore_nic_checks` is set or the attach is in skb
/// mode (generic XDP transmits through the stack, not the driver's XDP queues). For a bond,
/// the names of its slaves, which the run then follows (`instance::bond_follow`).
pub fn before_attach(cfg: &RunConfig, iface: &str) -> Result<Option<Vec<String>>, NicRefusal> {
    let facts = gather(iface);
    debug!("{iface}: NIC facts {facts:?}");
    let slaves = facts.bond.as_ref().map(slave_names);
    let native = cfg.xdp != XdpAttach::Skb;
    for f in judge(&facts).into_iter().filter(|f| f.check != RX_VLAN) {
        let message = f.message(iface);
        match f.level {
            Level::Refuse if native && !cfg.ignore_nic_checks => {
                return Err(NicRefusal { message });
            }
            Level::Refuse if native => warn!("{message} (attaching anyway: ignore_nic_checks)"),
            Level::Refuse | Level::Ok => debug!("{message}"),
            Level::Warn => warn!("{message}"),
            Level::Note => debug!("{message}"),
        }
    }
    Ok(slaves)
}

/// A bond's slaves by name, in the order rtnetlink lists them.
pub fn slave_names(bond: &BondFacts) -> Vec<String> {
    bond.slaves.iter().map(|s| s.iface.clone()).collect()
}

/// The messages of the NIC check's findings, at warning level or above, about the slaves of the
/// bond `iface` named in `new` (enslaved while the program runs: a refusal cannot undo that,
/// and is said as a warning).
pub fn slave_warnings(iface: &str, new: &[String]) -> Vec<String> {
    judge(&gather(iface))
        .into_iter()
        .filter(|f| f.level >= Level::Warn && f.slave.as_ref().is_some_and(|s| new.contains(s)))
        .map(|f| f.message(iface))
        .collect()
}

/// The same findings as `doctor` lines.
pub fn doctor_findings(iface: &str) -> Vec<Finding> {
    judge(&gather(iface))
        .into_iter()
        .map(|f| Finding {
            check: format!("{}, {}", f.check, f.subject(iface)),
            ok: f.level <= Level::Note,
            why: match &f.fix {
                Some(fix) if f.level > Level::Note => format!("{}; fix: {fix}", f.why),
                Some(fix) => format!("{}; {fix}", f.why),
                None => f.why,
            },
            current: f.current,
            recommended: f.recommended,
            apply: None,
        })
        .collect()
}
