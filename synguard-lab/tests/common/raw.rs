//! Crafted frames sent from inside a lab namespace, and the lab's MAC addresses as bytes.

use anyhow::{Context as _, Result, ensure};
use synguard_lab::lab::netns::Netns;

/// Sends `frames` out of `ifname` in `ns` through an AF_PACKET socket.
pub fn send_frames(ns: &Netns, ifname: &str, frames: Vec<Vec<u8>>) -> Result<()> {
    let ifname = ifname.to_string();
    ns.enter(move || -> Result<()> {
        let c = std::ffi::CString::new(ifname.clone())?;
        // SAFETY: plain socket calls on a descriptor closed below; the buffers outlive them.
        unsafe {
            let ifindex = libc::if_nametoindex(c.as_ptr());
            ensure!(ifindex != 0, "no interface {ifname}");
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            ensure!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = ifindex as i32;
            sll.sll_halen = 6;
            let mut result = Ok(());
            for frame in &frames {
                sll.sll_addr[..6].copy_from_slice(&frame[..6]);
                let n = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                if n != frame.len() as isize {
                    result = Err(anyhow::anyhow!(
                        "sendto: {}",
                        std::io::Error::last_os_error()
                    ));
                    break;
                }
            }
            libc::close(fd);
            result
        }
    })?
}

/// A MAC address written `aa:bb:cc:dd:ee:ff`.
pub fn mac(text: &str) -> Result<[u8; 6]> {
    let mut m = [0u8; 6];
    for (b, part) in m.iter_mut().zip(text.split(':')) {
        *b = u8::from_str_radix(part, 16).with_context(|| format!("MAC {text}"))?;
    }
    Ok(m)
}
