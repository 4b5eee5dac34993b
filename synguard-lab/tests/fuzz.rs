//! A short, fixed-seed run of synguard's own fuzzer (`synguard_lab::fuzz`) with each kind of
//! cookie: the compiled program on generated and mutated frames, judged by an independent
//! oracle. The long run is `cargo xtask fuzz --frames N --seed S [--cookies own]`.
//!
//! Needs root (loading BPF programs, a namespace); run through `cargo xtask test`.

use synguard_lab::fuzz::{Cookies, Fuzzer};

fn fixed_seed_run(cookies: Cookies) {
    let mut fuzzer = Fuzzer::new(cookies).expect("fuzzer setup (needs root)");
    let r = fuzzer.run(12_000, 0x5eed, 5).unwrap();
    let shown: Vec<String> = r.violations.iter().map(|v| v.render()).collect();
    assert!(shown.is_empty(), "violations:\n{}", shown.join("\n"));
    assert_eq!(r.frames, 12_000);
    assert!(r.split > 0, "no frame ran split over buffers");
    // The generator reaches the interesting verdicts, or the run proves little.
    for reason in [
        "tx_synack_cookie",
        "pass_cookie_ack",
        "drop_ack_bad_cookie",
        "pass_not_for_host",
        "drop_martian_source",
        "drop_bad_ip_checksum",
        "drop_bad_tcp_checksum",
        "pass_malformed_ip",
        "pass_malformed_tcp",
        "pass_malformed_l2",
        "pass_fragment",
        "pass_ipv6_ext_limit",
        "drop_blocklisted",
        "pass_allowlisted",
        "drop_source_rate",
        "drop_reflection_cap",
        "pass_established",
        "pass_syn_recent_close",
        "pass_syn_live_conn",
        "pass_syn_no_listener",
    ] {
        assert!(
            r.by_reason.get(reason).copied().unwrap_or(0) > 0,
            "no frame reached {reason}: {:?}",
            r.by_reason
        );
    }
}

#[test]
fn fixed_seed_run_has_no_violations() {
    fixed_seed_run(Cookies::Kernel);
}

/// Own cookies: every answered SYN's ISN is the own cookie of its options (kept with or
/// without a timestamp), its final ACK passes and a tampered one is dropped.
#[test]
fn fixed_seed_run_with_own_cookies_has_no_violations() {
    fixed_seed_run(Cookies::Own);
}
