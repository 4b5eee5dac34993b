//! A bond's slaves, followed while the program runs. A slave enslaved after attach runs the
//! bond's program in its own driver (the bond passes its program to every new slave,
//! `bond_enslave` via `dev_xdp_propagate`, and refuses a slave whose driver has no XDP at
//! all), but the NIC check before attach never saw that driver: too few XDP_TX queue pairs or
//! an offload that breaks native XDP would go unsaid. Every period the run loop reads the
//! bond's slaves again (one rtnetlink dump, for a bond only); when they changed, the log says
//! so, and the NIC check's warnings about the new slaves come with it.

use log::{info, warn};

use crate::{
    daemon::{instance::Instance, nic_gate},
    host::rtnl,
};

impl Instance {
    /// Reads the bond's slaves again, if the program is on a bond; says what changed and
    /// what the NIC check finds wrong with the new ones.
    pub fn follow_bond(&mut self) {
        let (Some(before), Some(index)) = (&self.bond_slaves, self.key.ifindex()) else {
            return;
        };
        let Ok(links) = rtnl::lower_links(index) else {
            return;
        };
        let now: Vec<String> = links.into_iter().map(|(_, name)| name).collect();
        if &now == before {
            return;
        }
        let new: Vec<String> = now
            .iter()
            .filter(|s| !before.contains(s))
            .cloned()
            .collect();
        info!(
            "{}: bond slaves {} -> {}",
            self.iface,
            list(before),
            list(&now)
        );
        if !new.is_empty() {
            for w in nic_gate::slave_warnings(&self.iface, &new) {
                warn!("{w}");
            }
        }
        self.bond_slaves = Some(now);
    }
}

/// "eth0, eth1", or "none".
fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
