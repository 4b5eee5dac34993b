//! Own cookies' second check: the TC program for drivers without XDP metadata
//! (`synguard_own_check`) parses the frame and checks the cookie again, by code of its own. The
//! fuzzer runs it on each whole frame as TC would see it, before the XDP program: it must let
//! every frame go on unchanged (`TC_ACT_OK`), and reach the listener lookup (counted by the
//! `own_*` events of that stage, none of which can be a success here) exactly for the ACKs whose
//! cookie the XDP program accepts.

use anyhow::Result;
use aya::programs::{TestRun as _, TestRunOptions};
use synguard_common::reason::Event;

use crate::testrun::fixture::Fixture;

/// `TC_ACT_OK`.
const TC_ACT_OK: u32 = 0;

/// The events of the listener lookup's stage: one of them counts each ACK the check accepted.
const LISTENER_STAGE: [Event; 3] = [
    Event::OwnNoListener,
    Event::OwnReqskAssigned,
    Event::OwnReqskFailed,
];

/// The frame as TC sees it: the kernel takes the outer VLAN tag out of the frame before TC
/// (`skb_vlan_untag`), and leaves an inner one in.
pub fn as_tc_sees(frame: &[u8]) -> Vec<u8> {
    let tagged = frame.len() >= 18 && matches!(frame[12..14], [0x81, 0x00] | [0x88, 0xa8]);
    if !tagged {
        return frame.to_vec();
    }
    [&frame[..12], &frame[16..]].concat()
}

/// Runs the checking TC program on `frame` as TC sees it: whether it ran (the kernel's test run
/// takes no frame too short for its network header), or an error when it did not return
/// `TC_ACT_OK` or changed the frame.
pub fn check(fixture: &Fixture, frame: &[u8]) -> Result<Result<bool, String>> {
    let seen = as_tc_sees(frame);
    let mut out = vec![0u8; seen.len() + 64];
    let r = fixture.tc_check_program()?.test_run(TestRunOptions {
        data_in: Some(&seen),
        data_out: Some(&mut out),
        ..Default::default()
    });
    let Ok(r) = r else {
        return Ok(Ok(false));
    };
    out.truncate(r.data_size_out as usize);
    Ok(if r.return_value != TC_ACT_OK {
        Err(format!("TC check returned {}", r.return_value))
    } else if out != seen {
        Err("TC check changed the frame".into())
    } else {
        Ok(true)
    })
}

/// How many ACKs the check has accepted so far (this CPU's and every other's).
pub fn accepted(fixture: &Fixture) -> Result<u64> {
    LISTENER_STAGE.iter().map(|&e| fixture.event(e)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc_sees_a_frame_without_its_outer_tag() {
        let untagged = [[2u8; 12].as_slice(), &[0x08, 0x00, 0x45]].concat();
        assert_eq!(as_tc_sees(&untagged), untagged);
        let one = [[2u8; 12].as_slice(), &[0x81, 0, 0, 5, 0x08, 0x00, 0x45]].concat();
        assert_eq!(as_tc_sees(&one), untagged);
        let two = [
            [2u8; 12].as_slice(),
            &[0x88, 0xa8, 0, 6, 0x81, 0, 0, 7, 0x08, 0x00, 0x45],
        ]
        .concat();
        let inner = [[2u8; 12].as_slice(), &[0x81, 0, 0, 7, 0x08, 0x00, 0x45]].concat();
        assert_eq!(as_tc_sees(&two), inner);
    }
}
