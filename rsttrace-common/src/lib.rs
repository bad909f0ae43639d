//! Records shared by the rsttrace eBPF programs (kernel side) and the daemon
//! (userspace). Everything here is `#[repr(C)]` with explicit padding: the
//! kernel writes these bytes and userspace reads them back.
#![cfg_attr(not(test), no_std)]

pub mod endpoints;
pub mod kernel;
pub mod record;
pub mod reset;
pub mod tcp_options;
pub mod timewait;
