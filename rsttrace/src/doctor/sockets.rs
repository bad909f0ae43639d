//! Counting this namespace's TCP sockets: sock_diag (what `ss` uses), or
//! /proc/net/tcp{,6} where sock_diag is missing (tcp_diag not loaded).

use crate::procfs::{self, TCP_ESTABLISHED, TCP_TIME_WAIT, TIMER_KEEPALIVE};

/// This namespace's TCP sockets now, and how they were counted.
pub struct SocketCounts {
    /// None when neither sock_diag nor /proc could be read.
    pub counts: Option<Counts>,
    pub method: &'static str,
    pub problem: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub time_wait: u64,
    pub established: u64,
    /// Established connections whose pending timer is the keepalive timer:
    /// SO_KEEPALIVE on, and nothing waiting for an ACK at this moment (the
    /// retransmission timer takes precedence in both sources).
    pub keepalive: u64,
}

impl Counts {
    fn add(&mut self, state: u8, keepalive_timer: bool) {
        match state {
            TCP_TIME_WAIT => self.time_wait += 1,
            TCP_ESTABLISHED => {
                self.established += 1;
                self.keepalive += u64::from(keepalive_timer);
            }
            _ => {}
        }
    }
}

impl SocketCounts {
    /// sock_diag first (what `ss` uses); /proc/net/tcp{,6} if it fails.
    pub fn measure() -> Self {
        match sock_diag_counts() {
            Ok(counts) => SocketCounts { counts: Some(counts), method: "sock_diag", problem: None },
            Err(e) => {
                let text: Result<Vec<String>, _> =
                    ["/proc/net/tcp", "/proc/net/tcp6"].iter().map(std::fs::read_to_string).collect();
                match text {
                    Ok(files) => SocketCounts {
                        counts: Some(proc_net_tcp_counts(&files)),
                        method: "/proc/net/tcp and /proc/net/tcp6",
                        problem: Some(format!("sock_diag failed: {e:#}")),
                    },
                    Err(e2) => SocketCounts {
                        counts: None,
                        method: "none",
                        problem: Some(format!("sock_diag failed: {e:#}; /proc/net/tcp: {e2}")),
                    },
                }
            }
        }
    }
}

/// TIME_WAIT and established sockets of both families in this namespace,
/// from a SOCK_DIAG_BY_FAMILY dump filtered on those states by the kernel.
fn sock_diag_counts() -> anyhow::Result<Counts> {
    use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_sock_diag::{
        SockDiagMessage,
        constants::{AF_INET, AF_INET6, IPPROTO_TCP},
        inet::{ExtensionFlags, InetRequest, SocketId, StateFlags, Timer},
    };
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut counts = Counts::default();
    for (family, socket_id) in [(AF_INET, SocketId::new_v4()), (AF_INET6, SocketId::new_v6())] {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let request = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::TIME_WAIT | StateFlags::ESTABLISHED,
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
                        counts.add(r.header.state, matches!(r.header.timer, Some(Timer::KeepAlive(_))));
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
    Ok(counts)
}

/// The same counts from the texts of /proc/net/tcp and tcp6.
fn proc_net_tcp_counts(files: &[String]) -> Counts {
    let mut counts = Counts::default();
    for socket in files.iter().flat_map(|text| procfs::tcp_sockets(text)) {
        counts.add(socket.state, socket.timer == TIMER_KEEPALIVE);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_time_wait_and_keepalive_from_proc_net_tcp() {
        let tcp = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1
   1: 0200000A:1F9A 0100000A:9C45 06 00000000:00000000 03:00001770 00000000     0        0 0 3
   2: 0200000A:1F9A 0100000A:9C47 01 00000000:00000000 02:00001770 00000000     0        0 99 1
   3: 0200000A:1F9A 0100000A:9C48 01 00000000:00000000 00:00000000 00000000     0        0 98 1
   4: 0200000A:1F9A 0100000A:9C49 01 00000010:00000000 01:00000020 00000000     0        0 97 1
   5: 0200000A:1F9A 0100000A:9C4A 08 00000000:00000000 02:00001770 00000000     0        0 96 1
";
        let tcp6 = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 000077FD000000000000000002000000:1F9A 000077FD000000000000000001000000:9C45 06 00000000:00000000 03:00001770 00000000     0        0 0 3
   1: 000077FD000000000000000002000000:1F9A 000077FD000000000000000001000000:9C46 01 00000000:00000000 02:00001770 00000000     0        0 5 1
";
        // The LISTEN and CLOSE_WAIT sockets count nowhere; the one waiting
        // for an ACK (timer 1) counts as established without keepalive.
        assert_eq!(
            proc_net_tcp_counts(&[tcp.to_string(), tcp6.to_string()]),
            Counts { time_wait: 2, established: 4, keepalive: 2 }
        );
        assert_eq!(proc_net_tcp_counts(&[]), Counts::default());
    }
}
