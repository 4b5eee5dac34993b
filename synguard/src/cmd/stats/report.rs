//! What `synguard stats` prints of a sample: rates between two samples, as text like
//! xdp-bench or as one JSON object per line (a contract with the e2e tests).

use std::collections::BTreeMap;

use serde::Serialize;
use synguard_common::reason::{EVENTS, REASONS, Verdict};

use crate::datapath::counters::{Sample, Totals};

/// Per-second rate of a counter between two samples; zero without a previous sample or when
/// the counter went backwards (a new instance replaced the old one).
fn rate(now: u64, before: Option<u64>, interval_s: f64) -> f64 {
    match before {
        Some(b) if interval_s > 0.0 && now >= b => (now - b) as f64 / interval_s,
        _ => 0.0,
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct JsonVerdict {
    pub packets: u64,
    pub bytes: u64,
    pub pps: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct JsonEvent {
    pub total: u64,
    pub rate: f64,
}

/// The `--json` line. Field names and shapes are a contract with the e2e tests.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    pub iface: String,
    pub time_ns: u64,
    pub interval_s: f64,
    pub mode: &'static str,
    pub cookies_active: bool,
    pub syn_rate_pps: u64,
    pub verdicts: BTreeMap<&'static str, JsonVerdict>,
    pub events: BTreeMap<&'static str, JsonEvent>,
    /// SYNs per protected port: total and per second.
    pub ports: BTreeMap<String, JsonEvent>,
    pub totals: Totals,
}

impl Report {
    /// The report for `cur`, with rates against `prev` (zero when there is none).
    pub fn new(prev: Option<&Sample>, cur: &Sample) -> Self {
        let interval_s = prev
            .map(|p| cur.time_ns.saturating_sub(p.time_ns) as f64 / 1e9)
            .unwrap_or(0.0);
        let verdicts = REASONS
            .iter()
            .map(|&r| {
                let c = cur.counter(r);
                let pps = rate(c.packets, prev.map(|p| p.counter(r).packets), interval_s);
                (
                    r.name(),
                    JsonVerdict {
                        packets: c.packets,
                        bytes: c.bytes,
                        pps,
                    },
                )
            })
            .collect();
        let events = EVENTS
            .iter()
            .map(|&e| {
                let total = cur.event(e);
                let rate = rate(total, prev.map(|p| p.event(e)), interval_s);
                (e.name(), JsonEvent { total, rate })
            })
            .collect();
        let ports = cur
            .port_syns
            .iter()
            .map(|(&port, &total)| {
                let before = prev.and_then(|p| p.port_syns.get(&port).copied());
                let rate = rate(total, before, interval_s);
                (port.to_string(), JsonEvent { total, rate })
            })
            .collect();
        Report {
            iface: cur.iface.clone(),
            time_ns: cur.time_ns,
            interval_s,
            mode: cur.mode_name(),
            cookies_active: cur.cookies_active,
            syn_rate_pps: cur.syn_rate_pps,
            verdicts,
            events,
            ports,
            totals: cur.totals(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report serialises")
    }

    /// Human-readable table in the style of xdp-bench: one row per reason that ever counted a
    /// packet, then a summary per verdict, then events and mode.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let cookies = if self.cookies_active { "ON" } else { "off" };
        let _ = writeln!(
            out,
            "synguard on {}: {} mode, cookies {cookies}, SYN rate {} pps",
            self.iface, self.mode, self.syn_rate_pps
        );
        let _ = writeln!(
            out,
            "  {:<6} {:<28} {:>14} {:>16}",
            "", "reason", "pps", "packets"
        );
        let mut sums: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
        for r in REASONS {
            let v = &self.verdicts[r.name()];
            let verdict = verdict_name(r.verdict());
            let s = sums.entry(verdict).or_default();
            s.0 += v.pps;
            s.1 += v.packets;
            if v.packets != 0 {
                let _ = writeln!(
                    out,
                    "  {verdict:<6} {:<28} {:>14} {:>16}",
                    r.name(),
                    group(v.pps.round() as u64),
                    group(v.packets)
                );
            }
        }
        for verdict in ["PASS", "TX", "DROP"] {
            let (pps, packets) = sums.get(verdict).copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "  {verdict:<6} {:<28} {:>14} {:>16}",
                "total",
                group(pps.round() as u64),
                group(packets)
            );
        }
        let rows = self
            .ports
            .iter()
            .map(|(port, p)| ("port", format!("{port} SYNs"), p));
        let events = EVENTS
            .iter()
            .map(|e| ("event", e.name().to_string(), &self.events[e.name()]));
        for (kind, name, ev) in rows.chain(events) {
            let _ = writeln!(
                out,
                "  {kind:<6} {name:<28} {:>14} {:>16}",
                group(ev.rate.round() as u64),
                group(ev.total)
            );
        }
        out
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Tx => "TX",
        Verdict::Drop => "DROP",
    }
}

/// 1234567 -> "1,234,567": big counters are read at a glance.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use synguard_common::{
        maps::{Counter, MODE_AUTO, ModeState, ReadyState},
        reason::{EVENT_SLOTS, Event, REASON_SLOTS, Reason},
    };

    fn sample(time_ns: u64, syn_tx: u64, bad_ack: u64, sent: u64) -> Sample {
        let mut verdicts = vec![Counter::default(); REASON_SLOTS as usize];
        verdicts[Reason::TxSynAckCookie as usize] = Counter {
            packets: syn_tx,
            bytes: syn_tx * 60,
        };
        verdicts[Reason::DropAckBadCookie as usize] = Counter {
            packets: bad_ack,
            bytes: bad_ack * 54,
        };
        verdicts[Reason::PassEstablished as usize] = Counter {
            packets: 7,
            bytes: 700,
        };
        let mut events = vec![0; EVENT_SLOTS as usize];
        events[Event::CookieSent as usize] = sent;
        Sample {
            iface: "veth0".into(),
            time_ns,
            mode: MODE_AUTO,
            cookies_active: true,
            ready: ReadyState::new(true, 0),
            mode_state: ModeState {
                cookies_wanted: 1,
                last_rate_pps: 5000,
                ..Default::default()
            },
            syn_rate_pps: 4000,
            verdicts,
            events,
            port_syns: [(80, sent)].into(),
        }
    }

    #[test]
    fn first_report_has_zero_rates() {
        let r = Report::new(None, &sample(1_000, 100, 10, 100));
        assert_eq!(r.interval_s, 0.0);
        assert_eq!(r.verdicts["tx_synack_cookie"].packets, 100);
        assert_eq!(r.verdicts["tx_synack_cookie"].pps, 0.0);
        assert_eq!(r.events["cookie_sent"].rate, 0.0);
        assert_eq!(
            r.totals,
            Totals {
                pass: 7,
                tx: 100,
                drop: 10
            }
        );
    }

    #[test]
    fn rates_over_the_interval() {
        let a = sample(1_000_000_000, 100, 10, 100);
        let b = sample(3_000_000_000, 300, 50, 300);
        let r = Report::new(Some(&a), &b);
        assert_eq!(r.interval_s, 2.0);
        assert_eq!(r.verdicts["tx_synack_cookie"].pps, 100.0);
        assert_eq!(r.verdicts["drop_ack_bad_cookie"].pps, 20.0);
        assert_eq!(r.verdicts["pass_established"].pps, 0.0);
        assert_eq!(r.events["cookie_sent"].rate, 100.0);
        // A counter that went backwards (instance restarted) reads as zero, not as garbage.
        let r = Report::new(Some(&b), &sample(4_000_000_000, 5, 0, 0));
        assert_eq!(r.verdicts["tx_synack_cookie"].pps, 0.0);
    }

    #[test]
    fn json_has_the_contracted_shape() {
        let r = Report::new(None, &sample(42, 1, 2, 3));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        let obj = v.as_object().unwrap();
        let keys: Vec<_> = obj.keys().map(String::as_str).collect();
        for k in [
            "iface",
            "time_ns",
            "interval_s",
            "mode",
            "cookies_active",
            "syn_rate_pps",
            "verdicts",
            "events",
            "ports",
            "totals",
        ] {
            assert!(keys.contains(&k), "missing {k}");
        }
        assert_eq!(obj.len(), 10);
        assert_eq!(
            v["ports"]["80"]["total"],
            v["events"]["cookie_sent"]["total"]
        );
        assert_eq!(v["iface"], "veth0");
        assert_eq!(v["time_ns"], 42);
        assert_eq!(v["mode"], "auto");
        assert_eq!(v["cookies_active"], true);
        assert_eq!(v["syn_rate_pps"], 4000);
        assert!(v["interval_s"].is_f64());
        let verdicts = v["verdicts"].as_object().unwrap();
        assert_eq!(
            verdicts.len(),
            REASONS.len(),
            "every reason, zeros included"
        );
        for r in REASONS {
            let e = &verdicts[r.name()];
            assert!(e["packets"].is_u64() && e["bytes"].is_u64() && e["pps"].is_f64());
        }
        assert_eq!(v["verdicts"]["drop_ack_bad_cookie"]["bytes"], 108);
        let events = v["events"].as_object().unwrap();
        assert_eq!(events.len(), EVENTS.len());
        assert_eq!(v["events"]["cookie_sent"]["total"], 3);
        assert!(v["events"]["cookie_sent"]["rate"].is_f64());
        assert_eq!(v["totals"]["tx"], 1);
        assert_eq!(v["totals"]["drop"], 2);
        assert_eq!(v["totals"]["pass"], 7);
    }

    #[test]
    fn text_shows_only_counting_reasons_and_all_totals() {
        let a = sample(0, 0, 0, 0);
        let b = sample(1_000_000_000, 1_234_567, 0, 1_234_567);
        let text = Report::new(Some(&a), &b).to_text();
        assert!(
            text.contains("auto mode, cookies ON, SYN rate 4000 pps"),
            "{text}"
        );
        assert!(text.contains("tx_synack_cookie"), "{text}");
        assert!(text.contains("1,234,567"), "{text}");
        assert!(!text.contains("drop_syn_fin"), "{text}");
        for v in ["PASS", "TX", "DROP"] {
            assert!(
                text.lines()
                    .any(|l| l.trim_start().starts_with(v) && l.contains("total"))
            );
        }
        assert!(text.contains("cookie_mode_on"));
    }

    #[test]
    fn digit_grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }
}
