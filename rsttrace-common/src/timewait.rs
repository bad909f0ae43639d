//! TIME_WAIT sockets: the in-kernel table of connections in TIME_WAIT, and
//! the records of reused-port SYNs that hit one, of the resets that kill one,
//! and of the retry that follows a collision.
//!
//! The kernel side reports facts (which hook, the kernel's raw verdict or
//! drop reason, the evidence); the daemon derives the verdict.

use crate::{endpoints::Endpoints, record::RecordHeader};

/// Key of the TIME_WAIT table: one connection in one network namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeWaitKey {
    pub netns: u32,
    pub endpoints: Endpoints,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for TimeWaitKey {}

/// `TimeWaitEntry::flags` bits.
pub mod entry_flags {
    /// The connection used TCP timestamps (`rx_opt.tstamp_ok`).
    pub const TIMESTAMPS: u32 = 1 << 0;
    /// A SYN collided with the TIME_WAIT socket (`marked_ns` says when).
    pub const COLLIDED: u32 = 1 << 1;
    /// An RST killed the TIME_WAIT socket.
    pub const KILLED: u32 = 1 << 2;
    /// `TIMESTAMPS` was read (not a failed read taken for "no").
    pub const TIMESTAMPS_KNOWN: u32 = 1 << 3;
}

/// What the table keeps per connection in TIME_WAIT.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeWaitEntry {
    /// When the connection entered TIME_WAIT (ktime ns).
    pub entered_ns: u64,
    /// When it collided or was killed (ktime ns), 0 before.
    pub marked_ns: u64,
    /// `tcp_sock.rcv_nxt` at entry.
    pub rcv_nxt: u32,
    /// `rx_opt.ts_recent` / `ts_recent_stamp` at entry.
    pub ts_recent: u32,
    pub ts_recent_stamp: u32,
    /// `entry_flags` bits.
    pub flags: u32,
    /// `tcp_sock.snd_nxt` at entry: a SYN the TIME_WAIT socket accepts
    /// gives the new connection the ISN `snd_nxt + 65537`, which proves
    /// the socket existed (`tcp_max_tw_buckets` may have refused it).
    pub snd_nxt: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for TimeWaitEntry {}

/// Connections in TIME_WAIT the table holds at most (LRU beyond).
pub const TIME_WAIT_TABLE_ENTRIES: u32 = 65536;

/// Which hook saw a TIME_WAIT record.
pub mod source {
    pub const FEXIT: u8 = 1;
    pub const KPROBE: u8 = 2;
    /// `skb:kfree_skb` with `rx_sk` (Linux 6.11+).
    pub const KFREE_SKB: u8 = 3;
    /// `sock:inet_sock_set_state` plus the table.
    pub const SET_STATE: u8 = 4;
}

/// `TimeWaitRecord::tw_status` when the hook cannot see the kernel's verdict.
pub const TW_STATUS_UNKNOWN: u8 = 0xff;

/// `TimeWaitRecord::flags` bits.
pub mod tw_flags {
    /// `segment_tsval` holds the segment's TCP timestamp (TS option present).
    pub const SEGMENT_TIMESTAMPS: u16 = 1 << 0;
    /// Whether the segment's options were seen at all.
    pub const SEGMENT_OPTIONS_KNOWN: u16 = 1 << 1;
    /// `tw_rcv_nxt`, `tw_ts_recent*` were read (from the socket or the table).
    pub const TW_FIELDS: u16 = 1 << 2;
    /// `entered_ns` is known (the table had the connection).
    pub const ENTERED_KNOWN: u16 = 1 << 3;
    /// `drop_reason` holds the kernel's `enum skb_drop_reason` value.
    pub const HAS_DROP_REASON: u16 = 1 << 4;
    /// Follow-up: the TIME_WAIT socket had been killed by an RST before.
    pub const WAS_KILLED: u16 = 1 << 5;
    /// The old connection used TCP timestamps.
    pub const TW_TIMESTAMPS: u16 = 1 << 6;
    /// `TW_TIMESTAMPS` was read, not guessed.
    pub const TW_TIMESTAMPS_KNOWN: u16 = 1 << 7;
}

/// The ISN the kernel gives a connection whose SYN a TIME_WAIT socket
/// accepted (`tcp_timewait_state_process`, `TCP_TW_SYN`): past everything
/// the old connection sent.
pub const fn isn_after_time_wait(tw_snd_nxt: u32) -> u32 {
    let isn = tw_snd_nxt.wrapping_add(65535 + 2);
    if isn == 0 { 1 } else { isn }
}

/// A segment that met a TIME_WAIT socket (`RecordKind::TwCollision`: a SYN;
/// `TwKilled`: an RST that killed it), or the first connection on a 4-tuple
/// after a collision (`TwFollowup`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeWaitRecord {
    pub header: RecordHeader,
    pub endpoints: Endpoints,
    pub netns: u32,
    /// Sequence number of the segment (the SYN's ISN, the RST's seq).
    pub segment_seq: u32,
    /// TIME_WAIT socket's `rcv_nxt`: what it expects next from the peer.
    pub tw_rcv_nxt: u32,
    /// The segment's TSval (`SEGMENT_TIMESTAMPS`).
    pub segment_tsval: u32,
    /// TIME_WAIT socket's last TSval seen from the peer, and when (seconds
    /// of the kernel's monotonic clock).
    pub tw_ts_recent: u32,
    pub tw_ts_recent_stamp: u32,
    /// `enum skb_drop_reason` (`HAS_DROP_REASON`).
    pub drop_reason: u32,
    pub _pad: u32,
    /// When the connection entered TIME_WAIT (`ENTERED_KNOWN`).
    pub entered_ns: u64,
    /// Follow-up: when the collision happened.
    pub marked_ns: u64,
    /// `enum tcp_tw_status` returned by `tcp_timewait_state_process`, or
    /// `TW_STATUS_UNKNOWN`.
    pub tw_status: u8,
    /// A `source` value.
    pub source: u8,
    /// `tw_flags` bits.
    pub flags: u16,
    pub _pad2: u32,
}

const _: () = assert!(core::mem::size_of::<TimeWaitRecord>() == 112);

#[cfg(feature = "user")]
unsafe impl aya::Pod for TimeWaitRecord {}

/// How the loader set up the TIME_WAIT programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWaitConfig {
    /// Non-zero: `inet_sock_set_state` reports accepted reuse itself (the
    /// tracepoint strategy, which has no hook on the kernel's verdict),
    /// proved by the new connection's ISN: a SYN a TIME_WAIT socket accepted
    /// gives it `isn_after_time_wait`. Only where `tcp_timewait_state_process`
    /// has a `tw_isn` parameter (Debian's 6.12 and newer); measured on
    /// Debian's 5.10 and 6.1, such connections get a random ISN.
    pub accepted_from_set_state: u32,
    /// Argument index of its `enum skb_drop_reason *` (6.16+), or ABSENT.
    pub drop_reason_arg: u32,
    /// `TCP_TW_SYN`: the kernel accepted the SYN (number from BTF).
    pub tw_status_syn: u32,
    /// Non-zero: `kfree_skb` reports what TIME_WAIT sockets did with SYNs
    /// and RSTs (the tracepoint strategy; fexit and kprobe hook the kernel's
    /// verdict instead).
    pub segments_from_kfree_skb: u32,
}

impl TimeWaitConfig {
    pub const fn absent() -> Self {
        Self {
            accepted_from_set_state: 0,
            drop_reason_arg: crate::kernel::ABSENT,
            tw_status_syn: crate::kernel::ABSENT,
            segments_from_kfree_skb: 0,
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for TimeWaitConfig {}

/// TIME_WAIT lasts `TCP_TIMEWAIT_LEN` (60 s) after the last (re)schedule:
/// older table entries no longer stand for a live socket.
pub const TIME_WAIT_NS: u64 = 60_000_000_000;

/// Accepted (harmless) reuse counted in the kernel instead of one ring
/// record per connection: per network namespace, local endpoint and peer
/// address (`endpoints.remote_port` is 0), as the daemon reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReuseKey {
    pub endpoints: Endpoints,
    pub netns: u32,
    /// The interval the key counts in, as `StormKey::generation`: the
    /// daemon alternates 0 and 1 (`COUNT_GENERATION`) and reads the other.
    pub generation: u32,
}

const _: () = assert!(core::mem::size_of::<ReuseKey>() == 48);

/// One key's accepted reuse in one interval, on one CPU: how many, and the
/// first one's record, as the ring would have carried it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ReuseCount {
    pub count: u64,
    pub first: TimeWaitRecord,
}

/// Keys the reuse table holds per generation; past it, accepted reuse goes
/// through the ring one record each (nothing is lost). Values are per CPU
/// and preallocated: 2 × 256 × 120 bytes, 60 KiB of kernel memory per CPU.
pub const REUSE_ENTRIES: u32 = 256;

#[cfg(feature = "user")]
unsafe impl aya::Pod for ReuseKey {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for ReuseCount {}
