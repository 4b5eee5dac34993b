//! Judging a frame run split over buffers (`Fixture::run_split`), as a multi-buffer frame
//! reaches the program: what it may do that it would not do whole.

use synguard_common::reason::Reason;

use super::{Expect, Fuzzer, model, rng::Rng};
use crate::testrun::fixture::{Outcome, XDP_PASS};

/// The longest TCP header of a SYN-ACK the program builds: MSS, SACK-permitted, timestamps and
/// window scale with their padding (`synguard_common::synack_words`).
const MAX_REPLY_TCP: usize = 40;

/// One frame in eight runs split over buffers, as a multi-buffer frame reaches the program,
/// with its first buffer cut anywhere from the Ethernet header's end to its last byte: within
/// the headers as much as past them.
pub(super) fn split_point(rng: &mut Rng, len: usize) -> Option<u32> {
    const ETH: usize = 14;
    (len > ETH + 1 && rng.pct(12)).then(|| (ETH + rng.below((len - ETH) as u64) as usize) as u32)
}

impl Fuzzer {
    /// What a frame run split over buffers after `first` bytes may do that it would not do
    /// whole, judged; None when it must do just what it would whole.
    pub(super) fn split(
        &mut self,
        frame: &[u8],
        first: usize,
        expect: Expect,
        syn: Option<&model::Syn>,
        out: &Outcome,
    ) -> Option<(Result<(), String>, Vec<Reason>)> {
        let as_it_came = |why: &str| {
            if out.action != XDP_PASS || out.frame != frame {
                Err(format!(
                    "{why} ({first} bytes): action {}, not passed as it came",
                    out.action
                ))
            } else {
                Ok(())
            }
        };
        match model::tcp_ends(frame) {
            // Headers cut by the buffer's end: the program cannot read them and must let the
            // frame pass as it came (fail open), whatever it would do with them whole, under
            // one reason or another of those that pass (checked with the batch's counters).
            None => {
                self.unknown_passes += 1;
                return Some((as_it_came("frame cut"), vec![]));
            }
            Some((fixed, _)) if first < fixed => {
                self.unknown_passes += 1;
                return Some((as_it_came("headers cut"), vec![]));
            }
            // A SYN's options cut: its answer cannot read them (nor check the checksum over
            // them) and it passes as a load error; every decision before the answer stands.
            Some((_, options))
                if first < options
                    && matches!(
                        expect,
                        Expect::SynAck | Expect::Exactly(Reason::DropBadTcpChecksum)
                    ) =>
            {
                return Some((as_it_came("SYN options cut"), vec![Reason::ErrLoadBytes]));
            }
            Some(_) => {}
        }
        // A SYN whose reply would not fit in its first buffer passes (`ErrSynShortBuffer`).
        let syn = syn.filter(|_| expect == Expect::SynAck && out.action == XDP_PASS)?;
        if self.monitor() {
            // Monitor mode answers nothing: no reply to fit.
            return None;
        }
        let ip = if syn.ipv6 { 40 } else { 20 };
        let judged = if first >= syn.l2.len() + ip + MAX_REPLY_TCP {
            Err(format!(
                "reply fits in the first buffer ({first} bytes), yet passed"
            ))
        } else {
            as_it_came("reply longer than the first buffer")
        };
        Some((judged, vec![Reason::ErrSynShortBuffer]))
    }
}
