//! What the program is told through its maps at start and on reload: the config map (from the
//! run configuration and the kernel's TCP settings) and the port table (`ports`).

use std::time::Duration;

use aya::{Ebpf, maps::Array};
use synguard_common::maps::{
    COOKIES_KIND, Config, HOST_NO_TIMESTAMPS, MAX_CPUS, MODE_ALWAYS, MODE_AUTO, cookies_own, names,
};

use crate::{
    config::{CookieMode, RunConfig},
    datapath::{error::LoaderError, ports},
    host::{facts::HostFacts, sysctl},
};

/// While cookies are active, one SYN per listener per this period goes to the kernel. The kernel
/// accepts cookie ACKs only if the listener overflowed in the last 120 s
/// (`tcp_synq_no_recent_overflow()`, see docs/kernel-cookies.md); a SYN per second keeps that
/// fresh with room to spare and costs the kernel nothing measurable.
pub const LISTENER_REFRESH: Duration = Duration::from_secs(1);

/// The map contents for a run configuration on a host with `facts`. Pure, so it is unit-tested.
pub fn build_config(cfg: &RunConfig, facts: &HostFacts, nr_cpus: u32) -> Config {
    let mut c = Config {
        mode: match cfg.mode {
            CookieMode::Always => MODE_ALWAYS,
            CookieMode::Auto => MODE_AUTO,
        },
        syn_on_pps: cfg.syn_on_pps,
        syn_off_pps: cfg.syn_off_pps,
        nr_cpus: nr_cpus.clamp(1, MAX_CPUS),
        cookies: synguard_common::maps::COOKIES_KERNEL,
        hold_ns: cfg.hold.as_nanos().min(u64::MAX as u128) as u64,
        refresh_ns: LISTENER_REFRESH.as_nanos() as u64,
        // Filled in from the kernel's BTF by the caller (`btf::request_isn_offset`).
        reqsk_isn_off: 0,
        ..Config::default()
    };
    set_host_fields(&mut c, facts, cfg.wscale);
    c
}

/// The fields of `c` that follow the host (`facts`): the MSS caps from the MTU, the window scale
/// (unless `--wscale` fixes it), the initial window and ECN from the kernel's TCP settings, the
/// MAC address the SYNs must be sent to, and the options the kernel has switched off. At start
/// and whenever the host changes under a running program (`daemon::instance::host_follow`).
/// Pure.
pub fn set_host_fields(c: &mut Config, facts: &HostFacts, wscale: Option<u8>) {
    let tcp = &facts.tcp;
    (c.mss_v4, c.mss_v6) = sysctl::mss_from_mtu(facts.mtu);
    c.wscale = wscale.unwrap_or(tcp.wscale) as u32;
    c.ecn = tcp.ecn as u32;
    c.rcv_space = tcp.rcv_space;
    c.synack_windows = synguard_common::cookie::synack_windows(tcp.rcv_space);
    // SYNs to another destination MAC are not the host's (docs/host-checks.md); unknown: fail
    // open, any unicast SYN is answered.
    (c.own_mac, c.loopback) = match facts.mac {
        Some((mac, loopback)) => (mac, loopback as u8),
        None => ([0; 6], 0),
    };
    // Segments to another address are forwarded traffic, not the host's (docs/host-checks.md).
    facts.local.set(c);
    // IPv4 segments from the host's own addresses are martians unless the interface takes them.
    c.accept_local = facts.accept_local as u8;
    // Options the host's TCP has switched off, which neither kind of cookie may offer. The
    // kernel's cookies keep timestamps: synguard sets `tcp_timestamps` to 2 while they are in use
    // (`prepare::set_sysctls`), after this first reading.
    let off = if cookies_own(c.cookies) {
        facts.options_off
    } else {
        facts.options_off & !HOST_NO_TIMESTAMPS
    };
    // The reverse-path check, whose routes the caller has written (`datapath::reverse_path`).
    c.cookies = (c.cookies & COOKIES_KIND) | off | facts.reverse_path.flags;
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
        ebpf.map_mut(names::object_name(names::CONFIG))
            .ok_or_else(|| LoaderError::Missing(format!("map {}", names::CONFIG)))?,
    )
    .map_err(map_err(names::CONFIG))?;
    cfg_map.set(0, config, 0).map_err(map_err(names::CONFIG))?;

    let port_map = ebpf
        .map(names::object_name(names::PORTS))
        .ok_or_else(|| LoaderError::Missing(format!("map {}", names::PORTS)))?;
    ports::data(port_map)
        .and_then(|m| ports::sync(m, ports, inherited_ports))
        .map_err(map_err(names::PORTS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::config::{CookieMode, DEFAULT_RUN_DIR, XdpAttach};
    use crate::host::sysctl::TcpParams;
    use synguard_common::maps::{COOKIES_OWN, HOST_NO_SACK};

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

    fn facts(tcp: TcpParams, mtu: u32) -> HostFacts {
        HostFacts {
            mtu,
            mac: Some(([2, 0, 0, 0, 0, 1], false)),
            tcp,
            options_off: 0,
            local: Default::default(),
            accept_local: false,
            reverse_path: Default::default(),
        }
    }

    #[test]
    fn config_from_kernel_settings() {
        let tcp = TcpParams {
            wscale: 10,
            rcv_space: 65536,
            ecn: true,
        };
        let c = build_config(&run_config(), &facts(tcp, 1500), 2);
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
        let c = build_config(&rc, &facts(tcp, 9000), 1000);
        assert_eq!(c.mode, MODE_ALWAYS);
        assert_eq!(c.wscale, 7);
        assert_eq!(c.ecn, 0);
        assert_eq!(c.nr_cpus, MAX_CPUS);
        assert_eq!(c.mss_v4, 8960);
    }

    /// A changed host rewrites exactly the fields that follow it; the run configuration's
    /// stay, and so does own cookies' mode bit.
    #[test]
    fn host_changes_touch_only_the_host_fields() {
        let tcp = TcpParams {
            wscale: 7,
            rcv_space: 65536,
            ecn: false,
        };
        let mut c = build_config(&run_config(), &facts(tcp, 1500), 2);
        assert_eq!((c.own_mac, c.loopback), ([2, 0, 0, 0, 0, 1], 0));
        c.cookies = COOKIES_OWN;
        c.reqsk_isn_off = 1234;
        let before = c;
        let mut now = facts(
            TcpParams {
                wscale: 9,
                rcv_space: 131072,
                ecn: true,
            },
            1400,
        );
        now.mac = Some(([2, 0, 0, 0, 0, 2], false));
        now.options_off = HOST_NO_SACK;
        set_host_fields(&mut c, &now, None);
        assert_eq!((c.mss_v4, c.mss_v6, c.wscale, c.ecn), (1360, 1340, 9, 1));
        assert_eq!((c.rcv_space, c.own_mac), (131072, [2, 0, 0, 0, 0, 2]));
        assert_eq!(
            c.synack_windows,
            synguard_common::cookie::synack_windows(131072)
        );
        assert_eq!(c.cookies, COOKIES_OWN | HOST_NO_SACK);
        let untouched = Config {
            mss_v4: before.mss_v4,
            mss_v6: before.mss_v6,
            wscale: before.wscale,
            ecn: before.ecn,
            rcv_space: before.rcv_space,
            synack_windows: before.synack_windows,
            own_mac: before.own_mac,
            cookies: before.cookies,
            ..c
        };
        assert_eq!(untouched, before);
        // Switched back on, the flag goes.
        now.options_off = 0;
        set_host_fields(&mut c, &now, None);
        assert_eq!(c.cookies, COOKIES_OWN);
        // `--wscale` stays; an unreadable MAC answers any unicast SYN; the kernel's cookies get
        // the option flags but timestamps' (synguard keeps them on for those cookies).
        now.mac = None;
        now.options_off = HOST_NO_SACK | HOST_NO_TIMESTAMPS;
        let mut k = before;
        k.cookies = synguard_common::maps::COOKIES_KERNEL;
        set_host_fields(&mut k, &now, Some(5));
        assert_eq!((k.wscale, k.own_mac, k.cookies), (5, [0; 6], HOST_NO_SACK));
    }
}
