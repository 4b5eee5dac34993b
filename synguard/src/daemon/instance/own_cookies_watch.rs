//! An instance's own-cookie duties while it runs: the metadata watch and the secret's rotation.

use log::warn;

use crate::{
    config::RunConfig,
    daemon::{
        instance::Instance,
        own_cookies::{self, OwnError},
    },
    datapath::{own, pins},
};

impl Instance {
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
