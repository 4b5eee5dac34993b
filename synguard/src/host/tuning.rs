//! The host checks behind `synguard doctor`. The third classic defence against SYN floods,
//! after cookies and filtering, is tuning the host: the TCP settings that bound the half-open
//! and accept queues, the listener backlogs of the protected ports, the interface driver's XDP
//! support and the kernel features synguard needs. Each finding comes with the recommended value
//! and why; `apply` sets the sysctls.

use std::{fmt, path::Path, process::Command};

use serde::Serialize;

use crate::host::{
    addrs::{Held, LocalAddrs},
    facts::reverse_path_plan,
    netfilter::InputFilter,
    nic,
    sysctl::{SYNCOOKIES, Sysctls, TIMESTAMPS},
};

/// How a sysctl value is judged.
#[derive(Clone, Copy, Debug)]
enum Want {
    AtLeast(u64),
    AtMost(u64),
    OneOf(&'static [u64], u64),
}

impl Want {
    fn ok(self, v: u64) -> bool {
        match self {
            Want::AtLeast(n) => v >= n,
            Want::AtMost(n) => v <= n,
            Want::OneOf(set, _) => set.contains(&v),
        }
    }

    /// The value `--apply` writes.
    fn target(self) -> u64 {
        match self {
            Want::AtLeast(n) | Want::AtMost(n) => n,
            Want::OneOf(_, t) => t,
        }
    }
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Want::AtLeast(n) => write!(f, ">= {n}"),
            Want::AtMost(n) => write!(f, "<= {n}"),
            Want::OneOf(set, _) => {
                let s: Vec<String> = set.iter().map(u64::to_string).collect();
                write!(f, "{}", s.join(" or "))
            }
        }
    }
}

const SYSCTL_RULES: [(&str, Want, &str); 5] = [
    (
        SYNCOOKIES,
        Want::OneOf(&[1, 2], 1),
        "kernel cookies when a SYN queue overflows: the last line of defence when synguard is not \
         attached (with the kernel's cookies synguard sets 2 while it sends them; its own cookies \
         need it not 0 and change nothing)",
    ),
    (
        TIMESTAMPS,
        Want::OneOf(&[1, 2], 1),
        "timestamps carry window scaling and SACK through a kernel cookie; off, its connections \
         lose them (with the kernel's cookies synguard sets 2 while attached; its own cookies \
         carry them without timestamps)",
    ),
    (
        "net.ipv4.tcp_max_syn_backlog",
        Want::AtLeast(4096),
        "half-open connections a listener may hold before it overflows: room for bursts while \
         auto mode has not switched cookies on",
    ),
    (
        "net.core.somaxconn",
        Want::AtLeast(4096),
        "the cap on every listen() backlog: completed handshakes, cookie ones included, wait \
         there until the application accepts them",
    ),
    (
        "net.ipv4.tcp_synack_retries",
        Want::AtMost(2),
        "with the default 5, a half-open connection from a spoofed source lingers ~63 s; with 2, \
         ~7 s",
    ),
];

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub current: String,
    pub recommended: String,
    pub ok: bool,
    pub why: String,
    /// The sysctl `--apply` would write, and its value.
    #[serde(skip)]
    pub apply: Option<(&'static str, u64)>,
}

/// The sysctl findings.
pub fn sysctl_findings(sysctls: &Sysctls) -> Vec<Finding> {
    SYSCTL_RULES
        .iter()
        .map(|&(name, want, why)| {
            let current = sysctls.read_u64(name);
            let ok = current.as_ref().is_ok_and(|&v| want.ok(v));
            Finding {
                check: name.to_string(),
                current: match &current {
                    Ok(v) => v.to_string(),
                    Err(e) => format!("unreadable ({e})"),
                },
                recommended: want.to_string(),
                ok,
                why: why.to_string(),
                apply: (!ok && current.is_ok()).then_some((name, want.target())),
            }
        })
        .collect()
}

/// A listening socket as `ss -ltnH` prints it: (local port, backlog limit, queued now). For a
/// listener, ss shows the accept queue's length as Recv-Q and its limit as Send-Q.
pub fn parse_listeners(ss: &str) -> Vec<(u16, u32, u32)> {
    ss.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (queued, limit, local) = match cols.as_slice() {
                [_state, recv, send, local, ..] => (recv, send, local),
                _ => return None,
            };
            let port = local.rsplit_once(':')?.1.parse().ok()?;
            Some((port, limit.parse().ok()?, queued.parse().ok()?))
        })
        .collect()
}

/// Backlog findings for the protected ports, from `ss` (iproute2): only the socket diagnostics
/// interface exposes a listener's backlog limit.
pub fn listener_findings(ports: &[u16], ss_output: &str) -> Vec<Finding> {
    let listeners = parse_listeners(ss_output);
    ports
        .iter()
        .map(|&port| {
            let mine: Vec<&(u16, u32, u32)> =
                listeners.iter().filter(|(p, _, _)| *p == port).collect();
            let check = format!("listen backlog, port {port}");
            if mine.is_empty() {
                return Finding {
                    check,
                    current: "no listener".into(),
                    recommended: ">= 1024".into(),
                    ok: false,
                    why: "nothing listens on this protected port here: cookie handshakes would \
                          be reset"
                        .into(),
                    apply: None,
                };
            }
            let limit = mine.iter().map(|(_, l, _)| *l).min().unwrap_or(0);
            Finding {
                check,
                current: limit.to_string(),
                recommended: ">= 1024".into(),
                ok: limit >= 1024,
                why: "the application's listen() backlog (capped by somaxconn): under a flood \
                      every real handshake completes at once and queues there"
                    .into(),
                apply: None,
            }
        })
        .collect()
}

/// Drivers with native (driver-mode) XDP in mainline Linux; anything else runs in generic mode,
/// which still works but costs an skb per packet.
const NATIVE_XDP_DRIVERS: &[&str] = &[
    "veth",
    "virtio_net",
    "tun",
    "mlx5_core",
    "mlx4_en",
    "i40e",
    "ice",
    "ixgbe",
    "ixgbevf",
    "igb",
    "igc",
    "bnxt_en",
    "ena",
    "nfp",
    "qede",
    "thunder-nicvf",
    "mvneta",
    "mvpp2",
    "stmmac",
    "fec",
    "hv_netvsc",
    "xen-netfront",
    "atlantic",
    "lan743x",
    "sfc",
    "gve",
    "idpf",
    "octeontx2-nicpf",
    "enetc",
    "dpaa2-eth",
    "bonding",
    "netdevsim",
];

pub fn driver_finding(iface: &str, driver: Result<String, std::io::Error>) -> Finding {
    let (current, ok) = match &driver {
        Ok(d) => (d.clone(), NATIVE_XDP_DRIVERS.contains(&d.as_str())),
        Err(e) => (format!("unknown ({e})"), false),
    };
    Finding {
        check: format!("XDP driver, {iface}"),
        current,
        recommended: "a driver with native XDP".into(),
        ok,
        why: "native XDP runs before the kernel allocates anything; other drivers fall back to \
              generic XDP (synguard logs which mode it got)"
            .into(),
        apply: None,
    }
}

/// Kernel prerequisites: the release that has the raw cookie helpers, BTF and bpffs.
pub fn kernel_findings(release: &str, btf: bool, bpffs: bool) -> Vec<Finding> {
    let version: Vec<u32> = release
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    let new_enough = matches!(version.as_slice(), [major, _] if *major >= 6)
        || matches!(version.as_slice(), [major] if *major >= 6);
    vec![
        Finding {
            check: "kernel".into(),
            current: release.to_string(),
            recommended: ">= 6.0".into(),
            ok: new_enough,
            why: "bpf_tcp_raw_gen_syncookie_ipv4/6 and their checks came in Linux 6.0".into(),
            apply: None,
        },
        Finding {
            check: "kernel BTF".into(),
            current: if btf { "present" } else { "missing" }.into(),
            recommended: "present".into(),
            ok: btf,
            why: "/sys/kernel/btf/vmlinux lets the loader check helper support up front".into(),
            apply: None,
        },
        Finding {
            check: "bpffs".into(),
            current: if bpffs { "mounted" } else { "not mounted" }.into(),
            recommended: "mounted at /sys/fs/bpf".into(),
            ok: bpffs,
            why: "state other synguard commands read is pinned there (synguard mounts it when \
                  it can)"
                .into(),
            apply: None,
        },
    ]
}

/// The reverse-path filter as the program applies it (`host::reverse_path`).
fn reverse_path_finding(iface: &str, sysctls: &Sysctls) -> Finding {
    let check = reverse_path_plan(iface, sysctls).check;
    Finding {
        check: format!("rp_filter, {iface}"),
        current: check.mode.to_string(),
        recommended: "any; synguard follows 0, 1 and 2 without policy routing".into(),
        ok: !check.is_unchecked(),
        why: check
            .text()
            .unwrap_or_else(|| "off: the kernel checks no reverse path, nor does synguard".into()),
        apply: None,
    }
}

/// The host's own addresses as the program would hold them for `iface`: a warning where a
/// family is not known on a NIC (more entries than the program's table holds, or the list
/// could not be read), since every destination then counts as the host's, forwarded traffic's
/// too.
fn addresses_finding(iface: &str) -> Finding {
    let loopback = nic::hw_addr(iface).is_ok_and(|(_, lo)| lo);
    let (addrs, _) = LocalAddrs::read(iface, loopback);
    let (v4, v6) = (addrs.held(false), addrs.held(true));
    let known = loopback || (v4 != Held::Unknown && v6 != Held::Unknown);
    let (v4, v6) = (v4.text(), v6.text());
    Finding {
        check: format!("host addresses, {iface}"),
        current: if v4 == v6 {
            format!("both {v4}")
        } else {
            format!("IPv4 {v4}, IPv6 {v6}")
        },
        recommended: "known".into(),
        ok: known,
        why: if loopback {
            "a loopback device: every destination is the host's".into()
        } else {
            format!(
                "segments to protected ports are the host's when addressed to {}; others pass \
                 as forwarded traffic",
                addrs.text()
            )
        },
        apply: None,
    }
}

/// The host's packet filter on the way in, and what its rules mean for synguard, which answers
/// SYNs before they see them (`host::netfilter`). Not a warning: whether the rules' source
/// restrictions are mirrored in synguard's lists cannot be told from here, and a check that
/// stays failing once it is dealt with would stop every provisioning run on a host with a
/// firewall (`run` warns at attach).
fn netfilter_finding() -> Finding {
    let (current, why) = match InputFilter::read() {
        Ok(f) => match f.text() {
            Some(text) => (
                "drops or rejects".to_string(),
                format!("{text}: {}", InputFilter::ADVICE),
            ),
            None => (
                "accepts".into(),
                "no rule on the way in drops or rejects".into(),
            ),
        },
        Err(e) => (
            "not read".into(),
            format!("nftables could not be asked ({e}): nothing filters through it"),
        ),
    };
    Finding {
        check: "netfilter input".into(),
        current,
        recommended: "mirrored in synguard's lists".into(),
        ok: true,
        why,
        apply: None,
    }
}

/// Runs every check for `ports` on `iface` (if given).
pub fn examine(iface: Option<&str>, ports: &[u16]) -> Vec<Finding> {
    let sysctls = Sysctls::default();
    let mut out = sysctl_findings(&sysctls);
    if !ports.is_empty() {
        let ss = Command::new("ss")
            .args(["-ltnH"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.extend(listener_findings(ports, &ss));
    }
    if let Some(iface) = iface {
        out.push(driver_finding(iface, nic::driver(iface)));
        out.push(reverse_path_finding(iface, &sysctls));
        out.push(addresses_finding(iface));
    }
    out.push(netfilter_finding());
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    out.extend(kernel_findings(
        release.trim(),
        Path::new("/sys/kernel/btf/vmlinux").exists(),
        crate::host::bpffs::is_bpffs(Path::new("/sys/fs/bpf")).unwrap_or(false),
    ));
    out
}

/// Writes the recommended values of failing sysctl findings; returns what it changed.
pub fn apply(findings: &[Finding], sysctls: &Sysctls) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    for f in findings {
        if let Some((name, value)) = f.apply {
            sysctls.write(name, value)?;
            done.push(format!("{name}: {} -> {value}", f.current));
        }
    }
    Ok(done)
}

/// One line a finding.
pub fn text(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {:<32} {:<24} recommended {:<14} {}\n",
                if f.ok { "ok  " } else { "WARN" },
                f.check,
                f.current,
                f.recommended,
                f.why
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(values: &[(&str, &str)]) -> (std::path::PathBuf, Sysctls) {
        let dir =
            std::env::temp_dir().join(format!("sg-doctor-{}-{}", std::process::id(), values.len()));
        for (name, v) in values {
            let p = dir.join(name.replace('.', "/"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("{v}\n")).unwrap();
        }
        (dir.clone(), Sysctls::with_root(dir))
    }

    #[test]
    fn sysctls_are_judged_and_applied() {
        let (dir, s) = scratch(&[
            ("net.ipv4.tcp_syncookies", "0"),
            ("net.ipv4.tcp_timestamps", "1"),
            ("net.ipv4.tcp_max_syn_backlog", "512"),
            ("net.core.somaxconn", "4096"),
            ("net.ipv4.tcp_synack_retries", "5"),
        ]);
        let f = sysctl_findings(&s);
        let bad: Vec<&str> = f
            .iter()
            .filter(|f| !f.ok)
            .map(|f| f.check.as_str())
            .collect();
        assert_eq!(
            bad,
            [
                "net.ipv4.tcp_syncookies",
                "net.ipv4.tcp_max_syn_backlog",
                "net.ipv4.tcp_synack_retries"
            ]
        );
        let done = apply(&f, &s).unwrap();
        assert_eq!(done.len(), 3);
        assert_eq!(s.read_u64("net.ipv4.tcp_syncookies").unwrap(), 1);
        assert_eq!(s.read_u64("net.ipv4.tcp_max_syn_backlog").unwrap(), 4096);
        assert_eq!(s.read_u64("net.ipv4.tcp_synack_retries").unwrap(), 2);
        assert!(sysctl_findings(&s).iter().all(|f| f.ok));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unreadable_sysctl_is_reported_not_applied() {
        let (dir, s) = scratch(&[("net.core.somaxconn", "128")]);
        let f = sysctl_findings(&s);
        let cookies = f.iter().find(|f| f.check == SYNCOOKIES).unwrap();
        assert!(!cookies.ok && cookies.current.starts_with("unreadable"));
        assert!(cookies.apply.is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn listeners_from_ss() {
        let ss = "LISTEN 0      4096         0.0.0.0:80        0.0.0.0:*\n\
                  LISTEN 3      128             [::]:443          [::]:*\n\
                  LISTEN 0      511        127.0.0.1:8080      0.0.0.0:*\n";
        assert_eq!(
            parse_listeners(ss),
            [(80, 4096, 0), (443, 128, 3), (8080, 511, 0)]
        );
        let f = listener_findings(&[80, 443, 22], ss);
        assert!(f[0].ok);
        assert!(!f[1].ok && f[1].current == "128");
        assert!(!f[2].ok && f[2].current == "no listener");
    }

    #[test]
    fn drivers_and_kernels() {
        assert!(driver_finding("eth0", Ok("mlx5_core".into())).ok);
        assert!(!driver_finding("eth0", Ok("r8169".into())).ok);
        let k = kernel_findings("6.18.44-fc", true, true);
        assert!(k.iter().all(|f| f.ok));
        let k = kernel_findings("5.15.0-91-generic", false, false);
        assert!(k.iter().all(|f| !f.ok));
    }
}
