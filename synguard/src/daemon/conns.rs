//! The connection table's pass (docs/connection-table.md): every [`CONN_REFRESH_NS`], and
//! right after the sock_ops program is attached, stamp every socket of this network namespace
//! on a protected port, then promise the XDP program that the table is complete for
//! [`CONN_TTL_NS`] from the pass's start.
//!
//! Why that promise holds: the pass starts (T0) after the sock_ops program is attached and
//! after the port map holds the ports it stamps for. A socket alive at T0 is in the lists the
//! pass reads and gets a stamp of T0; a socket established or answered by the kernel after T0
//! gets one from the sock_ops program. The pass then empties the slots no socket renewed for
//! [`CONN_TTL_NS`]; a live socket's is renewed every pass, well before. A pass that fails makes
//! no promise: the last one runs out on its own.
//!
//! [`CONN_REFRESH_NS`]: synguard_common::conns::CONN_REFRESH_NS
//! [`CONN_TTL_NS`]: synguard_common::conns::CONN_TTL_NS

use std::time::{Duration, Instant};

use log::{debug, info, warn};
use synguard_common::conns::{CONN_REFRESH_NS, ConnsState, conns_valid_until};
use thiserror::Error;

use crate::{
    datapath::conns::{ConnTable, socket_hash},
    host::{
        clock::programs_monotonic_ns,
        proc_net::{self, LISTEN, ProcNetError},
    },
};

/// How often the pass runs.
pub const PERIOD: Duration = Duration::from_nanos(CONN_REFRESH_NS);
/// A failing pass is reported at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum PassError {
    #[error(transparent)]
    Read(#[from] ProcNetError),
    #[error("cannot write the connection table's state")]
    State(#[source] aya::maps::MapError),
}

/// What a complete pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// Sockets on protected ports it stamped.
    pub sockets: u64,
    /// Sockets it read in all.
    pub seen: u64,
    /// Expired slots it emptied.
    pub emptied: u64,
    pub took: Duration,
}

/// One pass over this namespace's sockets into every table in `tables`; the promise is written
/// only after every socket is stamped.
pub fn pass(tables: &mut [&mut ConnTable], ports: &[u16]) -> Result<Pass, PassError> {
    let began = Instant::now();
    let t0 = programs_monotonic_ns();
    // Each table's own promised pass: this pass is that + 1 (`conn_filter_entry`).
    let published = tables
        .iter()
        .map(|t| t.published_pass())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(PassError::State)?;
    let (mut sockets, mut seen) = (0u64, 0u64);
    for path in [proc_net::TCP4, proc_net::TCP6] {
        let text = match proc_net::read(path) {
            Ok(t) => t,
            // No IPv6 in this kernel: no IPv6 socket either.
            Err(ProcNetError::Read { source, .. })
                if path == proc_net::TCP6 && source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for s in proc_net::parse(path, &text)? {
            seen += 1;
            if s.state == LISTEN || !ports.contains(&s.local_port) {
                continue;
            }
            let Some(hash) = socket_hash(&s) else {
                continue;
            };
            for (t, &p) in tables.iter_mut().zip(&published) {
                t.stamp_socket(hash, s.state, t0, p);
            }
            sockets += 1;
        }
    }
    // Slots no socket renewed for a stamp's life: connections gone, other namespaces'.
    let now = programs_monotonic_ns();
    let emptied = tables.iter_mut().map(|t| t.sweep(now)).sum();
    for (t, &p) in tables.iter_mut().zip(&published) {
        let state = ConnsState {
            valid_until_ns: conns_valid_until(t0),
            last_pass_sockets: sockets,
            pass_no: p + 1,
        };
        t.promise(state).map_err(PassError::State)?;
    }
    Ok(Pass {
        sockets,
        seen,
        emptied,
        took: began.elapsed(),
    })
}

/// Runs the passes and says how they go: the first success and a failure once a minute at
/// most, every pass at debug level.
#[derive(Default)]
pub struct Refresher {
    trusted: bool,
    last_warned: Option<Instant>,
    failures: u64,
}

impl Refresher {
    pub fn run(&mut self, tables: &mut [&mut ConnTable], ports: &[u16]) {
        if tables.is_empty() {
            return;
        }
        match pass(tables, ports) {
            Ok(p) => {
                let line = format!(
                    "connection table: {} sockets on protected ports stamped ({} read), {} expired \
                     slots emptied, in {:.1} ms",
                    p.sockets,
                    p.seen,
                    p.emptied,
                    p.took.as_secs_f64() * 1e3
                );
                if self.trusted {
                    debug!("{line}");
                } else {
                    info!("{line}; ACKs that belong to no socket now skip the socket lookup");
                }
                self.trusted = true;
            }
            Err(e) => {
                self.failures += 1;
                self.trusted = false;
                if self.last_warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    warn!(
                        "connection table pass failed ({} failures so far): {:#}; the table \
                         stops being trusted when the last promise runs out (ACKs then use the \
                         socket lookup)",
                        self.failures,
                        anyhow::Error::from(e)
                    );
                    self.last_warned = Some(Instant::now());
                }
            }
        }
    }
}
