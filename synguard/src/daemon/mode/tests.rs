//! The controller's switch order and its off rule on the clock, against a recording fake.

use super::*;
use std::io;

/// Records every call so tests can check the order of side effects.
#[derive(Default)]
struct Fake {
    wanted: u32,
    /// When the program last saw the rate at or above the off threshold.
    last_above: u64,
    /// The rate the windows show now.
    rate: u64,
    now: u64,
    offs_counted: u64,
    calls: Vec<String>,
    fail_sysctl: bool,
    fail_ready: bool,
    ready: ReadyState,
    syncookies: u64,
    /// Own cookies: no kernel setting to switch.
    own: bool,
}

impl Backend for Fake {
    fn mode_state(&self) -> Result<ModeState, ControlError> {
        Ok(ModeState {
            cookies_wanted: self.wanted,
            last_rate_pps: 1234,
            last_above_ns: self.last_above,
            ..Default::default()
        })
    }
    fn set_mode_state(&mut self, state: ModeState) -> Result<(), ControlError> {
        self.calls.push(format!("mode={}", state.cookies_wanted));
        self.wanted = state.cookies_wanted;
        Ok(())
    }
    fn config(&self) -> Result<Config, ControlError> {
        Ok(Config {
            syn_off_pps: 500,
            hold_ns: HOLD,
            ..Default::default()
        })
    }
    fn syn_rate(&self, _now_ns: u64) -> Result<u64, ControlError> {
        Ok(self.rate)
    }
    fn count_mode_off(&mut self) -> Result<(), ControlError> {
        self.offs_counted += 1;
        Ok(())
    }
    fn set_ready(&mut self, ready: ReadyState) -> Result<(), ControlError> {
        self.calls.push(format!("ready={}", ready.kernel_ready));
        if self.fail_ready {
            return Err(ControlError::Map {
                map: "SG_READY",
                source: MapError::KeyNotFound,
            });
        }
        self.ready = ready;
        Ok(())
    }
    fn set_syncookies(&mut self, value: u64) -> Result<(), ControlError> {
        self.calls.push(format!("syncookies={value}"));
        if self.fail_sysctl {
            return Err(SysctlError::Write {
                name: "net.ipv4.tcp_syncookies".into(),
                value: value.to_string(),
                source: io::Error::from_raw_os_error(libc::EACCES),
            }
            .into());
        }
        self.syncookies = value;
        Ok(())
    }
    fn switches_kernel(&self) -> bool {
        !self.own
    }
    fn now_ns(&self) -> u64 {
        self.now.max(42)
    }
}

const HOLD: u64 = 3_000_000_000;

#[test]
fn cookies_go_off_after_the_hold_without_another_syn() {
    let mut c = Controller::new(Fake::default(), CookieMode::Auto, 1);
    c.start().unwrap();
    // A flood: the program wants cookies and saw the rate high at t = 10 s.
    c.backend.wanted = 1;
    c.backend.last_above = 10_000_000_000;
    c.backend.now = 10_050_000_000;
    c.backend.rate = 50_000;
    assert_eq!(c.tick(), None);
    assert!(c.is_ready());
    // Silence: no SYN, so the program never looks again. Within the hold nothing changes.
    c.backend.rate = 0;
    c.backend.now = 10_000_000_000 + HOLD - 1;
    assert_eq!(c.tick(), None);
    assert!(c.is_ready());
    // The hold ran out on the clock: off, counted, and the flood's end reported.
    c.backend.now = 10_000_000_000 + HOLD;
    let end = c.tick().expect("a flood end");
    assert_eq!(
        (end.kind, end.rate_pps, end.time_ns),
        (FLOOD_END, 0, c.backend.now)
    );
    assert!(!c.is_ready());
    assert_eq!(c.backend.offs_counted, 1);
    assert_eq!(
        c.backend.calls,
        [
            "ready=0",
            "syncookies=2",
            "ready=1",
            "mode=0",
            "ready=0",
            "syncookies=1"
        ]
    );
    assert_eq!(c.tick(), None, "ended once");
}

#[test]
fn a_flood_that_goes_on_keeps_cookies_on_past_a_stale_stamp() {
    // The stamp is old but the windows show SYNs above the off threshold: the program will
    // renew the stamp at its next window, the loader does not turn anything off.
    let mut c = Controller::new(Fake::default(), CookieMode::Auto, 1);
    c.start().unwrap();
    c.backend.wanted = 1;
    c.backend.now = HOLD * 2;
    c.backend.rate = 500;
    c.tick();
    assert_eq!(c.tick(), None);
    assert!(c.is_ready());
    assert_eq!(c.backend.offs_counted, 0);
}

#[test]
fn decisions() {
    assert_eq!(decide(true, false), Step::TurnOn);
    assert_eq!(decide(false, true), Step::TurnOff);
    assert_eq!(decide(true, true), Step::Nothing);
    assert_eq!(decide(false, false), Step::Nothing);
}

#[test]
fn always_mode_is_ready_from_the_start() {
    let mut c = Controller::new(Fake::default(), CookieMode::Always, 2);
    c.start().unwrap();
    assert!(c.is_ready());
    assert_eq!(c.backend.ready.kernel_ready, 1);
    assert_eq!(c.backend.ready.ready_since_ns, 42);
    c.tick();
    assert_eq!(c.backend.calls, ["ready=1"]);
}

#[test]
fn take_over_during_a_flood_keeps_cookies_on() {
    // The previous program had cookies on: nothing is written, so no SYN slips through to
    // the kernel between the take-over and the next tick.
    let mut c = Controller::new(Fake::default(), CookieMode::Auto, 1);
    c.backend.wanted = 1;
    c.resume(Some(ReadyState::new(true, 7))).unwrap();
    assert!(c.is_ready());
    c.tick();
    assert!(c.backend.calls.is_empty(), "{:?}", c.backend.calls);
    // The flood ends: cookies go off the usual way.
    c.backend.wanted = 0;
    c.tick();
    assert_eq!(c.backend.calls, ["ready=0", "syncookies=1"]);
}

#[test]
fn take_over_when_quiet_starts_as_usual() {
    let mut c = Controller::new(Fake::default(), CookieMode::Auto, 1);
    c.resume(None).unwrap();
    assert!(!c.is_ready());
    assert_eq!(c.backend.calls, ["ready=0"]);
}

#[test]
fn auto_mode_switches_sysctl_before_ready_and_back_after() {
    let mut c = Controller::new(Fake::default(), CookieMode::Auto, 1);
    c.start().unwrap();
    assert!(!c.is_ready());
    c.tick();
    c.backend.wanted = 1;
    c.tick();
    assert!(c.is_ready());
    c.tick();
    c.backend.wanted = 0;
    c.tick();
    assert!(!c.is_ready());
    assert_eq!(
        c.backend.calls,
        [
            "ready=0",
            "syncookies=2",
            "ready=1",
            "ready=0",
            "syncookies=1"
        ]
    );
    assert_eq!(c.backend.syncookies, 1);
}

#[test]
fn failed_sysctl_write_keeps_ready_off() {
    let mut c = Controller::new(Fake::default(), CookieMode::Auto, 1);
    c.start().unwrap();
    c.backend.fail_sysctl = true;
    c.backend.wanted = 1;
    c.tick();
    c.tick();
    assert!(!c.is_ready());
    assert_eq!(c.backend.ready.kernel_ready, 0);
    // Recovers once the write works.
    c.backend.fail_sysctl = false;
    c.tick();
    assert!(c.is_ready());
    assert!(c.last_error.is_none());
}

#[test]
fn failed_ready_write_leaves_ready_off_and_retries() {
    let mut c = Controller::new(Fake::default(), CookieMode::Auto, 1);
    c.start().unwrap();
    c.backend.fail_ready = true;
    c.backend.wanted = 1;
    c.tick();
    assert!(!c.is_ready());
    c.backend.fail_ready = false;
    c.tick();
    assert!(c.is_ready());
}

#[test]
fn failed_restore_is_retried_with_ready_already_off() {
    let mut c = Controller::new(Fake::default(), CookieMode::Auto, 1);
    c.start().unwrap();
    c.backend.wanted = 1;
    c.tick();
    c.backend.wanted = 0;
    c.backend.fail_sysctl = true;
    c.tick();
    assert!(!c.is_ready());
    assert_eq!(c.backend.ready.kernel_ready, 0);
    assert_eq!(c.backend.syncookies, 2);
    c.backend.fail_sysctl = false;
    c.tick();
    assert_eq!(c.backend.syncookies, 1);
}

#[test]
fn own_cookies_are_ready_from_the_start_and_stay_ready_through_floods() {
    // Nothing for the kernel to switch: the program answers with cookies the moment it wants
    // them, without waiting for a tick, and the host's tcp_syncookies is never written.
    let mut c = Controller::new(
        Fake {
            own: true,
            ..Fake::default()
        },
        CookieMode::Auto,
        1,
    );
    c.start().unwrap();
    assert!(c.is_ready());
    assert_eq!(c.backend.ready.kernel_ready, 1);
    c.backend.wanted = 1;
    c.backend.last_above = 10_000_000_000;
    c.backend.now = 10_050_000_000;
    c.tick();
    assert!(c.is_ready());
    // The flood ends on the clock: the off rule still runs and reports it, READY stays.
    c.backend.now = 10_000_000_000 + HOLD;
    let end = c.tick().expect("a flood end");
    assert_eq!(end.kind, FLOOD_END);
    assert!(c.is_ready());
    assert_eq!(c.backend.calls, ["ready=1", "mode=0"]);
}
