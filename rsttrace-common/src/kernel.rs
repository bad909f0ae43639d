//! Offsets into kernel structures, found in `/sys/kernel/btf/vmlinux` at
//! start-up and handed to the eBPF programs as a global. Rust eBPF has no
//! CO-RE, so nothing is taken from the machine that built the binary.

/// Marks an offset or field the running kernel does not have.
pub const ABSENT: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `sock_common.skc_family` (u16): for events without a `family` field.
    pub skc_family: u32,
    /// `sock_common.skc_state` (u8), also valid for timewait and request socks.
    pub skc_state: u32,
    /// `sock_common.skc_net`: `struct net *`.
    pub skc_net: u32,
    /// `net.ns.inum`: network namespace inode number (u32).
    pub net_ns_inum: u32,
    /// `sock.sk_lock.owned` (int): non-zero while a task holds `lock_sock`.
    pub sk_lock_owned: u32,
    /// `tcp_sock.lsndtime` (u32 jiffies): last data sent.
    pub tcp_lsndtime: u32,
    /// `tcp_sock.rcv_tstamp` (u32 jiffies): last ACK received.
    pub tcp_rcv_tstamp: u32,
    /// `inet_connection_sock.icsk_ack.lrcvtime` (u32 jiffies): last data received.
    pub icsk_lrcvtime: u32,
    /// `sk_buff.dev`: `struct net_device *`.
    pub skb_dev: u32,
    /// `net_device.nd_net`: `struct net *`.
    pub netdev_nd_net: u32,
    /// Bit `1 << state` set for TCP states whose socket is not a full `struct
    /// sock` (TIME_WAIT, NEW_SYN_RECV): numbers from BTF enum names.
    pub minisock_state_mask: u32,
}

impl KernelOffsets {
    pub const fn absent() -> Self {
        Self {
            skc_family: ABSENT,
            skc_state: ABSENT,
            skc_net: ABSENT,
            net_ns_inum: ABSENT,
            sk_lock_owned: ABSENT,
            tcp_lsndtime: ABSENT,
            tcp_rcv_tstamp: ABSENT,
            icsk_lrcvtime: ABSENT,
            skb_dev: ABSENT,
            netdev_nd_net: ABSENT,
            minisock_state_mask: 0,
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for KernelOffsets {}
