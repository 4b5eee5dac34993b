//! A fuzzer of synguard's own: the compiled XDP program run through `BPF_PROG_TEST_RUN` on
//! generated and mutated frames (`generate`), each judged by an independent oracle (`model`,
//! `reply`, with the batch's lists and limits in `policies` and its live connections in
//! `conns`): TX only for a SYN the host would accept and then a correct SYN-ACK whose final ACK
//! is accepted and whose tampered ACK is dropped; PASS leaves every byte unchanged; DROP only
//! where policy says; every packet counted exactly once (the verdict counters compared with
//! what was run, batch by batch). Either kind of cookie: the kernel's, or synguard's own under a
//! key drawn from the seed (`Cookies`). Seeded and reproducible: `cargo xtask fuzz --frames N
//! --seed S [--cookies own]`; a short fixed-seed run of each kind is part of the lab tests
//! (`tests/fuzz.rs`).

pub mod conns;
mod counts;
pub mod generate;
pub mod model;
mod monitor;
pub mod policies;
pub mod reply;
pub mod rng;
mod shrink;
mod split;
pub mod tc;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use synguard::host::addrs::LocalTable;
use synguard_common::{
    maps::{
        COOKIES_OWN, Config, HOST_NO_SACK, HOST_NO_TIMESTAMPS, HOST_NO_WSCALE, HOST_RP_LOOSE,
        HOST_RP_STRICT, KERNEL_COOKIE_LIFE_NS, MODE_AUTO, ModeState, PORT_NO_LISTENER_V4,
        PORT_NO_LISTENER_V6, RP_ROUTE_BLOCKED, RP_ROUTE_ELSEWHERE, RP_ROUTE_HERE,
    },
    policy::Policy,
    reason::{REASON_SLOTS, Reason, Verdict},
    reqsk::CookieSecret,
    siphash::Key,
};

use crate::{
    lab::idle_xdp::IdleXdp,
    testrun::{
        fixture::{Fixture, XDP_DROP, XDP_PASS, XDP_TX, default_config},
        frames::{SERVER_V4, SERVER_V6},
        own_slots,
    },
};
use conns::{Conns, Tuple};
use counts::counts_match;
use model::{Expect, Listeners, ReversePath, RouteKind, World};
use policies::Policies;
use rng::Rng;
use split::split_point;

/// A frame the program got wrong, and how.
#[derive(Debug, Clone)]
pub struct Violation {
    pub what: String,
    pub frame: Vec<u8>,
    /// The configuration the frame ran under (its batch's).
    pub cfg: Config,
    /// The batch's lists, limits and monitor mode, and its live connections (the limits' state
    /// and the closes are not kept: shrinking starts them over).
    pub policy: Policy,
    pub conns: Vec<Tuple>,
    /// The batch's listeners (`World::listeners`).
    pub listeners: Listeners,
    /// The batch's host addresses (`World::locals`) and the tries' entries.
    pub locals: model::Locals,
    pub table: LocalTable,
    /// Auto mode's state (`None`: always mode).
    pub auto: Option<ModeState>,
    /// The first buffer's length when the frame ran split over buffers.
    pub first: Option<u32>,
}

impl Violation {
    /// Hex of the (minimised) frame and etherparse's decoding of it.
    pub fn render(&self) -> String {
        let hex: String = self.frame.iter().map(|b| format!("{b:02x}")).collect();
        let decoded = match etherparse::SlicedPacket::from_ethernet(&self.frame) {
            Ok(p) => format!("{:?} / {:?} / {:?}", p.link, p.net, p.transport),
            Err(e) => format!("does not parse: {e}"),
        };
        let (c, p) = (&self.cfg, &self.policy);
        format!(
            "{}\n  config: ecn {}, wscale {}, MSS caps {}/{}, cookies and host flags {:#x}, monitor {}, auto mode {:?}\n  lists (allow/block v4, v6): {}/{}, {}/{}; per-source burst {}, blocks {}; reflection burst {}\n  live connections: {}\n  frame ({} bytes, first buffer {:?}): {hex}\n  decoded: {decoded}",
            self.what,
            c.ecn,
            c.wscale,
            c.mss_v4,
            c.mss_v6,
            c.cookies,
            p.monitor,
            self.auto.map(|s| (s.cookies_wanted, s.wanted_since_ns)),
            p.allow_v4,
            p.block_v4,
            p.allow_v6,
            p.block_v6,
            p.src_burst_ns.checked_div(p.src_cost_ns).unwrap_or(0),
            p.src_block_ns != 0,
            p.reflect_burst_ns
                .checked_div(p.reflect_cost_ns)
                .unwrap_or(0),
            self.conns
                .iter()
                .map(|t| format!("{:02x?}:{} -> {}", t.src, t.sport, t.dport))
                .collect::<Vec<_>>()
                .join(", "),
            self.frame.len(),
            self.first.unwrap_or(self.frame.len() as u32),
        )
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Generated frames.
    pub frames: u64,
    /// Program runs, including the final ACKs of answered SYNs.
    pub runs: u64,
    pub secs: f64,
    pub answered: u64,
    /// Frames run split over buffers.
    pub split: u64,
    pub by_reason: BTreeMap<&'static str, u64>,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn runs_per_sec(&self) -> f64 {
        self.runs as f64 / self.secs.max(1e-9)
    }
}

/// Whose cookies the fuzzed program answers SYNs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cookies {
    /// The kernel's (`--cookies kernel`).
    Kernel,
    /// synguard's own (`--cookies own`), under a key each run draws from its seed.
    Own,
}

/// The program loaded with the fuzzer's configuration, and an idle device with an XDP program
/// in a namespace of its own: with any XDP program attached, a `BPF_PROG_TEST_RUN` call costs
/// microseconds instead of an RCU grace period (docs/host-checks.md, "Fuzzing").
pub struct Fuzzer {
    fixture: Fixture,
    /// The configuration the fixture was loaded with (`default_config`, read once: it parses
    /// the kernel's BTF), which every batch's varies.
    base: Config,
    /// The batch's configuration.
    cfg: Config,
    /// The host's addresses in the program's tries, for the families the batch puts there.
    table: LocalTable,
    /// Auto mode's state for the batch; `None` in always mode.
    auto: Option<ModeState>,
    /// The own cookies' key of the run under way; None with the kernel's cookies.
    key: Option<Key>,
    cookies: Cookies,
    /// Frames run since the last count whose reason is one of those that pass, not one known
    /// ([`Fuzzer::split`]).
    unknown_passes: u64,
    /// ACKs since the last count that the checking TC program must have accepted ([`tc`]).
    tc_accepted: u64,
    /// The batch's lists, limits and live connections, and the oracle's state of them.
    world: World,
    /// What monitor mode must have counted since the last count, by reason index.
    would_want: Vec<u64>,
    _idle: IdleXdp,
}

const BATCH: usize = 512;
/// Mixed into the seed for the stream the batches' configurations come from.
const CONFIG_STREAM: u64 = 0xc0f1_9000_0000_0001;
/// Mixed into the seed for the stream the batches' lists and limits come from.
const POLICY_STREAM: u64 = 0x9011_c700_0000_0003;
/// Mixed into the seed for the stream the batches' live connections come from.
const CONNS_STREAM: u64 = 0xc044_5000_0000_0004;
/// Mixed into the seed for the stream that picks the frames run split, and where.
const SPLIT_STREAM: u64 = 0x5b11_7000_0000_0002;
impl Fuzzer {
    pub fn new(cookies: Cookies) -> Result<Self> {
        let idle = IdleXdp::new("fuzz")?;
        let mut cfg = default_config();
        if cookies == Cookies::Own {
            cfg.cookies = COOKIES_OWN;
        }
        let mut fixture = Fixture::new(cfg, &generate::PROTECTED)?;
        // The lists' contents stay; each batch turns each list on or off (`policies`).
        for (list, allow) in [(&policies::BLOCK[..], false), (&policies::ALLOW[..], true)] {
            for &(addr, len) in list {
                fixture.list_add(allow, addr, len)?;
            }
        }
        // The routes stay; each batch turns the reverse-path filter on or off.
        for (net, len, kind) in model::ROUTES {
            let kind = match kind {
                RouteKind::Here => RP_ROUTE_HERE,
                RouteKind::Elsewhere => RP_ROUTE_ELSEWHERE,
                RouteKind::Blocked => RP_ROUTE_BLOCKED,
            };
            fixture.route_add(net, len, kind)?;
        }
        Ok(Fuzzer {
            fixture,
            base: cfg,
            cfg,
            table: LocalTable::default(),
            auto: None,
            key: None,
            cookies,
            unknown_passes: 0,
            tc_accepted: 0,
            world: World {
                cookies_on: true,
                ..World::default()
            },
            would_want: vec![0; REASON_SLOTS as usize],
            _idle: idle,
        })
    }

    /// A configuration for the next batch, as the loader could write it: ECN on or off, our
    /// window scale, the interfaces' MSS caps (0: none), and the host's TCP without timestamps,
    /// SACK or window scaling (`HOST_NO_*`), each in a quarter of the batches; in a quarter, no
    /// listener on the second protected port over one family or both; the reverse-path filter
    /// strict in a fifth and loose in a tenth (against `model::ROUTES`); more of the host's
    /// addresses in three batches in ten (`more_addresses`); auto mode in one in five
    /// (`set_mode`); monitor mode in one batch in eight; lists and limits from `pol_rng`
    /// (`Policies::draw`).
    fn vary_config(&mut self, rng: &mut Rng, pol_rng: &mut Rng) -> Result<()> {
        let pick = |rng: &mut Rng, from: &[u32]| from[rng.below(from.len() as u64) as usize];
        let mut cfg = self.base;
        cfg.ecn = rng.below(2) as u32;
        cfg.wscale = rng.below(15) as u32;
        cfg.mss_v4 = pick(rng, &[0, 1460, 1400, 1200, 8960]);
        cfg.mss_v6 = pick(rng, &[0, 1440, 1380, 1220, 8940]);
        for flag in [HOST_NO_TIMESTAMPS, HOST_NO_SACK, HOST_NO_WSCALE] {
            if rng.pct(25) {
                cfg.cookies |= flag;
            }
        }
        let (mut locals, mut table) = (None, LocalTable::default());
        if rng.pct(30) {
            let more = more_addresses(rng, cfg);
            (cfg, table, locals) = (more.0, more.1, Some(more.2));
        }
        // The reverse-path filter: strict in a fifth of the batches, loose in a tenth.
        match rng.below(10) {
            0 | 1 => cfg.cookies |= HOST_RP_STRICT,
            2 => cfg.cookies |= HOST_RP_LOOSE,
            _ => {}
        }
        // Auto mode in a fifth of the batches, its state set here rather than reached: the
        // program's thresholds out of reach (never on by itself, never off), cookies called for
        // in half of them, since just now or since longer than a kernel cookie lives (which
        // decides whether own cookies' ACK check also asks the kernel's).
        let auto = rng.pct(20).then(|| {
            let now = synguard::host::clock::monotonic_ns();
            let since = if rng.pct(50) {
                now
            } else {
                now.saturating_sub(KERNEL_COOKIE_LIFE_NS + 1_000_000_000)
            };
            ModeState {
                cookies_wanted: rng.below(2) as u32,
                wanted_since_ns: since,
                last_above_ns: now,
                ..ModeState::default()
            }
        });
        if auto.is_some() {
            (cfg.mode, cfg.syn_on_pps, cfg.syn_off_pps) = (MODE_AUTO, u32::MAX, 0);
        }
        self.set_config(cfg, locals, &table)?;
        self.set_mode(auto)?;
        let locals = self.world.locals.clone();
        self.set_listeners(draw_listeners(rng, &cfg, &locals))?;
        let monitor = rng.pct(12);
        self.set_policies(Policies::draw(pol_rng, monitor))
    }

    /// The batch's configuration, in the program and in the oracle: the addresses it lists,
    /// `locals` where they were drawn (else those of the config's slots), with the program's
    /// tries holding `table` for the families that are there.
    fn set_config(
        &mut self,
        cfg: Config,
        locals: Option<model::Locals>,
        table: &LocalTable,
    ) -> Result<()> {
        self.fixture.local_table(table)?;
        self.table = table.clone();
        self.fixture.set_config(cfg)?;
        self.cfg = cfg;
        self.world.locals = locals.unwrap_or_else(|| model::Locals::of(&cfg));
        self.world.reverse_path = if cfg.cookies & HOST_RP_STRICT != 0 {
            ReversePath::Strict
        } else if cfg.cookies & HOST_RP_LOOSE != 0 {
            ReversePath::Loose
        } else {
            ReversePath::Off
        };
        Ok(())
    }

    /// Auto mode's state in the program, and in the oracle whether SYNs are answered; `None`:
    /// always mode.
    fn set_mode(&mut self, auto: Option<ModeState>) -> Result<()> {
        self.fixture.set_mode_state(auto.unwrap_or_default())?;
        self.auto = auto;
        self.world.cookies_on = auto.is_none_or(|s| s.cookies_wanted != 0);
        Ok(())
    }

    /// The batch's listeners, in the program's port table.
    fn set_listeners(&mut self, listeners: Listeners) -> Result<()> {
        self.fixture.set_bound(&listeners.keys)?;
        self.fixture.set_no_listener(&listeners.bits)?;
        self.world.listeners = listeners;
        Ok(())
    }

    /// The batch's policies in the program, with both limits' tables emptied to match the
    /// oracle's fresh state.
    fn set_policies(&mut self, p: Policies) -> Result<()> {
        self.fixture.set_policy(p.policy)?;
        self.fixture.clear_limits()?;
        self.world.policies = p;
        Ok(())
    }

    /// The batch's live connections and the 4-tuples for the socket lookup stamped in the
    /// connection table, those of the batch before and their closes taken out.
    fn set_conns(&mut self, c: Conns) -> Result<()> {
        let old = &self.world.conns;
        for t in old.live().chain(old.asked().iter().map(|a| &a.tuple)) {
            let f = t.frame();
            self.fixture.clear_conn(&f)?;
            self.fixture.clear_closing(&f)?;
        }
        let now = synguard::host::clock::monotonic_ns();
        for t in c.live() {
            self.fixture.stamp_conn(&t.frame(), now)?;
        }
        for a in c.asked() {
            let f = a.tuple.frame();
            if a.other_in_slot {
                self.fixture.stamp_other_in_slot(&f, now)?;
            } else {
                self.fixture.stamp_request(&f, now)?;
            }
        }
        self.world.conns = c;
        Ok(())
    }

    /// Monitor mode in this batch: every frame passes, what would have been done is counted.
    fn monitor(&self) -> bool {
        self.world.policies.policy.monitor != 0
    }

    /// A violation of the frame `frame` (split after `first` bytes), in the batch under way.
    fn violation(&self, what: String, frame: &[u8], first: Option<u32>) -> Violation {
        Violation {
            what,
            frame: frame.to_vec(),
            cfg: self.cfg,
            policy: self.world.policies.policy,
            conns: self.world.conns.live().cloned().collect(),
            listeners: self.world.listeners.clone(),
            locals: self.world.locals.clone(),
            table: self.table.clone(),
            auto: self.auto,
            first,
        }
    }

    /// Own cookies: a key drawn from the run's seed, in the secret map as the current one.
    fn set_key(&mut self, rng: &mut Rng) -> Result<()> {
        if self.cookies != Cookies::Own {
            return Ok(());
        }
        let key = [rng.next_u64(), rng.next_u64()];
        self.fixture.set_secret(CookieSecret {
            current: key,
            ..Default::default()
        })?;
        self.key = Some(key);
        Ok(())
    }

    /// Runs `frames` generated frames from `seed`; stops collecting after `max_violations`.
    /// Batches alternate between the connection table trusted (an ACK without a socket skips
    /// the socket lookup, as the loader keeps it) and not (the lookup decides): no frame here
    /// has a socket, so both must give the same verdicts.
    pub fn run(&mut self, frames: u64, seed: u64, max_violations: usize) -> Result<Report> {
        let mut rng = Rng::new(seed);
        self.set_key(&mut rng)?;
        // Configurations from a stream of their own: a seed's frames stay what they were.
        let mut cfg_rng = Rng::new(seed ^ CONFIG_STREAM);
        let mut split_rng = Rng::new(seed ^ SPLIT_STREAM);
        let mut pol_rng = Rng::new(seed ^ POLICY_STREAM);
        let mut conns_rng = Rng::new(seed ^ CONNS_STREAM);
        let mut report = Report::default();
        let start = Instant::now();
        let mut done = 0u64;
        let mut trusted = true;
        while done < frames && report.violations.len() < max_violations {
            let until = if trusted {
                synguard::host::clock::monotonic_ns() + 3_600_000_000_000
            } else {
                0
            };
            self.fixture.set_conns_state(until)?;
            self.vary_config(&mut cfg_rng, &mut pol_rng)?;
            self.set_conns(Conns::draw(&mut conns_rng))?;
            trusted = !trusted;
            let n = (frames - done).min(BATCH as u64) as usize;
            let others = self.world.locals.others();
            let batch: Vec<Input> = (0..n)
                .map(|_| {
                    let frame = generate::next(&mut rng, &others).frame;
                    let first = split_point(&mut split_rng, frame.len());
                    Input { frame, first }
                })
                .collect();
            self.batch(&batch, &mut report)?;
            done += n as u64;
        }
        report.frames = done;
        report.secs = start.elapsed().as_secs_f64();
        // A batch's frames all run before the count is checked: keep the first ones asked for.
        report.violations.truncate(max_violations);
        for v in &mut report.violations {
            self.set_config(v.cfg, Some(v.locals.clone()), &v.table.clone())?;
            self.set_mode(v.auto)?;
            self.set_policies(Policies::fresh(v.policy))?;
            self.set_conns(Conns::of(v.conns.clone()))?;
            self.set_listeners(v.listeners.clone())?;
            v.frame = self.minimise(&v.frame, v.first)?;
        }
        Ok(report)
    }

    fn batch(&mut self, batch: &[Input], report: &mut Report) -> Result<()> {
        let before = self.count_from()?;
        let mut want = vec![0u64; REASON_SLOTS as usize];
        for Input { frame, first } in batch {
            report.split += u64::from(first.is_some());
            let (res, reasons) = self.one(frame, *first)?;
            report.runs += reasons.len().max(1) as u64;
            for r in reasons {
                want[r.index() as usize] += 1;
                *report.by_reason.entry(r.name()).or_default() += 1;
                report.answered += u64::from(r == Reason::TxSynAckCookie);
            }
            if let Err(what) = res {
                report.violations.push(self.violation(what, frame, *first));
            }
        }
        let got = self.grown_since(&before)?;
        if !counts_match(
            &got.verdicts,
            &want,
            std::mem::take(&mut self.unknown_passes),
        ) || got.tc != std::mem::take(&mut self.tc_accepted)
            || got.would != self.would_want
        {
            report.violations.push(self.locate(batch)?);
        }
        Ok(())
    }

    /// Runs one frame, split over buffers after `first` bytes if given (and, for an answered
    /// SYN, its final ACK and a tampered one): the verdict, and the reasons that must have been
    /// counted.
    fn one(
        &mut self,
        frame: &[u8],
        first: Option<u32>,
    ) -> Result<(Result<(), String>, Vec<Reason>)> {
        // A frame whose headers its first buffer cuts meets no list or limit (it passes as it
        // came, `split`): the oracle's limits must not be charged for it.
        let cut = first
            .is_some_and(|n| model::tcp_ends(frame).is_some_and(|(fixed, _)| (n as usize) < fixed));
        let mut uncharged;
        let world = if cut {
            uncharged = self.world.clone();
            &mut uncharged
        } else {
            &mut self.world
        };
        let (expect, syn) = model::expect(frame, world);
        // Own cookies: the checking TC program first (the XDP program's pass of a valid ACK
        // stamps the connection table, which that program then trusts).
        let tc_ran = match first {
            None if self.cookies == Cookies::Own => match tc::check(&self.fixture, frame)? {
                Ok(ran) => ran,
                Err(e) => return Ok((Err(e), vec![])),
            },
            _ => false,
        };
        let refused_before = match expect {
            Expect::CookieCheck if self.monitor() => Some(self.fixture.would(BAD_COOKIE)?),
            _ => None,
        };
        let (out, cookie_slots) = own_slots::around(|| match first {
            Some(n) => self.fixture.run_split(frame, n),
            None => self.fixture.run(frame),
        });
        let out = out?;
        if let Some(first) = first
            && let Some(judged) = self.split(frame, first as usize, expect, syn.as_ref(), &out)
        {
            return Ok(judged);
        }
        if self.monitor() {
            return self.monitored(frame, expect, &out, refused_before, tc_ran);
        }
        let action = |r: Reason| match r.verdict() {
            Verdict::Pass => XDP_PASS,
            Verdict::Tx => XDP_TX,
            Verdict::Drop => XDP_DROP,
        };
        let unchanged = |reason: Reason| {
            if out.action == XDP_PASS && out.frame != frame {
                Err(format!("{reason:?}: PASS changed the frame"))
            } else {
                Ok(())
            }
        };
        let verdict = match expect {
            Expect::Exactly(r) => {
                if out.action != action(r) {
                    return Ok((Err(format!("action {}, want {r:?}", out.action)), vec![r]));
                }
                return Ok((unchanged(r), vec![r]));
            }
            Expect::CookieCheck => {
                let r = match out.action {
                    XDP_PASS => {
                        self.forget_handshake(frame)?;
                        self.tc_accepted += u64::from(tc_ran);
                        Reason::PassCookieAck
                    }
                    XDP_DROP => Reason::DropAckBadCookie,
                    a => return Ok((Err(format!("ACK got action {a}")), vec![])),
                };
                return Ok((unchanged(r), vec![r]));
            }
            Expect::SynAck => out.action,
        };
        let syn = syn.expect("the model returns the SYN it wants answered");
        if verdict != XDP_TX {
            let r = Reason::TxSynAckCookie;
            return Ok((Err(format!("action {verdict}, want a SYN-ACK")), vec![r]));
        }
        let mut reasons = vec![Reason::TxSynAckCookie];
        let cookie = match &self.key {
            Some(key) => reply::Cookie::Own {
                key,
                slots: cookie_slots,
            },
            None => reply::Cookie::Kernel,
        };
        let answer = match reply::check(&syn, &out.frame, &self.cfg, cookie) {
            Ok(a) => a,
            Err(e) => return Ok((Err(format!("bad SYN-ACK: {e}")), reasons)),
        };
        let good = reply::final_ack(&syn, answer, 0);
        if self.cookies == Cookies::Own {
            match tc::check(&self.fixture, &good)? {
                Ok(true) => self.tc_accepted += 1,
                Ok(false) => return Ok((Err("final ACK: no TC test run".into()), reasons)),
                Err(e) => return Ok((Err(format!("final ACK: {e}")), reasons)),
            }
        }
        reasons.push(Reason::PassCookieAck);
        let o = self.fixture.run(&good)?;
        if o.action != XDP_PASS {
            return Ok((Err(format!("final ACK got action {}", o.action)), reasons));
        }
        // Own cookies: the output starts at the metadata (`BPF_PROG_TEST_RUN` returns it from
        // `data_meta`), where the TC program will read the request socket's attributes.
        let want = match self.cookies {
            Cookies::Kernel => good.clone(),
            Cookies::Own => [reply::own_meta(&syn, answer, &self.cfg), good.clone()].concat(),
        };
        if o.frame != want {
            let what = format!("final ACK passed as {:02x?}, want {want:02x?}", o.frame);
            return Ok((Err(what), reasons));
        }
        self.forget_handshake(&good)?;
        let bit = match self.cookies {
            // Bits 2..23: a change of the low two bits would name another valid MSS index.
            Cookies::Kernel => 1u32 << (2 + (answer.0 % 22)),
            // The MAC's bits 9..31: the check recomputes the same MAC, which the flip changed.
            Cookies::Own => 1u32 << (9 + (answer.0 % 23)),
        };
        let bad = reply::final_ack(&syn, answer, bit);
        reasons.push(Reason::DropAckBadCookie);
        let o = self.fixture.run(&bad)?;
        if o.action != XDP_DROP {
            return Ok((
                Err(format!("tampered ACK got action {}", o.action)),
                reasons,
            ));
        }
        Ok((Ok(()), reasons))
    }

    /// Empties the connection table's slot of a handshake whose final ACK passed: its 4-tuple's
    /// packets pass for a moment after it (`conn_handshake_stamp`), and each frame here stands
    /// for a later one.
    fn forget_handshake(&mut self, ack: &[u8]) -> Result<()> {
        // A frame the fixture's own parser refuses (etherparse takes IPv6 hop-by-hop options
        // only first) stamped nothing it could find: a pass of such a frame is a wrong verdict,
        // which the batch's counts report, not a reason to stop the run.
        if crate::testrun::frames::flow_hash_of(ack).is_err() {
            return Ok(());
        }
        self.fixture.clear_conn(ack)
    }
}

/// A frame and, for one run split over buffers, its first buffer's length.
struct Input {
    frame: Vec<u8>,
    first: Option<u32>,
}

/// What an ACK without a valid cookie would get: dropped.
const BAD_COOKIE: Reason = Reason::DropAckBadCookie;
/// More addresses of each family beside the server's, placed as the loader places them
/// (`LocalAddrs::with_table`): up to seven, or in a quarter of the batches nine to fifteen,
/// which the loader puts in the program's trie; some in the subnet the frames' sources come
/// from (so that some sources are the host's own), some anywhere. In a fifth of the batches a
/// local prefix too (AnyIP), which also puts its family in the trie: 198.18.0.192/28, inside
/// the sources' subnet, and an IPv6 /120 around the server's. Returns the config, the tries'
/// entries and the oracle's lists, drawn here, not read back from the placement.
fn more_addresses(rng: &mut Rng, cfg: Config) -> (Config, LocalTable, model::Locals) {
    use std::net::IpAddr;
    use synguard::host::{addrs::LocalAddrs, local_routes::LocalRoute};
    let count = |rng: &mut Rng| {
        if rng.pct(25) {
            9 + rng.below(7) as u8
        } else {
            rng.below(8) as u8
        }
    };
    let mut v4 = vec![SERVER_V4];
    let mut v6 = vec![SERVER_V6];
    for i in 0..count(rng) {
        v4.push(match rng.below(2) {
            0 => [198, 18, 0, 200 + i],
            _ => [10, rng.byte(), rng.byte(), 1 + i],
        });
    }
    for i in 0..count(rng) {
        let mut a = SERVER_V6;
        a[15] = 200 + i;
        if rng.pct(50) {
            a[4..12].copy_from_slice(&rng.bytes(8));
        }
        v6.push(a);
    }
    let mut prefixes: Vec<(IpAddr, u8)> = Vec::new();
    if rng.pct(20) {
        prefixes.push((IpAddr::from([198, 18, 0, 192]), 28));
        let mut p6 = SERVER_V6;
        p6[15] = 0;
        prefixes.push((IpAddr::from(p6), 120));
    }
    let found = v4
        .iter()
        .map(|a| IpAddr::from(*a))
        .chain(v6.iter().map(|a| IpAddr::from(*a)))
        .map(|a| ("eth0".to_string(), a));
    let routes: Vec<LocalRoute> = prefixes
        .iter()
        .map(|&(addr, prefix)| LocalRoute { addr, prefix })
        .collect();
    let (addrs, table) = LocalAddrs::with_table(&["eth0"], found, &routes);
    let mut cfg = cfg;
    addrs.set(&mut cfg);
    let bytes = |a: IpAddr| match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let family = |n: u32, list: Vec<Vec<u8>>, v6: bool| {
        (n != 0).then(|| model::Family {
            addrs: list,
            prefixes: prefixes
                .iter()
                .filter(|(a, _)| a.is_ipv6() == v6)
                .map(|&(a, len)| (bytes(a), len))
                .collect(),
        })
    };
    let locals = model::Locals {
        v4: family(
            cfg.local_v4_n,
            v4.iter().map(|a| a.to_vec()).collect(),
            false,
        ),
        v6: family(
            cfg.local_v6_n,
            v6.iter().map(|a| a.to_vec()).collect(),
            true,
        ),
    };
    (cfg, table, locals)
}

/// The second protected port's listeners for a batch. A quarter of batches: nothing listens on
/// it over IPv4, IPv6 or both. One in eight of the others: its listeners over IPv4, IPv6 or
/// both are bound to one address, not the server's (another the batch lists, or one it does
/// not), a wildcard one over the other family; the bits come from the loader's own
/// `Listening::no_listener_flags` against the batch's address list.
fn draw_listeners(rng: &mut Rng, cfg: &Config, locals: &model::Locals) -> Listeners {
    use std::net::IpAddr;
    use synguard::host::{addrs::LocalAddrs, listeners::Listening};
    let port = generate::PROTECTED[1];
    if rng.pct(25) {
        let (v4, v6) = (PORT_NO_LISTENER_V4, PORT_NO_LISTENER_V6);
        let bits = [v4, v6, v4 | v6][rng.below(3) as usize];
        return Listeners {
            bits: vec![(port, bits)],
            ..Listeners::default()
        };
    }
    if !rng.pct(13) {
        return Listeners::default();
    }
    let which = rng.below(3);
    let (others4, others6) = locals.others();
    let elsewhere4 = IpAddr::from([198, 18, 0, 250]);
    let elsewhere6: IpAddr = "2001:2::250".parse().unwrap();
    let at4 = match &others4[..] {
        o if !o.is_empty() && rng.pct(50) => IpAddr::from(rng.pick(o)),
        _ => elsewhere4,
    };
    let at6 = match &others6[..] {
        o if !o.is_empty() && rng.pct(50) => IpAddr::from(rng.pick(o)),
        _ => elsewhere6,
    };
    let mut l = Listening::default();
    let mut bound = Vec::new();
    for (ipv6, at) in [(false, at4), (true, at6)] {
        let family = if ipv6 { &mut l.v6 } else { &mut l.v4 };
        if which == 2 || which == u64::from(ipv6) {
            family.at.entry(port).or_default().insert(at);
            let bytes = match at {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            bound.push((port, ipv6, vec![bytes]));
        } else {
            family.any.insert(port);
        }
    }
    let addrs = LocalAddrs::from_config(cfg);
    Listeners {
        bits: vec![(port, l.no_listener_flags(port, &addrs))],
        bound,
        keys: l.bound_keys(&[port], &addrs),
    }
}
