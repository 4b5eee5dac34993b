//! The defences the flood runs compare, each put in place in the server's namespace of a fresh lab
//! (so nothing carries over from one defence to the next) and removed when the guard drops.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context as _, Result, anyhow, bail};
use aya::programs::{Xdp, XdpMode};
use serde::Serialize;

use crate::lab::netns::Netns;
use crate::lab::synguard_proc::{Stats, Synguard};
use crate::lab::topology::Lab;

/// The protected port.
pub const PORT: u16 = 80;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Defence {
    /// Default kernel settings (a new namespace has tcp_syncookies=1: cookies on overflow).
    None,
    /// The kernel's own cookies for every SYN (`tcp_syncookies=2`).
    KernelCookies,
    /// netfilter SYNPROXY with iptables rules in the server's namespace.
    Synproxy,
    /// `synguard run --mode always`.
    SynguardAlways,
    /// `synguard run --mode auto` with a threshold far below any flood.
    SynguardAuto,
    /// `synguard run --mode always --cookies own`: own cookies, no kernel setting changed.
    SynguardOwn,
    /// Floor: `lab_floor_tx` on the server's interface: the flood's frames (spoof pool sources)
    /// swapped and sent back with XDP_TX, everything else to the stack.
    FloorXdpTx,
    /// Floor: `lab_floor_drop` on the server's interface: the flood's frames dropped, everything
    /// else to the stack.
    FloorXdpDrop,
}

pub const ALL: [Defence; 8] = [
    Defence::None,
    Defence::KernelCookies,
    Defence::Synproxy,
    Defence::SynguardAlways,
    Defence::SynguardAuto,
    Defence::SynguardOwn,
    Defence::FloorXdpTx,
    Defence::FloorXdpDrop,
];

impl Defence {
    pub fn name(self) -> &'static str {
        match self {
            Defence::None => "none",
            Defence::KernelCookies => "kernel-cookies",
            Defence::Synproxy => "synproxy",
            Defence::SynguardAlways => "synguard-always",
            Defence::SynguardAuto => "synguard-auto",
            Defence::SynguardOwn => "synguard-own",
            Defence::FloorXdpTx => "floor-xdp-tx",
            Defence::FloorXdpDrop => "floor-xdp-drop",
        }
    }

    pub fn parse(name: &str) -> Result<Defence> {
        match ALL.iter().find(|d| d.name() == name) {
            Some(d) => Ok(*d),
            None => bail!(
                "no defence {name}; known: {}",
                ALL.map(Defence::name).join(", ")
            ),
        }
    }

    /// Puts the defence in place in `lab`'s server namespace.
    pub fn apply(self, lab: &Lab, synguard_bin: &Path) -> Result<Active> {
        let ns = &lab.server.ns;
        let iface = lab.server.ifname.as_str();
        let mut active = Active {
            synguard: None,
            _xdp: None,
        };
        match self {
            Defence::None => {}
            Defence::KernelCookies => ns.sysctl("net.ipv4.tcp_syncookies", "2")?,
            Defence::Synproxy => synproxy(ns, iface)?,
            Defence::SynguardAlways | Defence::SynguardAuto | Defence::SynguardOwn => {
                let port = PORT.to_string();
                let mut args = vec!["--ports", &port];
                args.extend(match self {
                    Defence::SynguardAlways => ["--mode", "always"].as_slice(),
                    Defence::SynguardOwn => ["--mode", "always", "--cookies", "own"].as_slice(),
                    // Far below any flood here, far above the legitimate clients' few SYN/s.
                    _ => ["--mode", "auto", "--syn-threshold", "2000", "--hold", "1"].as_slice(),
                });
                active.synguard = Some(Synguard::start(synguard_bin, ns, iface, &args)?);
            }
            Defence::FloorXdpTx => active._xdp = Some(LabXdp::attach(ns, iface, "lab_floor_tx")?),
            Defence::FloorXdpDrop => {
                active._xdp = Some(LabXdp::attach(ns, iface, "lab_floor_drop")?)
            }
        }
        Ok(active)
    }
}

/// A defence in place; removed on drop (synguard stopped, lab XDP program detached). Sysctls and
/// netfilter rules go with the lab's namespace.
pub struct Active {
    synguard: Option<Synguard>,
    _xdp: Option<LabXdp>,
}

impl Active {
    /// synguard's counters, when the defence is synguard.
    pub fn synguard_stats(&self) -> Result<Option<Stats>> {
        self.synguard.as_ref().map(Synguard::stats).transpose()
    }

    /// The pid of `synguard run`, when the defence is synguard.
    pub fn synguard_pid(&self) -> Option<u32> {
        self.synguard.as_ref().and_then(Synguard::pid)
    }
}

/// netfilter SYNPROXY for the protected port, as its documentation sets it up: SYNs skip
/// conntrack, SYNPROXY answers them with cookies, invalid packets are dropped. Seen on the test
/// machines (docs/measuring.md, "What the flood runs compare against"): established
/// connections die when these rules go in, so the lab adds them before any connection exists;
/// the iptables variant (not nft) keeps IPv4 SYN handling as documented.
fn synproxy(ns: &Netns, iface: &str) -> Result<()> {
    let to_port = format!("-i {iface} -p tcp --dport {PORT}");
    let rules = [
        format!("-t raw -A PREROUTING {to_port} --syn -j CT --notrack"),
        format!(
            "-A INPUT {to_port} -m conntrack --ctstate INVALID,UNTRACKED -j SYNPROXY --sack-perm \
             --timestamp --wscale 7 --mss 1460"
        ),
        format!("-A INPUT {to_port} -m conntrack --ctstate INVALID -j DROP"),
    ];
    for rule in &rules {
        let args: Vec<&str> = rule.split_whitespace().collect();
        ns.run("iptables", &args)
            .with_context(|| format!("iptables {rule}"))?;
    }
    // Without this, conntrack would pick up ACKs of connections it never saw and let them in.
    ns.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")
}

/// A program of the lab object attached to an interface in another namespace, held by a thread
/// inside it (attaching resolves the name and talks netlink in the caller's namespace).
struct LabXdp {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl LabXdp {
    fn attach(ns: &Netns, iface: &str, prog: &'static str) -> Result<LabXdp> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let iface = iface.to_string();
        let thread = ns.spawn("lab-floor", move || match load(&iface, prog) {
            Ok(ebpf) => {
                let _ = ready_tx.send(Ok(()));
                let _ = stop_rx.recv();
                drop(ebpf);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("{prog} thread ended before attaching"))??;
        Ok(LabXdp {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

fn load(iface: &str, name: &str) -> Result<aya::Ebpf> {
    let mut ebpf = aya::Ebpf::load(synguard::objects::lab()).context("loading the lab object")?;
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("no {name} in the lab object"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {name}"))?;
    prog.attach(iface, XdpMode::Driver)
        .with_context(|| format!("attaching {name} to {iface}"))?;
    Ok(ebpf)
}

impl Drop for LabXdp {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in ALL {
            assert_eq!(Defence::parse(d.name()).unwrap(), d);
        }
        assert!(Defence::parse("nope").is_err());
    }
}
