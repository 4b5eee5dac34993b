//! Which instances a command acts on: by default those of the caller's network namespace, found
//! by their pin directory (the program's state, kernel truth) or run-info file (what a process
//! recorded); `--iface` narrows to one interface name. Instances of the earlier flat layout
//! count as ours when their run-info says they ran in our namespace, or, with `--iface`, when
//! nothing says otherwise. The one place that decides it.

use std::{fs, io, path::Path};

use crate::{
    host::netns,
    state::{
        paths::{self, Key},
        run_info::RunInfo,
    },
};

/// Instances of namespace `netns` with a pin directory or a run-info file, sorted.
pub fn in_netns(pin_base: &Path, run_dir: &Path, netns: u64) -> io::Result<Vec<Key>> {
    let mut out = Vec::new();
    for name in dir_names(&paths::netns_dir(pin_base, netns), true)? {
        out.extend(Key::from_stem(netns, &name));
    }
    for name in dir_names(&paths::netns_dir(run_dir, netns), false)? {
        out.extend(paths::run_info_stem(&name).and_then(|s| Key::from_stem(netns, s)));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Instances of namespace `netns` that have only a runtime-lists file left (after a clean
/// stop), for `detach`.
pub fn with_lists(run_dir: &Path, netns: u64) -> io::Result<Vec<Key>> {
    Ok(dir_names(&paths::netns_dir(run_dir, netns), false)?
        .iter()
        .filter_map(|n| paths::runtime_lists_stem(n).and_then(|s| Key::from_stem(netns, s)))
        .collect())
}

/// Interfaces with state in the flat layout of the earlier release, sorted.
pub fn legacy(pin_base: &Path, run_dir: &Path) -> io::Result<Vec<String>> {
    let mut out: Vec<String> = dir_names(pin_base, true)?
        .into_iter()
        .filter(|n| !paths::is_netns_dir(n))
        .collect();
    for name in dir_names(run_dir, false)? {
        out.extend(paths::run_info_stem(&name).map(String::from));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Whether a flat-layout instance ran in our namespace: `Some(true/false)` from its run-info,
/// None when it left none.
pub fn legacy_is_ours(run_dir: &Path, iface: &str) -> Option<bool> {
    let key = Key::Legacy {
        iface: iface.to_string(),
    };
    RunInfo::load(run_dir, &key).map(|info| info.same_netns())
}

/// The instances a command acts on: ours (see the module header), `iface` only if given.
pub fn select(pin_base: &Path, run_dir: &Path, iface: Option<&str>) -> io::Result<Vec<Key>> {
    let ours = netns::current_inode()?;
    let mut out: Vec<Key> = in_netns(pin_base, run_dir, ours)?
        .into_iter()
        .filter(|k| iface.is_none_or(|i| k.iface() == i))
        .collect();
    for name in legacy(pin_base, run_dir)? {
        let named = iface == Some(name.as_str());
        let ours = legacy_is_ours(run_dir, &name);
        if (iface.is_none() || named) && (ours == Some(true) || (named && ours.is_none())) {
            out.push(Key::Legacy { iface: name });
        }
    }
    Ok(out)
}

/// Names in a directory (sub-directories or files); a missing directory has none.
fn dir_names(dir: &Path, dirs: bool) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir() == dirs)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_of_each_namespace_and_the_flat_layout() {
        let base = std::env::temp_dir().join(format!("sg-scope-{}", std::process::id()));
        let (pins, run) = (base.join("pins"), base.join("run"));
        let ours = netns::current_inode().unwrap();
        let (a, b) = (Key::scoped(ours, "a", 2), Key::scoped(ours, "b", 3));
        let theirs = Key::scoped(ours + 1, "a", 2);
        fs::create_dir_all(paths::pin_dir(&pins, &a)).unwrap();
        fs::create_dir_all(paths::pin_dir(&pins, &theirs)).unwrap();
        fs::create_dir_all(paths::netns_dir(&run, ours)).unwrap();
        fs::write(paths::run_info(&run, &b), "{}").unwrap();
        fs::write(paths::history(&run, &a), "[]").unwrap();
        fs::write(paths::runtime_lists(&run, &Key::scoped(ours, "c", 4)), "{}").unwrap();
        assert_eq!(in_netns(&pins, &run, ours).unwrap(), [a.clone(), b.clone()]);
        assert_eq!(in_netns(&pins, &run, ours + 1).unwrap(), [theirs]);
        assert_eq!(with_lists(&run, ours).unwrap(), [Key::scoped(ours, "c", 4)]);

        // Flat layout: "old" ran here, "other" elsewhere, "bare" left no run-info.
        for (name, netns) in [("old", netns::current()), ("other", Some("net:[1]".into()))] {
            let key = Key::Legacy { iface: name.into() };
            let info = RunInfo {
                iface: name.into(),
                netns,
                ..Default::default()
            };
            info.write(&run, &key).unwrap();
            fs::create_dir_all(paths::pin_dir(&pins, &key)).unwrap();
        }
        fs::create_dir_all(pins.join("bare")).unwrap();
        assert_eq!(legacy(&pins, &run).unwrap(), ["bare", "old", "other"]);
        let legacy_key = |i: &str| Key::Legacy { iface: i.into() };
        assert_eq!(
            select(&pins, &run, None).unwrap(),
            [a.clone(), b, legacy_key("old")]
        );
        assert_eq!(select(&pins, &run, Some("a")).unwrap(), [a]);
        assert_eq!(
            select(&pins, &run, Some("bare")).unwrap(),
            [legacy_key("bare")]
        );
        assert!(select(&pins, &run, Some("other")).unwrap().is_empty());
        assert!(
            select(&base.join("x"), &base.join("y"), None)
                .unwrap()
                .is_empty()
        );
        fs::remove_dir_all(&base).unwrap();
    }
}
