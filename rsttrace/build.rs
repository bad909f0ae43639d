// Builds rsttrace-ebpf for the bpf target (nightly, bpf-linker) into OUT_DIR;
// src/kernel/hooks.rs embeds the object. `cargo xtask` installs what this needs.
fn main() -> anyhow::Result<()> {
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "rsttrace-ebpf",
            root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../rsttrace-ebpf"),
            ..Default::default()
        }],
        // The pinned nightly (rust-nightly): its LLVM is bpf-linker's.
        aya_build::Toolchain::Custom(include_str!("../rust-nightly").trim()),
    )
}
