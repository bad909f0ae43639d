//! Resets sent and received.

use crate::{endpoints::Endpoints, record::RecordHeader};

/// `ResetRecord::flags` bits.
pub mod reset_flags {
    /// `reason` holds the kernel's `enum sk_rst_reason` value.
    pub const HAS_REASON: u32 = 1 << 0;
    /// `state` holds the kernel's TCP state number.
    pub const HAS_STATE: u32 = 1 << 1;
    /// The reset concerns a socket (skaddr was not NULL).
    pub const HAS_SOCKET: u32 = 1 << 2;
    /// Sent while a task held the socket lock: `pid`/`comm` say who.
    pub const FROM_PROCESS: u32 = 1 << 3;
    /// The `*_jiffies` fields were read from a full TCP socket.
    pub const HAS_ACTIVITY: u32 = 1 << 4;
    /// `netns` was read.
    pub const HAS_NETNS: u32 = 1 << 5;
    /// Whether SO_KEEPALIVE is on was read (received resets).
    pub const KEEPALIVE_KNOWN: u32 = 1 << 6;
    /// SO_KEEPALIVE is on: `keepalive_jiffies` is its idle time.
    pub const KEEPALIVE_ON: u32 = 1 << 7;
    /// `ttl` holds the received RST's IPv4 TTL or IPv6 hop limit.
    pub const HAS_TTL: u32 = 1 << 8;
    /// `peer_ttl` holds the TTL the peer's segments arrived with when the
    /// connection was set up.
    pub const HAS_PEER_TTL: u32 = 1 << 9;
    /// The socket's cached route was read: `VIA_GATEWAY` is meaningful.
    pub const ROUTE_KNOWN: u32 = 1 << 10;
    /// The socket's route to the peer goes through a gateway.
    pub const VIA_GATEWAY: u32 = 1 << 11;
    /// `rtt_min_us` was read.
    pub const HAS_RTT_MIN: u32 = 1 << 12;
    /// `cgroup_id` was read from the (full) socket.
    pub const HAS_CGROUP: u32 = 1 << 13;
    /// A received RST the kernel freed without ending a connection (seen by
    /// `kfree_skb`): `reason` holds its `enum skb_drop_reason`; `state`
    /// (`HAS_STATE`) is that of the socket it reached, if any.
    pub const DISCARDED: u32 = 1 << 14;
    /// A sent RST answers a segment (the kernel's reply to it, not its own
    /// abort): `segment_flags` holds that segment's TCP flags.
    pub const ANSWERS_SEGMENT: u32 = 1 << 15;
    /// `closed_ns` was read: for a sent RST from a TIME_WAIT socket, when
    /// this host's connection entered TIME_WAIT (its FIN acknowledged); for a
    /// received RST, when the peer's FIN arrived.
    pub const HAS_CLOSED: u32 = 1 << 16;
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
    /// How long the connection may be idle before the first keepalive
    /// probe (`KEEPALIVE_ON`).
    pub keepalive_jiffies: u32,
    /// The path's minimum RTT (`tcp_sock.rtt_min`, `HAS_RTT_MIN`), in
    /// microseconds: unlike the smoothed RTT it holds no think time of the
    /// peer's application and no delayed ACK.
    pub rtt_min_us: u32,
    pub _pad: u32,
    pub state: u8,
    pub ttl: u8,
    pub peer_ttl: u8,
    /// The TCP flags of the segment a sent RST answers (`ANSWERS_SEGMENT`).
    pub segment_flags: u8,
    /// `reset_flags` bits.
    pub flags: u32,
    /// The id of the cgroup that owns the socket (`HAS_CGROUP`): the inode
    /// number of its directory under /sys/fs/cgroup.
    pub cgroup_id: u64,
    /// `HAS_CLOSED`: when the connection was closed (ktime ns), see there.
    pub closed_ns: u64,
}

const _: () = assert!(core::mem::size_of::<ResetRecord>() == 136);

#[cfg(feature = "user")]
unsafe impl aya::Pod for ResetRecord {}

/// What is kept of a live connection, keyed by its socket's address, from
/// when it is set up or half-closed by the peer until it closes (deleted on
/// the change to CLOSE, so churn does not push out long-lived idle
/// connections); the peer's port and address prove the entry is this
/// socket's and not a freed one's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Connection {
    pub remote_addr: [u8; 16],
    pub remote_port: u16,
    /// What the peer's segments arrived with when the connection was set up
    /// (`connection_flags::TTL_KNOWN`).
    pub ttl: u8,
    /// `connection_flags` bits.
    pub flags: u8,
    pub _pad: u32,
    /// When the peer's FIN arrived, ktime ns (`connection_flags::PEER_FIN`).
    pub peer_fin_ns: u64,
}

/// `Connection::flags` bits.
pub mod connection_flags {
    pub const TTL_KNOWN: u8 = 1 << 0;
    pub const PEER_FIN: u8 = 1 << 1;
}

/// Live connections whose peer TTL or FIN time is kept. Not an LRU: the
/// entries that matter most are the oldest (idle connections a device may
/// forget). Beyond this many at once, new ones go unkept (their `peer_ttl`
/// and `peer_closed_ms` are null) and are counted (`counter::UNKEPT`).
pub const CONNECTION_ENTRIES: u32 = 65536;

/// What the loader tells the reset programs about this kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetConfig {
    /// Non-zero: `tcp_send_reset(sk, skb, reason)` (Linux 6.10+); zero:
    /// `tcp_send_reset(sk, skb)`.
    pub send_reset_has_reason: u32,
    /// Non-zero: every connection has a `Connection` entry (the peer TTL is
    /// learned as connections are set up, fexit strategy), so each one's
    /// change to CLOSE deletes it; zero: only connections the peer closed
    /// first (CLOSE_WAIT, LAST_ACK) have one, and the others' changes to
    /// CLOSE skip the lookup.
    pub keeps_every_connection: u32,
    /// Bit `n` (word `n / 64`): a segment freed with `enum skb_drop_reason`
    /// `n` was discarded by TCP's receive path (no socket, out of window,
    /// …), so a freed RST with it is one the kernel ignored. Other reasons
    /// (netfilter, a full queue, forwarding) are not about this host's TCP.
    pub discard_reasons: [u64; DISCARD_REASON_WORDS],
}

/// Drop reasons up to 64 × this are looked up (Linux 6.18 has about 120).
pub const DISCARD_REASON_WORDS: usize = 4;

impl ResetConfig {
    /// Whether `reason` is one of `discard_reasons`.
    #[inline(always)]
    pub fn discards(&self, reason: u32) -> bool {
        let word = (reason / 64) as usize;
        word < DISCARD_REASON_WORDS && self.discard_reasons[word] & (1 << (reason % 64)) != 0
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for ResetConfig {}

/// What makes resets "the same" for the storm table: resets that repeat with
/// one key within an interval are counted in the kernel past the first
/// `STORM_INDIVIDUAL`, instead of each crossing the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StormKey {
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// One of the two ports is 0: the one that varies within a storm (the
    /// peer's source port; this host's own, for connections it opened that
    /// the peer refuses), kept per entry as `StormCount::port`.
    pub local_port: u16,
    pub remote_port: u16,
    pub family: u16,
    pub _pad: u16,
    pub netns: u32,
    /// The reset reason (sent), the drop reason (`DISCARDED`), or
    /// `STORM_NO_REASON`.
    pub reason: u32,
    /// `RecordKind` (as u8).
    pub kind: u8,
    /// The socket's TCP state, or `STORM_NO_STATE`.
    pub state: u8,
    /// 1: discarded (received RSTs the kernel dropped).
    pub discarded: u8,
    /// The interval the key counts in: the daemon alternates 0 and 1
    /// (`COUNT_GENERATION`) and reads the other one's entries once no program
    /// can still be updating them.
    pub generation: u8,
}

const _: () = assert!(core::mem::size_of::<StormKey>() == 52);

/// `StormKey::reason` without a reason; `state` without a socket.
pub const STORM_NO_REASON: u32 = u32::MAX;
pub const STORM_NO_STATE: u8 = u8::MAX;

/// One key's resets in one interval.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StormCount {
    /// Resets seen with the key (atomic adds); the first `STORM_INDIVIDUAL`
    /// were recorded one by one, the rest are only counted here.
    pub seen: u64,
    /// The first counted one's time, port (the one the key leaves 0) and
    /// TTL (`STORM_HAS_TTL` in `flags`), written by the program that counted
    /// it.
    pub first_ns: u64,
    /// The id of the cgroup that owns the socket of the first counted one
    /// (`STORM_HAS_CGROUP`), where a full socket sent or received it.
    pub cgroup_id: u64,
    pub port: u16,
    pub ttl: u8,
    pub flags: u8,
    pub _pad: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<StormCount>() == 32);

/// Resets per key and interval recorded one by one before counting starts.
pub const STORM_INDIVIDUAL: u64 = 8;

/// Keys the storm table holds per generation; a key that does not fit is
/// recorded one by one (nothing is lost). Its values are per CPU and
/// preallocated: 2 × 1024 × 32 bytes, 64 KiB of kernel memory per CPU.
pub const STORM_ENTRIES: u32 = 1024;

/// How long one generation of the storm table counts.
pub const STORM_INTERVAL_NS: u64 = 1_000_000_000;

/// `StormCount::flags`: `ttl` holds the first counted RST's TTL.
pub const STORM_HAS_TTL: u8 = 1;
/// `StormCount::flags`: `cgroup_id` was read from the socket.
pub const STORM_HAS_CGROUP: u8 = 2;

#[cfg(feature = "user")]
unsafe impl aya::Pod for StormKey {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for StormCount {}
