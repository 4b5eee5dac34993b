//! The release synguard the guest runs, built in the background while the image is made and the
//! guest boots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};

use super::proc;

/// The release synguard, built while the image is made and the guest boots (both mostly wait on
/// downloads and the emulator, not on the same work as the compiler).
pub struct ReleaseBuild {
    bg: proc::Bg,
    bin: PathBuf,
}

/// Generous: a fresh machine builds every dependency in release mode on two cores.
const RELEASE_BUILD_TIMEOUT: Duration = Duration::from_secs(45 * 60);

impl ReleaseBuild {
    pub fn start(root: &Path) -> Result<ReleaseBuild> {
        let mut cmd = crate::cargo();
        cmd.args(["build", "--release", "-p", "synguard"]);
        Ok(ReleaseBuild {
            bg: proc::Bg::spawn("cargo build --release -p synguard", &mut cmd)?,
            bin: crate::target_dir(root).join("release/synguard"),
        })
    }

    /// Waits for the build and returns the binary's path.
    pub fn finish(self) -> Result<PathBuf> {
        let status = self.bg.wait(RELEASE_BUILD_TIMEOUT)?;
        if !status.success() {
            bail!("cargo build --release -p synguard failed: {status}");
        }
        Ok(self.bin)
    }
}
