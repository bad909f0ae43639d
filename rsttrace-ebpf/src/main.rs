//! rsttrace's eBPF programs. They read what the kernel exposes at offsets
//! userspace found at start-up (tracefs `format` files, BTF), and send one
//! fixed-layout record per event through one ring buffer.
#![no_std]
#![no_main]

mod read;
mod reset;
mod timewait;

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use rsttrace_common::{
    kernel::KernelOffsets,
    record::{RING_BUFFER_BYTES, counter},
};

/// Filled by the loader from the running kernel's BTF.
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets::absent();

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BUFFER_BYTES, 0);

/// Per-CPU counters (`rsttrace_common::record::counter`), read by the daemon
/// for its summary: nothing is dropped without being counted.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// A loader-patched global, read in place. The globals are immutable
/// statics to the compiler, which would fold their initial values; reading
/// their address through a volatile load hides that, without copying them
/// onto the 512-byte stack.
fn patched<T>(global: &'static T) -> &'static T {
    // SAFETY: the address of a static, read back unchanged.
    unsafe { &*core::ptr::read_volatile(&(global as *const T)) }
}

fn offsets() -> &'static KernelOffsets {
    patched(&KERNEL_OFFSETS)
}

fn count(slot: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(slot) {
        // Per-CPU slot: no other writer while this program runs.
        unsafe { *value += 1 };
    }
}

/// Pending bytes past which a record wakes the reader at once: half the
/// ring, which a 100k/s storm takes ~180 ms to fill between 100 ms drains.
const WAKEUP_BYTES: u64 = RING_BUFFER_BYTES as u64 / 2;

/// Sends `record` to userspace, counting it as lost when the ring is full.
/// The reader is not woken for each record (a wake-up costs more than the
/// record): it drains the ring on a short timer, and is woken early only
/// when the ring is filling up.
fn emit<T: 'static>(record: &T) {
    let wakeup =
        if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_BYTES { BPF_RB_FORCE_WAKEUP } else { BPF_RB_NO_WAKEUP };
    if EVENTS.output::<T>(record, wakeup as u64).is_err() {
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
