//! The connection table (`synguard_common::conns`, docs/connection-table.md): the
//! `synguard_conns` sock_ops program stamps it, the ACK step reads it.

use aya_ebpf::{
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB,
        BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_TIMEOUT_INIT,
        BPF_TCP_CLOSE,
    },
    programs::SockOpsContext,
};
use synguard_common::{
    conns::{
        ConnLookup, conn_ask_stamp, conn_filter_entry, conn_filter_fresh, conn_filter_read,
        conn_filter_slot, conn_handed_over, conn_handshake_stamp, conn_lookup, conn_slot,
        conn_stamp, handshake_cpu_slot,
    },
    maps::{flow_hash, flow_hash_v4},
};

use crate::{
    clock::Clocks,
    decide::port_protected,
    maps::{SG_CONNS, SG_CONNS_FILTER, SG_CONNS_STATE, SG_HANDSHAKES},
};

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
/// The third word of an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the socket holds it.
const V4_MAPPED: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// What the table says about the 4-tuple hashed `hash` (`synguard_common::maps::flow_hash`).
#[inline(always)]
pub fn lookup_hash(hash: u64, clocks: &mut Clocks) -> ConnLookup {
    lookup_at(hash, || clocks.now_ns())
}

/// Whether the table vouches for a connection of the 4-tuple hashed `hash` (its "maybe"), with
/// the clock's reading `now_ns` of the packet's way.
#[inline(always)]
pub fn live(hash: u64, now_ns: u64) -> bool {
    lookup_at(hash, || now_ns) == ConnLookup::Maybe
}

/// [`lookup_hash`] with the clock read by `now_ns`, only where an answer needs it.
#[inline(always)]
fn lookup_at(hash: u64, mut now_ns: impl FnMut() -> u64) -> ConnLookup {
    // The filter first (64 KiB, stays cached): while the table is trusted, an entry no writer
    // renewed lately means no live stamp in its slots, and the table's slot, a random one of
    // 2^20 for each flood ACK and a miss to memory (docs/measuring.md), is not read.
    let (word, lane) = conn_filter_slot(hash);
    let state = SG_CONNS_STATE.get();
    let Some(w) = SG_CONNS_FILTER.get(word) else {
        return ConnLookup::Unknown;
    };
    let entry = conn_filter_read(*w, lane);
    if !conn_filter_fresh(entry, state.pass_no) && now_ns() < state.valid_until_ns {
        return ConnLookup::None;
    }
    let Some(stamp) = SG_CONNS.get(conn_slot(hash)) else {
        return ConnLookup::Unknown;
    };
    conn_lookup(*stamp, hash, || Some(state), now_ns)
}

/// Stamps the 4-tuple (hashed `hash`) of a handshake whose final ACK passes on a valid cookie,
/// so that the client's segments behind it pass too until the stack has made the connection
/// (`conn_handshake_stamp`). `handoff`: the TC program that checks cookies again is to hand it
/// to the kernel. Only valid cookies get here: a flood cannot fill the table this way.
#[inline(always)]
pub fn stamp_handshake(hash: u64, now_ns: u64, handoff: bool) {
    if let Some(slot) = SG_CONNS.get_ptr_mut(conn_slot(hash)) {
        // SAFETY: array value pointer; a racing writer stores a stamp too.
        unsafe { *slot = conn_handshake_stamp(hash, now_ns, handoff) };
    }
    file(hash);
}

/// Stamps an own cookie's handshake as [`stamp_handshake`] does, waiting for its handoff, and
/// notes it in this CPU's record (`handshake_here`).
#[inline(always)]
pub fn stamp_own_handshake(hash: u64, now_ns: u64) {
    stamp_handshake(hash, now_ns, true);
    if let Some(slot) = SG_HANDSHAKES.get_ptr_mut(handshake_cpu_slot(hash)) {
        // SAFETY: this CPU's value; XDP does not nest on a CPU.
        unsafe { *slot = hash };
    }
}

/// Whether this CPU passed the final ACK of the own-cookie handshake hashed `hash` (a slot of
/// its record another handshake took since reads as no). The client's segments behind that
/// ACK pass unmarked only where this holds: on this CPU they reach the stack behind the ACK,
/// in the same batch or a later one, and find the connection it made. On another CPU (a
/// multi-queue NIC whose queue choice for the 4-tuple changed between the ACK and the data,
/// as a tap's does: `tun_flow_update` learns the queue from the XDP SYN-ACK only after a local
/// client's ACK has left on the old one) the stack may take them before the ACK, reach the
/// listener without the request socket, and answer with a RST (`cookie_v4_check` leaves them
/// to the kernel's own cookies, `tcp_synq_no_recent_overflow`): there the socket lookup
/// decides, and without a connection yet the segment's own cookie is checked and handed over.
#[inline(always)]
pub fn handshake_here(hash: u64) -> bool {
    SG_HANDSHAKES
        .get(handshake_cpu_slot(hash))
        .is_some_and(|h| *h == hash)
}

/// Records that the TC program handed over the handshake whose slot (4-tuple hashed `hash`)
/// waited for it, so the segments behind its ACK are not handed over again.
#[inline(always)]
pub fn handed_over(hash: u64) {
    if let Some(slot) = SG_CONNS.get_ptr_mut(conn_slot(hash)) {
        // SAFETY: array value pointer. A stamp the sock_ops program wrote meanwhile (the
        // connection established) may be replaced: the handshake stamp passes the 4-tuple's
        // packets for its moment, and the socket lookup finds the connection after it.
        unsafe { *slot = conn_handed_over(*slot) };
    }
    file(hash);
}

/// After a stamp, its filter entry: the number of the pass under way (`conn_filter_entry`).
#[inline(always)]
fn file(hash: u64) {
    let published = SG_CONNS_STATE.get().pass_no;
    let (word, lane) = conn_filter_slot(hash);
    if let Some(w) = SG_CONNS_FILTER.get_ptr_mut(word) {
        // SAFETY: a 16-bit lane inside the map value (lane < 4); racing writers store the same
        // or a later pass number.
        unsafe { *(w as *mut u16).add((lane & 3) as usize) = conn_filter_entry(published) };
    }
}

/// sock_ops: stamps the 4-tuple of a connection to a protected port when it is established
/// (either side), and asks for the socket lookup on its packets once it closes and when the
/// kernel creates a request socket for one: `TIMEOUT_INIT` is the one callback a request socket
/// gets (`tcp_conn_request` -> `tcp_timeout_init`, which runs the listener's programs with the
/// request socket's addresses). Nothing else is changed: the reply stays as other programs left
/// it, and the caller returns 1 (a 0 would make the kernel ignore every program's reply,
/// `tcp_call_bpf`).
#[inline(always)]
pub fn on_sock_ops(ctx: &SockOpsContext) {
    let op = ctx.op();
    let established =
        op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB;
    let closed = op == BPF_SOCK_OPS_STATE_CB && ctx.arg(1) == BPF_TCP_CLOSE;
    if !established && !closed && op != BPF_SOCK_OPS_TIMEOUT_INIT {
        return;
    }
    // `local_port` is in host order; `remote_port` holds the network-order port in its upper
    // half on little-endian hosts (`sock_ops_convert_ctx_access` shifts it), so `ntohl` of the
    // whole word is the port on either byte order.
    let lport = ctx.local_port() as u16;
    if !port_protected(lport) {
        return;
    }
    let Some(hash) = hash(ctx, u32::from_be(ctx.remote_port()) as u16, lport) else {
        return;
    };
    let Some(clocks) = crate::workspace::clocks() else {
        return;
    };
    let now = clocks.now_ns();
    // An established socket's packets pass on the stamp alone. The others keep the socket
    // lookup: a request socket's ACKs (it checks the kernel's ISN), and a closed connection's
    // 4-tuple (TIME_WAIT, or a new handshake on it that must not pass as the old connection).
    // (TIMEOUT_INIT also comes for a connection this host opens from a protected port: a full
    // socket, asked about until it is established.)
    let stamp = if established {
        // Tell us when it closes (`tcp_set_state`). Failing that, its stamp expires.
        let _ = ctx.set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32);
        conn_stamp(hash, now)
    } else {
        conn_ask_stamp(hash, now)
    };
    if let Some(slot) = SG_CONNS.get_ptr_mut(conn_slot(hash)) {
        // SAFETY: array value pointer; a racing writer stores a stamp too.
        unsafe { *slot = stamp };
    }
    file(hash);
    if op == BPF_SOCK_OPS_TIMEOUT_INIT {
        // A request socket (or this host's own SYN): a retransmission of the client's SYN must
        // reach the kernel, which answers it with this request socket's ISN, never a cookie
        // with another (`closing.rs`).
        crate::closing::remember(hash, now);
    }
}

/// The 4-tuple's hash as the client sends it (source = remote). A dual-stack listener's IPv4
/// connection is an IPv6 socket with mapped addresses; its packets are IPv4.
#[inline(always)]
fn hash(ctx: &SockOpsContext, rport: u16, lport: u16) -> Option<u64> {
    match ctx.family() {
        AF_INET => Some(flow_hash_v4(
            ctx.remote_ip4(),
            ctx.local_ip4(),
            rport,
            lport,
        )),
        AF_INET6 => {
            let (r, l) = (ctx.remote_ip6(), ctx.local_ip6());
            Some(if r[0] == 0 && r[1] == 0 && r[2] == V4_MAPPED {
                flow_hash_v4(r[3], l[3], rport, lport)
            } else {
                flow_hash(&r, &l, rport, lport)
            })
        }
        _ => None,
    }
}
