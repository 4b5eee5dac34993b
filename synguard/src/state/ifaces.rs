//! Which interfaces synguard has state for: a pin directory under the pin base (the program's
//! state, kernel truth) or a run-info file in the run directory (what a process recorded). The
//! one place that decides it; commands choose which of the two they need.

use std::{fs, io, path::Path};

use crate::state::paths;

/// Interfaces with a pin directory, sorted. A missing base is an error of kind `NotFound`.
pub fn pinned(pin_base: &Path) -> io::Result<Vec<String>> {
    let mut out: Vec<String> = fs::read_dir(pin_base)?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    Ok(out)
}

/// Interfaces with a run-info file, sorted. A missing directory is an error of kind `NotFound`.
pub fn recorded(run_dir: &Path) -> io::Result<Vec<String>> {
    let mut out: Vec<String> = fs::read_dir(run_dir)?
        .filter_map(Result::ok)
        .filter_map(|e| paths::run_info_iface(&e.file_name().to_string_lossy()).map(String::from))
        .collect();
    out.sort();
    Ok(out)
}

/// Both, without duplicates; a missing directory has none.
pub fn with_state(pin_base: &Path, run_dir: &Path) -> io::Result<Vec<String>> {
    let mut out = or_none(pinned(pin_base))?;
    out.extend(or_none(recorded(run_dir))?);
    out.sort();
    out.dedup();
    Ok(out)
}

/// A directory that does not exist holds nothing.
pub fn or_none(list: io::Result<Vec<String>>) -> io::Result<Vec<String>> {
    match list {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_dirs_and_run_info_files_name_interfaces() {
        let base = std::env::temp_dir().join(format!("sg-ifaces-{}", std::process::id()));
        let (pins, run) = (base.join("pins"), base.join("run"));
        fs::create_dir_all(pins.join("a")).unwrap();
        fs::create_dir_all(&run).unwrap();
        for file in [
            paths::run_info(&run, "b"),
            paths::history(&run, "c"),
            paths::lock(&run, "d"),
        ] {
            fs::write(file, "{}").unwrap();
        }
        assert_eq!(pinned(&pins).unwrap(), ["a"]);
        assert_eq!(recorded(&run).unwrap(), ["b"]);
        assert_eq!(with_state(&pins, &run).unwrap(), ["a", "b"]);
        assert!(
            with_state(&base.join("x"), &base.join("y"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            pinned(&base.join("x")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        fs::remove_dir_all(&base).unwrap();
    }
}
