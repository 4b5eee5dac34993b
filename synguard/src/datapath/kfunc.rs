//! Calls to kernel functions (kfuncs) from our Rust eBPF code, made loadable.
//!
//! rustc emits no BTF for an `extern "C"` declaration, so a kfunc call in the object is a plain
//! call (`BPF_JMP | BPF_CALL`, source register `BPF_PSEUDO_CALL`, immediate -1) with a
//! relocation against an undefined symbol, which aya 0.14 cannot resolve (`UnknownFunction`, or
//! a call to the function itself when the call is its first instruction). Before loading, each
//! such call is rewritten in the object's bytes into what the verifier expects of a kfunc call
//! (kernel/bpf/verifier.c, `add_kfunc_call`): source register `BPF_PSEUDO_KFUNC_CALL`, offset 0
//! (vmlinux, not a module), immediate = the function's BTF id in the running kernel. aya then
//! leaves the instruction alone: it links only `BPF_PSEUDO_CALL`s and relocations against
//! defined symbols.
//!
//! Only functions in vmlinux: aya 0.14 cannot pass the file descriptor of a module's BTF. The
//! verifier checks argument structs by size only, so their layouts are copied from the kernel
//! with compile-time size checks (`synguard_common::reqsk`).

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionKind};
use thiserror::Error;

/// `BPF_JMP | BPF_CALL`.
const CALL: u8 = 0x85;
/// `BPF_PSEUDO_KFUNC_CALL`: the immediate is a BTF id of a kernel function.
const PSEUDO_KFUNC_CALL: u8 = 2;
const INSN_LEN: usize = 8;

#[derive(Debug, Error)]
pub enum KfuncError {
    #[error("cannot read the eBPF object")]
    Parse(#[from] object::Error),
    #[error(
        "the eBPF object calls {}, which the running kernel's BTF (/sys/kernel/btf/vmlinux) does \
         not have",
        .0.join(", ")
    )]
    Unresolved(Vec<String>),
    #[error("relocation against {name} at {section}+{offset:#x} is not on a call instruction")]
    NotACall {
        name: String,
        section: String,
        offset: u64,
    },
    #[error("cannot read the running kernel's BTF")]
    Btf(#[from] aya::BtfError),
}

/// One call to an undefined symbol: where its instruction sits in the file, and the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KfuncCall {
    pub file_offset: usize,
    pub name: String,
}

/// The calls to undefined symbols in the object's executable sections.
pub fn undefined_calls(elf: &[u8]) -> Result<Vec<KfuncCall>, KfuncError> {
    let file = object::File::parse(elf)?;
    let mut calls = Vec::new();
    for section in file.sections().filter(|s| s.kind() == SectionKind::Text) {
        let Some((start, size)) = section.file_range() else {
            continue;
        };
        for (offset, rel) in section.relocations() {
            let RelocationTarget::Symbol(index) = rel.target() else {
                continue;
            };
            let symbol = file.symbol_by_index(index)?;
            if !symbol.is_undefined() {
                continue;
            }
            let name = symbol.name()?.to_string();
            let at = (start + offset) as usize;
            if offset + INSN_LEN as u64 > size || elf[at] != CALL {
                return Err(KfuncError::NotACall {
                    name,
                    section: section.name().unwrap_or("?").to_string(),
                    offset,
                });
            }
            calls.push(KfuncCall {
                file_offset: at,
                name,
            });
        }
    }
    Ok(calls)
}

/// An object's bytes, 8-byte aligned as the ELF parser wants them.
pub struct AlignedObject {
    words: Vec<u64>,
    len: usize,
}

impl AlignedObject {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `words` holds at least `bytes.len()` bytes; u64 has no invalid bit patterns.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 8)
        };
        dst[..bytes.len()].copy_from_slice(bytes);
        AlignedObject {
            words,
            len: bytes.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of `words` were written in `new`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.len) }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, self.len) }
    }
}

/// A copy of `elf` with every call to an undefined symbol turned into a kfunc call, the BTF id
/// from `resolve`. Fails naming every symbol `resolve` does not know.
pub fn rewrite(
    elf: &[u8],
    resolve: impl Fn(&str) -> Option<u32>,
) -> Result<AlignedObject, KfuncError> {
    let calls = undefined_calls(elf)?;
    let mut out = AlignedObject::new(elf);
    let mut missing: Vec<String> = Vec::new();
    for call in &calls {
        let Some(id) = resolve(&call.name) else {
            if !missing.contains(&call.name) {
                missing.push(call.name.clone());
            }
            continue;
        };
        let insn = &mut out.bytes_mut()[call.file_offset..call.file_offset + INSN_LEN];
        // Byte 1: source register (high nibble), destination register 0 (low nibble).
        insn[1] = PSEUDO_KFUNC_CALL << 4;
        insn[2..4].copy_from_slice(&0i16.to_le_bytes());
        insn[4..8].copy_from_slice(&(id as i32).to_le_bytes());
    }
    if !missing.is_empty() {
        return Err(KfuncError::Unresolved(missing));
    }
    Ok(out)
}

/// `rewrite` against the running kernel's vmlinux BTF.
pub fn rewrite_for_running_kernel(elf: &[u8]) -> Result<AlignedObject, KfuncError> {
    let btf = aya::Btf::from_sys_fs()?;
    rewrite(elf, |name| vmlinux_func_id(&btf, name))
}

/// The BTF id of a function in vmlinux.
pub fn vmlinux_func_id(btf: &aya::Btf, name: &str) -> Option<u32> {
    btf.id_by_type_name_kind(name, aya_obj::btf::BtfKind::Func)
        .ok()
}

/// Whether the running kernel has `name` as a function in its BTF (None: no BTF to ask).
pub fn running_kernel_has(name: &str) -> Option<bool> {
    let btf = aya::Btf::from_sys_fs().ok()?;
    Some(vmlinux_func_id(&btf, name).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::objects;

    const REQSK: &str = "bpf_sk_assign_tcp_reqsk";

    fn insn(obj: &[u8], at: usize) -> [u8; 8] {
        obj[at..at + 8].try_into().unwrap()
    }

    #[test]
    fn finds_the_kfunc_call_of_the_tc_program() {
        let calls = undefined_calls(objects::synguard()).unwrap();
        assert!(!calls.is_empty());
        assert!(calls.iter().all(|c| c.name == REQSK), "{calls:?}");
        for c in &calls {
            let i = insn(objects::synguard(), c.file_offset);
            assert_eq!(i[0], CALL);
            // As the compiler left it: a BPF-to-BPF call (src 1) to -1.
            assert_eq!(i[1] >> 4, 1);
            assert_eq!(i32::from_le_bytes(i[4..8].try_into().unwrap()), -1);
        }
        // The lab object calls no kernel function.
        assert!(undefined_calls(objects::lab()).unwrap().is_empty());
    }

    #[test]
    fn rewrites_each_call_and_nothing_else() {
        let orig = objects::synguard();
        let out = rewrite(orig, |n| (n == REQSK).then_some(4242)).unwrap();
        let out = out.bytes();
        assert_eq!(out.len(), orig.len());
        let calls = undefined_calls(orig).unwrap();
        let mut changed = 0;
        for (i, (a, b)) in orig.iter().zip(out).enumerate() {
            if a != b {
                assert!(
                    calls
                        .iter()
                        .any(|c| (c.file_offset..c.file_offset + 8).contains(&i)),
                    "byte {i} changed outside a call"
                );
                changed += 1;
            }
        }
        assert!(changed > 0);
        for c in &calls {
            let i = insn(out, c.file_offset);
            assert_eq!((i[0], i[1], i[2], i[3]), (CALL, 0x20, 0, 0));
            assert_eq!(i32::from_le_bytes(i[4..8].try_into().unwrap()), 4242);
        }
        // What aya parses: the rewritten object still loads as an object.
        aya_obj::Object::parse(out).unwrap();
    }

    #[test]
    fn an_unknown_symbol_fails_naming_it() {
        let err = match rewrite(objects::synguard(), |_| None) {
            Err(e) => e,
            Ok(_) => panic!("rewrite accepted an unresolved kfunc"),
        };
        assert!(matches!(&err, KfuncError::Unresolved(n) if n == &[REQSK.to_string()]));
        assert!(err.to_string().contains(REQSK), "{err}");
    }

    #[test]
    fn a_relocation_off_a_call_is_refused() {
        let calls = undefined_calls(objects::synguard()).unwrap();
        let mut bad = AlignedObject::new(objects::synguard());
        bad.bytes_mut()[calls[0].file_offset] = 0xb7; // mov r0, imm
        assert!(matches!(
            undefined_calls(bad.bytes()),
            Err(KfuncError::NotACall { .. })
        ));
    }

    /// Against the running kernel, where it has BTF: the id is the kernel's own.
    #[test]
    fn resolves_against_the_running_kernel_btf() {
        let Ok(btf) = aya::Btf::from_sys_fs() else {
            eprintln!("no /sys/kernel/btf/vmlinux: skipped");
            return;
        };
        assert!(vmlinux_func_id(&btf, "no_such_kernel_function_xyz").is_none());
        if let Some(id) = vmlinux_func_id(&btf, REQSK) {
            let out = rewrite_for_running_kernel(objects::synguard()).unwrap();
            let c = &undefined_calls(objects::synguard()).unwrap()[0];
            let i = insn(out.bytes(), c.file_offset);
            assert_eq!(i32::from_le_bytes(i[4..8].try_into().unwrap()) as u32, id);
        }
    }
}
