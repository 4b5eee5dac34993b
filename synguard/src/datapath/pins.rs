//! The state synguard keeps on the BPF filesystem, one directory per instance (where: see
//! `state::paths`):
//!
//! ```text
//! /sys/fs/bpf/synguard/<netns>/<iface>-<ifindex>/
//!     schema_1      empty directory: the layout version of everything here
//!     link          the XDP link (the program stays attached while this pin exists)
//!     tc_link       own cookies' TC link, when they are in use
//!     conns_link    the connection table's sock_ops link on the cgroup v2 root
//!     SG_*          the program's maps (config, counters, mode state, ...)
//! ```
//!
//! A loader only reuses maps whose schema it knows and whose kernel layout (type, key and value
//! size, entries, flags) equals its own program's, so a newer synguard never misreads an older
//! layout: what does not match is reset, and said so.

use std::{
    collections::BTreeMap,
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

use aya::maps::MapData;
use log::{info, warn};
use synguard_common::names;
use thiserror::Error;

use crate::{
    host::{
        bpffs::is_bpffs,
        io::{PathError, io_err},
    },
    state::paths,
};

/// The conventional bpffs mount point.
const BPFFS_ROOT: &str = "/sys/fs/bpf";
/// Bumped whenever the meaning of a pinned object changes in a way the kernel layout does not
/// show (e.g. a field reinterpreted in a same-sized value).
pub const SCHEMA_VERSION: u32 = 1;
/// The pinned XDP link's file name.
pub const LINK: &str = "link";
/// Own cookies' TC link (`datapath::own::attach_tc`), kept across a hand-over like the XDP one.
pub const TC_LINK: &str = "tc_link";
/// The connection table's sock_ops link (`datapath::conns::attach`), kept across a hand-over
/// like the others; a new one is pinned beside it under this name plus `_new`, then renamed
/// over it.
pub const CONNS_LINK: &str = "conns_link";
// bpffs refuses names with a dot.
const SCHEMA_PREFIX: &str = "schema_";

#[derive(Debug, Error)]
pub enum PinError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("{} is not on a BPF filesystem", .0.display())]
    NotBpffs(PathBuf),
    #[error(
        "{} holds state of schema {found}; this synguard reads schema {SCHEMA_VERSION} \
         (run the synguard that matches, or `synguard detach` first)",
        dir.display()
    )]
    Schema { dir: PathBuf, found: String },
}

/// Makes sure `pin_dir` can hold pins. `ip netns exec` gives its command a fresh /sys on which
/// /sys/fs/bpf is plain sysfs, so mount a bpffs there when needed (it lives as long as that mount
/// namespace).
pub fn prepare_dir(pin_dir: &Path) -> Result<(), PinError> {
    let root = Path::new(BPFFS_ROOT);
    if pin_dir.starts_with(root) && !is_bpffs(root).map_err(io_err("cannot statfs", root))? {
        let src = CString::new("bpf").expect("no NUL");
        let target = CString::new(BPFFS_ROOT).expect("no NUL");
        let opts = CString::new("mode=0700").expect("no NUL");
        // SAFETY: all arguments are valid NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(io_err("cannot mount a BPF filesystem on", root)(
                io::Error::last_os_error(),
            )
            .into());
        }
        info!("mounted a BPF filesystem on {BPFFS_ROOT} (this mount namespace had none)");
    }
    fs::create_dir_all(pin_dir).map_err(io_err("cannot create", pin_dir))?;
    if !is_bpffs(pin_dir).map_err(io_err("cannot statfs", pin_dir))? {
        return Err(PinError::NotBpffs(pin_dir.to_path_buf()));
    }
    Ok(())
}

/// Removes an instance's pin directory (unpinning its link detaches the program), and its
/// namespace's directory and the base once they are empty (`state::paths`).
pub fn remove_dir(pin_dir: &Path) -> io::Result<()> {
    fs::remove_dir_all(pin_dir)?;
    let mut parent = pin_dir.parent();
    if let Some(netns) = parent.filter(|p| {
        p.file_name()
            .is_some_and(|n| paths::is_netns_dir(&n.to_string_lossy()))
    }) {
        // Fails harmlessly while other instances still have directories there.
        let _ = fs::remove_dir(netns);
        parent = netns.parent();
    }
    if let Some(base) = parent {
        let _ = fs::remove_dir(base);
    }
    Ok(())
}

/// The schema marker found in a directory: None for an empty or missing directory.
fn schema_of(dir: &Path) -> io::Result<Option<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut any = false;
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(v) = name.strip_prefix(SCHEMA_PREFIX) {
            return Ok(Some(v.to_string()));
        }
        any = true;
    }
    // Pins without a marker come from a synguard older than the marker itself.
    Ok(any.then(|| "0 (no schema marker)".to_string()))
}

/// For readers (`stats`, `status`, metrics): refuses a directory of another schema instead of
/// misreading it.
pub fn check_schema(dir: &Path) -> Result<(), PinError> {
    match schema_of(dir).map_err(io_err("cannot list", dir))? {
        Some(v) if v == SCHEMA_VERSION.to_string() => Ok(()),
        None => Ok(()),
        Some(found) => Err(PinError::Schema {
            dir: dir.to_path_buf(),
            found,
        }),
    }
}

/// Whether the directory holds state of our schema (Same), of another (Other), or none.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Nothing,
    Same,
    Other(String),
}

pub fn inspect(dir: &Path) -> Result<Found, PinError> {
    Ok(match schema_of(dir).map_err(io_err("cannot list", dir))? {
        None => Found::Nothing,
        Some(v) if v == SCHEMA_VERSION.to_string() => Found::Same,
        Some(v) => Found::Other(v),
    })
}

/// Writes our schema marker, replacing any other.
pub fn mark_schema(dir: &Path) -> Result<(), PinError> {
    for entry in fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
        let entry = entry.map_err(io_err("cannot list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(SCHEMA_PREFIX) && name != marker_name() {
            fs::remove_dir(entry.path()).map_err(io_err("cannot remove", &entry.path()))?;
        }
    }
    let marker = dir.join(marker_name());
    match fs::create_dir(&marker) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(io_err("cannot create", &marker)(e).into())
        }
        _ => Ok(()),
    }
}

fn marker_name() -> String {
    format!("{SCHEMA_PREFIX}{SCHEMA_VERSION}")
}

/// A map's kernel layout: what must match for a pinned map to be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "type {} key {} B value {} B entries {} flags {:#x}",
            self.map_type, self.key_size, self.value_size, self.max_entries, self.flags
        )
    }
}

/// Maps another process needs, with their layouts, from the embedded object, by their pin
/// names (a global's data section under its map's name, `names::pin_name`). aya-log's buffers
/// and the object's other data sections (constants) belong to one process and are never pinned.
pub fn object_layouts(object: &[u8]) -> Result<BTreeMap<String, Layout>, aya_obj::ParseError> {
    let obj = aya_obj::Object::parse(object)?;
    Ok(obj
        .maps
        .iter()
        .filter(|(name, _)| !name.starts_with("AYA_"))
        .filter_map(|(name, m)| Some((names::pin_name(name)?, m)))
        .map(|(name, m)| {
            (
                name.to_string(),
                Layout {
                    map_type: m.map_type(),
                    key_size: m.key_size(),
                    value_size: m.value_size(),
                    max_entries: m.max_entries(),
                    flags: m.map_flags(),
                },
            )
        })
        .collect())
}

/// The layout of a pinned map, or None when it cannot be read.
pub fn pinned_layout(path: &Path) -> Option<Layout> {
    let info = MapData::from_pin(path).ok()?.info().ok()?;
    Some(Layout {
        map_type: info.map_type().ok()? as u32,
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: info.max_entries(),
        flags: info.map_flags(),
    })
}

/// What happens to each pinned map when a new program takes over the directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    /// Pinned, same layout: the new program uses them, contents carry over.
    pub kept: Vec<String>,
    /// Pinned with another layout (or unreadable): removed before the new program is loaded,
    /// which pins its own map under the name.
    pub reset: Vec<(String, String)>,
    /// Not in the new program: removed once it is attached ([`retire`]). Until then the
    /// running program may still use them, and some maps lose their contents with their last
    /// pin (a program array is emptied when no file refers to it, `bpf_fd_array_map_clear`).
    pub retired: Vec<String>,
}

/// Decides which pins to keep. Pure over its inputs, so the rule is unit-tested.
pub fn plan_reuse(
    wanted: &BTreeMap<String, Layout>,
    pinned: &BTreeMap<String, Option<Layout>>,
) -> Reuse {
    let mut plan = Reuse::default();
    for (name, found) in pinned {
        match (wanted.get(name), found) {
            (Some(w), Some(f)) if w == f => plan.kept.push(name.clone()),
            (Some(w), Some(f)) => plan
                .reset
                .push((name.clone(), format!("layout changed: was {f}, now {w}"))),
            (Some(_), None) => plan
                .reset
                .push((name.clone(), "unreadable pin".to_string())),
            (None, _) => plan.retired.push(name.clone()),
        }
    }
    plan
}

/// The map pins in a directory (everything but the link and the schema marker).
pub fn pinned_maps(dir: &Path) -> Result<BTreeMap<String, Option<Layout>>, PinError> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
        let entry = entry.map_err(io_err("cannot list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == LINK
            || name == TC_LINK
            || name.starts_with(CONNS_LINK)
            || name.starts_with(SCHEMA_PREFIX)
        {
            continue;
        }
        out.insert(name, pinned_layout(&entry.path()));
    }
    Ok(out)
}

/// Removes the pins that cannot be reused (another schema, another layout) and says so; returns
/// the plan: the names kept, whose contents the new program inherits, and the names to
/// [`retire`] once it is attached.
pub fn reconcile(
    iface: &str,
    dir: &Path,
    layouts: &BTreeMap<String, Layout>,
) -> Result<Reuse, PinError> {
    let pinned = pinned_maps(dir)?;
    let plan = match inspect(dir)? {
        Found::Other(found) => {
            warn!(
                "{iface}: state in {} has schema {found}, this synguard {}: counters and state \
                 reset",
                dir.display(),
                SCHEMA_VERSION
            );
            Reuse {
                kept: Vec::new(),
                reset: pinned
                    .keys()
                    .map(|n| (n.clone(), "other schema".to_string()))
                    .collect(),
                retired: Vec::new(),
            }
        }
        _ => plan_reuse(layouts, &pinned),
    };
    for (name, why) in &plan.reset {
        let path = dir.join(name);
        fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
        warn!("{iface}: {name} reset ({why})");
    }
    if !plan.kept.is_empty() {
        info!(
            "{iface}: carrying over counters and state from the previous program ({})",
            plan.kept.join(", ")
        );
    }
    Ok(plan)
}

/// Removes the pins of maps the attached program no longer uses ([`Reuse::retired`]). A pin
/// that cannot be removed is only worth a warning: the program does not use it.
pub fn retire(iface: &str, dir: &Path, names: &[String]) {
    for name in names {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => info!("{iface}: {name} removed (no longer used by this program)"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn!("{iface}: cannot remove {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(value_size: u32) -> Layout {
        Layout {
            map_type: 2,
            key_size: 4,
            value_size,
            max_entries: 1,
            flags: 0,
        }
    }

    #[test]
    fn reuse_keeps_only_identical_layouts() {
        let wanted: BTreeMap<_, _> = [("A".to_string(), layout(8)), ("B".to_string(), layout(16))]
            .into_iter()
            .collect();
        let pinned: BTreeMap<_, _> = [
            ("A".to_string(), Some(layout(8))),
            ("B".to_string(), Some(layout(12))),
            ("OLD".to_string(), Some(layout(4))),
        ]
        .into_iter()
        .collect();
        let plan = plan_reuse(&wanted, &pinned);
        assert_eq!(plan.kept, ["A"]);
        let reset: Vec<&str> = plan.reset.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(reset, ["B"]);
        assert!(plan.reset[0].1.contains("value 12 B"), "{:?}", plan.reset);
        // Not this program's: left to the running program until the new one is attached.
        assert_eq!(plan.retired, ["OLD"]);
    }

    /// The program array of the builds before multi-buffer programs held single-buffer ones and
    /// cannot take the new ones: it goes under another name, so that a take-over retires the
    /// old pin (after the attach) instead of reusing it (the new program would not load).
    #[test]
    fn an_earlier_builds_program_array_is_retired_not_reused() {
        let ours = object_layouts(crate::datapath::objects::synguard()).unwrap();
        let prog_array = Layout {
            map_type: 3,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            flags: 0,
        };
        assert_eq!(
            ours.get(synguard_common::names::OWN_PROG),
            Some(&prog_array)
        );
        let pinned: BTreeMap<_, _> = [("SG_OWN_PROG".to_string(), Some(prog_array))]
            .into_iter()
            .collect();
        let plan = plan_reuse(&ours, &pinned);
        assert_eq!(plan.retired, ["SG_OWN_PROG"]);
        assert!(plan.kept.is_empty() && plan.reset.is_empty(), "{plan:?}");
    }

    #[test]
    fn embedded_object_pins_its_maps_but_not_the_log() {
        let maps = object_layouts(crate::objects::synguard()).unwrap();
        assert!(maps.contains_key(synguard_common::maps::names::VERDICTS));
        assert!(maps.contains_key(synguard_common::maps::names::CONFIG));
        assert!(maps.keys().all(|n| !n.starts_with("AYA_")), "{maps:?}");
    }

    #[test]
    fn schema_of_plain_directories() {
        let dir = std::env::temp_dir().join(format!("synguard-schema-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(inspect(&dir).unwrap(), Found::Nothing);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(inspect(&dir).unwrap(), Found::Nothing);
        fs::write(dir.join("SG_X"), "").unwrap();
        assert!(matches!(inspect(&dir).unwrap(), Found::Other(_)));
        assert!(check_schema(&dir).is_err());
        mark_schema(&dir).unwrap();
        assert_eq!(inspect(&dir).unwrap(), Found::Same);
        assert!(check_schema(&dir).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The pins a synguard of commit 0434865 left (`tests/fixtures/pin-layout-0434865.txt`):
    /// this program must want every one of them with the same layout, or a take-over of such an
    /// instance would reset its state (or, for the link's maps, fail). The exceptions hold no
    /// state: the config map, which every start writes whole and which grew (own MAC,
    /// request-socket ISN offset) since that release, the port table, which every start writes
    /// whole too and which is one value now instead of an entry per port (`names::GLOBALS`),
    /// and the per-packet scratch map, which this program no longer has (its buffers moved into
    /// `SG_WORKSPACE`, which holds no state between packets either).
    #[test]
    fn pins_of_an_earlier_release_are_reused() {
        let golden = include_str!("../../tests/fixtures/pin-layout-0434865.txt");
        let ours = object_layouts(crate::datapath::objects::synguard()).unwrap();
        let mut pinned = BTreeMap::new();
        for line in golden
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| f[i].parse::<u32>().unwrap();
            let layout = Layout {
                map_type: num(2),
                key_size: num(4),
                value_size: num(6),
                max_entries: num(8),
                flags: u32::from_str_radix(f[10].trim_start_matches("0x"), 16).unwrap(),
            };
            pinned.insert(f[0].to_string(), Some(layout));
        }
        assert_eq!(pinned.len(), 20, "the fixture lists every map");
        let plan = plan_reuse(&ours, &pinned);
        let reset: Vec<&str> = plan.reset.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            reset,
            [
                synguard_common::names::CONFIG,
                synguard_common::names::PORTS
            ],
            "{:?}",
            plan.reset
        );
        // That release's per-packet scratch map.
        assert_eq!(plan.retired, ["SG_SCRATCH"]);
        assert_eq!(plan.kept.len(), pinned.len() - 3);
    }
}
