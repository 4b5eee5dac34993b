//! An echo service in a lab namespace and the client side of it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use synguard_lab::lab::netns::Netns;

/// Echoes every chunk back on every connection accepted on `addr`, in `ns`.
pub fn echo_server(ns: &Netns, addr: SocketAddr) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    let name = format!("echo-{}", addr.port());
    // The thread blocks in accept until the namespace goes with the lab.
    drop(ns.spawn(&name, move || -> Result<()> {
        let listener = TcpListener::bind(addr)?;
        tx.send(()).ok();
        for conn in listener.incoming() {
            let mut conn = conn?;
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(())
    })?);
    rx.recv_timeout(Duration::from_secs(5))
        .with_context(|| format!("echo server on {addr} did not start"))
}

/// One message and its echo, within the stream's read timeout.
pub fn round_trip(conn: &mut TcpStream, i: usize) -> Result<()> {
    let msg = format!("ping {i:04} {}", "x".repeat(100));
    conn.write_all(msg.as_bytes())?;
    let mut back = vec![0u8; msg.len()];
    conn.read_exact(&mut back)
        .with_context(|| format!("echo {i} did not come back"))?;
    ensure!(back == msg.as_bytes(), "echo {i} garbled");
    Ok(())
}

pub fn connect(to: SocketAddr) -> Result<TcpStream> {
    let conn = TcpStream::connect_timeout(&to, Duration::from_secs(3))
        .with_context(|| format!("connect to {to}"))?;
    conn.set_read_timeout(Some(Duration::from_millis(800)))?;
    Ok(conn)
}
