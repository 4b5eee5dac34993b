//! Which CPUs do what in a flood run (docs/measuring.md, "CPUs and busy time").
//!
//! - [`Layout::OneCpu`]: the server's receive path is one veth queue, polled by one real-time
//!   NAPI thread on CPU 1. The generator sends from CPU 0, real-time (ahead of the machine's
//!   other work, behind nothing of the lab's), and on the direct route also from CPU 1 as an
//!   ordinary task, which runs only while the server's thread leaves CPU 1 idle.
//! - [`Layout::Spread`]: the server's veth has two queues, each polled by a real-time NAPI
//!   thread of its own, one per CPU, as a NIC spreads a flood over one receive queue per core.
//!   On the direct route each CPU's sender fills its own CPU's queue (veth picks the peer's
//!   queue by the sending CPU, `veth_select_rxq`); across the bridge the server peer's transmit
//!   hash spreads the flows over both queues.
//!
//! A sender on the server's CPU never slows the server's thread (that thread preempts it), but a
//! sender on the bridge route drags the bridge's softirq work onto its CPU, where the server's
//! thread would pick it up: across the bridge only CPU 0 sends.

use serde::Serialize;

use crate::flood::generator::{BATCH, Route};
use crate::flood::senders::Senders;

/// CPU of the generator (and of the bridge and the clients) in [`Layout::OneCpu`].
pub const SENDER_CPU: usize = 0;
/// CPU of the server's receive thread in [`Layout::OneCpu`].
pub const SERVER_CPU: usize = 1;
/// SCHED_FIFO priority of the server's NAPI threads.
pub use crate::lab::napi::REALTIME_PRIO as SERVER_PRIO;
/// SCHED_FIFO priority of real-time senders: below the server's receive threads.
pub const SENDER_PRIO: i32 = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    OneCpu,
    Spread,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::OneCpu => "1cpu",
            Layout::Spread => "2cpu",
        }
    }

    /// Receive (and transmit) queues of the server's veth and its peer.
    pub fn queues(self) -> usize {
        self.server_cpus().len()
    }

    /// One real-time NAPI thread per queue, queue i's on `server_cpus()[i]`.
    pub fn server_cpus(self) -> &'static [usize] {
        match self {
            Layout::OneCpu => &[SERVER_CPU],
            Layout::Spread => &[0, 1],
        }
    }

    /// The generator's threads for a flood by `route`.
    pub fn senders(self, route: Route) -> Senders {
        let rt = |cpus: &[usize]| cpus.iter().map(|&c| (c, SENDER_PRIO)).collect();
        let (cpus, realtime) = match (self, route) {
            (_, Route::Bridge) => (vec![SENDER_CPU], rt(&[SENDER_CPU])),
            (Layout::OneCpu, Route::Direct) => (vec![SENDER_CPU, SERVER_CPU], rt(&[SENDER_CPU])),
            (Layout::Spread, Route::Direct) => (vec![0, 1], rt(&[0, 1])),
        };
        Senders {
            cpus: cpus.into_iter().map(Some).collect(),
            batch: BATCH,
            realtime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_never_outrank_the_server_and_bridge_floods_send_from_one_cpu() {
        const { assert!(SENDER_PRIO < SERVER_PRIO) };
        for layout in [Layout::OneCpu, Layout::Spread] {
            assert_eq!(layout.senders(Route::Bridge).cpus, vec![Some(SENDER_CPU)]);
            assert_eq!(layout.queues(), layout.server_cpus().len());
        }
        let one = Layout::OneCpu.senders(Route::Direct);
        assert_eq!(one.realtime, vec![(SENDER_CPU, SENDER_PRIO)]);
        assert!(one.cpus.contains(&Some(SERVER_CPU)));
    }
}
