//! Following the listening sockets while running. The host answers a SYN to a port nothing
//! listens on with a RST; answered with a cookie SYN-ACK, a client's `connect()` succeeds and a
//! load balancer's TCP health check reports a stopped service as up. Every [`PERIOD`] the run
//! loop reads the namespace's listeners (`host::listeners`) and sets each protected port's
//! `PORT_NO_LISTENER_*` bits in the port table, where the program reads them on a SYN's way
//! (`pass_syn_no_listener`); the log says which ports changed.
//!
//! The table is read back each time rather than remembered: a reload rewrites it
//! (`ports::sync` keeps the bits of the ports it keeps), and a port it adds is found here
//! without bits and given them.
//!
//! [`PERIOD`]: crate::daemon::instance::host_follow::PERIOD

use std::net::IpAddr;

use log::{info, warn};
use synguard_common::maps::{
    PORT_BOUND_ONLY_V4, PORT_BOUND_ONLY_V6, port_bound_only, port_no_listener,
    port_no_listener_slots,
};

use crate::{
    daemon::instance::Instance,
    datapath::{bound, ports},
    host::{addrs::LocalAddrs, listeners::Listening},
};

impl Instance {
    /// Sets the listener bits of the protected ports from `listening`, against the address list
    /// the program's config holds (`self.host`, which `host_follow` keeps equal to the config
    /// map and rewrote just before; none known until it is written); a failed read or write
    /// changes nothing and is said once, until a later try succeeds.
    pub fn follow_listeners(&mut self, listening: &Listening) {
        let Some(dir) = self.pin_dir.as_deref() else {
            return;
        };
        let addrs = self.host.map(|h| h.local).unwrap_or_default();
        // The bound listeners before the port bits that make the program look for them, and
        // only where a family's addresses are in the trie (elsewhere no port gets those bits);
        // where they cannot be written, no port gets them either (any listener then counts).
        let in_trie = addrs.v4_table.is_some() || addrs.v6_table.is_some();
        let bound_unwritable = &mut self.bound_unwritable;
        let iface = &self.iface;
        let prepare = |protected: &[u16]| {
            if !in_trie {
                return u32::MAX;
            }
            match bound::write(dir, &listening.bound_keys(protected, &addrs)) {
                Ok(()) => {
                    *bound_unwritable = false;
                    u32::MAX
                }
                Err(e) => {
                    if !std::mem::replace(bound_unwritable, true) {
                        warn!(
                            "{iface}: listeners bound to particular addresses not written: {:#}; \
                             any listener of a port counts for every address",
                            anyhow::Error::from(e)
                        );
                    }
                    !(PORT_BOUND_ONLY_V4 | PORT_BOUND_ONLY_V6)
                }
            }
        };
        let result =
            ports::set_listeners_pinned(dir, prepare, |p| listening.no_listener_flags(p, &addrs));
        match result {
            Ok(changed) => {
                if std::mem::take(&mut self.listeners_unwritable) {
                    info!("{}: listeners followed again", self.iface());
                }
                for (port, bits) in changed {
                    info!(
                        "{}: port {port}: {}",
                        self.iface(),
                        listener_text(bits, &addrs)
                    );
                }
            }
            Err(e) if !self.listeners_unwritable => {
                warn!(
                    "{}: listeners not followed: {:#}; ports keep what they had",
                    self.iface(),
                    anyhow::Error::from(e)
                );
                self.listeners_unwritable = true;
            }
            Err(_) => {}
        }
    }
}

/// What a port's `PORT_NO_LISTENER_*` bits mean, for the log: "a listener over IPv4 only; IPv4
/// SYNs to 10.0.0.2, IPv6 SYNs left to the kernel (it resets them)".
fn listener_text(bits: u32, addrs: &LocalAddrs) -> String {
    let none = |ipv6| bits & port_no_listener(ipv6) != 0;
    let head = match (none(false), none(true)) {
        (true, true) => return "nothing listens; SYNs left to the kernel (it resets them)".into(),
        (false, true) => "a listener over IPv4 only",
        (true, false) => "a listener over IPv6 only",
        (false, false) => "a listener over IPv4 and IPv6",
    };
    let mut refused = Vec::new();
    for (ipv6, name) in [(false, "IPv4"), (true, "IPv6")] {
        let at = addrs.in_slots(ipv6, port_no_listener_slots(ipv6, bits));
        if none(ipv6) {
            refused.push(format!("{name} SYNs"));
        } else if bits & port_bound_only(ipv6) != 0 {
            refused.push(format!(
                "{name} SYNs to addresses its listeners are not bound to"
            ));
        } else if !at.is_empty() {
            let at: Vec<String> = at.iter().map(IpAddr::to_string).collect();
            refused.push(format!("{name} SYNs to {}", at.join(", ")));
        }
    }
    if refused.is_empty() {
        return format!("{head}; SYNs answered");
    }
    format!(
        "{head}; {} left to the kernel (it resets them)",
        refused.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use synguard_common::maps::{PORT_NO_LISTENER_V4, PORT_NO_LISTENER_V6, port_no_listener_at};

    use super::*;

    #[test]
    fn the_log_names_the_families_and_addresses_left_to_the_kernel() {
        let found = [
            ("eth0".to_string(), "10.0.0.1".parse().unwrap()),
            ("eth0".to_string(), "10.0.0.2".parse().unwrap()),
        ];
        let addrs = LocalAddrs::of("eth0", found, &[]);
        assert_eq!(
            listener_text(0, &addrs),
            "a listener over IPv4 and IPv6; SYNs answered"
        );
        let both = PORT_NO_LISTENER_V4 | PORT_NO_LISTENER_V6;
        assert_eq!(
            listener_text(both, &addrs),
            "nothing listens; SYNs left to the kernel (it resets them)"
        );
        let slot = addrs
            .slots_v4()
            .unwrap()
            .iter()
            .position(|a| *a == Some("10.0.0.2".parse().unwrap()))
            .unwrap();
        let at = port_no_listener_at(false, 1 << slot) | PORT_NO_LISTENER_V6;
        assert_eq!(
            listener_text(at, &addrs),
            "a listener over IPv4 only; IPv4 SYNs to 10.0.0.2, IPv6 SYNs left to the kernel \
             (it resets them)"
        );
    }
}
