//! End to end, what an attacker gets from a forged ACK that own cookies accept
//! (docs/own-cookies.md, "How strong the cookie is"). A blind attacker hits one in 2^23; here
//! the attacker is given the key instead, which makes the hit certain and shows its outcome:
//! an established connection from an address that never sent a SYN, whose data reaches the
//! application. Root, one at a time (`cargo xtask test`).

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use anyhow::Result;
use synguard::host::{clock::tai_ns, secret};
use synguard_common::own_cookie::{self, CookieOpts, Flow};
use synguard_common::reason::Event;
use synguard_common::tai::TAI_READING_SLACK_NS;
use synguard_common::tcp::{ACK, PSH};
use synguard_lab::lab::topology::{SERVER_V4, spoof_addr};
use synguard_lab::testrun::frames::{Segment, Tags, tcp_v4};

mod common;
use common::Fixture;
use common::e2e::SERVER_WAIT;
use common::raw::{mac, send_frames};

const KEY: &str = "00112233445566778899aabbccddeeff";

/// An ACK with a valid own cookie for a handshake that never happened, from a spoofed address
/// of the lab's pool, carrying a request: the server's kernel makes an established connection
/// from it and the application serves the request to the spoofed address.
#[test]
fn an_accepted_forged_ack_is_an_established_connection_with_data() -> Result<()> {
    let fx = Fixture::new()?;
    let dir = std::env::temp_dir().join(format!("synguard-hit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key_file = dir.join("cookie.key");
    std::fs::write(&key_file, KEY)?;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    let key_arg = key_file.to_string_lossy().into_owned();
    let args = ["--ports", "80", "--mode", "always", "--cookies", "own"];
    let sg = fx.synguard(&[&args[..], &["--cookie-secret-file", &key_arg]].concat())?;
    let s0 = sg.stats()?;

    let (src, sport, client_isn) = (spoof_addr(77), 40404u16, 0x1234_5678u32);
    let opts = CookieOpts {
        mss_class: 3,
        wscale: Some(7),
        sack: true,
        ecn: false,
    };
    // The cookie's slot is CLOCK_TAI's (`bpf_ktime_get_tai_ns` in the programs), taken a
    // reading's slack early: the programs' own reading may lag ours (`tai::TAI_READING_SLACK_NS`),
    // and they accept this slot's cookies and the one's before.
    let cookie = own_cookie::make(
        &secret::parse_key(KEY).map_err(anyhow::Error::msg)?,
        &Flow::v4(src.octets(), SERVER_V4.octets(), sport, 80),
        client_isn,
        own_cookie::slot_of(tai_ns() - TAI_READING_SLACK_NS),
        &opts,
    );
    // The lab server's protocol: no upload, 1000 bytes back.
    let mut request = vec![0u8; 16];
    request[8..].copy_from_slice(&1000u64.to_be_bytes());
    let seg = Segment {
        ack: cookie.wrapping_add(1),
        flags: ACK | PSH,
        payload: request,
        ..Segment::syn(sport, 80, client_isn.wrapping_add(1), Vec::new())
    };
    let macs = (mac(fx.lab.attacker.mac)?, mac(fx.lab.server.mac)?);
    let frame = tcp_v4(src.octets(), SERVER_V4.octets(), Tags::None, macs, &seg);
    send_frames(&fx.lab.attacker.ns, &fx.lab.attacker.ifname, vec![frame])?;

    let conns = fx.server.wait_for(1, SERVER_WAIT)?;
    let s1 = sg.stats()?;
    let c = &conns[0];
    eprintln!(
        "forged ACK from {src}: connection {} sent {} bytes, error {:?}; {} request sockets",
        c.peer,
        c.sent,
        c.error,
        s1.event_delta(&s0, Event::OwnReqskAssigned)
    );
    assert_eq!(c.peer, std::net::SocketAddr::from((src, sport)));
    assert_eq!(c.sent, 1000, "the forged request was served");
    assert_eq!(s1.event_delta(&s0, Event::OwnReqskAssigned), 1);
    // The answer went to the spoofed address, which nobody holds: nothing answers it.
    std::thread::sleep(Duration::from_millis(200));
    assert!(sg.stop()?.success());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
