//! Step 3b, decide whom to drop: the block and allow lists, the per-source SYN limit, and the cap
//! on SYN-ACKs per destination prefix. Everything is off while its configuration is zero, and an
//! empty list is never looked up, so established traffic pays nothing for policies not in use.

use aya_ebpf::maps::lpm_trie::Key;
use synguard_common::{
    policy::{self, AddrKey, Policy, ReflectState, SourceState},
    reason::{Event, Reason},
};

use crate::{
    count,
    maps::{SG_ALLOW_V4, SG_ALLOW_V6, SG_BLOCK_V4, SG_BLOCK_V6, SG_REFLECT, SG_SOURCES},
    parse::Packet,
};

/// The packet's source address as the header's words in memory order, IPv4's in the first.
/// Codegen workaround: read as aligned words (`Packet::addresses`); copied out of the header's
/// byte array, the address became 16 byte loads, spills and byte stores on every packet's way
/// while a list is in use, and again for each key built from it.
#[inline(always)]
fn source(pkt: &Packet) -> [u32; 4] {
    let a = pkt.addresses();
    if pkt.ipv6 {
        [a[0], a[1], a[2], a[3]]
    } else {
        [a[0], 0, 0, 0]
    }
}

/// Blocked prefixes are dropped first; allowed ones pass with no limits and no cookies (the
/// kernel handles them as if synguard were not there).
#[inline(always)]
pub fn lists(pkt: &Packet, p: &Policy) -> Option<Reason> {
    let (block, allow) = if pkt.ipv6 {
        (p.block_v6, p.allow_v6)
    } else {
        (p.block_v4, p.allow_v4)
    };
    if block == 0 && allow == 0 {
        return None;
    }
    let src = source(pkt);
    if block != 0 && listed(pkt.ipv6, &src, false) {
        return Some(Reason::DropBlocklisted);
    }
    if allow != 0 && listed(pkt.ipv6, &src, true) {
        return Some(Reason::PassAllowlisted);
    }
    None
}

#[inline(always)]
fn listed(ipv6: bool, src: &[u32; 4], allow: bool) -> bool {
    if ipv6 {
        // SAFETY: same size, every bit pattern of either is valid.
        let addr = unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(*src) };
        let trie = if allow { &SG_ALLOW_V6 } else { &SG_BLOCK_V6 };
        trie.get(Key::new(128, addr)).is_some()
    } else {
        let trie = if allow { &SG_ALLOW_V4 } else { &SG_BLOCK_V4 };
        trie.get(Key::new(32, src[0].to_ne_bytes())).is_some()
    }
}

/// The per-source SYN limit: a GCRA bucket per IPv4 address or IPv6 /64. A source over its rate
/// has the excess dropped, and with a block time set is then dropped outright until it expires.
#[inline(always)]
pub fn source_limit(pkt: &Packet, p: &Policy, now: u64) -> Option<Reason> {
    if p.src_cost_ns == 0 {
        return None;
    }
    let key = policy::source_key(pkt.ipv6, &source(pkt));
    let Some(s) = SG_SOURCES.get_ptr_mut(key) else {
        let fresh = SourceState {
            tat_ns: now + p.src_cost_ns,
            blocked_until_ns: 0,
            syns: 1,
            dropped: 0,
        };
        // A full map evicts its least recently used source (which starts over if it comes
        // back); a failed insert only means this SYN was not charged.
        if SG_SOURCES.insert(key, fresh, 0).is_ok() {
            count::event(Event::SourceTracked);
        }
        return None;
    };
    // SAFETY: value pointer of the LRU map; concurrent CPUs race benignly (a SYN or two more or
    // less is charged).
    let s = unsafe { &mut *s };
    s.syns += 1;
    if now < s.blocked_until_ns {
        s.dropped += 1;
        return Some(Reason::DropSourceBlocked);
    }
    match policy::gcra(s.tat_ns, now, p.src_cost_ns, p.src_burst_ns) {
        Some(tat) => {
            s.tat_ns = tat;
            None
        }
        None => {
            s.dropped += 1;
            if p.src_block_ns != 0 {
                s.blocked_until_ns = now + p.src_block_ns;
                count::event(Event::SourceBlocked);
            }
            Some(Reason::DropSourceRate)
        }
    }
}

/// The reflection cap: SYN-ACKs to one destination /24 (IPv6 /48) per second. Spoofed SYNs name
/// a victim as their source; past the cap synguard stops answering for that network.
#[inline(always)]
pub fn reflection_cap(pkt: &Packet, p: &Policy, now: u64) -> Option<Reason> {
    if p.reflect_cost_ns == 0 {
        return None;
    }
    let key: AddrKey = policy::reflect_key(pkt.ipv6, &source(pkt));
    let Some(r) = SG_REFLECT.get_ptr_mut(key) else {
        let fresh = ReflectState {
            tat_ns: now + p.reflect_cost_ns,
            capped: 0,
        };
        let _ = SG_REFLECT.insert(key, fresh, 0);
        return None;
    };
    // SAFETY: value pointer of the LRU map; races as above.
    let r = unsafe { &mut *r };
    match policy::gcra(r.tat_ns, now, p.reflect_cost_ns, p.reflect_burst_ns) {
        Some(tat) => {
            r.tat_ns = tat;
            None
        }
        None => {
            r.capped += 1;
            Some(Reason::DropReflectionCap)
        }
    }
}
