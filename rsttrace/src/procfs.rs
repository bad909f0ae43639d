//! The /proc/net files rsttrace reads, one parser per format: the counter
//! tables of /proc/net/snmp and /proc/net/netstat, and the socket lines of
//! /proc/net/tcp and tcp6. Only std, because the integration tests and
//! xtask include this very file (`#[path]`) rather than a copy.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

/// Section (`Tcp`, `TcpExt` …) -> counter name -> value.
pub type CounterTables = BTreeMap<String, BTreeMap<String, i64>>;

/// /proc/net/snmp or netstat: per section a line of names and a line of
/// values (`TcpExt: TW TWKilled` / `TcpExt: 118 0`). Reading stops at a pair
/// whose sections differ: past it names and values no longer line up.
pub fn counter_tables(text: &str) -> CounterTables {
    let mut tables = CounterTables::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((section, names)), Some((again, values))) = (names.split_once(':'), values.split_once(':')) else {
            break;
        };
        if section != again {
            break;
        }
        let table = tables.entry(section.to_string()).or_default();
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(value) = value.parse() {
                table.insert(name.to_string(), value);
            }
        }
    }
    tables
}

/// The kernel's TCP state numbers (`st`) that callers look for.
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_TIME_WAIT: u8 = 6;

/// The `tr` of a socket whose keepalive timer is pending.
pub const TIMER_KEEPALIVE: u8 = 2;

/// One socket, as a line of /proc/net/tcp or tcp6 shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `st`: 1 ESTABLISHED … 6 TIME_WAIT … 10 LISTEN.
    pub state: u8,
    /// `tr`, the pending timer: 0 none, 1 retransmission (or loss probe),
    /// 2 keepalive, 3 TIME_WAIT, 4 zero-window probe.
    pub timer: u8,
}

/// The sockets of a /proc/net/tcp or tcp6 text (its header line skipped).
pub fn tcp_sockets(text: &str) -> impl Iterator<Item = TcpSocket> + '_ {
    text.lines().skip(1).filter_map(tcp_socket)
}

/// `1: 0200000A:1F9A 0100000A:9C45 06 00000000:00000000 03:00001770 …`
pub fn tcp_socket(line: &str) -> Option<TcpSocket> {
    let mut fields = line.split_whitespace().skip(1);
    let local = endpoint(fields.next()?)?;
    let remote = endpoint(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let _queues = fields.next()?;
    let (timer, _when) = fields.next()?.split_once(':')?;
    Some(TcpSocket { local, remote, state, timer: u8::from_str_radix(timer, 16).ok()? })
}

/// `0100007F:1F90`: the address as the kernel's 32-bit words printed in
/// host byte order (one for IPv4, four for IPv6), the port in hex.
fn endpoint(field: &str) -> Option<SocketAddr> {
    let (address, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if !matches!(address.len(), 8 | 32) || !address.is_ascii() {
        return None;
    }
    let mut bytes = Vec::with_capacity(16);
    for word in address.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
        bytes.extend(word.to_ne_bytes());
    }
    let ip = match <[u8; 4]>::try_from(bytes.as_slice()) {
        Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
        Err(_) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).ok()?)),
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counter_tables_of_snmp_and_netstat() {
        let mut tables = counter_tables(
            "TcpExt: SyncookiesSent TW PAWSTimewait\nTcpExt: 0 118 2\nIpExt: InNoRoutes InOctets\nIpExt: 0 123456789012\n",
        );
        tables.extend(counter_tables("Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: MaxConn OutRsts\nTcp: -1 71\n"));
        assert_eq!(tables["TcpExt"]["TW"], 118);
        assert_eq!(tables["TcpExt"]["PAWSTimewait"], 2);
        assert_eq!(tables["IpExt"]["InOctets"], 123456789012);
        assert_eq!(tables["Tcp"]["MaxConn"], -1);
        assert_eq!(tables["Tcp"]["OutRsts"], 71);
        assert_eq!(tables["Ip"]["DefaultTTL"], 64);
        assert!(counter_tables("TcpExt: A B\nIpExt: 1 2\nTcp: C\nTcp: 3\n").is_empty(), "misaligned: stop");
        assert!(counter_tables("").is_empty());
    }

    // Addresses as a little-endian host prints them.
    #[cfg(target_endian = "little")]
    #[test]
    fn reads_socket_lines_of_proc_net_tcp() {
        let tcp = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1
   1: 0200000A:1F9A 0100000A:9C45 06 00000000:00000000 03:00001770 00000000     0        0 0 3
   2: 0200000A:1F9A 0100000A:9C47 01 00000000:00000000 02:00001770 00000000     0        0 99 1
";
        let sockets: Vec<TcpSocket> = tcp_sockets(tcp).collect();
        assert_eq!(sockets.len(), 3);
        assert_eq!(sockets[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(sockets[0].remote, "0.0.0.0:0".parse().unwrap());
        assert_eq!((sockets[0].state, sockets[0].timer), (10, 0));
        assert_eq!(sockets[1].local, "10.0.0.2:8090".parse().unwrap());
        assert_eq!(sockets[1].remote, "10.0.0.1:40005".parse().unwrap());
        assert_eq!((sockets[1].state, sockets[1].timer), (TCP_TIME_WAIT, 3));
        assert_eq!((sockets[2].state, sockets[2].timer), (TCP_ESTABLISHED, TIMER_KEEPALIVE));

        let tcp6 = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:A2B4 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 000077FD000000000000000002000000:1F9A 000077FD000000000000000001000000:9C45 06 00000000:00000000 03:00001770 00000000     0        0 0 3
";
        let sockets: Vec<TcpSocket> = tcp_sockets(tcp6).collect();
        assert_eq!(sockets[0].local, "[::1]:8080".parse().unwrap());
        assert_eq!(sockets[1].remote, "[::ffff:127.0.0.1]:41652".parse().unwrap());
        assert_eq!(sockets[2].local, "[fd77::2]:8090".parse().unwrap());
        assert_eq!(sockets[2].state, TCP_TIME_WAIT);
    }

    #[test]
    fn skips_what_is_not_a_socket_line() {
        assert_eq!(tcp_sockets("").count(), 0);
        assert_eq!(tcp_sockets("header only\n").count(), 0);
        assert_eq!(tcp_socket("0: 0100007F:1F90 00000000:0000 0A"), None, "truncated");
        assert_eq!(tcp_socket("0: 01007F:1F90 00000000:0000 0A 0:0 00:0"), None, "short address");
    }
}
