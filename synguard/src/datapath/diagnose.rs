//! Turns low-level load/attach failures into messages that say what to do. Pure functions over
//! error values and verifier text, so each explanation is unit-tested.

use std::{error::Error, io};

/// BPF helpers the XDP program may call that older kernels lack, with the kernel feature and the
/// first release that has it. Numbers are the kernel's `enum bpf_func_id`, which the verifier
/// prints as "invalid func unknown#N" when it does not know a helper at all.
const HELPERS: &[(u32, &str, &str)] = &[
    (
        44,
        "bpf_xdp_adjust_head",
        "XDP head adjustment (Linux 4.10)",
    ),
    (
        84,
        "bpf_sk_lookup_tcp",
        "socket lookup from XDP (Linux 4.20)",
    ),
    (86, "bpf_sk_release", "socket lookup from XDP (Linux 4.20)"),
    (
        99,
        "bpf_skc_lookup_tcp",
        "listener lookup from XDP (Linux 5.2)",
    ),
    (
        100,
        "bpf_tcp_check_syncookie",
        "SYN cookie checking from XDP (Linux 5.2)",
    ),
    (
        110,
        "bpf_tcp_gen_syncookie",
        "SYN cookie generation from XDP (Linux 5.3)",
    ),
    (
        130,
        "bpf_ringbuf_output",
        "BPF ring buffers, used for logging (Linux 5.8)",
    ),
    (
        131,
        "bpf_ringbuf_reserve",
        "BPF ring buffers, used for logging (Linux 5.8)",
    ),
    (
        132,
        "bpf_ringbuf_submit",
        "BPF ring buffers, used for logging (Linux 5.8)",
    ),
    (
        188,
        "bpf_xdp_get_buff_len",
        "XDP multi-buffer access (Linux 5.18)",
    ),
    (
        189,
        "bpf_xdp_load_bytes",
        "XDP multi-buffer access (Linux 5.18)",
    ),
    (
        190,
        "bpf_xdp_store_bytes",
        "XDP multi-buffer access (Linux 5.18)",
    ),
    (
        204,
        "bpf_tcp_raw_gen_syncookie_ipv4",
        "socket-free SYN cookies (Linux 6.0)",
    ),
    (
        205,
        "bpf_tcp_raw_gen_syncookie_ipv6",
        "socket-free SYN cookies (Linux 6.0)",
    ),
    (
        206,
        "bpf_tcp_raw_check_syncookie_ipv4",
        "socket-free SYN cookies (Linux 6.0)",
    ),
    (
        207,
        "bpf_tcp_raw_check_syncookie_ipv6",
        "socket-free SYN cookies (Linux 6.0)",
    ),
];

/// A helper the kernel refused, as named in the verifier log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingHelper {
    pub helper: String,
    /// What the kernel lacks, when the helper is one we know.
    pub feature: Option<&'static str>,
}

impl std::fmt::Display for MissingHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.feature {
            Some(feature) => write!(
                f,
                "this kernel lacks {feature}: the verifier does not know helper {}",
                self.helper
            ),
            None => write!(
                f,
                "this kernel does not offer helper {} to XDP programs",
                self.helper
            ),
        }
    }
}

/// Finds the helper the verifier rejected. Kernels print "unknown func bpf_x#N" for a helper they
/// know but do not allow for the program type, "invalid func unknown#N" for one they have never
/// heard of, and "program of this type cannot use helper bpf_x#N" on some versions.
pub fn missing_helper(verifier_log: &str) -> Option<MissingHelper> {
    const MARKERS: [&str; 3] = [
        "invalid func ",
        "unknown func ",
        "program of this type cannot use helper ",
    ];
    verifier_log.lines().find_map(|line| {
        let rest = MARKERS
            .iter()
            .find_map(|m| line.find(m).map(|at| &line[at + m.len()..]))?;
        let token = rest.split_whitespace().next()?;
        let (name, id) = token.split_once('#')?;
        let id: u32 = id
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .ok()?;
        let known = HELPERS.iter().find(|(n, ..)| *n == id);
        let helper = match (name, known) {
            ("unknown", Some((_, known_name, _))) => known_name.to_string(),
            ("unknown", None) => format!("#{id}"),
            (name, _) => name.to_string(),
        };
        Some(MissingHelper {
            feature: known.map(|(_, _, feature)| *feature),
            helper,
        })
    })
}

/// The verifier's statistics line: "processed N insns (limit L) max_states_per_insn ...".
fn processed(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("processed ")?;
    let (n, rest) = rest.split_once(" insns (limit ")?;
    let (limit, _) = rest.split_once(')')?;
    Some((n.parse().ok()?, limit.parse().ok()?))
}

/// Lines the verifier prints after its verdict (statistics), not the verdict itself.
fn is_statistics(line: &str) -> bool {
    processed(line).is_some()
        || line.starts_with("verification time ")
        || line.starts_with("stack depth ")
        || line.starts_with("BPF program is too large")
}

/// A refusal in a few words, from the verifier log's last lines: how many instructions it
/// processed against its limit (kernel/bpf/verifier.c, `print_verification_stats`) and, unless
/// it ran out of them, the message it stopped at.
pub fn verifier_summary(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let stats = lines.iter().rev().find_map(|l| processed(l));
    let verdict = lines.iter().rev().find(|l| !is_statistics(l));
    match (stats, verdict) {
        (Some((n, limit)), _) if n >= limit => {
            format!("{n} insns processed, limit {limit}")
        }
        (Some((n, _)), Some(v)) => format!("{v}; {n} insns processed"),
        (None, Some(v)) => v.to_string(),
        (Some((n, _)), None) => format!("{n} insns processed"),
        (None, None) => "no verifier output".into(),
    }
}

/// The first `io::Error` in an error's source chain.
pub fn io_error<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

/// The errno somewhere in the chain, if any.
pub fn errno(err: &(dyn Error + 'static)) -> Option<i32> {
    io_error(err).and_then(io::Error::raw_os_error)
}

/// True when the failure is the kernel refusing BPF to an unprivileged process.
pub fn is_permission_error(err: &(dyn Error + 'static)) -> bool {
    errno(err) == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_helper_id() {
        let log = "0: R1=ctx() R10=fp0\n; ...\n12: (85) call unknown#204\ninvalid func unknown#204\nprocessed 13 insns";
        let m = missing_helper(log).unwrap();
        assert_eq!(m.helper, "bpf_tcp_raw_gen_syncookie_ipv4");
        assert_eq!(m.feature, Some("socket-free SYN cookies (Linux 6.0)"));
        assert!(m.to_string().contains("Linux 6.0"), "{m}");
    }

    #[test]
    fn helper_not_allowed_for_xdp() {
        let m = missing_helper("5: (85) call bpf_foo#9999\nunknown func bpf_foo#9999\n").unwrap();
        assert_eq!(m.helper, "bpf_foo");
        assert_eq!(m.feature, None);
        assert!(m.to_string().contains("bpf_foo"));
        let m = missing_helper("program of this type cannot use helper bpf_tcp_gen_syncookie#110")
            .unwrap();
        assert_eq!(m.helper, "bpf_tcp_gen_syncookie");
        assert!(m.feature.unwrap().contains("5.3"));
    }

    #[test]
    fn unrelated_verifier_failures_are_not_helpers() {
        assert_eq!(missing_helper("R2 invalid mem access 'scalar'"), None);
        assert_eq!(missing_helper(""), None);
        assert_eq!(missing_helper("invalid func unknown#xyz"), None);
    }

    #[test]
    fn summarises_the_instruction_limit() {
        let log = "8363: (bf) r8 = r1\n; ...\n12001: (05) goto pc+3\n\
                   BPF program is too large. Processed 1000001 insn\n\
                   processed 1000001 insns (limit 1000000) max_states_per_insn 33 \
                   total_states 52100 peak_states 2813 mark_read 377\n";
        assert_eq!(
            verifier_summary(log),
            "1000001 insns processed, limit 1000000"
        );
    }

    #[test]
    fn summarises_a_refusal_by_its_message() {
        let log = "func#0 @0\n0: R1=ctx() R10=fp0\n0: (bf) r0 = r7\nR7 !read_ok\n\
                   verification time 12 usec\nstack depth 0\n\
                   processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 \
                   peak_states 0 mark_read 0\n";
        assert_eq!(verifier_summary(log), "R7 !read_ok; 1 insns processed");
        assert_eq!(
            verifier_summary("R2 invalid mem access 'scalar'\n"),
            "R2 invalid mem access 'scalar'"
        );
        assert_eq!(verifier_summary(""), "no verifier output");
    }

    #[test]
    fn finds_errno_in_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let e = Outer(io::Error::from_raw_os_error(libc::EPERM));
        assert!(is_permission_error(&e));
        let e = Outer(io::Error::from_raw_os_error(libc::EINVAL));
        assert!(!is_permission_error(&e));
        assert_eq!(errno(&e), Some(libc::EINVAL));
    }
}
