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

use log::{info, warn};
use synguard_common::maps::{PORT_NO_LISTENER_V4, PORT_NO_LISTENER_V6};

use crate::{daemon::instance::Instance, datapath::ports, host::listeners::Listening};

impl Instance {
    /// Sets the listener bits of the protected ports from `listening`; a failed read or write
    /// changes nothing and is said.
    pub fn follow_listeners(&self, listening: &Listening) {
        let Some(dir) = self.pin_dir.as_deref() else {
            return;
        };
        let result = ports::set_listeners_pinned(dir, |p| listening.no_listener_flags(p));
        match result {
            Ok(changed) => {
                for (port, bits) in changed {
                    info!("{}: port {port}: {}", self.iface(), listener_text(bits));
                }
            }
            Err(e) => warn!(
                "{}: listeners not followed: {:#}",
                self.iface(),
                anyhow::Error::from(e)
            ),
        }
    }
}

/// What a port's `PORT_NO_LISTENER_*` bits mean, for the log.
fn listener_text(bits: u32) -> &'static str {
    match (
        bits & PORT_NO_LISTENER_V4 != 0,
        bits & PORT_NO_LISTENER_V6 != 0,
    ) {
        (false, false) => "a listener over IPv4 and IPv6; SYNs answered",
        (true, false) => "a listener over IPv6 only; IPv4 SYNs left to the kernel (it resets them)",
        (false, true) => "a listener over IPv4 only; IPv6 SYNs left to the kernel (it resets them)",
        (true, true) => "nothing listens; SYNs left to the kernel (it resets them)",
    }
}
