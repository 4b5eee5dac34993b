//! The verdict counters against what was run: a batch's growth, and finding the frame of a
//! batch whose counters went wrong.

use anyhow::Result;
use synguard_common::reason::{REASONS, Verdict};

use super::{Fuzzer, Input, Violation, tc};

/// The counters as they were before a run: the verdicts, the monitor counters, and the
/// checking TC program's accepted handshakes.
pub(super) struct Before {
    verdicts: Vec<u64>,
    would: Vec<u64>,
    tc: u64,
}

/// How much each grew since [`Before`].
pub(super) struct Grown {
    pub verdicts: Vec<u64>,
    pub would: Vec<u64>,
    pub tc: u64,
}

impl Fuzzer {
    /// Clears what the frames to come must have counted, and reads the counters as they are.
    pub(super) fn count_from(&mut self) -> Result<Before> {
        self.unknown_passes = 0;
        self.tc_accepted = 0;
        self.would_want.fill(0);
        Ok(Before {
            tc: tc::accepted(&self.fixture)?,
            would: self.fixture.woulds()?,
            verdicts: self.fixture.verdicts()?,
        })
    }

    pub(super) fn grown_since(&self, b: &Before) -> Result<Grown> {
        Ok(Grown {
            verdicts: grown(&self.fixture.verdicts()?, &b.verdicts),
            would: grown(&self.fixture.woulds()?, &b.would),
            tc: tc::accepted(&self.fixture)? - b.tc,
        })
    }

    /// Finds the frame of a batch whose counters went wrong, by running each alone.
    pub(super) fn locate(&mut self, batch: &[Input]) -> Result<Violation> {
        for Input { frame, first } in batch {
            let before = self.count_from()?;
            let (_, reasons) = self.one(frame, *first)?;
            let Grown {
                verdicts: got,
                tc: tc_got,
                would: would_got,
            } = self.grown_since(&before)?;
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
            let mut want = vec![0u64; got.len()];
            for r in &reasons {
                want[r.index() as usize] += 1;
            }
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
fn grown(after: &[u64], before: &[u64]) -> Vec<u64> {
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
