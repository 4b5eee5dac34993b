//! `cargo xtask bench`: the XDP program's time per packet for each path, from
//! `BPF_PROG_TEST_RUN` with `repeat`, beside a minimal address-swapping XDP_TX program measured in
//! the same run as the floor. The floor is also measured right before every round of every
//! path, and each path's ratio to the floor is the median of those pairs: the host's speed
//! drifts by tens of percent over a run on these VMs, and a pair sees the same drift.
//!
//! Each figure is checked to measure the path it names: the verdict counter of that path must grow
//! by exactly the number of runs. Rewriting paths (a SYN answered) run under `lab_restore`, which
//! restores the frame before every run; the wrapper's own cost (measured with `lab_pass` as its
//! target) is subtracted. So do handshakes' final ACKs, which stamp the connection table: the
//! wrapper empties their slot before every run, so that each checks its cookie.

use std::net::{TcpListener, TcpStream};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use aya::{
    Ebpf,
    maps::{Array, ProgramArray},
    programs::{ProgramFd, TestRun as _, TestRunOptions, Xdp},
};
use etherparse::TcpOptionElement;
use synguard_common::{
    conns::conn_slot,
    conns::conns_valid_until,
    lab::{TEMPLATE_MAX, Template},
    maps::{COOKIES_OWN, Config, HOST_RP_STRICT, RP_ROUTE_ELSEWHERE, RP_ROUTE_HERE},
    names::{
        self,
        lab::{LAB_CONNS, LAB_TARGET, LAB_TEMPLATE},
    },
    reason::Reason,
    reqsk::CookieSecret,
    tcp::ACK,
};

use super::{
    fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX, default_config},
    frames::{self, Segment, Tags},
};

/// A path that does not rewrite the frame: name, frame, the verdict it must take, and
/// whether the connection table is trusted (as the loader keeps it) or not (the socket
/// lookup decides, as before the loader's first pass).
type Direct<'a> = (&'static str, &'a [u8], Reason, bool);

/// The connection table as the loader keeps it (`on`: promised for the next minute, the
/// established connection stamped), or untrusted and empty.
fn connection_table(fx: &mut Fixture, est: &[u8], on: bool) -> Result<()> {
    let now = synguard::host::clock::monotonic_ns();
    if on {
        fx.set_conns_state(conns_valid_until(now))?;
        fx.stamp_conn(est, now)
    } else {
        fx.set_conns_state(0)?;
        fx.clear_conn(est)
    }
}

/// A path run under `lab_restore`: name, frame, the verdict it must take, the action it must
/// return, and whether the wrapper empties the frame's connection-table slot before each run.
type Wrapped<'a> = (&'static str, &'a [u8], Reason, u32, bool);

/// The lab's programs, loaded with `fx`'s connection table as `LAB_CONNS`: shared through a
/// pin that exists only while the object loads.
fn lab_for(fx: &Fixture, tag: &str) -> Result<Ebpf> {
    let pin = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/synguard-bench-{}-{tag}",
        std::process::id()
    ));
    fx.map_ref(names::CONNS)?
        .pin(&pin)
        .with_context(|| format!("pinning the connection table at {}", pin.display()))?;
    let loaded = aya::EbpfLoader::new()
        .map_pin_path(LAB_CONNS, pin.as_path())
        .load(synguard::objects::lab());
    std::fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
    let mut lab = loaded.context("loading lab programs")?;
    for name in ["lab_restore", "lab_pass", "lab_swap_tx", "lab_drop"] {
        let p: &mut Xdp = lab
            .program_mut(name)
            .ok_or_else(|| anyhow!("no {name}"))?
            .try_into()?;
        p.load().with_context(|| format!("loading {name}"))?;
    }
    Ok(lab)
}

/// One measured path.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathResult {
    pub path: &'static str,
    /// Median over the rounds, ns per packet.
    pub ns_median: f64,
    pub ns_min: f64,
    pub ns_max: f64,
    /// Median over the rounds of the round's ns over the XDP_TX floor's, measured right before
    /// it (`Bench::floor_round`).
    pub floor_ratio: f64,
    /// What the program did on this path.
    pub verdict: &'static str,
}

/// Loaded programs and the frames of every path.
pub struct Bench {
    fixture: Fixture,
    /// The same program with own cookies (`--cookies own`), measured side by side.
    own: Fixture,
    /// `own`'s configuration.
    own_cfg: Config,
    /// The lab's programs, sharing `fixture`'s connection table.
    lab: Ebpf,
    /// The same, sharing `own`'s.
    lab_own: Ebpf,
    /// Keeps the established connection the "established data" path needs alive.
    _conn: (TcpListener, TcpStream, TcpStream),
    est_frame: Vec<u8>,
    /// The frame the XDP_TX floor runs on (the IPv4 SYN of the SYN paths).
    floor_frame: Vec<u8>,
}

const PORT: u16 = 80;

impl Bench {
    /// Instructions the verifier processed for each program of the own-cookie object (which
    /// holds every program; the kernel-cookie object's `synguard` is the same code).
    pub fn verified_insns(&self) -> Vec<(String, u32)> {
        self.own.verified_insns()
    }

    pub fn new() -> Result<Self> {
        // A real established TCP connection on loopback in this netns: BPF_PROG_TEST_RUN runs
        // XDP on the loopback device of the caller's netns, so the socket lookup finds it.
        let listener = TcpListener::bind("127.0.0.1:0").context("loopback listener")?;
        let est_port = listener.local_addr()?.port();
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (server, _) = listener.accept()?;
        let cport = client.local_addr()?.port();
        let seg = Segment {
            sport: cport,
            dport: est_port,
            seq: 1,
            ack: 1,
            flags: ACK,
            window: 512,
            options: vec![],
            payload: vec![0x42; 64],
        };
        let est_frame = frames::tcp_v4(
            [127, 0, 0, 1],
            [127, 0, 0, 1],
            Tags::None,
            (frames::CLIENT_MAC, frames::SERVER_MAC),
            &seg,
        );

        // The established path runs on loopback, where 127.0.0.1 talking to itself is normal;
        // the destination check stays on, with that address the host's beside the server's.
        let cfg = crate::testrun::fixture::with_local(
            synguard_common::maps::Config {
                loopback: 1,
                ..default_config()
            },
            &[frames::SERVER_V4, [127, 0, 0, 1]],
            &[frames::SERVER_V6],
        );
        let fixture = Fixture::new(cfg, &[PORT, est_port])?;
        let own_cfg = synguard_common::maps::Config {
            cookies: COOKIES_OWN,
            ..cfg
        };
        let mut own = Fixture::new(own_cfg, &[PORT, est_port])?;
        own.set_secret(CookieSecret {
            current: [0x0123_4567_89ab_cdef, 0x0f1e_2d3c_4b5a_6978],
            ..Default::default()
        })?;
        let lab = lab_for(&fixture, "kernel")?;
        let lab_own = lab_for(&own, "own")?;
        Ok(Bench {
            fixture,
            own,
            own_cfg,
            lab,
            lab_own,
            _conn: (listener, client, server),
            est_frame,
            floor_frame: syn_v4(),
        })
    }

    /// The lab object that shares the connection table of the kernel-cookie fixture, or of the
    /// own-cookie one.
    fn lab(&self, own: bool) -> &Ebpf {
        if own { &self.lab_own } else { &self.lab }
    }

    fn lab_prog(&self, own: bool, name: &str) -> Result<&Xdp> {
        xdp_prog(self.lab(own), name)
    }

    /// Makes `lab_restore` of the lab object `own` write `frame` back and run `fd`; `forget`:
    /// empty `frame`'s connection-table slot first.
    fn set_target(&mut self, own: bool, fd: ProgramFd, frame: &[u8], forget: bool) -> Result<()> {
        ensure!(frame.len() <= TEMPLATE_MAX, "template too long");
        let forget_slot = if forget {
            conn_slot(frames::flow_hash_of(frame)?) + 1
        } else {
            0
        };
        let mut t = Template {
            len: frame.len() as u32,
            forget_slot,
            bytes: [0; TEMPLATE_MAX],
        };
        t.bytes[..frame.len()].copy_from_slice(frame);
        let lab = if own {
            &mut self.lab_own
        } else {
            &mut self.lab
        };
        let mut tpl: Array<_, Template> = Array::try_from(
            lab.map_mut(LAB_TEMPLATE)
                .ok_or_else(|| anyhow!("no LAB_TEMPLATE"))?,
        )?;
        tpl.set(0, t, 0)?;
        let mut target = ProgramArray::try_from(
            lab.map_mut(LAB_TARGET)
                .ok_or_else(|| anyhow!("no LAB_TARGET"))?,
        )?;
        target.set(0, &fd, 0)?;
        Ok(())
    }

    /// ns per packet of `prog` on `frame` over `repeat` runs, and the action it returned.
    fn time(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<(f64, u32)> {
        let mut out = vec![0u8; frame.len() + 256];
        let r = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..Default::default()
        })?;
        // The kernel reports the mean time of one run.
        Ok((r.duration.as_nanos() as f64, r.return_value))
    }

    /// One round of the XDP_TX floor, on the SYN frame, as every path's round is paired with.
    fn floor_round(lab: &Ebpf, frame: &[u8], repeat: u32) -> Result<f64> {
        let (ns, act) = Self::time(xdp_prog(lab, "lab_swap_tx")?, frame, repeat)?;
        ensure!(act == XDP_TX, "floor: returned {act}");
        Ok(ns)
    }

    /// Runs every path whose name contains `filter` (all with an empty filter) `rounds` times
    /// with `repeat` runs each and returns the figures.
    pub fn run(&mut self, rounds: usize, repeat: u32, filter: &str) -> Result<Vec<PathResult>> {
        let syn = syn_v4();
        let syn6 = frames::client_syn_v6(
            Tags::None,
            &Segment::syn(40000, PORT, 7, frames::linux_syn_options(1440, 1, 7)),
        );
        let (good_ack, bogus_ack) = self.acks(&syn, false)?;
        let (own_good, own_bogus) = self.acks(&syn, true)?;
        let unprotected = frames::client_syn_v4(
            Tags::None,
            &Segment::syn(40000, 8080, 7, frames::linux_syn_options(1460, 1, 7)),
        );
        let est = self.est_frame.clone();
        let direct: [Direct; 5] = [
            (
                "bogus ACK (dropped)",
                &bogus_ack,
                Reason::DropAckBadCookie,
                true,
            ),
            ("established data", &est, Reason::PassEstablished, true),
            (
                "bogus ACK, socket lookup (table not trusted)",
                &bogus_ack,
                Reason::DropAckBadCookie,
                false,
            ),
            (
                "established data, socket lookup (table not trusted)",
                &est,
                Reason::PassEstablished,
                false,
            ),
            (
                "unprotected port",
                &unprotected,
                Reason::PassUnprotectedPort,
                true,
            ),
        ];
        let own_direct: [Direct; 2] = [
            (
                "own: bogus ACK (dropped)",
                &own_bogus,
                Reason::DropAckBadCookie,
                true,
            ),
            ("own: established data", &est, Reason::PassEstablished, true),
        ];
        let mut results = Vec::new();
        let valid: [(bool, Wrapped); 2] = [
            (
                false,
                (
                    "valid cookie ACK",
                    &good_ack,
                    Reason::PassCookieAck,
                    XDP_PASS,
                    true,
                ),
            ),
            (
                true,
                (
                    "own: valid cookie ACK",
                    &own_good,
                    Reason::PassCookieAck,
                    XDP_PASS,
                    true,
                ),
            ),
        ];
        for (own, path) in valid {
            if path.0.contains(filter) {
                let fx = if own {
                    &mut self.own
                } else {
                    &mut self.fixture
                };
                connection_table(fx, &self.est_frame, true)?;
                results.extend(self.wrapped_paths(&[path], rounds, repeat, own)?);
            }
        }
        // The last of those runs left the ACK's 4-tuple stamped: the bogus ACK (same 4-tuple)
        // is to find its slot empty, as a flood's ACK does.
        self.fixture.clear_conn(&good_ack)?;
        self.own.clear_conn(&own_good)?;
        results.extend(self.direct_paths(&direct, rounds, repeat, filter, false)?);
        results.extend(self.direct_paths(&own_direct, rounds, repeat, filter, true)?);
        // A flood's ACK: no socket stamped a slot of its 4-tuple's filter entry lately, so the
        // connection table is not read (docs/connection-table.md, "The filter in front of it").
        // The rows above keep that entry fresh (the valid ACK's stamp): they read the table.
        self.fixture.age_conn_filter(&bogus_ack)?;
        self.own.age_conn_filter(&own_bogus)?;
        let flood: [Direct; 1] = [(
            "bogus ACK, a flood's (table not read)",
            &bogus_ack,
            Reason::DropAckBadCookie,
            true,
        )];
        let own_flood: [Direct; 1] = [(
            "own: bogus ACK, a flood's (table not read)",
            &own_bogus,
            Reason::DropAckBadCookie,
            true,
        )];
        results.extend(self.direct_paths(&flood, rounds, repeat, filter, false)?);
        results.extend(self.direct_paths(&own_flood, rounds, repeat, filter, true)?);
        for own in [false, true] {
            let names = if own {
                ["own: SYN answered (IPv4)", "own: SYN answered (IPv6)"]
            } else {
                ["SYN answered (IPv4)", "SYN answered (IPv6)"]
            };
            let (tx, answered) = (XDP_TX, Reason::TxSynAckCookie);
            let paths: [Wrapped; 2] = [
                (names[0], &syn, answered, tx, false),
                (names[1], &syn6, answered, tx, false),
            ];
            let paths: Vec<_> = paths.into_iter().filter(|p| p.0.contains(filter)).collect();
            results.extend(self.wrapped_paths(&paths, rounds, repeat, own)?);
        }
        let name = "own: SYN answered (IPv4), reverse path checked";
        if name.contains(filter) {
            results.extend(self.reverse_path_row(name, &syn, rounds, repeat)?);
        }
        let name = "own: SYN answered (IPv4), 13 addresses (trie)";
        if name.contains(filter) {
            results.extend(self.local_trie_row(name, &syn, rounds, repeat)?);
        }
        if "own: TC".contains(filter) || filter.is_empty() {
            results.push(self.tc_unmarked(&est, rounds, repeat, false)?);
            results.push(self.tc_unmarked(&est, rounds, repeat, true)?);
        }
        results.extend(self.floors(&syn, rounds, repeat)?);
        Ok(results)
    }

    /// Own cookies' IPv4 SYN with the reverse-path check on (`HOST_RP_STRICT`): what a host
    /// with strict `rp_filter` and a route out of another interface pays per SYN. The routes
    /// of such a host: the client's subnet here, a container bridge's prefix and the default
    /// route elsewhere.
    fn reverse_path_row(
        &mut self,
        name: &'static str,
        syn: &[u8],
        rounds: usize,
        repeat: u32,
    ) -> Result<Vec<PathResult>> {
        for (net, len, kind) in [
            ([198, 18, 0, 0], 24, RP_ROUTE_HERE),
            ([172, 17, 0, 0], 16, RP_ROUTE_ELSEWHERE),
            ([0, 0, 0, 0], 0, RP_ROUTE_ELSEWHERE),
        ] {
            self.own.route_add(net, len, kind)?;
        }
        let cfg = Config {
            cookies: self.own_cfg.cookies | HOST_RP_STRICT,
            ..self.own_cfg
        };
        self.own_syn_under(name, syn, cfg, rounds, repeat)
    }

    /// The own-cookie IPv4 SYN row `name` measured with `cfg` in the config map, which is
    /// then put back as it was.
    fn own_syn_under(
        &mut self,
        name: &'static str,
        syn: &[u8],
        cfg: Config,
        rounds: usize,
        repeat: u32,
    ) -> Result<Vec<PathResult>> {
        self.own.set_config(cfg)?;
        let path: Wrapped = (name, syn, Reason::TxSynAckCookie, XDP_TX, false);
        let results = self.wrapped_paths(&[path], rounds, repeat, true);
        self.own.set_config(self.own_cfg)?;
        results
    }

    /// Own cookies' IPv4 SYN on a host with more IPv4 addresses than the config's slots hold:
    /// the loader puts them in `SG_LOCAL_V4` (`LocalAddrs::with_table`, written as the loader
    /// writes it), and the SYN's destination and source are each looked up there. Not on a
    /// loopback device (where no source is checked), as on a NIC.
    fn local_trie_row(
        &mut self,
        name: &'static str,
        syn: &[u8],
        rounds: usize,
        repeat: u32,
    ) -> Result<Vec<PathResult>> {
        use std::net::IpAddr;
        use synguard::host::addrs::{LocalAddrs, LocalTable};
        let found = (0..12)
            .map(|i| IpAddr::from([172, 17 + i, 0, 1]))
            .chain([IpAddr::from(frames::SERVER_V4), frames::SERVER_V6.into()])
            .map(|a| ("eth0".to_string(), a));
        let (addrs, table) = LocalAddrs::with_table(&["eth0"], found, &[]);
        let mut cfg = Config {
            loopback: 0,
            ..self.own_cfg
        };
        addrs.set(&mut cfg);
        ensure!(
            cfg.local_v4_n == synguard_common::maps::LOCAL_IN_MAP,
            "13 IPv4 addresses did not go to the trie"
        );
        self.own.local_table(&table)?;
        let results = self.own_syn_under(name, syn, cfg, rounds, repeat);
        self.own.local_table(&LocalTable::default())?;
        results
    }

    /// Paths on which the program does not rewrite the frame: plain `repeat` is right. Each
    /// figure counts only if the path's verdict counter grew by exactly `repeat`.
    fn direct_paths(
        &mut self,
        paths: &[Direct],
        rounds: usize,
        repeat: u32,
        filter: &str,
        own: bool,
    ) -> Result<Vec<PathResult>> {
        let mut results = Vec::new();
        let (fx, lab) = if own {
            (&mut self.own, &self.lab_own)
        } else {
            (&mut self.fixture, &self.lab)
        };
        for &(name, frame, reason, table) in paths {
            if !name.contains(filter) {
                continue;
            }
            let (mut v, mut floors) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                connection_table(fx, &self.est_frame, table)?;
                floors.push(Self::floor_round(lab, &self.floor_frame, repeat)?);
                let before = fx.verdict(reason)?;
                let (ns, act) = Self::time(fx.program()?, frame, repeat)?;
                let after = fx.verdict(reason)?;
                ensure!(
                    after - before == repeat as u64,
                    "{name}: {} of {repeat} runs took the path ({reason:?}); the figure would be wrong",
                    after - before
                );
                ensure!(act != XDP_TX, "{name}: unexpected XDP_TX");
                v.push(ns);
            }
            results.push(summarize(name, v, &floors, reason.name()));
        }
        Ok(results)
    }

    /// Paths that need the frame restored before each run: SYNs answered (the program rewrites
    /// the frame) and final ACKs (they stamp the connection table, which the wrapper empties
    /// again). Each run goes through `lab_restore` (docs/measuring.md), whose own cost with
    /// `lab_pass` as its target, doing the same, is subtracted.
    fn wrapped_paths(
        &mut self,
        paths: &[Wrapped],
        rounds: usize,
        repeat: u32,
        own: bool,
    ) -> Result<Vec<PathResult>> {
        let mut results = Vec::new();
        let pass_fd = self.lab_prog(own, "lab_pass")?.fd()?.try_clone()?;
        let fx = if own { &self.own } else { &self.fixture };
        let target_fd = fx.program()?.fd()?.try_clone()?;
        for &(name, frame, reason, want, forget) in paths {
            let (mut v, mut floors) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                floors.push(Self::floor_round(self.lab(own), &self.floor_frame, repeat)?);
                self.set_target(own, pass_fd.try_clone()?, frame, forget)?;
                let wrapper = self.lab_prog(own, "lab_restore")?;
                let (wrapper, act) = Self::time(wrapper, frame, repeat)?;
                ensure!(act == XDP_PASS, "wrapper with lab_pass returned {act}");
                self.set_target(own, target_fd.try_clone()?, frame, forget)?;
                let fx = if own { &self.own } else { &self.fixture };
                let before = fx.verdict(reason)?;
                let (total, act) = Self::time(self.lab_prog(own, "lab_restore")?, frame, repeat)?;
                let after = fx.verdict(reason)?;
                ensure!(act == want, "{name}: returned {act}, not {want}");
                ensure!(
                    after - before == repeat as u64,
                    "{name}: {} of {repeat} runs took the path ({reason:?}); the figure would \
                     be wrong",
                    after - before
                );
                v.push((total - wrapper).max(0.0));
            }
            results.push(summarize(name, v, &floors, reason.name()));
        }
        Ok(results)
    }

    /// What own cookies' TC program costs every packet that is not a marked handshake ACK: the
    /// metadata check and return. Checked to take that path: TC_ACT_OK and no event of the
    /// program's other paths.
    /// With `check`, the program for drivers without metadata, which checks the cookie of
    /// every pure ACK to a protected port (here: established data, whose "cookie" fails).
    fn tc_unmarked(
        &self,
        frame: &[u8],
        rounds: usize,
        repeat: u32,
        check: bool,
    ) -> Result<PathResult> {
        use synguard_common::reason::Event;
        let tc = if check {
            self.own.tc_check_program()?
        } else {
            self.own.tc_program()?
        };
        let events = || -> Result<u64> {
            let mut n = 0;
            for e in [
                Event::OwnReqskAssigned,
                Event::OwnReqskFailed,
                Event::OwnNoListener,
            ] {
                n += self.own.event(e)?;
            }
            Ok(n)
        };
        let before = events()?;
        let (mut v, mut floors) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            floors.push(Self::floor_round(&self.lab, &self.floor_frame, repeat)?);
            let r = tc.test_run(TestRunOptions {
                data_in: Some(frame),
                repeat,
                ..Default::default()
            })?;
            ensure!(
                r.return_value == 0,
                "TC program returned {}",
                r.return_value
            );
            v.push(r.duration.as_nanos() as f64);
        }
        ensure!(events()? == before, "the TC program took another path");
        let name = if check {
            "own: TC check, established data"
        } else {
            "own: TC, packet without mark"
        };
        Ok(summarize(name, v, &floors, "tc_act_ok"))
    }

    /// The floors, measured the same way in the same run.
    fn floors(&mut self, syn: &[u8], rounds: usize, repeat: u32) -> Result<Vec<PathResult>> {
        let mut results = Vec::new();
        for (name, prog, want, verdict) in [
            (
                "floor: swap addresses + XDP_TX",
                "lab_swap_tx",
                XDP_TX,
                "tx",
            ),
            ("floor: XDP_DROP", "lab_drop", XDP_DROP, "drop"),
        ] {
            let (mut v, mut floors) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                // The XDP_TX floor's pair is itself once more: its ratio shows the noise
                // between two rounds one after the other.
                floors.push(Self::floor_round(&self.lab, syn, repeat)?);
                let (ns, act) = Self::time(self.lab_prog(false, prog)?, syn, repeat)?;
                ensure!(act == want, "{name}: returned {act}");
                v.push(ns);
            }
            results.push(summarize(name, v, &floors, verdict));
        }
        Ok(results)
    }

    /// The final ACK for the cookie synguard gives `syn` (own cookies with `own`), and one with
    /// a wrong cookie.
    fn acks(&self, syn: &[u8], own: bool) -> Result<(Vec<u8>, Vec<u8>)> {
        let fx = if own { &self.own } else { &self.fixture };
        let out = fx.run(syn)?;
        if out.action != XDP_TX {
            bail!("the SYN was not answered (action {})", out.action);
        }
        let p = etherparse::SlicedPacket::from_ethernet(&out.frame)?;
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            bail!("SYN-ACK without TCP");
        };
        let tsval = tcp
            .options_iterator()
            .find_map(|o| match o {
                Ok(TcpOptionElement::Timestamp(v, _)) => Some(v),
                _ => None,
            })
            .unwrap_or(0);
        let ack = |ack: u32| {
            let seg = Segment {
                sport: 40000,
                dport: PORT,
                seq: 8,
                ack,
                flags: ACK,
                window: 502,
                options: vec![
                    TcpOptionElement::Noop,
                    TcpOptionElement::Noop,
                    TcpOptionElement::Timestamp(2, tsval),
                ],
                payload: vec![],
            };
            frames::client_syn_v4(Tags::None, &seg)
        };
        let cookie = tcp.sequence_number();
        Ok((ack(cookie.wrapping_add(1)), ack(cookie.wrapping_add(12345))))
    }
}

/// The IPv4 SYN of the SYN paths, which the floors run on too.
fn syn_v4() -> Vec<u8> {
    frames::client_syn_v4(
        Tags::None,
        &Segment::syn(40000, PORT, 7, frames::linux_syn_options(1460, 1, 7)),
    )
}

/// The XDP program `name` of `lab`.
fn xdp_prog<'a>(lab: &'a Ebpf, name: &str) -> Result<&'a Xdp> {
    Ok(lab
        .program(name)
        .ok_or_else(|| anyhow!("no {name}"))?
        .try_into()?)
}

/// A path's figures from its rounds' ns `v` and the floor's ns measured right before each.
fn summarize(path: &'static str, v: Vec<f64>, floors: &[f64], verdict: &'static str) -> PathResult {
    let ratios: Vec<f64> = v.iter().zip(floors).map(|(ns, f)| ns / f).collect();
    let ns = sorted(v);
    PathResult {
        path,
        ns_median: median(&ns),
        ns_min: ns[0],
        ns_max: ns[ns.len() - 1],
        floor_ratio: median(&sorted(ratios)),
        verdict,
    }
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// The middle value of a sorted, non-empty slice (the upper one of two).
fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

/// Pins this process to `cpu` (default: the last CPU it may run on) for the whole run.
/// `BPF_PROG_TEST_RUN` runs the program on the calling CPU, and the floor and each path are
/// measured in turn: a process moving between CPUs put them on CPUs with different interrupt
/// loads (on these VMs CPU 0 takes most: the floor measured 24-32 ns and the unprotected
/// port 31-45 there, 26 and 31 on CPU 1, in runs one after the other).
pub fn pin(cpu: Option<usize>) -> Result<usize> {
    let pid = nix::unistd::Pid::from_raw(0);
    let cpu = match cpu {
        Some(c) => c,
        None => {
            let allowed = nix::sched::sched_getaffinity(pid).context("reading CPU affinity")?;
            (0..nix::sched::CpuSet::count())
                .rev()
                .find(|&c| allowed.is_set(c).unwrap_or(false))
                .context("no CPU to run on")?
        }
    };
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("CPU {cpu} is out of range"))?;
    nix::sched::sched_setaffinity(pid, &set).with_context(|| format!("pinning to CPU {cpu}"))?;
    Ok(cpu)
}

/// Prints the table: ns per packet and the ratio to the XDP_TX floor (median of the rounds'
/// pairs, [`PathResult::floor_ratio`]).
pub fn print_table(results: &[PathResult], rounds: usize, repeat: u32) {
    println!(
        "synguard XDP program, ns per packet (BPF_PROG_TEST_RUN, {rounds} rounds x {repeat} runs; median [min..max])"
    );
    println!(
        "x floor: median over the rounds of each round / the XDP_TX floor measured right before it"
    );
    println!(
        "{:<34} {:>9} {:>19} {:>10}  counted as",
        "path", "ns/pkt", "[min..max]", "x floor"
    );
    for r in results {
        println!(
            "{:<34} {:>9.1} {:>19} {:>10.2}  {}",
            r.path,
            r.ns_median,
            format!("[{:.1}..{:.1}]", r.ns_min, r.ns_max),
            r.floor_ratio,
            r.verdict
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_pairs_each_round_with_its_own_floor() {
        // The host slows down by half for the last two rounds: the path and its floor alike.
        let path = vec![100.0, 100.0, 150.0, 150.0, 100.0];
        let floors = [25.0, 25.0, 37.5, 37.5, 25.0];
        let r = summarize("p", path, &floors, "v");
        assert_eq!(r.floor_ratio, 4.0);
        assert_eq!((r.ns_min, r.ns_median, r.ns_max), (100.0, 100.0, 150.0));
    }

    #[test]
    fn the_median_of_an_odd_and_an_even_count() {
        assert_eq!(median(&sorted(vec![3.0, 1.0, 2.0])), 2.0);
        assert_eq!(median(&sorted(vec![4.0, 1.0, 3.0, 2.0])), 3.0);
    }
}
