//! The kernel side of loading: what the running kernel is (BTF, tracefs),
//! whether this process may trace it, and attaching the programs.

pub mod btf;
pub mod hooks;
pub mod limitation;
pub mod names;
pub mod privileges;
pub mod strategy;
pub mod tracefs;

/// The running kernel's release (`uname -r`); empty when unreadable.
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}
