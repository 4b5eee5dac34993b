//! An idle veth with a pass-through XDP program, in a namespace of its own. While any XDP program
//! is attached somewhere, a `BPF_PROG_TEST_RUN` call of an XDP program costs microseconds;
//! with none, each call waits out RCU grace periods (~20 ms). Tests and the fuzzer that run the
//! program tens of thousands of times hold one of these.

use anyhow::{Context as _, Result};

use crate::{
    lab::netns::{Netns, PREFIX},
    lab::topology::PeerXdp,
};

/// Dropping it detaches the program and deletes the namespace.
pub struct IdleXdp {
    _pass: PeerXdp,
    _ns: Netns,
}

impl IdleXdp {
    /// `tag` keeps the namespaces of concurrent users apart (with the process id).
    pub fn new(tag: &str) -> Result<IdleXdp> {
        let ns = Netns::create(&format!("{PREFIX}{tag}-{}", std::process::id()))?;
        ns.ip(&[
            "link", "add", "idle0", "type", "veth", "peer", "name", "idle1",
        ])?;
        let pass = PeerXdp::attach(&ns, "idle0", "lab_pass")
            .context("idle XDP device for fast test runs")?;
        Ok(IdleXdp {
            _pass: pass,
            _ns: ns,
        })
    }
}
