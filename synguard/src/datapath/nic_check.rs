//! What the interface's driver needs before the program's XDP_TX works there: a per-driver table
//! and [`judge`], a pure function from the driver's facts (read by `daemon::nic_gate` from
//! `host::ethtool`, `host::rtnl` and `host::nic`) to findings. `run` logs them and refuses what
//! would break the host, `doctor` shows the same findings. The facts behind each rule are in
//! docs/virtio-net.md and docs/veth-and-nics.md.

use crate::host::ethtool::{Channels, RxOffloads};

/// What XDP_TX needs from a driver, beyond native XDP itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxNeed {
    /// A TX queue pair per possible CPU on top of the pairs in use (`virtnet_xdp_set`,
    /// drivers/net/virtio_net.c); without them XDP_TX runs in a locked mode that crashed a Debian
    /// 6.12 guest (docs/virtio-net.md).
    SpareQueuePairs,
    /// An XDP program on the peer, or XDP_TX frames are lost (docs/veth-and-nics.md).
    PeerProgram,
}

/// The per-driver facts, by the driver name `ethtool -i` shows.
const DRIVERS: &[(&str, TxNeed)] = &[
    ("virtio_net", TxNeed::SpareQueuePairs),
    ("veth", TxNeed::PeerProgram),
];

/// Drivers that switch their merging receive offloads off themselves while a program is
/// attached: virtio-net clears the guest offloads (`virtnet_xdp_set` ->
/// `virtnet_clear_guest_offloads`) where the device lets it (`VIRTIO_NET_F_CTRL_GUEST_OFFLOADS`),
/// and refuses native XDP where it does not, which `run` reports as it falls back.
const CLEARS_OWN_OFFLOADS: &[&str] = &["virtio_net"];

/// Receive offloads that change what XDP sees, for every driver: (name as `ethtool -k` shows it,
/// the `ethtool -K` word that turns it off, whether it is on, why it matters).
type OffloadRule = (
    &'static str,
    &'static str,
    fn(&RxOffloads) -> bool,
    &'static str,
);
const OFFLOADS: [OffloadRule; 3] = [
    (
        "large-receive-offload",
        "lro",
        |o| o.lro,
        "the NIC merges segments before XDP sees them; most drivers refuse native XDP with it on",
    ),
    (
        "rx-gro-hw",
        "rx-gro-hw",
        |o| o.gro_hw,
        "hardware GRO merges segments before XDP sees them; most drivers refuse native XDP with \
         it on",
    ),
    (
        RX_VLAN,
        "rxvlan",
        |o| o.rx_vlan,
        "VLAN tags are stripped before XDP, so SYN-ACKs to tagged clients would leave untagged \
         (docs/veth-and-nics.md); matters on a VLAN trunk",
    ),
];

/// The receive VLAN offload check. In `run` its warning belongs to `daemon::prepare`, which
/// knows whether VLANs are in use; `doctor` shows it here.
pub const RX_VLAN: &str = "rx-vlan-offload";

/// A veth's peer as far as this namespace can see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// In this namespace, with or without an XDP program.
    Visible { name: String, xdp: bool },
    /// In another network namespace: its programs cannot be seen from here.
    OtherNetns,
    /// Not readable (or not a pair).
    Unknown,
}

/// Everything the rules look at, read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicFacts {
    pub iface: String,
    /// `None` when the driver does not answer `ETHTOOL_GDRVINFO`.
    pub driver: Option<String>,
    /// Possible CPUs (`nr_cpu_ids`), the count the drivers size XDP TX queues by.
    pub cpus: u32,
    pub channels: Option<Channels>,
    /// A program (ours from a previous run, or another) is attached now.
    pub xdp_attached: bool,
    pub offloads: Option<RxOffloads>,
    pub peer: Peer,
    /// A bond: its mode, and its slaves' own facts (`None` for any other interface).
    pub bond: Option<BondFacts>,
}

/// A bond hands its XDP program to each slave's driver (`bond_xdp_set`,
/// drivers/net/bonding/bond_main.c), so the slaves' drivers are what the rules judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondFacts {
    /// `BOND_MODE_*` (include/net/bonding.h): 0 balance-rr ... 6 balance-alb.
    pub mode: u8,
    /// `BOND_XMIT_POLICY_*`: 0 layer2 ... 5 vlan+srcmac.
    pub xmit_hash_policy: u8,
    pub slaves: Vec<NicFacts>,
}

/// Bond mode names, by number, as `/proc/net/bonding` shows them.
const BOND_MODES: [&str; 7] = [
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
];
/// `BOND_MODE_ALB`.
const MODE_ALB: u8 = 6;
/// `BOND_XMIT_POLICY_VLAN_SRCMAC`.
const XMIT_VLAN_SRCMAC: u8 = 5;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    /// Worth knowing, nothing to fix from here (`run` says it in its debug log).
    Note,
    Warn,
    /// `run` does not attach natively unless told to (`ignore_nic_checks`).
    Refuse,
}

/// One judged fact, with the fix when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicFinding {
    pub check: &'static str,
    /// The bond's slave the finding is about (`None`: the interface itself).
    pub slave: Option<String>,
    pub level: Level,
    pub current: String,
    pub recommended: String,
    pub why: String,
    pub fix: Option<String>,
}

impl NicFinding {
    /// One plain sentence: what is wrong, why, and the fix.
    pub fn message(&self, iface: &str) -> String {
        let fix = self
            .fix
            .as_ref()
            .map(|f| format!("; fix: {f}"))
            .unwrap_or_default();
        format!(
            "{}: {}: {}: {}{fix}",
            self.subject(iface),
            self.check,
            self.current,
            self.why
        )
    }

    /// `iface`, or `iface (slave NAME)` for a finding about one of its slaves.
    pub fn subject(&self, iface: &str) -> String {
        match &self.slave {
            Some(s) => format!("{iface} (slave {s})"),
            None => iface.to_string(),
        }
    }
}

/// The findings for `facts`: the driver's own rule (from [`DRIVERS`]) and the offloads; for a
/// bond, its mode and each slave's findings (the bond's own offload flags are only what it
/// passes on to them).
pub fn judge(facts: &NicFacts) -> Vec<NicFinding> {
    if let Some(bond) = &facts.bond {
        return judge_bond(bond);
    }
    let need = facts
        .driver
        .as_deref()
        .and_then(|d| DRIVERS.iter().find(|(name, _)| *name == d))
        .map(|&(_, need)| need);
    let mut out: Vec<NicFinding> = match need {
        Some(TxNeed::SpareQueuePairs) => vec![queue_pairs(facts)],
        Some(TxNeed::PeerProgram) => vec![peer_program(facts)],
        None => Vec::new(),
    };
    out.extend(offloads(facts));
    out
}

fn judge_bond(bond: &BondFacts) -> Vec<NicFinding> {
    let mut out = vec![bond_mode(bond)];
    for slave in &bond.slaves {
        out.extend(judge(slave).into_iter().map(|f| NicFinding {
            slave: Some(slave.iface.clone()),
            ..f
        }));
    }
    if bond.slaves.is_empty() {
        out.push(finding(
            "bond slaves",
            Level::Note,
            ("none", "at least one"),
            "a bond with no slaves receives nothing; each slave enslaved later gets the \
             program, unchecked"
                .into(),
        ));
    }
    out
}

/// A bond runs a program natively (on its slaves) only in the modes `bond_xdp_check` allows;
/// in the others `run` attaches in generic mode, after the native attach fails.
fn bond_mode(bond: &BondFacts) -> NicFinding {
    let native = match bond.mode {
        0 | 1 => true,
        2 | 4 => bond.xmit_hash_policy != XMIT_VLAN_SRCMAC,
        _ => false,
    };
    let name = BOND_MODES
        .get(bond.mode as usize)
        .map_or_else(|| format!("mode {}", bond.mode), |n| n.to_string());
    let current = if native || !matches!(bond.mode, 2 | 4) {
        name
    } else {
        format!("{name}, xmit_hash_policy vlan+srcmac")
    };
    let mut why = "a bond runs an XDP program in its slaves' drivers only in balance-rr, \
                   active-backup, and balance-xor or 802.3ad without the vlan+srcmac hash \
                   policy (`bond_xdp_check`); in other modes synguard runs in generic mode, in \
                   the network stack"
        .to_string();
    if bond.mode == MODE_ALB {
        // bond_alb.c answers ARP with the slaves' own addresses (receive load balancing):
        // frames reach the bond with a destination MAC that is not the bond's.
        why.push_str(
            "; and balance-alb gives clients the slaves' own MAC addresses, whose frames a \
             program on the bond passes as not for this host (`pass_not_for_host`)",
        );
    }
    NicFinding {
        fix: (!native).then(|| {
            "attach to each slave instead (one --iface per slave), or use another mode".into()
        }),
        ..finding(
            "bonding mode",
            if native { Level::Ok } else { Level::Warn },
            (
                &current,
                "balance-rr, active-backup, balance-xor or 802.3ad",
            ),
            why,
        )
    }
}

/// A finding about the interface itself, (current, recommended), without a fix.
fn finding(check: &'static str, level: Level, now: (&str, &str), why: String) -> NicFinding {
    NicFinding {
        check,
        slave: None,
        level,
        current: now.0.into(),
        recommended: now.1.into(),
        why,
        fix: None,
    }
}

/// virtio-net: pairs in use + CPUs <= maximum.
fn queue_pairs(facts: &NicFacts) -> NicFinding {
    let iface = &facts.iface;
    let cpus = facts.cpus;
    let recommended = format!("in use + {cpus} CPUs <= max");
    let Some(ch) = facts.channels else {
        return NicFinding {
            check: "XDP_TX queue pairs",
            slave: None,
            level: Level::Warn,
            current: "unreadable".into(),
            recommended,
            why: "virtio-net needs a spare queue pair per CPU for XDP_TX".into(),
            fix: Some(format!("check `ethtool -l {iface}`")),
        };
    };
    // While a program is attached the driver counts the pairs it took for XDP as in use
    // (`ethtool -l` shows them in Combined, docs/virtio-net.md): a restart must not count them
    // twice.
    let in_use = if facts.xdp_attached && ch.combined > cpus {
        ch.combined - cpus
    } else {
        ch.combined
    };
    let ok = in_use + cpus <= ch.max_combined;
    let fix = if ch.max_combined > cpus {
        format!("`ethtool -L {iface} combined {}`", ch.max_combined - cpus)
    } else {
        format!(
            "give the NIC at least {} queue pairs (QEMU: -netdev tap,queues=N and -device \
             virtio-net-pci,mq=on,vectors=2N+2)",
            cpus + 1
        )
    };
    NicFinding {
        check: "XDP_TX queue pairs",
        slave: None,
        level: if ok { Level::Ok } else { Level::Refuse },
        current: format!("{in_use} in use of {} max", ch.max_combined),
        recommended,
        why: format!(
            "virtio-net needs a spare queue pair per CPU for XDP_TX ({} needed, {} max); \
             without them it uses a locked mode in which the first XDP_TX crashed a Debian \
             6.12 guest (docs/virtio-net.md)",
            in_use + cpus,
            ch.max_combined
        ),
        fix: (!ok).then_some(fix),
    }
}

/// The program a veth peer needs, as the fix says it.
const PASS_PROGRAM: &str = "XDP_PASS is enough; multi-buffer, `xdp.frags`, at a jumbo MTU";

/// veth: an XDP program on the peer.
fn peer_program(facts: &NicFacts) -> NicFinding {
    let why = "a veth delivers XDP_TX frames (the SYN-ACKs) reliably only when its peer has an \
               XDP program, a pass-through one is enough (at a jumbo MTU a multi-buffer one: \
               a veth refuses single-buffer programs there; docs/veth-and-nics.md)";
    let (level, current, fix) = match &facts.peer {
        Peer::Visible { name, xdp: true } => (Level::Ok, format!("on peer {name}"), None),
        Peer::Visible { name, xdp: false } => (
            Level::Warn,
            format!("missing on peer {name}"),
            Some(format!("attach an XDP program ({PASS_PROGRAM}) to {name}")),
        ),
        Peer::OtherNetns => (
            Level::Note,
            "peer in another namespace".into(),
            Some("make sure the peer has an XDP program, in its namespace".into()),
        ),
        Peer::Unknown => (
            Level::Note,
            "peer unknown".into(),
            Some("make sure the peer has an XDP program".into()),
        ),
    };
    NicFinding {
        check: "XDP program on the veth peer",
        slave: None,
        level,
        current,
        recommended: "present".into(),
        why: why.into(),
        fix,
    }
}

fn offloads(facts: &NicFacts) -> Vec<NicFinding> {
    let Some(o) = facts.offloads else {
        return Vec::new();
    };
    let clears = facts
        .driver
        .as_deref()
        .is_some_and(|d| CLEARS_OWN_OFFLOADS.contains(&d));
    OFFLOADS
        .iter()
        .map(|&(check, word, on, why)| {
            let on = on(&o);
            if on && clears && check != RX_VLAN {
                return NicFinding {
                    check,
                    slave: None,
                    level: Level::Note,
                    current: "on".into(),
                    recommended: "off while attached".into(),
                    why: "the driver switches it off itself while an XDP program is attached \
                          (virtio-net: `virtnet_xdp_set`)"
                        .into(),
                    fix: None,
                };
            }
            NicFinding {
                check,
                slave: None,
                level: if on { Level::Warn } else { Level::Ok },
                current: if on { "on" } else { "off" }.into(),
                recommended: "off".into(),
                why: why.into(),
                fix: on.then(|| format!("`ethtool -K {} {word} off`", facts.iface)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(driver: &str) -> NicFacts {
        NicFacts {
            iface: "eth0".into(),
            driver: Some(driver.into()),
            cpus: 2,
            channels: None,
            xdp_attached: false,
            offloads: Some(RxOffloads::default()),
            peer: Peer::Unknown,
            bond: None,
        }
    }

    fn virtio(max_combined: u32, combined: u32, attached: bool) -> NicFinding {
        let mut f = facts("virtio_net");
        f.channels = Some(Channels {
            max_combined,
            combined,
        });
        f.xdp_attached = attached;
        judge(&f).remove(0)
    }

    #[test]
    fn virtio_needs_a_spare_pair_per_cpu() {
        // The VM's NIC: 4 pairs, 2 CPUs. Two in use fit; four in use is the locked mode.
        let fine = virtio(4, 2, false);
        assert_eq!((fine.level, fine.fix.as_deref()), (Level::Ok, None));
        let short = virtio(4, 4, false);
        assert_eq!(short.level, Level::Refuse);
        assert_eq!(short.current, "4 in use of 4 max");
        assert_eq!(short.fix.as_deref(), Some("`ethtool -L eth0 combined 2`"));
        assert!(short.why.contains("6 needed, 4 max"), "{}", short.why);
        assert_eq!(virtio(4, 3, false).level, Level::Refuse);
    }

    #[test]
    fn a_program_already_attached_holds_its_pairs() {
        // While attached the driver shows its XDP pairs as in use: a restart sees 4 of 4.
        let restart = virtio(4, 4, true);
        assert_eq!(
            (restart.level, restart.current.as_str()),
            (Level::Ok, "2 in use of 4 max")
        );
        // No more pairs than CPUs: the driver cannot have taken any for XDP, so all are in use.
        let locked = virtio(3, 2, true);
        assert_eq!(
            (locked.level, locked.current.as_str()),
            (Level::Refuse, "2 in use of 3 max")
        );
    }

    #[test]
    fn too_few_pairs_at_all_ask_for_more_queues() {
        let f = virtio(2, 1, false);
        assert_eq!(f.level, Level::Refuse);
        assert!(f.fix.unwrap().contains("at least 3 queue pairs"));
    }

    #[test]
    fn unreadable_channels_warn_without_refusing() {
        let f = judge(&facts("virtio_net")).remove(0);
        assert_eq!((f.level, f.current.as_str()), (Level::Warn, "unreadable"));
    }

    #[test]
    fn veth_wants_a_program_on_a_visible_peer() {
        let mut f = facts("veth");
        let level = |f: &NicFacts| judge(f)[0].level;
        f.peer = Peer::Visible {
            name: "vb".into(),
            xdp: false,
        };
        assert_eq!(level(&f), Level::Warn);
        assert_eq!(
            judge(&f)[0].fix.as_deref(),
            Some(
                "attach an XDP program (XDP_PASS is enough; multi-buffer, `xdp.frags`, at a \
                 jumbo MTU) to vb"
            )
        );
        f.peer = Peer::Visible {
            name: "vb".into(),
            xdp: true,
        };
        assert_eq!(level(&f), Level::Ok);
        f.peer = Peer::OtherNetns;
        assert_eq!(level(&f), Level::Note);
    }

    #[test]
    fn other_drivers_get_only_the_offload_checks() {
        let mut f = facts("mlx5_core");
        f.channels = Some(Channels {
            max_combined: 1,
            combined: 1,
        });
        let found = judge(&f);
        let checks: Vec<&str> = found.iter().map(|f| f.check).collect();
        assert_eq!(checks, ["large-receive-offload", "rx-gro-hw", RX_VLAN]);
        assert!(found.iter().all(|f| f.level == Level::Ok));
        f.driver = None;
        f.offloads = None;
        assert!(judge(&f).is_empty());
    }

    #[test]
    fn offloads_on_warn_with_the_ethtool_word() {
        let mut f = facts("ixgbe");
        f.offloads = Some(RxOffloads {
            lro: true,
            gro_hw: true,
            rx_vlan: true,
        });
        let fixes: Vec<String> = judge(&f)
            .into_iter()
            .inspect(|f| assert_eq!(f.level, Level::Warn))
            .filter_map(|f| f.fix)
            .collect();
        assert_eq!(
            fixes,
            [
                "`ethtool -K eth0 lro off`",
                "`ethtool -K eth0 rx-gro-hw off`",
                "`ethtool -K eth0 rxvlan off`"
            ]
        );
    }

    fn bond(mode: u8, slaves: Vec<NicFacts>) -> NicFacts {
        NicFacts {
            iface: "bond0".into(),
            driver: Some("bonding".into()),
            // A bond's own flags: what it passes on to its slaves, not a NIC's state.
            offloads: Some(RxOffloads {
                lro: true,
                gro_hw: false,
                rx_vlan: false,
            }),
            bond: Some(BondFacts {
                mode,
                xmit_hash_policy: 0,
                slaves,
            }),
            ..facts("bonding")
        }
    }

    fn slave(name: &str, driver: &str) -> NicFacts {
        NicFacts {
            iface: name.into(),
            ..facts(driver)
        }
    }

    #[test]
    fn a_bond_is_judged_by_its_slaves_drivers() {
        // A virtio slave short of queue pairs refuses the bond, and names the slave.
        let mut short = slave("eth0", "virtio_net");
        short.channels = Some(Channels {
            max_combined: 4,
            combined: 4,
        });
        let found = judge(&bond(1, vec![short, slave("eth1", "ixgbe")]));
        let seen: Vec<(Option<&str>, &str, Level)> = found
            .iter()
            .map(|f| (f.slave.as_deref(), f.check, f.level))
            .collect();
        assert_eq!(seen[0], (None, "bonding mode", Level::Ok));
        assert_eq!(seen[1], (Some("eth0"), "XDP_TX queue pairs", Level::Refuse));
        assert!(
            seen[2..].iter().all(|&(_, _, l)| l == Level::Ok),
            "{seen:?}"
        );
        assert_eq!(seen.iter().filter(|s| s.0 == Some("eth1")).count(), 3);
        // The bond's own LRO flag is not judged.
        assert!(!found.iter().any(|f| f.slave.is_none() && f.current == "on"));
        let m = found[1].message("bond0");
        assert!(
            m.starts_with("bond0 (slave eth0): XDP_TX queue pairs: "),
            "{m}"
        );
        assert!(m.ends_with("`ethtool -L eth0 combined 2`"), "{m}");
    }

    #[test]
    fn bond_modes_without_native_xdp_warn() {
        let level = |mode: u8, policy: u8| {
            let mut b = bond(mode, vec![slave("eth0", "ixgbe")]);
            if let Some(bf) = b.bond.as_mut() {
                bf.xmit_hash_policy = policy;
            }
            judge(&b)[0].clone()
        };
        for (mode, policy) in [(0, 0), (1, 0), (2, 1), (4, 2)] {
            assert_eq!(level(mode, policy).level, Level::Ok, "mode {mode}");
        }
        for (mode, policy) in [(3, 0), (5, 0), (6, 0), (4, 5), (2, 5)] {
            let f = level(mode, policy);
            assert_eq!(f.level, Level::Warn, "mode {mode} policy {policy}");
            assert!(f.fix.unwrap().contains("each slave"));
        }
        assert_eq!(level(6, 0).current, "balance-alb");
        assert!(level(6, 0).why.contains("pass_not_for_host"));
        assert!(!level(5, 0).why.contains("pass_not_for_host"));
        assert_eq!(level(4, 5).current, "802.3ad, xmit_hash_policy vlan+srcmac");
        let empty = judge(&bond(1, Vec::new()));
        assert_eq!(
            (empty[1].check, empty[1].level),
            ("bond slaves", Level::Note)
        );
    }

    #[test]
    fn virtio_switches_its_merging_offloads_off_itself() {
        let mut f = facts("virtio_net");
        f.offloads = Some(RxOffloads {
            lro: false,
            gro_hw: true,
            rx_vlan: true,
        });
        let found = judge(&f);
        let gro = found.iter().find(|f| f.check == "rx-gro-hw").unwrap();
        assert_eq!((gro.level, gro.fix.as_ref()), (Level::Note, None));
        let vlan = found.iter().find(|f| f.check == RX_VLAN).unwrap();
        assert_eq!(vlan.level, Level::Warn);
    }

    #[test]
    fn the_message_names_the_fix() {
        let m = virtio(4, 4, false).message("eth0");
        assert!(
            m.starts_with("eth0: XDP_TX queue pairs: 4 in use of 4 max: "),
            "{m}"
        );
        assert!(m.ends_with("; fix: `ethtool -L eth0 combined 2`"), "{m}");
    }
}
