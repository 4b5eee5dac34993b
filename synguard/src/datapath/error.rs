//! What can go wrong loading, configuring, pinning and attaching the program, each naming what
//! was being done.

use std::path::PathBuf;

use aya::{EbpfError, maps::MapError, pin::PinError, programs::ProgramError};
use thiserror::Error;

use crate::{
    datapath::diagnose::MissingHelper,
    host::{io::PathError, sysctl::SysctlError},
};

pub use crate::host::io::io_err;

#[derive(Debug, Error)]
pub enum LoaderError {
    #[error("synguard needs root or CAP_BPF+CAP_NET_ADMIN ({what} was refused)")]
    NotPermitted { what: &'static str },
    #[error("cannot load the XDP program: {0}")]
    MissingHelper(MissingHelper),
    #[error("cannot parse the embedded XDP object")]
    Load(#[source] EbpfError),
    #[error("cannot {what}")]
    Program {
        what: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("{program} rejected by the verifier ({summary})")]
    Rejected {
        program: &'static str,
        /// `diagnose::verifier_summary` of the log.
        summary: String,
    },
    #[error("the XDP object has no {0}: loader and program come from different builds")]
    Missing(String),
    #[error("cannot use map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("cannot pin {name} at {}", path.display())]
    Pin {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: PinError,
    },
    #[error("cannot attach XDP to {iface} in {mode} mode")]
    Attach {
        iface: String,
        mode: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error(
        "another XDP program is already attached to {iface}; remove it first \
         (ip link set dev {iface} xdp off)"
    )]
    XdpBusy { iface: String },
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    PinnedMap(#[from] crate::datapath::maps::PinnedMapError),
    #[error(transparent)]
    PinDir(#[from] crate::datapath::pins::PinError),
    #[error(
        "this kernel attached XDP to {iface} without a BPF link (Linux 5.9+ needed): synguard \
         needs a pinned link so that protection survives restarts"
    )]
    NoXdpLink { iface: String },
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Kfunc(#[from] crate::datapath::kfunc::KfuncError),
    #[error(transparent)]
    Globals(#[from] crate::datapath::globals::GlobalsError),
    #[error("fault injection")]
    Spoil(#[from] crate::datapath::spoil::SpoilError),
}
