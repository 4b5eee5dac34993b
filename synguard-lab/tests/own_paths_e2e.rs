//! End to end, own cookies on the less common paths with the real TCP stack: a client whose
//! IPv6 packets carry an extension header (a destination options header on every packet,
//! handshake included), and a client whose frames carry one or two 802.1Q tags. Root, one at a time
//! (`cargo xtask test`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd as _;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use synguard_common::reason::{Event, Reason};
use synguard_lab::lab::tcp_info::{TCPI_OPT_SACK, TCPI_OPT_WSCALE, TS_SACK_WSCALE, TcpInfo};
use synguard_lab::lab::traffic::Transfer;
use synguard_lab::lab::vlan_tag::VlanTag;

mod common;
use common::e2e::{SERVER_WAIT, check_client_options, check_server_options, kernel_wscale};
use common::{Fixture, addr};
use synguard_lab::lab::netns::Netns;

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

/// The same with the TC program that checks cookies again (a driver without XDP metadata): it
/// walks the extension headers itself (`own_tc_check::v6_tcp`).
#[test]
fn the_checking_tc_program_with_ipv6_extension_headers() -> Result<()> {
    extension_headers(&["--own-tc", "check"])
}

/// `timeout 20 tcpdump -c 1` on `ifname` in `ns` for `filter`: proof that the packets had the
/// shape the test means. Started before the traffic; wait with [`captured`].
fn capture(ns: &Netns, ifname: &str, filter: &str) -> Result<std::process::Child> {
    let child = ns
        .command("timeout")
        .args([
            "20", "tcpdump", "-n", "-p", "-e", "-c", "1", "-i", ifname, filter,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting tcpdump")?;
    std::thread::sleep(Duration::from_secs(2));
    Ok(child)
}

fn captured(child: std::process::Child, what: &str) -> Result<()> {
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "tcpdump saw no {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("captured: {}", String::from_utf8_lossy(&out.stdout).trim());
    Ok(())
}

fn extension_headers(extra: &[&str]) -> Result<()> {
    let fx = Fixture::new()?;
    let wscale = kernel_wscale(&fx)?;
    let args = ["--ports", "80", "--mode", "always", "--cookies", "own"];
    let sg = fx.synguard(&[&args[..], extra].concat())?;
    // The first TCP segment to the port with the header, behind XDP: the final ACK.
    let filter = "ip6[6] == 60 and ip6[40] == 6 and ip6[50:2] == 80";
    let tcpdump = capture(fx.ns(), fx.iface(), filter)?;
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
    captured(tcpdump, "TCP segment with a destination options header")?;
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

/// Own cookies for a client whose every frame carries an 802.1Q (priority) tag: the XDP
/// program answers the tagged SYN and checks the tagged ACK, the kernel takes the tag out of
/// the frame before TC, and the TC program (with the XDP metadata moved along with the
/// headers) hands the handshake over; IPv4 and IPv6, with timestamps, SACK and window scaling.
#[test]
fn own_cookies_behind_a_vlan_tag() -> Result<()> {
    vlan_tags(1, &[])
}

/// The same with the TC program that checks cookies again: it sees the frame after the kernel
/// took the tag out.
#[test]
fn the_checking_tc_program_behind_a_vlan_tag() -> Result<()> {
    vlan_tags(1, &["--own-tc", "check"])
}

/// Two tags (802.1Q in 802.1Q): the kernel takes only the outer one out before TC, so the TC
/// program skips the inner one (`own_tc::l3`).
#[test]
fn own_cookies_behind_two_vlan_tags() -> Result<()> {
    vlan_tags(2, &[])
}

/// The same with the TC program that checks cookies again: it parses past the inner tag too.
#[test]
fn the_checking_tc_program_behind_two_vlan_tags() -> Result<()> {
    vlan_tags(2, &["--own-tc", "check"])
}

fn vlan_tags(tags: usize, extra: &[&str]) -> Result<()> {
    let fx = Fixture::new()?;
    let wscale = kernel_wscale(&fx)?;
    let client_ns = &fx.lab.client.ns;
    let _tag = VlanTag::attach(client_ns, &fx.lab.client.ifname, tags)?;
    // The bridge takes the tag out of the frame; its port to the server puts it back in, so
    // that the server's XDP program sees it (docs/veth-and-nics.md).
    fx.lab
        .bridge_ns()
        .run("ethtool", &["-K", &fx.lab.server_peer(), "txvlan", "off"])?;
    let args = ["--ports", "80", "--mode", "always", "--cookies", "own"];
    let sg = fx.synguard(&[&args[..], extra].concat())?;
    // A tagged SYN-ACK can only come from the XDP program having had the tag in the frame (it
    // turns the SYN's frame around; the kernel never sees these SYNs). Each `vlan 0` in a
    // filter steps over one tag.
    let vlans = "vlan 0 and ".repeat(tags);
    let synack = capture(
        client_ns,
        &fx.lab.client.ifname,
        &format!("{vlans}tcp src port 80 and tcp[tcpflags] & tcp-syn != 0"),
    )?;
    let ack = capture(
        fx.ns(),
        fx.iface(),
        &format!("{vlans}tcp dst port 80 and tcp[tcpflags] == tcp-ack"),
    )?;
    let s0 = sg.stats()?;
    let seen = fx.server.connections().len();
    let n = 10;
    let small = |_| Transfer {
        upload: 1000,
        download: 1000,
    };
    let batches = fx
        .batch(false, n, small)
        .and_then(|mut c| Ok([c.split_off(0), fx.batch(true, n, small)?].concat()));
    let client = batches.map_err(|e| {
        // What the programs saw, for the failure report.
        let s = sg.stats().unwrap_or_default();
        e.context(format!(
            "{tags} tags: {} cookies sent, {} ACKs marked, {} request sockets, {} without \
             listener (TC)",
            s.delta(&s0, Reason::TxSynAckCookie),
            s.event_delta(&s0, Event::OwnCookieAckMarked),
            s.event_delta(&s0, Event::OwnReqskAssigned),
            s.event_delta(&s0, Event::OwnNoListener)
        ))
    })?;
    let conns = fx.server.wait_for(seen + 2 * n, SERVER_WAIT)?;
    let s1 = sg.stats()?;
    captured(synack, "tagged SYN-ACK at the client")?;
    captured(ack, "tagged ACK at the server")?;
    check_client_options(&client, wscale);
    let infos: Vec<TcpInfo> = conns[seen..].iter().map(|c| c.info).collect();
    check_server_options(&infos, wscale);
    assert!(infos.iter().all(|i| i.has(TS_SACK_WSCALE)));
    let assigned = s1.event_delta(&s0, Event::OwnReqskAssigned);
    eprintln!(
        "behind {tags} VLAN tag(s): {assigned} request sockets for {} connections",
        2 * n
    );
    assert!(assigned >= 2 * n as u64, "{assigned} assigned");
    assert!(sg.stop()?.success());
    Ok(())
}
