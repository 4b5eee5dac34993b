//! Layouts shared by the lab's own XDP programs (`synguard-ebpf/src/bin/lab.rs`, never attached
//! by `synguard run`) and the lab crate that loads them (`synguard-lab`).

/// Largest template frame `lab_restore` writes back before every benchmark run.
pub const TEMPLATE_MAX: usize = 128;

/// The single entry of the `LAB_TEMPLATE` map: the frame `lab_restore` writes before every run.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    pub len: u32,
    /// A slot of the connection table (`LAB_CONNS`) to empty before each run, plus one; 0:
    /// none. A handshake's final ACK stamps its 4-tuple (`conns::conn_handshake_stamp`), so
    /// without this only the first of the runs would check its cookie.
    pub forget_slot: u32,
    pub bytes: [u8; TEMPLATE_MAX],
}

/// The lab's IPv4 network, 198.18.0.0/24 (the benchmarking range, RFC 2544), whose upper half
/// 198.18.0.128/25 is the spoof pool: the only sources the lab's floods and spoofed probes use,
/// and what the lab's floor programs and reply sink act on.
pub const LAB_NET_V4: [u8; 3] = [198, 18, 0];
/// First host byte of the spoof pool.
pub const SPOOF_POOL_FIRST: u8 = 128;

/// Whether `addr` is in the spoof pool (198.18.0.128/25).
#[inline(always)]
pub fn in_spoof_pool(addr: [u8; 4]) -> bool {
    // Byte by byte: a slice comparison may become a call to `bcmp`, which BPF does not have.
    let [n0, n1, n2] = LAB_NET_V4;
    addr[0] == n0 && addr[1] == n1 && addr[2] == n2 && addr[3] & SPOOF_POOL_FIRST != 0
}

/// Length of a generated frame: Ethernet, IPv4 without options, TCP without options.
pub const GEN_LEN: usize = 54;

/// `GenConfig::mix`: every frame a SYN.
pub const MIX_SYN: u8 = 0;
/// `GenConfig::mix`: every frame a bare ACK.
pub const MIX_ACK: u8 = 1;
/// `GenConfig::mix`: SYN and ACK in turn.
pub const MIX_BOTH: u8 = 2;

/// The single entry of the `LAB_GEN` map: what `lab_gen` sends, set by the lab before a flood.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// The frame every generated one starts from (MACs, destination, port, TTL, window).
    pub template: [u8; GEN_LEN],
    /// [`MIX_SYN`], [`MIX_ACK`] or (anything else) [`MIX_BOTH`].
    pub mix: u8,
    /// Sources are 198.18.0.(128 | (n & source_mask)): at most the /25 the server has static
    /// neighbour entries for.
    pub source_mask: u8,
    pub _pad: [u8; 8],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), integers and byte arrays only, no implicit padding (sizes asserted below).
    unsafe impl aya::Pod for super::Template {}
    unsafe impl aya::Pod for super::GenConfig {}
}

const _: () = assert!(core::mem::size_of::<Template>() == 4 + 4 + TEMPLATE_MAX);
const _: () = assert!(core::mem::size_of::<GenConfig>() == GEN_LEN + 1 + 1 + 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoof_pool_is_the_upper_half_of_the_lab_net() {
        assert!(in_spoof_pool([198, 18, 0, 128]));
        assert!(in_spoof_pool([198, 18, 0, 255]));
        assert!(!in_spoof_pool([198, 18, 0, 127]));
        assert!(!in_spoof_pool([198, 18, 0, 2]));
        assert!(!in_spoof_pool([198, 18, 1, 200]));
        assert!(!in_spoof_pool([10, 18, 0, 200]));
    }
}
