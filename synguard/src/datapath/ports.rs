//! The port table (`names::PORTS`): one value holding a `PortConfig` per TCP port, which the
//! programs index directly (a global, docs/verifier.md) and the loader reads and writes whole.

use std::path::Path;

use aya::maps::{Map, MapData, MapError};
use log::info;
use synguard_common::maps::{PORT_PROTECTED, PORT_SLOTS, PortConfig, PortTable, names};

use crate::datapath::maps::{self, PinnedMapError};

/// The table's size in bytes, the map's value size.
const TABLE_BYTES: usize = std::mem::size_of::<PortTable>();

/// The map behind `map`, as aya opened it (an array).
pub fn data(map: &Map) -> Result<&MapData, MapError> {
    match map {
        Map::Array(d) => Ok(d),
        _ => Err(MapError::IoError(std::io::Error::other(
            "the port table is not an array map",
        ))),
    }
}

/// The table in `map`.
pub fn read(map: &MapData) -> Result<Vec<PortConfig>, MapError> {
    let bytes = maps::value_bytes(map)?;
    if bytes.len() != TABLE_BYTES {
        return Err(MapError::InvalidValueSize {
            size: TABLE_BYTES,
            expected: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| PortConfig {
            flags: u32::from_ne_bytes([c[0], c[1], c[2], c[3]]),
        })
        .collect())
}

/// Writes `table` (an entry per port) into `map` whole.
pub fn write(map: &MapData, table: &[PortConfig]) -> Result<(), MapError> {
    let bytes: Vec<u8> = table.iter().flat_map(|p| p.flags.to_ne_bytes()).collect();
    maps::set_value_bytes(map, &bytes)
}

/// `table` with `ports` protected and, with `clear_others`, every other port unprotected; the
/// ports no longer protected are returned too. `ports` must be sorted.
pub fn synced(
    mut table: Vec<PortConfig>,
    ports: &[u16],
    clear_others: bool,
) -> (Vec<PortConfig>, Vec<u16>) {
    table.resize(PORT_SLOTS as usize, PortConfig::default());
    let mut dropped = Vec::new();
    for (port, entry) in table.iter_mut().enumerate() {
        let port = port as u16;
        if ports.binary_search(&port).is_ok() {
            entry.flags = PORT_PROTECTED;
        } else if clear_others && entry.flags != 0 {
            entry.flags = 0;
            dropped.push(port);
        }
    }
    (table, dropped)
}

/// Protects `ports` in the table in `map`; with `clear_others`, unprotects every port not among
/// them (a table inherited from a previous run, or a reload). One write of the whole table: a
/// port protected before and after is never off, even for an instant (the kernel copies the
/// value over itself, and its entry is the same in both).
pub fn sync(map: &MapData, ports: &[u16], clear_others: bool) -> Result<(), MapError> {
    let (table, dropped) = synced(read(map)?, ports, clear_others);
    write(map, &table)?;
    for port in dropped {
        info!("port {port} no longer protected");
    }
    Ok(())
}

/// The ports `table` protects.
pub fn protected(table: &[PortConfig]) -> Vec<u16> {
    table
        .iter()
        .enumerate()
        .filter(|(_, p)| p.flags != 0)
        .map(|(port, _)| port as u16)
        .collect()
}

/// The ports the table pinned in `dir` protects.
pub fn protected_pinned(dir: &Path) -> Result<Vec<u16>, PinnedMapError> {
    let map = maps::open(dir, names::PORTS)?;
    let table = data(&map)
        .and_then(read)
        .map_err(PinnedMapError::read(dir, names::PORTS))?;
    Ok(protected(&table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ports: &[u16]) -> Vec<PortConfig> {
        synced(Vec::new(), ports, false).0
    }

    #[test]
    fn a_fresh_table_protects_exactly_the_ports_given() {
        let t = table(&[22, 80, 443, 65535]);
        assert_eq!(t.len(), PORT_SLOTS as usize);
        assert_eq!(protected(&t), [22, 80, 443, 65535]);
    }

    #[test]
    fn clearing_others_unprotects_and_reports_only_the_ports_dropped() {
        let (t, dropped) = synced(table(&[80, 443, 8080]), &[80, 9000], true);
        assert_eq!(protected(&t), [80, 9000]);
        assert_eq!(dropped, [443, 8080]);
    }

    #[test]
    fn without_clearing_others_ports_only_accumulate() {
        let (t, dropped) = synced(table(&[80, 443]), &[8080], false);
        assert_eq!(protected(&t), [80, 443, 8080]);
        assert!(dropped.is_empty());
    }
}
