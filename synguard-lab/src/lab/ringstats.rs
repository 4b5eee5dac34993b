//! Where frames are lost between veths: the per-queue counters a veth keeps of its XDP traffic
//! (`ethtool -S`, drivers/net/veth.c `veth_get_ethtool_stats`). A veth's receive ring holds 256
//! frames (`VETH_RING_SIZE`); what does not fit is counted, never queued
//! (docs/measuring.md, "Where frames are lost").
//!
//! - `tx_queue_N_xdp_xmit_errors` on a device: frames redirected out of it (`ndo_xdp_xmit`, the
//!   generator's live frames) that did not fit into its peer's receive ring N.
//! - `rx_queue_N_xdp_tx_errors` on a device: frames its XDP program returned XDP_TX for that did
//!   not fit into its peer's ring (the server's replies).
//! - `rx_queue_N_drops` on a device: skbs that did not fit into its own receive ring N.
//! - the transmit drops of a device (`ip -s link`, `tx_dropped`): skbs it sent that did not fit
//!   into its peer's ring (`veth_xmit` counts them on the sender, not in `ethtool -S`), plus
//!   its redirected frames that did not (`veth_get_stats64` adds the peer's
//!   `peer_tq_xdp_xmit_err`, the same count as `tx_queue_N_xdp_xmit_errors`).

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};

use crate::lab::netns::Netns;

const TX_DROPPED: &str = "tx_dropped";

/// One device's `ethtool -S` counters, and its transmit drops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingStats(BTreeMap<String, u64>);

impl RingStats {
    pub fn read(ns: &Netns, dev: &str) -> Result<RingStats> {
        let out = ns
            .run("ethtool", &["-S", dev])
            .with_context(|| format!("ethtool -S {dev}"))?;
        let mut stats = parse(&out);
        let link = ns.ip(&["-s", "-j", "link", "show", "dev", dev])?;
        let json: serde_json::Value =
            serde_json::from_str(&link).context("parsing ip -j output")?;
        let dropped = json[0]["stats64"]["tx"]["dropped"]
            .as_u64()
            .context("no stats64.tx.dropped in `ip -s -j link` output")?;
        stats.0.insert(TX_DROPPED.to_string(), dropped);
        Ok(stats)
    }

    /// skbs and redirected frames this device sent that did not fit into its peer's rings.
    pub fn tx_dropped(&self) -> u64 {
        self.0.get(TX_DROPPED).copied().unwrap_or(0)
    }

    /// The sum over queues of `<dir>_queue_N_<name>`.
    fn sum(&self, dir: &str, name: &str) -> u64 {
        let prefix = format!("{dir}_queue_");
        let suffix = format!("_{name}");
        self.0
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(&prefix)
                    .and_then(|r| r.strip_suffix(&suffix))
                    .is_some_and(|q| q.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    /// Redirected frames that did not fit into the peer's rings.
    pub fn xmit_errors(&self) -> u64 {
        self.sum("tx", "xdp_xmit_errors")
    }

    /// XDP_TX frames that did not fit into the peer's rings.
    pub fn tx_errors(&self) -> u64 {
        self.sum("rx", "xdp_tx_errors")
    }

    /// skbs that did not fit into this device's own rings.
    pub fn rx_drops(&self) -> u64 {
        self.sum("rx", "drops")
    }
}

fn parse(text: &str) -> RingStats {
    RingStats(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_queues() {
        let s = parse(
            "NIC statistics:\n     peer_ifindex: 2\n     rx_queue_0_drops: 3\n     \
             rx_queue_1_drops: 4\n     rx_queue_0_xdp_tx_errors: 5\n     \
             tx_queue_0_xdp_xmit: 100\n     tx_queue_0_xdp_xmit_errors: 7\n     \
             tx_queue_1_xdp_xmit_errors: 8\n",
        );
        assert_eq!(s.rx_drops(), 7);
        assert_eq!(s.tx_errors(), 5);
        assert_eq!(s.xmit_errors(), 15);
    }
}
