//! Traffic from the host side of the guest's link (the VM's namespace): bounded hping3 floods
//! spoofing only the test subnet's SPOOF_ADDR, curl fetches, and a tcpdump capture.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::guest;
use super::net;
use super::proc::{self, Bg};

/// A bounded flood: `count` packets, one every `interval_us`, from SPOOF_ADDR. Never
/// `--rand-source` (it spoofs arbitrary public addresses).
#[derive(Clone, Copy)]
pub struct Flood {
    pub flags: &'static str,
    pub port: u16,
    pub count: u64,
    pub interval_us: u64,
}

impl Flood {
    pub fn syn(port: u16, count: u64, interval_us: u64) -> Flood {
        Flood {
            flags: "-S",
            port,
            count,
            interval_us,
        }
    }

    pub fn ack(count: u64, interval_us: u64) -> Flood {
        Flood {
            flags: "-A",
            port: guest::WEB_PORT,
            count,
            interval_us,
        }
    }

    fn name(&self) -> &'static str {
        if self.flags == "-S" { "SYN" } else { "ACK" }
    }

    /// Starts hping3 in the background; `Bg::wait` bounds it by its own planned duration.
    pub fn start(&self) -> Result<Bg> {
        let mut cmd = net::in_ns("hping3");
        cmd.arg(self.flags)
            .args(["-p", &self.port.to_string()])
            .args(["-a", net::SPOOF_ADDR])
            .args(["-i", &format!("u{}", self.interval_us)])
            .args(["-c", &self.count.to_string()])
            .arg("-q")
            .arg(net::GUEST_ADDR)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        eprintln!(
            "vm: {} flood: {} packets from {} to {}:{}, one per {} us",
            self.name(),
            self.count,
            net::SPOOF_ADDR,
            net::GUEST_ADDR,
            self.port,
            self.interval_us
        );
        Bg::spawn(&format!("hping3 {} flood", self.name()), &mut cmd)
    }

    /// Planned duration plus slack: hping3 stops after `count` packets.
    pub fn timeout(&self) -> Duration {
        Duration::from_micros(self.count * self.interval_us) * 3 + Duration::from_secs(30)
    }

    pub fn run(&self) -> Result<()> {
        let t = self.timeout();
        self.start()?.wait(t)?;
        Ok(())
    }
}

/// One HTTP GET from the host side; Ok(body) on a 200.
pub fn fetch(port: u16, timeout_s: u32) -> Result<String> {
    let url = format!("http://{}:{port}/", net::GUEST_ADDR);
    proc::checked_bounded(
        net::in_ns("curl").args(["-sf", "-m", &timeout_s.to_string(), &url]),
        Duration::from_secs(u64::from(timeout_s) + 10),
    )
    .with_context(|| format!("fetching {url}"))
}

/// curl fetches in a loop on a thread until stopped: (tried, succeeded).
pub struct FetchLoop {
    stop: Arc<AtomicBool>,
    tried: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl FetchLoop {
    pub fn start(pause: Duration) -> FetchLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let tried = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let (s, t, o) = (stop.clone(), tried.clone(), ok.clone());
        let handle = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) && proc::check_interrupted().is_ok() {
                t.fetch_add(1, Ordering::SeqCst);
                if fetch(guest::WEB_PORT, 10).is_ok() {
                    o.fetch_add(1, Ordering::SeqCst);
                }
                thread::sleep(pause);
            }
        });
        FetchLoop {
            stop,
            tried,
            ok,
            handle: Some(handle),
        }
    }

    /// Stops after the fetch in flight and returns (tried, succeeded).
    pub fn finish(mut self) -> (u64, u64) {
        self.halt();
        (
            self.tried.load(Ordering::SeqCst),
            self.ok.load(Ordering::SeqCst),
        )
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for FetchLoop {
    fn drop(&mut self) {
        self.halt();
    }
}

/// tcpdump writing every TCP frame on the tap to a pcap file, stopped by PID.
pub struct Capture {
    bg: Bg,
    pub file: PathBuf,
}

impl Capture {
    pub fn start(dir: &Path) -> Result<Capture> {
        let file = dir.join("tap.pcap");
        let err = dir.join("tcpdump.err");
        let _ = std::fs::remove_file(&file);
        let mut cmd = net::in_ns("tcpdump");
        cmd.args(["-i", net::TAP, "-n", "-U", "-s", "256", "-w"])
            .arg(&file)
            .arg("tcp")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).context("creating tcpdump's log")?);
        let bg = Bg::spawn("tcpdump", &mut cmd)?;
        proc::wait_for(
            "tcpdump to listen",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let text = std::fs::read_to_string(&err).unwrap_or_default();
                Ok(text.contains("listening on").then_some(()))
            },
        )?;
        Ok(Capture { bg, file })
    }

    /// Stops tcpdump (it flushes on SIGTERM) and returns the capture's bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        self.bg.stop()?;
        std::fs::read(&self.file).with_context(|| format!("reading {}", self.file.display()))
    }
}

/// Sends raw Ethernet frames out of the tap (AF_PACKET, from the VM's namespace): for frames
/// hping3 cannot make. The system python's standard library is enough.
pub fn send_frames(frames: &[Vec<u8>]) -> Result<()> {
    const SEND_PY: &str = "import socket, sys\n\
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
        s.bind((sys.argv[1], 0))\n\
        for h in sys.argv[2:]:\n    s.send(bytes.fromhex(h))\n";
    let hex: Vec<String> = frames
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    proc::checked_bounded(
        net::in_ns("/usr/bin/python3")
            .args(["-c", SEND_PY, net::TAP])
            .args(&hex),
        Duration::from_secs(30),
    )
    .context("sending raw frames from the VM's namespace")?;
    Ok(())
}
