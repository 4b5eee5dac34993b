//! Flood start and end events from the XDP program (ring buffer `SG_FLOOD_EVENTS`): logged once
//! each with the heaviest sources at the time, and kept as a short history per interface
//! (`/run/synguard/<iface>.events.json`) that `synguard status` shows.

use std::{
    fs, io,
    path::{Path, PathBuf},
    task::Poll,
};

use aya::maps::{MapData, RingBuf};
use log::{info, warn};
use serde::{Deserialize, Serialize};
use synguard_common::policy::{FLOOD_START, FloodEvent, names};
use tokio::io::unix::AsyncFd;

use crate::{
    datapath::{
        maps,
        policy::{self, SourceRow},
    },
    host::clock::{monotonic_ns, unix_ms},
    state::paths::{self, Key},
};

/// Records kept per interface.
pub const HISTORY_LEN: usize = 20;
/// Sources named in a flood-start record.
const TOP_SOURCES: usize = 5;

/// One flood start or end, as logged and kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloodRecord {
    /// "start" or "end".
    pub kind: String,
    /// Destination port of the SYN whose rate window made the decision.
    pub port: u16,
    /// SYNs per second to protected ports, all CPUs, at the decision.
    pub rate_pps: u64,
    pub unix_ms: u64,
    /// The heaviest sources at the time (only while per-source limits are on: otherwise the
    /// program keeps no per-source state).
    pub top_sources: Vec<SourceRow>,
}

/// [`FloodRecord::kind`] of a flood's start and of its end.
pub const KIND_START: &str = "start";
pub const KIND_END: &str = "end";

/// A program event as a record: its stamp of the programs' clock turned into wall-clock time.
pub fn record(
    ev: &FloodEvent,
    now_mono_ns: u64,
    now_unix_ms: u64,
    top: Vec<SourceRow>,
) -> FloodRecord {
    let ago_ms = now_mono_ns.saturating_sub(ev.time_ns) / 1_000_000;
    FloodRecord {
        kind: if ev.kind == FLOOD_START {
            KIND_START
        } else {
            KIND_END
        }
        .to_string(),
        port: ev.port as u16,
        rate_pps: ev.rate_pps,
        unix_ms: now_unix_ms.saturating_sub(ago_ms),
        top_sources: top,
    }
}

/// The kept records, oldest first (none if there is no history yet or it is unreadable).
pub fn read_history(path: &Path) -> Vec<FloodRecord> {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Appends records, keeps the last [`HISTORY_LEN`], and replaces the file atomically.
pub fn append_history(path: &Path, new: &[FloodRecord]) -> io::Result<()> {
    let mut all = read_history(path);
    all.extend_from_slice(new);
    let skip = all.len().saturating_sub(HISTORY_LEN);
    let tmp = paths::tmp_of(path);
    fs::write(&tmp, serde_json::to_vec(&all[skip..])?)?;
    fs::rename(&tmp, path)
}

fn log_record(iface: &str, r: &FloodRecord) {
    if r.kind == KIND_START {
        let top: Vec<String> = r
            .top_sources
            .iter()
            .map(|s| format!("{} ({} SYNs)", s.source, s.syns))
            .collect();
        warn!(
            "flood started on {iface}: {} SYN/s to protected ports (port {} tripped it){}",
            r.rate_pps,
            r.port,
            if top.is_empty() {
                String::new()
            } else {
                format!("; heaviest sources: {}", top.join(", "))
            }
        );
    } else {
        info!(
            "flood ended on {iface}: {} SYN/s to protected ports",
            r.rate_pps
        );
    }
}

/// Reads one interface's flood events as they come.
pub struct FloodWatcher {
    iface: String,
    pin_dir: PathBuf,
    history: PathBuf,
    ring: AsyncFd<RingBuf<MapData>>,
}

impl FloodWatcher {
    /// Opens the pinned ring buffer; `None` for a program without one (an older object).
    pub fn open(pin_dir: &Path, run_dir: &Path, key: &Key) -> anyhow::Result<Option<Self>> {
        if !pin_dir.join(names::FLOOD_EVENTS).exists() {
            return Ok(None);
        }
        let ring = RingBuf::try_from(maps::open(pin_dir, names::FLOOD_EVENTS)?)?;
        // SAFETY: the ring buffer owns its fd; it stays open and unchanged until the AsyncFd
        // (which owns the ring buffer) is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Some(FloodWatcher {
            iface: key.iface().to_string(),
            pin_dir: pin_dir.to_path_buf(),
            history: paths::history(run_dir, key),
            ring,
        }))
    }

    /// Logs and records every queued event.
    fn drain(&mut self) {
        let mut events = Vec::new();
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            events.extend(FloodEvent::from_bytes(&item));
        }
        self.handle(&events);
    }

    fn handle(&mut self, events: &[FloodEvent]) {
        if events.is_empty() {
            return;
        }
        let (mono, wall) = (monotonic_ns(), unix_ms());
        let records: Vec<FloodRecord> = events
            .iter()
            .map(|ev| {
                let top = if ev.kind == FLOOD_START {
                    self.top_sources()
                } else {
                    Vec::new()
                };
                record(ev, mono, wall, top)
            })
            .collect();
        records.iter().for_each(|r| log_record(&self.iface, r));
        if let Err(e) = append_history(&self.history, &records) {
            warn!(
                "cannot keep flood history in {}: {e}",
                self.history.display()
            );
        }
    }

    fn top_sources(&self) -> Vec<SourceRow> {
        let Ok(map) = maps::open(&self.pin_dir, names::SOURCES) else {
            return Vec::new();
        };
        match policy::sources(map) {
            Ok(entries) => policy::top(&entries, monotonic_ns(), TOP_SOURCES).0,
            Err(_) => Vec::new(),
        }
    }
}

/// Waits until one of the ring buffers has events and handles them; never returns when there
/// are no watchers, so `select!` simply ignores it.
pub async fn watch(watchers: &mut [FloodWatcher]) -> io::Result<()> {
    if watchers.is_empty() {
        return std::future::pending().await;
    }
    let ready = std::future::poll_fn(|cx| {
        for (i, w) in watchers.iter_mut().enumerate() {
            match w.ring.poll_read_ready_mut(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    guard.clear_ready();
                    return Poll::Ready(Ok(i));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await?;
    watchers[ready].drain();
    Ok(())
}

/// Logs and records an event the loader made itself (a flood ended on the clock,
/// `daemon::mode`), like one from the program.
pub fn loader_event(watchers: &mut [FloodWatcher], iface: &str, ev: FloodEvent) {
    match watchers.iter_mut().find(|w| w.iface == iface) {
        Some(w) => w.handle(&[ev]),
        None => log_record(iface, &record(&ev, ev.time_ns, unix_ms(), Vec::new())),
    }
}

/// Handles what is queued, without waiting (at shutdown).
pub fn drain_all(watchers: &mut [FloodWatcher]) {
    watchers.iter_mut().for_each(FloodWatcher::drain);
}

#[cfg(test)]
mod tests {
    use super::*;
    use synguard_common::policy::FLOOD_END;

    #[test]
    fn events_become_wall_clock_records() {
        let ev = FloodEvent {
            kind: FLOOD_START,
            port: 443,
            rate_pps: 52_000,
            time_ns: 9_000_000_000,
        };
        let r = record(&ev, 10_500_000_000, 1_700_000_000_000, Vec::new());
        assert_eq!(r.kind, "start");
        assert_eq!(r.port, 443);
        assert_eq!(r.unix_ms, 1_700_000_000_000 - 1500);
        let end = FloodEvent {
            kind: FLOOD_END,
            ..ev
        };
        assert_eq!(record(&end, 9_000_000_000, 5, Vec::new()).kind, "end");
    }

    #[test]
    fn history_keeps_the_last_records() {
        let dir = std::env::temp_dir().join(format!("sg-events-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("eth9.events.json");
        let _ = fs::remove_file(&path);
        assert!(read_history(&path).is_empty());
        let rec = |i: u64| FloodRecord {
            kind: "start".into(),
            port: 80,
            rate_pps: i,
            unix_ms: i,
            top_sources: vec![],
        };
        for chunk in (0..25).collect::<Vec<u64>>().chunks(7) {
            let recs: Vec<FloodRecord> = chunk.iter().map(|&i| rec(i)).collect();
            append_history(&path, &recs).unwrap();
        }
        let kept = read_history(&path);
        assert_eq!(kept.len(), HISTORY_LEN);
        assert_eq!(kept.first().unwrap().rate_pps, 5);
        assert_eq!(kept.last().unwrap().rate_pps, 24);
        fs::remove_dir_all(&dir).unwrap();
    }
}
