//! Live connections in the fuzzer: a batch may stamp a few of the generator's 4-tuples in the
//! connection table, as the sock_ops program does for the host's own connections, and the
//! oracle's reading of them, from the README and docs/connection-table.md:
//! - every ACK of a live 4-tuple passes as established once past the host checks and the
//!   lists, whatever its sequence numbers (a cookie check would drop a live connection);
//! - a FIN among them records a close: the host may hold a TIME_WAIT socket, so that 4-tuple's
//!   SYNs go to the kernel (`pass_syn_recent_close`) instead of being answered with a cookie;
//! - so do a live 4-tuple's own SYNs (`pass_syn_live_conn`): its client lost the connection,
//!   and the host answers with a challenge ACK.
//!
//! A batch may also stamp a 4-tuple for the socket lookup to decide (a request socket's stamp,
//! or another 4-tuple's stamp in its slot): with no socket behind it here, its segments must
//! meet the cookie check exactly as an unstamped 4-tuple's do.

use std::collections::HashSet;

use super::{generate::PROTECTED, rng::Rng};
use crate::testrun::frames::{
    CLIENT_MAC, CLIENT_V4, CLIENT_V6, SERVER_MAC, SERVER_V4, SERVER_V6, Segment, Tags, tcp_v4,
    tcp_v6,
};

/// A 4-tuple as the client sends it: source and destination address, source and destination
/// port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: Vec<u8>,
    pub dst: Vec<u8>,
    pub sport: u16,
    pub dport: u16,
}

impl Tuple {
    /// A client segment of this 4-tuple (for the fixture, which keys the tables by a frame's
    /// 4-tuple).
    pub fn frame(&self) -> Vec<u8> {
        let seg = Segment::syn(self.sport, self.dport, 0, vec![]);
        let macs = (CLIENT_MAC, SERVER_MAC);
        let (src, dst) = (self.src.as_slice(), self.dst.as_slice());
        if let (Ok(s), Ok(d)) = (src.try_into(), dst.try_into()) {
            return tcp_v4(s, d, Tags::None, macs, &seg);
        }
        let v6 = |a: &[u8]| <[u8; 16]>::try_from(a).expect("a 4-tuple of IPv4 or IPv6 addresses");
        tcp_v6(v6(src), v6(dst), Tags::None, macs, &seg)
    }
}

/// A batch's live connections and the closes recorded among them, and the 4-tuples it
/// stamped for the socket lookup.
#[derive(Clone, Debug, Default)]
pub struct Conns {
    live: HashSet<Tuple>,
    closed: HashSet<Tuple>,
    asked: Vec<Asked>,
}

/// A 4-tuple stamped for the socket lookup to decide.
#[derive(Clone, Debug)]
pub struct Asked {
    pub tuple: Tuple,
    /// Another 4-tuple's stamp in its slot, rather than a request socket's of its own.
    pub other_in_slot: bool,
}

impl Conns {
    /// In half of the batches, one to three live connections from the generator's commonest
    /// client addresses, source ports and protected ports (so that many of its ACKs and SYNs
    /// meet them).
    /// The same for the 4-tuples stamped for the socket lookup, one or two of those not live.
    pub fn draw(rng: &mut Rng) -> Self {
        let mut live = HashSet::new();
        if rng.pct(50) {
            for _ in 0..1 + rng.below(3) {
                live.insert(common_tuple(rng));
            }
        }
        let mut asked = Vec::new();
        if rng.pct(50) {
            for _ in 0..1 + rng.below(2) {
                let tuple = common_tuple(rng);
                if !live.contains(&tuple) {
                    let other_in_slot = rng.pct(50);
                    asked.push(Asked {
                        tuple,
                        other_in_slot,
                    });
                }
            }
        }
        Conns {
            live,
            closed: HashSet::new(),
            asked,
        }
    }

    pub fn asked(&self) -> &[Asked] {
        &self.asked
    }

    /// These live connections, no close recorded.
    pub fn of(live: Vec<Tuple>) -> Self {
        Conns {
            live: live.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn live(&self) -> impl Iterator<Item = &Tuple> {
        self.live.iter()
    }

    pub fn is_live(&self, t: &Tuple) -> bool {
        self.live.contains(t)
    }

    /// An ACK of a live connection, with the FIN flag or not: passes; a FIN records the close.
    pub fn ack(&mut self, t: &Tuple, fin: bool) {
        if fin {
            self.closed.insert(t.clone());
        }
    }

    pub fn recently_closed(&self, t: &Tuple) -> bool {
        self.closed.contains(t)
    }
}

/// One of the generator's commonest client 4-tuples (`generate`).
fn common_tuple(rng: &mut Rng) -> Tuple {
    let (src, dst) = if rng.pct(30) {
        (CLIENT_V6.to_vec(), SERVER_V6.to_vec())
    } else {
        (CLIENT_V4.to_vec(), SERVER_V4.to_vec())
    };
    Tuple {
        src,
        dst,
        sport: rng.pick(&[40000u16, 40001, 1024, 65535]),
        dport: rng.pick(&PROTECTED),
    }
}
