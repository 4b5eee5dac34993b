//! The per-CPU memory a packet's way works in (`maps::SG_WORKSPACE`): the parsed packet, the
//! hand-over to `synguard_own_xdp`, the reply being built, and the clocks' caches. One value,
//! so that each program looks it up once per packet (each per-CPU lookup costs a few
//! instructions and a load on the SYN path, docs/measuring.md).
//!
//! Verifier workaround: the parsed headers and the reply buffers together exceed the 512-byte
//! BPF stack, and what a program reads back from map memory is one unknown state to the
//! verifier, which is what lets the steps after the option walk be verified once
//! (docs/verifier.md).

use synguard_common::tcp::SynOptions;

use crate::{clock::Clocks, maps::SG_WORKSPACE, parse::Packet, synack::Scratch};

/// What `synguard` hands to `synguard_own_xdp` besides the packet: which step to take and the
/// clock's reading for this packet.
#[repr(C, align(8))]
pub struct HandOver {
    pub kind: u64,
    pub now_ns: u64,
}

/// This CPU's workspace. Every field is written for a packet before it is read for it, but
/// `hand.kind`, which says whether a hand-over was made for this packet (`own_entry::handle`).
#[repr(C, align(8))]
pub struct Workspace {
    /// Where `synguard` copies the headers of each packet to a protected port (`parse::copy`),
    /// for the rest of its way and for `synguard_own_xdp`.
    pub pkt: Packet,
    pub hand: HandOver,
    /// The reply's buffers (`synack`).
    pub reply: Scratch,
    /// Where the own-cookie SYN's options settle (`own::settle`).
    pub opts: SynOptions,
    /// This CPU's clock readings (`clock.rs`): the one part that outlives a packet, and the
    /// one part the programs without a packet in here use too ([`clocks`]).
    pub clocks: Clocks,
}

/// This CPU's workspace. `None` cannot happen once the program is loaded (a one-entry array).
#[inline(always)]
pub fn get() -> Option<&'static mut Workspace> {
    let p = crate::maps::aligned(SG_WORKSPACE.get_ptr_mut(0)?);
    // SAFETY: this CPU's value of a per-CPU map. XDP does not nest on a CPU, and the program
    // tail-called by `synguard` runs on the same CPU before anything else can; the other
    // programs touch only `clocks` ([`clocks`]).
    unsafe { Some(&mut *p) }
}

/// This CPU's clocks, for the programs that have no packet in the workspace (TC, sock_ops).
/// `None` cannot happen once loaded.
#[inline(always)]
pub fn clocks() -> Option<&'static mut Clocks> {
    // Only `clocks` is touched, which a nested program on this CPU (XDP interrupting sock_ops
    // in process context) at worst rewrites with a reading of the same tick (`Clocks::now_ns`).
    Some(&mut get()?.clocks)
}
