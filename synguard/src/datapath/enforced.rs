//! What the program enforces right now, read back from its pinned maps (not from what a `run`
//! was started with: a reload or `block add` changes the maps, not the start-up arguments).
//! `status` shows it and the metrics endpoint exports it.

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use serde::Serialize;
use synguard_common::{
    maps::{
        Config, HOST_RP_LOOSE, HOST_RP_STRICT, PORT_BOUND_ONLY_V4, PORT_BOUND_ONLY_V6,
        PORT_NO_LISTENER_V4, PORT_NO_LISTENER_V6, PortConfig, cookies_own, names,
    },
    own_cookie::largest_synack_mss,
    policy::{Policy, gcra_to_rate},
};

use crate::{
    datapath::{
        counters::mode_name,
        maps::{self, PinnedMapError},
        ports,
    },
    host::{
        addrs::{Held, LocalAddrs},
        facts,
    },
};

/// Entries in the allow and block lists, per family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListSizes {
    pub allow_v4: u32,
    pub allow_v6: u32,
    pub block_v4: u32,
    pub block_v6: u32,
}

/// The limits as the program applies them (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EnforcedLimits {
    pub source_rate_pps: u64,
    pub source_burst: u64,
    pub source_block_s: u64,
    pub reflect_cap_pps: u64,
    pub reflect_burst: u64,
}

/// What the SYN-ACKs take from the host (`config_map::set_host_fields`), as the config map holds
/// it now: it follows the interface and the kernel's settings while synguard runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SynAckFacts {
    /// The largest MSS advertised: the interface's MTU less headers, at most the cookie
    /// table's largest entry (`own_cookie::largest_synack_mss`: 1460 over IPv4).
    pub mss_v4: u32,
    pub mss_v6: u32,
    pub wscale: u32,
    pub ecn: bool,
    /// The interface's MAC address the SYNs are answered for ("any": unknown, every unicast
    /// SYN is answered).
    pub mac: String,
    /// The kernel's reverse-path filter as the program follows it: "strict", "loose" or "off"
    /// (`HOST_RP_*`; off too where every source passes it, or it cannot be followed).
    pub reverse_path: &'static str,
    /// Where the program finds the host's own addresses, by family (`LocalAddrs::held`).
    pub addresses_v4: Held,
    pub addresses_v6: Held,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Enforced {
    /// "auto", "always" (or "off" for a value the program does not know).
    pub mode: &'static str,
    /// Whose cookies answer SYNs: "kernel" or "own" (what `--cookies` came to on this host,
    /// `auto` having fallen back or not).
    pub cookies: &'static str,
    /// Everything is decided and counted, nothing is dropped or answered.
    pub monitor: bool,
    pub ports: Vec<u16>,
    /// Protected ports nothing listens on over IPv4 / IPv6, as the daemon last saw the
    /// listening sockets: their SYNs are left to the kernel (`pass_syn_no_listener`).
    pub no_listener_v4: Vec<u16>,
    pub no_listener_v6: Vec<u16>,
    /// Protected ports whose listeners are bound to particular addresses, with the host's
    /// addresses none of them is bound to: SYNs to those are left to the kernel too.
    pub no_listener_at: Vec<(u16, Vec<IpAddr>)>,
    /// Protected ports whose listeners are all bound to particular addresses, on a host whose
    /// addresses are in the program's trie (`PORT_BOUND_ONLY_*`): SYNs to the host's other
    /// addresses are left to the kernel.
    pub bound_only: Vec<u16>,
    pub syn_threshold: u32,
    pub syn_off_threshold: u32,
    pub hold_s: f64,
    pub lists: ListSizes,
    pub limits: EnforcedLimits,
    pub synack: SynAckFacts,
}

impl Enforced {
    /// Pure, so the reading back of every field is unit-tested.
    pub fn from_maps(config: &Config, policy: &Policy, ports: Vec<u16>) -> Self {
        let (source_rate_pps, source_burst) = gcra_to_rate(policy.src_cost_ns, policy.src_burst_ns);
        let (reflect_cap_pps, reflect_burst) =
            gcra_to_rate(policy.reflect_cost_ns, policy.reflect_burst_ns);
        Enforced {
            mode: mode_name(config.mode),
            cookies: cookies_name(config.cookies),
            monitor: policy.monitor != 0,
            ports,
            no_listener_v4: Vec::new(),
            no_listener_v6: Vec::new(),
            no_listener_at: Vec::new(),
            bound_only: Vec::new(),
            syn_threshold: config.syn_on_pps,
            syn_off_threshold: config.syn_off_pps,
            hold_s: config.hold_ns as f64 / 1e9,
            lists: ListSizes {
                allow_v4: policy.allow_v4,
                allow_v6: policy.allow_v6,
                block_v4: policy.block_v4,
                block_v6: policy.block_v6,
            },
            limits: EnforcedLimits {
                source_rate_pps,
                source_burst,
                source_block_s: policy.src_block_ns / 1_000_000_000,
                reflect_cap_pps,
                reflect_burst,
            },
            synack: SynAckFacts {
                mss_v4: largest_synack_mss(config.mss_v4, false),
                mss_v6: largest_synack_mss(config.mss_v6, true),
                wscale: config.wscale,
                ecn: config.ecn != 0,
                mac: match config.own_mac {
                    [0, 0, 0, 0, 0, 0] => "any".to_string(),
                    m => facts::mac_text(&m),
                },
                reverse_path: reverse_path_name(config.cookies),
                addresses_v4: LocalAddrs::from_config(config).held(false),
                addresses_v6: LocalAddrs::from_config(config).held(true),
            },
        }
    }
}

/// The reverse-path check `Config::cookies`'s flags name.
fn reverse_path_name(cookies: u32) -> &'static str {
    if cookies & HOST_RP_STRICT != 0 {
        "strict"
    } else if cookies & HOST_RP_LOOSE != 0 {
        "loose"
    } else {
        "off"
    }
}

/// The name of `Config::cookies`'s kind.
pub fn cookies_name(cookies: u32) -> &'static str {
    if cookies_own(cookies) {
        "own"
    } else {
        "kernel"
    }
}

/// Reads the instance pinned in `dir`.
pub fn read(dir: &Path) -> Result<Enforced, PinnedMapError> {
    let config: Config = maps::read_single(dir, names::CONFIG)?;
    let policy: Policy = maps::read_single(dir, names::POLICY)?;
    let table = ports::pinned(dir)?;
    Ok(Enforced {
        no_listener_v4: ports::without_listener(&table, PORT_NO_LISTENER_V4),
        no_listener_v6: ports::without_listener(&table, PORT_NO_LISTENER_V6),
        no_listener_at: no_listener_at(&table, &LocalAddrs::from_config(&config)),
        bound_only: ports::without_listener(&table, PORT_BOUND_ONLY_V4 | PORT_BOUND_ONLY_V6),
        ..Enforced::from_maps(&config, &policy, ports::protected(&table))
    })
}

/// [`Enforced::no_listener_at`] from the table's bits and the address list they index.
fn no_listener_at(table: &[PortConfig], addrs: &LocalAddrs) -> Vec<(u16, Vec<IpAddr>)> {
    let mut at: BTreeMap<u16, Vec<IpAddr>> = BTreeMap::new();
    for ipv6 in [false, true] {
        for (port, slots) in ports::without_listener_at(table, ipv6) {
            at.entry(port)
                .or_default()
                .extend(addrs.in_slots(ipv6, slots));
        }
    }
    at.into_iter().filter(|(_, a)| !a.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use synguard_common::maps::MODE_AUTO;

    #[test]
    fn every_field_reads_back() {
        let config = Config {
            mode: MODE_AUTO,
            syn_on_pps: 400,
            syn_off_pps: 200,
            hold_ns: 2_500_000_000,
            mss_v4: 1360,
            mss_v6: 1340,
            wscale: 9,
            ecn: 1,
            own_mac: [2, 0, 0, 0x5e, 0, 0x42],
            ..Default::default()
        };
        let mut policy = Policy {
            allow_v4: 1,
            block_v4: 2,
            block_v6: 3,
            ..Default::default()
        };
        Limits {
            source_rate: 50,
            source_burst: 10,
            source_block_secs: 30,
            reflect_rate: 1000,
            reflect_burst: 100,
            monitor: true,
        }
        .apply(&mut policy);
        let e = Enforced::from_maps(&config, &policy, vec![80, 443]);
        assert_eq!(e.mode, "auto");
        assert_eq!(e.cookies, "kernel");
        assert!(e.monitor);
        assert_eq!(e.ports, [80, 443]);
        assert_eq!(
            (e.syn_threshold, e.syn_off_threshold, e.hold_s),
            (400, 200, 2.5)
        );
        assert_eq!(
            e.lists,
            ListSizes {
                allow_v4: 1,
                allow_v6: 0,
                block_v4: 2,
                block_v6: 3
            }
        );
        assert_eq!(
            e.limits,
            EnforcedLimits {
                source_rate_pps: 50,
                source_burst: 10,
                source_block_s: 30,
                reflect_cap_pps: 1000,
                reflect_burst: 100
            }
        );
        assert_eq!(
            e.synack,
            SynAckFacts {
                mss_v4: 1360,
                mss_v6: 1340,
                wscale: 9,
                ecn: true,
                mac: "02:00:00:5e:00:42".into(),
                reverse_path: "off",
                addresses_v4: Held::Unknown,
                addresses_v6: Held::Unknown,
            }
        );
        let strict = Config {
            cookies: synguard_common::maps::HOST_RP_STRICT,
            ..config
        };
        let e = Enforced::from_maps(&strict, &policy, vec![]);
        assert_eq!((e.cookies, e.synack.reverse_path), ("kernel", "strict"));
        let own = Config {
            cookies: synguard_common::maps::COOKIES_OWN | synguard_common::maps::HOST_NO_SACK,
            ..config
        };
        assert_eq!(Enforced::from_maps(&own, &policy, vec![]).cookies, "own");
        let none = Enforced::from_maps(&config, &Policy::default(), vec![]);
        assert!(!none.monitor);
        assert_eq!(none.limits, EnforcedLimits::default());
    }
}
