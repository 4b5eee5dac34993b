//! Queue and offload facts of an interface, read with `SIOCETHTOOL` ioctls (what `ethtool -l` and
//! `ethtool -k` show) on a socket in the caller's network namespace. Layouts from
//! include/uapi/linux/ethtool.h.

use std::{io, os::fd::AsRawFd as _};

use crate::host::nic::{ifreq, socket};

const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
/// The string set naming the netdev features (`ETH_SS_FEATURES`).
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// One `SIOCETHTOOL` call on a fixed-size struct.
fn ethtool<T>(iface: &str, data: &mut T) -> io::Result<()> {
    // SAFETY: `data` is a whole `T`, sized for the command it starts with.
    unsafe { ethtool_raw(iface, (data as *mut T).cast()) }
}

/// One `SIOCETHTOOL` call: the kernel reads the command from the start of `data` and writes its
/// answer into the rest.
///
/// # Safety
/// `data` must point to a writable buffer as large as the command at its start asks for.
unsafe fn ethtool_raw(iface: &str, data: *mut libc::c_void) -> io::Result<()> {
    let sock = socket()?;
    let mut req = ifreq(iface)?;
    req.ifr_ifru.ifru_data = data.cast();
    // SAFETY: SIOCETHTOOL reads and writes only the buffer ifru_data points to, which the
    // caller sized for the command at its start and which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct ethtool_channels`: queue counts as `ethtool -l` shows them.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// Combined (RX and TX) queue channels: the maximum and how many are in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channels {
    pub max_combined: u32,
    pub combined: u32,
}

/// The interface's queue channels (`ethtool -l`). Drivers without channel support (veth before
/// 5.14, loopback) answer EOPNOTSUPP.
pub fn channels(iface: &str) -> io::Result<Channels> {
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    ethtool(iface, &mut ch)?;
    Ok(Channels {
        max_combined: ch.max_combined,
        combined: ch.combined_count,
    })
}

/// The receive offloads that change what an XDP program sees (`ethtool -k`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxOffloads {
    /// `large-receive-offload` (`rx-lro`).
    pub lro: bool,
    /// `rx-gro-hw`: hardware GRO.
    pub gro_hw: bool,
    /// `rx-vlan-offload` (`rx-vlan-hw-parse`): 802.1Q tags stripped into metadata.
    pub rx_vlan: bool,
}

/// The features the interface has on, by their kernel names (`netdev_features_strings`).
pub fn rx_offloads(iface: &str) -> io::Result<RxOffloads> {
    let names = feature_names(iface)?;
    let active = active_features(iface, names.len())?;
    let on = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .is_some_and(|i| active[i / 32] & (1 << (i % 32)) != 0)
    };
    Ok(RxOffloads {
        lro: on("rx-lro"),
        gro_hw: on("rx-gro-hw"),
        rx_vlan: on("rx-vlan-hw-parse"),
    })
}

/// `struct ethtool_sset_info` asking for one string set, so one count comes back.
#[repr(C)]
struct SsetInfo {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    len: u32,
}

fn feature_names(iface: &str) -> io::Result<Vec<String>> {
    let mut info = SsetInfo {
        cmd: ETHTOOL_GSSET_INFO,
        reserved: 0,
        sset_mask: 1 << ETH_SS_FEATURES,
        len: 0,
    };
    ethtool(iface, &mut info)?;
    if info.sset_mask & (1 << ETH_SS_FEATURES) == 0 {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    let n = info.len as usize;
    // `struct ethtool_gstrings`: cmd, string_set, len, then n names of 32 bytes; u32 words keep
    // the header aligned.
    let mut buf = vec![0u32; 3 + n * ETH_GSTRING_LEN / 4];
    buf[..3].copy_from_slice(&[ETHTOOL_GSTRINGS, ETH_SS_FEATURES, info.len]);
    // SAFETY: the buffer holds the header and `n` names, as the command asks.
    unsafe { ethtool_raw(iface, buf.as_mut_ptr().cast())? };
    let bytes: Vec<u8> = buf[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(bytes
        .chunks(ETH_GSTRING_LEN)
        .map(|name| {
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            String::from_utf8_lossy(&name[..end]).into_owned()
        })
        .collect())
}

/// The `active` words of `struct ethtool_gfeatures`: cmd, size, then per 32 features the words
/// available, requested, active, never_changed.
fn active_features(iface: &str, n: usize) -> io::Result<Vec<u32>> {
    let blocks = n.div_ceil(32);
    let mut buf = vec![0u32; 2 + blocks * 4];
    buf[..2].copy_from_slice(&[ETHTOOL_GFEATURES, blocks as u32]);
    // SAFETY: the buffer holds the header and `blocks` feature blocks, as the command asks.
    unsafe { ethtool_raw(iface, buf.as_mut_ptr().cast())? };
    Ok(buf[2..].chunks(4).map(|block| block[2]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_features_are_readable() {
        // Loopback has named features but none of the receive offloads that matter for XDP.
        assert_eq!(rx_offloads("lo").unwrap(), RxOffloads::default());
        assert!(feature_names("lo").unwrap().iter().any(|n| n == "rx-lro"));
    }

    #[test]
    fn unknown_interfaces_are_errors() {
        assert!(channels("nosuch-sg0").is_err());
        assert!(rx_offloads("nosuch-sg0").is_err());
    }
}
