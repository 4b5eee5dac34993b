//! What the program is told through its maps at start and on reload: the config map (from the
//! run configuration and the kernel's TCP settings) and the port map.

use std::{borrow::BorrowMut, time::Duration};

use aya::{
    Ebpf,
    maps::{Array, MapData, MapError},
};
use log::info;
use synguard_common::maps::{
    Config, MAX_CPUS, MODE_ALWAYS, MODE_AUTO, PORT_PROTECTED, PortConfig, names,
};

use crate::{
    config::{CookieMode, RunConfig},
    datapath::error::LoaderError,
    host::sysctl::{self, TcpParams},
};

/// While cookies are active, one SYN per listener per this period goes to the kernel. The kernel
/// accepts cookie ACKs only if the listener overflowed in the last 120 s
/// (`tcp_synq_no_recent_overflow()`, see docs/kernel-cookies.md); a SYN per second keeps that
/// fresh with room to spare and costs the kernel nothing measurable.
pub const LISTENER_REFRESH: Duration = Duration::from_secs(1);

/// The map contents for a run configuration. Pure, so it is unit-tested.
pub fn build_config(cfg: &RunConfig, tcp: &TcpParams, mtu: u32, nr_cpus: u32) -> Config {
    let (mss_v4, mss_v6) = sysctl::mss_from_mtu(mtu);
    Config {
        mode: match cfg.mode {
            CookieMode::Always => MODE_ALWAYS,
            CookieMode::Auto => MODE_AUTO,
        },
        wscale: cfg.wscale.unwrap_or(tcp.wscale) as u32,
        mss_v4,
        mss_v6,
        ecn: tcp.ecn as u32,
        syn_on_pps: cfg.syn_on_pps,
        syn_off_pps: cfg.syn_off_pps,
        nr_cpus: nr_cpus.clamp(1, MAX_CPUS),
        rcv_space: tcp.rcv_space,
        cookies: synguard_common::maps::COOKIES_KERNEL,
        hold_ns: cfg.hold.as_nanos().min(u64::MAX as u128) as u64,
        refresh_ns: LISTENER_REFRESH.as_nanos() as u64,
        // Filled in from the interface and the kernel by the caller (`nic::hw_addr`,
        // `btf::request_isn_offset`).
        own_mac: [0; 6],
        loopback: 0,
        _pad_mac: 0,
        reqsk_isn_off: 0,
        _pad_isn: 0,
        synack_windows: synguard_common::cookie::synack_windows(tcp.rcv_space),
    }
}

/// Writes the config map and protects `ports`; `inherited_ports`: the port map came from a
/// previous program, so ports no longer wanted are cleared.
pub fn write_config(
    ebpf: &mut Ebpf,
    config: &Config,
    ports: &[u16],
    inherited_ports: bool,
) -> Result<(), LoaderError> {
    let map_err = |name| move |source| LoaderError::Map { name, source };
    let mut cfg_map: Array<_, Config> = Array::try_from(
        ebpf.map_mut(names::CONFIG)
            .ok_or_else(|| LoaderError::Missing(format!("map {}", names::CONFIG)))?,
    )
    .map_err(map_err(names::CONFIG))?;
    cfg_map.set(0, config, 0).map_err(map_err(names::CONFIG))?;

    let mut port_map: Array<_, PortConfig> = Array::try_from(
        ebpf.map_mut(names::PORTS)
            .ok_or_else(|| LoaderError::Missing(format!("map {}", names::PORTS)))?,
    )
    .map_err(map_err(names::PORTS))?;
    sync_ports(&mut port_map, ports, inherited_ports).map_err(map_err(names::PORTS))
}

/// Protects `ports` in the port map; with `clear_others`, then unprotects every port not among
/// them (a map inherited from a previous run, or a reload). New ports first, then the ones no
/// longer wanted: no port that stays protected is ever off. `ports` must be sorted.
pub fn sync_ports<T: BorrowMut<MapData>>(
    port_map: &mut Array<T, PortConfig>,
    ports: &[u16],
    clear_others: bool,
) -> Result<(), MapError> {
    for &port in ports {
        port_map.set(
            port as u32,
            PortConfig {
                flags: PORT_PROTECTED,
            },
            0,
        )?;
    }
    if clear_others {
        for port in 0..=u16::MAX {
            let flags = port_map.get(&(port as u32), 0)?.flags;
            if flags != 0 && ports.binary_search(&port).is_err() {
                port_map.set(port as u32, PortConfig { flags: 0 }, 0)?;
                info!("port {port} no longer protected");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::config::{CookieMode, DEFAULT_RUN_DIR, XdpAttach};

    fn run_config() -> RunConfig {
        RunConfig {
            ifaces: vec!["a".into()],
            ports: vec![80],
            mode: CookieMode::Auto,
            syn_on_pps: 1000,
            syn_off_pps: 500,
            hold: Duration::from_secs(10),
            xdp: XdpAttach::NativeThenSkb,
            wscale: None,
            cookies: crate::config::Cookies::Auto,
            cookie_secret_file: None,
            own_tc: crate::config::OwnTc::Auto,
            metrics_addr: None,
            log_format: crate::config::LogFormat::Human,
            pin_base: PathBuf::from(crate::config::DEFAULT_PIN_BASE),
            run_dir: PathBuf::from(DEFAULT_RUN_DIR),
            limits: Default::default(),
            allow: Vec::new(),
            block: Vec::new(),
            ignore_nic_checks: false,
        }
    }

    #[test]
    fn config_from_kernel_settings() {
        let tcp = TcpParams {
            wscale: 10,
            rcv_space: 65536,
            ecn: true,
        };
        let c = build_config(&run_config(), &tcp, 1500, 2);
        assert_eq!(c.mode, MODE_AUTO);
        assert_eq!((c.wscale, c.mss_v4, c.mss_v6), (10, 1460, 1440));
        assert_eq!((c.ecn, c.rcv_space, c.nr_cpus), (1, 65536, 2));
        // The largest IPv4 class (1460) in 65536 bytes: 44 whole segments.
        assert_eq!(c.synack_windows[3], 64240);
        assert_eq!((c.syn_on_pps, c.syn_off_pps), (1000, 500));
        assert_eq!(c.hold_ns, 10_000_000_000);
        assert_eq!(c.refresh_ns, 1_000_000_000);
    }

    #[test]
    fn config_overrides_and_bounds() {
        let tcp = TcpParams {
            wscale: 10,
            rcv_space: 65536,
            ecn: false,
        };
        let mut rc = run_config();
        rc.mode = CookieMode::Always;
        rc.wscale = Some(7);
        let c = build_config(&rc, &tcp, 9000, 1000);
        assert_eq!(c.mode, MODE_ALWAYS);
        assert_eq!(c.wscale, 7);
        assert_eq!(c.ecn, 0);
        assert_eq!(c.nr_cpus, MAX_CPUS);
        assert_eq!(c.mss_v4, 8960);
    }
}
