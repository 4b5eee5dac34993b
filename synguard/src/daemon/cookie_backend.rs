//! The cookie-mode controller's access to the kernel: the program's two mode maps and the
//! `tcp_syncookies` sysctl.

use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use synguard_common::maps::{ModeState, ReadyState, names};

use crate::{
    daemon::mode::{Backend, ControlError},
    datapath::{error::LoaderError, load::take_map},
    host::{clock::monotonic_ns, sysctl::SyncookieVotes},
};

pub struct MapBackend {
    iface: String,
    mode: Array<MapData, ModeState>,
    ready: Array<MapData, ReadyState>,
    syncookies: SyncookieVotes,
    /// False with own cookies: the kernel's cookie setting is never touched.
    kernel_settings: bool,
}

impl MapBackend {
    /// Takes the mode and ready maps out of the loaded object.
    pub fn take(
        ebpf: &mut Ebpf,
        iface: &str,
        syncookies: SyncookieVotes,
    ) -> Result<Self, LoaderError> {
        Ok(MapBackend {
            iface: iface.to_string(),
            mode: take_array(ebpf, names::MODE)?,
            ready: take_array(ebpf, names::READY)?,
            syncookies,
            kernel_settings: true,
        })
    }

    /// Own cookies: leave `tcp_syncookies` as the host has it.
    pub fn without_kernel_settings(mut self) -> Self {
        self.kernel_settings = false;
        self
    }
}

fn take_array<V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<Array<MapData, V>, LoaderError> {
    Array::try_from(take_map(ebpf, name)?).map_err(|source| LoaderError::Map { name, source })
}

impl Backend for MapBackend {
    fn mode_state(&self) -> Result<ModeState, ControlError> {
        self.mode.get(&0, 0).map_err(|source| ControlError::Map {
            map: names::MODE,
            source,
        })
    }

    fn set_ready(&mut self, ready: ReadyState) -> Result<(), ControlError> {
        self.ready
            .set(0, ready, 0)
            .map_err(|source| ControlError::Map {
                map: names::READY,
                source,
            })
    }

    fn set_syncookies(&mut self, value: u64) -> Result<(), ControlError> {
        if !self.kernel_settings {
            return Ok(());
        }
        Ok(self.syncookies.set(&self.iface, value)?)
    }

    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }
}
