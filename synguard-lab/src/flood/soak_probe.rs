//! What the soak reads from the system: the daemon's memory and CPU time from /proc, the
//! occupancy of synguard's pinned maps (through synguard's own typed openers), and the server
//! interface's receive counter.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use aya::maps::{Array, HashMap, MapData};
use synguard::datapath::{maps, policy};
use synguard::policy::ListKind;
use synguard_common::maps::{CLOSING_RECORD_UNITS, CLOSING_TIME_SHIFT};
use synguard_common::names;
use synguard_common::policy::{AddrKey, ReflectState};

use crate::lab::topology::Node;

/// Where `synguard run` pinned the maps of the node's interface (the daemon runs with the
/// default pin base; instances are keyed by network namespace and interface index).
pub fn pin_dir(node: &Node) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let netns = std::fs::metadata(node.ns.path())
        .with_context(|| format!("stat {}", node.ns.path().display()))?
        .ino();
    let out = node.ns.ip(&["-j", "link", "show", "dev", &node.ifname])?;
    let link: serde_json::Value = serde_json::from_str(&out).context("ip -j link show")?;
    let ifindex = link[0]["ifindex"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .with_context(|| format!("no ifindex for {} in {out}", node.ifname))?;
    let key = synguard::state::paths::Key::scoped(netns, &node.ifname, ifindex);
    Ok(synguard::state::paths::pin_dir(
        Path::new(synguard::config::DEFAULT_PIN_BASE),
        &key,
    ))
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&text).with_context(|| format!("no VmRSS line in {path}"))
}

/// CPU time (user + system) of a process, in seconds.
pub fn cpu_s(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_cpu_ticks(&text).with_context(|| format!("malformed {path}"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / hz)
}

/// Whether a process is still running (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|t| {
        !t.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime (fields 14 and 15 of /proc/PID/stat; the command name in parentheses may
/// contain spaces, so fields are counted after its closing parenthesis).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is f[0], so field N is f[N - 3].
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// What synguard's maps hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct Occupancy {
    pub sources: u64,
    pub reflect: u64,
    pub closing_used: u64,
    pub closing_live: u64,
    pub allow: usize,
    pub block: usize,
}

/// Reads the occupancy of the maps pinned in `dir`.
pub fn occupancy(dir: &Path) -> Result<Occupancy> {
    let sources = policy::sources(maps::open(dir, names::SOURCES)?)?.len() as u64;
    let reflect: HashMap<MapData, AddrKey, ReflectState> =
        HashMap::try_from(maps::open(dir, names::REFLECT)?)?;
    let reflect = reflect.keys().filter(Result::is_ok).count() as u64;
    let (closing_used, closing_live) = closing(dir)?;
    let lists = policy::open_pinned(dir)?;
    Ok(Occupancy {
        sources,
        reflect,
        closing_used,
        closing_live,
        allow: lists.list(ListKind::Allow)?.len(),
        block: lists.list(ListKind::Block)?.len(),
    })
}

/// Slots of the recently-closed table in use, and those whose record is still within the
/// record's time (`synguard_common::maps::closed_within_time_wait`, without the flow).
fn closing(dir: &Path) -> Result<(u64, u64)> {
    let table: Array<MapData, u64> = maps::array(dir, names::CLOSING)?;
    // The program stamps records with bpf_ktime_get_coarse_ns, i.e. CLOCK_MONOTONIC_COARSE.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } != 0 {
        return Err(anyhow!(
            "clock_gettime: {}",
            std::io::Error::last_os_error()
        ));
    }
    let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let now_units = (now >> CLOSING_TIME_SHIFT) & 0xffff_ffff;
    let window = CLOSING_RECORD_UNITS;
    let (mut used, mut live) = (0, 0);
    for entry in table.iter() {
        let entry = entry.context("reading the recently-closed table")?;
        if entry == 0 {
            continue;
        }
        used += 1;
        if now_units.wrapping_sub(entry & 0xffff_ffff) & 0xffff_ffff <= window {
            live += 1;
        }
    }
    Ok((used, live))
}

/// Packets the node's interface received so far (`ip -s -j link`): on a veth with an XDP
/// program, every frame the program ran on (docs/veth-and-nics.md, "The receive counter of a
/// veth with XDP counts what XDP saw").
pub fn rx_packets(node: &Node) -> Result<u64> {
    let out = node
        .ns
        .ip(&["-s", "-j", "link", "show", "dev", &node.ifname])?;
    let json: serde_json::Value = serde_json::from_str(&out).context("parsing ip -j output")?;
    json[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .ok_or_else(|| anyhow!("no stats64.rx.packets in `ip -s -j link` output"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_cpu_ticks() {
        let status = "Name:\tsynguard\nVmPeak:\t  9000 kB\nVmRSS:\t  5120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(5120));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        // A command name with spaces and parentheses; utime 7, stime 5.
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 99";
        assert_eq!(parse_cpu_ticks(stat), Some(12));
        assert_eq!(parse_cpu_ticks("42 (x) S 1"), None);
    }
}
