//! The flood runs' named scenarios: what is sent, by what, and when. Every scenario has a quiet
//! lead-in and tail around its flood windows, so the charts show the rates before, during and
//! after the flood.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::flood::generator::{Mix, Route};

/// What sends the flood.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The live-frames generator: `mix` frames from `sources` addresses of the attacker pool, by
    /// `route`.
    Generator { mix: Mix, route: Route, sources: u8 },
    /// hping3 SYNs at full speed from one spoofed pool address: what users run.
    Hping,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub engine: Engine,
    /// Number of flood pulses in the flood time (1: one continuous flood). Pulses and gaps have
    /// equal length, so `auto` mode must switch on and off.
    pub pulses: u32,
}

pub const ALL: [Scenario; 8] = [
    Scenario {
        name: "syn",
        about: "SYN flood from the 128 addresses of the attacker subnet (many sources)",
        engine: Engine::Generator {
            mix: Mix::Syn,
            route: Route::Bridge,
            sources: 128,
        },
        pulses: 1,
    },
    Scenario {
        name: "ack",
        about: "ACK flood with random sequence and acknowledgment numbers, 128 sources",
        engine: Engine::Generator {
            mix: Mix::Ack,
            route: Route::Bridge,
            sources: 128,
        },
        pulses: 1,
    },
    Scenario {
        name: "syn-direct",
        about: "SYN flood, 128 sources, straight into the server's receive ring (no bridge)",
        engine: Engine::Generator {
            mix: Mix::Syn,
            route: Route::Direct,
            sources: 128,
        },
        pulses: 1,
    },
    Scenario {
        name: "ack-direct",
        about: "ACK flood, 128 sources, straight into the server's receive ring (no bridge)",
        engine: Engine::Generator {
            mix: Mix::Ack,
            route: Route::Direct,
            sources: 128,
        },
        pulses: 1,
    },
    Scenario {
        name: "mixed",
        about: "SYN and ACK alternating, 128 sources",
        engine: Engine::Generator {
            mix: Mix::Mixed,
            route: Route::Bridge,
            sources: 128,
        },
        pulses: 1,
    },
    Scenario {
        name: "one-source",
        about: "SYN flood from a single address",
        engine: Engine::Generator {
            mix: Mix::Syn,
            route: Route::Bridge,
            sources: 1,
        },
        pulses: 1,
    },
    Scenario {
        name: "on-off",
        about: "SYN flood that starts and stops three times (for auto mode)",
        engine: Engine::Generator {
            mix: Mix::Syn,
            route: Route::Bridge,
            sources: 128,
        },
        pulses: 3,
    },
    Scenario {
        name: "hping-syn",
        about: "hping3 SYN flood as fast as it goes, one spoofed source (what users run)",
        engine: Engine::Hping,
        pulses: 1,
    },
];

pub fn by_name(name: &str) -> Result<Scenario> {
    match ALL.iter().find(|s| s.name == name) {
        Some(s) => Ok(*s),
        None => bail!(
            "no scenario {name}; known: {}",
            ALL.map(|s| s.name).join(", ")
        ),
    }
}

/// When a run floods, relative to its start.
#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    pub lead: Duration,
    /// (start, end) of each flood pulse.
    pub windows: Vec<(Duration, Duration)>,
    pub total: Duration,
}

impl Timeline {
    /// `flood` is the whole flood time, split into pulses and gaps of equal length.
    pub fn new(scenario: &Scenario, lead: Duration, flood: Duration, tail: Duration) -> Timeline {
        let slots = 2 * scenario.pulses - 1;
        let slot = flood / slots;
        let windows = (0..scenario.pulses)
            .map(|i| {
                let start = lead + slot * (2 * i);
                (start, start + slot)
            })
            .collect();
        Timeline {
            lead,
            windows,
            total: lead + flood + tail,
        }
    }

    /// Time spent flooding.
    pub fn flood_time(&self) -> Duration {
        self.windows.iter().map(|(a, b)| *b - *a).sum()
    }

    /// First flood start to last flood end.
    pub fn span(&self) -> (Duration, Duration) {
        (self.windows[0].0, self.windows[self.windows.len() - 1].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulses_and_gaps_have_equal_length() {
        let s = by_name("on-off").unwrap();
        let t = Timeline::new(
            &s,
            Duration::from_secs(1),
            Duration::from_secs(5),
            Duration::from_secs(1),
        );
        assert_eq!(t.windows.len(), 3);
        assert_eq!(
            t.windows[0],
            (Duration::from_secs(1), Duration::from_secs(2))
        );
        assert_eq!(
            t.windows[2],
            (Duration::from_secs(5), Duration::from_secs(6))
        );
        assert_eq!(t.flood_time(), Duration::from_secs(3));
        assert_eq!(t.total, Duration::from_secs(7));
        assert!(by_name("nope").is_err());
    }
}
