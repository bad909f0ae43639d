//! Where a tracepoint's fields sit in its raw record on the running kernel,
//! read from its tracefs `format` file at start-up.

use crate::kernel::ABSENT;

/// How a tracepoint stores the connection's addresses.
pub mod address_layout {
    /// None (or not needed by the program).
    pub const NONE: u32 = 0;
    /// `saddr`/`daddr` are 28-byte sockaddr_in/sockaddr_in6 (tcp_send_reset
    /// since 6.10).
    pub const SOCKADDR: u32 = 1;
    /// `sport`, `dport`, [`family`], `saddr[4]`, `daddr[4]`, `saddr_v6[16]`,
    /// `daddr_v6[16]` (tcp_receive_reset, tcp_send_reset before 6.10).
    pub const SPLIT: u32 = 2;
}

/// Byte offsets of the fields rsttrace reads; `ABSENT` where the kernel's
/// event lacks one. One type for every tracepoint keeps the loader simple.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointLayout {
    /// An `address_layout` value.
    pub address_layout: u32,
    pub skaddr: u32,
    pub skbaddr: u32,
    /// `skb:kfree_skb`: the socket that received the freed segment (6.11+).
    pub rx_sk: u32,
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

impl TracepointLayout {
    pub const fn absent() -> Self {
        Self {
            address_layout: address_layout::NONE,
            skaddr: ABSENT,
            skbaddr: ABSENT,
            rx_sk: ABSENT,
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
unsafe impl aya::Pod for TracepointLayout {}
