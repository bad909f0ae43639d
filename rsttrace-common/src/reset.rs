//! Resets sent and received.

use crate::{endpoints::Endpoints, record::RecordHeader};

/// `ResetRecord::flags` bits.
pub mod reset_flags {
    /// `reason` holds the kernel's `enum sk_rst_reason` value.
    pub const HAS_REASON: u8 = 1 << 0;
    /// `state` holds the kernel's TCP state number.
    pub const HAS_STATE: u8 = 1 << 1;
    /// The reset concerns a socket (skaddr was not NULL).
    pub const HAS_SOCKET: u8 = 1 << 2;
    /// Sent while a task held the socket lock: `pid`/`comm` say who.
    pub const FROM_PROCESS: u8 = 1 << 3;
    /// The `*_jiffies` fields were read from a full TCP socket.
    pub const HAS_ACTIVITY: u8 = 1 << 4;
    /// `netns` was read.
    pub const HAS_NETNS: u8 = 1 << 5;
    /// `cgroup_id` was read from the (full) socket.
    pub const HAS_CGROUP: u8 = 1 << 6;
}

/// One RST sent or received by this host (`RecordKind::RstSent` /
/// `RstReceived`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ResetRecord {
    pub header: RecordHeader,
    pub endpoints: Endpoints,
    /// `current->comm` when `FROM_PROCESS`.
    pub comm: [u8; 16],
    pub netns: u32,
    /// Thread group id (the process id users see) when `FROM_PROCESS`.
    pub pid: u32,
    pub reason: u32,
    /// `jiffies` when the reset was seen, and the socket's last activity
    /// stamps (`HAS_ACTIVITY`), all truncated to 32 bits like the kernel's.
    pub now_jiffies: u32,
    pub last_sent_jiffies: u32,
    pub last_received_jiffies: u32,
    pub last_ack_jiffies: u32,
    pub state: u8,
    /// `reset_flags` bits.
    pub flags: u8,
    pub _pad: [u8; 2],
    /// The id of the cgroup that owns the socket (`HAS_CGROUP`): the inode
    /// number of its directory under /sys/fs/cgroup.
    pub cgroup_id: u64,
}

const _: () = assert!(core::mem::size_of::<ResetRecord>() == 112);

#[cfg(feature = "user")]
unsafe impl aya::Pod for ResetRecord {}

/// What the loader tells the reset programs about this kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetConfig {
    /// Non-zero: `tcp_send_reset(sk, skb, reason)` (Linux 6.10+); zero:
    /// `tcp_send_reset(sk, skb)`.
    pub send_reset_has_reason: u32,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for ResetConfig {}
