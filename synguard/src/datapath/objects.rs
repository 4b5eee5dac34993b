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
