//! systemd's service notification protocol (sd_notify(3)): newline-separated `KEY=VALUE` lines in
//! one datagram to the unix socket named by `$NOTIFY_SOCKET`. A name starting with '@' is in the
//! abstract namespace (the '@' stands for the leading NUL byte). Without `$NOTIFY_SOCKET` (not
//! started by systemd, or not `Type=notify`) every call does nothing.
//!
//! The unit (`packaging/synguard.service`, `Type=notify`) relies on `READY=1` being sent only
//! once every interface's program is attached and configured.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "${NOTIFY_SOCKET_ENV}={0:?} is neither an absolute path nor an abstract name starting \
         with '@'"
    )]
    BadAddress(String),
    #[error("cannot use ${NOTIFY_SOCKET_ENV}={addr:?}")]
    Socket {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot send {state:?} to ${NOTIFY_SOCKET_ENV}={addr:?}")]
    Send {
        state: String,
        addr: String,
        #[source]
        source: io::Error,
    },
}

/// Where notifications go; `None` inside when there is no supervisor to tell.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    name: String,
    addr: SocketAddr,
    socket: UnixDatagram,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; an unset or empty variable gives a notifier that does nothing.
    pub fn from_env() -> Result<Self, NotifyError> {
        Self::for_address(std::env::var_os(NOTIFY_SOCKET_ENV).as_deref())
    }

    /// For an explicit `$NOTIFY_SOCKET` value (`None`: no supervisor).
    pub fn for_address(value: Option<&OsStr>) -> Result<Self, NotifyError> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(Self { target: None });
        };
        let name = value.to_string_lossy().into_owned();
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(value),
            _ => return Err(NotifyError::BadAddress(name)),
        }
        .map_err(|source| NotifyError::Socket {
            addr: name.clone(),
            source,
        })?;
        let socket = UnixDatagram::unbound().map_err(|source| NotifyError::Socket {
            addr: name.clone(),
            source,
        })?;
        Ok(Self {
            target: Some(Target { name, addr, socket }),
        })
    }

    /// True when a supervisor listens (notifications are sent).
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends the given `KEY=VALUE` lines in one datagram.
    pub fn send(&self, lines: &[&str]) -> Result<(), NotifyError> {
        let Some(t) = &self.target else {
            return Ok(());
        };
        let state = lines.join("\n");
        t.socket
            .send_to_addr(state.as_bytes(), &t.addr)
            .map(drop)
            .map_err(|source| NotifyError::Send {
                state,
                addr: t.name.clone(),
                source,
            })
    }

    /// Every program is attached and configured: the service is up.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&["READY=1", &status_line(status)])
    }

    /// A one-line description for `systemctl status`.
    pub fn status(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&[&status_line(status)])
    }

    /// A reload started; `ready` again ends it.
    pub fn reloading(&self) -> Result<(), NotifyError> {
        let usec = monotonic_usec();
        self.send(&[
            "RELOADING=1",
            &format!("MONOTONIC_USEC={usec}"),
            "STATUS=reloading the configuration",
        ])
    }

    /// The service is shutting down (or handing over).
    pub fn stopping(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&["STOPPING=1", &status_line(status)])
    }
}

/// `STATUS=` with the text on one line (a newline would start a new assignment).
fn status_line(status: &str) -> String {
    format!("STATUS={}", status.replace('\n', " "))
}

/// CLOCK_MONOTONIC in microseconds, which `RELOADING=1` carries (sd_notify(3)).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(listener: &UnixDatagram) -> String {
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = listener.recv(&mut buf).expect("no notification arrived");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn temp_socket_path(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("synguard-notify-{tag}-{}", std::process::id()))
    }

    #[test]
    fn ready_reaches_a_path_socket() {
        let path = temp_socket_path("path");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::for_address(Some(path.as_os_str())).unwrap();
        assert!(n.is_active());
        n.ready("guarding eth0\nports 80").unwrap();
        assert_eq!(receive(&listener), "READY=1\nSTATUS=guarding eth0 ports 80");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn abstract_name_with_at_sign() {
        let name = format!("synguard-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let value = format!("@{name}");
        let n = Notifier::for_address(Some(OsStr::new(&value))).unwrap();
        n.stopping("handing over").unwrap();
        assert_eq!(receive(&listener), "STOPPING=1\nSTATUS=handing over");
        n.reloading().unwrap();
        let got = receive(&listener);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[0], "RELOADING=1");
        let usec: u64 = lines[1]
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec > 0);
        assert_eq!(lines[2], "STATUS=reloading the configuration");
    }

    #[test]
    fn unset_or_empty_does_nothing() {
        for value in [None, Some(OsStr::new(""))] {
            let n = Notifier::for_address(value).unwrap();
            assert!(!n.is_active());
            n.ready("x").unwrap();
        }
    }

    #[test]
    fn relative_name_is_refused() {
        let err = Notifier::for_address(Some(OsStr::new("run/notify"))).unwrap_err();
        assert!(matches!(err, NotifyError::BadAddress(_)), "{err}");
        assert!(err.to_string().contains("absolute path"), "{err}");
    }

    #[test]
    fn send_to_a_missing_socket_fails_with_its_name() {
        let path = temp_socket_path("missing");
        let _ = std::fs::remove_file(&path);
        let n = Notifier::for_address(Some(path.as_os_str())).unwrap();
        let err = n.ready("x").unwrap_err();
        assert!(matches!(err, NotifyError::Send { .. }), "{err}");
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    }
}
