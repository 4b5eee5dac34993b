//! Reads one struct member's byte offset out of raw BTF (the kernel's own type information,
//! `/sys/kernel/btf/vmlinux`; format in the kernel's Documentation/bpf/btf.rst). The loader
//! uses it to tell the XDP program where a request socket keeps its ISN
//! (`tcp_request_sock.snt_isn`), which moves between kernel builds. Host-side only; pure, so it
//! is unit-tested on hand-made BTF.

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn name_at(strings: &[u8], off: u32) -> Option<&[u8]> {
    let s = strings.get(off as usize..)?;
    let end = s.iter().position(|&c| c == 0)?;
    Some(&s[..end])
}

/// Bytes that follow a type's 12-byte common part (`struct btf_type`), by kind.
fn trailing(kind: u32, vlen: usize) -> usize {
    match kind {
        1 => 4,             // INT
        3 => 12,            // ARRAY
        4 | 5 => 12 * vlen, // STRUCT, UNION: btf_member
        6 => 8 * vlen,      // ENUM
        13 => 8 * vlen,     // FUNC_PROTO: btf_param
        14 => 4,            // VAR
        15 => 12 * vlen,    // DATASEC
        17 => 4,            // DECL_TAG
        19 => 12 * vlen,    // ENUM64
        _ => 0,             // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
    }
}

/// Byte offset of `member` in the struct named `name`, from little-endian BTF. `None` when the
/// blob is not BTF, the struct or member is missing, or the member is a bitfield.
pub fn member_offset(btf: &[u8], name: &[u8], member: &[u8]) -> Option<u32> {
    if u16::from_le_bytes(btf.get(0..2)?.try_into().ok()?) != MAGIC {
        return None;
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let (type_off, type_len) = (u32_at(btf, 8)? as usize, u32_at(btf, 12)? as usize);
    let (str_off, str_len) = (u32_at(btf, 16)? as usize, u32_at(btf, 20)? as usize);
    let types = btf.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
    let strings = btf.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
    let mut at = 0;
    while at + 12 <= types.len() {
        let (name_off, info) = (u32_at(types, at)?, u32_at(types, at + 4)?);
        let (kind, vlen, kflag) = ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31);
        let body = at + 12;
        if (kind == KIND_STRUCT || kind == KIND_UNION) && name_at(strings, name_off)? == name {
            for m in 0..vlen {
                let rec = body + 12 * m;
                if name_at(strings, u32_at(types, rec)?)? != member {
                    continue;
                }
                let raw = u32_at(types, rec + 8)?;
                // With kflag, the top 8 bits are a bitfield size; without, all 32 are the offset.
                let (bits, bitfield) = if kflag == 1 {
                    (raw & 0x00ff_ffff, raw >> 24 != 0)
                } else {
                    (raw, false)
                };
                return (!bitfield && bits % 8 == 0).then_some(bits / 8);
            }
            return None;
        }
        at = body + trailing(kind, vlen);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// BTF with an INT, then `struct s { int a; int b; }` (b at bit 32), then a FUNC_PROTO.
    fn blob(kflag: bool, b_bits: u32) -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0";
        let mut t = Vec::new();
        let w = |t: &mut Vec<u8>, v: u32| t.extend_from_slice(&v.to_le_bytes());
        // INT "int": name 1, kind 1, size 4, encoding word.
        w(&mut t, 1);
        w(&mut t, 1 << 24);
        w(&mut t, 4);
        w(&mut t, 32);
        // FUNC_PROTO with one param, before the struct, to exercise skipping.
        w(&mut t, 0);
        w(&mut t, (13 << 24) | 1);
        w(&mut t, 1);
        w(&mut t, 0);
        w(&mut t, 1);
        // STRUCT "s", 2 members, size 8.
        w(&mut t, 5);
        w(&mut t, (4 << 24) | 2 | if kflag { 1 << 31 } else { 0 });
        w(&mut t, 8);
        for (name, off) in [(7u32, 0u32), (9, b_bits)] {
            w(&mut t, name);
            w(&mut t, 1);
            w(&mut t, off);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(strings);
        b
    }

    #[test]
    fn finds_a_member_after_other_kinds() {
        assert_eq!(member_offset(&blob(false, 32), b"s", b"b"), Some(4));
        assert_eq!(member_offset(&blob(false, 32), b"s", b"a"), Some(0));
        assert_eq!(member_offset(&blob(true, 32), b"s", b"b"), Some(4));
    }

    #[test]
    fn missing_bitfield_and_garbage_are_none() {
        assert_eq!(member_offset(&blob(false, 32), b"s", b"c"), None);
        assert_eq!(member_offset(&blob(false, 32), b"t", b"a"), None);
        assert_eq!(member_offset(&blob(true, (3 << 24) | 32), b"s", b"b"), None);
        assert_eq!(member_offset(&blob(false, 33), b"s", b"b"), None);
        assert_eq!(member_offset(b"not btf at all, no", b"s", b"a"), None);
        let mut cut = blob(false, 32);
        cut.truncate(40);
        assert_eq!(member_offset(&cut, b"s", b"b"), None);
    }

    #[test]
    fn the_running_kernel_has_a_request_socket_isn() {
        // On a machine with kernel BTF (every lab machine): a plausible offset.
        let Ok(btf) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            return;
        };
        let off = member_offset(&btf, b"tcp_request_sock", b"snt_isn").expect("snt_isn in BTF");
        assert!((64..1024).contains(&off), "offset {off}");
    }
}
