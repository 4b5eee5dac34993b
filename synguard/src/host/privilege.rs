//! Whether this process may use BPF at all: every command that reads or writes synguard's pinned
//! maps needs root, or CAP_BPF with CAP_NET_ADMIN (CAP_SYS_ADMIN covers both). Checked up front,
//! so a user without them is told that, not "Permission denied" or "no synguard is running".

use std::fs;

use thiserror::Error;

/// Capability numbers (include/uapi/linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

#[derive(Debug, Error, PartialEq)]
#[error(
    "{what} needs root, or the capabilities CAP_BPF and CAP_NET_ADMIN (the pinned maps under \
     /sys/fs/bpf are readable only with them): run it with sudo"
)]
pub struct NotPrivileged {
    pub what: String,
}

/// The effective capability set of this process (`CapEff` in /proc/self/status).
fn effective_caps() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Whether a capability set allows what synguard's commands do with BPF.
fn allows_bpf(caps: u64) -> bool {
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_NET_ADMIN))
}

/// Fails, naming `what` (e.g. "synguard status"), unless this process may use BPF. When the
/// capabilities cannot be read, the command is let through to fail on its own.
pub fn require_bpf(what: &str) -> Result<(), NotPrivileged> {
    match effective_caps() {
        Some(caps) if !allows_bpf(caps) => Err(NotPrivileged {
            what: what.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert!(allows_bpf(0x1ff_ffff_ffff), "root");
        assert!(!allows_bpf(0), "nobody");
        assert!(allows_bpf((1 << CAP_BPF) | (1 << CAP_NET_ADMIN)));
        assert!(!allows_bpf(1 << CAP_BPF), "CAP_BPF alone");
        assert!(allows_bpf(1 << CAP_SYS_ADMIN));
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }

    #[test]
    fn the_message_says_what_is_needed() {
        let e = NotPrivileged {
            what: "synguard status".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("needs root") && text.contains("CAP_BPF"),
            "{text}"
        );
    }
}
