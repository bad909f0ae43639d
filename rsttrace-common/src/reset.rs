//! Resets sent and received: the record and the tracepoint layouts the
//! programs read it from.

use crate::{kernel::ABSENT, record::RecordHeader};

/// How a reset tracepoint stores its addresses.
pub mod address_layout {
    /// `saddr`/`daddr` are 28-byte sockaddr_in/sockaddr_in6 (tcp_send_reset
    /// since 6.10).
    pub const SOCKADDR: u32 = 1;
    /// `sport`, `dport`, `family`, `saddr[4]`, `daddr[4]`, `saddr_v6[16]`,
    /// `daddr_v6[16]` (tcp_receive_reset; tcp_send_reset before 6.10).
    pub const SPLIT: u32 = 2;
}

/// Byte offsets of a reset tracepoint's fields in its raw record, read from
/// the tracefs `format` file. `ABSENT` where the kernel's event lacks one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetTracepointLayout {
    /// An `address_layout` value; 0 leaves the program disabled.
    pub address_layout: u32,
    pub skaddr: u32,
    pub skbaddr: u32,
    pub state: u32,
    pub reason: u32,
    pub family: u32,
    pub sport: u32,
    pub dport: u32,
    pub saddr: u32,
    pub daddr: u32,
    pub saddr_v6: u32,
    pub daddr_v6: u32,
}

impl ResetTracepointLayout {
    pub const fn absent() -> Self {
        Self {
            address_layout: 0,
            skaddr: ABSENT,
            skbaddr: ABSENT,
            state: ABSENT,
            reason: ABSENT,
            family: ABSENT,
            sport: ABSENT,
            dport: ABSENT,
            saddr: ABSENT,
            daddr: ABSENT,
            saddr_v6: ABSENT,
            daddr_v6: ABSENT,
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for ResetTracepointLayout {}

/// `ResetRecord::flags` bits.
pub mod reset_flags {
    /// `reason` holds the kernel's `enum sk_rst_reason` value.
    pub const HAS_REASON: u8 = 1 << 0;
    /// `state` holds the kernel's TCP state number.
    pub const HAS_STATE: u8 = 1 << 1;
    /// The reset concerns a socket (skaddr was not NULL).
    pub const HAS_SOCKET: u8 = 1 << 2;
    /// Sent while a task held the socket lock: `pid`/`tid`/`comm` say who.
    pub const FROM_PROCESS: u8 = 1 << 3;
    /// The `*_jiffies` fields were read from a full TCP socket.
    pub const HAS_ACTIVITY: u8 = 1 << 4;
    /// `netns` was read.
    pub const HAS_NETNS: u8 = 1 << 5;
}

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// One RST sent or received by this host (`RecordKind::RstSent` /
/// `RstReceived`). Addresses are "local" (this host) and "remote" (the peer)
/// whatever the direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ResetRecord {
    pub header: RecordHeader,
    /// IPv4 in the first 4 bytes; IPv6 (possibly v4-mapped) in all 16.
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// `current->comm` when `FROM_PROCESS`.
    pub comm: [u8; 16],
    pub netns: u32,
    /// Thread group id (the process id users see) when `FROM_PROCESS`.
    pub pid: u32,
    pub tid: u32,
    pub reason: u32,
    /// `jiffies` when the reset was seen, and the socket's last activity
    /// stamps (`HAS_ACTIVITY`), all truncated to 32 bits like the kernel's.
    pub now_jiffies: u32,
    pub last_sent_jiffies: u32,
    pub last_received_jiffies: u32,
    pub last_ack_jiffies: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Host byte order.
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
    /// `reset_flags` bits.
    pub flags: u8,
}

const _: () = assert!(core::mem::size_of::<ResetRecord>() == 104);

#[cfg(feature = "user")]
unsafe impl aya::Pod for ResetRecord {}
