//! Bonds on a real driver: a bond hands its XDP program to each slave's driver
//! (`bond_xdp_set`, drivers/net/bonding/bond_main.c) and sends XDP_TX frames out through its
//! own choice of slave (`xdp_master_redirect`); a slave may carry a program of its own while the
//! bond has none. With the guest's virtio NIC enslaved to an active-backup bond, synguard must
//! attach natively both to the bond and to the slave, judge the slave's driver rather than the
//! bond's own offload flags, take the bond's IPv6 link-local address as the host's on either,
//! and answer a handshake from XDP whose final ACK the TC program hands to the stack through
//! the bond. The NIC leaves the bond afterwards whatever happens; if
//! the guest cannot be reached on the bond, a timer in the guest gives the NIC back by itself.

use std::time::Duration;

use anyhow::{Result, bail};

use super::{SHORT, Verdicts};
use crate::vm::guest::{self, IFACE, WEB_PORT, XdpState};
use crate::vm::net::{GUEST_ADDR, PREFIX_LEN};
use crate::vm::proc;
use crate::vm::ssh::Guest;
use crate::vm::traffic;

/// Not `bond0`: loading the bonding module with its defaults creates one of that name.
const BOND: &str = "sgbond0";
/// The guest gives the NIC back by itself this long after the switch unless told the switch
/// worked (the host can no longer reach it otherwise).
const SELF_RELEASE_S: u32 = 40;
const KEEP_FLAG: &str = "/root/bond-keep";

pub(super) fn bond_check(v: &mut Verdicts, g: &Guest) -> Result<()> {
    let result = enslave(g).and_then(|()| {
        attach_and_connect(v, g, BOND, "the bond")?;
        slave_added_while_running(v, g)?;
        attach_and_connect(v, g, IFACE, "the bond's slave")
    });
    let back = release(g);
    v.check(
        "NIC given back by the bond",
        back.as_ref().is_ok_and(|a| a.contains(GUEST_ADDR)),
        format!("{IFACE}: {back:?}"),
    );
    result
}

/// The commands that give the NIC back: out of the bond, the bond gone, the address on the NIC.
fn release_script() -> String {
    format!(
        "ip link set {IFACE} nomaster; ip link del {BOND}; ip link set {IFACE} up; \
         ip addr replace {GUEST_ADDR}/{PREFIX_LEN} dev {IFACE}"
    )
}

/// Moves the NIC and its address into an active-backup bond. Run detached in the guest: the
/// ssh session that starts it goes through the NIC being moved.
fn enslave(g: &Guest) -> Result<()> {
    let addr = format!("{GUEST_ADDR}/{PREFIX_LEN}");
    let switch = format!(
        "sleep 2; rm -f {KEEP_FLAG}; modprobe bonding max_bonds=0 && \
         ip link add {BOND} type bond mode active-backup miimon 100 && \
         ip link set {IFACE} down && ip link set {IFACE} master {BOND} && \
         ip link set {BOND} up && ip addr del {addr} dev {IFACE}; ip addr add {addr} dev {BOND}; \
         sleep {SELF_RELEASE_S}; [ -e {KEEP_FLAG} ] || ({release})",
        release = release_script()
    );
    g.write_file("/root/bond-switch.sh", &switch)?;
    // The script waits for this session to end before it moves the NIC.
    g.run(
        "setsid sh /root/bond-switch.sh >/root/bond-switch.log 2>&1 </dev/null &",
        SHORT,
    )?;
    let reached = until_reached(
        g,
        "the guest on the bond",
        // The flag only once the switch is done (the script clears it first).
        &format!("ip -br addr show {BOND} | grep -qF {GUEST_ADDR} && touch {KEEP_FLAG}"),
        |_| Some(()),
    );
    if let Err(e) = reached {
        // The guest releases the NIC itself; wait for that before the next check.
        std::thread::sleep(Duration::from_secs(u64::from(SELF_RELEASE_S)));
        bail!("the guest was not reachable on {BOND}: {e:#}");
    }
    Ok(())
}

/// `synguard run` on `iface`: a native attach whose NIC findings name the slave, and a fetch
/// whose handshake XDP answered; nothing left attached after SIGTERM.
fn attach_and_connect(v: &mut Verdicts, g: &Guest, iface: &str, what: &str) -> Result<()> {
    let run = guest::start_synguard_on(g, &format!("bond-{iface}"), iface)?;
    let log = run.log_text(g)?;
    let attach_line = line_with(&log, "synguard attached to");
    let native = attach_line.contains("(native XDP)") && !log.contains("falling back");
    // The bond's own offload flags are only what it passes on to its slaves: a finding about
    // them (`sgbond0: large-receive-offload: on`) would be a false alarm.
    let bond_flag = log
        .lines()
        .find(|l| l.contains(&format!("{BOND}: large-receive-offload")));
    // The bond's IPv6 link-local address is the host's on this link, attached to the slave too
    // (its frames arrive through the slave).
    let addresses = line_with(&log, "are the host's when addressed to");
    let link_local = addresses.contains("fe80::");
    let s0 = guest::stats_of(g, iface)?;
    let page = traffic::fetch(WEB_PORT, 10);
    let s1 = guest::stats_of(g, iface)?;
    run.signal_and_wait(g, "TERM")?;
    let left = guest::xdp_state_of(g, iface)?;
    let answered =
        guest::verdict(&s1, "tx_synack_cookie") - guest::verdict(&s0, "tx_synack_cookie");
    // With own cookies the final ACK reaches the stack through the TC program's request socket,
    // which must survive the bond's receive handler; with the kernel's, as a cookie ACK.
    let handed = if log.contains("own cookies (--cookies") {
        guest::event(&s1, "own_reqsk_assigned") - guest::event(&s0, "own_reqsk_assigned")
    } else {
        guest::verdict(&s1, "pass_cookie_ack") - guest::verdict(&s0, "pass_cookie_ack")
    };
    v.check(
        &format!("{what}: native attach, a handshake answered from XDP, nothing left"),
        native
            && bond_flag.is_none()
            && link_local
            && page.is_ok()
            && answered >= 1
            && handed >= 1
            && left == XdpState::None,
        format!(
            "log: {attach_line}; false alarm: {bond_flag:?}; {addresses}; fetch: {}; counters: \
             {}; after SIGTERM: {left:?}",
            match &page {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("{e:#}"),
            },
            guest::counters_moved(&s0, &s1)
        ),
    );
    Ok(())
}

/// A veth enslaved to the bond while synguard runs on it: the bond passes its program on to the
/// new slave, and synguard, which follows the bond's slaves, says so and names what the NIC
/// check finds about it (a veth whose peer has no XDP program drops what XDP_TX sends through
/// it); the veth released again is said too.
fn slave_added_while_running(v: &mut Verdicts, g: &Guest) -> Result<()> {
    const VETH: &str = "sgbv0";
    let run = guest::start_synguard_on(g, "bond-added", BOND)?;
    let added = g.run(
        &format!(
            "ip link add {VETH} type veth peer name sgbv1 && ip link set {VETH} master {BOND} \
             && ip -br link show {VETH}"
        ),
        SHORT,
    );
    let said = |text: String| {
        proc::wait_for(
            "synguard's log",
            Duration::from_secs(10),
            Duration::from_millis(500),
            || Ok(run.log_text(g)?.contains(&text).then_some(())),
        )
    };
    let joined = said(format!("bond slaves {IFACE} -> {IFACE}, {VETH}"));
    let log = run.log_text(g)?;
    let finding = line_with(&log, &format!("{BOND} (slave {VETH})"));
    let _ = g.run(&format!("ip link set {VETH} nomaster"), SHORT);
    let left = said(format!("bond slaves {IFACE}, {VETH} -> {IFACE}"));
    let _ = g.run(&format!("ip link del {VETH}"), SHORT);
    run.signal_and_wait(g, "TERM")?;
    v.check(
        "a slave enslaved while running: said, with the NIC check's findings about it",
        added.is_ok() && joined.is_ok() && finding.contains("WARN") && left.is_ok(),
        format!("enslaved: {added:?}; joined: {joined:?}; finding: {finding}; left: {left:?}"),
    );
    Ok(())
}

/// The first line of `log` containing `text`, or a note that there is none.
fn line_with(log: &str, text: &str) -> String {
    log.lines().find(|l| l.contains(text)).map_or_else(
        || format!("(no line with {text:?})"),
        |l| l.trim().to_string(),
    )
}

/// Gives the NIC back (detached, as the switch) and returns its addresses as `ip -br addr`
/// shows them once the guest answers on it again.
fn release(g: &Guest) -> Result<String> {
    g.write_file(
        "/root/bond-release.sh",
        &format!("touch {KEEP_FLAG}; sleep 2; {}", release_script()),
    )?;
    g.run(
        "setsid sh /root/bond-release.sh >/root/bond-release.log 2>&1 </dev/null &",
        SHORT,
    )?;
    until_reached(
        g,
        "the guest on its NIC again",
        &format!("ip -br link show {BOND} 2>/dev/null; ip -br addr show {IFACE}"),
        |out| (!out.contains(BOND) && out.contains(GUEST_ADDR)).then(|| out.to_string()),
    )
}

/// Runs `script` in the guest every 2 s until it succeeds with an output `accept` takes, for
/// up to 30 s. An ssh that cannot connect yet (the NIC is moving) is a try again, not an error.
fn until_reached<T>(
    g: &Guest,
    what: &str,
    script: &str,
    accept: impl Fn(&str) -> Option<T>,
) -> Result<T> {
    proc::wait_for(
        what,
        Duration::from_secs(30),
        Duration::from_secs(2),
        || {
            Ok(match g.try_run(script, Duration::from_secs(10)) {
                Ok((0, out, _)) => accept(&out),
                _ => None,
            })
        },
    )
}
