//! The kernel side of loading: what the running kernel is (BTF, tracefs),
//! whether this process may trace it, and attaching the programs.

pub mod btf;
pub mod hooks;
pub mod names;
pub mod privileges;
pub mod strategy;
pub mod tracefs;
