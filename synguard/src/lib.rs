//! synguard's user side: attaches the XDP program, configures it through maps, reads its
//! counters. Folders name the layers; a module imports only from layers below its own:
//!
//! - `cmd`: the command line, one file per subcommand, and the wiring `main` calls.
//! - `daemon`: the long-running `run`: instances, the cookie-mode controller, flood events,
//!   metrics, reload, and the guard that undoes everything.
//! - `datapath`: the XDP object, its loading, link, pins, typed map access, counters, policy maps.
//! - `state`: synguard's files: paths, the lock, the run-info file, interfaces with state.
//! - `host`: the kernel and the machine: sysctls, NIC facts, clocks, namespaces, tuning.
//! - `config`: one schema for flags and file, validated once into `RunConfig`.
//!
//! `tests/layers.rs` fails when an import runs back up or forms a circle.
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod datapath;
pub mod host;
pub mod state;

/// The embedded objects, for the lab (kept at this path for its crates).
pub use datapath::objects;

/// The policy maps and values, for the lab's fixtures (kept at this path for its crates).
pub mod policy {
    pub use crate::{
        config::{Cidr, CidrError, Limits, ListKind},
        datapath::policy::{PolicyError, PolicyMaps, SourceRow},
    };
}
