//! List entries added at run time (`synguard allow|block add`), kept in a state file
//! (`paths::runtime_lists`) so that a restart restores them instead of losing them silently, and
//! `list` can say where each entry comes from. Entries from the configuration file are not
//! here: the file is their record. The file outlives a clean stop of `run` (the next one
//! restores it); `detach` removes it with the rest of the instance's state.

use std::{fs, io, path::Path};

use log::warn;
use serde::{Deserialize, Serialize};

use crate::{
    config::{Cidr, ListKind},
    host::netns,
    state::paths::{self, Key},
};

/// Where a list entry comes from, as `list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The configuration file (or a flag of `run`).
    File,
    /// `synguard allow|block add`.
    Runtime,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::File => "file",
            Origin::Runtime => "runtime",
        })
    }
}

/// The entries, as the prefixes' text (`192.0.2.0/24`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeLists {
    pub allow: Vec<String>,
    pub block: Vec<String>,
    /// The namespace the entries were made in (`host::netns::current_cookie`): a file left by a
    /// namespace that is gone, under an inode the kernel has given to ours since, is not ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_cookie: Option<u64>,
}

impl RuntimeLists {
    /// The file of `key`; an absent file holds nothing, an unreadable one is an error.
    pub fn load(run_dir: &Path, key: &Key) -> io::Result<RuntimeLists> {
        let path = paths::runtime_lists(run_dir, key);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let lists: RuntimeLists = serde_json::from_str(&text).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is not a runtime-lists file: {e}", path.display()),
                    )
                })?;
                Ok(lists.if_ours(&path))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RuntimeLists::default()),
            Err(e) => Err(e),
        }
    }

    /// Itself, or nothing when another namespace (gone since) made the entries.
    fn if_ours(self, path: &Path) -> RuntimeLists {
        match (self.netns_cookie, netns::current_cookie()) {
            (Some(theirs), Some(ours)) if theirs != ours => {
                warn!(
                    "ignoring {}: written in another network namespace that had the same inode",
                    path.display()
                );
                RuntimeLists::default()
            }
            _ => self,
        }
    }

    /// Writes the file (write, then rename); an empty set removes it.
    pub fn save(&self, run_dir: &Path, key: &Key) -> io::Result<()> {
        let path = paths::runtime_lists(run_dir, key);
        if self.allow.is_empty() && self.block.is_empty() {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let tmp = paths::tmp_of(&path);
        let stamped = RuntimeLists {
            netns_cookie: netns::current_cookie(),
            ..self.clone()
        };
        let text = serde_json::to_string_pretty(&stamped).expect("lists serialise");
        fs::write(&tmp, text + "\n")?;
        fs::rename(&tmp, &path)
    }

    fn of(&self, kind: ListKind) -> &Vec<String> {
        match kind {
            ListKind::Allow => &self.allow,
            ListKind::Block => &self.block,
        }
    }

    fn of_mut(&mut self, kind: ListKind) -> &mut Vec<String> {
        match kind {
            ListKind::Allow => &mut self.allow,
            ListKind::Block => &mut self.block,
        }
    }

    /// The entries of one list; one that does not parse is reported and skipped.
    pub fn entries(&self, kind: ListKind) -> Vec<Cidr> {
        self.of(kind)
            .iter()
            .filter_map(|t| {
                t.parse()
                    .map_err(|e| warn!("ignoring runtime {kind} entry {t}: {e}"))
                    .ok()
            })
            .collect()
    }

    pub fn contains(&self, kind: ListKind, cidr: Cidr) -> bool {
        self.entries(kind).contains(&cidr)
    }

    /// Records an entry; false when it was there already.
    pub fn add(&mut self, kind: ListKind, cidr: Cidr) -> bool {
        if self.contains(kind, cidr) {
            return false;
        }
        self.of_mut(kind).push(cidr.to_string());
        true
    }

    /// Forgets an entry; false when it was not there.
    pub fn remove(&mut self, kind: ListKind, cidr: Cidr) -> bool {
        let list = self.of_mut(kind);
        let before = list.len();
        list.retain(|t| t.parse::<Cidr>().ok() != Some(cidr));
        list.len() != before
    }

    pub fn origin(&self, kind: ListKind, cidr: Cidr) -> Origin {
        if self.contains(kind, cidr) {
            Origin::Runtime
        } else {
            Origin::File
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_empty_removes_the_file() {
        let dir = std::env::temp_dir().join(format!("sg-lists-{}", std::process::id()));
        let key = Key::scoped(1, "eth0", 2);
        assert_eq!(
            RuntimeLists::load(&dir, &key).unwrap(),
            RuntimeLists::default()
        );
        let net: Cidr = "192.0.2.0/24".parse().unwrap();
        let mut lists = RuntimeLists::default();
        assert!(lists.add(ListKind::Block, net));
        assert!(!lists.add(ListKind::Block, net));
        assert_eq!(lists.origin(ListKind::Block, net), Origin::Runtime);
        assert_eq!(lists.origin(ListKind::Allow, net), Origin::File);
        lists.save(&dir, &key).unwrap();
        let back = RuntimeLists::load(&dir, &key).unwrap();
        assert_eq!(back.entries(ListKind::Block), [net]);
        let mut back = back;
        assert!(back.remove(ListKind::Block, net));
        assert!(!back.remove(ListKind::Block, net));
        back.save(&dir, &key).unwrap();
        assert!(!paths::runtime_lists(&dir, &key).exists());
        // Entries of a namespace that is gone are not restored into ours.
        if let Some(ours) = netns::current_cookie() {
            let stale = format!("{{\"block\": [\"{net}\"], \"netns_cookie\": {}}}", ours + 1);
            fs::write(paths::runtime_lists(&dir, &key), stale).unwrap();
            assert_eq!(
                RuntimeLists::load(&dir, &key).unwrap(),
                RuntimeLists::default()
            );
        }
        fs::write(paths::runtime_lists(&dir, &key), "nope").unwrap();
        assert!(RuntimeLists::load(&dir, &key).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
