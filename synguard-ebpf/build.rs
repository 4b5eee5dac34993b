use which::which;

/// Rebuilds the eBPF programs when bpf-linker changes (as the aya template does): the linker is
/// what turns LLVM bitcode into the BPF object, so a new one can change the output.
fn main() {
    if let Ok(path) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
