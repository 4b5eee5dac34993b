//! The maps the programs address directly (`synguard_common::names::GLOBALS`), loaded over a
//! running program's pins without resetting them.
//!
//! Each global is a static alone in its own data section (`synguard-ebpf`'s `Global`), which
//! aya makes a one-entry array map named after the section; the loader pins it under its map's
//! name (`names::pin_name`), where earlier builds pinned the same map as a plain array of one
//! entry, and a take-over opens that pin as it does any other. But aya writes a data section's
//! bytes into its map at every load, pin or not (aya 0.14 `MapData::finalize`: a section's
//! initial values), and it takes a section without bytes for a map to look up rather than a
//! value to address (`relocate_maps`), so the bytes cannot simply be left out. The running
//! program's configuration, own-cookie key, flood state and table promise would read as zeros
//! until the new daemon wrote them again. So each global's section is given its pin's current
//! value before loading ([`with_pinned_values`]), and aya writes back what was there.
//!
//! Without this, a take-over under a SYN flood (`ops.rs`, `restart_during_flood_leaves_no_gap`)
//! sent 231 k of its 250 k flood SYNs to the kernel as with cookies off: what the previous
//! instance had published read as zeros, and a taking-over daemon does not write all of it
//! again (it adopts the running state).
//!
//! What another writer stores between that read and aya's write is lost: during a take-over
//! the previous daemon has exited (the instance lock), so that is the running program's flood
//! state (`SG_MODE`, which the next SYN sets again if a flood started in that instant) and a
//! list command's count (which the new daemon recounts from its lists as it starts).

use std::path::Path;

use object::{Object, ObjectSection};
use synguard_common::names;
use thiserror::Error;

use crate::datapath::{kfunc::AlignedObject, maps};

#[derive(Debug, Error)]
pub enum GlobalsError {
    #[error("cannot read the eBPF object")]
    Parse(#[from] object::Error),
    #[error("the eBPF object has no data section {0} (a build of another version?)")]
    Missing(&'static str),
    #[error("cannot carry the pinned {name} into the new program")]
    Pin {
        name: &'static str,
        #[source]
        source: Box<maps::PinnedMapError>,
    },
}

/// `object` with each global's section holding the value pinned under `dir`, where a pin of
/// that size exists (a pin of another size is not reused, `pins::reconcile`).
pub fn with_pinned_values(object: &[u8], dir: &Path) -> Result<AlignedObject, GlobalsError> {
    let mut out = AlignedObject::new(object);
    for (name, at, size) in value_ranges(object)? {
        if !dir.join(name).exists() {
            continue;
        }
        let value = maps::single_value_bytes(dir, name).map_err(|e| GlobalsError::Pin {
            name,
            source: Box::new(e),
        })?;
        if value.len() == size {
            out.bytes_mut()[at..at + size].copy_from_slice(&value);
        }
    }
    Ok(out)
}

/// Each global's name and the file offset and size of its section's bytes.
fn value_ranges(elf: &[u8]) -> Result<Vec<(&'static str, usize, usize)>, GlobalsError> {
    let file = object::File::parse(elf)?;
    names::GLOBALS
        .iter()
        .map(|&(name, section)| {
            let (at, size) = file
                .section_by_name(section)
                .and_then(|s| s.file_range())
                .ok_or(GlobalsError::Missing(section))?;
            Ok((name, at as usize, size as usize))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::objects;

    #[test]
    fn aya_makes_each_global_a_one_entry_array_whose_value_it_addresses() {
        let parsed = aya_obj::Object::parse(objects::synguard()).unwrap();
        for (name, section) in names::GLOBALS {
            let m = parsed
                .maps
                .get(*section)
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!(m.max_entries(), 1, "{name}");
            assert_eq!(m.map_flags(), 0, "{name}");
            // With no bytes, aya would relocate a reference to it as a map, not a value.
            assert_eq!(m.data().len(), m.value_size() as usize, "{name}");
        }
    }

    #[test]
    fn without_pins_the_object_is_unchanged() {
        let dir = Path::new("/nonexistent-synguard-globals");
        let obj = with_pinned_values(objects::synguard(), dir).unwrap();
        assert_eq!(obj.bytes(), objects::synguard());
    }

    #[test]
    fn an_object_without_the_globals_is_refused() {
        let dir = Path::new("/nonexistent-synguard-globals");
        assert!(matches!(
            with_pinned_values(objects::lab(), dir),
            Err(GlobalsError::Missing(_))
        ));
    }
}
