//! The XDP attachment as a pinned BPF link. While the pin exists the program stays attached,
//! whether or not a synguard process is alive; a new program replaces the old one behind the
//! same link with one `bpf_link_update`, so a restart leaves no moment without protection.

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::programs::{
    ProgramError, Xdp, XdpMode,
    links::{FdLink, LinkError, PinnedLink},
    xdp::{XdpLink, XdpLinkId},
};
use log::warn;

use crate::{
    config::XdpAttach,
    datapath::{diagnose, error::LoaderError},
};

/// How the program came to be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// A new link.
    Fresh,
    /// Swapped in behind the link a previous synguard left (atomic).
    Replaced,
}

/// The attachment: a pinned link, which outlives the process.
pub struct Attachment(PinnedLink);

impl Attachment {
    /// Detaches for good: removes the pin, and closing the last fd releases the link.
    pub fn detach(self) -> io::Result<()> {
        self.0.unpin().map(drop)
    }
}

pub fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Driver => "native",
        XdpMode::Skb => "skb",
        XdpMode::Hardware => "hardware",
        XdpMode::Default => "default",
    }
}

/// The program id behind a pinned link, for `status`.
pub fn program_id(pin: &Path) -> Result<u32, LinkError> {
    let link = FdLink::from(PinnedLink::from_pin(pin)?);
    Ok(link.info()?.program_id())
}

/// Attaches `xdp`: behind the pinned link at `pin` when there is one (keeping its XDP mode,
/// `prev_mode` as recorded), else anew in the wanted mode, pinning the new link.
pub fn attach(
    xdp: &mut Xdp,
    iface: &str,
    if_index: u32,
    want: XdpAttach,
    pin: &Path,
    prev_mode: Option<&str>,
) -> Result<(Attachment, XdpMode, How), LoaderError> {
    if pin.exists() {
        let prev = prev_mode.and_then(parse_mode);
        match (want, prev) {
            (XdpAttach::Native, Some(XdpMode::Skb)) | (XdpAttach::Skb, Some(XdpMode::Driver)) => {
                warn!(
                    "{iface}: the running program is attached in {} mode and another was asked \
                     for: re-attaching, which leaves {iface} unprotected for a moment",
                    prev_mode.unwrap_or("?")
                );
                remove_stale(pin);
            }
            _ => match replace(xdp, pin) {
                Ok(att) => return Ok((att, prev.unwrap_or(XdpMode::Driver), How::Replaced)),
                Err(e) => {
                    warn!(
                        "{iface}: cannot take over the pinned link ({:#}); attaching anew",
                        anyhow::Error::from(e)
                    );
                    remove_stale(pin);
                }
            },
        }
    }
    let (mode, id) = attach_fresh(xdp, iface, if_index, want)?;
    Ok((pin_new(xdp, id, iface, pin)?, mode, How::Fresh))
}

fn parse_mode(name: &str) -> Option<XdpMode> {
    match name {
        "native" => Some(XdpMode::Driver),
        "skb" => Some(XdpMode::Skb),
        _ => None,
    }
}

fn remove_stale(pin: &Path) {
    if let Err(e) = std::fs::remove_file(pin) {
        warn!("cannot remove {}: {e}", pin.display());
    }
}

#[derive(Debug, thiserror::Error)]
enum ReplaceError {
    #[error("cannot open the pinned link")]
    Open(#[source] LinkError),
    #[error("the pin is not an XDP link")]
    NotXdp(#[source] LinkError),
    #[error("link update refused (the interface may be gone)")]
    Update(#[source] ProgramError),
}

/// `bpf_link_update` behind the pinned link: the old program runs until the new one is in.
fn replace(xdp: &mut Xdp, pin: &Path) -> Result<Attachment, ReplaceError> {
    let fd = FdLink::from(PinnedLink::from_pin(pin).map_err(ReplaceError::Open)?);
    let link = XdpLink::try_from(fd).map_err(ReplaceError::NotXdp)?;
    let id = xdp.attach_to_link(link).map_err(ReplaceError::Update)?;
    // The program's copy of the link fd is not needed: the pin keeps the link.
    drop(xdp.take_link(id));
    Ok(Attachment(
        PinnedLink::from_pin(pin).map_err(ReplaceError::Open)?,
    ))
}

fn attach_fresh(
    xdp: &mut Xdp,
    iface: &str,
    if_index: u32,
    want: XdpAttach,
) -> Result<(XdpMode, XdpLinkId), LoaderError> {
    let (first, fallback) = match want {
        XdpAttach::NativeThenSkb => (XdpMode::Driver, Some(XdpMode::Skb)),
        XdpAttach::Native => (XdpMode::Driver, None),
        XdpAttach::Skb => (XdpMode::Skb, None),
    };
    match attach_in(xdp, iface, if_index, first) {
        Ok(id) => Ok((first, id)),
        // Only a mode the driver cannot do is worth another try; a permission problem or a
        // program already attached fails the same way in every mode.
        Err(err @ LoaderError::Attach { .. }) if fallback.is_some() => {
            let fallback = fallback.expect("checked");
            let hint = native_refusal_hint(&err);
            // A warning: in skb mode the program runs after the kernel has built a socket
            // buffer for every frame, the cost synguard is there to spare the host under a flood.
            warn!(
                "{:#}{hint}; falling back to {} mode, which runs only after the kernel has \
                 allocated a socket buffer for each frame (`--xdp-mode native` refuses to start \
                 instead)",
                anyhow::Error::from(err),
                mode_name(fallback)
            );
            attach_in(xdp, iface, if_index, fallback).map(|id| (fallback, id))
        }
        Err(err) => Err(err),
    }
}

/// What a driver's refusal of native XDP most likely means, for the log line. A driver says
/// why only in its netlink extended ack, which `bpf_link_create` does not return; ERANGE is
/// what drivers return for an MTU their XDP buffers cannot hold (veth: larger than a page plus
/// `MAX_SKB_FRAGS` pages, with synguard's multi-buffer programs).
fn native_refusal_hint(err: &LoaderError) -> &'static str {
    match err {
        LoaderError::Attach { source, .. } if diagnose::errno(source) == Some(libc::ERANGE) => {
            " (the driver refuses native XDP at this interface's MTU)"
        }
        _ => "",
    }
}

fn attach_in(
    xdp: &mut Xdp,
    iface: &str,
    if_index: u32,
    mode: XdpMode,
) -> Result<XdpLinkId, LoaderError> {
    match xdp.attach_to_if_index(if_index, mode) {
        Ok(id) => Ok(id),
        Err(source) => Err(match diagnose::errno(&source) {
            Some(libc::EPERM) => LoaderError::NotPermitted {
                what: "attaching XDP",
            },
            Some(libc::EBUSY | libc::EEXIST) => LoaderError::XdpBusy {
                iface: iface.to_string(),
            },
            _ => LoaderError::Attach {
                iface: iface.to_string(),
                mode: mode_name(mode),
                source,
            },
        }),
    }
}

/// Pins the link the program just got. Kernels without XDP links (before 5.9) attach through
/// netlink, which cannot be pinned: synguard needs the pin to survive restarts, so it refuses.
fn pin_new(
    xdp: &mut Xdp,
    id: XdpLinkId,
    iface: &str,
    pin: &Path,
) -> Result<Attachment, LoaderError> {
    let pin_err = |source| LoaderError::Pin {
        name: "link",
        path: PathBuf::from(pin),
        source,
    };
    let link = xdp.take_link(id).map_err(|source| LoaderError::Program {
        what: "take the new XDP link",
        source,
    })?;
    match FdLink::try_from(link) {
        Ok(fd) => fd.pin(pin).map(Attachment).map_err(pin_err),
        // Converting consumed (and so detached) the netlink attachment.
        Err(_) => Err(LoaderError::NoXdpLink {
            iface: iface.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use aya::sys::SyscallError;

    use super::*;

    fn refused(errno: i32) -> LoaderError {
        LoaderError::Attach {
            iface: "eth0".to_string(),
            mode: "native",
            source: ProgramError::SyscallError(SyscallError {
                call: "bpf_link_create",
                io_error: io::Error::from_raw_os_error(errno),
            }),
        }
    }

    #[test]
    fn an_mtu_refusal_says_so_and_others_add_nothing() {
        assert!(native_refusal_hint(&refused(libc::ERANGE)).contains("MTU"));
        assert_eq!(native_refusal_hint(&refused(libc::EOPNOTSUPP)), "");
        assert_eq!(
            native_refusal_hint(&LoaderError::XdpBusy {
                iface: "eth0".into()
            }),
            ""
        );
    }
}
