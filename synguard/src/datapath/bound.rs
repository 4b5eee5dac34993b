//! `SG_BOUND`, the listeners bound to particular addresses on protected ports whose family's
//! addresses are in the program's trie (`host::listeners`, `PORT_BOUND_ONLY_*`): written before
//! the port bits that make the program read it, whenever the listeners change.

use std::{borrow::BorrowMut, collections::BTreeSet, path::Path};

use aya::maps::{HashMap, MapData, MapError};
use synguard_common::maps::{BoundKey, names};

use crate::datapath::maps::{self, PinnedMapError};

/// Makes the pinned `SG_BOUND` under `dir` hold exactly `keys` ([`fill`]).
pub fn write(dir: &Path, keys: &[BoundKey]) -> Result<(), PinnedMapError> {
    let name = names::BOUND;
    let mut map: HashMap<MapData, BoundKey, u8> =
        HashMap::try_from(maps::open(dir, name)?).map_err(PinnedMapError::read(dir, name))?;
    fill(&mut map, keys).map_err(PinnedMapError::write(dir, name))
}

/// Makes `map` hold exactly `keys`: the missing ones inserted first, then the others removed,
/// so that no moment holds fewer listeners than either reading (a listener missing for a moment
/// only leaves a SYN to it to the kernel, which answers it itself).
pub fn fill<T: BorrowMut<MapData>>(
    map: &mut HashMap<T, BoundKey, u8>,
    keys: &[BoundKey],
) -> Result<(), MapError> {
    let wanted: BTreeSet<BoundKey> = keys.iter().copied().collect();
    let present: BTreeSet<BoundKey> = map.keys().filter_map(Result::ok).collect();
    for k in wanted.difference(&present) {
        map.insert(k, 1, 0)?;
    }
    for k in present.difference(&wanted) {
        map.remove(k)?;
    }
    Ok(())
}
