//! Judging a frame run in monitor mode: it passes as it came, and what would have been done is
//! counted.

use anyhow::Result;
use synguard_common::reason::{Reason, Verdict};

use super::{BAD_COOKIE, Expect, Fuzzer};
use crate::testrun::fixture::{Outcome, XDP_PASS};

impl Fuzzer {
    /// Monitor mode: every frame passes as it came; a decision other than a pass is counted as
    /// what would have been done (`pass_monitor`, and the reason in the monitor counters).
    /// `refused_before`: for an ACK, the would-be bad-cookie drops before its run.
    pub(super) fn monitored(
        &mut self,
        frame: &[u8],
        expect: Expect,
        out: &Outcome,
        refused_before: Option<u64>,
        tc_ran: bool,
    ) -> Result<(Result<(), String>, Vec<Reason>)> {
        let would = match expect {
            Expect::Exactly(r) if r.verdict() == Verdict::Pass => None,
            Expect::Exactly(r) => Some(r),
            Expect::SynAck => Some(Reason::TxSynAckCookie),
            // An ACK whose cookie is valid (by chance: monitor mode answers no SYN) passes as
            // such, not monitored.
            Expect::CookieCheck => {
                let refused = self.fixture.would(BAD_COOKIE)? - refused_before.unwrap_or(0);
                if refused == 0 {
                    self.forget_handshake(frame)?;
                    self.tc_accepted += u64::from(tc_ran);
                }
                (refused != 0).then_some(BAD_COOKIE)
            }
        };
        let reason = match (would, expect) {
            (Some(r), _) => {
                self.would_want[r.index() as usize] += 1;
                Reason::PassMonitor
            }
            (None, Expect::Exactly(r)) => r,
            (None, _) => Reason::PassCookieAck,
        };
        let judged = if out.action != XDP_PASS || out.frame != frame {
            Err(format!(
                "monitor mode: {reason:?} (would {would:?}), action {}, or the frame changed",
                out.action
            ))
        } else {
            Ok(())
        };
        Ok((judged, vec![reason]))
    }
}
