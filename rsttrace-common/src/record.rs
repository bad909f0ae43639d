//! What every ring-buffer record starts with, and the in-kernel counters.

/// Kinds of record crossing the ring buffer. The numbers are this project's
/// own wire format between its two halves, not a kernel ABI.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    RstSent = 1,
    RstReceived = 2,
    TwCollision = 3,
    TwKilled = 4,
    TwFollowup = 5,
}

impl RecordKind {
    pub fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::RstSent),
            2 => Some(Self::RstReceived),
            3 => Some(Self::TwCollision),
            4 => Some(Self::TwKilled),
            5 => Some(Self::TwFollowup),
            _ => None,
        }
    }
}

/// First bytes of every record, so the decoder knows the type before the
/// payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordHeader {
    /// A `RecordKind` value.
    pub kind: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC.
    pub ktime_ns: u64,
}

/// Slots of the per-CPU `COUNTERS` array.
pub mod counter {
    /// Records dropped because the ring buffer was full.
    pub const LOST: u32 = 0;
    /// Records dropped because a kernel read failed (layout mismatch).
    pub const READ_ERRORS: u32 = 1;
    /// Connections whose peer TTL or FIN time could not be kept: the
    /// connection table was full (`reset::CONNECTION_ENTRIES` at once).
    pub const UNKEPT: u32 = 2;
    pub const COUNT: u32 = 3;
}

/// Ring buffer size in bytes: a power of two multiple of the page size.
/// 4 MiB holds ~37k records: 370 ms of a 100k/s reset storm, several of the
/// reader's 100 ms drains.
pub const RING_BUFFER_BYTES: u32 = 4 << 20;
