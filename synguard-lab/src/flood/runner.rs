//! `cargo xtask lab`: every selected scenario against every selected defence, `runs` times each,
//! each run in a fresh lab; then the table, the JSON and the charts under the output directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::flood::chart;
use crate::flood::defence::Defence;
use crate::flood::layout::Layout;
use crate::flood::measure::{self, RunConfig};
use crate::flood::report::{self, Cell, Machine, Report};
use crate::flood::scenario::Scenario;

pub struct Plan {
    pub scenarios: Vec<Scenario>,
    pub defences: Vec<Defence>,
    /// Each scenario runs in each layout (one server CPU; spread over both), side by side.
    pub layouts: Vec<Layout>,
    pub runs: usize,
    pub config: RunConfig,
}

impl Plan {
    /// The CI plan: one short SYN flood per defence, one run each.
    pub fn quick(scenario: Scenario) -> Plan {
        Plan {
            scenarios: vec![scenario],
            defences: crate::flood::defence::ALL.to_vec(),
            layouts: vec![Layout::OneCpu],
            runs: 1,
            config: RunConfig {
                lead: Duration::from_millis(750),
                flood: Duration::from_secs(2),
                tail: Duration::from_millis(750),
            },
        }
    }

    pub fn full(scenarios: Vec<Scenario>, defences: Vec<Defence>, runs: usize) -> Plan {
        Plan {
            scenarios,
            defences,
            layouts: vec![Layout::OneCpu],
            runs,
            config: RunConfig {
                lead: Duration::from_secs(1),
                flood: Duration::from_secs(4),
                tail: Duration::from_secs(1),
            },
        }
    }
}

/// Runs the plan. A failed run is reported and fails the whole lab: a table with holes would
/// compare unlike things.
pub fn run(plan: &Plan, synguard_bin: &Path, interrupted: &AtomicBool) -> Result<Report> {
    let mut cells = Vec::new();
    for scenario in &plan.scenarios {
        for &layout in &plan.layouts {
            for &defence in &plan.defences {
                let runs = (0..plan.runs)
                    .map(|i| {
                        let what = format!(
                            "{} vs {} on {} (run {}/{})",
                            scenario.name,
                            defence.name(),
                            layout.name(),
                            i + 1,
                            plan.runs
                        );
                        eprintln!("lab: {what}");
                        let (cfg, bin) = (&plan.config, synguard_bin);
                        measure::run(scenario, defence, layout, cfg, bin, interrupted)
                            .with_context(|| what)
                    })
                    .collect::<Result<Vec<_>>>()?;
                cells.push(Cell::new(scenario.name, defence.name(), runs).on(layout));
            }
        }
    }
    let ratios = report::ratios(&cells);
    Ok(Report {
        machine: Machine::this(),
        config: plan.config,
        runs_per_cell: plan.runs,
        cells,
        ratios,
    })
}

/// Writes `lab.json` and, per scenario, `rates-<scenario>.svg` and `latency-<scenario>.svg`.
/// Returns the files written.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    let json = dir.join("lab.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    files.push(json);
    // The charts show the one-CPU runs (the spread ones are in the table and the JSON).
    let one_cpu = |c: &&Cell| c.layout == Layout::OneCpu.name();
    let mut scenarios: Vec<&str> = report
        .cells
        .iter()
        .filter(one_cpu)
        .map(|c| c.scenario.as_str())
        .collect();
    scenarios.dedup();
    for s in scenarios {
        let cells: Vec<&Cell> = report
            .cells
            .iter()
            .filter(|c| c.scenario == s)
            .filter(one_cpu)
            .collect();
        let rates = chart::rates_over_time(
            &format!("{s}: replies to the flood per second (SYN-ACKs for SYN floods)"),
            "replies / s",
            &cells,
            |x| x.replies,
        );
        let lat = chart::latency_cdf(
            &format!("{s}: legitimate clients' connect latency during the flood"),
            &cells,
        );
        for (name, svg) in [
            (format!("rates-{s}.svg"), rates),
            (format!("latency-{s}.svg"), lat),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
            files.push(path);
        }
    }
    Ok(files)
}
