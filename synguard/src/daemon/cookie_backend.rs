//! The cookie-mode controller's access to the kernel: the program's mode maps, its
//! configuration, rate windows and event counters, and the `tcp_syncookies` sysctl.

use std::path::Path;

use aya::{
    Ebpf,
    maps::{Array, MapData, MapError, PerCpuArray, PerCpuValues},
};
use synguard_common::{
    maps::{Config, ModeState, ReadyState, SynWindow, names},
    reason::Event,
};

use crate::{
    daemon::mode::{Backend, ControlError},
    datapath::{error::LoaderError, load::take_map, maps, rate},
    host::{clock::monotonic_ns, sysctl::SyncookieVotes},
};

pub struct MapBackend {
    iface: String,
    mode: Array<MapData, ModeState>,
    ready: Array<MapData, ReadyState>,
    config: Array<MapData, Config>,
    windows: PerCpuArray<MapData, SynWindow>,
    events: PerCpuArray<MapData, u64>,
    syncookies: SyncookieVotes,
    /// False with own cookies: the kernel's cookie setting is never touched.
    kernel_settings: bool,
}

impl MapBackend {
    /// Takes the mode and ready maps out of the loaded object; opens the configuration, the
    /// rate windows and the event counters from their pins in `pin_dir` (others use them too).
    pub fn take(
        ebpf: &mut Ebpf,
        iface: &str,
        pin_dir: &Path,
        syncookies: SyncookieVotes,
    ) -> Result<Self, LoaderError> {
        let pinned = |name: &'static str| {
            maps::open(pin_dir, name).map_err(|e| LoaderError::Missing(format!("{name}: {e}")))
        };
        let wrap = |name| move |source| LoaderError::Map { name, source };
        Ok(MapBackend {
            iface: iface.to_string(),
            mode: take_array(ebpf, names::MODE)?,
            ready: take_array(ebpf, names::READY)?,
            config: Array::try_from(pinned(names::CONFIG)?).map_err(wrap(names::CONFIG))?,
            windows: PerCpuArray::try_from(pinned(names::SYN_WINDOW)?)
                .map_err(wrap(names::SYN_WINDOW))?,
            events: PerCpuArray::try_from(pinned(names::EVENTS)?).map_err(wrap(names::EVENTS))?,
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

fn map_error(map: &'static str) -> impl Fn(MapError) -> ControlError {
    move |source| ControlError::Map { map, source }
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

    fn set_mode_state(&mut self, state: ModeState) -> Result<(), ControlError> {
        self.mode.set(0, state, 0).map_err(map_error(names::MODE))
    }

    fn config(&self) -> Result<Config, ControlError> {
        self.config.get(&0, 0).map_err(map_error(names::CONFIG))
    }

    fn syn_rate(&self, now_ns: u64) -> Result<u64, ControlError> {
        rate::syn_rate(&self.windows, now_ns).map_err(map_error(names::SYN_WINDOW))
    }

    /// Adds one on CPU 0's slot (read, add, write back every CPU's value). The program counts
    /// an off only while it sees cookies wanted, which the controller cleared just before, so
    /// an increment of this slot can race with ours only on a CPU that read the old state in
    /// that same moment: at worst one off is counted twice or not at all.
    fn count_mode_off(&mut self) -> Result<(), ControlError> {
        let slot = Event::CookieModeOff.index();
        let mut values: Vec<u64> = self
            .events
            .get(&slot, 0)
            .map_err(map_error(names::EVENTS))?
            .iter()
            .copied()
            .collect();
        if let Some(first) = values.first_mut() {
            *first += 1;
        }
        let values = PerCpuValues::try_from(values).map_err(|e| ControlError::Map {
            map: names::EVENTS,
            source: MapError::IoError(e),
        })?;
        self.events
            .set(slot, values, 0)
            .map_err(map_error(names::EVENTS))
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

    fn switches_kernel(&self) -> bool {
        self.kernel_settings
    }

    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }
}
