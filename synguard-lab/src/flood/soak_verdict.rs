//! The soak's figures and its verdicts: one [`Probe`] per period (cumulative values), the
//! periodic line, and a pure function from the probes and the final packet accounting to one
//! [`Verdict`] per property. Nothing here reads the system: the unit tests feed it samples.

use crate::lab::traffic::{ContinuousStats, percentile};

/// One periodic sample of everything the soak watches. Counters are cumulative since the soak's
/// baseline (taken before any traffic); occupancies are what the maps hold at that moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probe {
    pub t_s: f64,
    pub legit_ok: u64,
    pub legit_failed: u64,
    /// Connect p99 over the period that ends with this probe (none without a success).
    pub connect_p99_ms: Option<f64>,
    /// The daemon's resident memory (VmRSS) and CPU time (user + system).
    pub rss_kib: u64,
    pub cpu_s: f64,
    /// Entries in the per-source limiter and the reflection table (both LRU hashes).
    pub sources: u64,
    pub reflect: u64,
    /// Recently-closed slots in use, and those still within the TIME_WAIT period.
    pub closing_used: u64,
    pub closing_live: u64,
    pub allow: usize,
    pub block: usize,
    /// Events: flood events the ring buffer could not take, sources added to the limiter,
    /// live recently-closed records overwritten.
    pub event_lost: u64,
    pub source_tracked: u64,
    pub close_replaced: u64,
    /// Packets per verdict class, and cookie SYN-ACKs.
    pub pass: u64,
    pub tx: u64,
    pub drop: u64,
    pub cookies: u64,
    pub mode_on: u64,
    /// Flood frames offered so far (generator and hping3).
    pub offered: u64,
}

/// Every packet counted once: the growth of the sum of synguard's verdict counters against the
/// growth of the server interface's receive counter, read before and after the counters on both
/// ends (so traffic in between widens the range instead of failing the check).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    pub counted: u64,
    pub rx_min: u64,
    pub rx_max: u64,
}

/// What the maps may hold and what the run must achieve.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub source_slots: u64,
    pub reflect_slots: u64,
    pub closing_slots: u64,
    /// The lists as configured at start.
    pub allow: usize,
    pub block: usize,
    pub min_success_pct: f64,
    /// RSS the second half of the run may add over the first half's maximum.
    pub rss_slack_kib: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub property: &'static str,
    pub ok: bool,
    pub figures: String,
}

impl Verdict {
    pub fn line(&self) -> String {
        let word = if self.ok { "PASS" } else { "FAIL" };
        format!("verdict {word} {}: {}", self.property, self.figures)
    }
}

/// The periodic line: cumulative figures and their growth since `prev`.
pub fn period_line(p: &Probe, prev: &Probe, b: &Bounds) -> String {
    let p99 = p
        .connect_p99_ms
        .map_or("-".to_string(), |v| format!("{v:.1}ms"));
    format!(
        "soak t={:.0}s legit ok={} (+{}) fail={} (+{}) p99={p99} | rss={}KiB ({:+}) cpu={:.2}s \
         (+{:.2}) | sources={}/{} reflect={}/{} closed={} live={}/{} allow={} block={} | \
         lost={} | offered +{} pass +{} tx +{} drop +{} cookies +{} mode_on +{}",
        p.t_s,
        p.legit_ok,
        p.legit_ok - prev.legit_ok.min(p.legit_ok),
        p.legit_failed,
        p.legit_failed - prev.legit_failed.min(p.legit_failed),
        p.rss_kib,
        p.rss_kib as i64 - prev.rss_kib as i64,
        p.cpu_s,
        p.cpu_s - prev.cpu_s,
        p.sources,
        b.source_slots,
        p.reflect,
        b.reflect_slots,
        p.closing_used,
        p.closing_live,
        b.closing_slots,
        p.allow,
        p.block,
        p.event_lost,
        p.offered.saturating_sub(prev.offered),
        p.pass.saturating_sub(prev.pass),
        p.tx.saturating_sub(prev.tx),
        p.drop.saturating_sub(prev.drop),
        p.cookies.saturating_sub(prev.cookies),
        p.mode_on.saturating_sub(prev.mode_on),
    )
}

/// One verdict per property, from the probes (the first is the baseline before any traffic),
/// the final accounting, the legitimate clients' totals once stopped (connections after the
/// last probe count too) and how the daemon ended.
pub fn verdicts(
    probes: &[Probe],
    acct: &Accounting,
    legit_totals: &ContinuousStats,
    daemon_clean_exit: bool,
    b: &Bounds,
) -> Vec<Verdict> {
    let (Some(first), Some(last)) = (probes.first(), probes.last()) else {
        return vec![Verdict {
            property: "samples",
            ok: false,
            figures: "no probe was taken".into(),
        }];
    };
    vec![
        legit(legit_totals, b),
        rss(probes, b),
        cpu(probes),
        table(
            "per-source LRU",
            probes,
            |p| p.sources,
            b.source_slots,
            || {
                format!(
                    "{} sources tracked in all",
                    last.source_tracked - first.source_tracked.min(last.source_tracked)
                )
            },
        ),
        table(
            "reflection LRU",
            probes,
            |p| p.reflect,
            b.reflect_slots,
            String::new,
        ),
        table(
            "recently-closed",
            probes,
            |p| p.closing_live,
            b.closing_slots,
            || {
                format!(
                    "max {} slots used; {} live records replaced (counted, defined behaviour)",
                    probes.iter().map(|p| p.closing_used).max().unwrap_or(0),
                    last.close_replaced - first.close_replaced.min(last.close_replaced)
                )
            },
        ),
        lists(probes, b),
        lost(first, last),
        counted_once(acct),
        Verdict {
            property: "daemon",
            ok: daemon_clean_exit,
            figures: if daemon_clean_exit {
                "ran through the soak and exited cleanly on SIGINT".into()
            } else {
                "died during the soak or did not exit cleanly".into()
            },
        },
    ]
}

fn legit(cl: &ContinuousStats, b: &Bounds) -> Verdict {
    let attempts = cl.ok + cl.failed;
    let pct = if attempts == 0 {
        0.0
    } else {
        100.0 * cl.ok as f64 / attempts as f64
    };
    let p99 =
        percentile(&cl.latencies_us, 99.0).map_or("-".into(), |u| format!("{:.1}", u as f64 / 1e3));
    Verdict {
        property: "legit clients",
        ok: attempts > 0 && pct >= b.min_success_pct,
        figures: format!(
            "{} ok, {} failed of {attempts} ({pct:.2}%, need >= {}%), connect p99 {p99} ms",
            cl.ok, cl.failed, b.min_success_pct
        ),
    }
}

/// Memory does not keep growing: the second half's peak stays within the slack of the first
/// half's (a leak proportional to traffic shows as a rise between the halves).
fn rss(probes: &[Probe], b: &Bounds) -> Verdict {
    let v: Vec<u64> = probes.iter().map(|p| p.rss_kib).collect();
    let property = "daemon RSS";
    if v.len() < 3 {
        return Verdict {
            property,
            ok: false,
            figures: format!("{} probes: need 3 or more to compare halves", v.len()),
        };
    }
    let half = v.len().div_ceil(2);
    let first_max = *v[..half].iter().max().unwrap_or(&0);
    let second_max = *v[half..].iter().max().unwrap_or(&0);
    let slack = b.rss_slack_kib.max(first_max / 20);
    let (first, last, max) = (v[0], v[v.len() - 1], *v.iter().max().unwrap_or(&0));
    Verdict {
        property,
        ok: second_max <= first_max + slack,
        figures: format!(
            "first {first} KiB, last {last} KiB ({:+}), max {max} KiB; peak of the second half \
             {second_max} KiB vs first half {first_max} KiB (allowed +{slack} KiB)",
            last as i64 - first as i64
        ),
    }
}

/// The smallest RSS rise between halves that counts as growth (allocator noise is below it).
pub const RSS_SLACK_KIB: u64 = 1024;

/// The daemon's CPU per second does not climb: the second half's rate is within 1.5x (plus 1%
/// of a core) of the first half's. The floods repeat the same cycle every period.
fn cpu(probes: &[Probe]) -> Verdict {
    let property = "daemon CPU";
    let rates: Vec<f64> = probes
        .windows(2)
        .map(|w| (w[1].cpu_s - w[0].cpu_s) / (w[1].t_s - w[0].t_s).max(1e-9))
        .collect();
    if rates.len() < 2 {
        return Verdict {
            property,
            ok: false,
            figures: format!("{} periods: need 2 or more", rates.len()),
        };
    }
    let half = rates.len().div_ceil(2);
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len().max(1) as f64;
    let (a, z) = (mean(&rates[..half]), mean(&rates[half..]));
    let total = probes[probes.len() - 1].cpu_s - probes[0].cpu_s;
    Verdict {
        property,
        ok: z <= a * 1.5 + 0.01,
        figures: format!(
            "{total:.2} s over the soak; {:.2}% of a core in the first half, {:.2}% in the second",
            a * 100.0,
            z * 100.0
        ),
    }
}

fn table(
    property: &'static str,
    probes: &[Probe],
    get: impl Fn(&Probe) -> u64,
    slots: u64,
    extra: impl Fn() -> String,
) -> Verdict {
    let max = probes.iter().map(&get).max().unwrap_or(0);
    let last = probes.last().map_or(0, &get);
    let extra = extra();
    Verdict {
        property,
        ok: max <= slots,
        figures: format!(
            "max {max}, last {last} of {slots} entries{}",
            if extra.is_empty() {
                String::new()
            } else {
                format!("; {extra}")
            }
        ),
    }
}

fn lists(probes: &[Probe], b: &Bounds) -> Verdict {
    let same = probes
        .iter()
        .all(|p| p.allow == b.allow && p.block == b.block);
    Verdict {
        property: "lists",
        ok: same,
        figures: format!(
            "allow {} block {} at every probe (configured {} and {})",
            probes.iter().map(|p| p.allow).max().unwrap_or(0),
            probes.iter().map(|p| p.block).max().unwrap_or(0),
            b.allow,
            b.block
        ),
    }
}

fn lost(first: &Probe, last: &Probe) -> Verdict {
    let lost = last.event_lost.saturating_sub(first.event_lost);
    Verdict {
        property: "flood events",
        ok: lost == 0,
        figures: format!("{lost} lost (flood_event_lost)"),
    }
}

fn counted_once(a: &Accounting) -> Verdict {
    Verdict {
        property: "every packet counted once",
        ok: a.rx_max > 0 && (a.rx_min..=a.rx_max).contains(&a.counted),
        figures: format!(
            "verdict counters +{}, server interface received +{}..+{}",
            a.counted, a.rx_min, a.rx_max
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            source_slots: 100,
            reflect_slots: 10,
            closing_slots: 1000,
            allow: 1,
            block: 1,
            min_success_pct: 99.0,
            rss_slack_kib: RSS_SLACK_KIB,
        }
    }

    /// A steady run: flat memory, steady CPU, bounded tables, no loss.
    fn steady(n: usize) -> Vec<Probe> {
        (0..n)
            .map(|i| Probe {
                t_s: 30.0 * i as f64,
                legit_ok: 1000 * i as u64,
                rss_kib: 8000 + (i as u64 % 2) * 100,
                cpu_s: 0.5 * i as f64,
                sources: 50,
                reflect: 3,
                closing_live: 200,
                allow: 1,
                block: 1,
                ..Default::default()
            })
            .collect()
    }

    fn acct() -> Accounting {
        Accounting {
            counted: 1_000_000,
            rx_min: 1_000_000,
            rx_max: 1_000_003,
        }
    }

    /// The clients' totals as the last probe saw them.
    fn legit(p: &[Probe]) -> ContinuousStats {
        let last = p.last().cloned().unwrap_or_default();
        ContinuousStats {
            ok: last.legit_ok,
            failed: last.legit_failed,
            latencies_us: vec![1000, 2000],
            last_error: None,
        }
    }

    fn failing(v: &[Verdict]) -> Vec<&'static str> {
        v.iter().filter(|v| !v.ok).map(|v| v.property).collect()
    }

    #[test]
    fn a_steady_run_passes_every_property() {
        let v = verdicts(&steady(5), &acct(), &legit(&steady(5)), true, &bounds());
        assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
        assert!(v.iter().all(|v| v.line().starts_with("verdict PASS")));
    }

    #[test]
    fn growing_memory_fails() {
        let mut p = steady(5);
        for (i, x) in p.iter_mut().enumerate() {
            x.rss_kib = 8000 + 2000 * i as u64;
        }
        let v = verdicts(&p, &acct(), &legit(&p), true, &bounds());
        assert_eq!(failing(&v), ["daemon RSS"]);
        // Too few probes to judge is a failure, not a pass.
        let v = verdicts(&steady(2), &acct(), &legit(&steady(2)), true, &bounds());
        assert!(failing(&v).contains(&"daemon RSS"));
    }

    #[test]
    fn climbing_cpu_fails() {
        let mut p = steady(5);
        for (i, x) in p.iter_mut().enumerate() {
            x.cpu_s = 0.5 * (i * i) as f64;
        }
        assert_eq!(
            failing(&verdicts(&p, &acct(), &legit(&p), true, &bounds())),
            ["daemon CPU"]
        );
    }

    #[test]
    fn tables_over_their_size_changed_lists_and_losses_fail() {
        let mut p = steady(4);
        p[2].sources = 101;
        p[3].allow = 2;
        p[3].event_lost = 1;
        p[1].closing_live = 1001;
        let v = verdicts(&p, &acct(), &legit(&p), true, &bounds());
        assert_eq!(
            failing(&v),
            ["per-source LRU", "recently-closed", "lists", "flood events"]
        );
    }

    #[test]
    fn packets_counted_twice_or_missed_fail() {
        let p = steady(4);
        for counted in [999_999, 1_000_004] {
            let a = Accounting { counted, ..acct() };
            let v = verdicts(&p, &a, &legit(&p), true, &bounds());
            assert_eq!(failing(&v), ["every packet counted once"]);
        }
        // Nothing received at all proves nothing.
        let v = verdicts(&p, &Accounting::default(), &legit(&p), true, &bounds());
        assert_eq!(failing(&v), ["every packet counted once"]);
    }

    #[test]
    fn legit_failures_and_a_dead_daemon_fail() {
        let mut p = steady(4);
        p[3].legit_failed = 100; // 3000 ok, 100 failed: 96.8 %
        let v = verdicts(&p, &acct(), &legit(&p), false, &bounds());
        assert_eq!(failing(&v), ["legit clients", "daemon"]);
        assert!(
            verdicts(&[], &acct(), &legit(&[]), true, &bounds())[0]
                .figures
                .contains("no probe")
        );
    }

    #[test]
    fn the_period_line_shows_growth() {
        let p = steady(3);
        let line = period_line(&p[2], &p[1], &bounds());
        assert!(
            line.starts_with("soak t=60s legit ok=2000 (+1000)"),
            "{line}"
        );
        assert!(line.contains("rss=8000KiB (-100)"), "{line}");
        assert!(line.contains("sources=50/100"), "{line}");
    }
}
