//! TCP segments built by hand and sent through a raw socket, and the numbers
//! a real socket would put in them (read from the kernel).

use std::{
    net::{IpAddr, SocketAddr, TcpStream},
    os::fd::AsRawFd,
};

use etherparse::{PacketBuilder, TcpOptionElement};
use socket2::{Domain, Protocol, Socket, Type};

/// What a hand-made segment is.
#[derive(Clone, Copy, Debug)]
pub enum Flags {
    Rst,
    /// A SYN; with the timestamp option (this TSval, TSecr 0) when given.
    Syn {
        tsval: Option<u32>,
    },
    /// A bare ACK of this number.
    Ack(u32),
}

/// Sends a segment built by hand through a raw socket from the calling
/// thread's namespace.
pub fn send_segment(src: SocketAddr, dst: SocketAddr, seq: u32, flags: Flags) {
    let builder = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let tcp = builder.tcp(src.port(), dst.port(), seq, 0);
    let tcp = match flags {
        Flags::Rst => tcp.rst(),
        Flags::Syn { tsval: None } => tcp.syn(),
        Flags::Syn { tsval: Some(tsval) } => {
            let options = [TcpOptionElement::Noop, TcpOptionElement::Noop, TcpOptionElement::Timestamp(tsval, 0)];
            tcp.syn().options(&options).expect("the timestamp option")
        }
        Flags::Ack(ack) => tcp.ack(ack),
    };
    let mut packet = Vec::new();
    tcp.write(&mut packet, &[]).expect("build the segment");
    // IPPROTO_RAW: the IP header is ours (IPv6 too, on Linux).
    let socket =
        Socket::new(Domain::for_address(dst), Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW))).expect("raw socket");
    socket.send_to(&packet, &SocketAddr::new(dst.ip(), 0).into()).expect("send the segment");
}

/// `TCP_SEND_QUEUE` of the kernel's `enum tcp_repair_queue` (not in libc).
const TCP_SEND_QUEUE: libc::c_int = 2;

fn set(stream: &TcpStream, option: libc::c_int, value: libc::c_int) {
    // SAFETY: a valid socket and a pointer to a live int.
    let rc = unsafe {
        libc::setsockopt(stream.as_raw_fd(), libc::IPPROTO_TCP, option, (&value as *const libc::c_int).cast(), 4)
    };
    assert_eq!(rc, 0, "setsockopt {option}: {}", std::io::Error::last_os_error());
}

fn get(stream: &TcpStream, option: libc::c_int) -> u32 {
    let mut value: u32 = 0;
    let mut len = 4 as libc::socklen_t;
    // SAFETY: a valid socket, a live u32 and its length.
    let rc = unsafe {
        libc::getsockopt(stream.as_raw_fd(), libc::IPPROTO_TCP, option, (&mut value as *mut u32).cast(), &mut len)
    };
    assert_eq!(rc, 0, "getsockopt {option}: {}", std::io::Error::last_os_error());
    value
}

/// The next sequence number `stream` sends (its snd_nxt once everything
/// written has left), read in TCP repair mode (CAP_NET_ADMIN).
pub fn send_sequence(stream: &TcpStream) -> u32 {
    set(stream, libc::TCP_REPAIR, 1);
    set(stream, libc::TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
    let seq = get(stream, libc::TCP_QUEUE_SEQ);
    set(stream, libc::TCP_REPAIR, 0);
    seq
}

/// The TSval `stream` would send now: the kernel's timestamp clock plus the
/// connection's random offset (TCP_TIMESTAMP).
pub fn timestamp(stream: &TcpStream) -> u32 {
    get(stream, libc::TCP_TIMESTAMP)
}
