//! Own-cookie mode as the loader sees it (docs/own-cookies.md): whether the running kernel can
//! do it, the object with its kfunc calls resolved, the TC ingress program, and the secret map.

use std::path::Path;

use aya::{
    Ebpf,
    maps::{Array, MapData, ProgramArray},
    programs::{
        SchedClassifier, TcAttachType, Xdp,
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
    },
};
use log::warn;
use synguard_common::{names, own_cookie, reqsk::CookieSecret, siphash::Key};

use crate::{
    datapath::{
        diagnose,
        error::LoaderError,
        kfunc::{self, AlignedObject},
        load::{self, program_error, take_map},
        objects, spoil,
    },
    host::{
        clock::tai_ns,
        fault::{self, Fault},
    },
};

/// The kernel function own cookies need (Linux 6.9, net/core/filter.c).
pub const REQSK_KFUNC: &str = "bpf_sk_assign_tcp_reqsk";
/// The TC program's name in the object.
pub const TC_PROGRAM: &str = "synguard_own";
/// The TC program for drivers without XDP metadata, which checks the cookie again.
pub const TC_CHECK_PROGRAM: &str = "synguard_own_check";
/// The XDP program `synguard` tail-calls for own-cookie SYNs and ACKs.
pub const XDP_PROGRAM: &str = "synguard_own_xdp";

/// Why the running kernel cannot do own cookies, or None when it can.
pub fn unsupported_because() -> Option<String> {
    match kfunc::running_kernel_has(REQSK_KFUNC) {
        None => Some("the kernel has no BTF (/sys/kernel/btf/vmlinux)".into()),
        Some(false) => Some(format!("the kernel has no {REQSK_KFUNC} (Linux 6.9+)")),
        Some(true) => None,
    }
}

/// The object to load: with own cookies every kfunc call must resolve (an error names the ones
/// that do not); otherwise the TC program is never loaded, so calls the kernel lacks get id 0,
/// which the verifier would refuse if that program were ever loaded.
pub fn object(own: bool) -> Result<AlignedObject, LoaderError> {
    if own {
        let mut obj = kfunc::rewrite_for_running_kernel(objects::synguard())?;
        if fault::injected(Fault::OwnVerifier) {
            spoil::spoil(&mut obj, XDP_PROGRAM)?;
        }
        return Ok(obj);
    }
    let btf = aya::Btf::from_sys_fs().ok();
    Ok(kfunc::rewrite(objects::synguard(), |name| {
        Some(
            btf.as_ref()
                .and_then(|b| kfunc::vmlinux_func_id(b, name))
                .unwrap_or(0),
        )
    })?)
}

/// Loads `synguard_own_xdp` and puts it where `synguard` tail-calls it.
pub fn load_own_xdp(ebpf: &mut Ebpf) -> Result<(), LoaderError> {
    let prog: &mut Xdp = ebpf
        .program_mut(XDP_PROGRAM)
        .ok_or_else(|| LoaderError::Missing(format!("program {XDP_PROGRAM}")))?
        .try_into()
        .map_err(|source| LoaderError::Program {
            what: "use the own-cookie program as XDP",
            source,
        })?;
    prog.load()
        .map_err(|e| own_program_error(XDP_PROGRAM, "load the own-cookie XDP program", e))?;
    load::log_verified(XDP_PROGRAM, prog.info());
    let fd = prog
        .fd()
        .and_then(|fd| fd.try_clone().map_err(Into::into))
        .map_err(|source| LoaderError::Program {
            what: "take the own-cookie XDP program's descriptor",
            source,
        })?;
    let map_err = |source| LoaderError::Map {
        name: names::OWN_PROG,
        source,
    };
    let map = ebpf
        .map_mut(names::OWN_PROG)
        .ok_or_else(|| LoaderError::Missing(format!("map {}", names::OWN_PROG)))?;
    let mut progs = ProgramArray::try_from(map).map_err(map_err)?;
    progs.set(0, &fd, 0).map_err(map_err)
}

/// Loads the TC program and attaches it at ingress of `iface` through a tcx link pinned at
/// `pin`: a previous program's link there gets the new program atomically
/// (`bpf_link_update`), as the XDP link does, so a hand-over leaves no moment without it;
/// removing the pin (detach) releases the link.
pub fn attach_tc(ebpf: &mut Ebpf, iface: &str, pin: &Path) -> Result<(), LoaderError> {
    // Loaded now, attached only if the driver turns out to carry no metadata (`use_tc_check`).
    let check = tc_program(ebpf, TC_CHECK_PROGRAM)?;
    check
        .load()
        .map_err(|e| own_program_error(TC_CHECK_PROGRAM, "load the TC checking program", e))?;
    load::log_verified(TC_CHECK_PROGRAM, check.info());
    let prog = tc_program(ebpf, TC_PROGRAM)?;
    prog.load()
        .map_err(|e| own_program_error(TC_PROGRAM, "load the TC program", e))?;
    load::log_verified(TC_PROGRAM, prog.info());
    if pin.exists() {
        let old = PinnedLink::from_pin(pin)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                SchedClassifierLink::try_from(FdLink::from(l)).map_err(|e| e.to_string())
            });
        match old.map(|link| prog.attach_to_link(link).map_err(|e| e.to_string())) {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) | Err(e) => {
                warn!(
                    "{iface}: cannot reuse the TC link at {} ({e}); attaching anew",
                    pin.display()
                );
                remove_tc_link(pin);
            }
        }
    }
    let tc_err = |what| move |source| LoaderError::Program { what, source };
    let id = prog
        .attach(iface, TcAttachType::Ingress)
        .map_err(tc_err("attach the TC program at ingress"))?;
    let link = prog.take_link(id).map_err(tc_err("take the TC link"))?;
    let fd =
        FdLink::try_from(link).map_err(|e| LoaderError::Missing(format!("a tcx link ({e})")))?;
    fd.pin(pin).map_err(|source| LoaderError::Pin {
        name: "the TC link",
        path: pin.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// A verifier refusal as one line that names the program (`diagnose::verifier_summary`);
/// the whole log at debug level.
fn own_program_error(
    program: &'static str,
    what: &'static str,
    source: aya::programs::ProgramError,
) -> LoaderError {
    match &source {
        aya::programs::ProgramError::LoadError { verifier_log, .. }
            if !diagnose::is_permission_error(&source) =>
        {
            let log = verifier_log.to_string();
            log::debug!("{program}: verifier log:\n{log}");
            LoaderError::Rejected {
                program,
                summary: diagnose::verifier_summary(&log),
            }
        }
        _ => program_error(what, source),
    }
}

/// Undoes a partial own-cookie start: the programs unloaded, the tail-call slot emptied, no TC
/// link left pinned at `tc_pin`. The key is the caller's to erase (`SecretMap::erase`).
pub fn withdraw(ebpf: &mut Ebpf, tc_pin: &Path) {
    remove_tc_link(tc_pin);
    if let Some(map) = ebpf.map_mut(names::OWN_PROG)
        && let Ok(mut progs) = ProgramArray::try_from(map)
        && let Err(e) = progs.clear_index(&0)
        && diagnose::errno(&e) != Some(libc::ENOENT)
    {
        warn!("cannot empty {}: {e}", names::OWN_PROG);
    }
    for name in [XDP_PROGRAM, TC_PROGRAM, TC_CHECK_PROGRAM] {
        let Some(prog) = ebpf.program_mut(name) else {
            continue;
        };
        let unloaded = match prog {
            aya::programs::Program::Xdp(p) => p.unload(),
            aya::programs::Program::SchedClassifier(p) => p.unload(),
            _ => Ok(()),
        };
        // Not loaded (it failed, or came after the one that did): nothing to undo.
        if let Err(e) = unloaded
            && !matches!(e, aya::programs::ProgramError::NotLoaded)
        {
            warn!("cannot unload {name}: {e}");
        }
    }
}

fn tc_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier, LoaderError> {
    ebpf.program_mut(name)
        .ok_or_else(|| LoaderError::Missing(format!("program {name}")))?
        .try_into()
        .map_err(|source| LoaderError::Program {
            what: "use the program as TC",
            source,
        })
}

/// Puts `synguard_own_check` behind the TC link pinned at `pin` (atomically, `bpf_link_update`):
/// for a driver without XDP metadata, whose valid cookie ACKs reach TC unmarked.
pub fn use_tc_check(ebpf: &mut Ebpf, pin: &Path) -> Result<(), LoaderError> {
    let link = PinnedLink::from_pin(pin)
        .map_err(|e| LoaderError::Missing(format!("the TC link at {} ({e})", pin.display())))?;
    let link = SchedClassifierLink::try_from(FdLink::from(link))
        .map_err(|e| LoaderError::Missing(format!("a tcx link at {} ({e})", pin.display())))?;
    tc_program(ebpf, TC_CHECK_PROGRAM)?
        .attach_to_link(link)
        .map_err(|source| LoaderError::Program {
            what: "put the TC checking program behind the link",
            source,
        })?;
    Ok(())
}

/// Releases a TC link left pinned by an own-cookie program (a kernel-cookie program does not
/// need it).
pub fn remove_tc_link(pin: &Path) {
    if let Err(e) = std::fs::remove_file(pin)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!("cannot remove {}: {e}", pin.display());
    }
}

/// The secret map, taken out of the loaded object: the key lives only there.
pub struct SecretMap(Array<MapData, CookieSecret>);

impl SecretMap {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoaderError> {
        let map = take_map(ebpf, names::COOKIE_SECRET)?;
        Array::try_from(map)
            .map(SecretMap)
            .map_err(|source| LoaderError::Map {
                name: names::COOKIE_SECRET,
                source,
            })
    }

    /// The key in use, if any (a map a previous program left holds one).
    pub fn current(&self) -> Result<Option<Key>, LoaderError> {
        let now = self.0.get(&0, 0).map_err(|source| LoaderError::Map {
            name: names::COOKIE_SECRET,
            source,
        })?;
        Ok((now.current != [0, 0]).then_some(now.current))
    }

    /// Puts `key` in use with no previous one (a fresh start).
    pub fn install(&mut self, key: Key) -> Result<(), LoaderError> {
        self.write(CookieSecret {
            current: key,
            ..Default::default()
        })
    }

    /// Puts `key` in use; the one in use until now stays valid for this slot and the next.
    /// Returns false (and changes nothing) when `key` is already in use.
    pub fn rotate(&mut self, key: Key) -> Result<bool, LoaderError> {
        let now = self.0.get(&0, 0).map_err(|source| LoaderError::Map {
            name: names::COOKIE_SECRET,
            source,
        })?;
        if now.current == key {
            return Ok(false);
        }
        // TAI, the programs' slot clock, not the monotonic one (shifted in a time namespace,
        // and every server's own): `host::clock::tai_ns`.
        self.write(now.rotate(key, own_cookie::slot_of(tai_ns())))?;
        Ok(true)
    }

    /// No key at all: own cookies are not in use (a start that fell back to the kernel's).
    pub fn erase(&mut self) -> Result<(), LoaderError> {
        self.write(CookieSecret::default())
    }

    fn write(&mut self, value: CookieSecret) -> Result<(), LoaderError> {
        self.0.set(0, value, 0).map_err(|source| LoaderError::Map {
            name: names::COOKIE_SECRET,
            source,
        })
    }
}
