//! Reading kernel memory (sockets, packets) at run-time offsets.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_buf};
use rsttrace_common::{
    endpoints::{AF_INET, AF_INET6, Endpoints},
    kernel::{ABSENT, KernelOffsets},
    reset::{Connection, connection_flags},
    tcp_options,
};

/// A failed read: the record is dropped and counted.
pub struct ReadError;

/// `base + offset` in kernel memory; `None` for a NULL base, an offset BTF
/// did not give, or a failed read.
pub fn kernel<T: Copy>(base: u64, offset: u32) -> Option<T> {
    Probed::load(base, offset)
}

/// How a program reads a kernel structure at run-time offsets.
pub trait Memory {
    /// `base + offset`; `None` for a NULL base, an offset BTF did not give,
    /// or a failed read.
    fn load<T: Copy>(base: u64, offset: u32) -> Option<T>;
}

/// Any address, through `bpf_probe_read_kernel`: a helper call a read.
pub struct Probed;

impl Memory for Probed {
    #[inline(always)]
    fn load<T: Copy>(base: u64, offset: u32) -> Option<T> {
        if base == 0 || offset == ABSENT {
            return None;
        }
        unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
    }
}

/// A pointer whose type the verifier knows from the kernel's BTF (a tp_btf
/// program's argument, or a pointer member loaded through one): a plain
/// load, which the verifier checks against that type and makes fault-safe,
/// instead of a helper call. The offsets come from the frozen read-only
/// globals, which the verifier reads as constants. Only for members of the
/// pointer's own type: a `tcp_sock` field of a `struct sock *` is refused.
pub struct Typed;

impl Memory for Typed {
    #[inline(always)]
    fn load<T: Copy>(base: u64, offset: u32) -> Option<T> {
        if base == 0 || offset == ABSENT {
            return None;
        }
        const { assert!(matches!(core::mem::size_of::<T>(), 1 | 2 | 4 | 8 | 16), "loads of 1, 2, 4, 8 or 16 bytes") };
        let address = base + offset as u64;
        // SAFETY: the verifier turns each load into one that cannot fault
        // (BPF_PROBE_MEM); loads of 1, 2, 4 or 8 bytes, the only sizes it
        // takes, chosen at compile time by the size of T.
        unsafe {
            Some(match core::mem::size_of::<T>() {
                1 => core::mem::transmute_copy(&core::ptr::read_volatile(address as *const u8)),
                2 => core::mem::transmute_copy(&core::ptr::read_volatile(address as *const u16)),
                4 => core::mem::transmute_copy(&core::ptr::read_volatile(address as *const u32)),
                8 => core::mem::transmute_copy(&core::ptr::read_volatile(address as *const u64)),
                16 => core::mem::transmute_copy(&[
                    core::ptr::read_volatile(address as *const u64),
                    core::ptr::read_volatile((address + 8) as *const u64),
                ]),
                _ => unreachable!(),
            })
        }
    }
}

/// The `struct net *` a socket (full, timewait or request) belongs to.
pub fn netns_net(sk: u64, offsets: &KernelOffsets) -> Option<u64> {
    kernel(sk, offsets.skc_net)
}

pub fn netns_of_sock(sk: u64, offsets: &KernelOffsets) -> Option<u32> {
    netns_of::<Probed>(sk, offsets)
}

/// The namespace's inode number, read through the socket's `struct net *`.
#[inline(always)]
pub fn netns_of<M: Memory>(sk: u64, offsets: &KernelOffsets) -> Option<u32> {
    M::load(M::load::<u64>(sk, offsets.skc_net)?, offsets.net_ns_inum)
}

/// The id of the cgroup (v2) that owns a full socket: set when the socket
/// was created, from the creating task, so it names the service whatever
/// context the reset is sent from.
pub fn cgroup_of_sock(sk: u64, offsets: &KernelOffsets) -> Option<u64> {
    let cgroup: u64 = kernel(sk, offsets.sk_cgroup)?;
    let kn: u64 = kernel(cgroup, offsets.cgroup_kn)?;
    kernel(kn, offsets.kernfs_node_id)
}

pub fn netns_of_skb(skb: u64, offsets: &KernelOffsets) -> Option<u32> {
    netns_of_skb_in::<Probed>(skb, offsets)
}

/// The namespace of the device `skb` came in on.
#[inline(always)]
pub fn netns_of_skb_in<M: Memory>(skb: u64, offsets: &KernelOffsets) -> Option<u32> {
    let dev: u64 = M::load(skb, offsets.skb_dev)?;
    let net: u64 = M::load(dev, offsets.netdev_nd_net)?;
    M::load(net, offsets.net_ns_inum)
}

/// Whether a socket in `state` is a full one (a listener or a connection,
/// with a cgroup, a lock and TCP fields), not a TIME_WAIT or request
/// minisocket, which has only its `sock_common`.
#[inline(always)]
pub fn is_full_socket(state: u8, offsets: &KernelOffsets) -> bool {
    state < 32 && offsets.minisock_state_mask & (1 << state) == 0
}

/// A full socket's endpoints: local = the bound address and port.
#[inline(always)]
pub fn endpoints_of_sock(sk: u64, offsets: &KernelOffsets) -> Result<Endpoints, ReadError> {
    endpoints_of::<Probed>(sk, offsets)
}

#[inline(always)]
pub fn endpoints_of<M: Memory>(sk: u64, offsets: &KernelOffsets) -> Result<Endpoints, ReadError> {
    let mut e = Endpoints {
        family: M::load::<u16>(sk, offsets.skc_family).ok_or(ReadError)?,
        local_port: u16::from_be(M::load::<u16>(sk, offsets.inet_sport).ok_or(ReadError)?),
        remote_port: u16::from_be(M::load::<u16>(sk, offsets.skc_dport).ok_or(ReadError)?),
        ..Default::default()
    };
    if e.family == AF_INET6 {
        e.local_addr = M::load(sk, offsets.skc_v6_rcv_saddr).ok_or(ReadError)?;
        e.remote_addr = M::load(sk, offsets.skc_v6_daddr).ok_or(ReadError)?;
    } else if offsets.skc_rcv_saddr == offsets.skc_daddr.wrapping_add(4) {
        // sock_common's skc_addrpair: both addresses in one read (every
        // state change of every connection comes through here).
        let pair = M::load::<u64>(sk, offsets.skc_daddr).ok_or(ReadError)?.to_ne_bytes();
        e.remote_addr[..4].copy_from_slice(&pair[..4]);
        e.local_addr[..4].copy_from_slice(&pair[4..]);
    } else {
        let local = M::load::<u32>(sk, offsets.skc_rcv_saddr).ok_or(ReadError)?.to_ne_bytes();
        let remote = M::load::<u32>(sk, offsets.skc_daddr).ok_or(ReadError)?.to_ne_bytes();
        e.local_addr[..4].copy_from_slice(&local);
        e.remote_addr[..4].copy_from_slice(&remote);
    }
    e.unmap_v4();
    Ok(e)
}

pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

// Functions returning structs are inlined: a BPF function returning one
// would hand the caller a pointer into its own stack, which the verifier
// refuses ("cannot return stack pointer to the caller").

/// What rsttrace needs of a TCP segment.
pub struct Segment {
    /// Local = destination, remote = source: the segment came in.
    pub endpoints: Endpoints,
    pub seq: u32,
    pub flags: u8,
    /// The option list was read; `tsval` is only meaningful then.
    pub options_known: bool,
    pub tsval: Option<u32>,
}

/// The incoming segment `skb` holds, from its IP and TCP headers.
#[inline(always)]
pub fn segment_of_skb(skb: u64, offsets: &KernelOffsets) -> Option<Segment> {
    let (addresses, th, _) = addresses_of_skb::<Probed>(skb, offsets)?;
    segment_at(th, addresses)
}

/// The 4-tuple of the incoming segment `skb` holds (local = destination).
#[inline(always)]
pub fn endpoints_of_skb(skb: u64, offsets: &KernelOffsets) -> Option<Endpoints> {
    endpoints_of_skb_in::<Probed>(skb, offsets)
}

/// The same, with `skb`'s own fields read as `M` says (the segment's bytes
/// are not typed: always through the helper).
#[inline(always)]
pub fn endpoints_of_skb_in<M: Memory>(skb: u64, offsets: &KernelOffsets) -> Option<Endpoints> {
    let (mut e, th, _) = addresses_of_skb::<M>(skb, offsets)?;
    let ports: [u8; 4] = kernel(th, 0)?;
    e.remote_port = u16::from_be_bytes([ports[0], ports[1]]);
    e.local_port = u16::from_be_bytes([ports[2], ports[3]]);
    Some(e)
}

/// The TCP flags of the segment `skb` holds, and the TTL (IPv4) or hop
/// limit (IPv6) it arrived with.
#[inline(always)]
pub fn flags_and_ttl_of_skb(skb: u64, offsets: &KernelOffsets) -> Option<(u8, u8)> {
    let head: u64 = kernel(skb, offsets.skb_head)?;
    let network: u16 = kernel(skb, offsets.skb_network_header)?;
    let transport: u16 = kernel(skb, offsets.skb_transport_header)?;
    let ip = head + network as u64;
    let hops = ttl_at(ip)?;
    let flags: u8 = kernel(head + transport as u64, 13)?;
    Some((flags, hops))
}

/// An incoming TCP segment with RST set: its 4-tuple (local = destination)
/// and the TTL or hop limit it arrived with. None for anything else: no RST,
/// another protocol, IPv6 with extension headers before TCP, or an
/// unreadable skb. The flags come first (three reads): most segments the
/// kernel drops are not RSTs, and the protocol is checked only for those
/// that look like one.
#[inline(always)]
pub fn rst_of_skb<M: Memory>(skb: u64, offsets: &KernelOffsets) -> Option<(Endpoints, u8)> {
    let head: u64 = M::load(skb, offsets.skb_head)?;
    let transport: u16 = M::load(skb, offsets.skb_transport_header)?;
    let flags: u8 = kernel(head + transport as u64, 13)?;
    if flags & TCP_RST == 0 {
        return None;
    }
    let network: u16 = M::load(skb, offsets.skb_network_header)?;
    // IPv4: TTL at 8, protocol at 9; IPv6: next header at 6, hop limit at 7.
    let ip: [u8; 10] = kernel(head + network as u64, 0)?;
    let (protocol, hops) = match ip[0] >> 4 {
        4 => (ip[9], ip[8]),
        6 => (ip[6], ip[7]),
        _ => return None,
    };
    if protocol != IPPROTO_TCP {
        return None;
    }
    Some((endpoints_of_skb_in::<M>(skb, offsets)?, hops))
}

const IPPROTO_TCP: u8 = 6;

#[inline(always)]
fn ttl_at(ip: u64) -> Option<u8> {
    match kernel::<u8>(ip, 0)? >> 4 {
        4 => kernel(ip, 8),
        6 => kernel(ip, 7),
        _ => None,
    }
}

/// The peer (source) of the segment `skb` holds, with the TTL or hop limit
/// it arrived with.
#[inline(always)]
pub fn peer_of_skb(skb: u64, offsets: &KernelOffsets) -> Option<Connection> {
    let (e, th, ip) = addresses_of_skb::<Probed>(skb, offsets)?;
    let ttl = ttl_at(ip)?;
    let ports: [u8; 2] = kernel(th, 0)?;
    Some(Connection {
        remote_addr: e.remote_addr,
        remote_port: u16::from_be_bytes(ports),
        ttl,
        flags: connection_flags::TTL_KNOWN,
        _pad: 0,
        peer_fin_ns: 0,
    })
}

/// The addresses of the segment `skb` holds (ports not filled in), and where
/// its TCP and IP headers are.
#[inline(always)]
fn addresses_of_skb<M: Memory>(skb: u64, offsets: &KernelOffsets) -> Option<(Endpoints, u64, u64)> {
    let head: u64 = M::load(skb, offsets.skb_head)?;
    let network: u16 = M::load(skb, offsets.skb_network_header)?;
    let transport: u16 = M::load(skb, offsets.skb_transport_header)?;
    let ip = head + network as u64;
    let mut e = Endpoints::default();
    let version: u8 = kernel::<u8>(ip, 0)? >> 4;
    if version == 4 {
        e.family = AF_INET;
        let remote: [u8; 4] = kernel(ip, 12)?;
        let local: [u8; 4] = kernel(ip, 16)?;
        e.remote_addr[..4].copy_from_slice(&remote);
        e.local_addr[..4].copy_from_slice(&local);
    } else if version == 6 {
        e.family = AF_INET6;
        e.remote_addr = kernel(ip, 8)?;
        e.local_addr = kernel(ip, 24)?;
    } else {
        return None;
    }
    Some((e, head + transport as u64, ip))
}

/// Parses the TCP header at `th`; `e` has the addresses, ports are added.
#[inline(always)]
pub fn segment_at(th: u64, mut e: Endpoints) -> Option<Segment> {
    let header: [u8; 20] = kernel(th, 0)?;
    e.remote_port = u16::from_be_bytes([header[0], header[1]]);
    e.local_port = u16::from_be_bytes([header[2], header[3]]);
    let seq = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let options_len = ((header[12] >> 4) as usize * 4).saturating_sub(20);
    // The 40-byte maximum is always readable: headers sit in the linear
    // buffer, followed by at least the skb_shared_info. A failed read leaves
    // the options unknown, never "no timestamps" (tcp_options::timestamp).
    let timestamp = tcp_options::timestamp(options_len, |options| {
        // SAFETY: a kernel address, read by the helper into a local buffer.
        unsafe { bpf_probe_read_kernel_buf((th + 20) as *const u8, options) }.is_ok()
    });
    Some(Segment { endpoints: e, seq, flags: header[13], options_known: timestamp.known(), tsval: timestamp.tsval() })
}
