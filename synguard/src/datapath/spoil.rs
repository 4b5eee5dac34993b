//! Fault injection (`SYNGUARD_FAIL_AT=own-verifier`, `host::fault`): one program of the object
//! made unverifiable, so that a test sees the kernel really refuse it and synguard react as it
//! would to any refusal. Never used otherwise.

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};
use thiserror::Error;

use crate::datapath::kfunc::AlignedObject;

/// `r0 = r7` (`BPF_ALU64 | BPF_MOV | BPF_X`, dst 0, src 7): r7 is never written before a
/// function's first instruction, so the verifier refuses it ("R7 !read_ok").
const READ_UNSET_R7: [u8; 8] = [0xbf, 0x70, 0, 0, 0, 0, 0, 0];

#[derive(Debug, Error)]
pub enum SpoilError {
    #[error("cannot read the eBPF object")]
    Parse(#[from] object::Error),
    #[error("the eBPF object has no function body for program {0}")]
    NoBody(String),
}

/// Where the body of `program` starts in the file: in `.text` as `<crate>::<program>::<program>`
/// (mangled, so the name ends with the program name twice, each after its length) when the
/// `#[xdp]`/`#[classifier]` macros left the section named for the program holding only a call
/// to it; else the program's own symbol in its section, when its body is inlined into the entry
/// point. An instruction a relocation points at is not used (aya would refuse the object).
fn body_offset(elf: &[u8], program: &str) -> Result<usize, SpoilError> {
    let file = object::File::parse(elf)?;
    let suffix = format!("{n}{program}{n}{program}", n = program.len());
    let none = || SpoilError::NoBody(program.to_string());
    let text = |s: &object::Symbol| s.kind() == SymbolKind::Text;
    let sym = file
        .symbols()
        .find(|s| text(s) && s.name().is_ok_and(|n| n.ends_with(&suffix)))
        .or_else(|| {
            file.symbols()
                .find(|s| text(s) && s.name().is_ok_and(|n| n == program))
        })
        .ok_or_else(none)?;
    let section = file.section_by_index(sym.section_index().ok_or_else(none)?)?;
    if section.kind() != SectionKind::Text
        || section.relocations().any(|(at, _)| at == sym.address())
    {
        return Err(none());
    }
    let (start, _) = section.file_range().ok_or_else(none)?;
    Ok((start + sym.address()) as usize)
}

/// Replaces the first instruction of `program`'s body with one the verifier refuses.
pub fn spoil(obj: &mut AlignedObject, program: &str) -> Result<(), SpoilError> {
    let at = body_offset(obj.bytes(), program)?;
    obj.bytes_mut()[at..at + 8].copy_from_slice(&READ_UNSET_R7);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::objects;

    /// `own::XDP_PROGRAM` (not imported: `own` imports this module's error through `error`).
    const OWN_XDP: &str = "synguard_own_xdp";

    #[test]
    fn spoils_one_instruction_of_the_named_program() {
        let orig = objects::synguard();
        let mut obj = AlignedObject::new(orig);
        spoil(&mut obj, OWN_XDP).unwrap();
        let changed: Vec<usize> = (0..orig.len())
            .filter(|&i| orig[i] != obj.bytes()[i])
            .collect();
        let at = body_offset(orig, OWN_XDP).unwrap();
        assert!(!changed.is_empty() && changed.iter().all(|i| (at..at + 8).contains(i)));
        assert_eq!(&obj.bytes()[at..at + 8], &READ_UNSET_R7);
        // The main program's body is another one, and aya still parses the object.
        assert_ne!(body_offset(orig, "synguard").unwrap(), at);
        aya_obj::Object::parse(obj.bytes()).unwrap();
    }

    #[test]
    fn an_unknown_program_is_an_error() {
        let mut obj = AlignedObject::new(objects::synguard());
        assert!(matches!(
            spoil(&mut obj, "no_such_program"),
            Err(SpoilError::NoBody(_))
        ));
    }
}
