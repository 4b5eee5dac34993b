//! Where the cgroup v2 hierarchy is mounted (`/proc/self/mountinfo`, Documentation/filesystems/
//! proc.rst section 3.5): the connection table's sock_ops program attaches to its root, which
//! every socket of the host belongs to (docs/connection-table.md).

use std::path::PathBuf;

/// This process's mount table.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mount point of the first cgroup2 mount whose root is the hierarchy's root, from the
/// text of a mountinfo file. A mount of a sub-cgroup (root other than `/`, as inside a cgroup
/// namespace's bind mount) would see only part of the sockets: it does not count.
pub fn cgroup2_root(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // `id parent major:minor root mount-point options [optional...] - fstype source opts`
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mut f = left.split_whitespace();
        let root = f.nth(3)?;
        let mount_point = f.next()?;
        (fstype == "cgroup2" && root == "/").then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` (`seq_path`, `mangle`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(o)) => {
                out.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_root_mount_of_cgroup2() {
        let text = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    30 24 0:26 /sub /mnt/part rw shared:9 - cgroup2 cgroup2 rw\n\
                    31 24 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_root(text), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(
            cgroup2_root("22 1 0:21 / /proc rw - proc proc rw\n"),
            None,
            "no cgroup2 mount"
        );
        assert_eq!(
            cgroup2_root("31 24 0:26 / /my\\040cg rw - cgroup2 none rw\n"),
            Some(PathBuf::from("/my cg"))
        );
    }

    #[test]
    fn this_machines_mount_table_parses() {
        // Whatever it holds, reading it must not panic; where /sys/fs/cgroup is cgroup2 it is
        // found.
        let text = std::fs::read_to_string(MOUNTINFO).unwrap();
        let _ = cgroup2_root(&text);
    }
}
