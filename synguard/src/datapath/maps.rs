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
    #[error("cannot write pinned map {}", path.display())]
    Write {
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

    /// For an error while writing a map opened from `dir`/`name`.
    pub fn write(dir: &Path, name: &str) -> impl Fn(MapError) -> PinnedMapError {
        let path = dir.join(name);
        move |source| PinnedMapError::Write {
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

/// `BPF_MAP_LOOKUP_ELEM` and `BPF_MAP_UPDATE_ELEM` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;

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
    let (path, map, info) = open_pinned(dir, name)?;
    read_value(&map, info.value_size() as usize)
        .map_err(|source| PinnedMapError::Read { path, source })
}

/// Entry 0 of the array map `map` as bytes, as many as its value size: for values too large to
/// copy onto the stack as a typed value (the port table, 256 KiB).
pub fn value_bytes(map: &MapData) -> Result<Vec<u8>, MapError> {
    read_value(map, map.info()?.value_size() as usize)
}

/// Entry 0 of `map`, whose value size (from the kernel's map info) is `size`.
fn read_value(map: &MapData, size: usize) -> Result<Vec<u8>, MapError> {
    let mut value = vec![0u8; size];
    elem_syscall(
        map,
        BPF_MAP_LOOKUP_ELEM,
        "BPF_MAP_LOOKUP_ELEM",
        value.as_mut_ptr(),
    )?;
    Ok(value)
}

/// Writes `value` (the map's whole value size) as entry 0 of the array map `map`.
pub fn set_value_bytes(map: &MapData, value: &[u8]) -> Result<(), MapError> {
    check_value_size(map, value.len())?;
    elem_syscall(
        map,
        BPF_MAP_UPDATE_ELEM,
        "BPF_MAP_UPDATE_ELEM",
        value.as_ptr() as *mut u8,
    )
}

/// The kernel copies the map's value size to or from the buffer: it must be that long.
fn check_value_size(map: &MapData, size: usize) -> Result<(), MapError> {
    let expected = map.info()?.value_size() as usize;
    if expected != size {
        return Err(MapError::InvalidValueSize { size, expected });
    }
    Ok(())
}

/// `cmd` on key 0 of `map` with the value buffer `value`, which must hold the map's value size.
fn elem_syscall(
    map: &MapData,
    cmd: libc::c_long,
    call: &'static str,
    value: *mut u8,
) -> Result<(), MapError> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let key = 0u32;
    let mut attr = ElemAttr {
        map_fd: map.fd().as_fd().as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: value as u64,
        ..Default::default()
    };
    // SAFETY: `attr` points at a 4-byte key and the caller's buffer of the map's value size,
    // alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &mut attr as *mut ElemAttr,
            std::mem::size_of::<ElemAttr>(),
        )
    };
    if rc != 0 {
        return Err(MapError::SyscallError(aya::sys::SyscallError {
            call,
            io_error: std::io::Error::last_os_error(),
        }));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pin_is_named() {
        let e = read_single::<u64>(Path::new("/nonexistent-sg"), "SG_CONFIG").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-sg/SG_CONFIG"), "{e}");
    }
}
