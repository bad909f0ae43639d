//! Says which capability is missing before the kernel refuses with EPERM.

use caps::{CapSet, Capability};

/// Loading tracing programs needs CAP_BPF + CAP_PERFMON (Linux 5.8+) or
/// CAP_SYS_ADMIN; reading tracefs needs to get past its root-only mode.
pub fn check() -> anyhow::Result<()> {
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
    let admin = has(Capability::CAP_SYS_ADMIN);
    let mut missing = Vec::new();
    if !admin {
        for (cap, name) in [(Capability::CAP_BPF, "CAP_BPF"), (Capability::CAP_PERFMON, "CAP_PERFMON")] {
            if !has(cap) {
                missing.push(name);
            }
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "missing privilege {} (or CAP_SYS_ADMIN) to load eBPF tracing programs: run rsttrace as root (sudo rsttrace)",
            missing.join(" and ")
        );
    }
    Ok(())
}
