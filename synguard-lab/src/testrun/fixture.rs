//! Runs the compiled XDP program on crafted frames with `BPF_PROG_TEST_RUN` (aya's `TestRun`):
//! the real program, the real verifier and the real kernel cookie helpers, no attachment. Used by
//! the fixture tests and by the benchmark.

use anyhow::{Context as _, Result, anyhow};
use std::net::IpAddr;
use synguard::{
    datapath::{bound, local_addrs},
    host::addrs::LocalTable,
};

use aya::{
    Ebpf,
    maps::{
        Array, HashMap, MapData, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{ProgramError, SchedClassifier, SockOps, TestRun as _, TestRunOptions, Xdp},
};
use synguard_common::{
    conns::{
        ConnsState, conn_ask_stamp, conn_filter_entry, conn_filter_slot, conn_handshake_stamp,
        conn_slot, conn_stamp,
    },
    host::{local_salt, local_words_v4, local_words_v6},
    maps::{
        BoundKey, CLOSING_WAYS, Config, Counter, MAX_CPUS, MODE_ALWAYS, ModeState, PORT_PROTECTED,
        ReadyState, closing_entry, cookies_own, names,
    },
    policy::{self, FloodEvent, Policy},
    reason::{Event, REASON_SLOTS, Reason},
    reqsk::CookieSecret,
};

/// XDP actions as the kernel numbers them.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// The fixtures' initial receive space (`Config::rcv_space`, and the windows it gives).
const RCV_SPACE: u32 = 65536;

/// The configuration the fixtures run with unless a test changes it: cookies always on, the
/// kernel ready, no listener refresh (the period is infinite, the ready stamp zero), the
/// server's addresses the host's own.
pub fn default_config() -> Config {
    // The server's addresses are the host's own: segments to others are forwarded traffic.
    let cfg = Config {
        mode: MODE_ALWAYS,
        wscale: 7,
        mss_v4: 1460,
        mss_v6: 1440,
        ecn: 1,
        syn_on_pps: 1000,
        syn_off_pps: 500,
        nr_cpus: (aya::util::nr_cpus().map(|n| n as u32).unwrap_or(1)).min(MAX_CPUS),
        rcv_space: RCV_SPACE,
        cookies: synguard_common::maps::COOKIES_KERNEL,
        hold_ns: 1_000_000_000,
        refresh_ns: u64::MAX,
        own_mac: crate::testrun::frames::SERVER_MAC,
        loopback: 0,
        accept_local: 0,
        reqsk_isn_off: std::fs::read("/sys/kernel/btf/vmlinux")
            .ok()
            .and_then(|b| synguard_common::btf::member_offset(&b, b"tcp_request_sock", b"snt_isn"))
            .unwrap_or(0),
        local_salt: 0,
        synack_windows: synguard_common::cookie::synack_windows(RCV_SPACE),
        local_v4_n: 0,
        local_v4: [0; synguard_common::maps::LOCAL_ADDRS],
        local_v6_n: 0,
        local_v6: [[0; 4]; synguard_common::maps::LOCAL_ADDRS],
    };
    with_local(
        cfg,
        &[crate::testrun::frames::SERVER_V4],
        &[crate::testrun::frames::SERVER_V6],
    )
}

/// `cfg` with `v4` and `v6` the host's addresses, placed as the loader places them
/// (`synguard::host::addrs`: one salt for both families).
pub fn with_local(cfg: Config, v4: &[[u8; 4]], v6: &[[u8; 16]]) -> Config {
    let local_salt = local_salt(v4, v6);
    let (local_v4_n, local_v4) = local_words_v4(v4, local_salt);
    let (local_v6_n, local_v6) = local_words_v6(v6, local_salt);
    Config {
        local_salt,
        local_v4_n,
        local_v4,
        local_v6_n,
        local_v6,
        ..cfg
    }
}

/// [`default_config`] as the loader writes it for a loopback device: loopback sources and a
/// source equal to the destination are the host's own, and every destination address counts as
/// the host's (the loader lists no address there: all of 127.0.0.0/8 is local). For the
/// fixtures that meet real sockets, which live on the host's loopback addresses.
pub fn loopback_config() -> Config {
    Config {
        loopback: 1,
        local_v4_n: 0,
        local_v6_n: 0,
        ..default_config()
    }
}

/// The synguard program loaded (not attached), with its maps.
pub struct Fixture {
    ebpf: Ebpf,
}

/// What one run returned.
#[derive(Debug)]
pub struct Outcome {
    pub action: u32,
    pub frame: Vec<u8>,
}

impl Fixture {
    /// Loads the program, protects `ports` and writes `cfg`; the kernel is marked ready. With
    /// `cfg.cookies` own, also the own-cookie program `synguard` tail-calls (its key is the
    /// caller's to set, [`Fixture::set_secret`]).
    pub fn new(cfg: Config, ports: &[u16]) -> Result<Self> {
        Self::with_event_ring(cfg, ports, None)
    }

    /// As [`Fixture::new`], with the flood-event ring buffer resized to `ring_bytes` (a power of
    /// two, at least a page), for tests that fill it.
    pub fn with_event_ring(cfg: Config, ports: &[u16], ring_bytes: Option<u32>) -> Result<Self> {
        use synguard::datapath::own;
        let is_own = cookies_own(cfg.cookies);
        // The object as the loader loads it: its kfunc calls resolved.
        let object = own::object(is_own).context("resolving the object's kfunc calls")?;
        let mut loader = aya::EbpfLoader::new();
        if let Some(bytes) = ring_bytes {
            loader.map_max_entries(policy::names::FLOOD_EVENTS, bytes);
        }
        let mut ebpf = loader.load(object.bytes()).context("loading synguard")?;
        let prog: &mut Xdp = ebpf
            .program_mut("synguard")
            .ok_or_else(|| anyhow!("no program `synguard` in the object"))?
            .try_into()?;
        prog.load().map_err(verifier_error)?;
        if is_own {
            own::load_own_xdp(&mut ebpf).context("loading the own-cookie program")?;
            for name in [own::TC_PROGRAM, own::TC_CHECK_PROGRAM] {
                let tc: &mut SchedClassifier = ebpf
                    .program_mut(name)
                    .ok_or_else(|| anyhow!("no program {name}"))?
                    .try_into()?;
                tc.load().map_err(verifier_error)?;
            }
        }
        // The connection table's sock_ops program, verified with the rest (never attached here).
        let conns: &mut SockOps = ebpf
            .program_mut("synguard_conns")
            .ok_or_else(|| anyhow!("no program `synguard_conns` in the object"))?
            .try_into()?;
        conns.load().map_err(verifier_error)?;
        let mut f = Fixture { ebpf };
        f.set_config(cfg)?;
        for &p in ports {
            f.set_port(p, true)?;
        }
        f.set_ready(true, 0)?;
        Ok(f)
    }

    pub fn set_config(&mut self, cfg: Config) -> Result<()> {
        let mut m: Array<&mut MapData, Config> = Array::try_from(self.map(names::CONFIG)?)?;
        m.set(0, cfg, 0)?;
        Ok(())
    }

    /// Own cookies' key map.
    pub fn set_secret(&mut self, secret: CookieSecret) -> Result<()> {
        let mut m: Array<&mut MapData, CookieSecret> =
            Array::try_from(self.map(names::COOKIE_SECRET)?)?;
        m.set(0, secret, 0)?;
        Ok(())
    }

    pub fn set_port(&mut self, port: u16, protected: bool) -> Result<()> {
        use synguard::datapath::ports;
        let map = ports::data(self.map(names::PORTS)?)?;
        let mut table = ports::read(map)?;
        table[port as usize].flags = if protected { PORT_PROTECTED } else { 0 };
        ports::write(map, &table)?;
        Ok(())
    }

    /// The protected ports' `PORT_NO_LISTENER_*` bits, as the loader sets them from the
    /// namespace's listeners: `bits` for the ports listed, none for the others.
    pub fn set_no_listener(&mut self, bits: &[(u16, u32)]) -> Result<()> {
        use synguard::datapath::ports;
        let map = ports::data(self.map(names::PORTS)?)?;
        let mut table = ports::read(map)?;
        ports::with_listeners(&mut table, |p| {
            bits.iter().find(|(q, _)| *q == p).map_or(0, |(_, b)| *b)
        });
        ports::write(map, &table)?;
        Ok(())
    }

    /// Auto mode's shared state (`SG_MODE`): whether the SYN rate calls for cookies, since
    /// when, and the rest of what the program keeps there.
    pub fn set_mode_state(&mut self, state: ModeState) -> Result<()> {
        let mut m: Array<&mut MapData, ModeState> = Array::try_from(self.map(names::MODE)?)?;
        m.set(0, state, 0)?;
        Ok(())
    }

    pub fn set_ready(&mut self, ready: bool, since_ns: u64) -> Result<()> {
        let mut m: Array<&mut MapData, ReadyState> = Array::try_from(self.map(names::READY)?)?;
        m.set(0, ReadyState::new(ready, since_ns), 0)?;
        Ok(())
    }

    /// The loader's promise about the connection table: misses mean "no socket" until
    /// `valid_until_ns` (the programs' clock, `synguard::host::clock::monotonic_ns`).
    pub fn set_conns_state(&mut self, valid_until_ns: u64) -> Result<()> {
        let mut m: Array<&mut MapData, ConnsState> =
            Array::try_from(self.map(names::CONNS_STATE)?)?;
        let state = ConnsState {
            valid_until_ns,
            last_pass_sockets: 0,
            pass_no: 0,
        };
        m.set(0, state, 0)?;
        Ok(())
    }

    /// Stamps the connection table for the 4-tuple of `frame` (client to server, as the client
    /// sends it) at `now_ns`, as the sock_ops program or the loader's pass would.
    pub fn stamp_conn(&mut self, frame: &[u8], now_ns: u64) -> Result<()> {
        self.set_conn_slot(frame, |h| conn_stamp(h, now_ns))
    }

    /// As [`Fixture::stamp_conn`], as a request socket's stamp.
    pub fn stamp_request(&mut self, frame: &[u8], now_ns: u64) -> Result<()> {
        self.set_conn_slot(frame, |h| conn_ask_stamp(h, now_ns))
    }

    /// As [`Fixture::stamp_conn`], as the XDP program stamps a handshake it passed
    /// (`conn_handshake_stamp`).
    pub fn stamp_handshake(&mut self, frame: &[u8], now_ns: u64, handoff: bool) -> Result<()> {
        self.set_conn_slot(frame, |h| conn_handshake_stamp(h, now_ns, handoff))
    }

    /// Stamps the slot of `frame`'s 4-tuple for another 4-tuple that shares it.
    pub fn stamp_other_in_slot(&mut self, frame: &[u8], now_ns: u64) -> Result<()> {
        self.set_conn_slot(frame, |h| conn_stamp(h ^ 0x0001_0000, now_ns))
    }

    /// Empties the connection table's slot of `frame`'s 4-tuple.
    pub fn clear_conn(&mut self, frame: &[u8]) -> Result<()> {
        self.set_conn_slot(frame, |_| 0)
    }

    /// Empties the recently-closed table's bucket of `frame`'s 4-tuple (every way of it): a
    /// close recorded for the 4-tuple no longer counts.
    pub fn clear_closing(&mut self, frame: &[u8]) -> Result<()> {
        let hash = super::frames::flow_hash_of(frame)?;
        let (bucket, _) = closing_entry(hash, 0);
        let mut m: Array<&mut MapData, u64> = Array::try_from(self.map(names::CLOSING)?)?;
        for way in 0..CLOSING_WAYS {
            m.set(bucket + way, 0, 0)?;
        }
        Ok(())
    }

    /// Writes the slot of `frame`'s 4-tuple and, for a stamp, then its filter entry, as the
    /// writers do under the promise of pass 0 (the fixture's, [`Fixture::set_conns_state`]).
    fn set_conn_slot(&mut self, frame: &[u8], stamp: impl FnOnce(u64) -> u32) -> Result<()> {
        let hash = super::frames::flow_hash_of(frame)?;
        let stamp = stamp(hash);
        let mut m: Array<&mut MapData, u32> = Array::try_from(self.map(names::CONNS)?)?;
        m.set(conn_slot(hash), stamp, 0)?;
        if stamp != 0 {
            self.set_filter_entry(hash, conn_filter_entry(0))?;
        }
        Ok(())
    }

    /// Writes the filter entry of the 4-tuple hashed `hash`, its word's other lanes kept.
    fn set_filter_entry(&mut self, hash: u64, entry: u16) -> Result<()> {
        let (word, lane) = conn_filter_slot(hash);
        let mut f: Array<&mut MapData, u64> = Array::try_from(self.map(names::CONNS_FILTER)?)?;
        let shift = lane * 16;
        let w = f.get(&word, 0)? & !(0xffff << shift);
        f.set(word, w | (entry as u64) << shift, 0)?;
        Ok(())
    }

    /// Marks the filter entry of `frame`'s 4-tuple as written long before the promised pass
    /// (no socket stamped a slot of it lately), whatever its slot holds.
    pub fn age_conn_filter(&mut self, frame: &[u8]) -> Result<()> {
        let hash = super::frames::flow_hash_of(frame)?;
        self.set_filter_entry(hash, conn_filter_entry(0).wrapping_sub(100))
    }

    pub fn set_policy(&mut self, p: Policy) -> Result<()> {
        let mut m: Array<&mut MapData, Policy> = Array::try_from(self.map(policy::names::POLICY)?)?;
        m.set(0, p, 0)?;
        Ok(())
    }

    /// Empties the per-source limiter's and the reflection cap's tables: every source and
    /// network starts over.
    pub fn clear_limits(&mut self) -> Result<()> {
        self.clear_hash::<policy::SourceState>(policy::names::SOURCES)?;
        self.clear_hash::<policy::ReflectState>(policy::names::REFLECT)
    }

    fn clear_hash<V: aya::Pod>(&mut self, name: &str) -> Result<()> {
        let mut m: aya::maps::HashMap<&mut MapData, policy::AddrKey, V> =
            aya::maps::HashMap::try_from(self.map(name)?)?;
        let keys = m.keys().collect::<Result<Vec<_>, _>>()?;
        for k in keys {
            m.remove(&k)?;
        }
        Ok(())
    }

    /// Adds `addr/len` to the allow or block list of its family. (The list sizes in the policy
    /// are the caller's to set: the program skips empty lists.)
    pub fn list_add(&mut self, allow: bool, addr: IpAddr, len: u32) -> Result<()> {
        use policy::names::*;
        match addr {
            IpAddr::V4(a) => {
                let name = if allow { ALLOW_V4 } else { BLOCK_V4 };
                let mut t: LpmTrie<&mut MapData, [u8; 4], u32> =
                    LpmTrie::try_from(self.map(name)?)?;
                t.insert(&Key::new(len, a.octets()), 1, 0)?;
            }
            IpAddr::V6(a) => {
                let name = if allow { ALLOW_V6 } else { BLOCK_V6 };
                let mut t: LpmTrie<&mut MapData, [u8; 16], u32> =
                    LpmTrie::try_from(self.map(name)?)?;
                t.insert(&Key::new(len, a.octets()), 1, 0)?;
            }
        }
        Ok(())
    }

    /// A route of the reverse-path check's table (`SG_RP_V4`): `addr/len` of kind `kind`
    /// (`RP_ROUTE_*`).
    pub fn route_add(&mut self, addr: [u8; 4], len: u32, kind: u32) -> Result<()> {
        let mut t: LpmTrie<&mut MapData, [u8; 4], u32> =
            LpmTrie::try_from(self.map(names::RP_V4)?)?;
        t.insert(&Key::new(len, addr), kind, 0)?;
        Ok(())
    }

    /// The host's addresses in the program's tries, as the loader writes them
    /// (`synguard::datapath::local_addrs`), for a config whose families say they are there.
    pub fn local_table(&mut self, table: &LocalTable) -> Result<()> {
        let mut t: LpmTrie<&mut MapData, [u8; 4], u8> =
            LpmTrie::try_from(self.map(names::LOCAL_V4)?)?;
        local_addrs::fill(&mut t, &table.v4)?;
        let mut t: LpmTrie<&mut MapData, [u8; 16], u8> =
            LpmTrie::try_from(self.map(names::LOCAL_V6)?)?;
        local_addrs::fill(&mut t, &table.v6)?;
        Ok(())
    }

    /// The listeners bound to particular addresses (`SG_BOUND`), as the loader writes them
    /// (`synguard::datapath::bound`).
    pub fn set_bound(&mut self, keys: &[BoundKey]) -> Result<()> {
        let mut m: HashMap<&mut MapData, BoundKey, u8> =
            HashMap::try_from(self.map(names::BOUND)?)?;
        bound::fill(&mut m, keys)?;
        Ok(())
    }

    /// Monitor mode's count of what would have been done, summed over CPUs.
    pub fn would(&self, reason: Reason) -> Result<u64> {
        Ok(self
            .monitor_map()?
            .get(&reason.index(), 0)?
            .iter()
            .map(|c| c.packets)
            .sum())
    }

    /// Monitor mode's counters of what would have been done, every reason's, summed over CPUs.
    pub fn woulds(&self) -> Result<Vec<u64>> {
        let m = self.monitor_map()?;
        (0..REASON_SLOTS)
            .map(|i| Ok(m.get(&i, 0)?.iter().map(|c| c.packets).sum()))
            .collect()
    }

    fn monitor_map(&self) -> Result<PerCpuArray<&MapData, Counter>> {
        Ok(PerCpuArray::try_from(
            self.ebpf
                .map(policy::names::MONITOR)
                .ok_or_else(|| anyhow!("no monitor map"))?,
        )?)
    }

    /// SYNs counted for `port`, summed over CPUs.
    pub fn port_syns(&self, port: u16) -> Result<u64> {
        let m: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(policy::names::PORT_SYNS)
                .ok_or_else(|| anyhow!("no port SYN map"))?,
        )?;
        Ok(m.get(&(port as u32), 0)?.iter().sum())
    }

    /// Flood events queued so far (drains the ring buffer).
    pub fn flood_events(&mut self) -> Result<Vec<FloodEvent>> {
        let mut ring = RingBuf::try_from(self.map(policy::names::FLOOD_EVENTS)?)?;
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            let ev = FloodEvent::from_bytes(&item)
                .ok_or_else(|| anyhow!("short flood event: {} bytes", item.len()))?;
            out.push(ev);
        }
        Ok(out)
    }

    /// Takes a map out of the fixture, for code that owns its maps (the loader's own map
    /// wrappers). The fixture's helpers for that map stop working.
    pub fn take_map(&mut self, name: &str) -> Option<aya::maps::Map> {
        self.ebpf.take_map(names::object_name(name))
    }

    /// A map of the program, read-only, for tests that inspect its contents.
    pub fn map_ref(&self, name: &str) -> Result<&aya::maps::Map> {
        self.ebpf
            .map(names::object_name(name))
            .ok_or_else(|| anyhow!("no map {name} in the object"))
    }

    fn map(&mut self, name: &str) -> Result<&mut aya::maps::Map> {
        self.ebpf
            .map_mut(names::object_name(name))
            .ok_or_else(|| anyhow!("no map {name} in the object"))
    }

    pub fn program(&self) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program("synguard")
            .ok_or_else(|| anyhow!("no program `synguard`"))?
            .try_into()?)
    }

    /// The own-cookie SYN program `synguard` tail-calls (loaded in own mode only), for running
    /// it without a hand-over.
    pub fn own_xdp_program(&self) -> Result<&Xdp> {
        let name = synguard::datapath::own::XDP_PROGRAM;
        Ok(self
            .ebpf
            .program(name)
            .ok_or_else(|| anyhow!("no program {name}"))?
            .try_into()?)
    }

    /// The TC program (loaded in own mode only, not attached).
    pub fn tc_program(&self) -> Result<&SchedClassifier> {
        self.tc(synguard::datapath::own::TC_PROGRAM)
    }

    /// The TC program that checks cookies again (own mode only, not attached).
    pub fn tc_check_program(&self) -> Result<&SchedClassifier> {
        self.tc(synguard::datapath::own::TC_CHECK_PROGRAM)
    }

    fn tc(&self, name: &str) -> Result<&SchedClassifier> {
        Ok(self
            .ebpf
            .program(name)
            .ok_or_else(|| anyhow!("no program {name}"))?
            .try_into()?)
    }

    /// Runs from now on take place on `cpu`: pins the calling thread there
    /// (`BPF_PROG_TEST_RUN` runs an XDP program on the caller's CPU), for what a program keeps
    /// per CPU. Whether the CPU is online: a test that needs it skips otherwise.
    pub fn on_cpu(&self, cpu: usize) -> Result<bool> {
        // The machine's online CPUs, not the thread's affinity (which an earlier call narrowed).
        let online = aya::util::online_cpus().map_err(|(path, e)| anyhow!("{path}: {e}"))?;
        if !online.contains(&(cpu as u32)) {
            return Ok(false);
        }
        crate::flood::generator::pin_to_cpu(cpu)?;
        Ok(true)
    }

    /// Runs the program once on `frame`.
    pub fn run(&self, frame: &[u8]) -> Result<Outcome> {
        self.run_with_ctx(frame, None)
    }

    /// Runs the program once on `frame` split over buffers, the first of them `first` bytes
    /// long (the context's `data_end`; the rest goes into fragments). Kernels that take the
    /// first buffer's length only from the frame's size refuse such a context (EINVAL).
    pub fn run_split(&self, frame: &[u8], first: u32) -> Result<Outcome> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let ctx: Vec<u8> = [0u32, first, 0, 0, 0, 0]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        self.run_with_ctx(frame, Some(&ctx))
    }

    fn run_with_ctx(&self, frame: &[u8], ctx_in: Option<&[u8]>) -> Result<Outcome> {
        // Room for the largest reply the program builds from any input.
        let mut out = vec![0u8; frame.len() + 256];
        let res = self.program()?.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in,
            ..Default::default()
        })?;
        out.truncate(res.data_size_out as usize);
        Ok(Outcome {
            action: res.return_value,
            frame: out,
        })
    }

    /// Runs `frame` every `gap` until `done` holds (or `deadline` passes, an error); returns the
    /// action of the last run. For behaviour that depends on the kernel clock (rate windows):
    /// a busy machine can stretch any sleep, so tests wait for the effect, not for a time.
    pub fn drive_until(
        &self,
        frame: &[u8],
        gap: std::time::Duration,
        deadline: std::time::Duration,
        done: impl Fn(&Fixture) -> Result<bool>,
    ) -> Result<u32> {
        let start = std::time::Instant::now();
        loop {
            let action = self.run(frame)?.action;
            if done(self)? {
                return Ok(action);
            }
            anyhow::ensure!(
                start.elapsed() < deadline,
                "condition not reached after {deadline:?}"
            );
            std::thread::sleep(gap);
        }
    }

    /// Instructions the verifier processed for each loaded program (`verified_insns`, Linux
    /// 5.16+): how close each is to the 1 M limit (docs/verifier.md).
    pub fn verified_insns(&self) -> Vec<(String, u32)> {
        self.ebpf
            .programs()
            .filter_map(|(name, p)| {
                let count = p.info().ok()?.verified_instruction_count()?;
                Some((name.to_string(), count))
            })
            .collect()
    }

    /// Packets counted under `reason`, summed over CPUs.
    pub fn verdict(&self, reason: Reason) -> Result<u64> {
        Ok(self.counter(reason)?.packets)
    }

    pub fn counter(&self, reason: Reason) -> Result<Counter> {
        let m: PerCpuArray<&MapData, Counter> = PerCpuArray::try_from(
            self.ebpf
                .map(names::VERDICTS)
                .ok_or_else(|| anyhow!("no verdict map"))?,
        )?;
        let mut total = Counter::default();
        for c in m.get(&reason.index(), 0)?.iter() {
            total.packets += c.packets;
            total.bytes += c.bytes;
        }
        Ok(total)
    }

    /// Every verdict slot, summed over CPUs.
    pub fn verdicts(&self) -> Result<Vec<u64>> {
        let m: PerCpuArray<&MapData, Counter> = PerCpuArray::try_from(
            self.ebpf
                .map(names::VERDICTS)
                .ok_or_else(|| anyhow!("no verdict map"))?,
        )?;
        (0..REASON_SLOTS)
            .map(|i| Ok(m.get(&i, 0)?.iter().map(|c| c.packets).sum()))
            .collect()
    }

    pub fn event(&self, event: Event) -> Result<u64> {
        let m: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(names::EVENTS)
                .ok_or_else(|| anyhow!("no event map"))?,
        )?;
        Ok(m.get(&event.index(), 0)?.iter().sum())
    }
}

/// Keeps the verifier's log in the error: it is the only useful part when loading fails.
fn verifier_error(e: ProgramError) -> anyhow::Error {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            anyhow!("the verifier rejected synguard: {io_error}\n{verifier_log}")
        }
        other => anyhow!(other),
    }
}
