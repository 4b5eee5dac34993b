//! Loading the embedded object: maps pinned where a previous program left them, the program
//! verified and loaded, its log forwarded.

use std::{collections::BTreeMap, io, path::Path};

use aya::{
    Ebpf, EbpfLoader, VerifierLogLevel,
    maps::Map,
    programs::{ProgramError, Xdp},
};
use log::{debug, warn};
use synguard_common::names;

use crate::datapath::{diagnose, error::LoaderError, globals, pins::Layout};

/// The XDP program's name in the object.
pub const PROGRAM: &str = "synguard";

/// Forwards the XDP program's aya-log records to the `log` crate.
pub type ProgramLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// Loads the object with every shareable map pinned in `dir`: aya opens a pin that exists (its
/// contents carry over) and creates and pins one that does not. `layouts` are by pin name;
/// aya knows a global by its data section (`names::object_name`), whose bytes it writes into
/// the map, so they are the pin's own value first (`globals`).
/// `object`: the embedded object with its kfunc calls resolved (`own::object`).
pub fn load_object(
    dir: &Path,
    layouts: &BTreeMap<String, Layout>,
    object: &[u8],
) -> Result<Ebpf, LoaderError> {
    let mut loader = EbpfLoader::new();
    // A refused program's log: the verifier's messages and statistics, not its trace of every
    // instruction (aya's default). With the trace, a program refused at the 1 M-instruction
    // limit overflows the log buffer, and aya verifies it again with a ten times larger buffer,
    // up to ten times, before giving up: minutes before `--cookies auto` can fall back. The
    // messages are what `diagnose` reads (`missing_helper`, `verifier_summary`).
    loader.verifier_log_level(VerifierLogLevel::STATS);
    for name in layouts.keys() {
        loader.map_pin_path(names::object_name(name), dir.join(name));
    }
    let object = globals::with_pinned_values(object, dir)?;
    loader.load(object.bytes()).map_err(|e| {
        if diagnose::is_permission_error(&e) {
            LoaderError::NotPermitted {
                what: "creating BPF maps",
            }
        } else {
            LoaderError::Load(e)
        }
    })
}

/// The program's log reader; None (and said so) when the object has no log map.
pub fn logger(ebpf: &mut Ebpf) -> Option<ProgramLogger> {
    match aya_log::EbpfLogger::init(ebpf) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!("XDP program log not available ({e}); continuing without it");
            None
        }
    }
}

/// Verifies and loads the program into the kernel.
pub fn load_program(ebpf: &mut Ebpf) -> Result<(), LoaderError> {
    let prog = program_of(ebpf)?;
    prog.load()
        .map_err(|e| program_error("load the XDP program", e))?;
    log_verified(PROGRAM, prog.info());
    Ok(())
}

/// Says at debug level how many instructions the verifier processed for `program` (the
/// kernel's `verified_insns`, Linux 5.16+): the figure that must stay far from its limit of
/// 1 M (docs/verifier.md).
pub fn log_verified(program: &str, info: Result<aya::programs::ProgramInfo, ProgramError>) {
    if let Some(n) = info.ok().and_then(|i| i.verified_instruction_count()) {
        debug!("{program}: the verifier processed {n} instructions");
    }
}

pub fn program_of(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoaderError> {
    ebpf.program_mut(PROGRAM)
        .ok_or_else(|| LoaderError::Missing(format!("program {PROGRAM}")))?
        .try_into()
        .map_err(|source| LoaderError::Program {
            what: "use the program as XDP",
            source,
        })
}

/// The map `name` (a map's name, as pinned) out of the loaded object.
pub fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, LoaderError> {
    ebpf.take_map(names::object_name(name))
        .ok_or_else(|| LoaderError::Missing(format!("map {name}")))
}

pub fn program_error(what: &'static str, source: ProgramError) -> LoaderError {
    if diagnose::is_permission_error(&source) {
        return LoaderError::NotPermitted {
            what: "loading the XDP program",
        };
    }
    if let ProgramError::LoadError { verifier_log, .. } = &source
        && let Some(m) = diagnose::missing_helper(&verifier_log.to_string())
    {
        return LoaderError::MissingHelper(m);
    }
    LoaderError::Program { what, source }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones ignore it. Raising it is
/// harmless either way, and failing to is only worth a note.
pub fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        debug!(
            "cannot raise RLIMIT_MEMLOCK: {}",
            io::Error::last_os_error()
        );
    }
}
