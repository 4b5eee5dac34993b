//! The established connection a run keeps streaming through the flood.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::lab::netns::Netns;

/// The established connection is paced: unpaced it would take a whole core from the flood's
/// receive path. The figure shows whether established traffic keeps flowing at this rate.
pub const BULK_TARGET_MBPS: f64 = 200.0;

/// An established connection that downloads at [`BULK_TARGET_MBPS`] until dropped.
pub struct Bulk {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Result<()>>>>,
}

impl Bulk {
    pub fn start(client: &Netns, addr: SocketAddr, bytes: Arc<AtomicU64>) -> Result<Bulk> {
        let stream = client
            .enter(move || TcpStream::connect_timeout(&addr, Duration::from_secs(5)))?
            .context("connecting the established flow")?;
        let stop = Arc::new(AtomicBool::new(false));
        let (b2, s2) = (bytes, stop.clone());
        let thread = std::thread::Builder::new()
            .name("lab-bulk".into())
            .spawn(move || Ok(stream_paced(stream, &b2, &s2)))?;
        Ok(Bulk {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Bulk {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks the lab server for an endless download and reads it at the target rate.
fn stream_paced(mut s: TcpStream, bytes: &AtomicU64, stop: &AtomicBool) -> Result<()> {
    let mut req = [0u8; 16];
    req[8..].copy_from_slice(&(1u64 << 40).to_be_bytes());
    s.write_all(&req)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    let rate = BULK_TARGET_MBPS * 1e6 / 8.0;
    let start = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if bytes.load(Ordering::Relaxed) as f64 > start.elapsed().as_secs_f64() * rate {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("reading the established flow"),
        }
    }
    Ok(())
}
