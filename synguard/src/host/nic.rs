//! Facts about the network interface, read with ioctls on a socket in the caller's network
//! namespace (not from /sys/class/net: under `nsenter --net` that /sys belongs to the host).

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// `ETHTOOL_GFLAGS` and its receive-VLAN-offload bit, and `ETHTOOL_GDRVINFO`
/// (include/uapi/linux/ethtool.h).
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

pub(crate) fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

pub(crate) fn ifreq(iface: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = iface.as_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// The interface's MTU (SIOCGIFMTU).
pub fn mtu(iface: &str) -> io::Result<u32> {
    let sock = socket()?;
    let mut req = ifreq(iface)?;
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifru_mtu of the ifreq we pass.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel filled the mtu member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_mtu }.max(0) as u32)
}

/// The interface's hardware address and whether it is a loopback device (SIOCGIFHWADDR). The XDP
/// program answers only SYNs sent to that address (`synguard_common::host::mac_class`).
pub fn hw_addr(iface: &str) -> io::Result<([u8; 6], bool)> {
    let sock = socket()?;
    let mut req = ifreq(iface)?;
    // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifru_hwaddr of the ifreq we pass.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel filled the hwaddr member of the union.
    let addr = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mac = core::array::from_fn(|i| addr.sa_data[i] as u8);
    Ok((mac, addr.sa_family == libc::ARPHRD_LOOPBACK))
}

/// Whether receive VLAN offload (`ethtool -k IF | grep rx-vlan-offload`) is on. With it on, the
/// NIC strips 802.1Q tags into packet metadata that XDP cannot read without a kfunc, so a tagged
/// SYN looks untagged to the program and its XDP_TX reply leaves without the tag (see
/// docs/veth-and-nics.md). Drivers without ethtool support answer EOPNOTSUPP.
pub fn rx_vlan_offload(iface: &str) -> io::Result<bool> {
    let sock = socket()?;
    let mut req = ifreq(iface)?;
    let mut value = EthtoolValue {
        cmd: ETHTOOL_GFLAGS,
        data: 0,
    };
    req.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GFLAGS reads `cmd` and writes `data` of the struct that
    // ifru_data points to, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data & ETH_FLAG_RXVLAN != 0)
}

/// `struct ethtool_drvinfo`: only the driver name is read.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// The interface's driver name (`ethtool -i`).
pub fn driver(iface: &str) -> io::Result<String> {
    let sock = socket()?;
    let mut req = ifreq(iface)?;
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    req.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GDRVINFO fills the struct ifru_data points to.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// VLAN devices on top of `iface` in the caller's network namespace, from the 8021q module's
/// table (`/proc/net` is the reading process's namespace, unlike /sys under `nsenter`). None
/// when the module is not loaded: then no VLAN can be in use.
pub fn vlan_devices_on(iface: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/net/vlan/config")
        .map(|t| vlans_on(&t, iface))
        .unwrap_or_default()
}

/// Parses the table: a header of two lines, then `NAME | VID | PARENT` per device.
fn vlans_on(table: &str, iface: &str) -> Vec<String> {
    table
        .lines()
        .skip(2)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            (cols.len() == 3 && cols[2] == iface).then(|| cols[0].to_string())
        })
        .collect()
}

/// An interface name that is not in this network namespace.
#[derive(Debug, thiserror::Error)]
#[error("no interface '{iface}' in this network namespace (interfaces here: {})", available.join(", "))]
pub struct NoSuchInterface {
    pub iface: String,
    pub available: Vec<String>,
}

/// Interfaces visible in the caller's network namespace, for error messages.
pub fn interfaces() -> Vec<String> {
    nix::net::if_::if_nameindex()
        .map(|list| {
            list.iter()
                .map(|i| i.name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The name of the interface with index `index` in the caller's network namespace, if there
/// is one.
pub fn name_of(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes `if_indextoname` may write, NUL included.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success `buf` holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// Fails with the list of interfaces that do exist when `iface` is not one of them.
pub fn check_interface(iface: &str) -> Result<u32, NoSuchInterface> {
    let name = CString::new(iface).map_err(|_| NoSuchInterface {
        iface: iface.to_string(),
        available: interfaces(),
    })?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(NoSuchInterface {
            iface: iface.to_string(),
            available: interfaces(),
        });
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_mtu() {
        assert!(mtu("lo").unwrap() >= 1280);
    }

    #[test]
    fn loopback_is_a_loopback_without_a_mac() {
        assert_eq!(hw_addr("lo").unwrap(), ([0; 6], true));
    }

    #[test]
    fn an_index_names_its_interface() {
        let lo = check_interface("lo").unwrap();
        assert_eq!(name_of(lo).as_deref(), Some("lo"));
        assert_eq!(name_of(u32::MAX), None);
    }

    #[test]
    fn unknown_interfaces_are_errors() {
        assert!(mtu("nosuch-sg0").is_err());
        assert!(rx_vlan_offload("nosuch-sg0").is_err());
        assert!(hw_addr("nosuch-sg0").is_err());
        assert!(mtu("an-interface-name-far-too-long").is_err());
    }

    #[test]
    fn vlan_table() {
        let table = "VLAN Dev name\t | VLAN ID\nName-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\n\
                     eth0.100       | 100  | eth0\nvlan7          | 7  | eth1\n";
        assert_eq!(vlans_on(table, "eth0"), ["eth0.100"]);
        assert_eq!(vlans_on(table, "eth1"), ["vlan7"]);
        assert!(vlans_on(table, "eth2").is_empty());
        assert!(vlans_on("", "eth0").is_empty());
    }

    #[test]
    fn missing_interface_lists_the_ones_that_exist() {
        let e = check_interface("nosuch-sg0").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("no interface 'nosuch-sg0'"), "{text}");
        assert!(text.contains("lo"), "{text}");
        assert!(check_interface("lo").is_ok());
    }
}
