//! An instance's own-cookie duties: their start, or the fall-back to the kernel's cookies when
//! the kernel refuses them; while it runs, the metadata watch and the secret's rotation.

use std::path::Path;

use aya::Ebpf;
use log::{info, warn};

use crate::{
    config::{OwnTc, RunConfig},
    daemon::{
        instance::Instance,
        own_cookies::{self, OwnError},
        prepare::{StartError, set_sysctls},
    },
    datapath::{error::LoaderError, own, pins},
    host::sysctl::SysctlSaver,
};

/// `--own-tc check`: the TC program that checks cookies again, behind the link from the start
/// instead of after the metadata watch found the driver without metadata. Returns whether it
/// is in place (then there is nothing left to watch for).
pub fn tc_check_from_start(
    ebpf: &mut Ebpf,
    iface: &str,
    cfg: &RunConfig,
    tc_pin: &Path,
) -> Result<bool, LoaderError> {
    if cfg.own_tc != OwnTc::Check {
        return Ok(false);
    }
    own::use_tc_check(ebpf, tc_pin)?;
    info!(
        "{iface}: TC program {} from the start (--own-tc check): every packet to a protected \
         port pays a parse in TC",
        own::TC_CHECK_PROGRAM
    );
    Ok(true)
}

impl Instance {
    /// Own cookies' key, programs and TC link. Where the kernel refuses them and `--cookies
    /// auto`, the kernel's cookies instead, with the settings they need (`idle` then is their
    /// value for `tcp_syncookies`): `own_cookies::start` left nothing of own cookies behind.
    /// Returns whether own cookies are in place (the caller's config map then says so).
    pub(super) fn start_own(
        &mut self,
        cfg: &RunConfig,
        tc_pin: &Path,
        saver: &mut SysctlSaver,
        adopting_cookies: bool,
        idle: &mut u64,
    ) -> Result<bool, StartError> {
        let ebpf = self.ebpf.as_mut().expect("loaded before own cookies start");
        match own_cookies::start(ebpf, &self.iface, cfg, tc_pin) {
            Ok(map) => {
                self.secret = Some(map);
                self.meta_warned = tc_check_from_start(ebpf, &self.iface, cfg, tc_pin)?;
                own_cookies::announce_own(cfg, &self.iface);
                Ok(true)
            }
            Err(e) => {
                own_cookies::fall_back(cfg, &self.iface, e)?;
                *idle = set_sysctls(cfg.mode, saver, adopting_cookies)?;
                Ok(false)
            }
        }
    }

    /// Own cookies: a one-time warning when the driver has no XDP metadata (see
    /// `own_cookies::warn_if_meta_unsupported`).
    pub fn watch_own(&mut self) {
        if self.secret.is_some()
            && !self.meta_warned
            && let Some(dir) = &self.pin_dir
            && own_cookies::warn_if_meta_unsupported(&self.iface, dir)
        {
            self.meta_warned = true;
            let pin = dir.join(pins::TC_LINK);
            if let Some(ebpf) = self.ebpf.as_mut()
                && let Err(e) = own::use_tc_check(ebpf, &pin)
            {
                warn!("{}: {:#}", self.iface, anyhow::Error::from(e));
            }
        }
    }

    /// Reload: a new cookie secret, when this interface uses own cookies.
    pub fn rotate_secret(&mut self, cfg: &RunConfig) -> Result<(), OwnError> {
        match &mut self.secret {
            Some(map) => own_cookies::rotate(map, &self.iface, cfg),
            None => Ok(()),
        }
    }
}
