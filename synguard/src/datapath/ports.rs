//! The port table (`names::PORTS`): one value holding a `PortConfig` per TCP port, which the
//! programs index directly (a global, docs/verifier.md) and the loader reads and writes whole.

use std::path::Path;

use aya::maps::{Map, MapData, MapError};
use log::info;
use synguard_common::maps::{
    PORT_LISTENER_BITS, PORT_PROTECTED, PORT_SLOTS, PortConfig, PortTable, names,
    port_no_listener_slots,
};

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
/// ports no longer protected are returned too. `ports` must be sorted. A port protected before
/// keeps its listener bits (`with_listeners` owns them).
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
            if entry.flags & PORT_PROTECTED == 0 {
                entry.flags = PORT_PROTECTED;
            }
        } else if clear_others && entry.flags != 0 {
            if entry.flags & PORT_PROTECTED != 0 {
                dropped.push(port);
            }
            entry.flags = 0;
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
        .filter(|(_, p)| p.flags & PORT_PROTECTED != 0)
        .map(|(port, _)| port as u16)
        .collect()
}

/// `table` with each protected port's `PORT_NO_LISTENER_*` bits (per family and per address)
/// from `no_listener` (a port's bits, `host::listeners::Listening::no_listener_flags`); the
/// ports whose bits changed are returned with their new bits.
pub fn with_listeners(
    table: &mut [PortConfig],
    no_listener: impl Fn(u16) -> u32,
) -> Vec<(u16, u32)> {
    let mut changed = Vec::new();
    for (port, entry) in table.iter_mut().enumerate() {
        if entry.flags & PORT_PROTECTED == 0 {
            continue;
        }
        let port = port as u16;
        let bits = no_listener(port) & PORT_LISTENER_BITS;
        if entry.flags & PORT_LISTENER_BITS != bits {
            entry.flags = PORT_PROTECTED | bits;
            changed.push((port, bits));
        }
    }
    changed
}

/// The protected ports of `table` with `PORT_NO_LISTENER_AT_*` bits of the family, with the
/// address slots those bits name.
pub fn without_listener_at(table: &[PortConfig], ipv6: bool) -> Vec<(u16, u32)> {
    table
        .iter()
        .enumerate()
        .filter(|(_, p)| p.flags & PORT_PROTECTED != 0)
        .map(|(port, p)| (port as u16, port_no_listener_slots(ipv6, p.flags)))
        .filter(|&(_, slots)| slots != 0)
        .collect()
}

/// The protected ports of `table` whose `bit` (a `PORT_NO_LISTENER_*`) is set.
pub fn without_listener(table: &[PortConfig], bit: u32) -> Vec<u16> {
    table
        .iter()
        .enumerate()
        .filter(|(_, p)| p.flags & PORT_PROTECTED != 0 && p.flags & bit != 0)
        .map(|(port, _)| port as u16)
        .collect()
}

/// The table pinned in `dir`.
pub fn pinned(dir: &Path) -> Result<Vec<PortConfig>, PinnedMapError> {
    let map = maps::open(dir, names::PORTS)?;
    data(&map)
        .and_then(read)
        .map_err(PinnedMapError::read(dir, names::PORTS))
}

/// [`with_listeners`] on the table pinned in `dir`, written back only when a port's bits
/// changed; the ports that changed, with their new bits. `prepare` first gets the protected
/// ports, from the same reading of the table, and returns the listener bits that may be set
/// (what it could not prepare for stays clear).
pub fn set_listeners_pinned(
    dir: &Path,
    prepare: impl FnOnce(&[u16]) -> u32,
    no_listener: impl Fn(u16) -> u32,
) -> Result<Vec<(u16, u32)>, PinnedMapError> {
    let map = maps::open(dir, names::PORTS)?;
    let err = PinnedMapError::read(dir, names::PORTS);
    let data = data(&map).map_err(&err)?;
    let mut table = read(data).map_err(&err)?;
    let keep = prepare(&protected(&table));
    let changed = with_listeners(&mut table, |p| no_listener(p) & keep);
    if !changed.is_empty() {
        write(data, &table).map_err(PinnedMapError::write(dir, names::PORTS))?;
    }
    Ok(changed)
}

/// The ports the table pinned in `dir` protects.
pub fn protected_pinned(dir: &Path) -> Result<Vec<u16>, PinnedMapError> {
    Ok(protected(&pinned(dir)?))
}

#[cfg(test)]
mod tests {
    use synguard_common::maps::{PORT_NO_LISTENER_V4, PORT_NO_LISTENER_V6, port_no_listener_at};

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
    fn listener_bits_follow_and_survive_a_resync() {
        let mut t = table(&[80, 443]);
        let none = |p: u16| {
            if p == 443 {
                PORT_NO_LISTENER_V4 | PORT_NO_LISTENER_V6
            } else {
                0
            }
        };
        assert_eq!(
            with_listeners(&mut t, none),
            [(443, PORT_NO_LISTENER_V4 | PORT_NO_LISTENER_V6)]
        );
        assert_eq!(with_listeners(&mut t, none), [], "nothing changed");
        // A reload keeping 443 keeps its bits; an unprotected port carries none.
        let (mut t, dropped) = synced(t, &[443, 8080], true);
        assert_eq!(dropped, [80]);
        assert_eq!(protected(&t), [443, 8080]);
        assert_eq!(
            t[443].flags,
            PORT_PROTECTED | PORT_NO_LISTENER_V4 | PORT_NO_LISTENER_V6
        );
        assert_eq!((t[80].flags, t[8080].flags), (0, PORT_PROTECTED));
        let v6_only = |p: u16| if p == 443 { PORT_NO_LISTENER_V4 } else { 0 };
        assert_eq!(
            with_listeners(&mut t, v6_only),
            [(443, PORT_NO_LISTENER_V4)]
        );
        assert_eq!(t[1].flags, 0, "unprotected ports get no bits");
        // Per address: a change of slot alone is a change.
        let at = |slots: u32| {
            move |p: u16| {
                if p == 443 {
                    port_no_listener_at(false, slots)
                } else {
                    0
                }
            }
        };
        assert_eq!(with_listeners(&mut t, at(0b10)), [(443, 0x200)]);
        assert_eq!(with_listeners(&mut t, at(0b100)), [(443, 0x400)]);
        assert_eq!(t[443].flags, PORT_PROTECTED | 0x400);
    }

    #[test]
    fn without_clearing_others_ports_only_accumulate() {
        let (t, dropped) = synced(table(&[80, 443]), &[8080], false);
        assert_eq!(protected(&t), [80, 443, 8080]);
        assert!(dropped.is_empty());
    }
}
