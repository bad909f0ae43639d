//! Offsets into kernel structures and TCP state numbers, found in
//! `/sys/kernel/btf/vmlinux` at start-up and handed to the eBPF programs as a
//! global. Rust eBPF has no CO-RE, so nothing is taken from the machine that
//! built the binary.

/// Marks an offset or field the running kernel does not have.
pub const ABSENT: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `sock_common.skc_family` (u16): for events without a `family` field.
    pub skc_family: u32,
    /// `sock_common.skc_state` (u8), also valid for timewait and request socks.
    pub skc_state: u32,
    /// `sock_common.skc_daddr`, `skc_rcv_saddr` (IPv4, network order),
    /// `skc_dport` (network order), `skc_v6_daddr`, `skc_v6_rcv_saddr` (16
    /// bytes), `inet_sock.inet_sport` (network order; `skc_num` is zeroed
    /// when the port is released, before the socket's last state change):
    /// a full socket's endpoints.
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    pub skc_dport: u32,
    pub inet_sport: u32,
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    /// `sock.sk_protocol` (u16 since Linux 5.6).
    pub sk_protocol: u32,
    /// `sock_common.skc_net`: `struct net *`.
    pub skc_net: u32,
    /// `net.ns.inum`: network namespace inode number (u32).
    pub net_ns_inum: u32,
    /// `net.ipv4.sysctl_tcp_rfc1337` (read as u8): RSTs do not kill TIME_WAIT.
    pub net_tcp_rfc1337: u32,
    /// `sock.sk_lock.owned` (int): non-zero while a task holds `lock_sock`.
    pub sk_lock_owned: u32,
    /// `sock.sk_err` (int): set by a reset before the socket closes.
    pub sk_err: u32,
    /// `sock_common.skc_flags` (unsigned long) and the bit of `SOCK_KEEPOPEN`
    /// in it (`enum sock_flags`): SO_KEEPALIVE is on.
    pub skc_flags: u32,
    pub sock_flag_keepopen: u32,
    /// `sock.sk_dst_cache` (`struct dst_entry *`), and whether that route
    /// goes through a gateway: `rtable.rt_uses_gateway` (u8, IPv4),
    /// `rt6_info.rt6i_flags` (u32, IPv6; `RTF_GATEWAY`).
    pub sk_dst_cache: u32,
    pub rt_uses_gateway: u32,
    pub rt6i_flags: u32,
    /// `tcp_sock.rtt_min.s[0].v` (u32, µs): the path's minimum RTT.
    pub tcp_rtt_min: u32,
    /// `tcp_sock.keepalive_time` (u32 jiffies, TCP_KEEPIDLE; 0: the
    /// namespace's) and `net.ipv4.sysctl_tcp_keepalive_time` (int jiffies).
    pub tcp_keepalive_time: u32,
    pub net_tcp_keepalive_time: u32,
    /// `tcp_sock.lsndtime` (u32 jiffies): last data sent.
    pub tcp_lsndtime: u32,
    /// `tcp_sock.rcv_tstamp` (u32 jiffies): last ACK received.
    pub tcp_rcv_tstamp: u32,
    /// `inet_connection_sock.icsk_ack.lrcvtime` (u32 jiffies): last data received.
    pub icsk_lrcvtime: u32,
    /// `tcp_sock.rcv_nxt`, `snd_nxt`, `snd_una` (u32).
    pub tcp_rcv_nxt: u32,
    pub tcp_snd_nxt: u32,
    pub tcp_snd_una: u32,
    /// `tcp_sock.rx_opt.ts_recent` / `ts_recent_stamp` (read as u32).
    pub tcp_ts_recent: u32,
    pub tcp_ts_recent_stamp: u32,
    /// `tcp_sock.rx_opt.tstamp_ok`, a bitfield: byte offset and bit number.
    pub tcp_tstamp_ok_byte: u32,
    pub tcp_tstamp_ok_bit: u32,
    /// `tcp_timewait_sock.tw_rcv_nxt`, `tw_ts_recent`, `tw_ts_recent_stamp`
    /// (read as u32).
    pub tw_rcv_nxt: u32,
    pub tw_ts_recent: u32,
    pub tw_ts_recent_stamp: u32,
    /// `sk_buff.dev`: `struct net_device *`.
    pub skb_dev: u32,
    /// `sk_buff.head` (pointer), `transport_header`, `network_header` (u16
    /// offsets from head).
    pub skb_head: u32,
    pub skb_transport_header: u32,
    pub skb_network_header: u32,
    /// `net_device.nd_net`: `struct net *`.
    pub netdev_nd_net: u32,
    /// `sock.sk_cgrp_data.cgroup` (`struct cgroup *`, the layout of Linux
    /// 5.15, backported to some stable kernels; before, a tagged pointer this
    /// build does not read), `cgroup.kn` (`struct
    /// kernfs_node *`) and `kernfs_node.id` (u64): the cgroup that owns a
    /// full socket, by the id userspace sees as its directory's inode number.
    pub sk_cgroup: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    /// Bit `1 << state` set for TCP states whose socket is not a full `struct
    /// sock` (TIME_WAIT, NEW_SYN_RECV).
    pub minisock_state_mask: u32,
    /// TCP state numbers, by their names in BTF.
    pub state_established: u32,
    pub state_syn_sent: u32,
    pub state_syn_recv: u32,
    pub state_fin_wait2: u32,
    pub state_time_wait: u32,
    pub state_close: u32,
    pub state_closing: u32,
    pub state_listen: u32,
    pub state_close_wait: u32,
    pub state_last_ack: u32,
}

impl KernelOffsets {
    pub const fn absent() -> Self {
        Self {
            skc_family: ABSENT,
            skc_state: ABSENT,
            skc_daddr: ABSENT,
            skc_rcv_saddr: ABSENT,
            skc_dport: ABSENT,
            inet_sport: ABSENT,
            skc_v6_daddr: ABSENT,
            skc_v6_rcv_saddr: ABSENT,
            sk_protocol: ABSENT,
            skc_net: ABSENT,
            net_ns_inum: ABSENT,
            net_tcp_rfc1337: ABSENT,
            sk_lock_owned: ABSENT,
            sk_err: ABSENT,
            skc_flags: ABSENT,
            sk_dst_cache: ABSENT,
            rt_uses_gateway: ABSENT,
            rt6i_flags: ABSENT,
            tcp_rtt_min: ABSENT,
            sock_flag_keepopen: ABSENT,
            tcp_keepalive_time: ABSENT,
            net_tcp_keepalive_time: ABSENT,
            tcp_lsndtime: ABSENT,
            tcp_rcv_tstamp: ABSENT,
            icsk_lrcvtime: ABSENT,
            tcp_rcv_nxt: ABSENT,
            tcp_snd_nxt: ABSENT,
            tcp_snd_una: ABSENT,
            tcp_ts_recent: ABSENT,
            tcp_ts_recent_stamp: ABSENT,
            tcp_tstamp_ok_byte: ABSENT,
            tcp_tstamp_ok_bit: 0,
            tw_rcv_nxt: ABSENT,
            tw_ts_recent: ABSENT,
            tw_ts_recent_stamp: ABSENT,
            skb_dev: ABSENT,
            skb_head: ABSENT,
            skb_transport_header: ABSENT,
            skb_network_header: ABSENT,
            netdev_nd_net: ABSENT,
            sk_cgroup: ABSENT,
            cgroup_kn: ABSENT,
            kernfs_node_id: ABSENT,
            minisock_state_mask: 0,
            state_established: ABSENT,
            state_syn_sent: ABSENT,
            state_syn_recv: ABSENT,
            state_fin_wait2: ABSENT,
            state_time_wait: ABSENT,
            state_close: ABSENT,
            state_closing: ABSENT,
            state_listen: ABSENT,
            state_close_wait: ABSENT,
            state_last_ack: ABSENT,
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for KernelOffsets {}
