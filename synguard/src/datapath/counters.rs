//! The program's counters: one [`Sample`] of every pinned counter of an instance (summed over
//! CPUs), for `stats`, `status` and the metrics endpoint, and which instance a command means.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use serde::Serialize;
use synguard_common::{
    maps::{
        Config, Counter, MODE_ALWAYS, MODE_AUTO, ModeState, ReadyState, cookies_called_for, names,
    },
    policy::names::PORT_SYNS,
    reason::{EVENT_SLOTS, Event, REASON_SLOTS, REASONS, Reason, Verdict},
};
use thiserror::Error;

use crate::{
    datapath::{
        maps::{self, PinnedMapError},
        ports, rate,
    },
    host::clock::monotonic_ns,
    state::{paths, scope},
};

#[derive(Debug, Error)]
pub enum StatsError {
    #[error(
        "no synguard instance is running in this network namespace (nothing under {}); note \
         that a bpffs mounted by `ip netns exec` is visible only inside that command",
        .0.display()
    )]
    NoInstance(PathBuf),
    #[error(
        "no synguard instance on {iface} in this network namespace (nothing under {}): is \
         `synguard run --iface {iface}` running?",
        dir.display()
    )]
    NoInstanceOn { iface: String, dir: PathBuf },
    #[error("several synguard instances are running ({}): choose one with --iface", .0.join(", "))]
    Ambiguous(Vec<String>),
    #[error(transparent)]
    Map(#[from] PinnedMapError),
    #[error(transparent)]
    Schema(#[from] crate::datapath::pins::PinError),
    #[error("cannot list {}", path.display())]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The instance directory to read: the one for `iface`, or the only one of our network
/// namespace (`state::scope`).
pub fn find_instance(
    pin_base: &Path,
    run_dir: &Path,
    iface: Option<&str>,
) -> Result<PathBuf, StatsError> {
    let keys = scope::select(pin_base, run_dir, iface).map_err(|source| StatsError::List {
        path: pin_base.to_path_buf(),
        source,
    })?;
    let mut found: Vec<(String, PathBuf)> = keys
        .iter()
        .map(|k| (k.iface().to_string(), paths::pin_dir(pin_base, k)))
        .filter(|(_, dir)| dir.is_dir())
        .collect();
    match (found.len(), iface) {
        (0, Some(iface)) => Err(StatsError::NoInstanceOn {
            iface: iface.to_string(),
            dir: pin_base.to_path_buf(),
        }),
        (0, None) => Err(StatsError::NoInstance(pin_base.to_path_buf())),
        (1, _) => Ok(found.remove(0).1),
        _ => Err(StatsError::Ambiguous(
            found.into_iter().map(|(i, _)| i).collect(),
        )),
    }
}

/// One reading of every counter, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub iface: String,
    /// The programs' clock when the sample was taken (`host::clock::monotonic_ns`).
    pub time_ns: u64,
    /// `MODE_ALWAYS` / `MODE_AUTO` from the config map.
    pub mode: u32,
    /// SYNs to protected ports are answered with cookies now: the mode calls for them and the
    /// kernel is ready ([`cookies_active`]).
    pub cookies_active: bool,
    /// The loader's word to the program, read with the rest (`cookies_active` comes from it).
    pub ready: ReadyState,
    pub mode_state: ModeState,
    /// SYNs per second to protected ports when the sample was taken (decays with time).
    pub syn_rate_pps: u64,
    /// Indexed by `Reason as usize`, `REASON_SLOTS` long.
    pub verdicts: Vec<Counter>,
    /// Indexed by `Event as usize`, `EVENT_SLOTS` long.
    pub events: Vec<u64>,
    /// SYNs per protected port, summed over CPUs (the program's per-port counters).
    pub port_syns: BTreeMap<u16, u64>,
}

impl Sample {
    pub fn counter(&self, reason: Reason) -> Counter {
        self.verdicts[reason.index() as usize]
    }

    pub fn event(&self, event: Event) -> u64 {
        self.events[event.index() as usize]
    }

    pub fn mode_name(&self) -> &'static str {
        mode_name(self.mode)
    }

    /// Packets per verdict (pass, tx, drop) over every reason.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for r in REASONS {
            let p = self.counter(r).packets;
            match r.verdict() {
                Verdict::Pass => t.pass += p,
                Verdict::Tx => t.tx += p,
                Verdict::Drop => t.drop += p,
            }
        }
        t
    }
}

pub fn mode_name(mode: u32) -> &'static str {
    match mode {
        MODE_ALWAYS => "always",
        MODE_AUTO => "auto",
        _ => "off",
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub pass: u64,
    pub tx: u64,
    pub drop: u64,
}

fn read_per_cpu<V: aya::Pod + Default>(
    dir: &Path,
    name: &str,
    slots: u32,
    add: impl Fn(&mut V, &V),
) -> Result<Vec<V>, StatsError> {
    let map = maps::per_cpu_array::<V>(dir, name)?;
    (0..slots.min(map.len()))
        .map(|i| {
            let per_cpu = map.get(&i, 0).map_err(PinnedMapError::read(dir, name))?;
            let mut sum = V::default();
            per_cpu.iter().for_each(|v| add(&mut sum, v));
            Ok(sum)
        })
        .chain((map.len()..slots).map(|_| Ok(V::default())))
        .collect()
}

/// One event's count over every CPU, and nothing else: for a check that runs every few seconds
/// (a whole sample also reads the 65 536-entry port map).
pub fn read_event(dir: &Path, event: Event) -> Result<u64, StatsError> {
    crate::datapath::pins::check_schema(dir)?;
    let map = maps::per_cpu_array::<u64>(dir, names::EVENTS)?;
    let per_cpu = map
        .get(&event.index(), 0)
        .map_err(PinnedMapError::read(dir, names::EVENTS))?;
    Ok(per_cpu.iter().sum())
}

/// Whether the program answers SYNs to protected ports with cookies now, as it decides
/// (`decide::syn_action` in synguard-ebpf): the mode calls for them, and the kernel is ready.
/// The readiness alone said "on" all the time with own cookies, which are ready from the start
/// while auto mode has them off until a flood.
pub fn cookies_active(config: &Config, mode: &ModeState, ready: &ReadyState) -> bool {
    ready.kernel_ready != 0 && cookies_called_for(config.mode, mode.cookies_wanted != 0)
}

/// Reads every pinned counter of the instance in `dir` (e.g. /sys/fs/bpf/synguard/veth0).
pub fn read_sample(dir: &Path) -> Result<Sample, StatsError> {
    // Another schema's maps may have the same names and mean something else.
    crate::datapath::pins::check_schema(dir)?;
    let config: Config = maps::read_single(dir, names::CONFIG)?;
    let ready: ReadyState = maps::read_single(dir, names::READY)?;
    let mode_state: ModeState = maps::read_single(dir, names::MODE)?;
    let verdicts = read_per_cpu(dir, names::VERDICTS, REASON_SLOTS, |s: &mut Counter, v| {
        s.packets += v.packets;
        s.bytes += v.bytes;
    })?;
    let events = read_per_cpu(dir, names::EVENTS, EVENT_SLOTS, |s: &mut u64, v| *s += v)?;
    let port_syns = read_port_syns(dir)?;
    let time_ns = monotonic_ns();
    Ok(Sample {
        iface: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        time_ns,
        mode: config.mode,
        cookies_active: cookies_active(&config, &mode_state, &ready),
        ready,
        mode_state,
        syn_rate_pps: rate::read_syn_rate(dir, time_ns)?,
        verdicts,
        events,
        port_syns,
    })
}

/// SYNs per protected port. The protected set comes from the port map each time (a reload can
/// change it), read in a few batch calls; the per-CPU counters are then read for those ports
/// only. A program without per-port counters (an older object) has none.
fn read_port_syns(dir: &Path) -> Result<BTreeMap<u16, u64>, StatsError> {
    let mut out = BTreeMap::new();
    let Ok(syns) = maps::per_cpu_array::<u64>(dir, PORT_SYNS) else {
        return Ok(out);
    };
    for port in ports::protected_pinned(dir)? {
        let per_cpu = syns
            .get(&(port as u32), 0)
            .map_err(PinnedMapError::read(dir, PORT_SYNS))?;
        out.insert(port, per_cpu.iter().sum());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::paths::Key;
    use std::fs;

    #[test]
    fn cookies_are_active_when_the_mode_calls_for_them_and_the_kernel_is_ready() {
        let (ready, not_ready) = (ReadyState::new(true, 0), ReadyState::new(false, 0));
        let (wanted, quiet) = (
            ModeState {
                cookies_wanted: 1,
                ..Default::default()
            },
            ModeState::default(),
        );
        let mode = |m| Config {
            mode: m,
            ..Default::default()
        };
        // Own cookies are ready from the start: auto mode is off until a flood wants them.
        assert!(!cookies_active(&mode(MODE_AUTO), &quiet, &ready));
        assert!(cookies_active(&mode(MODE_AUTO), &wanted, &ready));
        assert!(cookies_active(&mode(MODE_ALWAYS), &quiet, &ready));
        // The kernel's cookies wait for the loader's word.
        assert!(!cookies_active(&mode(MODE_AUTO), &wanted, &not_ready));
        assert!(!cookies_active(&mode(MODE_ALWAYS), &quiet, &not_ready));
    }

    #[test]
    fn instance_discovery() {
        let base = std::env::temp_dir().join(format!("synguard-find-{}", std::process::id()));
        let run = base.join("run");
        let _ = fs::remove_dir_all(&base);
        assert!(matches!(
            find_instance(&base, &run, None),
            Err(StatsError::NoInstance(_))
        ));
        let ours = crate::host::netns::current_inode().unwrap();
        let (k0, k1) = (Key::scoped(ours, "veth0", 5), Key::scoped(ours, "veth1", 6));
        // The same name in another namespace is not ours.
        fs::create_dir_all(paths::pin_dir(&base, &Key::scoped(ours + 1, "veth1", 6))).unwrap();
        fs::create_dir_all(paths::pin_dir(&base, &k0)).unwrap();
        assert_eq!(
            find_instance(&base, &run, None).unwrap(),
            paths::pin_dir(&base, &k0)
        );
        let e = find_instance(&base, &run, Some("eth9")).unwrap_err();
        assert!(
            e.to_string().contains("no synguard instance on eth9"),
            "{e}"
        );
        fs::create_dir_all(paths::pin_dir(&base, &k1)).unwrap();
        let e = find_instance(&base, &run, None).unwrap_err();
        assert!(e.to_string().contains("veth0, veth1"), "{e}");
        assert_eq!(
            find_instance(&base, &run, Some("veth1")).unwrap(),
            paths::pin_dir(&base, &k1)
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn reading_a_dir_without_pins_fails_clearly() {
        let e = read_sample(Path::new("/nonexistent/synguard/x")).unwrap_err();
        assert!(e.to_string().contains("SG_CONFIG"), "{e}");
    }
}
