//! The Prometheus endpoint of `synguard run` (`--metrics-addr`): `GET /metrics` in the text
//! exposition format, read from the pinned maps at scrape time, so it shows exactly what
//! `synguard stats` shows. Labels are interface, reason and verdict only: never a source address.

use std::{fmt::Write as _, io, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use log::{debug, info, warn};
use synguard_common::reason::{Event, REASONS, Verdict};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::{
    daemon::reload::LastReload,
    datapath::counters::{self, Sample},
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
            let samples = ifaces
                .iter()
                .map(|(i, dir)| (i.as_str(), counters::read_sample(dir).ok()))
                .collect::<Vec<_>>();
            let body = render(&samples) + &render_reload(last.get());
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

fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Tx => "tx",
        Verdict::Drop => "drop",
    }
}

/// One metric family: HELP and TYPE once, then a line per (labels, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, lines: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in lines {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// A family with one value per interface.
type PerIface = (&'static str, &'static str, &'static str, fn(&Sample) -> u64);

/// The per-interface families before the per-port one.
const COUNTS: [PerIface; 3] = [
    (
        "synguard_cookies_sent_total",
        "counter",
        "SYN-ACKs with a SYN cookie sent from XDP.",
        |s| s.event(Event::CookieSent),
    ),
    (
        "synguard_cookies_accepted_total",
        "counter",
        "Handshake ACKs whose cookie was valid (connections handed to the kernel).",
        |s| s.event(Event::CookieAckAccepted),
    ),
    (
        "synguard_syns_protected_total",
        "counter",
        "SYNs to protected ports (the input of flood detection).",
        |s| s.event(Event::SynProtected),
    ),
];

/// The per-interface families after the per-port one.
const STATE: [PerIface; 3] = [
    (
        "synguard_mode_switches_total",
        "counter",
        "Auto mode switches of cookies on or off.",
        |s| s.mode_state.switches,
    ),
    (
        "synguard_cookies_active",
        "gauge",
        "1 while SYNs to protected ports are answered with cookies.",
        |s| s.cookies_active as u64,
    ),
    (
        "synguard_syn_rate_per_second",
        "gauge",
        "SYNs per second to protected ports over the last closed 100 ms window.",
        |s| s.mode_state.last_rate_pps,
    ),
];

fn per_iface(out: &mut String, ok: &[(&str, &Sample)], families: &[PerIface]) {
    for (name, kind, help, value) in families {
        let lines: Vec<_> = ok
            .iter()
            .map(|(i, s)| (format!("iface=\"{i}\""), value(s)))
            .collect();
        family(out, name, kind, help, &lines);
    }
}

fn per_reason(ok: &[(&str, &Sample)], bytes: bool) -> Vec<(String, u64)> {
    ok.iter()
        .flat_map(|(i, s)| {
            REASONS.iter().map(move |&r| {
                let c = s.counter(r);
                let labels = format!(
                    "iface=\"{i}\",reason=\"{}\",verdict=\"{}\"",
                    r.name(),
                    verdict_label(r.verdict())
                );
                (labels, if bytes { c.bytes } else { c.packets })
            })
        })
        .collect()
}

fn per_port(ok: &[(&str, &Sample)]) -> Vec<(String, u64)> {
    ok.iter()
        .flat_map(|(i, s)| {
            s.port_syns
                .iter()
                .map(move |(p, n)| (format!("iface=\"{i}\",port=\"{p}\""), *n))
        })
        .collect()
}

fn per_mode(ok: &[(&str, &Sample)]) -> Vec<(String, u64)> {
    ok.iter()
        .flat_map(|(i, s)| {
            ["auto", "always"].into_iter().map(move |m| {
                let labels = format!("iface=\"{i}\",mode=\"{m}\"");
                (labels, (s.mode_name() == m) as u64)
            })
        })
        .collect()
}

/// The exposition text for every interface; an interface whose maps cannot be read shows only
/// as `synguard_up 0`. Pure, so the format is unit-tested.
pub fn render(samples: &[(&str, Option<Sample>)]) -> String {
    let mut out = String::new();
    let up: Vec<_> = samples
        .iter()
        .map(|(i, s)| (format!("iface=\"{i}\""), s.is_some() as u64))
        .collect();
    let up_help = "1 if the interface's pinned maps could be read.";
    family(&mut out, "synguard_up", "gauge", up_help, &up);
    let ok: Vec<(&str, &Sample)> = samples
        .iter()
        .filter_map(|(i, s)| s.as_ref().map(|s| (*i, s)))
        .collect();
    let help = "Packets the XDP program handled, by reason and verdict.";
    family(
        &mut out,
        "synguard_packets_total",
        "counter",
        help,
        &per_reason(&ok, false),
    );
    let help = "Bytes of the packets the XDP program handled, by reason and verdict.";
    family(
        &mut out,
        "synguard_bytes_total",
        "counter",
        help,
        &per_reason(&ok, true),
    );
    per_iface(&mut out, &ok, &COUNTS);
    let help = "SYNs per protected port.";
    family(
        &mut out,
        "synguard_port_syns_total",
        "counter",
        help,
        &per_port(&ok),
    );
    per_iface(&mut out, &ok, &STATE);
    let help = "The configured cookie mode (1 for the one in effect).";
    family(&mut out, "synguard_mode", "gauge", help, &per_mode(&ok));
    let version = [(format!("version=\"{}\"", env!("CARGO_PKG_VERSION")), 1)];
    let help = "Always 1; the labels say which synguard is running.";
    family(&mut out, "synguard_build_info", "gauge", help, &version);
    out
}

/// The process's reload families (one value each, no labels): whether the last reload (or the
/// start) succeeded, and when.
const RELOAD: [(&str, &str); 2] = [
    (
        "synguard_config_last_reload_successful",
        "1 if the last configuration reload (or the start) was applied, 0 if it was refused.",
    ),
    (
        "synguard_config_last_reload_timestamp_seconds",
        "Unix time of the last configuration reload (or the start), applied or refused.",
    ),
];

/// The reload families for (successful, unix seconds). Pure, so the format is unit-tested.
pub fn render_reload((ok, unix_s): (bool, u64)) -> String {
    let mut out = String::new();
    for ((name, help), value) in RELOAD.iter().zip([ok as u64, unix_s]) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use synguard_common::{
        maps::{Counter, MODE_ALWAYS, ModeState},
        reason::{EVENT_SLOTS, REASON_SLOTS, Reason},
    };

    fn sample() -> Sample {
        let mut verdicts = vec![Counter::default(); REASON_SLOTS as usize];
        verdicts[Reason::TxSynAckCookie as usize] = Counter {
            packets: 7,
            bytes: 420,
        };
        let mut events = vec![0; EVENT_SLOTS as usize];
        events[Event::CookieSent as usize] = 7;
        Sample {
            iface: "eth0".into(),
            time_ns: 1,
            mode: MODE_ALWAYS,
            cookies_active: true,
            mode_state: ModeState {
                switches: 3,
                ..Default::default()
            },
            verdicts,
            events,
            port_syns: [(80, 9)].into(),
        }
    }

    #[test]
    fn renders_counters_with_interface_reason_and_verdict() {
        let text = render(&[("eth0", Some(sample())), ("eth1", None)]);
        assert!(text.contains(
            "synguard_packets_total{iface=\"eth0\",reason=\"tx_synack_cookie\",verdict=\"tx\"} 7\n"
        ));
        assert!(text.contains(
            "synguard_bytes_total{iface=\"eth0\",reason=\"tx_synack_cookie\",verdict=\"tx\"} 420\n"
        ));
        assert!(text.contains("synguard_cookies_sent_total{iface=\"eth0\"} 7\n"));
        assert!(text.contains("synguard_mode_switches_total{iface=\"eth0\"} 3\n"));
        assert!(text.contains("synguard_mode{iface=\"eth0\",mode=\"always\"} 1\n"));
        assert!(text.contains("synguard_up{iface=\"eth1\"} 0\n"));
        assert!(
            !text.contains("iface=\"eth1\",reason"),
            "unreadable iface has no counters"
        );
        // Each family is described exactly once.
        assert_eq!(
            text.matches("# TYPE synguard_packets_total counter")
                .count(),
            1
        );
    }

    #[test]
    fn renders_the_last_reload() {
        let text = render_reload((false, 1_700_000_000));
        assert!(text.contains("\nsynguard_config_last_reload_successful 0\n"));
        assert!(text.contains("\nsynguard_config_last_reload_timestamp_seconds 1700000000\n"));
        assert_eq!(text.matches("# TYPE").count(), 2);
    }

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
