//! The connection table as the loader sees it (`synguard_common::conns`,
//! docs/connection-table.md): the `synguard_conns` sock_ops program attached to the cgroup v2
//! root through a link pinned beside the XDP one, the stamps written through a memory map of
//! the pinned table, and the loader's promise in the state map.

use std::{
    fs::File,
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    path::{Path, PathBuf},
    ptr::NonNull,
    sync::atomic::{AtomicU16, AtomicU32, Ordering},
};

use aya::{
    Ebpf,
    maps::{Array, MapData, MapError},
    programs::{CgroupAttachMode, ProgramError, SockOps, links::FdLink},
};
use serde::Serialize;
use synguard_common::{
    conns::{
        CONN_FILTER_WORDS, CONN_SLOTS, ConnsState, conn_expired, conn_filter_entry,
        conn_filter_slot, conn_pass_may_write, conn_pass_stamp, conn_slot,
    },
    maps::{flow_hash, flow_hash_v4},
    names,
};
use thiserror::Error;

use crate::{
    datapath::{
        load,
        maps::{self, PinnedMapError},
    },
    host::{
        cgroup,
        clock::programs_monotonic_ns,
        proc_net::{Addr, Socket},
    },
};

/// The sock_ops program's name in the object.
pub const PROGRAM: &str = "synguard_conns";

#[derive(Debug, Error)]
pub enum ConnsError {
    #[error("no cgroup v2 hierarchy is mounted (none in {})", cgroup::MOUNTINFO)]
    NoCgroup2,
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {what}")]
    Program {
        what: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("the kernel attached the sock_ops program without a BPF link (Linux 5.7+ needed)")]
    NoLink,
    #[error("cannot pin the sock_ops link at {}", path.display())]
    Pin {
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("the object has no sock_ops program {PROGRAM}: loader and program differ")]
    Missing,
    #[error(transparent)]
    Map(#[from] PinnedMapError),
    #[error("cannot map {} into memory", .0.display())]
    Mmap(PathBuf, #[source] io::Error),
    #[error(
        "{}: value size {value_size}, {entries} entries; expected {want_value_size} and \
         {want_entries}",
        path.display()
    )]
    Layout {
        path: PathBuf,
        value_size: u32,
        entries: u32,
        want_value_size: u32,
        want_entries: u32,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl Fn(io::Error) -> ConnsError + 'a {
    move |source| ConnsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The root of the cgroup v2 hierarchy this process sees.
fn cgroup2_root() -> Result<PathBuf, ConnsError> {
    let mountinfo = Path::new(cgroup::MOUNTINFO);
    let text = std::fs::read_to_string(mountinfo).map_err(io_err("read", mountinfo))?;
    cgroup::cgroup2_root(&text).ok_or(ConnsError::NoCgroup2)
}

/// Loads `synguard_conns` and attaches it to the cgroup v2 root through a link pinned at
/// `pin`. A link a previous program left there is replaced only once the new one is attached
/// (the new pin is renamed over the old, which releases it): the table is stamped throughout a
/// hand-over. Returns the cgroup it attached to.
pub fn attach(ebpf: &mut Ebpf, pin: &Path) -> Result<PathBuf, ConnsError> {
    let root = cgroup2_root()?;
    let dir = File::open(&root).map_err(io_err("open", &root))?;
    let err = |what| move |source| ConnsError::Program { what, source };
    let prog: &mut SockOps = ebpf
        .program_mut(PROGRAM)
        .ok_or(ConnsError::Missing)?
        .try_into()
        .map_err(err("use synguard_conns as sock_ops"))?;
    prog.load().map_err(err("load the sock_ops program"))?;
    load::log_verified(PROGRAM, prog.info());
    // A link is always one of several programs on the cgroup (`cgroup_bpf_link_attach` wants
    // no flags): other programs there keep running.
    let id = prog
        .attach(dir, CgroupAttachMode::Single)
        .map_err(err("attach the sock_ops program to the cgroup v2 root"))?;
    let link = prog.take_link(id).map_err(err("take the sock_ops link"))?;
    let fd = FdLink::try_from(link).map_err(|_| ConnsError::NoLink)?;
    let fresh = pin.with_file_name(format!(
        "{}_new",
        pin.file_name().unwrap_or_default().to_string_lossy()
    ));
    // Left by a start that stopped between the pin and the rename.
    let _ = std::fs::remove_file(&fresh);
    fd.pin(&fresh).map_err(|source| ConnsError::Pin {
        path: fresh.clone(),
        source,
    })?;
    std::fs::rename(&fresh, pin).map_err(io_err("rename the new sock_ops link to", pin))?;
    Ok(root)
}

/// The table's slot of a socket of this host, hashed as its packets arrive: source = remote.
pub fn socket_hash(s: &Socket) -> Option<u64> {
    match (s.remote, s.local) {
        (Addr::V4(r), Addr::V4(l)) => Some(flow_hash_v4(r, l, s.remote_port, s.local_port)),
        (Addr::V6(r), Addr::V6(l)) => Some(flow_hash(&r, &l, s.remote_port, s.local_port)),
        // One side mapped, the other not: no packet carries such a pair.
        _ => None,
    }
}

/// The pinned table, mapped into memory for the pass's stores, and its state map.
pub struct ConnTable {
    stamps: NonNull<u8>,
    len: usize,
    _map: MapData,
    /// The filter (`conn_filter_slot`): 16-bit entries, four to an 8-byte value.
    filter: NonNull<u8>,
    filter_len: usize,
    _filter_map: MapData,
    state: Array<MapData, ConnsState>,
}

/// Bytes from one value of a mapped array to the next: an array map keeps its values 8-byte
/// aligned (`array_map_alloc`, `round_up(value_size, 8)`), also in the mappable area.
const VALUE_STRIDE: usize = 8;

/// Opens the array pinned as `name` in `dir`, checks its layout, and maps it shared (read and
/// write): (map, mapping, its length).
fn map_pinned(
    dir: &Path,
    name: &str,
    value_size: u32,
    entries: u32,
) -> Result<(MapData, NonNull<u8>, usize), ConnsError> {
    let (path, map, info) = maps::open_pinned(dir, name)?;
    if info.value_size() != value_size || info.max_entries() != entries {
        return Err(ConnsError::Layout {
            path,
            value_size: info.value_size(),
            entries: info.max_entries(),
            want_value_size: value_size,
            want_entries: entries,
        });
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let len = (entries as usize * VALUE_STRIDE).div_ceil(page) * page;
    // SAFETY: a fresh shared mapping of the map's fd; the kernel checks the length against
    // the map (`array_map_mmap`) and the mapping lives until the table is dropped.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            map.fd().as_fd().as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(ConnsError::Mmap(path, io::Error::last_os_error()));
    }
    Ok((
        map,
        NonNull::new(ptr.cast()).expect("mmap returned a mapping"),
        len,
    ))
}

// SAFETY: the mapping belongs to this value alone; stores to it are atomic.
unsafe impl Send for ConnTable {}

impl ConnTable {
    /// Maps the table and its filter pinned in `dir` (read and write, shared with the
    /// programs).
    pub fn open(dir: &Path) -> Result<Self, ConnsError> {
        let (map, stamps, len) = map_pinned(dir, names::CONNS, 4, CONN_SLOTS)?;
        let (filter_map, filter, filter_len) =
            map_pinned(dir, names::CONNS_FILTER, 8, CONN_FILTER_WORDS)?;
        Ok(ConnTable {
            stamps,
            len,
            _map: map,
            filter,
            filter_len,
            _filter_map: filter_map,
            state: maps::array(dir, names::CONNS_STATE)?,
        })
    }

    /// The filter entry of `hash`, written after its slot's stamp (`conn_filter_entry`).
    fn file(&mut self, hash: u64, entry: u16) {
        let (word, lane) = conn_filter_slot(hash);
        let off = word as usize * VALUE_STRIDE + lane as usize * 2;
        assert!(word < CONN_FILTER_WORDS && lane < 4 && off + 2 <= self.filter_len);
        // SAFETY: inside the filter's mapping (checked above), 2-aligned; the programs store
        // 16-bit values to the same lanes.
        let e = unsafe { &*self.filter.as_ptr().add(off).cast::<AtomicU16>() };
        e.store(entry, Ordering::Relaxed);
    }

    /// The promised pass's number (the next pass is this + 1).
    pub fn published_pass(&self) -> Result<u64, MapError> {
        Ok(self.state.get(&0, 0)?.pass_no)
    }

    /// Stamps the slot of a socket hashed `hash` that the pass started at `started_ns` read in
    /// state `state` (`conn_pass_stamp`), unless the sock_ops program stamped its close since
    /// (`conn_pass_may_write`). Compare-and-swap: a stamp the programs store meanwhile is
    /// looked at again, never lost.
    pub fn stamp_socket(&mut self, hash: u64, state: u8, started_ns: u64, published: u64) {
        let new = conn_pass_stamp(hash, state, started_ns);
        let slot = self.slot(conn_slot(hash));
        let mut current = slot.load(Ordering::Relaxed);
        while conn_pass_may_write(current, new, started_ns) {
            match slot.compare_exchange(current, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        self.file(hash, conn_filter_entry(published));
    }

    /// Empties every slot whose stamp no socket renewed for `CONN_TTL_NS` at `now_ns`
    /// (`conn_expired`); returns how many. Compare-and-swap, so a stamp the sock_ops program
    /// writes meanwhile survives.
    pub fn sweep(&mut self, now_ns: u64) -> u64 {
        let mut emptied = 0;
        for i in 0..CONN_SLOTS {
            let slot = self.slot(i);
            let stamp = slot.load(Ordering::Relaxed);
            if conn_expired(stamp, now_ns)
                && slot
                    .compare_exchange(stamp, 0, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                emptied += 1;
            }
        }
        emptied
    }

    fn slot(&self, i: u32) -> &AtomicU32 {
        let off = i as usize * VALUE_STRIDE;
        assert!(i < CONN_SLOTS && off + 4 <= self.len);
        // SAFETY: inside the mapping (checked above); the programs store to the same 4-byte
        // words, at 8-aligned offsets, so atomic access is sound.
        unsafe { &*self.stamps.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// Writes the loader's promise.
    pub fn promise(&mut self, state: ConnsState) -> Result<(), MapError> {
        self.state.set(0, state, 0)
    }
}

impl Drop for ConnTable {
    fn drop(&mut self) {
        // SAFETY: the mappings `open` made, unmapped once.
        unsafe {
            libc::munmap(self.stamps.as_ptr().cast(), self.len);
            libc::munmap(self.filter.as_ptr().cast(), self.filter_len);
        }
    }
}

/// Withdraws the promise of the table pinned in `dir`: every ACK goes through the socket
/// lookup until the next complete pass. Always safe; needed whenever sockets may exist that
/// neither a pass nor the sock_ops program stamped (a port just protected, a table that was
/// just created or reset).
pub fn distrust(dir: &Path) -> Result<(), PinnedMapError> {
    let mut m = maps::array::<ConnsState>(dir, names::CONNS_STATE)?;
    // The pass number stays: filter entries keep their meaning.
    let pass_no = m.get(&0, 0).map(|s| s.pass_no).unwrap_or(0);
    let state = ConnsState {
        pass_no,
        ..ConnsState::default()
    };
    m.set(0, state, 0)
        .map_err(PinnedMapError::write(dir, names::CONNS_STATE))
}

/// What `status` and the metrics show of the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableState {
    /// The XDP program may skip the socket lookup for an unstamped ACK now.
    pub trusted: bool,
    /// Sockets the loader's last complete pass stamped.
    pub sockets: u64,
}

impl TableState {
    pub fn of(state: &ConnsState, now_ns: u64) -> Self {
        TableState {
            trusted: now_ns < state.valid_until_ns,
            sockets: state.last_pass_sockets,
        }
    }
}

/// The table's state in the instance pinned in `dir`.
pub fn read_state(dir: &Path) -> Result<TableState, PinnedMapError> {
    let state = maps::read_single::<ConnsState>(dir, names::CONNS_STATE)?;
    Ok(TableState::of(&state, programs_monotonic_ns()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_families_have_no_slot() {
        let s = Socket {
            local: Addr::V4(1),
            local_port: 80,
            remote: Addr::V6([0, 0, 0, 1]),
            remote_port: 1234,
            state: 1,
        };
        assert_eq!(socket_hash(&s), None);
        let v4 = Socket {
            remote: Addr::V4(2),
            ..s
        };
        assert_eq!(socket_hash(&v4), Some(flow_hash_v4(2, 1, 1234, 80)));
    }

    #[test]
    fn trusted_only_before_the_promise_ends() {
        let st = ConnsState {
            valid_until_ns: 100,
            last_pass_sockets: 7,
            pass_no: 3,
        };
        assert_eq!(
            TableState::of(&st, 99),
            TableState {
                trusted: true,
                sockets: 7
            }
        );
        assert!(!TableState::of(&st, 100).trusted);
        assert!(!TableState::of(&ConnsState::default(), 0).trusted);
    }
}
