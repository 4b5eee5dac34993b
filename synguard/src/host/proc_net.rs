//! The kernel's TCP socket lists, `/proc/self/net/tcp` and `tcp6` (Documentation/networking/
//! proc_net_tcp.rst; printed by `get_tcp4_sock` / `get_tcp6_sock` and their request-socket and
//! TIME_WAIT siblings): every socket of this network namespace with its addresses, ports and
//! state. The connection table's pass reads them (docs/connection-table.md).
//!
//! An address is printed as the `%08X` of each 32-bit word of its network-order bytes loaded as
//! a native integer, a port as the `%04X` of the host-order number: parsing the hex gives the
//! words and ports exactly as the programs read them from a packet.

use std::{fs::File, io::Read as _, path::Path};

use thiserror::Error;

/// The lists of this process's network namespace.
pub const TCP4: &str = "/proc/self/net/tcp";
pub const TCP6: &str = "/proc/self/net/tcp6";
pub use synguard_common::conns::tcp_state::LISTEN;
/// Bytes per read: the seq_file behind these files fills as much as the reader asks for, so a
/// large buffer reads a few thousand sockets in a handful of system calls.
const READ_CHUNK: usize = 1 << 20;

/// An address as the programs hash it: an IPv4-mapped IPv6 address (a dual-stack listener's
/// IPv4 connection) is IPv4, as its packets are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    V4(u32),
    V6([u32; 4]),
}

/// One socket of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Socket {
    pub local: Addr,
    pub local_port: u16,
    pub remote: Addr,
    pub remote_port: u16,
    /// `TCP_ESTABLISHED` (1) .. `TCP_NEW_SYN_RECV` (12), include/net/tcp_states.h.
    pub state: u8,
}

#[derive(Debug, Error)]
pub enum ProcNetError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} line {line}: expected `sl: local:port remote:port state ...` with hex fields \
         ({what}): {text:?}"
    )]
    Malformed {
        path: String,
        line: usize,
        what: &'static str,
        text: String,
    },
}

/// The whole file, read in [`READ_CHUNK`] pieces.
pub fn read(path: &str) -> Result<String, ProcNetError> {
    let wrap = |source| ProcNetError::Read {
        path: path.to_string(),
        source,
    };
    let mut file = File::open(Path::new(path)).map_err(wrap)?;
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut buf = Vec::new();
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(wrap(e)),
        }
    }
    String::from_utf8(buf).map_err(|e| {
        wrap(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.utf8_error(),
        ))
    })
}

/// Every socket of a list's text (`path` only names it in errors). The first line is the
/// header; a line that does not parse is an error that names it.
pub fn parse(path: &str, text: &str) -> Result<Vec<Socket>, ProcNetError> {
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            parse_line(l).map_err(|what| ProcNetError::Malformed {
                path: path.to_string(),
                line: n + 1,
                what,
                text: l.to_string(),
            })
        })
        .collect()
}

/// One line: `sl: local:port remote:port st ...`. The error says which field is wrong.
pub fn parse_line(line: &str) -> Result<Socket, &'static str> {
    let mut f = line.split_whitespace();
    let sl = f.next().ok_or("no fields")?;
    if !sl.ends_with(':') {
        return Err("slot number");
    }
    let (local, local_port) = endpoint(f.next().ok_or("no local address")?)?;
    let (remote, remote_port) = endpoint(f.next().ok_or("no remote address")?)?;
    let st = f.next().ok_or("no state")?;
    let state = u8::from_str_radix(st, 16).map_err(|_| "state")?;
    Ok(Socket {
        local,
        local_port,
        remote,
        remote_port,
        state,
    })
}

/// `ADDR:PORT`: 8 hex digits for IPv4, 32 for IPv6.
fn endpoint(field: &str) -> Result<(Addr, u16), &'static str> {
    let (addr, port) = field.split_once(':').ok_or("address without a port")?;
    if port.len() != 4 {
        return Err("port");
    }
    let port = u16::from_str_radix(port, 16).map_err(|_| "port")?;
    let word = |s: &str| u32::from_str_radix(s, 16).map_err(|_| "address");
    let addr = match addr.len() {
        8 => Addr::V4(word(addr)?),
        32 => {
            let mut w = [0u32; 4];
            for (i, out) in w.iter_mut().enumerate() {
                *out = word(&addr[i * 8..i * 8 + 8])?;
            }
            v4_mapped(w)
        }
        _ => return Err("address length"),
    };
    Ok((addr, port))
}

/// ::ffff:a.b.c.d as IPv4. The third word holds the bytes 00 00 ff ff in network order.
fn v4_mapped(w: [u32; 4]) -> Addr {
    if w[0] == 0 && w[1] == 0 && w[2] == u32::from_ne_bytes([0, 0, 0xff, 0xff]) {
        Addr::V4(w[3])
    } else {
        Addr::V6(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
                          retrnsmt   uid  timeout inode";

    fn ne(bytes: [u8; 4]) -> u32 {
        u32::from_ne_bytes(bytes)
    }

    /// The hex the kernel prints for a word of network-order bytes (`%08X` of a native load).
    fn hex(bytes: [u8; 4]) -> String {
        format!("{:08X}", ne(bytes))
    }

    #[test]
    fn ipv4_established_and_listen() {
        let text = format!(
            "{HEADER}\n   0: {}:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     \
             0        0 1234 1 0000000000000000 100 0 0 10 0\n   1: {}:1F90 {}:D431 01 \
             00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 20 4 \
             30 10 -1\n",
            hex([10, 0, 0, 1]),
            hex([10, 0, 0, 1]),
            hex([10, 0, 0, 2]),
        );
        let socks = parse(TCP4, &text).unwrap();
        assert_eq!(socks.len(), 2);
        assert_eq!(socks[0].state, LISTEN);
        assert_eq!(
            socks[1],
            Socket {
                local: Addr::V4(ne([10, 0, 0, 1])),
                local_port: 8080,
                remote: Addr::V4(ne([10, 0, 0, 2])),
                remote_port: 0xd431,
                state: 1,
            }
        );
    }

    #[test]
    fn ipv6_and_v4_mapped() {
        let v6 = [
            hex([0xfd, 0, 0, 0]),
            hex([0, 0, 0, 0]),
            hex([0, 0, 0, 0]),
            hex([0, 0, 0, 2]),
        ]
        .concat();
        let mapped = [
            "00000000".to_string(),
            "00000000".to_string(),
            hex([0, 0, 0xff, 0xff]),
            hex([10, 0, 0, 2]),
        ]
        .concat();
        let line = |remote: &str| {
            format!(
                "   0: {}:0050 {remote}:C001 01 00000000:00000000 00:00000000 00000000 0 0 77 1 \
                 0000000000000000 20 4 30 10 -1",
                "0".repeat(32)
            )
        };
        let socks = parse(
            TCP6,
            &format!("{HEADER}\n{}\n{}\n", line(&v6), line(&mapped)),
        )
        .unwrap();
        assert_eq!(
            socks[0].remote,
            Addr::V6([ne([0xfd, 0, 0, 0]), 0, 0, ne([0, 0, 0, 2])])
        );
        assert_eq!(socks[0].local, Addr::V6([0; 4]));
        assert_eq!(socks[0].local_port, 80);
        assert_eq!(socks[1].remote, Addr::V4(ne([10, 0, 0, 2])));
        assert_eq!(socks[1].remote_port, 0xc001);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let text = format!("{HEADER}\n   0: 0100007F:1F90 0200007F 01 0\n");
        let e = parse(TCP4, &text).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("0200007F 01"), "{e}");
        assert!(e.contains("address without a port"), "{e}");
        for bad in [
            "0: 0100007F:1F90 0200007F:0001 ZZ",
            "0 0100007F:1F90 0200007F:0001 01",
            "0: 0100007:1F90 0200007F:0001 01",
            "0: 0100007F:1F9 0200007F:0001 01",
            "0: 0100007F:1F90",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        assert!(parse(TCP4, HEADER).unwrap().is_empty());
    }

    /// This machine's own lists parse whole.
    #[test]
    fn the_running_kernels_lists_parse() {
        for path in [TCP4, TCP6] {
            if Path::new(path).exists() {
                parse(path, &read(path).unwrap()).unwrap();
            }
        }
    }
}
