//! End to end, own cookies on the less common paths with the real TCP stack: a client whose
//! IPv6 packets carry an extension header (a destination options header on every packet,
//! handshake included). Root, one at a time (`cargo xtask test`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd as _;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use synguard_common::reason::{Event, Reason};
use synguard_lab::lab::tcp_info::{TCPI_OPT_SACK, TCPI_OPT_WSCALE, TcpInfo};

mod common;
use common::e2e::{SERVER_WAIT, kernel_wscale};
use common::{Fixture, addr};

/// A destination options header with one PadN option filling its 8 bytes (RFC 8200 4.6): the
/// kernel fills in the next-header byte.
const DSTOPTS_PADN: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];

/// Connects over IPv6 with a sticky destination options header (`IPV6_DSTOPTS`, so the SYN, the
/// final ACK and the data all carry it), asks for `download` bytes and reads them; the client's
/// TCP_INFO after the handshake.
fn connect_with_dstopts(to: SocketAddr, download: u64) -> Result<TcpInfo> {
    // SAFETY: plain socket calls on a descriptor owned by the TcpStream made from it below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0) };
    ensure!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_DSTOPTS,
            DSTOPTS_PADN.as_ptr().cast(),
            DSTOPTS_PADN.len() as libc::socklen_t,
        )
    };
    ensure!(rc == 0, "IPV6_DSTOPTS: {}", std::io::Error::last_os_error());
    let SocketAddr::V6(v6) = to else {
        anyhow::bail!("{to} is not IPv6");
    };
    let sa = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: v6.port().to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: v6.ip().octets(),
        },
        sin6_scope_id: 0,
    };
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let rc = unsafe {
        libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of_val(&sa) as libc::socklen_t,
        )
    };
    ensure!(rc == 0, "connect {to}: {}", std::io::Error::last_os_error());
    let info = TcpInfo::of(&stream)?;
    transfer(stream, download)
        .with_context(|| format!("after the handshake: {}", info.summary()))?;
    Ok(info)
}

/// The lab server's protocol: no upload, `download` bytes back, then the server closes.
fn transfer(mut s: TcpStream, download: u64) -> Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = [0u8; 16];
    req[8..].copy_from_slice(&download.to_be_bytes());
    s.write_all(&req)?;
    let mut got = Vec::new();
    s.read_to_end(&mut got)?;
    ensure!(
        got.len() as u64 == download,
        "{} of {download} bytes",
        got.len()
    );
    Ok(())
}

/// Own cookies with an IPv6 extension header on every packet of the client: the XDP program
/// walks past it on the SYN and the final ACK, the TC program finds the ports behind it (the
/// metadata carries the TCP offset), and the connection keeps window scaling and SACK.
#[test]
fn own_cookies_with_ipv6_extension_headers() -> Result<()> {
    extension_headers(&[])
}

/// The same with the TC program that checks cookies again (a driver without XDP metadata).
#[test]
#[ignore = "synguard_own_check parses IPv6 without extension headers only (own_tc_check.rs, \
            `ip`): the ACK reaches the kernel unmarked, which answers it with a RST"]
fn the_checking_tc_program_with_ipv6_extension_headers() -> Result<()> {
    extension_headers(&["--own-tc", "check"])
}

fn extension_headers(extra: &[&str]) -> Result<()> {
    let fx = Fixture::new()?;
    let wscale = kernel_wscale(&fx)?;
    let args = ["--ports", "80", "--mode", "always", "--cookies", "own"];
    let sg = fx.synguard(&[&args[..], extra].concat())?;
    // Proof that the packets synguard passed carried the header: the first such TCP segment
    // to the port, captured behind XDP on the server's interface.
    let capture = fx
        .ns()
        .command("timeout")
        .args([
            "20",
            "tcpdump",
            "-n",
            "-p",
            "-c",
            "1",
            "-v",
            "-i",
            fx.iface(),
        ])
        .arg("ip6[6] == 60 and ip6[40] == 6 and ip6[50:2] == 80")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting tcpdump")?;
    std::thread::sleep(Duration::from_secs(2));
    let s0 = sg.stats()?;
    let seen = fx.server.connections().len();
    let n = 10;
    let to = addr(true);
    let infos = fx.lab.client.ns.enter(move || {
        (0..n)
            .map(|_| connect_with_dstopts(to, 1000))
            .collect::<Result<Vec<TcpInfo>>>()
    })??;
    let conns = fx.server.wait_for(seen + n, SERVER_WAIT)?;
    let s1 = sg.stats()?;
    for i in &infos {
        assert!(
            i.has(TCPI_OPT_SACK | TCPI_OPT_WSCALE),
            "client {}",
            i.summary()
        );
        assert_eq!(i.snd_wscale, wscale);
    }
    for c in &conns[seen..] {
        assert!(c.error.is_none(), "{:?}", c.error);
        assert!(c.info.has(TCPI_OPT_SACK | TCPI_OPT_WSCALE));
    }
    let out = capture.wait_with_output()?;
    ensure!(
        out.status.success(),
        "tcpdump saw no TCP segment with a destination options header: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("captured: {}", String::from_utf8_lossy(&out.stdout).trim());
    let cookies = s1.delta(&s0, Reason::TxSynAckCookie);
    let assigned = s1.event_delta(&s0, Event::OwnReqskAssigned);
    eprintln!("IPv6 with a destination options header: {cookies} cookies, {assigned} assigned");
    assert!(
        cookies >= n as u64 && assigned >= n as u64,
        "{cookies} / {assigned}"
    );
    assert!(sg.stop()?.success());
    Ok(())
}
