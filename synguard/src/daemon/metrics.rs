//! The Prometheus endpoint of `synguard run` (`--metrics-addr`): `GET /metrics` in the text
//! exposition format (`exposition`), read from the pinned maps at scrape time, so it shows
//! exactly what `synguard stats` and `status` show.

use std::{io, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use log::{debug, info, warn};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::daemon::{
    exposition::{read, render, render_reload},
    reload::LastReload,
};

/// A scraper that sends nothing is dropped after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head we read; a GET for /metrics is a few hundred bytes.
const MAX_REQUEST: usize = 8192;

/// An interface's name and its instance's pin directory.
pub type Target = (String, PathBuf);

/// Binds `addr` and serves until the returned task is aborted.
pub async fn spawn(
    addr: SocketAddr,
    ifaces: Vec<Target>,
    last_reload: Arc<LastReload>,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    info!("serving Prometheus metrics on http://{addr}/metrics");
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let (ifaces, last) = (ifaces.clone(), last_reload.clone());
                    tokio::spawn(async move {
                        if let Err(e) = serve(stream, &ifaces, &last).await {
                            debug!("metrics request from {peer}: {e}");
                        }
                    });
                }
                Err(e) => {
                    warn!("metrics listener: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }))
}

async fn serve(mut stream: TcpStream, ifaces: &[Target], last: &LastReload) -> io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request"))??;
    let response = match request_path(&head) {
        Some("/metrics") => {
            let readings = ifaces
                .iter()
                .map(|(i, dir)| (i.as_str(), read(dir)))
                .collect::<Vec<_>>();
            let body = render(&readings) + &render_reload(last.get());
            http("200 OK", "text/plain; version=0.0.4; charset=utf-8", &body)
        }
        Some(_) => http("404 Not Found", "text/plain", "try /metrics\n"),
        None => http("400 Bad Request", "text/plain", "GET only\n"),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The path of a GET request, without a query string.
fn request_path(head: &str) -> Option<&str> {
    let mut parts = head.lines().next()?.split_whitespace();
    (parts.next()? == "GET").then_some(())?;
    parts.next().map(|p| p.split('?').next().unwrap_or(p))
}

fn http(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parsing() {
        assert_eq!(
            request_path("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some("/metrics")
        );
        assert_eq!(
            request_path("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some("/metrics")
        );
        assert_eq!(request_path("POST /metrics HTTP/1.1\r\n\r\n"), None);
        assert_eq!(request_path(""), None);
    }
}
