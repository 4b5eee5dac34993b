//! Facts read from the running kernel's BTF (`/sys/kernel/btf/vmlinux`).

use log::warn;

/// Where vmlinux BTF lives on kernels built with `CONFIG_DEBUG_INFO_BTF`.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Where the running kernel's request sockets keep their ISN (`tcp_request_sock.snt_isn`), so the
/// program can drop ACKs that `tcp_check_req` would answer with an RST. 0 when unknown: those
/// ACKs then pass unchecked (fail open).
pub fn request_isn_offset() -> u32 {
    let off = std::fs::read(VMLINUX_BTF)
        .ok()
        .and_then(|btf| synguard_common::btf::member_offset(&btf, b"tcp_request_sock", b"snt_isn"));
    off.unwrap_or_else(|| {
        warn!("no kernel BTF for tcp_request_sock; ACKs to half-open handshakes pass unchecked");
        0
    })
}
