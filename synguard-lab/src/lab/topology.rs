//! The lab: server, client and attacker namespaces, each with one veth (named per lab) whose peer
//! sits on a bridge in a fourth namespace. Only the benchmarking ranges are used (198.18.0.0/24,
//! 2001:2::/64), and only inside these namespaces. Everything is torn down on drop, also when a
//! test panics; namespaces left by a killed process are removed by the next lab.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context as _, Result, anyhow};
use aya::programs::{Xdp, XdpMode};

use crate::lab::netns::{self, Netns, run_checked};

pub const SERVER_V4: Ipv4Addr = lab_v4(1);
pub const CLIENT_V4: Ipv4Addr = lab_v4(2);
pub const ATTACKER_V4: Ipv4Addr = lab_v4(3);
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
pub const ATTACKER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 3);
/// A down veth in the attacker's and the bridge's namespace that nothing uses: the flood
/// generator attaches its program there while it sends (flood::generator).
pub const IDLE_DEV: &str = "sg-idle";
use synguard_common::lab::LAB_NET_V4;
/// The attacker spoofs sources only from 198.18.0.128/25 (`synguard_common::lab`).
pub use synguard_common::lab::{SPOOF_POOL_FIRST, in_spoof_pool};

/// The server's address and `port`, over IPv6 or IPv4.
pub fn server_addr(v6: bool, port: u16) -> std::net::SocketAddr {
    let ip: IpAddr = if v6 {
        SERVER_V6.into()
    } else {
        SERVER_V4.into()
    };
    std::net::SocketAddr::new(ip, port)
}

/// The n-th address of the spoof pool (wraps inside 198.18.0.128/25).
pub fn spoof_addr(n: u8) -> Ipv4Addr {
    lab_v4(SPOOF_POOL_FIRST | (n & 0x7f))
}

/// Host `host` of the lab's IPv4 network (`synguard_common::lab::LAB_NET_V4`).
const fn lab_v4(host: u8) -> Ipv4Addr {
    let [a, b, c] = LAB_NET_V4;
    Ipv4Addr::new(a, b, c, host)
}

/// One host of the lab.
#[derive(Debug)]
pub struct Node {
    pub ns: Netns,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    pub mac: &'static str,
    /// The node's one interface. Unique per lab (not "eth0"): synguard keys its lock and pinned
    /// maps by interface name, so two labs running at once must not share one.
    pub ifname: String,
}

impl Node {
    pub fn addr(&self, v6: bool) -> IpAddr {
        if v6 { self.v6.into() } else { self.v4.into() }
    }

    /// Packets sent by the node's interface so far (from `ip -s -j link`).
    pub fn tx_packets(&self) -> Result<u64> {
        let out = self
            .ns
            .ip(&["-s", "-j", "link", "show", "dev", &self.ifname])?;
        let json: serde_json::Value = serde_json::from_str(&out).context("parsing ip -j output")?;
        json[0]["stats64"]["tx"]["packets"]
            .as_u64()
            .ok_or_else(|| anyhow!("no stats64.tx.packets in `ip -s -j link` output"))
    }
}

/// The running lab. Dropping it stops the peer XDP program, kills every process in the lab's
/// namespaces and deletes them.
pub struct Lab {
    pub id: String,
    peer_pass: Option<PeerXdp>,
    pub server: Node,
    pub client: Node,
    pub attacker: Node,
    bridge: Netns,
}

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Builds a fresh lab with names unique to this process (`sgl-<pid>-<seq>-*`), after removing
    /// namespaces that dead lab processes left behind.
    pub fn new() -> Result<Lab> {
        Lab::with_server_queues(1)
    }

    /// [`Lab::new`] with `queues` receive and transmit queues on the server's veth and its peer
    /// (one NAPI poll per queue, as a multi-queue NIC has one per receive ring).
    pub fn with_server_queues(queues: usize) -> Result<Lab> {
        anyhow::ensure!(
            (1..=64).contains(&queues),
            "server queues {queues} not in 1..=64"
        );
        let removed = netns::cleanup_stale().context("cleaning up stale lab namespaces")?;
        if removed > 0 {
            log::info!("removed {removed} stale lab namespaces");
        }
        let (pid, seq) = (std::process::id(), LAB_SEQ.fetch_add(1, Ordering::Relaxed));
        let id = format!("sgl-{pid}-{seq}");
        let ifname = format!("sg{pid}n{seq}");
        // Each piece is owned as soon as it exists, so an error half-way tears down what was made.
        let bridge = Netns::create(&format!("{id}-br"))?;
        bridge.ip(&["link", "add", "br0", "type", "bridge"])?;
        bridge.ip(&["link", "set", "br0", "up"])?;
        let server = add_node(
            &bridge,
            &id,
            ("srv", queues),
            SERVER_V4,
            SERVER_V6,
            "02:5e:00:00:00:01",
            &ifname,
        )?;
        let client = add_node(
            &bridge,
            &id,
            ("cli", 1),
            CLIENT_V4,
            CLIENT_V6,
            "02:5e:00:00:00:02",
            &ifname,
        )?;
        let attacker = add_node(
            &bridge,
            &id,
            ("atk", 1),
            ATTACKER_V4,
            ATTACKER_V6,
            "02:5e:00:00:00:03",
            &ifname,
        )?;
        let mut lab = Lab {
            id,
            peer_pass: None,
            server,
            client,
            attacker,
            bridge,
        };
        lab.configure()?;
        Ok(lab)
    }

    fn configure(&mut self) -> Result<()> {
        // Frames on a real wire carry complete checksums; locally generated ones on veth carry
        // partial ones (CHECKSUM_PARTIAL, docs/veth-and-nics.md), which is not what an XDP
        // program on a NIC sees. So the senders compute checksums in software.
        for node in [&self.client, &self.attacker] {
            node.ns.run("ethtool", &["-K", &node.ifname, "tx", "off"])?;
        }
        self.spoof_neighbours()?;
        // hping3 resolves the server's MAC before it sends, and the floors answer no ARP
        // (XDP_DROP drops it, the swap floor echoes it): a permanent entry, as the server has
        // for the spoof pool.
        self.attacker.ns.ip(&[
            "neigh",
            "replace",
            &self.server.v4.to_string(),
            "lladdr",
            self.server.mac,
            "dev",
            &self.attacker.ifname,
            "nud",
            "permanent",
        ])?;
        for ns in [&self.attacker.ns, &self.bridge] {
            ns.ip(&[
                "link",
                "add",
                IDLE_DEV,
                "type",
                "veth",
                "peer",
                "name",
                "sg-idle-peer",
            ])?;
        }
        // XDP_TX frames on a veth reach the peer reliably only if the peer has an XDP program too
        // (docs/veth-and-nics.md): give the server's bridge-side peer a pass-through one.
        self.peer_pass = Some(PeerXdp::attach(
            &self.bridge,
            &peer_name("srv"),
            "lab_pass",
        )?);
        Ok(())
    }

    /// Replies to spoofed sources leave the server only if it can resolve their MAC (platform
    /// notes): point the whole spoof pool at the attacker with permanent neighbour entries.
    fn spoof_neighbours(&self) -> Result<()> {
        let batch: String = (0..128u8)
            .map(|n| {
                format!(
                    "neigh replace {} lladdr {} dev {} nud permanent\n",
                    spoof_addr(n),
                    self.attacker.mac,
                    self.server.ifname
                )
            })
            .collect();
        let mut child = Command::new("ip")
            .args(["-n", self.server.ns.name(), "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("starting ip -batch")?;
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().context("ip -batch stdin")?;
            stdin.write_all(batch.as_bytes())?;
        }
        let status = child.wait()?;
        anyhow::ensure!(status.success(), "ip -batch neigh failed: {status}");
        Ok(())
    }

    /// Attaches `lab_pass` to the bridge-side peer of a node's veth (`role`: "srv", "cli", "atk")
    /// until the returned handle is dropped. The flood generator's XDP_TX frames leave the
    /// attacker's veth only into a peer that has an XDP program (docs/veth-and-nics.md).
    pub fn attach_peer_pass(&self, role: &str) -> Result<PeerXdp> {
        PeerXdp::attach(&self.bridge, &peer_name(role), "lab_pass")
    }

    /// Replaces the server peer's `lab_pass` with `lab_sink` for the lab's lifetime: replies to
    /// the spoof pool end at the peer (counted in its receive counter, flood::sampler)
    /// instead of crossing the bridge to the attacker.
    pub fn sink_replies(&mut self) -> Result<()> {
        self.peer_pass.take();
        self.peer_pass = Some(PeerXdp::attach(
            &self.bridge,
            &peer_name("srv"),
            "lab_sink",
        )?);
        Ok(())
    }

    /// Sets `mtu` on every link of the lab: each node's interface and its bridge-side peer (the
    /// bridge follows its ports). A jumbo MTU needs multi-buffer XDP programs wherever one is
    /// attached on the way (`lab_pass` on the server's peer is one).
    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        let mtu = mtu.to_string();
        for (node, role) in [
            (&self.server, "srv"),
            (&self.client, "cli"),
            (&self.attacker, "atk"),
        ] {
            node.ns
                .ip(&["link", "set", "dev", &node.ifname, "mtu", &mtu])?;
            self.bridge
                .ip(&["link", "set", "dev", &peer_name(role), "mtu", &mtu])?;
        }
        Ok(())
    }

    /// The bridge's namespace (where every node's peer veth lives).
    pub fn bridge_ns(&self) -> &Netns {
        &self.bridge
    }

    /// The name of the server veth's bridge-side peer (in [`Lab::bridge_ns`]).
    pub fn server_peer(&self) -> String {
        peer_name("srv")
    }

    /// The server's receive path (its veth's NAPI poll: XDP and the stack behind it) on a kernel
    /// thread pinned to `cpu`, real-time, ahead of other work there (lab::napi). GRO is switched on so the
    /// veth polls in NAPI with or without an XDP program; receive steering (RPS) is left off, so
    /// the whole path stays in that thread.
    pub fn server_receive_thread(&self, cpu: usize) -> Result<crate::lab::napi::NapiThreads> {
        self.server_receive_threads(&[cpu])
    }

    /// [`Lab::server_receive_thread`] with one thread per receive queue, queue i's on `cpus[i]`.
    pub fn server_receive_threads(&self, cpus: &[usize]) -> Result<crate::lab::napi::NapiThreads> {
        self.server
            .ns
            .run("ethtool", &["-K", &self.server.ifname, "gro", "on"])?;
        // A veth hands an skb to its peer's NAPI only if the skb is eligible for GRO, which
        // with TSO on the sending side it is not (`veth_skb_is_eligible_for_gro`): without an
        // XDP program on the server (which turns TSO off on its peer, `veth_xdp_set`), frames
        // from the bridge would go through `netif_rx` on the sending CPU, the server's stack
        // work with them (docs/measuring.md, "CPUs and busy time").
        self.bridge
            .run("ethtool", &["-K", &peer_name("srv"), "tso", "off"])?;
        crate::lab::napi::thread_napi_on(&self.server.ns, &self.server.ifname, cpus, true)
    }

    /// Kills the processes started in the lab's namespaces (hping3, synguard, ...).
    pub fn kill_processes(&self) {
        for node in [&self.server, &self.client, &self.attacker] {
            node.ns.kill_all();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_processes();
        self.peer_pass.take();
        // The namespaces (and with them the veths) are deleted by the fields' own drops.
    }
}

fn peer_name(role: &str) -> String {
    format!("v-{role}")
}

/// Creates a namespace for `role` with interface `ifname` (and its bridge-side peer) of `queues`
/// queues each way, connected to the bridge, addresses and MAC set.
fn add_node(
    bridge: &Netns,
    id: &str,
    (role, queues): (&str, usize),
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    mac: &'static str,
    ifname: &str,
) -> Result<Node> {
    let ns = Netns::create(&format!("{id}-{role}"))?;
    let peer = peer_name(role);
    let q = queues.to_string();
    // Created inside the bridge namespace with the other end moved straight into the node's: no
    // device ever appears in the host's namespace. Both ends get as many receive as transmit
    // queues: XDP on a veth needs at least as many receive queues as its peer transmits on
    // (`veth_xdp_set`).
    bridge.ip(&[
        "link",
        "add",
        &peer,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        ifname,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "netns",
        ns.name(),
    ])?;
    bridge.ip(&["link", "set", &peer, "master", "br0", "up"])?;
    ns.ip(&["link", "set", ifname, "address", mac])?;
    ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname])?;
    // nodad: the address is usable at once instead of after duplicate address detection.
    ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"])?;
    ns.ip(&["link", "set", ifname, "up"])?;
    Ok(Node {
        ns,
        v4,
        v6,
        mac,
        ifname: ifname.to_string(),
    })
}

/// `lab_pass` attached to a device in another namespace. Attaching resolves the interface name
/// and talks netlink in the calling thread's namespace, so a thread that `setns`'d into that
/// namespace attaches, holds the program and detaches it again when told to stop.
pub struct PeerXdp {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl PeerXdp {
    pub fn attach(ns: &Netns, ifname: &str, prog: &'static str) -> Result<PeerXdp> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let ifname = ifname.to_string();
        let thread = ns.spawn("lab-pass", move || {
            let ebpf = match load_lab_prog(&ifname, prog) {
                Ok(ebpf) => ebpf,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            // Returns when the sender is dropped: then the program is detached here, in the
            // namespace it was attached in.
            let _ = stop_rx.recv();
            drop(ebpf);
        })?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("lab_pass thread ended before attaching"))??;
        Ok(PeerXdp {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for PeerXdp {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn load_lab_prog(ifname: &str, name: &str) -> Result<aya::Ebpf> {
    let mut ebpf = aya::Ebpf::load(synguard::objects::lab()).context("loading the lab object")?;
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("no {name} program in the lab object"))?
        .try_into()
        .with_context(|| format!("{name} is not an XDP program"))?;
    prog.load().with_context(|| format!("loading {name}"))?;
    prog.attach(ifname, XdpMode::Driver)
        .with_context(|| format!("attaching {name} to {ifname}"))?;
    Ok(ebpf)
}

/// Whether a device exists in a namespace (for checks after teardown).
pub fn device_exists(ns: &str, dev: &str) -> bool {
    run_checked(Command::new("ip").args(["-n", ns, "link", "show", dev])).is_ok()
}
