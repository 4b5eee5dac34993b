//! Own cookies' key: random per start, or read from a file shared across a fleet (so servers
//! behind one anycast or ECMP address accept each other's cookies). The file holds 32 hex
//! digits (128 bits), e.g. from `head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'`, and
//! must not be readable or writable by group or others.

use std::{
    fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use thiserror::Error;

/// A 128-bit key as two words (`synguard_common::siphash::Key`).
pub type Key = [u64; 2];

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("cannot read cookie secret file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cookie secret file {} has mode {mode:03o}: group and others must have no access \
         (chmod 600)",
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("cookie secret file {}: expected 32 hex digits (128 bits), {found}", path.display())]
    Format { path: PathBuf, found: String },
    #[error("cannot get random bytes for the cookie secret")]
    Random(#[source] io::Error),
}

/// A fresh random key from the kernel's generator.
pub fn random_key() -> Result<Key, SecretError> {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, b.len(), 0) };
    if n != b.len() as isize {
        return Err(SecretError::Random(io::Error::last_os_error()));
    }
    Ok(key_from_bytes(&b))
}

/// The key in `path`, after checking that only its owner can read it.
pub fn read_key_file(path: &Path) -> Result<Key, SecretError> {
    let err = |source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mode = fs::metadata(path).map_err(err)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(err)?;
    parse_key(&text).map_err(|found| SecretError::Format {
        path: path.to_path_buf(),
        found,
    })
}

/// 32 hex digits, surrounding whitespace ignored; Err says what was found instead.
pub fn parse_key(text: &str) -> Result<Key, String> {
    let t = text.trim();
    if t.len() != 32 {
        return Err(format!("found {} characters", t.len()));
    }
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| {
            format!(
                "found {:?} at character {}",
                &t[2 * i..2 * i + 2],
                2 * i + 1
            )
        })?;
    }
    Ok(key_from_bytes(&b))
}

fn key_from_bytes(b: &[u8; 16]) -> Key {
    let w = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    [w(0), w(8)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of key files for one test, removed with everything in it when dropped
    /// (also when the test fails).
    struct Dir(PathBuf);

    impl Dir {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("synguard-secret-{}-{test}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            let p = self.0.join(name);
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_an_owner_only_file() {
        let dir = Dir::new("owner");
        let p = dir.file("ok", "000102030405060708090a0b0c0d0e0f\n", 0o600);
        assert_eq!(
            read_key_file(&p).unwrap(),
            [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908]
        );
        let p = dir.file("ro", "ffffffffffffffffffffffffffffffff", 0o400);
        assert_eq!(read_key_file(&p).unwrap(), [u64::MAX, u64::MAX]);
    }

    #[test]
    fn refuses_group_or_world_access() {
        let dir = Dir::new("access");
        for mode in [0o640, 0o604, 0o644, 0o660, 0o602] {
            let p = dir.file(
                &format!("m{mode:o}"),
                "000102030405060708090a0b0c0d0e0f",
                mode,
            );
            let e = read_key_file(&p).unwrap_err();
            assert!(
                matches!(e, SecretError::Permissions { .. }),
                "{mode:o}: {e}"
            );
            assert!(e.to_string().contains("chmod 600"));
        }
    }

    #[test]
    fn refuses_malformed_keys() {
        assert!(parse_key("0102").unwrap_err().contains("4 characters"));
        assert!(
            parse_key("zz0102030405060708090a0b0c0d0e0f")
                .unwrap_err()
                .contains("\"zz\"")
        );
        let dir = Dir::new("malformed");
        let p = dir.file("short", "abc", 0o600);
        assert!(matches!(read_key_file(&p), Err(SecretError::Format { .. })));
        assert!(matches!(
            read_key_file(Path::new("/nonexistent/secret")),
            Err(SecretError::Read { .. })
        ));
    }

    #[test]
    fn random_keys_differ() {
        assert_ne!(random_key().unwrap(), random_key().unwrap());
    }
}
