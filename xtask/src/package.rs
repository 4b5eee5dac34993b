//! `cargo xtask package`: the release binary, the systemd unit, the example configuration, man
//! pages and shell completions as one Debian package under `target/debian/`, built with
//! `dpkg-deb`. The man pages and completions come from the binary itself (`synguard generate`,
//! hidden), so xtask needs no dependency on the synguard crate.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{cargo, output, run, target_dir};

pub const PACKAGE: &str = "synguard";
const MAINTAINER: &str = "synguard developers <synguard@example.invalid>";
/// The workspace's `repository`.
const HOMEPAGE: &str = env!("CARGO_PKG_REPOSITORY");
const SUMMARY: &str = "SYN-flood protection in XDP";
/// The extended description, each line after the first indented by one space (deb-control(5)).
const DESCRIPTION: &str = "\
synguard attaches an XDP program to the interfaces it guards: it answers SYNs\n \
 to the protected ports with kernel-compatible SYN cookies (always, or only\n \
 while a flood lasts), drops bogus ACKs, rate-limits sources and keeps allow\n \
 and block lists, before the packets reach the TCP stack. It runs as a systemd\n \
 service (Type=notify) with Prometheus metrics.";

/// Where the package puts each piece (one owner: the install test checks the same paths).
pub mod paths {
    pub const BINARY: &str = "usr/sbin/synguard";
    pub const UNIT: &str = "usr/lib/systemd/system/synguard.service";
    pub const CONFIG: &str = "etc/synguard/synguard.toml";
    pub const MAN_DIR: &str = "usr/share/man/man8";
    pub const BASH: &str = "usr/share/bash-completion/completions/synguard";
    pub const ZSH: &str = "usr/share/zsh/vendor-completions/_synguard";
    pub const FISH: &str = "usr/share/fish/vendor_completions.d/synguard.fish";
    pub const DOC_DIR: &str = "usr/share/doc/synguard";
}

/// Builds the release binary and the `.deb`; returns the package's path.
pub fn package(root: &Path) -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "-p", "synguard"]))?;
    let target = target_dir(root);
    let out = target.join("debian");
    let stage = out.join("stage");
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    let bin = target.join("release/synguard");
    stage_files(root, &bin, &stage)?;
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let version = version(&bin)?;
    let depends = depends(&out, &stage.join(paths::BINARY))?;
    write_control(&stage, &version, &arch, &depends)?;
    let deb = out.join(format!("{PACKAGE}_{version}_{arch}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zxz"])
        .arg(&stage)
        .arg(&deb))?;
    eprintln!("package: {} (Depends: {depends})", deb.display());
    Ok(deb)
}

/// Every file the package installs, with its mode, under `stage`.
fn stage_files(root: &Path, bin: &Path, stage: &Path) -> Result<()> {
    let sbin = stage.join(paths::BINARY);
    copy(bin, &sbin, 0o755)?;
    // Debug symbols stay in target/; the package carries the stripped binary (Debian policy
    // 10.1).
    run(Command::new("strip")
        .args(["--strip-unneeded", "--remove-section=.comment"])
        .arg(&sbin))?;
    copy(
        &root.join("packaging/synguard.service"),
        &stage.join(paths::UNIT),
        0o644,
    )?;
    copy(
        &root.join("examples/synguard.toml"),
        &stage.join(paths::CONFIG),
        0o644,
    )?;
    man_pages(bin, &stage.join(paths::MAN_DIR))?;
    for (shell, path) in [
        ("bash", paths::BASH),
        ("zsh", paths::ZSH),
        ("fish", paths::FISH),
    ] {
        let script = output(Command::new(bin).args(["generate", "completions", shell]))?;
        write(&stage.join(path), &(script + "\n"), 0o644)?;
    }
    let doc = stage.join(paths::DOC_DIR);
    let date = release_date(root)?;
    write(&doc.join("copyright"), &copyright(&date), 0o644)?;
    gzip_text(&changelog(&version(bin)?, &date), &doc.join("changelog.gz"))?;
    copy(
        &root.join("packaging/debian/lintian-overrides"),
        &stage.join("usr/share/lintian/overrides").join(PACKAGE),
        0o644,
    )?;
    gzip_copy(&root.join("README.md"), &doc.join("README.md.gz"))?;
    maintainer_scripts(&stage.join("DEBIAN"))
}

fn man_pages(bin: &Path, dir: &Path) -> Result<()> {
    let written = output(
        Command::new(bin)
            .args(["generate", "man", "--out-dir"])
            .arg(dir),
    )?;
    let pages: Vec<&str> = written.lines().collect();
    // -n: no name or time stamp in the header, so the package is reproducible.
    run(Command::new("gzip").arg("-9n").args(&pages))?;
    for page in pages {
        set_mode(Path::new(&format!("{page}.gz")), 0o644)?;
    }
    Ok(())
}

/// The version `synguard --version` prints ("synguard 0.1.0" -> "0.1.0").
fn version(bin: &Path) -> Result<String> {
    let out = output(Command::new(bin).arg("--version"))?;
    out.strip_prefix("synguard ")
        .map(str::to_owned)
        .with_context(|| format!("unexpected `synguard --version` output: {out:?}"))
}

/// The shared libraries the binary links, as package dependencies with minimum versions, from
/// dpkg-shlibdeps (which wants a `debian/control` in its working directory).
fn depends(out: &Path, binary: &Path) -> Result<String> {
    let work = out.join("shlibdeps");
    write(
        &work.join("debian/control"),
        &format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"),
        0o644,
    )?;
    let line = output(
        Command::new("dpkg-shlibdeps")
            .arg("-O")
            .arg(binary)
            .current_dir(&work),
    )?;
    line.strip_prefix("shlibs:Depends=")
        .map(str::to_owned)
        .with_context(|| format!("unexpected dpkg-shlibdeps output: {line:?}"))
}

fn write_control(stage: &Path, version: &str, arch: &str, depends: &str) -> Result<()> {
    let size_kib = installed_size_kib(stage)?;
    let control = format!(
        "Package: {PACKAGE}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {size_kib}\nDepends: {depends}\nSection: net\nPriority: optional\n\
         Homepage: {HOMEPAGE}\nDescription: {SUMMARY}\n {DESCRIPTION}\n"
    );
    let debian = stage.join("DEBIAN");
    write(&debian.join("control"), &control, 0o644)?;
    write(
        &debian.join("conffiles"),
        &format!("/{}\n", paths::CONFIG),
        0o644,
    )?;
    write(&debian.join("md5sums"), &md5sums(stage)?, 0o644)
}

/// `DEBIAN/md5sums`: what `dpkg --verify` checks the installed files against (conffiles have
/// their own sums in dpkg's database).
fn md5sums(stage: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect_files(stage, stage, &mut files)?;
    files.retain(|f| f != paths::CONFIG);
    files.sort();
    output(Command::new("md5sum").args(&files).current_dir(stage)).map(|s| s + "\n")
}

/// Regular files below `dir`, relative to `stage`, without DEBIAN/.
fn collect_files(stage: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path == stage.join("DEBIAN") {
            continue;
        }
        if path.is_dir() {
            collect_files(stage, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(stage)
                .context("a staged file lies below the stage")?;
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// The size of everything but DEBIAN/, in KiB, as `du` would count it (whole blocks).
fn installed_size_kib(stage: &Path) -> Result<u64> {
    fn walk(dir: &Path, total: &mut u64) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            if entry.file_name() == "DEBIAN" {
                continue;
            }
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(&entry.path(), total)?;
            } else {
                *total += meta.len().div_ceil(1024);
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(stage, &mut total)?;
    Ok(total)
}

/// The scripts dpkg runs around installing and removing: what debhelper's dh_installsystemd
/// writes for a service that is enabled but not started on install (`--no-start`), stopped on
/// removal, and on upgrade handed over to the new binary with SIGUSR1 (see the unit) instead of
/// being restarted, so the interfaces stay protected.
fn maintainer_scripts(debian: &Path) -> Result<()> {
    for (name, text) in [
        ("postinst", include_str!("../../packaging/debian/postinst")),
        ("prerm", include_str!("../../packaging/debian/prerm")),
        ("postrm", include_str!("../../packaging/debian/postrm")),
    ] {
        write(&debian.join(name), text, 0o755)?;
    }
    Ok(())
}

/// The date of the commit being packaged (RFC 2822), so that the same commit gives the same
/// package.
fn release_date(root: &Path) -> Result<String> {
    output(
        Command::new("git")
            .args(["log", "-1", "--format=%aD"])
            .current_dir(root),
    )
}

/// A native package's changelog: one entry for the packaged version.
fn changelog(version: &str, date: &str) -> String {
    format!(
        "{PACKAGE} ({version}) unstable; urgency=medium\n\n  * Built from the synguard \
         repository at version {version}.\n\n -- {MAINTAINER}  {date}\n"
    )
}

fn copyright(date: &str) -> String {
    // "Mon, 30 Nov 2026 05:17:21 +0000" -> "2026"
    let year = date.split_whitespace().nth(3).unwrap_or_default();
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: {PACKAGE}\nSource: {HOMEPAGE}\n\nFiles: *\nCopyright: {year} synguard developers\n\
         License: GPL-2\n On Debian systems, the complete text of the GNU General Public License\n \
         version 2 is in /usr/share/common-licenses/GPL-2.\n"
    )
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let bytes = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_bytes(to, &bytes, mode)
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    write_bytes(to, text.as_bytes(), mode)
}

fn write_bytes(to: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = to.parent().context("a staged file has a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(to, bytes).with_context(|| format!("writing {}", to.display()))?;
    set_mode(to, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

fn gzip_text(text: &str, to: &Path) -> Result<()> {
    let tmp = to.with_extension("");
    write(&tmp, text, 0o644)?;
    run(Command::new("gzip").arg("-9n").arg(&tmp))?;
    set_mode(to, 0o644)
}

fn gzip_copy(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("gzip")
        .args(["-9nc"])
        .arg(from)
        .output()
        .with_context(|| format!("gzip {}", from.display()))?;
    if !out.status.success() {
        bail!("gzip {} failed: {}", from.display(), out.status);
    }
    write_bytes(to, &out.stdout, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `copyright()` states GPL-2 (version 2 only, DEP-5 short name): it must follow the
    /// workspace's license.
    #[test]
    fn copyright_follows_the_workspace_license() {
        assert_eq!(env!("CARGO_PKG_LICENSE"), "GPL-2.0-only");
        let text = copyright("Mon, 30 Nov 2026 05:17:46 +0000");
        assert!(
            text.contains("Copyright: 2026 synguard developers"),
            "{text}"
        );
        assert!(text.contains("License: GPL-2\n"), "{text}");
    }

    #[test]
    fn changelog_entry_is_well_formed() {
        let text = changelog("1.2.3", "Mon, 30 Nov 2026 05:17:46 +0000");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("synguard (1.2.3) unstable; urgency=medium")
        );
        assert!(
            text.ends_with(&format!(
                " -- {MAINTAINER}  Mon, 30 Nov 2026 05:17:46 +0000\n"
            )),
            "{text}"
        );
    }
}
