//! What synguard says about the interface's driver before it attaches (`datapath::nic_check`),
//! on a veth pair whose two ends share one namespace, so the peer's XDP program is visible:
//! `doctor` and `run` name the missing peer program and the fix, and stop naming it once the
//! peer has one. Root and namespaces; run with `--test-threads=1`.

use anyhow::{Context as _, Result, ensure};
use synguard_lab::lab::netns::Netns;
use synguard_lab::lab::synguard_proc::{self, Synguard};
use synguard_lab::lab::topology::PeerXdp;

mod common;
use common::{bin, require_root};

/// A namespace holding both ends of one veth pair, up.
struct Pair {
    ns: Netns,
    iface: String,
    peer: String,
}

impl Pair {
    fn new() -> Result<Pair> {
        let pid = std::process::id();
        let ns = Netns::create(&format!("sgl-{pid}-nic"))?;
        // Unique names: synguard's pins live on the host's bpffs, named by interface.
        let (iface, peer) = (format!("sg{pid}a"), format!("sg{pid}b"));
        ns.ip(&["link", "add", &iface, "type", "veth", "peer", "name", &peer])?;
        for dev in [&iface, &peer] {
            ns.ip(&["link", "set", dev, "up"])?;
        }
        Ok(Pair { ns, iface, peer })
    }

    /// `synguard doctor --iface IFACE`'s output.
    fn doctor(&self) -> Result<String> {
        let out = synguard_proc::run_once(
            &bin()?,
            &self.ns.path(),
            &["doctor", "--iface", &self.iface],
        )?;
        // doctor exits 1 while any check warns (a fresh namespace's backlog sysctls do), 2 on a
        // usage error: only the latter is a failure here.
        ensure!(
            matches!(out.status.code(), Some(0 | 1)),
            "doctor failed: {out:?}"
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The doctor line of the veth peer check.
    fn peer_line(&self) -> Result<String> {
        self.doctor_line("XDP program on the veth peer")
    }

    /// The first line of doctor's output that contains `check`.
    fn doctor_line(&self, check: &str) -> Result<String> {
        let text = self.doctor()?;
        text.lines()
            .find(|l| l.contains(check))
            .map(str::to_string)
            .with_context(|| format!("no {check:?} line in doctor's output:\n{text}"))
    }
}

#[test]
fn veth_peer_without_a_program_is_named_with_the_fix() -> Result<()> {
    require_root();
    let pair = Pair::new()?;
    let line = pair.peer_line()?;
    eprintln!("doctor: {line}");
    ensure!(line.starts_with("WARN"), "doctor should warn: {line}");
    ensure!(
        line.contains(&format!("missing on peer {}", pair.peer))
            && line.contains(&format!(
                "fix: attach an XDP program (XDP_PASS is enough; multi-buffer, `xdp.frags`, \
                 at a jumbo MTU) to {}",
                pair.peer
            )),
        "doctor names the peer and the fix: {line}"
    );

    let sg = Synguard::start(&bin()?, &pair.ns, &pair.iface, &["--ports", "80"])?;
    let log = sg.log_text();
    sg.stop()?;
    let warning = log
        .lines()
        .find(|l| l.contains("XDP program on the veth peer"))
        .with_context(|| format!("run logged no veth peer warning:\n{log}"))?;
    eprintln!("run: {warning}");
    ensure!(
        warning.contains("WARN")
            && warning.contains(&format!(
                "{}: XDP program on the veth peer: missing on peer {}",
                pair.iface, pair.peer
            ))
            && warning.contains("fix: attach an XDP program"),
        "run's warning: {warning}"
    );
    Ok(())
}

#[test]
fn veth_peer_with_a_program_passes() -> Result<()> {
    require_root();
    let pair = Pair::new()?;
    let _pass = PeerXdp::attach(&pair.ns, &pair.peer, "lab_pass")?;
    let line = pair.peer_line()?;
    eprintln!("doctor: {line}");
    ensure!(
        line.starts_with("ok") && line.contains(&format!("on peer {}", pair.peer)),
        "doctor finds the peer's program: {line}"
    );
    Ok(())
}

/// `doctor` on the reverse-path filter: strict, with a route out of the other interface, the
/// program follows it (SYNs the kernel drops are left to it); with a policy routing rule it
/// cannot, and says so as a warning.
#[test]
fn doctor_says_how_the_reverse_path_filter_is_followed() -> Result<()> {
    require_root();
    let pair = Pair::new()?;
    pair.ns
        .ip(&["addr", "add", "198.18.41.1/24", "dev", &pair.iface])?;
    pair.ns
        .ip(&["route", "add", "10.99.0.0/16", "dev", &pair.peer])?;
    let rp_line = |pair: &Pair| pair.doctor_line(&format!("rp_filter, {}", pair.iface));
    pair.ns
        .sysctl(&format!("net.ipv4.conf.{}.rp_filter", pair.iface), "1")?;
    let line = rp_line(&pair)?;
    eprintln!("doctor: {line}");
    ensure!(
        line.starts_with("ok")
            && line.contains("SYNs from sources it drops are left to the kernel"),
        "doctor says the filter is followed: {line}"
    );
    pair.ns
        .ip(&["rule", "add", "from", "10.99.0.0/16", "lookup", "100"])?;
    let line = rp_line(&pair)?;
    eprintln!("doctor: {line}");
    ensure!(
        line.starts_with("WARN") && line.contains("policy routing rules"),
        "doctor says the filter is not followed: {line}"
    );
    Ok(())
}

/// `doctor` on the host's addresses: one address is held in the config's slots; twelve more
/// and an AnyIP prefix put IPv4 in the program's table, which the line counts.
#[test]
fn doctor_says_where_the_hosts_addresses_are_held() -> Result<()> {
    require_root();
    let pair = Pair::new()?;
    pair.ns
        .ip(&["addr", "add", "198.18.42.1/24", "dev", &pair.iface])?;
    let line = |pair: &Pair| pair.doctor_line(&format!("host addresses, {}", pair.iface));
    let first = line(&pair)?;
    eprintln!("doctor: {first}");
    ensure!(
        first.starts_with("ok") && first.contains("both in the config's slots"),
        "{first}"
    );
    for i in 2..14 {
        pair.ns.ip(&[
            "addr",
            "add",
            &format!("198.18.42.{i}/24"),
            "dev",
            &pair.iface,
        ])?;
    }
    pair.ns
        .ip(&["route", "add", "local", "198.18.43.0/24", "dev", "lo"])?;
    let more = line(&pair)?;
    eprintln!("doctor: {more}");
    ensure!(
        more.starts_with("ok")
            && more.contains("IPv4 in the program's table")
            && more.contains("13 IPv4 addresses and local route 198.18.43.0/24"),
        "{more}"
    );
    Ok(())
}

/// `doctor` on the host's packet filter: nothing on the way in at first; with iptables' INPUT
/// policy at DROP (the nf_tables backend), the table and what it does, and what it means for
/// synguard. A note, not a warning: whether its restrictions are mirrored cannot be told.
#[test]
fn doctor_says_what_the_packet_filter_does_on_the_way_in() -> Result<()> {
    require_root();
    let pair = Pair::new()?;
    let line = |pair: &Pair| pair.doctor_line("netfilter input");
    let open = line(&pair)?;
    eprintln!("doctor: {open}");
    ensure!(open.starts_with("ok") && open.contains("accepts"), "{open}");
    pair.ns.run("iptables", &["-P", "INPUT", "DROP"])?;
    let closed = line(&pair)?;
    eprintln!("doctor: {closed}");
    ensure!(
        closed.starts_with("ok")
            && closed.contains("table ip filter (policy drop in INPUT)")
            && closed.contains("synguard block add"),
        "{closed}"
    );
    Ok(())
}
