//! The table of connections in TIME_WAIT, shared by the TIME_WAIT programs
//! (which fill it and mark what met each socket) and the reset programs
//! (which read when a TIME_WAIT socket that sends an RST was entered).

use aya_ebpf::{macros::map, maps::LruHashMap};
use rsttrace_common::{
    endpoints::Endpoints,
    timewait::{TIME_WAIT_TABLE_ENTRIES, TimeWaitEntry, TimeWaitKey},
};

/// Connections in TIME_WAIT, per network namespace and 4-tuple. Bounded:
/// the oldest entries go first when a flood of TIME_WAIT exceeds it.
#[map]
pub static TIME_WAIT: LruHashMap<TimeWaitKey, TimeWaitEntry> = LruHashMap::with_max_entries(TIME_WAIT_TABLE_ENTRIES, 0);

/// When the TIME_WAIT socket of `endpoints` in `netns` was entered (its
/// table entry), 0 when the table does not hold it.
// A function of its own: the key stays off the caller's stack.
#[inline(never)]
pub fn entered_ns(netns: u32, endpoints: &Endpoints) -> u64 {
    let key = TimeWaitKey { netns, endpoints: *endpoints };
    // SAFETY: the map value is plain data, read at once.
    unsafe { TIME_WAIT.get(key) }.map_or(0, |entry| entry.entered_ns)
}
