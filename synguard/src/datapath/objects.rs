//! The compiled eBPF objects, embedded at build time (see build.rs).

/// Wrapper that gives the embedded bytes the alignment the ELF parser expects.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static SYNGUARD_OBJ: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/synguard")));
static LAB_OBJ: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/synguard-lab")));

/// The XDP program `synguard run` attaches (program `synguard`).
pub fn synguard() -> &'static [u8] {
    &SYNGUARD_OBJ.0
}

/// Lab-only programs: `lab_pass`, `lab_swap_tx`, `lab_drop`.
pub fn lab() -> &'static [u8] {
    &LAB_OBJ.0
}

#[cfg(test)]
mod tests {
    use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

    /// LLVM lowers a copy or a zeroing it cannot do in words to a call to a byte-wise `memcpy`,
    /// `memmove` or `memset` subprogram, which cost the SYN path tens of nanoseconds each time
    /// one crept in (docs/verifier.md, "No zeroing that LLVM turns into `memset`"). The XDP
    /// and sock_ops programs must call none.
    #[test]
    fn the_per_packet_programs_call_no_byte_wise_memory_routine() {
        let file = object::File::parse(super::synguard()).unwrap();
        let mut checked = 0;
        for section in file.sections() {
            let name = section.name().unwrap_or_default();
            if !(name.starts_with("xdp") || name.starts_with("sockops")) {
                continue;
            }
            checked += 1;
            for (offset, reloc) in section.relocations() {
                let RelocationTarget::Symbol(i) = reloc.target() else {
                    continue;
                };
                let target = file.symbol_by_index(i).unwrap();
                let callee = target.name().unwrap_or_default();
                assert!(
                    !["memcpy", "memmove", "memset"].contains(&callee),
                    "{name}+{offset:#x} calls {callee}"
                );
            }
        }
        assert!(checked >= 2, "no xdp or sockops section in the object");
    }
}
