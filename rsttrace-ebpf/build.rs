// Building this crate depends on the bpf-linker binary, which cargo cannot
// see: rebuild when it changes.
fn main() {
    if let Ok(bpf_linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
}
