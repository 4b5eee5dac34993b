//! `synguard stats`: reads the pinned counters of a running instance and prints them like
//! xdp-bench, or as one JSON object per line for scripts and the e2e tests.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use aya::maps::{Array, Map, MapData, MapError, PerCpuArray};
use serde::Serialize;
use synguard_common::{
    maps::{Config, Counter, MODE_ALWAYS, MODE_AUTO, ModeState, ReadyState, names},
    reason::{EVENT_SLOTS, EVENTS, Event, REASON_SLOTS, REASONS, Reason, Verdict},
};
use thiserror::Error;

use crate::{diagnose, mode::monotonic_ns};

#[derive(Debug, Error)]
pub enum StatsError {
    #[error(
        "no synguard instance is running (nothing under {}); note that a bpffs mounted by \
         `ip netns exec` is visible only inside that command",
        .0.display()
    )]
    NoInstance(PathBuf),
    #[error(
        "no synguard instance on {iface} (no {}): is `synguard run --iface {iface}` running?",
        dir.display()
    )]
    NoInstanceOn { iface: String, dir: PathBuf },
    #[error("several synguard instances are running ({}): choose one with --iface", .0.join(", "))]
    Ambiguous(Vec<String>),
    #[error("reading pinned counters needs root or CAP_BPF ({} refused)", .0.display())]
    NotPermitted(PathBuf),
    #[error("cannot open pinned map {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error("cannot read pinned map {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Schema(#[from] crate::pin::PinError),
    #[error("cannot list {}", path.display())]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The instance directory to read: the one for `iface`, or the only one there is.
pub fn find_instance(pin_base: &Path, iface: Option<&str>) -> Result<PathBuf, StatsError> {
    if let Some(iface) = iface {
        let dir = pin_base.join(iface);
        return if dir.is_dir() {
            Ok(dir)
        } else {
            Err(StatsError::NoInstanceOn {
                iface: iface.to_string(),
                dir,
            })
        };
    }
    let entries = match fs::read_dir(pin_base) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StatsError::NoInstance(pin_base.to_path_buf()));
        }
        Err(source) => {
            return Err(StatsError::List {
                path: pin_base.to_path_buf(),
                source,
            });
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    match names.len() {
        0 => Err(StatsError::NoInstance(pin_base.to_path_buf())),
        1 => Ok(pin_base.join(&names[0])),
        _ => Err(StatsError::Ambiguous(names)),
    }
}

/// One reading of every counter, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub iface: String,
    /// CLOCK_MONOTONIC when the sample was taken (the clock of `bpf_ktime_get_ns`).
    pub time_ns: u64,
    /// `MODE_ALWAYS` / `MODE_AUTO` from the config map.
    pub mode: u32,
    /// The loader has told the program that the kernel accepts cookies.
    pub cookies_active: bool,
    pub mode_state: ModeState,
    /// Indexed by `Reason as usize`, `REASON_SLOTS` long.
    pub verdicts: Vec<Counter>,
    /// Indexed by `Event as usize`, `EVENT_SLOTS` long.
    pub events: Vec<u64>,
    /// SYNs per protected port, summed over CPUs (the program's per-port counters).
    pub port_syns: BTreeMap<u16, u64>,
}

impl Sample {
    pub fn counter(&self, reason: Reason) -> Counter {
        self.verdicts[reason.index() as usize]
    }

    pub fn event(&self, event: Event) -> u64 {
        self.events[event.index() as usize]
    }

    pub fn mode_name(&self) -> &'static str {
        mode_name(self.mode)
    }

    /// Packets per verdict (pass, tx, drop) over every reason.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for r in REASONS {
            let p = self.counter(r).packets;
            match r.verdict() {
                Verdict::Pass => t.pass += p,
                Verdict::Tx => t.tx += p,
                Verdict::Drop => t.drop += p,
            }
        }
        t
    }
}

pub fn mode_name(mode: u32) -> &'static str {
    match mode {
        MODE_ALWAYS => "always",
        MODE_AUTO => "auto",
        _ => "off",
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub pass: u64,
    pub tx: u64,
    pub drop: u64,
}

fn open(dir: &Path, name: &str) -> Result<Map, StatsError> {
    let path = dir.join(name);
    let wrap = |source: MapError| {
        if diagnose::is_permission_error(&source) {
            StatsError::NotPermitted(path.clone())
        } else {
            StatsError::Open {
                path: path.clone(),
                source,
            }
        }
    };
    Map::from_map_data(MapData::from_pin(&path).map_err(wrap)?).map_err(wrap)
}

fn read_err(dir: &Path, name: &str) -> impl Fn(MapError) -> StatsError {
    let path = dir.join(name);
    move |source| StatsError::Read {
        path: path.clone(),
        source,
    }
}

/// The single entry of a pinned array map (config, mode, ready state).
pub fn read_single<V: aya::Pod>(dir: &Path, name: &str) -> Result<V, StatsError> {
    let map: Array<_, V> = Array::try_from(open(dir, name)?).map_err(read_err(dir, name))?;
    map.get(&0, 0).map_err(read_err(dir, name))
}

fn read_per_cpu<V: aya::Pod + Default>(
    dir: &Path,
    name: &str,
    slots: u32,
    add: impl Fn(&mut V, &V),
) -> Result<Vec<V>, StatsError> {
    let map: PerCpuArray<_, V> =
        PerCpuArray::try_from(open(dir, name)?).map_err(read_err(dir, name))?;
    (0..slots.min(map.len()))
        .map(|i| {
            let per_cpu = map.get(&i, 0).map_err(read_err(dir, name))?;
            let mut sum = V::default();
            per_cpu.iter().for_each(|v| add(&mut sum, v));
            Ok(sum)
        })
        .chain((map.len()..slots).map(|_| Ok(V::default())))
        .collect()
}

/// Reads every pinned counter of the instance in `dir` (e.g. /sys/fs/bpf/synguard/veth0).
pub fn read_sample(dir: &Path) -> Result<Sample, StatsError> {
    // Another schema's maps may have the same names and mean something else.
    crate::pin::check_schema(dir)?;
    let config: Config = read_single(dir, names::CONFIG)?;
    let ready: ReadyState = read_single(dir, names::READY)?;
    let mode_state: ModeState = read_single(dir, names::MODE)?;
    let verdicts = read_per_cpu(dir, names::VERDICTS, REASON_SLOTS, |s: &mut Counter, v| {
        s.packets += v.packets;
        s.bytes += v.bytes;
    })?;
    let events = read_per_cpu(dir, names::EVENTS, EVENT_SLOTS, |s: &mut u64, v| *s += v)?;
    let port_syns = read_port_syns(dir)?;
    Ok(Sample {
        iface: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        time_ns: monotonic_ns(),
        mode: config.mode,
        cookies_active: ready.kernel_ready != 0,
        mode_state,
        verdicts,
        events,
        port_syns,
    })
}

/// SYNs per protected port. The protected set comes from the port map each time (a reload can
/// change it); a program without per-port counters (an older object) has none.
fn read_port_syns(dir: &Path) -> Result<BTreeMap<u16, u64>, StatsError> {
    let mut out = BTreeMap::new();
    let Ok(map) = open(dir, synguard_common::policy::names::PORT_SYNS) else {
        return Ok(out);
    };
    let syns: PerCpuArray<_, u64> =
        PerCpuArray::try_from(map).map_err(read_err(dir, "SG_PORT_SYNS"))?;
    let ports: aya::maps::Array<_, synguard_common::maps::PortConfig> =
        aya::maps::Array::try_from(open(dir, names::PORTS)?)
            .map_err(read_err(dir, names::PORTS))?;
    for port in 0..=u16::MAX {
        if ports
            .get(&(port as u32), 0)
            .map_err(read_err(dir, names::PORTS))?
            .flags
            != 0
        {
            let per_cpu = syns
                .get(&(port as u32), 0)
                .map_err(read_err(dir, "SG_PORT_SYNS"))?;
            out.insert(port, per_cpu.iter().sum());
        }
    }
    Ok(out)
}

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
            syn_rate_pps: cur.mode_state.last_rate_pps,
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
        for (port, p) in &self.ports {
            let _ = writeln!(
                out,
                "  {:<6} {:<28} {:>14} {:>16}",
                "port",
                format!("{port} SYNs"),
                group(p.rate.round() as u64),
                group(p.total)
            );
        }
        for e in EVENTS {
            let ev = &self.events[e.name()];
            let _ = writeln!(
                out,
                "  {:<6} {:<28} {:>14} {:>16}",
                "event",
                e.name(),
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
            mode_state: ModeState {
                cookies_wanted: 1,
                last_rate_pps: 5000,
                ..Default::default()
            },
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
        assert_eq!(v["syn_rate_pps"], 5000);
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
            text.contains("auto mode, cookies ON, SYN rate 5000 pps"),
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

    #[test]
    fn instance_discovery() {
        let base = std::env::temp_dir().join(format!("synguard-find-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        assert!(matches!(
            find_instance(&base, None),
            Err(StatsError::NoInstance(_))
        ));
        fs::create_dir_all(base.join("veth0")).unwrap();
        assert_eq!(find_instance(&base, None).unwrap(), base.join("veth0"));
        let e = find_instance(&base, Some("eth9")).unwrap_err();
        assert!(
            e.to_string().contains("no synguard instance on eth9"),
            "{e}"
        );
        fs::create_dir_all(base.join("veth1")).unwrap();
        let e = find_instance(&base, None).unwrap_err();
        assert!(e.to_string().contains("veth0, veth1"), "{e}");
        assert_eq!(
            find_instance(&base, Some("veth1")).unwrap(),
            base.join("veth1")
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn reading_a_dir_without_pins_fails_clearly() {
        let e = read_sample(Path::new("/nonexistent/synguard/x")).unwrap_err();
        assert!(e.to_string().contains("SG_CONFIG"), "{e}");
    }
}
