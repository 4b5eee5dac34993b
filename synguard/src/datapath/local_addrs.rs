//! `SG_LOCAL_V4` and `SG_LOCAL_V6`, the host's addresses and local prefixes for a family the
//! config map's slots cannot hold (`host::addrs`, `LOCAL_IN_MAP`): written before the config
//! that makes the program read them, whenever they change.

use std::{borrow::BorrowMut, collections::BTreeSet, path::Path};

use aya::{
    Pod,
    maps::{
        MapData, MapError,
        lpm_trie::{Key, LpmTrie},
    },
};
use synguard_common::maps::names;

use crate::{
    datapath::maps::{self, PinnedMapError},
    host::addrs::{LocalAddrs, LocalTable},
};

/// Makes each trie of a family that `addrs` puts there hold exactly its entries of `table`.
/// A family in the config's slots leaves its trie as it is: the program does not read it.
pub fn write(dir: &Path, addrs: &LocalAddrs, table: &LocalTable) -> Result<(), PinnedMapError> {
    if addrs.v4_table.is_some() {
        write_family(dir, names::LOCAL_V4, &table.v4)?;
    }
    if addrs.v6_table.is_some() {
        write_family(dir, names::LOCAL_V6, &table.v6)?;
    }
    Ok(())
}

/// The trie `name` under `dir` made to hold `entries` ([`fill`]).
fn write_family<K: Pod + Ord>(
    dir: &Path,
    name: &str,
    entries: &[(K, u8)],
) -> Result<(), PinnedMapError> {
    let mut trie: LpmTrie<MapData, K, u8> =
        LpmTrie::try_from(maps::open(dir, name)?).map_err(PinnedMapError::read(dir, name))?;
    fill(&mut trie, entries).map_err(PinnedMapError::write(dir, name))
}

/// Makes `trie` hold exactly `entries` (prefix, length): the missing ones inserted first, then
/// the others removed, so that no moment holds fewer of the host's addresses than either
/// reading (an address missing for a moment only sends its segments to the kernel as not the
/// host's, which answers them itself).
pub fn fill<T: BorrowMut<MapData>, K: Pod + Ord>(
    trie: &mut LpmTrie<T, K, u8>,
    entries: &[(K, u8)],
) -> Result<(), MapError> {
    let wanted: BTreeSet<(K, u32)> = entries.iter().map(|&(a, l)| (a, u32::from(l))).collect();
    let present: BTreeSet<(K, u32)> = trie
        .keys()
        .filter_map(Result::ok)
        .map(|k| (k.data(), k.prefix_len()))
        .collect();
    for &(a, len) in wanted.difference(&present) {
        trie.insert(&Key::new(len, a), 1, 0)?;
    }
    for &(a, len) in present.difference(&wanted) {
        trie.remove(&Key::new(len, a))?;
    }
    Ok(())
}
