//! The host packages the VM commands need, installed by them (not by the general setup), once.
//! QEMU and mmdebstrap come from the host release's backports: the plain bookworm QEMU would
//! replace a newer qemu-utils already installed from there. The backports entry goes into a
//! temporary apt configuration built from the URIs the host's own sources already name, so no
//! mirror host is written anywhere, and the host's apt state lists stay untouched.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::proc::checked_bounded;

/// From backports.
const BACKPORTS: &[&str] = &["qemu-system-x86", "mmdebstrap"];
/// From the release itself.
const PLAIN: &[&str] = &[
    "openssh-client",
    "e2fsprogs",
    "curl",
    "hping3",
    "tcpdump",
    "iproute2",
    // The system python sends the hand-built frames (standard library only).
    "python3",
];

const DEBIAN_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
const APT_TIMEOUT: Duration = Duration::from_secs(900);

/// Installs what is missing; says "skipped" when nothing is.
pub fn ensure() -> Result<()> {
    let missing = |list: &[&'static str]| -> Vec<&'static str> {
        list.iter().copied().filter(|p| !installed(p)).collect()
    };
    let (bp, plain) = (missing(BACKPORTS), missing(PLAIN));
    if bp.is_empty() && plain.is_empty() {
        eprintln!("vm: host packages present, skipped");
        return Ok(());
    }
    let tmp = TempApt::new()?;
    tmp.apt(&["update"])?;
    if !plain.is_empty() {
        eprintln!("vm: installing {}", plain.join(" "));
        tmp.apt(&[&["install", "-y", "--no-install-recommends"][..], &plain].concat())?;
    }
    if !bp.is_empty() {
        let suite = format!("{}-backports", tmp.codename);
        eprintln!("vm: installing from {suite}: {}", bp.join(" "));
        tmp.apt(
            &[
                &["install", "-y", "--no-install-recommends", "-t", &suite][..],
                &bp,
            ]
            .concat(),
        )?;
    }
    Ok(())
}

pub fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok installed"))
        .unwrap_or(false)
}

/// The host release's codename (`VERSION_CODENAME` in /etc/os-release).
pub fn codename() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .context("no VERSION_CODENAME in /etc/os-release")
}

/// The archive URI of the host's main Debian entry (the `URIs:` of the stanza whose suites
/// include the bare codename), read from the host's deb822 sources.
pub fn debian_uri(codename: &str) -> Result<String> {
    let text = std::fs::read_to_string(DEBIAN_SOURCES)
        .with_context(|| format!("reading {DEBIAN_SOURCES}"))?;
    uri_for_suite(&text, codename)
        .with_context(|| format!("no stanza for suite {codename} in {DEBIAN_SOURCES}"))
}

fn uri_for_suite(deb822: &str, suite: &str) -> Option<String> {
    deb822.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim))
        };
        let suites = field("Suites:")?;
        suites
            .split_whitespace()
            .any(|s| s == suite)
            .then_some(())?;
        field("URIs:")?.split_whitespace().next().map(String::from)
    })
}

/// A throw-away apt configuration: the host's sources plus `<codename>-backports`, with its own
/// lists directory, removed on drop.
struct TempApt {
    dir: tempdir::Dir,
    codename: String,
}

impl TempApt {
    fn new() -> Result<Self> {
        let codename = codename()?;
        let uri = debian_uri(&codename)?;
        let dir = tempdir::Dir::new("synguard-vm-apt")?;
        let parts = dir.path().join("parts");
        std::fs::create_dir_all(parts.clone())?;
        std::fs::create_dir_all(dir.path().join("lists/partial"))?;
        std::fs::write(dir.path().join("sources.list"), "")?;
        std::fs::copy(DEBIAN_SOURCES, parts.join("debian.sources"))
            .with_context(|| format!("copying {DEBIAN_SOURCES}"))?;
        let backports = format!(
            "Types: deb\nURIs: {uri}\nSuites: {codename}-backports\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        std::fs::write(parts.join("backports.sources"), backports)?;
        Ok(TempApt { dir, codename })
    }

    fn apt(&self, args: &[&str]) -> Result<()> {
        let d = self.dir.path();
        let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
        let mut cmd = Command::new("apt-get");
        cmd.arg("-o")
            .arg(opt("Dir::Etc::SourceList", &d.join("sources.list")))
            .arg("-o")
            .arg(opt("Dir::Etc::SourceParts", &d.join("parts")))
            .arg("-o")
            .arg(opt("Dir::State::Lists", &d.join("lists")))
            // The lists directory is ours (mode 0700), not _apt's.
            .args(["-o", "APT::Sandbox::User=root"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        checked_bounded(&mut cmd, APT_TIMEOUT).map(|_| ())
    }
}

/// A directory removed (with its contents) on drop.
pub mod tempdir {
    use std::path::{Path, PathBuf};

    use anyhow::{Context as _, Result};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(prefix: &str) -> Result<Dir> {
            let path = std::env::temp_dir().join(format!("{prefix}.{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            Ok(Dir(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Fails unless the host is Debian with deb822 sources (what the recipe is written for).
pub fn check_host() -> Result<()> {
    if !Path::new(DEBIAN_SOURCES).exists() {
        bail!("`cargo xtask vm` needs a Debian host with {DEBIAN_SOURCES} (deb822 sources)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::uri_for_suite;

    #[test]
    fn finds_the_main_stanza_uri() {
        let s = "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm bookworm-updates\n\
                 Components: main\n\nTypes: deb\nURIs: http://a.example/debian-security\n\
                 Suites: bookworm-security\n";
        assert_eq!(
            uri_for_suite(s, "bookworm").as_deref(),
            Some("http://a.example/debian")
        );
        assert_eq!(uri_for_suite(s, "trixie"), None);
    }
}
