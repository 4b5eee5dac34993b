//! Network namespaces: instances are told apart by interface name only, so whose namespace a
//! recorded process ran in decides whether its kernel settings are ours to restore.

use std::fs;

/// The identity of a process's network namespace, e.g. "net:[4026531840]"; `pid` may be "self".
pub fn of_pid(pid: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Ours.
pub fn current() -> Option<String> {
    of_pid("self")
}
