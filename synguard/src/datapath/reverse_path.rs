//! `SG_RP_V4`, the main routing table's IPv4 routes for the program's reverse-path check
//! (`host::reverse_path`): written before the config's `HOST_RP_*` flags that make the program
//! read it, whenever the routes change.

use std::{collections::BTreeSet, path::Path};

use aya::maps::{
    MapData,
    lpm_trie::{Key, LpmTrie},
};
use synguard_common::maps::names;

use crate::{
    datapath::maps::{self, PinnedMapError},
    host::reverse_path::RouteEntry,
};

/// Makes the pinned `SG_RP_V4` under `dir` hold exactly `entries`: the wanted ones written
/// first, then the others removed, so that no moment holds fewer routes than either reading (a
/// missing route only leaves a SYN to the kernel's own check).
pub fn write(dir: &Path, entries: &[RouteEntry]) -> Result<(), PinnedMapError> {
    let name = names::RP_V4;
    let mut trie: LpmTrie<MapData, [u8; 4], u32> =
        LpmTrie::try_from(maps::open(dir, name)?).map_err(PinnedMapError::read(dir, name))?;
    let wanted: BTreeSet<([u8; 4], u32)> = entries
        .iter()
        .map(|&(a, len, _)| (a.octets(), u32::from(len)))
        .collect();
    for &(a, len, kind) in entries {
        trie.insert(&Key::new(u32::from(len), a.octets()), kind, 0)
            .map_err(PinnedMapError::write(dir, name))?;
    }
    let stale: Vec<Key<[u8; 4]>> = trie
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !wanted.contains(&(k.data(), k.prefix_len())))
        .collect();
    for k in stale {
        trie.remove(&k).map_err(PinnedMapError::write(dir, name))?;
    }
    Ok(())
}
