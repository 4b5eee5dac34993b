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
