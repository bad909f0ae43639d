//! Counting this namespace's TCP sockets: sock_diag (what `ss` uses), or
//! /proc/net/tcp{,6} where sock_diag is missing.

use serde::Serialize;

use crate::procfs;

/// The TIME_WAIT sockets of this namespace, and how they were counted.
#[derive(Serialize)]
pub struct TimeWaitCount {
    pub count: Option<u64>,
    pub method: &'static str,
    pub problem: Option<String>,
}

impl TimeWaitCount {
    /// sock_diag first (what `ss` uses); /proc/net/tcp{,6} if it fails.
    pub fn measure() -> Self {
        match sock_diag_time_wait() {
            Ok(n) => TimeWaitCount { count: Some(n), method: "sock_diag", problem: None },
            Err(e) => {
                let text: Result<Vec<String>, _> =
                    ["/proc/net/tcp", "/proc/net/tcp6"].iter().map(std::fs::read_to_string).collect();
                match text {
                    Ok(files) => TimeWaitCount {
                        count: Some(files.iter().map(|t| proc_net_tcp_time_wait(t)).sum()),
                        method: "/proc/net/tcp and /proc/net/tcp6",
                        problem: Some(format!("sock_diag failed: {e:#}")),
                    },
                    Err(e2) => TimeWaitCount {
                        count: None,
                        method: "none",
                        problem: Some(format!("sock_diag failed: {e:#}; /proc/net/tcp: {e2}")),
                    },
                }
            }
        }
    }
}

/// TIME_WAIT sockets of both families in this namespace, from a
/// SOCK_DIAG_BY_FAMILY dump filtered on that state by the kernel.
fn sock_diag_time_wait() -> anyhow::Result<u64> {
    use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_sock_diag::{
        SockDiagMessage,
        constants::{AF_INET, AF_INET6, IPPROTO_TCP, TCP_TIME_WAIT},
        inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    };
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut count = 0;
    for (family, socket_id) in [(AF_INET, SocketId::new_v4()), (AF_INET6, SocketId::new_v6())] {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let request = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::TIME_WAIT,
            socket_id,
        });
        let mut packet = NetlinkMessage::new(header, request.into());
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        socket.send(&buf, 0)?;
        'dump: loop {
            let (datagram, _) = socket.recv_from_full()?;
            let mut offset = 0;
            while offset < datagram.len() {
                let message = NetlinkMessage::<SockDiagMessage>::deserialize(&datagram[offset..])
                    .map_err(|e| anyhow::anyhow!("bad sock_diag message: {e}"))?;
                match message.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        count += u64::from(r.header.state == TCP_TIME_WAIT);
                    }
                    NetlinkPayload::Done(_) => break 'dump,
                    NetlinkPayload::Error(e) if e.to_io().raw_os_error() == Some(libc::ENOENT) => {
                        anyhow::bail!("this kernel has no sock_diag handler for TCP (tcp_diag module not loaded)")
                    }
                    NetlinkPayload::Error(e) => anyhow::bail!("sock_diag refused the dump: {e}"),
                    _ => {}
                }
                let length = message.header.length as usize;
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }
    Ok(count)
}

/// TIME_WAIT sockets in a /proc/net/tcp or tcp6 text.
fn proc_net_tcp_time_wait(text: &str) -> u64 {
    procfs::tcp_sockets(text).filter(|s| s.state == procfs::TCP_TIME_WAIT).count() as u64
}
