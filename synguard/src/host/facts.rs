//! What a SYN-ACK takes from the host: the interface's MTU and MAC address, the host's own
//! addresses, and the kernel's TCP settings for a new connection. Read when `run` starts and again while it runs
//! (`daemon::instance::host_follow`): an MTU, a MAC (a bond's fail-over with
//! `fail_over_mac=active`) or a `tcp_rmem` changed under a running program would otherwise leave
//! it answering as the host no longer would.

use std::fmt::Write as _;

use synguard_common::{
    maps::{HOST_NO_SACK, HOST_NO_TIMESTAMPS, HOST_NO_WSCALE},
    own_cookie::largest_synack_mss,
};

use crate::host::{
    addrs::{LocalAddrs, LocalTable},
    nic,
    reverse_path::{self, Plan, RouteEntry},
    sysctl::{self, SysctlError, Sysctls, TcpParams},
};

/// The TCP options the kernel itself has switched off, as own cookies' `HOST_NO_*` flags (the
/// kernel's cookies need no such flags: the kernel decodes them).
const OPTIONS: [(&str, u32); 3] = [
    (sysctl::TIMESTAMPS, HOST_NO_TIMESTAMPS),
    ("net.ipv4.tcp_sack", HOST_NO_SACK),
    ("net.ipv4.tcp_window_scaling", HOST_NO_WSCALE),
];

/// The host facts of one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFacts {
    pub mtu: u32,
    /// The interface's MAC address and whether it is a loopback device; `None` when it cannot
    /// be read (the program then answers any unicast SYN: fail open).
    pub mac: Option<([u8; 6], bool)>,
    pub tcp: TcpParams,
    /// The `HOST_NO_*` flags of the options the kernel has switched off ([`options_off`]).
    pub options_off: u32,
    /// The host's own addresses, which segments to protected ports must be addressed to.
    pub local: LocalAddrs,
    /// The interface takes IPv4 segments from the host's own addresses (`accept_local`).
    pub accept_local: bool,
    /// The reverse-path filter as the program applies it (`host::reverse_path`); the routes it
    /// needs come with the reading ([`HostFacts::read`]).
    pub reverse_path: reverse_path::Check,
}

/// What the program's tries need beside the facts, from the same reading: the routes of the
/// reverse-path check (`datapath::reverse_path::write`) and the host's addresses where the
/// config cannot hold them (`datapath::local_addrs::write`). The facts hold a summary of each,
/// so that a change of either is a change of the facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostTables {
    pub routes: Vec<RouteEntry>,
    pub local: LocalTable,
}

impl HostFacts {
    /// Reads them for `iface`, with the tries' contents ([`HostTables`]). The MAC address may
    /// be missing (`mac`); the rest may not.
    pub fn read(iface: &str, sysctls: &Sysctls) -> Result<(Self, HostTables), SysctlError> {
        Self::read_with(iface, sysctls, None)
    }

    /// [`HostFacts::read`], but with the host's addresses `kept` from an earlier reading when
    /// nothing says they changed (`host::addr_watch`): then `HostTables::local` is empty, as
    /// nothing of it is to be written.
    pub fn read_with(
        iface: &str,
        sysctls: &Sysctls,
        kept: Option<LocalAddrs>,
    ) -> Result<(Self, HostTables), SysctlError> {
        let mac = nic::hw_addr(iface).ok();
        let loopback = mac.is_some_and(|(_, lo)| lo);
        let plan = reverse_path_plan(iface, sysctls);
        let (local, local_table) = match kept {
            Some(local) => (local, LocalTable::default()),
            None => LocalAddrs::read(iface, loopback),
        };
        let facts = HostFacts {
            mtu: sysctl::iface_mtu(iface)?,
            mac,
            tcp: TcpParams::read(sysctls)?,
            options_off: options_off(sysctls)?,
            local,
            accept_local: sysctls.accept_local(iface),
            reverse_path: plan.check,
        };
        let tables = HostTables {
            routes: plan.entries,
            local: local_table,
        };
        Ok((facts, tables))
    }

    /// What differs from `before`, one phrase each, for the log.
    pub fn changes_since(&self, before: &HostFacts) -> Vec<String> {
        let mut out = Vec::new();
        if self.mtu != before.mtu {
            let (v4, v6) = sysctl::mss_from_mtu(self.mtu);
            let (v4, v6) = (largest_synack_mss(v4, false), largest_synack_mss(v6, true));
            out.push(format!(
                "MTU {} -> {} (SYN-ACK MSS at most {v4} over IPv4, {v6} over IPv6)",
                before.mtu, self.mtu
            ));
        }
        if self.mac != before.mac {
            out.push(format!(
                "MAC address {} -> {}",
                read_mac_text(before.mac),
                read_mac_text(self.mac)
            ));
        }
        if self.local != before.local {
            out.push(format!(
                "addresses {} -> {}",
                before.local.text(),
                self.local.text()
            ));
        }
        if self.reverse_path != before.reverse_path
            && let Some(text) = self.reverse_path.text()
        {
            out.push(text);
        }
        if self.accept_local != before.accept_local {
            out.push(format!(
                "accept_local {} -> {} (IPv4 segments from the host's own addresses {})",
                on_off(before.accept_local),
                on_off(self.accept_local),
                if self.accept_local {
                    "taken"
                } else {
                    "dropped as martian"
                }
            ));
        }
        let (t, b) = (&self.tcp, &before.tcp);
        if t.wscale != b.wscale || t.rcv_space != b.rcv_space {
            out.push(format!(
                "receive buffers (tcp_rmem, rmem_max): window scale {} -> {}, initial window {} \
                 -> {} bytes",
                b.wscale, t.wscale, b.rcv_space, t.rcv_space
            ));
        }
        if t.ecn != b.ecn {
            out.push(format!("tcp_ecn {} -> {}", on_off(b.ecn), on_off(t.ecn)));
        }
        for (name, flag) in OPTIONS {
            let (was, is) = (before.options_off & flag == 0, self.options_off & flag == 0);
            if was != is {
                out.push(format!("{name} {} -> {}", on_off(was), on_off(is)));
            }
        }
        out
    }
}

/// The reverse-path check for `iface` and the routes it needs (`host::reverse_path`).
pub fn reverse_path_plan(iface: &str, sysctls: &Sysctls) -> Plan {
    let mode = sysctls.rp_filter(iface);
    match nic::check_interface(iface) {
        Ok(index) => reverse_path::read(index, mode),
        Err(_) => reverse_path::read_unreadable(mode),
    }
}

/// The `HOST_NO_*` flags of the options (timestamps, SACK, window scaling) whose sysctl is 0.
pub fn options_off(sysctls: &Sysctls) -> Result<u32, SysctlError> {
    let mut off = 0;
    for (key, flag) in OPTIONS {
        if sysctls.read_u64(key)? == 0 {
            off |= flag;
        }
    }
    Ok(off)
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter().enumerate().fold(String::new(), |mut s, (i, b)| {
        let sep = if i == 0 { "" } else { ":" };
        let _ = write!(s, "{sep}{b:02x}");
        s
    })
}

/// A reading's MAC address as [`mac_text`], or "unreadable".
fn read_mac_text(mac: Option<([u8; 6], bool)>) -> String {
    mac.map_or_else(|| "unreadable".to_string(), |(m, _)| mac_text(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            mtu: 1500,
            mac: Some(([2, 0, 0, 0, 0, 1], false)),
            tcp: TcpParams {
                wscale: 7,
                rcv_space: 65_483,
                ecn: false,
            },
            options_off: 0,
            local: Default::default(),
            accept_local: false,
            reverse_path: Default::default(),
        }
    }

    #[test]
    fn unchanged_facts_say_nothing() {
        assert!(facts().changes_since(&facts()).is_empty());
    }

    #[test]
    fn each_change_is_named_with_both_values() {
        let before = facts();
        let mut now = facts();
        now.mtu = 9000;
        now.mac = Some(([2, 0, 0, 0, 0, 0xab], false));
        now.tcp.wscale = 9;
        now.tcp.ecn = true;
        now.options_off = HOST_NO_SACK;
        now.accept_local = true;
        let c = now.changes_since(&before);
        assert_eq!(c.len(), 6, "{c:?}");
        // Over IPv4 the cookie's MSS table ends at 1460, whatever the MTU.
        assert!(
            c[0].contains("1500 -> 9000")
                && c[0].contains("at most 1460 over IPv4, 8940 over IPv6"),
            "{c:?}"
        );
        assert!(
            c[1].contains("02:00:00:00:00:01 -> 02:00:00:00:00:ab"),
            "{c:?}"
        );
        assert!(c[2].contains("accept_local off -> on"), "{c:?}");
        assert!(c[3].contains("window scale 7 -> 9"), "{c:?}");
        assert!(c[4].contains("tcp_ecn off -> on"), "{c:?}");
        assert!(c[5].contains("net.ipv4.tcp_sack on -> off"), "{c:?}");
        now.mac = None;
        assert!(now.changes_since(&before)[1].contains("-> unreadable"));
    }

    #[test]
    fn options_off_reads_the_three_switches() {
        let dir = std::env::temp_dir().join(format!("synguard-facts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("net/ipv4")).unwrap();
        let s = Sysctls::with_root(dir.clone());
        for (v, key) in [
            ("1", "tcp_timestamps"),
            ("0", "tcp_sack"),
            ("1", "tcp_window_scaling"),
        ] {
            std::fs::write(dir.join("net/ipv4").join(key), v).unwrap();
        }
        assert_eq!(options_off(&s).unwrap(), HOST_NO_SACK);
        std::fs::write(dir.join("net/ipv4/tcp_window_scaling"), "0").unwrap();
        assert_eq!(options_off(&s).unwrap(), HOST_NO_SACK | HOST_NO_WSCALE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
