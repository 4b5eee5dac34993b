//! Legitimate traffic: a real TCP server in the server namespace and clients in the client
//! namespace, both reading TCP_INFO ([`TcpInfo`]) to see which options the handshake negotiated.
//!
//! Protocol: the client sends a 16-byte request (upload length, download length, big endian), then
//! the upload bytes; the server reads them all, sends the download bytes and closes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};

use crate::lab::netns::Netns;
use crate::lab::tcp_info::TcpInfo;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How much one connection moves each way.
#[derive(Clone, Copy, Debug, Default)]
pub struct Transfer {
    pub upload: u64,
    pub download: u64,
}

/// One accepted connection as the server saw it.
#[derive(Clone, Debug)]
pub struct ServerConn {
    pub peer: SocketAddr,
    pub info: TcpInfo,
    pub received: u64,
    pub sent: u64,
    pub error: Option<String>,
}

/// A TCP server listening on the given addresses inside a namespace.
pub struct Server {
    stop: Arc<AtomicBool>,
    /// Outer result: entering the namespace; inner: the accept loop.
    listeners: Vec<JoinHandle<Result<Result<()>>>>,
    conns: Arc<Mutex<Vec<ServerConn>>>,
}

impl Server {
    pub fn start(ns: &Netns, addrs: &[SocketAddr]) -> Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let mut listeners = Vec::new();
        for &addr in addrs {
            let (bound_tx, bound_rx) = mpsc::channel();
            let (stop2, conns2) = (stop.clone(), conns.clone());
            let handle = ns.spawn("lab-listen", move || -> Result<()> {
                let listener = TcpListener::bind(addr).with_context(|| format!("bind {addr}"));
                let listener = match listener {
                    Ok(l) => {
                        let _ = bound_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = bound_tx.send(Err(anyhow!("{e:#}")));
                        return Err(e);
                    }
                };
                accept_loop(listener, &stop2, &conns2)
            })?;
            bound_rx
                .recv()
                .map_err(|_| anyhow!("listener thread for {addr} died"))??;
            listeners.push(handle);
        }
        Ok(Server {
            stop,
            listeners,
            conns,
        })
    }

    /// Connections accepted so far (finished or not).
    pub fn connections(&self) -> Vec<ServerConn> {
        self.conns.lock().expect("server conns lock").clone()
    }

    /// Waits until `n` connections have finished on the server side (a client sees the end of
    /// its download slightly before the server thread records the connection).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<ServerConn>> {
        let deadline = Instant::now() + timeout;
        loop {
            let conns = self.connections();
            if conns.len() >= n {
                return Ok(conns);
            }
            ensure!(
                Instant::now() < deadline,
                "server recorded {} of {n} connections after {timeout:?}",
                conns.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops accepting and returns every connection seen.
    pub fn stop(mut self) -> Vec<ServerConn> {
        self.shutdown();
        self.connections()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for l in self.listeners.drain(..) {
            match l.join() {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e)) | Err(e)) => log::warn!("listener: {e:#}"),
                Err(_) => log::warn!("listener thread panicked"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accepts until `stop`; polls with a short timeout so a stop request is seen promptly.
fn accept_loop(
    listener: TcpListener,
    stop: &AtomicBool,
    conns: &Arc<Mutex<Vec<ServerConn>>>,
) -> Result<()> {
    listener.set_nonblocking(true)?;
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        match listener.accept() {
            Ok((stream, peer)) => {
                let conns = conns.clone();
                std::thread::spawn(move || {
                    let conn = serve(stream, peer);
                    conns.lock().expect("server conns lock").push(conn);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("accept"),
        }
    }
    Ok(())
}

fn serve(stream: TcpStream, peer: SocketAddr) -> ServerConn {
    let mut conn = ServerConn {
        peer,
        info: TcpInfo::of(&stream).unwrap_or_default(),
        received: 0,
        sent: 0,
        error: None,
    };
    if let Err(e) = serve_inner(stream, &mut conn) {
        conn.error = Some(format!("{e:#}"));
    }
    conn
}

fn serve_inner(mut stream: TcpStream, conn: &mut ServerConn) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut req = [0u8; 16];
    stream.read_exact(&mut req).context("reading request")?;
    let upload = u64::from_be_bytes(req[..8].try_into()?);
    let download = u64::from_be_bytes(req[8..].try_into()?);
    conn.received = drain(&mut stream, upload).context("reading upload")?;
    ensure!(
        conn.received == upload,
        "upload ended after {} of {upload} bytes",
        conn.received
    );
    conn.sent = send_pattern(&mut stream, download).context("sending download")?;
    stream.shutdown(Shutdown::Write)?;
    Ok(())
}

/// Reads up to `len` bytes (or to EOF), checking the byte pattern; returns how many arrived.
fn drain(stream: &mut TcpStream, len: u64) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < len {
        let want = buf.len().min((len - got) as usize);
        let n = stream.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            if *b != pattern(got + i as u64) {
                bail!("corrupt byte at offset {}", got + i as u64);
            }
        }
        got += n as u64;
    }
    Ok(got)
}

fn send_pattern(stream: &mut TcpStream, len: u64) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < len {
        let n = buf.len().min((len - sent) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(sent + i as u64);
        }
        stream.write_all(&buf[..n])?;
        sent += n as u64;
    }
    Ok(sent)
}

/// Data bytes are a function of their offset, so corruption or reordering shows.
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// One finished client connection.
#[derive(Clone, Debug)]
pub struct ConnReport {
    pub peer: SocketAddr,
    pub connect_latency: Duration,
    /// TCP_INFO right after the handshake.
    pub info: TcpInfo,
    pub downloaded: u64,
}

/// Connects, transfers and checks the data. Call it on a thread inside the client namespace.
pub fn connect_once(addr: SocketAddr, transfer: Transfer) -> Result<ConnReport> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .with_context(|| format!("connect {addr}"))?;
    let connect_latency = start.elapsed();
    let info = TcpInfo::of(&stream)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let local = stream.local_addr()?;
    // A failure after the handshake says what TCP saw, to tell loss from a stall.
    let diag = |stream: &TcpStream| match TcpInfo::of(stream) {
        Ok(i) => format!("{local} -> {addr}: {}", i.summary()),
        Err(e) => format!("{local} -> {addr}: no TCP_INFO ({e:#})"),
    };
    let mut req = [0u8; 16];
    req[..8].copy_from_slice(&transfer.upload.to_be_bytes());
    req[8..].copy_from_slice(&transfer.download.to_be_bytes());
    stream
        .write_all(&req)
        .with_context(|| format!("sending request ({})", diag(&stream)))?;
    if let Err(e) = send_pattern(&mut stream, transfer.upload) {
        return Err(e.context(format!("uploading ({})", diag(&stream))));
    }
    let downloaded = match drain(&mut stream, u64::MAX) {
        Ok(n) => n,
        Err(e) => return Err(e.context(format!("downloading ({})", diag(&stream)))),
    };
    ensure!(
        downloaded == transfer.download,
        "download ended after {downloaded} of {} bytes",
        transfer.download
    );
    Ok(ConnReport {
        peer: addr,
        connect_latency,
        info,
        downloaded,
    })
}

/// Makes `n` connections one after another from inside `ns`; `transfer(i)` sizes the i-th.
pub fn run_batch<F>(
    ns: &Netns,
    addr: SocketAddr,
    n: usize,
    transfer: F,
) -> Result<Vec<Result<ConnReport>>>
where
    F: Fn(usize) -> Transfer + Send + 'static,
{
    ns.enter(move || (0..n).map(|i| connect_once(addr, transfer(i))).collect())
}

/// What a continuous client saw so far.
#[derive(Clone, Debug, Default)]
pub struct ContinuousStats {
    pub ok: u64,
    pub failed: u64,
    /// Connect latencies of successful connections, in microseconds.
    pub latencies_us: Vec<u64>,
    pub last_error: Option<String>,
}

impl ContinuousStats {
    /// The p-th percentile (0..=100) of the connect latencies, if any.
    pub fn latency_percentile_us(&self, p: f64) -> Option<u64> {
        percentile(&self.latencies_us, p)
    }
}

/// The p-th percentile (nearest rank) of unsorted samples.
pub fn percentile(samples: &[u64], p: f64) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A client that connects again and again (alternating over `addrs`) until stopped.
pub struct Continuous {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<ContinuousStats>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Continuous {
    /// `pause` paces the client (a rate, not a synchronisation).
    pub fn start(ns: &Netns, addrs: Vec<SocketAddr>, pause: Duration) -> Result<Continuous> {
        ensure!(!addrs.is_empty(), "continuous client needs an address");
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(ContinuousStats::default()));
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let transfer = Transfer {
            upload: 1000,
            download: 1000,
        };
        let thread = ns.spawn("lab-client", move || {
            for addr in addrs.iter().cycle() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let result = connect_once(*addr, transfer);
                let mut s = stats2.lock().expect("client stats lock");
                match result {
                    Ok(r) => {
                        s.ok += 1;
                        s.latencies_us.push(r.connect_latency.as_micros() as u64);
                    }
                    Err(e) => {
                        s.failed += 1;
                        s.last_error = Some(format!("{e:#}"));
                    }
                }
                drop(s);
                std::thread::sleep(pause);
            }
        })?;
        Ok(Continuous {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    pub fn snapshot(&self) -> ContinuousStats {
        self.stats.lock().expect("client stats lock").clone()
    }

    /// Stops after the connection in flight and returns the totals.
    pub fn stop(mut self) -> ContinuousStats {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Continuous {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[5, 1, 3], 50.0), Some(3));
        assert_eq!(percentile(&[5, 1, 3], 99.0), Some(5));
        assert_eq!(percentile(&[5, 1, 3], 0.0), Some(1));
    }

    #[test]
    fn pattern_is_offset_based() {
        assert_eq!(pattern(0), 0);
        assert_eq!(pattern(251), 0);
        assert_eq!(pattern(252), 1);
    }
}
