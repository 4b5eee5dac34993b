//! Plain SVG charts (no plotting dependency): rates over time with the flood windows shaded, and
//! the legitimate clients' connect-latency distribution (CDF) per defence.

use std::fmt::Write as _;

use crate::flood::report::Cell;

const W: f64 = 760.0;
const H: f64 = 380.0;
const L: f64 = 70.0;
const R: f64 = 170.0;
const T: f64 = 40.0;
const B: f64 = 50.0;
/// One colour per defence, in the order of `defence::ALL`, whichever defences a chart shows (a
/// chart that leaves one out, as the latency chart does with the floors, keeps the others'
/// colours).
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#8c564b", "#7f7f7f",
];

/// The colour of a series named for a defence; black for any other name.
fn colour(name: &str) -> &'static str {
    crate::flood::defence::ALL
        .iter()
        .position(|d| d.name() == name)
        .map_or("#000000", |i| COLOURS[i % COLOURS.len()])
}

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

struct Frame {
    x_max: f64,
    y_max: f64,
    log_x: Option<(f64, f64)>,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        let f = match self.log_x {
            Some((lo, hi)) => (v.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln()),
            None => v / self.x_max,
        };
        L + f.clamp(0.0, 1.0) * (W - L - R)
    }

    fn y(&self, v: f64) -> f64 {
        H - B - (v / self.y_max).clamp(0.0, 1.0) * (H - T - B)
    }
}

fn header(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n<text x=\"{L}\" y=\"22\" font-size=\"14\">{}</text>\n",
        escape(title)
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Axes, ticks, labels, the series and the legend.
fn plot(svg: &mut String, f: &Frame, series: &[Series], x_label: &str, y_label: &str) {
    axes(svg, f, x_label, y_label);
    lines(svg, f, series);
}

/// The two axes with their ticks and labels.
fn axes(svg: &mut String, f: &Frame, x_label: &str, y_label: &str) {
    let _ = writeln!(
        svg,
        "<line x1=\"{L}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\
         <line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{0}\" stroke=\"black\"/>",
        H - B,
        W - R
    );
    for i in 0..=4 {
        let v = f.y_max * f64::from(i) / 4.0;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            L - 6.0,
            f.y(v) + 4.0,
            short(v)
        );
    }
    let xticks: Vec<f64> = match f.log_x {
        Some((lo, hi)) => (-3..=4)
            .map(|e| 10f64.powi(e))
            .filter(|v| *v >= lo && *v <= hi)
            .collect(),
        // Whole seconds: labels are rounded, so ticks must sit on round values.
        None => (0..=f.x_max.floor() as i32).map(f64::from).collect(),
    };
    for v in xticks {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            f.x(v),
            H - B + 16.0,
            short(v)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>",
        (L + W - R) / 2.0,
        H - 12.0,
        escape(x_label),
        (T + H - B) / 2.0,
        (T + H - B) / 2.0,
        escape(y_label)
    );
}

/// One polyline per series, with its legend entry.
fn lines(svg: &mut String, f: &Frame, series: &[Series]) {
    for (i, s) in series.iter().enumerate() {
        let c = colour(&s.name);
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", f.x(*x), f.y(*y)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.8\" points=\"{}\"/>\
             <rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{c}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            pts.join(" "),
            W - R + 12.0,
            T + 10.0 + 18.0 * i as f64,
            W - R + 28.0,
            T + 15.0 + 18.0 * i as f64,
            escape(&s.name)
        );
    }
}

fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.0}k", v / 1e3),
        v if v >= 1.0 || v == 0.0 => format!("{v:.0}"),
        v => format!("{v}"),
    }
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * p)
}

/// A rate line per cell (its first run), with the flood windows shaded. `rate` picks a
/// cumulative counter from a sample.
pub fn rates_over_time(
    title: &str,
    y_label: &str,
    cells: &[&Cell],
    rate: fn(&crate::flood::sampler::Sample) -> u64,
) -> String {
    let series: Vec<Series> = cells
        .iter()
        .filter_map(|c| {
            let run = c.runs.first()?;
            let points = run
                .timeline
                .windows(2)
                .map(|w| {
                    let dt = (w[1].t_s - w[0].t_s).max(1e-6);
                    (
                        w[1].t_s,
                        rate(&w[1]).saturating_sub(rate(&w[0])) as f64 / dt,
                    )
                })
                .collect();
            Some(Series {
                name: c.defence.clone(),
                points,
            })
        })
        .collect();
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let f = Frame {
        x_max,
        y_max,
        log_x: None,
    };
    let mut svg = header(title);
    let windows = cells
        .first()
        .and_then(|c| c.runs.first())
        .map(|r| r.windows_s.clone())
        .unwrap_or_default();
    for (a, b) in windows {
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{T}\" width=\"{:.1}\" height=\"{}\" fill=\"#f4d0d0\"/>",
            f.x(a),
            f.x(b) - f.x(a),
            H - T - B
        );
    }
    plot(&mut svg, &f, &series, "seconds (shaded: flood)", y_label);
    svg.push_str("</svg>\n");
    svg
}

/// The connect-latency CDF per cell, all runs pooled, log time axis.
pub fn latency_cdf(title: &str, cells: &[&Cell]) -> String {
    let series: Vec<Series> = cells
        .iter()
        .filter_map(|c| {
            let mut v: Vec<f64> = c
                .runs
                .iter()
                .flat_map(|r| r.latencies_us.iter().map(|u| *u as f64 / 1000.0))
                .collect();
            if v.is_empty() {
                return None;
            }
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            let points = v
                .iter()
                .enumerate()
                .map(|(i, ms)| (*ms, 100.0 * (i + 1) as f64 / n))
                .collect();
            Some(Series {
                name: c.defence.clone(),
                points,
            })
        })
        .collect();
    let f = Frame {
        x_max: 0.0,
        y_max: 100.0,
        log_x: Some((0.01, 10_000.0)),
    };
    let mut svg = header(title);
    plot(
        &mut svg,
        &f,
        &series,
        "connect latency, ms (log)",
        "% of connections",
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(730.0), 1000.0);
        assert_eq!(nice_max(1_600_000.0), 2_000_000.0);
    }

    #[test]
    fn each_defence_keeps_its_colour() {
        let all = crate::flood::defence::ALL;
        let colours: Vec<&str> = all.iter().map(|d| colour(d.name())).collect();
        let mut unique = colours.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "two defences share a colour");
        assert_eq!(colour("synguard-always"), colours[3]);
    }

    #[test]
    fn svg_is_well_formed_enough() {
        let svg = latency_cdf("t <x>", &[]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;x&gt;"));
    }
}
