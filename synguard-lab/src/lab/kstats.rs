//! The server kernel's own TCP counters (`/proc/net/netstat`, `/proc/net/snmp`), read inside the
//! server's namespace: they show how many flood packets reached the TCP stack.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};

use crate::lab::netns::Netns;

/// Counters as `"Section.Name"` -> value, e.g. `TcpExt.SyncookiesSent`, `Tcp.PassiveOpens`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KStats(pub BTreeMap<String, u64>);

pub const SYNCOOKIES_SENT: &str = "TcpExt.SyncookiesSent";
pub const SYNCOOKIES_RECV: &str = "TcpExt.SyncookiesRecv";
pub const SYNCOOKIES_FAILED: &str = "TcpExt.SyncookiesFailed";
pub const LISTEN_DROPS: &str = "TcpExt.ListenDrops";
pub const REQQ_FULL_DO_COOKIES: &str = "TcpExt.TCPReqQFullDoCookies";
pub const PASSIVE_OPENS: &str = "Tcp.PassiveOpens";
/// Segments the reverse-path filter dropped (`rp_filter`, `fib_validate_source`).
pub const REVERSE_PATH_DROPS: &str = "TcpExt.IPReversePathFilter";
pub const IN_CSUM_ERRORS: &str = "Tcp.InCsumErrors";
/// Frames the namespace's interfaces (loopback aside) dropped on receive (`/proc/net/dev`): on
/// veth with XDP, a full receive ring. Lab nodes have a single interface.
pub const SERVER_RX_DROP: &str = "Dev.all.RxDrop";

impl KStats {
    /// Reads the counters of `ns`. `/proc/thread-self/net` shows the namespace of the reading
    /// thread, which has `setns`'d into `ns`.
    pub fn read(ns: &Netns) -> Result<KStats> {
        let (netstat, snmp, dev) = ns.enter(|| -> Result<(String, String, String)> {
            let read = |f: &str| {
                std::fs::read_to_string(format!("/proc/thread-self/net/{f}"))
                    .with_context(|| format!("reading /proc/net/{f}"))
            };
            Ok((read("netstat")?, read("snmp")?, read("dev")?))
        })??;
        let mut stats = parse(&netstat);
        stats.0.extend(parse(&snmp).0);
        stats.0.extend(parse_dev(&dev));
        Ok(stats)
    }

    /// A counter's value (0 if the kernel does not have it).
    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// How much a counter grew since `before`.
    pub fn delta(&self, before: &KStats, key: &str) -> u64 {
        self.get(key).saturating_sub(before.get(key))
    }

    /// The counters the lab reports, with their growth since `before`, on one line.
    pub fn summary(&self, before: &KStats) -> String {
        [
            SYNCOOKIES_SENT,
            SYNCOOKIES_RECV,
            SYNCOOKIES_FAILED,
            LISTEN_DROPS,
            REQQ_FULL_DO_COOKIES,
            PASSIVE_OPENS,
            IN_CSUM_ERRORS,
            SERVER_RX_DROP,
        ]
        .iter()
        .map(|k| {
            format!(
                "{}=+{}",
                k.rsplit('.').next().unwrap_or(k),
                self.delta(before, k)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// Receive packets and drops per interface from `/proc/net/dev` ("  eth0: rx_bytes rx_packets
/// rx_errs rx_drop ..."), as `Dev.<iface>.RxPackets` and `Dev.<iface>.RxDrop`, and the drops of
/// all but loopback as `Dev.all.RxDrop`.
fn parse_dev(text: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut all_drops = 0;
    for line in text.lines().skip(2) {
        let Some((name, cols)) = line.split_once(':') else {
            continue;
        };
        let cols: Vec<u64> = cols
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
        if let [_, packets, _, drop, ..] = cols[..] {
            let name = name.trim();
            out.push((format!("Dev.{name}.RxPackets"), packets));
            out.push((format!("Dev.{name}.RxDrop"), drop));
            if name != "lo" {
                all_drops += drop;
            }
        }
    }
    out.push(("Dev.all.RxDrop".to_string(), all_drops));
    out
}

/// Parses the `/proc/net/{netstat,snmp}` format: pairs of lines, a header `Sect: Name1 Name2` and
/// a value line `Sect: 1 2`.
pub fn parse(text: &str) -> KStats {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((sect, names)), Some((sect2, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if sect != sect2 {
            continue;
        }
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            // Some snmp fields (Tcp MaxConn) are -1: keep only counters.
            if let Ok(v) = value.parse::<u64>() {
                out.insert(format!("{sect}.{name}"), v);
            }
        }
    }
    KStats(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text = "Inter-|   Receive                            |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0: 9000  120    0   7    0     0          0         0     5000      60    0    0    0     0       0          0\n";
        let m: BTreeMap<String, u64> = parse_dev(text).into_iter().collect();
        assert_eq!(m["Dev.eth0.RxPackets"], 120);
        assert_eq!(m["Dev.eth0.RxDrop"], 7);
        assert_eq!(m["Dev.lo.RxDrop"], 0);
        assert_eq!(m[SERVER_RX_DROP], 7);
    }

    #[test]
    fn parses_pairs_of_lines() {
        let text = "TcpExt: SyncookiesSent SyncookiesRecv ListenDrops\n\
                    TcpExt: 5 2 7\n\
                    Tcp: RtoAlgorithm MaxConn PassiveOpens\n\
                    Tcp: 1 -1 42\n";
        let s = parse(text);
        assert_eq!(s.get(SYNCOOKIES_SENT), 5);
        assert_eq!(s.get(SYNCOOKIES_RECV), 2);
        assert_eq!(s.get(LISTEN_DROPS), 7);
        assert_eq!(s.get(PASSIVE_OPENS), 42);
        assert!(!s.0.contains_key("Tcp.MaxConn"));
        let mut later = s.clone();
        later.0.insert(SYNCOOKIES_SENT.into(), 15);
        assert_eq!(later.delta(&s, SYNCOOKIES_SENT), 10);
        assert_eq!(later.delta(&s, "Tcp.Nope"), 0);
    }
}
