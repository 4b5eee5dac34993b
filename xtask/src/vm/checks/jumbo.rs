//! Jumbo frames on a real driver: virtio-net takes a single-buffer XDP program only while its
//! MTU fits one receive buffer ("MTU too large to enable XDP without frags", `virtnet_xdp_set`);
//! synguard's multi-buffer programs (docs/veth-and-nics.md, "Jumbo frames") must attach in
//! native mode at MTU 9000 and answer a handshake from XDP there. The MTU is given back
//! whatever happens.

use anyhow::Result;

use super::{SHORT, Verdicts, native_attach};
use crate::vm::guest::{self, IFACE, WEB_PORT};
use crate::vm::ssh::Guest;
use crate::vm::traffic;

const JUMBO_MTU: u32 = 9000;

pub(super) fn jumbo_check(v: &mut Verdicts, g: &Guest) -> Result<()> {
    let mtu = |g: &Guest| -> Result<String> {
        Ok(g.run(&format!("cat /sys/class/net/{IFACE}/mtu"), SHORT)?
            .trim()
            .to_string())
    };
    let before = mtu(g)?;
    let result = attach_at_jumbo_mtu(v, g);
    let restored = g
        .run(&format!("ip link set dev {IFACE} mtu {before}"), SHORT)
        .and_then(|_| mtu(g));
    v.check(
        "jumbo MTU given back",
        restored.as_ref().is_ok_and(|m| *m == before),
        format!("before {before}, after {restored:?}"),
    );
    result
}

fn attach_at_jumbo_mtu(v: &mut Verdicts, g: &Guest) -> Result<()> {
    g.run(&format!("ip link set dev {IFACE} mtu {JUMBO_MTU}"), SHORT)?;
    let run = guest::start_synguard(g, "jumbo")?;
    let (native, attached) = native_attach(g, &run)?;
    let s0 = guest::stats(g)?;
    let page = traffic::fetch(WEB_PORT, 10);
    let s1 = guest::stats(g)?;
    run.signal_and_wait(g, "TERM")?;
    let answered =
        guest::verdict(&s1, "tx_synack_cookie") - guest::verdict(&s0, "tx_synack_cookie");
    v.check(
        "MTU 9000: native attach, a handshake answered from XDP",
        native && page.is_ok() && answered >= 1,
        format!(
            "{attached}; fetch: {}; SYN-ACKs from XDP: {answered}",
            match &page {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("{e:#}"),
            }
        ),
    );
    Ok(())
}
