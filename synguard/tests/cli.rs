//! The binary's messages and exit statuses for what can go wrong before any BPF is touched:
//! usage errors exit 2 and say what was expected, once, blaming the flag or the file that holds
//! the bad value. (What needs root, a namespace or an instance is in the lab's `messages` test.)

use std::path::PathBuf;
use std::process::{Command, Output};

fn synguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synguard"))
        .args(args)
        .output()
        .expect("running synguard")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A configuration file of its own per test.
fn config_file(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sg-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_bad_value_in_the_file_is_blamed_on_the_file_and_said_once() {
    let f = config_file(
        "cidr",
        "interfaces = [\"lo\"]\nports = [80]\nblock = [\"1.2.3.4/40\"]\n",
    );
    let o = synguard(&["config", "validate", f.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!("synguard: {}: block", f.display())),
        "{err}"
    );
    assert_eq!(err.matches("invalid CIDR").count(), 1, "said once: {err}");
    std::fs::remove_file(f).unwrap();
}

#[test]
fn a_bad_flag_is_blamed_on_the_flag_not_the_file() {
    let f = config_file("flag", "interfaces = [\"lo\"]\nports = [80]\n");
    let o = synguard(&[
        "config",
        "dump",
        "--config",
        f.to_str().unwrap(),
        "--block",
        "1.2.3.4/40",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("synguard: block (--block): invalid CIDR"),
        "{err}"
    );
    assert!(
        !err.contains(f.to_str().unwrap()),
        "the file is not to blame: {err}"
    );
    assert_eq!(err.matches("invalid CIDR").count(), 1, "{err}");
    std::fs::remove_file(f).unwrap();
}

#[test]
fn a_type_error_says_what_the_key_means() {
    let f = config_file(
        "type",
        "interfaces = [\"lo\"]\nports = [80]\nsyn_threshold = \"lots\"\n",
    );
    let o = synguard(&["config", "validate", f.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("expected a whole number"), "{err}");
    assert!(!err.contains("u32"), "no Rust type names: {err}");
    assert!(
        err.contains("syn_threshold: Auto mode: SYNs per second"),
        "{err}"
    );
    std::fs::remove_file(f).unwrap();
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["stats", "--interval", "0"][..],
        &["stats", "--count", "0"],
        &["run", "--syn-threshold", "x"],
        &["nosuch-command"],
        &["doctor", "--ports", "70000"],
        &[
            "run",
            "--config",
            "/dev/null",
            "--iface",
            "lo",
            "--ports",
            "0",
        ],
    ] {
        let o = synguard(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?} says why");
    }
    let o = synguard(&["stats", "--count", "0"]);
    assert!(
        stderr(&o).contains("expected a number of refreshes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_missing_file_is_a_runtime_error() {
    let o = synguard(&["config", "validate", "/nonexistent/synguard.toml"]);
    let err = stderr(&o);
    // Reading failed: the command line itself was understood.
    assert!(err.contains("cannot read configuration file"), "{err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
}

#[test]
fn count_means_refreshes_and_top_says_limit() {
    let o = synguard(&["top", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("--limit <N>"), "{help}");
    assert!(
        !help.contains("--count <"),
        "the old spelling is hidden: {help}"
    );
    let o = synguard(&["stats", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("--count <N>") && help.contains("refreshes"),
        "{help}"
    );
}
