//! Opening the maps another process pinned: the one typed helper every reader and writer of
//! pinned state goes through (`stats`, `status`, metrics, reload, the lists, flood events).

use std::path::{Path, PathBuf};

use aya::maps::{Array, Map, MapData, MapError, PerCpuArray};
use thiserror::Error;

use crate::datapath::diagnose;

#[derive(Debug, Error)]
pub enum PinnedMapError {
    #[error("reading pinned counters needs root or CAP_BPF ({} refused)", .0.display())]
    NotPermitted(PathBuf),
    #[error("cannot open pinned map {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error("cannot read pinned map {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: MapError,
    },
}

impl PinnedMapError {
    /// For an error while using a map opened from `dir`/`name`.
    pub fn read(dir: &Path, name: &str) -> impl Fn(MapError) -> PinnedMapError {
        let path = dir.join(name);
        move |source| PinnedMapError::Read {
            path: path.clone(),
            source,
        }
    }
}

/// The map pinned as `dir`/`name`, untyped.
pub fn open(dir: &Path, name: &str) -> Result<Map, PinnedMapError> {
    let path = dir.join(name);
    let wrap = |source: MapError| {
        if diagnose::is_permission_error(&source) {
            PinnedMapError::NotPermitted(path.clone())
        } else {
            PinnedMapError::Open {
                path: path.clone(),
                source,
            }
        }
    };
    Map::from_map_data(MapData::from_pin(&path).map_err(wrap)?).map_err(wrap)
}

/// A pinned array map, typed.
pub fn array<V: aya::Pod>(dir: &Path, name: &str) -> Result<Array<MapData, V>, PinnedMapError> {
    Array::try_from(open(dir, name)?).map_err(PinnedMapError::read(dir, name))
}

/// A pinned per-CPU array map, typed.
pub fn per_cpu_array<V: aya::Pod>(
    dir: &Path,
    name: &str,
) -> Result<PerCpuArray<MapData, V>, PinnedMapError> {
    PerCpuArray::try_from(open(dir, name)?).map_err(PinnedMapError::read(dir, name))
}

/// The single entry of a pinned array map (config, mode, ready state).
pub fn read_single<V: aya::Pod>(dir: &Path, name: &str) -> Result<V, PinnedMapError> {
    array::<V>(dir, name)?
        .get(&0, 0)
        .map_err(PinnedMapError::read(dir, name))
}

/// `BPF_MAP_LOOKUP_ELEM` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;

/// The element members of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The single entry of the pinned array map `dir`/`name` as bytes, whatever its type (the
/// globals' values carried into a new object, `globals`).
pub fn single_value_bytes(dir: &Path, name: &str) -> Result<Vec<u8>, PinnedMapError> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let (path, map, info) = open_pinned(dir, name)?;
    let mut value = vec![0u8; info.value_size() as usize];
    let key = 0u32;
    let mut attr = ElemAttr {
        map_fd: map.fd().as_fd().as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `attr` points at a 4-byte key and a buffer of the map's value size, alive for
    // the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_ELEM,
            &mut attr as *mut ElemAttr,
            std::mem::size_of::<ElemAttr>(),
        )
    };
    if rc != 0 {
        return Err(PinnedMapError::Read {
            path,
            source: MapError::SyscallError(aya::sys::SyscallError {
                call: "BPF_MAP_LOOKUP_ELEM",
                io_error: std::io::Error::last_os_error(),
            }),
        });
    }
    Ok(value)
}

/// `BPF_MAP_LOOKUP_BATCH` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Keys per batch call: bounds the buffers while keeping a 65536-entry map to a few calls.
const BATCH_KEYS: u32 = 8192;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// The map pinned as `dir`/`name`, its path and its kernel info (type, sizes, entries).
pub fn open_pinned(
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, MapData, aya::maps::MapInfo), PinnedMapError> {
    let path = dir.join(name);
    let map = MapData::from_pin(&path).map_err(|source| PinnedMapError::Open {
        path: path.clone(),
        source,
    })?;
    let info = map.info().map_err(PinnedMapError::read(dir, name))?;
    Ok((path, map, info))
}

/// Every value of the pinned array map `dir`/`name`, with a few `BPF_MAP_LOOKUP_BATCH` calls
/// instead of one syscall per key (the 65536-entry port map read key by key cost 65536 syscalls
/// per `stats`, `status` or scrape). Plain arrays only (a per-CPU value is one per CPU, 8-byte
/// aligned: a different layout).
pub fn array_values<V: aya::Pod + Default>(
    dir: &Path,
    name: &str,
) -> Result<Vec<V>, PinnedMapError> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let (path, map, info) = open_pinned(dir, name)?;
    let size = std::mem::size_of::<V>();
    if info.value_size() as usize != size || info.key_size() != 4 {
        return Err(PinnedMapError::Read {
            path,
            source: MapError::InvalidValueSize {
                size,
                expected: info.value_size() as usize,
            },
        });
    }
    let entries = info.max_entries();
    let mut values = vec![V::default(); entries as usize];
    let mut keys = vec![0u32; BATCH_KEYS as usize];
    let (mut done, mut next) = (0u32, 0u32);
    while done < entries {
        let want = BATCH_KEYS.min(entries - done);
        let mut attr = BatchAttr {
            in_batch: if done == 0 {
                0
            } else {
                &next as *const u32 as u64
            },
            out_batch: &mut next as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values[done as usize..].as_mut_ptr() as u64,
            count: want,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: `attr` points at buffers of at least `want` keys and `want` values of the map's
        // value size, alive for the call; the kernel writes at most `count` of each.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>(),
            )
        };
        let err = std::io::Error::last_os_error();
        done += attr.count;
        // ENOENT: the last batch (`count` still says how many were filled).
        if rc != 0 && err.raw_os_error() == Some(libc::ENOENT) {
            break;
        }
        if rc != 0 || attr.count == 0 {
            return Err(PinnedMapError::Read {
                path,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "BPF_MAP_LOOKUP_BATCH",
                    io_error: err,
                }),
            });
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pin_is_named() {
        let e = read_single::<u64>(Path::new("/nonexistent-sg"), "SG_CONFIG").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-sg/SG_CONFIG"), "{e}");
    }
}
