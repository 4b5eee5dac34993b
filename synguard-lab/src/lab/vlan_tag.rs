//! A client whose every frame carries one or two 802.1Q tags inside the frame: a tc egress
//! program of a few instructions (`bpf_skb_vlan_push`, once per tag) on its interface, attached through a tcx link, with
//! VLAN transmit offload off so that the veth writes the tag into the frame
//! (docs/veth-and-nics.md). The server's XDP program then sees the tag as on a wire.
//!
//! The tags are priority tags (VLAN id 0): the lab's kernels have no 802.1Q devices, and a frame
//! with another VLAN id and no device for it is marked for another host before IP
//! (`__netif_receive_skb_core`, PACKET_OTHERHOST), so it never reaches a socket. A priority tag
//! takes the same way as any other up to that point: in the frame for XDP, taken out of the
//! frame by the kernel (`skb_vlan_untag`) before TC.
//!
//! The program is assembled here rather than built from Rust: it is the helper call alone.

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

use anyhow::{Result, ensure};

use crate::lab::netns::Netns;

/// `bpf` commands, program type, attach type and helper (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_EGRESS: u32 = 47;
const BPF_FUNC_SKB_VLAN_PUSH: i32 = 18;

/// One BPF instruction: opcode, registers (dst low nibble, src high), offset, immediate.
fn insn(code: u8, regs: u8, imm: i32) -> u64 {
    code as u64 | (regs as u64) << 8 | ((imm as u32) as u64) << 32
}

/// `r6 = r1 (skb)`, then per tag `r1 = r6; r2 = 0x8100 (network order); r3 = 0 (TCI: VLAN id
/// 0, priority 0); call bpf_skb_vlan_push`, then `r0 = TCX_PASS; exit`. A second push moves
/// the first tag into the frame and becomes the outer one (`skb_vlan_push`).
fn program(tags: usize) -> Vec<u64> {
    const MOV64_IMM: u8 = 0xb7;
    const MOV64_REG: u8 = 0xbf;
    const CALL: u8 = 0x85;
    const EXIT: u8 = 0x95;
    let mut p = vec![insn(MOV64_REG, 0x16, 0)];
    for _ in 0..tags {
        p.extend([
            insn(MOV64_REG, 0x61, 0),
            insn(MOV64_IMM, 2, u16::from_be(0x8100) as i32),
            insn(MOV64_IMM, 3, 0),
            insn(CALL, 0, BPF_FUNC_SKB_VLAN_PUSH),
        ]);
    }
    p.extend([insn(MOV64_IMM, 0, 0), insn(EXIT, 0, 0)]);
    p
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> Result<RawFd> {
    // SAFETY: `attr` is a zeroed, large enough `union bpf_attr` for the command.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as u32,
        )
    };
    ensure!(fd >= 0, "bpf({cmd}): {}", std::io::Error::last_os_error());
    Ok(fd as RawFd)
}

/// The tagging program on egress of `ifname` in `ns` until dropped (closing the link detaches
/// it).
pub struct VlanTag {
    _link: OwnedFd,
    _prog: OwnedFd,
}

impl VlanTag {
    /// `tags` (1 or 2) priority tags on every frame.
    pub fn attach(ns: &Netns, ifname: &str, tags: usize) -> Result<VlanTag> {
        ensure!((1..=2).contains(&tags), "{tags} VLAN tags: 1 or 2");
        ns.run("ethtool", &["-K", ifname, "txvlan", "off"])?;
        let insns = program(tags);
        let license = c"GPL";
        // The PROG_LOAD part of `union bpf_attr`: prog_type, insn_cnt, insns, license.
        let mut attr = [0u64; 16];
        attr[0] = BPF_PROG_TYPE_SCHED_CLS as u64 | (insns.len() as u64) << 32;
        attr[1] = insns.as_ptr() as u64;
        attr[2] = license.as_ptr() as u64;
        // SAFETY: a descriptor the kernel just returned, owned from here on.
        let prog = unsafe { OwnedFd::from_raw_fd(bpf(BPF_PROG_LOAD, &mut attr)?) };
        let prog_fd = std::os::fd::AsRawFd::as_raw_fd(&prog);
        let name = ifname.to_string();
        // The interface index is the namespace's: create the link from inside it.
        let link = ns.enter(move || -> Result<RawFd> {
            let c = std::ffi::CString::new(name.clone())?;
            // SAFETY: a valid C string.
            let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
            ensure!(ifindex != 0, "no interface {name}");
            // The LINK_CREATE part: prog_fd, target_ifindex, attach_type, flags.
            let mut attr = [0u64; 16];
            attr[0] = prog_fd as u32 as u64 | (ifindex as u64) << 32;
            attr[1] = BPF_TCX_EGRESS as u64;
            bpf(BPF_LINK_CREATE, &mut attr)
        })??;
        // SAFETY: as above.
        let link = unsafe { OwnedFd::from_raw_fd(link) };
        Ok(VlanTag {
            _link: link,
            _prog: prog,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_the_helper_call() {
        let p = program(2);
        assert_eq!(p.len(), 1 + 2 * 4 + 2);
        assert_eq!(p[0], 0x16bf, "r6 = r1");
        assert_eq!(p[1], 0x61bf, "r1 = r6");
        // mov r2, 0x0081 (0x8100 in network order on a little-endian host)
        assert_eq!(p[2], 0x0000_0081_0000_02b7);
        assert_eq!(p[4], 0x0000_0012_0000_0085, "call 18");
        assert_eq!(p[10], 0x95);
    }
}
