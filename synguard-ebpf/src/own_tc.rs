//! The TC ingress program `synguard_own`: for a handshake ACK that the XDP program validated
//! against an own cookie (`own.rs`), hands the kernel a request socket built from the cookie
//! through the kfunc `bpf_sk_assign_tcp_reqsk` (net/core/filter.c, Linux 6.9), the way the
//! kernel selftest `test_tcp_custom_syncookie` does: the listener from `bpf_skc_lookup_tcp`,
//! `bpf_skc_to_tcp_sock`, then the kfunc. The kernel then completes the handshake in
//! `cookie_v4_check` / `cookie_v6_check` (`cookie_bpf_check`) without its own cookie check.
//!
//! Every other packet pays two loads and a compare: no metadata of ours, return at once.
//!
//! The kfunc is declared `extern "C"`; the compiler leaves its call unresolved, and the loader
//! turns it into a kfunc call by the function's BTF id (`synguard::datapath::kfunc`).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{
        __sk_buff, BPF_F_CURRENT_NETNS, BPF_TCP_LISTEN, TC_ACT_OK, bpf_sock_tuple,
        bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1, bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2,
    },
    helpers::generated::{
        bpf_sk_release, bpf_skb_pull_data, bpf_skb_vlan_pop, bpf_skb_vlan_push, bpf_skc_lookup_tcp,
        bpf_skc_to_tcp_sock,
    },
    programs::TcContext,
};
use synguard_common::{
    reason::Event,
    reqsk::{BpfTcpReqAttrs, META_LEN, META_MAGIC, OwnAckMeta},
};

use crate::{
    count,
    parse::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, Words},
};

unsafe extern "C" {
    /// `int bpf_sk_assign_tcp_reqsk(struct __sk_buff *skb, struct sock *sk,
    /// struct bpf_tcp_req_attrs *attrs, int attrs__sz)`, net/core/filter.c.
    fn bpf_sk_assign_tcp_reqsk(
        skb: *mut __sk_buff,
        sk: *mut c_void,
        attrs: *mut BpfTcpReqAttrs,
        attrs_sz: i32,
    ) -> i32;
}

const ETH_LEN: u32 = 14;
const VLAN_LEN: u32 = 4;

#[inline(always)]
pub fn handle(ctx: &TcContext) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: context field reads.
    let (meta, data) = unsafe { ((*skb).data_meta as usize, (*skb).data as usize) };
    if meta + META_LEN > data {
        return TC_ACT_OK;
    }
    // SAFETY: META_LEN bytes of metadata, checked above.
    let m: OwnAckMeta = unsafe { core::ptr::read_unaligned(meta as *const OwnAckMeta) };
    if m.magic != META_MAGIC {
        return TC_ACT_OK;
    }
    assign(ctx, m);
    TC_ACT_OK
}

#[inline(always)]
pub fn assign(ctx: &TcContext, mut m: OwnAckMeta) {
    let skb = ctx.skb.skb;
    let Some((proto, l2)) = l3(ctx) else {
        return;
    };
    let ports_at = l2 + m.tcp_off as u32;
    let Some(ports) = load::<4>(ctx, ports_at) else {
        return;
    };
    let sport = u16::from_ne_bytes([ports.0[0], ports.0[1]]);
    let dport = u16::from_ne_bytes([ports.0[2], ports.0[3]]);
    let sk = if m.ipv6 != 0 && proto == ETH_P_IPV6 {
        let Some(a) = load::<32>(ctx, l2 + 8) else {
            return;
        };
        let w = |i| a.u32_ne(i);
        let mut t = bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2 {
            saddr: [w(0), w(4), w(8), w(12)],
            daddr: [w(16), w(20), w(24), w(28)],
            sport,
            dport,
        };
        lookup(
            skb,
            &mut t as *mut _ as *mut bpf_sock_tuple,
            core::mem::size_of_val(&t) as u32,
        )
    } else if m.ipv6 == 0 && proto == ETH_P_IP {
        let Some(a) = load::<8>(ctx, l2 + 12) else {
            return;
        };
        let mut t = bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1 {
            saddr: a.u32_ne(0),
            daddr: a.u32_ne(4),
            sport,
            dport,
        };
        lookup(
            skb,
            &mut t as *mut _ as *mut bpf_sock_tuple,
            core::mem::size_of_val(&t) as u32,
        )
    } else {
        // A third VLAN tag, or a family other than the one XDP parsed: not ours.
        count::event(Event::OwnNoListener);
        return;
    };
    if sk.is_null() {
        count::event(Event::OwnNoListener);
        return;
    }
    // SAFETY: `sk` is a referenced socket from the lookup, released below on every path.
    unsafe {
        if (*sk).state == BPF_TCP_LISTEN {
            let tp = bpf_skc_to_tcp_sock(sk as *mut c_void);
            if tp.is_null() {
                count::event(Event::OwnNoListener);
            } else {
                let r = assign_reqsk(skb, tp as *mut c_void, &mut m.attrs, l2 != ETH_LEN);
                count::event(if r == 0 {
                    Event::OwnReqskAssigned
                } else {
                    Event::OwnReqskFailed
                });
            }
        } else {
            // A socket for this 4-tuple exists after all (the handshake raced a retransmitted
            // ACK): the kernel has it.
            count::event(Event::OwnNoListener);
        }
        bpf_sk_release(sk as *mut c_void);
    }
}

/// `bpf_sk_assign_tcp_reqsk` for the listener `tp`. The kfunc wants `skb->protocol` IPv4 or
/// IPv6; behind two tags (`inner_tag`) it is the inner tag's type here, so the inner tag leaves
/// the frame for the call and both come back after it: `bpf_skb_vlan_pop` drops the outer tag
/// the kernel holds outside the frame and moves the inner one there (`skb_vlan_pop`), and
/// `bpf_skb_vlan_push` of the outer one moves the inner one back into the frame first
/// (`skb_vlan_push`), so the kernel goes on with the frame as it came, now carrying the request
/// socket. -1 when the tags cannot be moved.
///
/// # Safety
/// `skb` is this program's context and `tp` a trusted listener from `bpf_skc_to_tcp_sock`.
#[inline(always)]
unsafe fn assign_reqsk(
    skb: *mut __sk_buff,
    tp: *mut c_void,
    attrs: &mut BpfTcpReqAttrs,
    inner_tag: bool,
) -> i32 {
    let size = core::mem::size_of::<BpfTcpReqAttrs>() as i32;
    // SAFETY (all below): helper and kfunc calls on our own context, see the function's.
    if !inner_tag {
        return unsafe { bpf_sk_assign_tcp_reqsk(skb, tp, attrs, size) };
    }
    let (present, proto, tci) =
        unsafe { ((*skb).vlan_present, (*skb).vlan_proto, (*skb).vlan_tci) };
    if present == 0 || unsafe { bpf_skb_vlan_pop(skb) } != 0 {
        return -1;
    }
    let r = unsafe { bpf_sk_assign_tcp_reqsk(skb, tp, attrs, size) };
    // Fails only without memory for the tag (`skb_cow_head`); the frame then goes on with the
    // inner tag outside it, as one tagged with the inner tag alone.
    let _ = unsafe { bpf_skb_vlan_push(skb, proto as u16, tci as u16) };
    r
}

/// The frame's network protocol and where its header starts. The kernel takes one VLAN tag out
/// of the frame before TC (`skb_vlan_untag` in `__netif_receive_skb_core`) and the inner one of
/// two only after TC (`vlan_do_receive`, or the priority-tag branch after it), so behind
/// 802.1Q-in-802.1Q (or 802.1ad) one tag is still in the frame here: skip it
/// (docs/own-cookies.md, "Limits").
#[inline(always)]
pub fn l3(ctx: &TcContext) -> Option<(u16, u32)> {
    let proto = u16::from_be_bytes(load::<2>(ctx, 12)?.0);
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let inner = u16::from_be_bytes(load::<2>(ctx, ETH_LEN + 2)?.0);
        return Some((inner, ETH_LEN + VLAN_LEN));
    }
    Some((proto, ETH_LEN))
}

/// `bpf_skc_lookup_tcp` in the device's netns.
#[inline(always)]
fn lookup(
    skb: *mut __sk_buff,
    tuple: *mut bpf_sock_tuple,
    size: u32,
) -> *mut aya_ebpf::bindings::bpf_sock {
    // SAFETY: helper call with a stack tuple of `size` initialised bytes.
    unsafe {
        bpf_skc_lookup_tcp(
            skb as *mut c_void,
            tuple,
            size,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    }
}

/// `N` bytes at `off` in the frame, read in place in the skb's linear data (one bounds check
/// and a load per word), where a received frame's headers are on the drivers synguard knows.
/// Where they are not (paged data), `bpf_skb_pull_data` first moves that much into the linear
/// data, as the stack's own `pskb_may_pull` would. A `bpf_skb_load_bytes` call for every
/// header had made the TC check of an established connection's segment about five times the
/// cost of a bare TC program (`cargo xtask bench`, docs/measuring.md).
///
/// Verifier workaround: both ways end in the same in-place read, so the states after a load
/// are alike and prune; a helper's copy as the second way gave each load two kinds of stack
/// contents, and `synguard_own_check` took six times the instructions to verify.
#[inline(always)]
pub fn load<const N: usize>(ctx: &TcContext, off: u32) -> Option<Words<N>> {
    if let Some(b) = in_place(ctx, off) {
        return Some(b);
    }
    // SAFETY: helper call on our own context; packet pointers are read again after it.
    if unsafe { bpf_skb_pull_data(ctx.skb.skb, off + N as u32) } != 0 {
        return None;
    }
    in_place(ctx, off)
}

#[inline(always)]
fn in_place<const N: usize>(ctx: &TcContext, off: u32) -> Option<Words<N>> {
    crate::parse::load_between(ctx.data() as u64, ctx.data_end() as u64, off as u64)
}
