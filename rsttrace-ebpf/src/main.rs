//! rsttrace's eBPF programs. They read what the kernel's tracepoints expose
//! at offsets userspace found at start-up (tracefs `format` files, BTF), and
//! send one fixed-layout record per event through one ring buffer.
#![no_std]
#![no_main]

mod reset;

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use rsttrace_common::record::{RING_BUFFER_BYTES, counter};

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BUFFER_BYTES, 0);

/// Per-CPU counters (`rsttrace_common::record::counter`), read by the daemon
/// for its summary: nothing is dropped without being counted.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

fn count(slot: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(slot) {
        // Per-CPU slot: no other writer while this program runs.
        unsafe { *value += 1 };
    }
}

/// Sends `record` to userspace, counting it as lost when the ring is full.
fn emit<T: 'static>(record: &T) {
    if EVENTS.output::<T>(record, 0).is_err() {
        count(counter::LOST);
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
