//! Too few spare queue pairs for XDP_TX: with every pair in use, virtio-net would run XDP_TX in
//! its locked mode, whose first XDP_TX crashed this guest kernel (docs/virtio-net.md). synguard
//! must refuse to attach and name the fix, and `doctor` must say the same. No SYN is sent while
//! the queues are short, and the pairs are given back whatever happens.

use std::time::Duration;

use anyhow::Result;

use super::{SHORT, Verdicts};
use crate::vm::guest::{self, BIN, IFACE, WEB_PORT, XdpState};
use crate::vm::net::{GUEST_CPUS, NIC_QUEUES};
use crate::vm::ssh::Guest;

/// A `run` that wrongly attached would be loading for tens of seconds under emulation; the
/// bound ends it with SIGTERM (which detaches) before anything is sent.
const RUN_BOUND: Duration = Duration::from_secs(240);

/// The fix synguard must print: leave a pair per CPU for XDP.
fn fix() -> String {
    format!("ethtool -L {IFACE} combined {}", NIC_QUEUES - GUEST_CPUS)
}

pub(super) fn short_queue_check(v: &mut Verdicts, g: &Guest) -> Result<()> {
    let result = refused_with_fix(v, g);
    // Given back even when a step failed: later runs must not attach in locked mode.
    let restored = g.run(&format!("{} && ethtool -l {IFACE} | tail -1", fix()), SHORT);
    let combined = restored?;
    v.check(
        "queue pairs given back",
        combined
            .trim()
            .ends_with(&(NIC_QUEUES - GUEST_CPUS).to_string()),
        format!("after `{}`: {}", fix(), combined.trim()),
    );
    result
}

fn refused_with_fix(v: &mut Verdicts, g: &Guest) -> Result<()> {
    let doctor = |g: &Guest| -> Result<String> {
        // doctor exits 1 while any check warns (the short-queue case must): only a status
        // above 1 is a failure of the command itself.
        let cmd = format!("{BIN} doctor --iface {IFACE} || [ $? -eq 1 ]");
        let out = g.run(&cmd, SHORT)?;
        Ok(out
            .lines()
            .find(|l| l.contains("XDP_TX queue pairs"))
            .unwrap_or("(no queue line)")
            .to_string())
    };
    let fine = doctor(g)?;
    g.run(&format!("ethtool -L {IFACE} combined {NIC_QUEUES}"), SHORT)?;
    let short = doctor(g)?;
    v.check(
        "doctor judges the queue pairs",
        fine.starts_with("ok") && short.starts_with("WARN") && short.contains(&fix()),
        format!("{GUEST_CPUS} in use: {fine}; {NIC_QUEUES} in use: {short}"),
    );
    let (code, out, _) = g.try_run(
        &format!(
            "timeout {} {BIN} run --iface {IFACE} --ports {WEB_PORT} --mode always 2>&1",
            RUN_BOUND.as_secs()
        ),
        RUN_BOUND + SHORT,
    )?;
    let state = guest::xdp_state(g)?;
    let refusal = out
        .lines()
        .find(|l| l.contains("Refusing to attach"))
        .unwrap_or("(no refusal)");
    v.check(
        "short queues: run refuses with the fix",
        code != 0
            && state == XdpState::None
            && refusal.contains(&fix())
            && refusal.contains("--ignore-nic-checks"),
        format!("exit {code}; ip link: {state:?}; said: {}", refusal.trim()),
    );
    Ok(())
}
