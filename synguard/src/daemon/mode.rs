//! Cookie-mode controller: keeps the kernel's `tcp_syncookies` in step with what the XDP program
//! does, and tells the program through `SG_READY` when the kernel will accept its cookies.
//!
//! The XDP program decides *when* cookies are wanted (auto mode, `SG_MODE`), but a cookie is only
//! useful if the kernel accepts the client's ACK, which needs `tcp_syncookies=2` (the kernel's
//! `cookie_v4_check` refuses cookie ACKs otherwise, see docs/kernel-cookies.md). So the order of every switch is chosen to fail safe:
//! - on:  sysctl 2 first, then READY=1. If the sysctl write fails READY stays 0 and the program
//!   keeps passing SYNs to the kernel.
//! - off: READY=0 first, then the sysctl back. No cookie leaves after the kernel stops taking them.
//!
//! The program decides "off" only when a SYN closes a rate window; after a flood that simply
//! stops, no SYN may come for hours. So the controller applies the same off rule
//! ([`ModeState::hold_expired`]) on its own clock every tick, writes the decision into `SG_MODE`
//! as the program would have, counts it, and reports the flood's end itself.

use aya::maps::MapError;
use log::{info, warn};
use synguard_common::{
    maps::{Config, ModeState, ReadyState},
    policy::{FLOOD_END, FloodEvent},
};
use thiserror::Error;

use crate::{
    config::CookieMode,
    host::sysctl::{SYNCOOKIES_ALWAYS, SysctlError},
};

/// How often the run loop calls [`Controller::tick`]. The XDP program closes a rate window every
/// 100 ms; polling twice per window keeps the delay between "wanted" and "ready" under a window.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(50);

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("cannot access the {map} map")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
}

/// What the controller touches. A trait so the switch order can be tested without a kernel.
pub trait Backend {
    fn mode_state(&self) -> Result<ModeState, ControlError>;
    /// Writes auto mode's decision the way the program does (only to turn cookies off on time).
    fn set_mode_state(&mut self, state: ModeState) -> Result<(), ControlError>;
    /// The program's configuration as it is now (a reload changes the thresholds and hold).
    fn config(&self) -> Result<Config, ControlError>;
    /// SYNs per second to protected ports at `now_ns`, from the program's windows.
    fn syn_rate(&self, now_ns: u64) -> Result<u64, ControlError>;
    /// Counts a mode switch to off under the program's `cookie_mode_off` event.
    fn count_mode_off(&mut self) -> Result<(), ControlError>;
    fn set_ready(&mut self, ready: ReadyState) -> Result<(), ControlError>;
    fn set_syncookies(&mut self, value: u64) -> Result<(), ControlError>;
    /// Whether cookies need the kernel switched (`tcp_syncookies`) before they may be sent. Not
    /// with own cookies: the kernel takes them through `bpf_sk_assign_tcp_reqsk` whatever its
    /// settings, so the program is ready from the start and switches by itself, without
    /// waiting for a tick of this controller (which a flood can starve of CPU).
    fn switches_kernel(&self) -> bool;
    /// The programs' clock in ns (`host::clock::monotonic_ns`).
    fn now_ns(&self) -> u64;
}

/// What a tick has to do, from the program's wish and the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Nothing,
    TurnOn,
    TurnOff,
}

pub fn decide(wanted: bool, ready: bool) -> Step {
    match (wanted, ready) {
        (true, false) => Step::TurnOn,
        (false, true) => Step::TurnOff,
        _ => Step::Nothing,
    }
}

pub struct Controller<B> {
    backend: B,
    mode: CookieMode,
    /// `tcp_syncookies` as set at attach; what auto mode returns to when cookies go off.
    idle_syncookies: u64,
    ready: bool,
    /// The sysctl could not be put back after cookies went off; retried on every tick.
    restore_pending: bool,
    /// Last error logged, so a persistent failure is logged once, not 20 times a second.
    last_error: Option<String>,
    /// The interface, for log lines (one process may guard several).
    name: String,
    iface: String,
}

impl<B: Backend> Controller<B> {
    pub fn new(backend: B, mode: CookieMode, idle_syncookies: u64) -> Self {
        Controller {
            backend,
            mode,
            idle_syncookies,
            ready: false,
            restore_pending: false,
            last_error: None,
            name: String::new(),
            iface: String::new(),
        }
    }

    /// Names the interface in this controller's log lines.
    pub fn named(mut self, iface: &str) -> Self {
        self.name = format!("{iface}: ");
        self.iface = iface.to_string();
        self
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Like [`Controller::start`], but keeps cookies on when a previous instance left them on
    /// (`current` ready): a take-over during a flood must not hand a single SYN to the kernel.
    pub fn resume(&mut self, current: Option<ReadyState>) -> Result<(), ControlError> {
        match current {
            Some(r) if r.kernel_ready != 0 => {
                self.ready = true;
                info!("{}cookies stay on (taken over during a flood)", self.name);
                Ok(())
            }
            _ => self.start(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Initial READY state. Always mode: the sysctls were set before attach, so the kernel takes
    /// cookies from the start; so it does with own cookies in either mode. Auto mode with the
    /// kernel's cookies: not until the program asks.
    pub fn start(&mut self) -> Result<(), ControlError> {
        let now = self.backend.now_ns();
        let ready = self.mode == CookieMode::Always || !self.backend.switches_kernel();
        if ready {
            self.backend.set_ready(ReadyState::new(true, now))?;
        } else {
            self.backend.set_ready(ReadyState::default())?;
        }
        self.ready = ready;
        Ok(())
    }

    /// One control step (auto mode; always mode has nothing to follow). Returns the end of a
    /// flood when this tick ended it on the clock (the program sends no event for that).
    pub fn tick(&mut self) -> Option<FloodEvent> {
        if self.mode == CookieMode::Always {
            return None;
        }
        match self.step() {
            Ok(ended) => {
                if self.last_error.take().is_some() {
                    info!("{}cookie-mode controller recovered", self.name);
                }
                ended
            }
            Err(e) => {
                let text = format!("{:#}", anyhow::Error::from(e));
                if self.last_error.as_deref() != Some(text.as_str()) {
                    warn!(
                        "{}cookie-mode controller: {text} (retrying every {TICK:?})",
                        self.name
                    );
                    self.last_error = Some(text);
                }
                None
            }
        }
    }

    /// Auto mode's off rule on the loader's clock: the hold ran out and the rate is below the
    /// off threshold now, so cookies go off as the program would have decided at its next SYN.
    /// The whole `SG_MODE` entry is written back; a CPU that closes a window at the same moment
    /// may have its stamp overwritten, which at worst turns cookies on again one window later.
    fn end_on_time(&mut self, state: &mut ModeState) -> Result<Option<FloodEvent>, ControlError> {
        let now = self.backend.now_ns();
        let cfg = self.backend.config()?;
        if !state.hold_expired(cfg.hold_ns, now) {
            return Ok(None);
        }
        let rate = self.backend.syn_rate(now)?;
        if rate >= cfg.syn_off_pps as u64 {
            // SYNs are coming: the program updates its own state at the next window.
            return Ok(None);
        }
        state.cookies_wanted = 0;
        state.switches += 1;
        state.last_rate_pps = rate;
        self.backend.set_mode_state(*state)?;
        self.backend.count_mode_off()?;
        Ok(Some(FloodEvent {
            kind: FLOOD_END,
            port: 0,
            rate_pps: rate,
            time_ns: now,
        }))
    }

    fn step(&mut self) -> Result<Option<FloodEvent>, ControlError> {
        if self.restore_pending {
            self.backend.set_syncookies(self.idle_syncookies)?;
            self.restore_pending = false;
        }
        let mut state = self.backend.mode_state()?;
        let ended = self.end_on_time(&mut state)?;
        self.follow(&state)?;
        Ok(ended)
    }

    /// Puts the kernel side in step with the program's wish (own cookies: nothing to follow).
    fn follow(&mut self, state: &ModeState) -> Result<(), ControlError> {
        if !self.backend.switches_kernel() {
            return Ok(());
        }
        match decide(state.cookies_wanted != 0, self.ready) {
            Step::Nothing => Ok(()),
            Step::TurnOn => {
                self.backend.set_syncookies(SYNCOOKIES_ALWAYS)?;
                let now = self.backend.now_ns();
                self.backend.set_ready(ReadyState::new(true, now))?;
                self.ready = true;
                info!(
                    "{}cookies on (SYN rate {} pps)",
                    self.name, state.last_rate_pps
                );
                Ok(())
            }
            Step::TurnOff => {
                let now = self.backend.now_ns();
                self.backend.set_ready(ReadyState::new(false, now))?;
                self.ready = false;
                info!(
                    "{}cookies off (SYN rate {} pps)",
                    self.name, state.last_rate_pps
                );
                if let Err(e) = self.backend.set_syncookies(self.idle_syncookies) {
                    self.restore_pending = true;
                    return Err(e);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
