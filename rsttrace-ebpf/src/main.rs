//! rsttrace's eBPF programs. They read kernel memory at offsets userspace
//! found at start-up in the kernel's BTF, and send one fixed-layout record
//! per event through one ring buffer.
#![no_std]
#![no_main]

mod freed;
mod read;
mod reset;
mod time_wait_table;
mod timewait;

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    macros::map,
    maps::{Array, PerCpuArray, RingBuf, ring_buf::RingBufEntry},
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

/// The generation (0 or 1) the tables of counts (reset storms, accepted
/// reuse) count in, flipped by the daemon, which reads the other one.
#[map]
static COUNT_GENERATION: Array<u32> = Array::with_max_entries(1, 0);

#[inline(always)]
fn generation() -> u32 {
    COUNT_GENERATION.get(0).copied().unwrap_or(0)
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

/// A record built in place in the ring buffer: no copy, no stack, and no
/// per-CPU scratch space that a program interrupted by a softirq on its CPU
/// would share with the one interrupting it (raw tracepoints and fexit only
/// keep a program from nesting in itself). Dropped without `emit`, it is
/// discarded.
pub struct Draft<T: 'static>(Option<RingBufEntry<T>>);

impl<T: 'static> Draft<T> {
    /// A zeroed record, or `None` (counted as lost) when the ring is full.
    #[inline(always)]
    pub fn new() -> Option<Self> {
        let Some(mut entry) = EVENTS.reserve::<T>(0) else {
            count(counter::LOST);
            return None;
        };
        // SAFETY: the reservation holds a T; the records are plain data, for
        // which all zeroes is a valid value.
        unsafe { core::ptr::write_bytes(entry.as_mut_ptr(), 0, 1) };
        Some(Draft(Some(entry)))
    }

    /// Hands the record to userspace. The reader is not woken for each
    /// record (a wake-up costs more than the record): it drains the ring on
    /// a short timer, and is woken early only when the ring is filling up.
    #[inline(always)]
    pub fn emit(mut self) {
        let wakeup =
            if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_BYTES { BPF_RB_FORCE_WAKEUP } else { BPF_RB_NO_WAKEUP };
        if let Some(entry) = self.0.take() {
            entry.submit(wakeup as u64);
        }
    }
}

impl<T: 'static> core::ops::Deref for Draft<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: zeroed in `new` and only taken out by `emit`/`drop`.
        unsafe { self.0.as_ref().unwrap_unchecked().assume_init_ref() }
    }
}

impl<T: 'static> core::ops::DerefMut for Draft<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { self.0.as_mut().unwrap_unchecked().assume_init_mut() }
    }
}

impl<T: 'static> Drop for Draft<T> {
    fn drop(&mut self) {
        if let Some(entry) = self.0.take() {
            entry.discard(0);
        }
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
