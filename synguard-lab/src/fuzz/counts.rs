//! The verdict counters against what was run: a batch's growth, and finding the frame of a
//! batch whose counters went wrong.

use anyhow::Result;
use synguard_common::reason::{REASONS, Verdict};

use super::{Fuzzer, Input, Violation, tc};

impl Fuzzer {
    /// Finds the frame of a batch whose counters went wrong, by running each alone.
    pub(super) fn locate(&mut self, batch: &[Input]) -> Result<Violation> {
        for Input { frame, first } in batch {
            self.unknown_passes = 0;
            self.tc_accepted = 0;
            self.would_want.fill(0);
            let tc_before = tc::accepted(&self.fixture)?;
            let would_before = self.fixture.woulds()?;
            let before = self.fixture.verdicts()?;
            let (_, reasons) = self.one(frame, *first)?;
            let after = self.fixture.verdicts()?;
            let tc_got = tc::accepted(&self.fixture)? - tc_before;
            let would_got = grown(&self.fixture.woulds()?, &would_before);
            if would_got != self.would_want {
                return Ok(self.violation(
                    format!(
                        "monitor mode counted {} as would-be, expected {}",
                        slots(&would_got),
                        slots(&self.would_want)
                    ),
                    frame,
                    *first,
                ));
            }
            if tc_got != self.tc_accepted {
                return Ok(self.violation(
                    format!(
                        "the checking TC program accepted {tc_got} ACKs, the XDP program {}",
                        self.tc_accepted
                    ),
                    frame,
                    *first,
                ));
            }
            let mut want = vec![0u64; before.len()];
            for r in &reasons {
                want[r.index() as usize] += 1;
            }
            let got = grown(&after, &before);
            if !counts_match(&got, &want, std::mem::take(&mut self.unknown_passes)) {
                return Ok(self.violation(
                    format!("counted {} but expected {:?}", slots(&got), reasons),
                    frame,
                    *first,
                ));
            }
        }
        Ok(self.violation(
            "counters of a batch differ from its frames, no single frame reproduces it".into(),
            &[],
            None,
        ))
    }
}

/// How much each counter grew from `before` to `after`.
pub(super) fn grown(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// Whether the verdict counters grew by `got` for frames that had to count `want`, and
/// `unknown` more frames each under one reason of those that pass.
pub(super) fn counts_match(got: &[u64], want: &[u64], unknown: u64) -> bool {
    let mut extra = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g < w || (g > w && REASONS.get(i).is_none_or(|r| r.verdict() != Verdict::Pass)) {
            return false;
        }
        extra += g - w;
    }
    extra == unknown
}

fn slots(counts: &[u64]) -> String {
    let named: Vec<String> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 0)
        .map(|(i, c)| {
            let name = REASONS.get(i).map(|r| r.name()).unwrap_or("unknown");
            format!("{name}={c}")
        })
        .collect();
    named.join(" ")
}
