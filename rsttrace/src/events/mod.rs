//! Events: what the eBPF programs saw, decoded once into types
//! (`decode`), correlated into what is reported (`correlate`), and
//! filtered (`filter`).

pub mod clock;
pub mod correlate;
pub mod decode;
pub mod filter;

use std::{net::SocketAddr, time::SystemTime};

use crate::kernel::{
    names::{DropReason, ResetReason, TcpState, TwStatus},
    strategy::Hook,
};

/// A 4-tuple in its network namespace. "Local" is this host, "remote" the
/// peer, whatever the direction of the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FourTuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Network namespace inode number; None when it could not be read.
    pub netns: Option<u32>,
}

/// One decoded record of the eBPF programs.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Reset(Reset),
    /// A SYN for a 4-tuple a TIME_WAIT socket holds.
    Collision(TimeWaitSegment),
    /// An RST that killed a TIME_WAIT socket.
    Killed(TimeWaitSegment),
    /// The first connection on a 4-tuple after a collision or kill.
    Followup(Followup),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Sent,
    Received,
}

/// An RST this host sent or received.
#[derive(Clone, Debug, PartialEq)]
pub struct Reset {
    pub direction: Direction,
    pub time: SystemTime,
    /// Kernel monotonic time, for correlating events.
    pub ktime_ns: u64,
    pub tuple: FourTuple,
    /// The local socket's state; None when there was no socket.
    pub state: Option<TcpState>,
    /// The kernel's reset reason (sent resets, Linux 6.10+).
    pub reason: Option<ResetReason>,
    /// Received resets: time since the socket last sent or received.
    pub idle_ms: Option<u64>,
    /// Sent resets: the process whose system call sent it.
    pub process: Option<Process>,
    /// The cgroup that owns the socket (full sockets; kernels with the 5.15
    /// layout of `sock_cgroup_data`): the
    /// inode number of its directory under /sys/fs/cgroup.
    pub cgroup_id: Option<u64>,
    /// Filled in by `owners::Owners` once the reset passed the filters: the
    /// systemd unit (or cgroup path) of `cgroup_id`, and the `ip netns`
    /// name of the network namespace.
    pub unit: Option<String>,
    pub netns_name: Option<String>,
}

/// The task whose system call made the kernel send a reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
}

/// A segment (SYN or RST) a TIME_WAIT socket handled, with the evidence the
/// hook saw.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeWaitSegment {
    pub time: SystemTime,
    pub ktime_ns: u64,
    pub tuple: FourTuple,
    /// The hook that saw it (its strategy is the record's `source`).
    pub hook: Hook,
    /// The segment's sequence number: the SYN's ISN, the RST's seq.
    pub seq: u32,
    /// Whether the segment carried TCP timestamps (None: its options could
    /// not be read), and its TSval.
    pub timestamps: Option<bool>,
    pub tsval: Option<u32>,
    /// The TIME_WAIT socket's rcv_nxt and last peer timestamp (and when, in
    /// seconds of the kernel's clock).
    pub tw_rcv_nxt: Option<u32>,
    pub tw_ts_recent: Option<u32>,
    pub tw_ts_recent_stamp: Option<u32>,
    /// Whether the old connection used timestamps.
    pub tw_timestamps: Option<bool>,
    /// How long the connection had been in TIME_WAIT.
    pub tw_age_ms: Option<u64>,
    /// The kernel's verdict, where the hook sees it (fexit, kprobe).
    pub tw_status: Option<TwStatus>,
    /// Why the kernel freed the segment (kfree_skb).
    pub drop_reason: Option<DropReason>,
}

/// The first connection on a 4-tuple after a collision or kill.
#[derive(Clone, Debug, PartialEq)]
pub struct Followup {
    pub ktime_ns: u64,
    pub tuple: FourTuple,
    /// An RST had killed the TIME_WAIT socket in between.
    pub was_killed: bool,
}
