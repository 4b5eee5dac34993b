//! The fleet fixture of `fleet_e2e.rs` (`lab::fleet`): servers on the anycast address in A
//! and B, `synguard run` on each with a key file, clients, probes that must go unanswered, and
//! reloads.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use synguard_lab::lab::fleet::{Fleet, FleetServer, service_addr};
use synguard_lab::lab::synguard_proc::{self, Synguard};
use synguard_lab::lab::traffic::{self, ConnReport, Server, Transfer};

use super::{PORT, bin, require_root};

/// How long a probe waits for its answer: a working handshake answers in milliseconds.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The fleet with a server on the service address in A and in B, and the key files. Declared
/// so that the servers and synguard go before the namespaces.
pub struct FleetFixture {
    pub a: Server,
    pub b: Server,
    pub fleet: Fleet,
    dir: PathBuf,
}

impl FleetFixture {
    pub fn new() -> Result<FleetFixture> {
        require_root();
        let fleet = Fleet::new()?;
        let addrs = [service_addr(false, PORT), service_addr(true, PORT)];
        let a = Server::start(&fleet.a.ns, &addrs)?;
        let b = Server::start(&fleet.b.ns, &addrs)?;
        let dir = std::env::temp_dir().join(format!(
            "synguard-fleet-{}-{}",
            std::process::id(),
            fleet.a.ifname
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(FleetFixture { a, b, fleet, dir })
    }

    /// A secret file holding `key`, mode 600.
    pub fn key_file(&self, name: &str, key: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        std::fs::write(&p, format!("{key}\n"))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        Ok(p)
    }

    /// `synguard run` with own cookies on `srv`'s interface, keyed from `key`.
    pub fn synguard(&self, srv: &FleetServer, key: &Path) -> Result<Synguard> {
        self.synguard_with(srv, key, &[])
    }

    pub fn synguard_with(&self, srv: &FleetServer, key: &Path, extra: &[&str]) -> Result<Synguard> {
        let key = key.to_string_lossy();
        let args = ["--ports", "80", "--mode", "always", "--cookies", "own"];
        Synguard::start(
            &bin()?,
            &srv.ns,
            &srv.ifname,
            &[&args[..], &["--cookie-secret-file", &key], extra].concat(),
        )
    }

    /// [`FleetFixture::synguard`] with a loader that sees its machine booted `shift_s` seconds
    /// after the host (`Synguard::start_booted_later`).
    pub fn synguard_booted_later(
        &self,
        srv: &FleetServer,
        key: &Path,
        shift_s: u64,
    ) -> Result<Synguard> {
        let key = key.to_string_lossy();
        let args = ["--ports", "80", "--mode", "always", "--cookies", "own"];
        Synguard::start_booted_later(
            &bin()?,
            &srv.ns,
            &srv.ifname,
            &[&args[..], &["--cookie-secret-file", &key]].concat(),
            shift_s,
        )
    }

    /// `n` connections to the service address, one after another; every one must succeed.
    pub fn batch(&self, v6: bool, n: usize) -> Result<Vec<ConnReport>> {
        let addr = service_addr(v6, PORT);
        traffic::run_batch(&self.fleet.client, addr, n, transfer)?
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.with_context(|| format!("connection {i} to {addr}")))
            .collect()
    }

    /// One connection whose request must not be answered: the handshake's final ACK and the
    /// request go nowhere. The client's connect succeeds (A's SYN-ACK reached it); Ok(true) if
    /// an answer came anyway.
    pub fn probe_answered(&self, v6: bool) -> Result<bool> {
        let addr = service_addr(v6, PORT);
        self.fleet.client.enter(move || probe(addr))?
    }
}

impl Drop for FleetFixture {
    fn drop(&mut self) {
        // A failed test may leave pins on the host's bpffs that only a detach removes.
        if let Ok(bin) = bin() {
            for srv in [&self.fleet.a, &self.fleet.b] {
                let _ = synguard_proc::run_once(
                    &bin,
                    &srv.ns.path(),
                    &["detach", "--iface", &srv.ifname],
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first connection of a batch moves 1 MiB each way, the others 1000 bytes.
pub fn transfer(i: usize) -> Transfer {
    let n = if i == 0 { 1 << 20 } else { 1000 };
    Transfer {
        upload: n,
        download: n,
    }
}

fn probe(addr: SocketAddr) -> Result<bool> {
    let mut s = TcpStream::connect_timeout(&addr, PROBE_WAIT)
        .with_context(|| format!("connect {addr} (A's SYN-ACK)"))?;
    s.set_read_timeout(Some(PROBE_WAIT))?;
    let mut req = [0u8; 16];
    req[8..].copy_from_slice(&1u64.to_be_bytes());
    s.write_all(&req)?;
    let mut b = [0u8; 1];
    let answered = matches!(s.read(&mut b), Ok(1));
    abort(&s)?;
    Ok(answered)
}

/// Closes with a RST (SO_LINGER 0) instead of a FIN: a half-open probe must not retransmit into
/// a later step of the test (where its old cookie might become valid).
fn abort(s: &TcpStream) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    ensure!(rc == 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    Ok(())
}

/// SIGHUP to one `synguard run`, then waits until its log says the key rotated once more.
pub fn reload(sg: &Synguard) -> Result<()> {
    let rotations = |sg: &Synguard| sg.log_text().matches("cookie secret rotated").count();
    let before = rotations(sg);
    kill(
        Pid::from_raw(sg.pid().context("running")? as i32),
        Signal::SIGHUP,
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rotations(sg) == before {
        ensure!(Instant::now() < deadline, "no rotation:\n{}", sg.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
