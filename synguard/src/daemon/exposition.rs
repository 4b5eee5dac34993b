//! The Prometheus text exposition of what the maps hold: one family per table row, the
//! interface as the label `device` (node_exporter's name for it); other labels are reason,
//! verdict, port, mode, kind, event, list and family: never a source address. Pure, so the format
//! is unit-tested; `metrics` serves it.

use std::{fmt::Write as _, path::Path};

use synguard_common::reason::{EVENTS, Event, REASONS, Reason, Verdict};

use crate::datapath::{
    conns::{self, TableState},
    counters::{self, Sample},
    enforced::{self, Enforced},
};

fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Tx => "tx",
        Verdict::Drop => "drop",
    }
}

/// What one interface's maps hold at scrape time.
pub struct Reading {
    pub sample: Sample,
    pub enforced: Enforced,
    pub conns: TableState,
}

/// Reads the instance pinned in `dir`; `None` if any of it cannot be read.
pub fn read(dir: &Path) -> Option<Reading> {
    Some(Reading {
        sample: counters::read_sample(dir).ok()?,
        enforced: enforced::read(dir).ok()?,
        // An instance of a release without the table: never trusted, nothing stamped.
        conns: conns::read_state(dir).unwrap_or_default(),
    })
}

/// One metric family: HELP and TYPE once, then a line per (labels, value).
fn family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    lines: &[(String, V)],
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in lines {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// A family with one value per interface (the label `device`, as node_exporter names it).
type PerIface = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Reading) -> u64,
);

/// The per-interface families before the per-port one.
const COUNTS: [PerIface; 3] = [
    (
        "synguard_cookies_sent_total",
        "counter",
        "SYN-ACKs with a SYN cookie sent from XDP.",
        |r| r.sample.event(Event::CookieSent),
    ),
    (
        "synguard_cookies_accepted_total",
        "counter",
        "Handshake ACKs whose cookie was valid (connections handed to the kernel).",
        |r| r.sample.event(Event::CookieAckAccepted),
    ),
    (
        "synguard_syns_protected_total",
        "counter",
        "SYNs to protected ports (the input of flood detection).",
        |r| r.sample.event(Event::SynProtected),
    ),
];

/// The per-interface families after the per-port one: state and what is enforced.
const STATE: [PerIface; 12] = [
    (
        "synguard_mode_switches_total",
        "counter",
        "Auto mode switches of cookies on or off.",
        |r| r.sample.mode_state.switches,
    ),
    (
        "synguard_cookies_active",
        "gauge",
        "1 while SYNs to protected ports are answered with cookies.",
        |r| r.sample.cookies_active as u64,
    ),
    (
        "synguard_syn_rate_per_second",
        "gauge",
        "SYNs per second to protected ports in the last closed 100 ms window, as flood \
         detection sees it (0 within 200 ms of the last SYN).",
        |r| r.sample.syn_rate_pps,
    ),
    (
        "synguard_monitor",
        "gauge",
        "1 in monitor mode: decisions are counted, nothing is dropped or answered.",
        |r| r.enforced.monitor as u64,
    ),
    (
        "synguard_syn_on_threshold_per_second",
        "gauge",
        "Auto mode turns cookies on at this SYN rate.",
        |r| r.enforced.syn_threshold as u64,
    ),
    (
        "synguard_syn_off_threshold_per_second",
        "gauge",
        "Auto mode turns cookies off once the SYN rate stayed below this for the hold time.",
        |r| r.enforced.syn_off_threshold as u64,
    ),
    (
        "synguard_protected_ports",
        "gauge",
        "Number of protected TCP ports.",
        |r| r.enforced.ports.len() as u64,
    ),
    (
        "synguard_source_rate_limit_per_second",
        "gauge",
        "SYNs per second one source may send (0: no limit).",
        |r| r.enforced.limits.source_rate_pps,
    ),
    (
        "synguard_reflection_cap_per_second",
        "gauge",
        "SYN-ACKs per second to one destination prefix (0: no cap).",
        |r| r.enforced.limits.reflect_cap_pps,
    ),
    (
        "synguard_conn_table_trusted",
        "gauge",
        "1 while the connection table is trusted: ACKs that belong to no socket skip the \
         kernel's socket lookup.",
        |r| r.conns.trusted as u64,
    ),
    (
        "synguard_conn_table_sockets",
        "gauge",
        "Sockets on protected ports the loader's last pass stamped in the connection table.",
        |r| r.conns.sockets,
    ),
    (
        "synguard_synack_window_scale",
        "gauge",
        "The window scale the SYN-ACKs advertise (the kernel's for new connections, or \
         --wscale).",
        |r| r.enforced.synack.wscale as u64,
    ),
];

fn per_iface(out: &mut String, ok: &[(&str, &Reading)], families: &[PerIface]) {
    for (name, kind, help, value) in families {
        let lines: Vec<_> = ok
            .iter()
            .map(|(i, r)| (format!("device=\"{i}\""), value(r)))
            .collect();
        family(out, name, kind, help, &lines);
    }
}

/// One line per interface and label value: `label` takes each of `values`.
fn labelled<T: Copy>(
    ok: &[(&str, &Reading)],
    values: &[T],
    label: impl Fn(T) -> String,
    value: impl Fn(&Reading, T) -> u64,
) -> Vec<(String, u64)> {
    ok.iter()
        .flat_map(|(i, r)| {
            values
                .iter()
                .map(|&v| (format!("device=\"{i}\",{}", label(v)), value(r, v)))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn per_reason(ok: &[(&str, &Reading)], bytes: bool) -> Vec<(String, u64)> {
    let label = |r: Reason| {
        format!(
            "reason=\"{}\",verdict=\"{}\"",
            r.name(),
            verdict_label(r.verdict())
        )
    };
    labelled(ok, &REASONS, label, |rd, r| {
        let c = rd.sample.counter(r);
        if bytes { c.bytes } else { c.packets }
    })
}

fn per_port(ok: &[(&str, &Reading)]) -> Vec<(String, u64)> {
    ok.iter()
        .flat_map(|(i, r)| {
            r.sample
                .port_syns
                .iter()
                .map(move |(p, n)| (format!("device=\"{i}\",port=\"{p}\""), *n))
        })
        .collect()
}

fn list_entries(r: &Reading, (list, family): (&str, &str)) -> u64 {
    let l = &r.enforced.lists;
    (match (list, family) {
        ("allow", "ipv4") => l.allow_v4,
        ("allow", "ipv6") => l.allow_v6,
        ("block", "ipv4") => l.block_v4,
        _ => l.block_v6,
    }) as u64
}

/// The families with a label besides the interface.
fn labelled_families(out: &mut String, ok: &[(&str, &Reading)]) {
    let modes = ["auto", "always"];
    let help = "The configured cookie mode (1 for the one in effect).";
    let lines = labelled(
        ok,
        &modes,
        |m| format!("mode=\"{m}\""),
        |r, m| (r.enforced.mode == m) as u64,
    );
    family(out, "synguard_mode", "gauge", help, &lines);
    let help = "Whose SYN cookies answer SYNs (1 for the kind in effect: own, or the kernel's, \
                also where --cookies auto fell back to them).";
    let lines = labelled(
        ok,
        &["kernel", "own"],
        |k| format!("cookies=\"{k}\""),
        |r, k| (r.enforced.cookies == k) as u64,
    );
    family(out, "synguard_cookies_kind", "gauge", help, &lines);
    let help = "Where the program finds the host's own addresses, by family (1 for where they \
                are: slots, the config's eight; table, the program's trie; unknown, every \
                destination counts as the host's).";
    let places = [
        ("ipv4", "slots"),
        ("ipv4", "table"),
        ("ipv4", "unknown"),
        ("ipv6", "slots"),
        ("ipv6", "table"),
        ("ipv6", "unknown"),
    ];
    let lines = labelled(
        ok,
        &places,
        |(f, h)| format!("family=\"{f}\",held=\"{h}\""),
        |r, (f, h)| {
            let a = &r.enforced.synack;
            let held = if f == "ipv4" {
                a.addresses_v4
            } else {
                a.addresses_v6
            };
            (held.label() == h) as u64
        },
    );
    family(out, "synguard_host_addresses", "gauge", help, &lines);
    let help = "The largest MSS the SYN-ACKs advertise: the interface's MTU less headers (it \
                follows a changed MTU within a second), at most the cookie's MSS table allows \
                (1460 over IPv4).";
    let lines = labelled(
        ok,
        &["ipv4", "ipv6"],
        |f| format!("family=\"{f}\""),
        |r, f| match f {
            "ipv4" => r.enforced.synack.mss_v4 as u64,
            _ => r.enforced.synack.mss_v6 as u64,
        },
    );
    family(out, "synguard_synack_mss", "gauge", help, &lines);
    let help = "Protected ports nothing listens on over the family (their SYNs are left to the \
                kernel, which resets them), as the daemon read the listening sockets within the \
                last second.";
    let lines = labelled(
        ok,
        &["ipv4", "ipv6"],
        |f| format!("family=\"{f}\""),
        |r, f| match f {
            "ipv4" => r.enforced.no_listener_v4.len() as u64,
            _ => r.enforced.no_listener_v6.len() as u64,
        },
    );
    family(
        out,
        "synguard_ports_without_listener",
        "gauge",
        help,
        &lines,
    );
    let kinds = [
        ("start", Event::CookieModeOn),
        ("end", Event::CookieModeOff),
    ];
    let help = "Floods auto mode detected (start) and saw end (end, also when it ended on the \
                clock with no SYN coming).";
    let lines = labelled(
        ok,
        &kinds,
        |(k, _)| format!("kind=\"{k}\""),
        |r, (_, e)| r.sample.event(e),
    );
    family(out, "synguard_flood_events_total", "counter", help, &lines);
    let help = "Events the XDP program counted, by name.";
    let lines = labelled(
        ok,
        &EVENTS,
        |e| format!("event=\"{}\"", e.name()),
        |r, e| r.sample.event(e),
    );
    family(out, "synguard_events_total", "counter", help, &lines);
    let lists = [
        ("allow", "ipv4"),
        ("allow", "ipv6"),
        ("block", "ipv4"),
        ("block", "ipv6"),
    ];
    let help = "Prefixes in the allow and block lists.";
    let label = |(l, f): (&str, &str)| format!("list=\"{l}\",family=\"{f}\"");
    let lines = labelled(ok, &lists, label, list_entries);
    family(out, "synguard_list_entries", "gauge", help, &lines);
    let help = "Auto mode keeps cookies on this long after the SYN rate fell below the off \
                threshold.";
    let lines: Vec<_> = ok
        .iter()
        .map(|(i, r)| (format!("device=\"{i}\""), r.enforced.hold_s))
        .collect();
    family(out, "synguard_hold_seconds", "gauge", help, &lines);
}

/// The exposition text for every interface; an interface whose maps cannot be read shows only
/// as `synguard_up 0`. Pure, so the format is unit-tested.
pub fn render(readings: &[(&str, Option<Reading>)]) -> String {
    let mut out = String::new();
    let up: Vec<_> = readings
        .iter()
        .map(|(i, r)| (format!("device=\"{i}\""), r.is_some() as u64))
        .collect();
    let up_help = "1 if the interface's pinned maps could be read.";
    family(&mut out, "synguard_up", "gauge", up_help, &up);
    let ok: Vec<(&str, &Reading)> = readings
        .iter()
        .filter_map(|(i, r)| r.as_ref().map(|r| (*i, r)))
        .collect();
    let help = "Packets the XDP program handled, by reason and verdict.";
    let lines = per_reason(&ok, false);
    family(&mut out, "synguard_packets_total", "counter", help, &lines);
    let help = "Bytes of the packets the XDP program handled, by reason and verdict.";
    let lines = per_reason(&ok, true);
    family(&mut out, "synguard_bytes_total", "counter", help, &lines);
    per_iface(&mut out, &ok, &COUNTS);
    let help = "SYNs per protected port.";
    let lines = per_port(&ok);
    family(
        &mut out,
        "synguard_port_syns_total",
        "counter",
        help,
        &lines,
    );
    per_iface(&mut out, &ok, &STATE);
    labelled_families(&mut out, &ok);
    let version = [(format!("version=\"{}\"", env!("CARGO_PKG_VERSION")), 1)];
    let help = "Always 1; the labels say which synguard is running.";
    family(&mut out, "synguard_build_info", "gauge", help, &version);
    out
}

/// The process's reload families (one value each, no labels): whether the last reload (or the
/// start) succeeded, and when.
const RELOAD: [(&str, &str); 2] = [
    (
        "synguard_config_last_reload_successful",
        "1 if the last configuration reload (or the start) was applied, 0 if it was refused.",
    ),
    (
        "synguard_config_last_reload_timestamp_seconds",
        "Unix time of the last configuration reload (or the start), applied or refused.",
    ),
];

/// The reload families for (successful, unix seconds). Pure, so the format is unit-tested.
pub fn render_reload((ok, unix_s): (bool, u64)) -> String {
    let mut out = String::new();
    for ((name, help), value) in RELOAD.iter().zip([ok as u64, unix_s]) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use synguard_common::{
        maps::{Config, Counter, MODE_ALWAYS, ModeState, ReadyState},
        policy::Policy,
        reason::{EVENT_SLOTS, REASON_SLOTS},
    };

    fn reading() -> Reading {
        let config = Config {
            mode: MODE_ALWAYS,
            syn_on_pps: 1000,
            syn_off_pps: 500,
            hold_ns: 2_500_000_000,
            mss_v4: 1460,
            mss_v6: 1440,
            wscale: 7,
            ..Default::default()
        };
        let policy = Policy {
            monitor: 1,
            block_v6: 4,
            ..Default::default()
        };
        Reading {
            sample: sample(),
            enforced: Enforced::from_maps(&config, &policy, vec![80, 443]),
            conns: TableState {
                trusted: true,
                sockets: 12,
            },
        }
    }

    fn sample() -> Sample {
        let mut verdicts = vec![Counter::default(); REASON_SLOTS as usize];
        verdicts[Reason::TxSynAckCookie as usize] = Counter {
            packets: 7,
            bytes: 420,
        };
        let mut events = vec![0; EVENT_SLOTS as usize];
        events[Event::CookieSent as usize] = 7;
        events[Event::CookieModeOff as usize] = 2;
        Sample {
            iface: "eth0".into(),
            time_ns: 1,
            mode: MODE_ALWAYS,
            cookies_active: true,
            ready: ReadyState::new(true, 0),
            mode_state: ModeState {
                switches: 3,
                ..Default::default()
            },
            syn_rate_pps: 0,
            verdicts,
            events,
            port_syns: [(80, 9)].into(),
        }
    }

    #[test]
    fn renders_counters_with_interface_reason_and_verdict() {
        let text = render(&[("eth0", Some(reading())), ("eth1", None)]);
        assert!(text.contains(
            "synguard_packets_total{device=\"eth0\",reason=\"tx_synack_cookie\",verdict=\"tx\"} 7\n"
        ));
        assert!(text.contains(
            "synguard_bytes_total{device=\"eth0\",reason=\"tx_synack_cookie\",verdict=\"tx\"} 420\n"
        ));
        assert!(text.contains("synguard_cookies_sent_total{device=\"eth0\"} 7\n"));
        assert!(text.contains("synguard_mode_switches_total{device=\"eth0\"} 3\n"));
        assert!(text.contains("synguard_mode{device=\"eth0\",mode=\"always\"} 1\n"));
        assert!(text.contains("synguard_cookies_kind{device=\"eth0\",cookies=\"kernel\"} 1\n"));
        assert!(text.contains("synguard_cookies_kind{device=\"eth0\",cookies=\"own\"} 0\n"));
        assert!(text.contains("synguard_up{device=\"eth1\"} 0\n"));
        assert!(
            !text.contains("device=\"eth1\",reason"),
            "unreadable iface has no counters"
        );
        for line in [
            "synguard_monitor{device=\"eth0\"} 1\n",
            "synguard_syn_on_threshold_per_second{device=\"eth0\"} 1000\n",
            "synguard_syn_off_threshold_per_second{device=\"eth0\"} 500\n",
            "synguard_hold_seconds{device=\"eth0\"} 2.5\n",
            "synguard_protected_ports{device=\"eth0\"} 2\n",
            "synguard_list_entries{device=\"eth0\",list=\"block\",family=\"ipv6\"} 4\n",
            "synguard_host_addresses{device=\"eth0\",family=\"ipv4\",held=\"unknown\"} 1\n",
            "synguard_host_addresses{device=\"eth0\",family=\"ipv4\",held=\"table\"} 0\n",
            "synguard_list_entries{device=\"eth0\",list=\"allow\",family=\"ipv4\"} 0\n",
            "synguard_flood_events_total{device=\"eth0\",kind=\"end\"} 2\n",
            "synguard_events_total{device=\"eth0\",event=\"cookie_sent\"} 7\n",
            "synguard_port_syns_total{device=\"eth0\",port=\"80\"} 9\n",
            "synguard_conn_table_trusted{device=\"eth0\"} 1\n",
            "synguard_conn_table_sockets{device=\"eth0\"} 12\n",
            "synguard_synack_window_scale{device=\"eth0\"} 7\n",
            "synguard_synack_mss{device=\"eth0\",family=\"ipv4\"} 1460\n",
            "synguard_synack_mss{device=\"eth0\",family=\"ipv6\"} 1440\n",
            "synguard_ports_without_listener{device=\"eth0\",family=\"ipv4\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("iface="), "the interface label is device");
        // Each family is described exactly once.
        assert_eq!(
            text.matches("# TYPE synguard_packets_total counter")
                .count(),
            1
        );
    }

    #[test]
    fn renders_the_last_reload() {
        let text = render_reload((false, 1_700_000_000));
        assert!(text.contains("\nsynguard_config_last_reload_successful 0\n"));
        assert!(text.contains("\nsynguard_config_last_reload_timestamp_seconds 1700000000\n"));
        assert_eq!(text.matches("# TYPE").count(), 2);
    }
}
