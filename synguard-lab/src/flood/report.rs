//! Aggregates the runs of each (scenario, defence) into min/median/max, computes the ratios the
//! claims rest on, prints the table and writes the JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::flood::layout::Layout;
use crate::flood::measure::{METRICS, RunConfig, RunResult};

/// min / median / max over runs; `None` where no run had a value.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Spread {
    pub min: Option<f64>,
    pub median: Option<f64>,
    pub max: Option<f64>,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().flatten().collect();
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        // Lower median for an even count: a value that was measured.
        Spread {
            min: v.first().copied(),
            median: Some(v[(v.len() - 1) / 2]),
            max: v.last().copied(),
        }
    }
}

/// Every run of one scenario against one defence.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub scenario: String,
    pub defence: String,
    /// `flood::layout::Layout::name`: where the server's receive path ran.
    pub layout: String,
    pub metrics: BTreeMap<String, Spread>,
    pub drops_by_reason: BTreeMap<String, Spread>,
    pub runs: Vec<RunResult>,
}

impl Cell {
    pub fn new(scenario: &str, defence: &str, runs: Vec<RunResult>) -> Cell {
        let metrics = METRICS
            .iter()
            .map(|k| {
                let s = Spread::of(runs.iter().map(|r| r.metrics.get(*k).copied().flatten()));
                (k.to_string(), s)
            })
            .collect();
        let reasons: std::collections::BTreeSet<&String> =
            runs.iter().flat_map(|r| r.drops_by_reason.keys()).collect();
        let drops_by_reason = reasons
            .into_iter()
            .map(|k| {
                let s = Spread::of(
                    runs.iter()
                        .map(|r| Some(r.drops_by_reason.get(k).copied().unwrap_or(0.0))),
                );
                (k.clone(), s)
            })
            .collect();
        Cell {
            scenario: scenario.to_string(),
            defence: defence.to_string(),
            layout: Layout::OneCpu.name().to_string(),
            metrics,
            drops_by_reason,
            runs,
        }
    }

    /// The cell as measured in `layout`.
    pub fn on(self, layout: Layout) -> Cell {
        Cell {
            layout: layout.name().to_string(),
            ..self
        }
    }

    pub fn median(&self, metric: &str) -> Option<f64> {
        self.metrics.get(metric).and_then(|s| s.median)
    }
}

/// synguard's median against another defence's, for one scenario and metric.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub scenario: String,
    pub layout: String,
    pub metric: String,
    pub synguard: String,
    pub other: String,
    /// synguard / other.
    pub ratio: Option<f64>,
    /// `other` is the floor that did with its frames what synguard did with most of them
    /// ([`same_fate_floor`]): the comparison that measures synguard's own work.
    pub same_fate: bool,
}

/// The floor whose frames met the fate most of synguard's met: answered (XDP_TX) or dropped.
/// Under the live generator the fate alone moves a bare program's cost per packet by about
/// 2x: the same swap of addresses cost 46 ns returning XDP_TX and 96 ns returning XDP_DROP
/// (docs/measuring.md, "A dropped frame costs more than a transmitted one"), so a program that
/// drops is measured against the floor that drops. `None` where synguard neither answered nor
/// dropped (every frame passed).
pub fn same_fate_floor(sg: &Cell) -> Option<&'static str> {
    let replies = sg.median("replies_pps").unwrap_or(0.0);
    let drops = sg.median("drops_pps").unwrap_or(0.0);
    if replies <= 0.0 && drops <= 0.0 {
        return None;
    }
    Some(if replies >= drops {
        "floor-xdp-tx"
    } else {
        "floor-xdp-drop"
    })
}

/// What each comparison is made on. Against the XDP_DROP floor, which answers nothing, the rate
/// at which the server's interface took frames in; against everything else, the replies (SYN-ACKs)
/// per second and that intake rate. Against both floors also the cost per packet: in the XDP
/// program (bpf_stats) and on the server's receive thread (its CPU time per arrived frame),
/// which stay comparable when the machine's other load leaves the server CPU partly idle.
fn ratio_metrics(other: &str) -> &'static [&'static str] {
    match other {
        "floor-xdp-drop" => &["server_rx_pps", "xdp_ns_per_pkt", "server_ns_per_pkt"],
        "floor-xdp-tx" => &[
            "replies_pps",
            "server_rx_pps",
            "xdp_ns_per_pkt",
            "server_ns_per_pkt",
        ],
        _ => &["replies_pps", "server_rx_pps"],
    }
}

pub fn ratios(cells: &[Cell]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for sg in cells.iter().filter(|c| c.defence.starts_with("synguard")) {
        let fate = same_fate_floor(sg);
        for other in cells.iter().filter(|c| {
            c.scenario == sg.scenario && c.layout == sg.layout && !c.defence.starts_with("synguard")
        }) {
            for &metric in ratio_metrics(&other.defence) {
                let ratio = match (sg.median(metric), other.median(metric)) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                };
                out.push(Ratio {
                    scenario: sg.scenario.clone(),
                    layout: sg.layout.clone(),
                    metric: metric.to_string(),
                    synguard: sg.defence.clone(),
                    other: other.defence.clone(),
                    ratio,
                    same_fate: fate == Some(other.defence.as_str()),
                });
            }
        }
    }
    out
}

/// The whole result file.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub config: RunConfig,
    pub runs_per_cell: usize,
    pub cells: Vec<Cell>,
    pub ratios: Vec<Ratio>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            kernel,
        }
    }
}

fn fmt_rate(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1e6 => format!("{:.2}M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.0}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
    }
}

/// Fewer connections than this completed during a flood make its latency percentiles a
/// handful's (p99 of 7 is their maximum), mostly of connections made as the flood started or
/// ended: the table stars them.
pub const FEW_CONNECTS: f64 = 50.0;

/// Whether `c`'s median run completed fewer than [`FEW_CONNECTS`] connections during the flood.
fn few_connects(c: &Cell) -> bool {
    c.median("connect_samples")
        .is_some_and(|n| n < FEW_CONNECTS)
}

/// A latency percentile of `c` in ms, starred when its median run had few connections.
fn fmt_latency(c: &Cell, metric: &str) -> String {
    let v = fmt_num(c.median(metric), 2);
    if few_connects(c) && v != "-" {
        format!("{v}*")
    } else {
        v
    }
}

fn fmt_num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// The XDP_DROP floor's cell beside `c` (same scenario and layout).
fn drop_floor<'a>(report: &'a Report, c: &Cell) -> Option<&'a Cell> {
    report
        .cells
        .iter()
        .find(|f| f.defence == "floor-xdp-drop" && f.scenario == c.scenario && f.layout == c.layout)
}

/// Medians, with [min..max] for the rates the claims rest on. Columns: the server's CPUs, offered
/// by the generator and that rate over what the XDP_DROP floor absorbed in the same run (`off/dr`:
/// at 2 or more the sender is not what limits the floor), arrived at (absorbed by) the server,
/// lost at the server's full receive ring, answered (replies), dropped by synguard, XDP ns per
/// packet (bpf_stats), the server receive threads' ns per arrived packet and busy share, the
/// generator's CPU ns per frame sent, `synguard run`'s own CPU share, legitimate success,
/// connections completed per second and connect latency, the established stream. A latency
/// percentile from fewer than [`FEW_CONNECTS`] connections is starred (see the footnote).
pub fn table(report: &Report) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<11} {:<4} {:<16} {:>7} {:>6} {:>7} {:>7} {:>17} {:>6} {:>6} {:>6} {:>4} {:>6} {:>4} \
         {:>6} {:>6} {:>7} {:>8} {:>5}",
        "scenario",
        "cpus",
        "defence",
        "offered",
        "off/dr",
        "arrived",
        "lost",
        "answered [min..max]",
        "drops",
        "xdp ns",
        "srv ns",
        "srv%",
        "gen ns",
        "sg%",
        "legit%",
        "conn/s",
        "p50 ms",
        "p99 ms",
        "estMb"
    );
    for c in &report.cells {
        let m = |k: &str| c.metrics.get(k).copied().unwrap_or_default();
        let r = m("replies_pps");
        let floor = drop_floor(report, c).and_then(|f| f.median("server_rx_pps"));
        let off_dr = match (m("offered_pps").median, floor) {
            (Some(o), Some(f)) if f > 0.0 => Some(o / f),
            _ => None,
        };
        let _ = writeln!(
            t,
            "{:<11} {:<4} {:<16} {:>7} {:>6} {:>7} {:>7} {:>5} [{}..{}] {:>6} {:>6} {:>6} {:>4} \
             {:>6} {:>4} {:>6} {:>6} {:>7} {:>8} {:>5}",
            c.scenario,
            c.layout,
            c.defence,
            fmt_rate(m("offered_pps").median),
            fmt_num(off_dr, 2),
            fmt_rate(m("server_rx_pps").median),
            fmt_rate(m("lost_ring_pps").median),
            fmt_rate(r.median),
            fmt_rate(r.min),
            fmt_rate(r.max),
            fmt_rate(m("drops_pps").median),
            fmt_num(m("xdp_ns_per_pkt").median, 0),
            fmt_num(m("server_ns_per_pkt").median, 0),
            fmt_num(m("server_cpu_pct").median, 0),
            fmt_num(m("gen_ns_per_frame").median, 0),
            fmt_num(m("daemon_cpu_pct").median, 1),
            fmt_num(m("legit_success_pct").median, 1),
            fmt_num(m("legit_cps").median, 0),
            fmt_latency(c, "connect_p50_ms"),
            fmt_latency(c, "connect_p99_ms"),
            fmt_num(m("established_mbps").median, 0),
        );
    }
    if report.cells.iter().any(few_connects) {
        let _ = writeln!(
            t,
            "* from fewer than {FEW_CONNECTS} connections completed during the flood (conn/s): \
             not comparable with the others"
        );
    }
    t
}

/// Each defence's one-CPU run beside its spread run (same scenario, same invocation): XDP ns per
/// packet, the receive threads' ns per arrived packet and the rate absorbed, with the ratio
/// spread / one CPU. Empty without spread runs.
pub fn spread_table(report: &Report) -> String {
    let (one, two) = (Layout::OneCpu.name(), Layout::Spread.name());
    let mut t = String::new();
    for c2 in report.cells.iter().filter(|c| c.layout == two) {
        let Some(c1) = report
            .cells
            .iter()
            .find(|c| c.layout == one && c.scenario == c2.scenario && c.defence == c2.defence)
        else {
            continue;
        };
        if t.is_empty() {
            let _ = writeln!(
                t,
                "{:<11} {:<16} {:>15} {:>15} {:>23}",
                "scenario", "defence", "xdp ns 1->2cpu", "srv ns 1->2cpu", "absorbed/s 1->2cpu"
            );
        }
        let pair = |k: &str, rate: bool| {
            let (a, b) = (c1.median(k), c2.median(k));
            if a.is_none() && b.is_none() {
                return "-".to_string();
            }
            let f = |v| if rate { fmt_rate(v) } else { fmt_num(v, 0) };
            let ratio = match (a, b) {
                (Some(a), Some(b)) if a > 0.0 => format!("{:.2}x", b / a),
                _ => "-".into(),
            };
            format!("{}->{} {ratio}", f(a), f(b))
        };
        let _ = writeln!(
            t,
            "{:<11} {:<16} {:>15} {:>15} {:>23}",
            c2.scenario,
            c2.defence,
            pair("xdp_ns_per_pkt", false),
            pair("server_ns_per_pkt", false),
            pair("server_rx_pps", true),
        );
    }
    t
}

/// The ratios of the medians, one line per comparison that has a value.
pub fn ratio_table(report: &Report) -> String {
    let mut t = String::new();
    for r in report.ratios.iter().filter(|r| r.ratio.is_some()) {
        let _ = writeln!(
            t,
            "{:<11} {:<4} {:<17} {:<16} / {:<16} {:>7.2}x{}",
            r.scenario,
            r.layout,
            r.metric,
            r.synguard,
            r.other,
            r.ratio.unwrap_or_default(),
            if r.same_fate { "  (same fate)" } else { "" }
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_min_median_max_of_present_values() {
        let s = Spread::of([Some(3.0), None, Some(1.0), Some(2.0)]);
        assert_eq!((s.min, s.median, s.max), (Some(1.0), Some(2.0), Some(3.0)));
        let s = Spread::of([None, None]);
        assert!(s.median.is_none());
        let s = Spread::of([Some(4.0), Some(1.0)]);
        assert_eq!(s.median, Some(1.0));
    }

    fn cell(defence: &str, replies: f64, drops: f64) -> Cell {
        let mut c = Cell::new("ack-direct", defence, Vec::new());
        let at = |v: f64| Spread {
            min: Some(v),
            median: Some(v),
            max: Some(v),
        };
        c.metrics.insert("replies_pps".into(), at(replies));
        c.metrics.insert("drops_pps".into(), at(drops));
        c.metrics.insert("xdp_ns_per_pkt".into(), at(100.0));
        c
    }

    #[test]
    fn the_same_fate_floor_is_the_one_that_did_what_synguard_did() {
        assert_eq!(
            same_fate_floor(&cell("synguard-own", 10.0, 3e6)),
            Some("floor-xdp-drop")
        );
        assert_eq!(
            same_fate_floor(&cell("synguard-own", 2e6, 1e3)),
            Some("floor-xdp-tx")
        );
        assert_eq!(same_fate_floor(&cell("synguard-own", 0.0, 0.0)), None);
        let cells = [
            cell("synguard-own", 0.0, 3e6),
            cell("floor-xdp-tx", 3e6, 0.0),
            cell("floor-xdp-drop", 0.0, 4e6),
        ];
        let marked: Vec<(String, String)> = ratios(&cells)
            .into_iter()
            .filter(|r| r.same_fate)
            .map(|r| (r.other, r.metric))
            .collect();
        assert_eq!(marked.len(), ratio_metrics("floor-xdp-drop").len());
        assert!(marked.iter().all(|(o, _)| o == "floor-xdp-drop"));
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(fmt_rate(Some(1_234_567.0)), "1.23M");
        assert_eq!(fmt_rate(Some(45_600.0)), "46k");
        assert_eq!(fmt_rate(None), "-");
    }
}
