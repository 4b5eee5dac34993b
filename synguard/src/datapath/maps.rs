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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pin_is_named() {
        let e = read_single::<u64>(Path::new("/nonexistent-sg"), "SG_CONFIG").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-sg/SG_CONFIG"), "{e}");
    }
}
