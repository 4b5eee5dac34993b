//! What runs in the guest: synguard itself (started, signalled, read), the web server, the
//! TCP_INFO server, and the guest's own counters (interface, TCP stack, XDP state of eth0).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::net;
use super::proc;
use super::ssh::Guest;

pub const IFACE: &str = "eth0";
pub use super::ssh::SYNGUARD_PATH as BIN;
pub const WEB_PORT: u16 = 80;
pub const INFO_PORT: u16 = 8080;
const INFO_SERVER: &str = "/root/tcpinfo_server.py";
const SHORT: Duration = Duration::from_secs(60);
/// Loading and verifying the program under software emulation took ~30 s on an idle host.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(360);

/// Answers each connection with the accepted socket's TCP_INFO as JSON (an HTTP/1.0 reply):
/// `ss` on this guest does not print the negotiated options, TCP_INFO does
/// (`struct tcp_info` in include/uapi/linux/tcp.h: byte 5 tcpi_options, byte 6 the send
/// window scale in the low and the receive window scale in the high nibble).
const INFO_SERVER_PY: &str = r#"import json, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", PORT))
s.listen(128)
while True:
    c, peer = s.accept()
    try:
        c.settimeout(10)
        c.recv(4096)
        info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        opts, ws = info[5], info[6]
        body = json.dumps({"peer": peer[0], "port": peer[1], "options": opts,
                           "snd_wscale": ws & 15, "rcv_wscale": ws >> 4})
        c.sendall(("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
    except OSError:
        pass
    finally:
        c.close()
"#;

/// Copies synguard in, starts the web and TCP_INFO servers, and gives the guest a permanent
/// neighbour entry for the spoofed source (its SYN-ACKs then leave at once instead of waiting
/// for ARP nobody answers).
pub fn prepare(g: &Guest, synguard: &Path) -> Result<()> {
    g.copy_in(synguard, BIN)?;
    g.write_file(
        INFO_SERVER,
        &INFO_SERVER_PY.replace("PORT", &INFO_PORT.to_string()),
    )?;
    let mac = net::tap_mac()?;
    g.run(
        &format!(
            "chmod 755 {BIN} && ip neigh replace {spoof} lladdr {mac} dev {IFACE} nud permanent \
             && mkdir -p /srv/www && head -c 2048 /dev/urandom | base64 > /srv/www/index.html \
             && (nohup python3 -m http.server {WEB_PORT} --directory /srv/www >/root/web.log 2>&1 \
             </dev/null &) && (nohup python3 {INFO_SERVER} >/root/info.log 2>&1 </dev/null &)",
            spoof = net::SPOOF_ADDR
        ),
        SHORT,
    )?;
    proc::wait_for(
        "the guest's servers to listen",
        SHORT,
        Duration::from_secs(1),
        || {
            let out = g.run("ss -ltnH", SHORT)?;
            let listening = |p: u16| out.contains(&format!(":{p} "));
            Ok((listening(WEB_PORT) && listening(INFO_PORT)).then_some(()))
        },
    )
}

/// The guest's eth0 XDP state as `ip link` shows it.
#[derive(Debug, PartialEq)]
pub enum XdpState {
    None,
    Native,
    Generic,
}

pub fn xdp_state(g: &Guest) -> Result<XdpState> {
    xdp_state_of(g, IFACE)
}

/// The XDP state of the guest's interface `dev`.
pub fn xdp_state_of(g: &Guest, dev: &str) -> Result<XdpState> {
    let out = g.run(&format!("ip link show dev {dev}"), SHORT)?;
    Ok(if out.contains("xdpgeneric") {
        XdpState::Generic
    } else if out.contains("prog/xdp") {
        XdpState::Native
    } else {
        XdpState::None
    })
}

/// A `synguard run` in the guest, known by its PID and log file.
pub struct Run {
    pub pid: u32,
    pub log: String,
}

/// Starts `synguard run` in the background and waits for its attach line (fresh or take-over).
pub fn start_synguard(g: &Guest, label: &str) -> Result<Run> {
    start_synguard_on(g, label, IFACE)
}

/// [`start_synguard`] on the guest's interface `iface`.
pub fn start_synguard_on(g: &Guest, label: &str, iface: &str) -> Result<Run> {
    let log = format!("/root/synguard-{label}.log");
    let out = g.run(
        &format!(
            "RUST_LOG=info,synguard::datapath::load=debug nohup {BIN} run --iface {iface} \
             --ports {WEB_PORT},{INFO_PORT} --mode always >{log} 2>&1 </dev/null & echo $!"
        ),
        SHORT,
    )?;
    let pid: u32 = out.trim().parse().with_context(|| format!("pid {out:?}"))?;
    let run = Run { pid, log };
    proc::wait_for(
        "synguard to attach in the guest",
        ATTACH_TIMEOUT,
        Duration::from_secs(2),
        || {
            let text = g.run(&format!("cat {}", run.log), SHORT)?;
            if text.contains("synguard attached to") || text.contains("synguard replaced") {
                return Ok(Some(()));
            }
            if !alive(g, pid)? {
                bail!("synguard exited in the guest:\n{text}");
            }
            Ok(None)
        },
    )?;
    Ok(run)
}

fn alive(g: &Guest, pid: u32) -> Result<bool> {
    Ok(g.try_run(&format!("kill -0 {pid}"), SHORT)?.0 == 0)
}

impl Run {
    pub fn log_text(&self, g: &Guest) -> Result<String> {
        g.run(&format!("cat {}", self.log), SHORT)
    }

    /// Sends `signal` (e.g. TERM, USR1, KILL) and waits until the process is gone.
    pub fn signal_and_wait(&self, g: &Guest, signal: &str) -> Result<()> {
        g.run(&format!("kill -{signal} {}", self.pid), SHORT)?;
        proc::wait_for(
            "synguard to exit in the guest",
            SHORT,
            Duration::from_secs(1),
            || Ok((!alive(g, self.pid)?).then_some(())),
        )
    }
}

/// One `synguard stats --json` sample.
pub fn stats(g: &Guest) -> Result<Value> {
    stats_of(g, IFACE)
}

/// [`stats`] of the instance on the guest's interface `iface`.
pub fn stats_of(g: &Guest, iface: &str) -> Result<Value> {
    let out = g.run(
        &format!("{BIN} stats --iface {iface} --json --count 1"),
        SHORT,
    )?;
    let line = out.lines().last().context("no stats line")?;
    serde_json::from_str(line).with_context(|| format!("stats line {line:?}"))
}

/// A verdict counter (packets) from a stats sample; absent counts as 0.
pub fn verdict(stats: &Value, reason: &str) -> u64 {
    stats["verdicts"][reason]["packets"].as_u64().unwrap_or(0)
}

/// An event counter (total) from a stats sample; absent counts as 0.
pub fn event(stats: &Value, name: &str) -> u64 {
    stats["events"][name]["total"].as_u64().unwrap_or(0)
}

/// The verdict and event counters that differ between two stats samples, "name +n" joined by
/// ", ".
pub fn counters_moved(before: &Value, after: &Value) -> String {
    let count = |v: &Value, group: &str, name: &str, field: &str| {
        v[group][name][field].as_u64().unwrap_or(0)
    };
    let mut moved = Vec::new();
    for (group, field) in [("verdicts", "packets"), ("events", "total")] {
        let Some(names) = after[group].as_object() else {
            continue;
        };
        for name in names.keys() {
            let d =
                count(after, group, name, field).saturating_sub(count(before, group, name, field));
            if d > 0 {
                moved.push(format!("{name} +{d}"));
            }
        }
    }
    if moved.is_empty() {
        "none".into()
    } else {
        moved.join(", ")
    }
}

/// The guest's TCP stack counters (`/proc/net/snmp` and `/proc/net/netstat`), as
/// "Group:Name" -> value, and eth0's rx/tx packet counts as "eth0:rx", "eth0:tx".
pub fn counters(g: &Guest) -> Result<HashMap<String, u64>> {
    let out = g.run(
        &format!(
            "cat /proc/net/snmp /proc/net/netstat; echo eth0:rx $(cat \
             /sys/class/net/{IFACE}/statistics/rx_packets); echo eth0:tx $(cat \
             /sys/class/net/{IFACE}/statistics/tx_packets)"
        ),
        SHORT,
    )?;
    Ok(parse_counters(&out))
}

/// Parses the header/value line pairs of /proc/net/snmp and /proc/net/netstat.
fn parse_counters(text: &str) -> HashMap<String, u64> {
    let mut map = HashMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.windows(2) {
        let (h, v) = (pair[0], pair[1]);
        let (Some((hg, names)), Some((vg, values))) = (h.split_once(": "), v.split_once(": "))
        else {
            continue;
        };
        if hg != vg
            || names
                .split_whitespace()
                .next()
                .is_some_and(|n| n.parse::<u64>().is_ok())
        {
            continue;
        }
        for (n, val) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(x) = val.parse() {
                map.insert(format!("{hg}:{n}"), x);
            }
        }
    }
    for l in lines {
        if let Some(rest) = l.strip_prefix("eth0:")
            && let Some((k, v)) = rest.split_once(' ')
            && let Ok(x) = v.trim().parse()
        {
            map.insert(format!("eth0:{k}"), x);
        }
    }
    map
}

/// `after - before` for one counter.
/// The guest's TCP counters that grew, "Group:Name +n" joined by ", ".
pub fn tcp_moved(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> String {
    let mut moved: Vec<String> = after
        .keys()
        .filter(|k| k.starts_with("Tcp") && delta(before, after, k) > 0)
        .map(|k| format!("{k} +{}", delta(before, after, k)))
        .collect();
    moved.sort();
    moved.join(", ")
}

pub fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, key: &str) -> u64 {
    after
        .get(key)
        .copied()
        .unwrap_or(0)
        .saturating_sub(before.get(key).copied().unwrap_or(0))
}

/// Guest kernel lines about virtio-net and XDP (queue shortage, offloads).
pub fn driver_messages(g: &Guest) -> Result<String> {
    let (_, out, _) = g.try_run(
        "dmesg | grep -iE 'xdp|virtio_net|virtio-net' | tail -20",
        SHORT,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_counters;

    #[test]
    fn parses_snmp_pairs() {
        let t = "Tcp: RtoAlgorithm InSegs\nTcp: 1 42\nTcpExt: SyncookiesSent SyncookiesRecv\n\
                 TcpExt: 3 4\neth0:rx 99\n";
        let m = parse_counters(t);
        assert_eq!(m["Tcp:InSegs"], 42);
        assert_eq!(m["TcpExt:SyncookiesRecv"], 4);
        assert_eq!(m["eth0:rx"], 99);
        assert_eq!(m.len(), 5);
    }
}
