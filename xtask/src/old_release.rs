//! The previous release's binary, for the lab's take-over test (`synguard-lab/tests/compat.rs`
//! reads it from `SYNGUARD_OLD_BIN`): its commit checked out with `git worktree add` under
//! `target/old-release/src`, built there with its own target directory, so it never mixes with
//! this tree's build. Without the git history (a source tarball, a shallow clone) there is
//! nothing to build: the test is skipped, and this says why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::{cargo, run};

/// The release whose pinned instances (flat layout, keyed by interface name) this one must take
/// over and detach.
const COMMIT: &str = "0434865";

/// Builds the previous release's `synguard`; None (with the reason printed) when the history
/// does not hold its commit.
pub fn binary(root: &Path, target: &Path) -> Result<Option<PathBuf>> {
    let has_commit = Command::new("git")
        .args(["-C", &root.to_string_lossy()])
        .args(["cat-file", "-e", &format!("{COMMIT}^{{commit}}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_commit {
        eprintln!(
            "xtask: not building the previous release: commit {COMMIT} is not in the git history \
             here (no .git, or a shallow clone); the take-over test will be skipped"
        );
        return Ok(None);
    }
    let base = target.join("old-release");
    let src = base.join("src");
    if !src.join("Cargo.toml").exists() {
        // A directory left by an interrupted checkout would make `worktree add` refuse.
        let _ = std::fs::remove_dir_all(&src);
        run(Command::new("git").args(["-C", &root.to_string_lossy(), "worktree", "prune"]))?;
        run(Command::new("git")
            .args(["-C", &root.to_string_lossy(), "worktree", "add", "--detach"])
            .arg(&src)
            .arg(COMMIT))?;
    }
    let build_dir = base.join("target");
    run(cargo()
        .current_dir(&src)
        .args(["build", "-p", "synguard"])
        .env("CARGO_TARGET_DIR", &build_dir))?;
    Ok(Some(build_dir.join("debug/synguard")))
}
