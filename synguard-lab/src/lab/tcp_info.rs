//! TCP_INFO of a connected socket: which options the handshake negotiated and what TCP saw on
//! the connection. `ss` on the test machines does not print ts/sack, hence this
//! (docs/kernel-cookies.md, "Checking the options").

use std::net::TcpStream;
use std::os::fd::AsRawFd;

use anyhow::{Context as _, Result, ensure};

pub const TCPI_OPT_TIMESTAMPS: u8 = 1;
pub const TCPI_OPT_SACK: u8 = 2;
pub const TCPI_OPT_WSCALE: u8 = 4;
/// The three options a cookie must carry through (in the echoed timestamp,
/// docs/kernel-cookies.md).
pub const TS_SACK_WSCALE: u8 = TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE;

/// The parts of `struct tcp_info` the lab looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// `tcpi_options`: TCPI_OPT_* bits.
    pub options: u8,
    /// Scale applied to the window this end sends with (the peer's advertised scale).
    pub snd_wscale: u8,
    /// Scale this end advertised for its own receive window.
    pub rcv_wscale: u8,
    pub total_retrans: u32,
    /// `tcpi_state` (TCP_ESTABLISHED = 1, ...), for failure reports.
    pub state: u8,
    /// Retransmissions of the current unacknowledged segment (`tcpi_retransmits`).
    pub retransmits: u8,
    /// `tcpi_rto`, microseconds.
    pub rto_us: u32,
    /// `tcpi_unacked`: segments sent and not acknowledged.
    pub unacked: u32,
    /// `tcpi_last_ack_recv`: milliseconds since an ACK last arrived.
    pub last_ack_recv_ms: u32,
    /// `tcpi_snd_mss`: the largest segment this end sends (the peer's MSS less options).
    pub snd_mss: u32,
}

impl TcpInfo {
    /// Reads TCP_INFO of a connected socket.
    pub fn of(stream: &TcpStream) -> Result<TcpInfo> {
        let mut buf = [0u8; 256];
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: buf is writable for len bytes; the kernel writes at most len and updates it.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("getsockopt(TCP_INFO)");
        }
        TcpInfo::parse(&buf[..len as usize])
    }

    /// Decodes the start of `struct tcp_info` (include/uapi/linux/tcp.h): byte 5 is
    /// `tcpi_options`, byte 6 holds the 4-bit fields `tcpi_snd_wscale` (low nibble on
    /// little-endian) and `tcpi_rcv_wscale`; `tcpi_total_retrans` is the u32 at byte 100.
    /// Bytes 0 and 2 are `tcpi_state` and `tcpi_retransmits`; the u32s at 8, 16, 24 and 56 are
    /// `tcpi_rto`, `tcpi_snd_mss`, `tcpi_unacked` and `tcpi_last_ack_recv`.
    pub fn parse(raw: &[u8]) -> Result<TcpInfo> {
        ensure!(raw.len() >= 104, "TCP_INFO too short: {} bytes", raw.len());
        let u32_at =
            |at: usize| u32::from_ne_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        Ok(TcpInfo {
            options: raw[5],
            snd_wscale: raw[6] & 0x0f,
            rcv_wscale: raw[6] >> 4,
            total_retrans: u32_at(100),
            state: raw[0],
            retransmits: raw[2],
            rto_us: u32_at(8),
            unacked: u32_at(24),
            last_ack_recv_ms: u32_at(56),
            snd_mss: u32_at(16),
        })
    }

    /// One line for a failure report: what TCP itself saw on the connection.
    pub fn summary(&self) -> String {
        format!(
            "tcp state {} retransmits {} total_retrans {} unacked {} rto {} us, last ACK {} ms ago, \
             options {:#x}, wscale snd {} rcv {}",
            self.state,
            self.retransmits,
            self.total_retrans,
            self.unacked,
            self.rto_us,
            self.last_ack_recv_ms,
            self.options,
            self.snd_wscale,
            self.rcv_wscale
        )
    }

    pub fn has(&self, opts: u8) -> bool {
        self.options & opts == opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_info_bytes() {
        let mut raw = [0u8; 104];
        raw[5] = TS_SACK_WSCALE;
        raw[6] = 0xa7; // rcv 10, snd 7
        raw[100..104].copy_from_slice(&3u32.to_ne_bytes());
        raw[16..20].copy_from_slice(&1448u32.to_ne_bytes());
        let info = TcpInfo::parse(&raw).unwrap();
        assert_eq!(info.snd_mss, 1448);
        assert_eq!(info.snd_wscale, 7);
        assert_eq!(info.rcv_wscale, 10);
        assert!(info.has(TS_SACK_WSCALE));
        assert_eq!(info.total_retrans, 3);
        assert!(TcpInfo::parse(&raw[..50]).is_err());
    }
}
