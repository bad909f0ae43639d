//! Resets sent and received: the `tcp_send_reset` and `tcp_receive_reset`
//! tracepoints.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_jiffies64, bpf_ktime_get_ns, bpf_skc_to_tcp_sock},
    macros::{btf_tracepoint, fentry, fexit, kprobe, map, raw_tracepoint},
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
    programs::{BtfTracePointContext, FEntryContext, FExitContext, ProbeContext, RawTracePointContext},
};
use rsttrace_common::{
    endpoints::AF_INET6,
    endpoints::Endpoints,
    kernel::KernelOffsets,
    record::{RecordHeader, RecordKind, counter},
    reset::{
        CONNECTION_ENTRIES, Connection, DISCARD_REASON_WORDS, ResetConfig, ResetRecord, STORM_ENTRIES,
        STORM_HAS_CGROUP, STORM_HAS_TTL, STORM_INDIVIDUAL, STORM_NO_REASON, STORM_NO_STATE, StormCount, StormKey,
        connection_flags, reset_flags,
    },
};

use crate::{
    Draft, count, offsets, patched,
    read::{self, Memory, Probed, ReadError, TCP_RST, Typed},
};

/// Filled by the loader before the programs are verified.
#[unsafe(no_mangle)]
pub static RESET_CONFIG: ResetConfig =
    ResetConfig { send_reset_has_reason: 0, keeps_every_connection: 0, discard_reasons: [0; DISCARD_REASON_WORDS] };

// Raw tracepoints: the arguments are read in place and the kernel builds no
// trace record; attaching them needs no perf event (which Debian's
// perf_event_paranoid=3 reserves to CAP_SYS_ADMIN).

/// `tcp_send_reset(sk, skb[, reason])`: `sk` is NULL when no socket owns the
/// segment, a timewait or request socket, or a full one; `skb` is the
/// segment being answered, NULL for an abort.
#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: RawTracePointContext) -> u32 {
    let reason = if patched(&RESET_CONFIG).send_reset_has_reason != 0 { ctx.arg::<u64>(2) as u32 } else { NO_REASON };
    let sk = ctx.arg(0);
    on_reset::<Probed>(sk, sk, ctx.arg(1), reason, RecordKind::RstSent)
}

/// The same as a BTF-typed tracepoint (tp_btf), where the kernel takes it:
/// the socket's and the segment's fields the storm table is keyed by are
/// plain loads (the segment's bytes are still read by the helper).
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset_typed(ctx: BtfTracePointContext) -> u32 {
    let reason = if patched(&RESET_CONFIG).send_reset_has_reason != 0 { ctx.arg::<u64>(2) as u32 } else { NO_REASON };
    let sk: u64 = ctx.arg(0);
    on_reset::<Typed>(sk, tcp_sock_of(sk), ctx.arg(1), reason, RecordKind::RstSent)
}

/// A socket typed as a `tcp_sock` (whose members include `inet_sock`'s and
/// TCP's) when it is a full TCP socket; 0 otherwise (none, a timewait or
/// request socket, whose `sock_common` is all that can be read).
#[inline(always)]
fn tcp_sock_of(sk: u64) -> u64 {
    if sk == 0 {
        return 0;
    }
    // SAFETY: the helper checks what `sk` is before returning it.
    unsafe { bpf_skc_to_tcp_sock(sk as *mut c_void) as u64 }
}

/// `tcp_receive_reset(sk)`: a full socket. It fires at the start of
/// `tcp_reset(sk, skb)`, whose entry hook (fexit and kprobe strategies) left
/// the segment on this CPU.
#[raw_tracepoint(tracepoint = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: RawTracePointContext) -> u32 {
    let sk: u64 = ctx.arg(0);
    on_receive_reset::<Probed>(sk, sk)
}

/// The same as a BTF-typed tracepoint (tp_btf), where the kernel takes it.
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset_typed(ctx: BtfTracePointContext) -> u32 {
    let sk: u64 = ctx.arg(0);
    on_receive_reset::<Typed>(sk, tcp_sock_of(sk))
}

#[inline(always)]
fn on_receive_reset<M: Memory>(sk: u64, tcp_sk: u64) -> u32 {
    let segment = take_segment(sk);
    let offsets = offsets();
    let mut ttl = 0u32;
    if segment != 0 {
        let Some((flags, hops)) = read::flags_and_ttl_of_skb(segment, offsets) else {
            count(counter::READ_ERRORS);
            return 0;
        };
        // tcp_reset() also runs when the kernel aborts a connection itself
        // because data came after the application shut it down
        // (TCPAbortOnData): no RST came in, and the kernel's own RST is
        // reported as sent.
        if flags & TCP_RST == 0 {
            return 0;
        }
        ttl = TTL_KNOWN | hops as u32;
    }
    on_reset::<M>(sk, tcp_sk, 0, ttl, RecordKind::RstReceived)
}

/// A received RST the kernel freed with the drop `reason` instead of ending
/// a connection: it found no socket, reached a listener or a half-open
/// connection (`rx_sk`, in `state`), or was outside the window.
#[inline(always)]
pub fn on_discarded<M: Memory>(skb: u64, reason: u32, rx_sk: u64, state: Option<u8>, offsets: &KernelOffsets) {
    let Some((endpoints, ttl)) = read::rst_of_skb::<M>(skb, offsets) else { return };
    let netns = if rx_sk != 0 { read::netns_of::<M>(rx_sk, offsets) } else { read::netns_of_skb_in::<M>(skb, offsets) };
    // A listener or a connection: the socket of a service (not a TIME_WAIT
    // or request minisocket, which has no cgroup).
    let full_sk = match state {
        Some(s) if read::is_full_socket(s, offsets) => rx_sk,
        _ => 0,
    };
    let mut key =
        storm_key(&endpoints, netns.unwrap_or(0), reason, RecordKind::RstReceived, state.unwrap_or(STORM_NO_STATE));
    key.discarded = 1;
    if counted_in_storm(&mut key, endpoints.remote_port, TTL_KNOWN | ttl as u32, full_sk) {
        return;
    }
    let Some(mut record) = Draft::<ResetRecord>::new() else { return };
    record.header =
        RecordHeader { kind: RecordKind::RstReceived as u32, _pad: 0, ktime_ns: unsafe { bpf_ktime_get_ns() } };
    record.endpoints = endpoints;
    record.reason = reason;
    record.ttl = ttl;
    record.flags = reset_flags::DISCARDED | reset_flags::HAS_TTL;
    if let Some(state) = state {
        record.state = state;
        record.flags |= reset_flags::HAS_SOCKET | reset_flags::HAS_STATE;
    }
    if let Some(netns) = netns {
        record.netns = netns;
        record.flags |= reset_flags::HAS_NETNS;
    }
    if let Some(cgroup_id) = read::cgroup_of_sock(full_sk, offsets) {
        record.cgroup_id = cgroup_id;
        record.flags |= reset_flags::HAS_CGROUP;
    }
    record.emit();
}

/// `ttl` argument bit: the RST's TTL (low byte) is known.
const TTL_KNOWN: u32 = 1 << 8;

/// A reset sent or received by `sk`; `tcp_sk` is the same socket when it
/// is a full TCP one (else 0), which a typed program reads `inet_sock` and
/// TCP fields through.
#[inline(always)]
fn on_reset<M: Memory>(sk: u64, tcp_sk: u64, skb: u64, reason_or_ttl: u32, kind: RecordKind) -> u32 {
    if storm_counts_reset::<M>(sk, tcp_sk, skb, reason_or_ttl, kind) {
        return 0;
    }
    let Some(mut record) = Draft::<ResetRecord>::new() else { return 0 };
    match kind {
        RecordKind::RstSent if reason_or_ttl != NO_REASON => {
            record.reason = reason_or_ttl;
            record.flags |= reset_flags::HAS_REASON;
        }
        RecordKind::RstReceived if reason_or_ttl & TTL_KNOWN != 0 => {
            record.ttl = reason_or_ttl as u8;
            record.flags |= reset_flags::HAS_TTL;
        }
        _ => {}
    }
    match fill(sk, skb, offsets(), kind, &mut record) {
        Ok(()) => record.emit(),
        Err(ReadError) => count(counter::READ_ERRORS),
    }
    0
}

/// Resets per key in the current and the previous interval (see
/// `StormKey::generation`), per CPU: no atomics (Linux 5.10 has no fetching
/// ones) and no cache line bouncing between CPUs. A key's value is only
/// changed by one program (the key holds the record kind), which the kernel
/// never runs nested on one CPU.
#[map]
static STORM: PerCpuHashMap<StormKey, StormCount> = PerCpuHashMap::with_max_entries(2 * STORM_ENTRIES, 0);

#[inline(always)]
fn storm_key(endpoints: &Endpoints, netns: u32, reason: u32, kind: RecordKind, state: u8) -> StormKey {
    StormKey {
        local_addr: endpoints.local_addr,
        remote_addr: endpoints.remote_addr,
        local_port: endpoints.local_port,
        remote_port: 0,
        family: endpoints.family,
        _pad: 0,
        netns,
        reason,
        kind: kind as u8,
        state,
        discarded: 0,
        generation: 0,
    }
}

/// Whether a reset is only counted: this CPU has already recorded
/// `STORM_INDIVIDUAL` with its key in this interval. Decided before anything
/// is reserved in the ring. Every call adds one to `seen`, so the daemon's
/// count is exact. `ttl`: `TTL_KNOWN` and the TTL, or 0; `full_sk`: the
/// full socket that sent or received it, or 0. (No `Option`
/// arguments: the verifier refuses the unset payload of a `None` copied
/// between registers, "!read_ok".)
#[inline(always)]
fn counted_in_storm(key: &mut StormKey, port: u16, ttl: u32, full_sk: u64) -> bool {
    key.generation = crate::generation() as u8;
    let Some(entry) = STORM.get_ptr_mut(*key) else {
        let first = StormCount { seen: 1, ..Default::default() };
        // A key that does not fit is recorded one by one: nothing is lost.
        let _ = STORM.insert(*key, first, 0);
        return false;
    };
    // SAFETY: this CPU's value of a live entry.
    let entry = unsafe { &mut *entry };
    let before = entry.seen;
    entry.seen = before + 1;
    if before < STORM_INDIVIDUAL {
        return false;
    }
    if before == STORM_INDIVIDUAL {
        entry.first_ns = unsafe { bpf_ktime_get_ns() };
        entry.port = port;
        if ttl & TTL_KNOWN != 0 {
            entry.ttl = ttl as u8;
            entry.flags = STORM_HAS_TTL;
        }
        // Read once per key, CPU and interval: the service the storm hits.
        if let Some(cgroup_id) = read::cgroup_of_sock(full_sk, offsets()) {
            entry.cgroup_id = cgroup_id;
            entry.flags |= STORM_HAS_CGROUP;
        }
    }
    true
}

/// The storm table's decision for a sent or received reset. Not counted:
/// resets the daemon ties to other records one by one (sent from a socket
/// just closed or in TIME_WAIT; received in the states where the kernel's
/// own abort on data looks like a received reset).
// A function of its own (a BPF-to-BPF call): inlined, its key and
// endpoints would add to the stack of the program, whose frame plus
// `fill`'s must stay within 512 bytes (Debian's 5.10 counted 704).
#[inline(never)]
fn storm_counts_reset<M: Memory>(sk: u64, tcp_sk: u64, skb: u64, reason_or_ttl: u32, kind: RecordKind) -> bool {
    let offsets = offsets();
    // Plain values with sentinels from here: an `Option`'s unset payload
    // spilled to the stack is refused by the verifier ("!read_ok").
    let state = M::load::<u8>(sk, offsets.skc_state).unwrap_or(STORM_NO_STATE);
    let s = state as u32;
    let aggregated = match kind {
        RecordKind::RstSent => s != offsets.state_close && s != offsets.state_time_wait,
        _ => s == offsets.state_established || s == offsets.state_syn_sent,
    };
    if !aggregated {
        return false;
    }
    let full_socket = read::is_full_socket(state, offsets);
    // Unreadable: the record's own path counts the error. (Each branch
    // returns: a merged `Option<Endpoints>` would copy the unset payload of
    // `None`.)
    let endpoints = if skb != 0 {
        match read::endpoints_of_skb_in::<M>(skb, offsets) {
            Some(e) => e,
            None => return false,
        }
    } else if full_socket {
        match read::endpoints_of::<M>(tcp_sk, offsets) {
            Ok(e) => e,
            Err(_) => return false,
        }
    } else {
        return false;
    };
    let netns =
        if sk != 0 { read::netns_of::<M>(sk, offsets) } else { read::netns_of_skb_in::<M>(skb, offsets) }.unwrap_or(0);
    let (reason, ttl) = match kind {
        RecordKind::RstSent if reason_or_ttl != NO_REASON => (reason_or_ttl, 0),
        RecordKind::RstReceived => (STORM_NO_REASON, reason_or_ttl),
        _ => (STORM_NO_REASON, 0),
    };
    let mut key = storm_key(&endpoints, netns, reason, kind, state);
    if kind == RecordKind::RstReceived && s == offsets.state_syn_sent {
        // Connections this host opens, refused: per peer service, whatever
        // this host's source port.
        (key.local_port, key.remote_port) = (0, endpoints.remote_port);
        return counted_in_storm(&mut key, endpoints.local_port, ttl, sk);
    }
    counted_in_storm(&mut key, endpoints.remote_port, ttl, if full_socket { sk } else { 0 })
}

/// No reset reason (before Linux 6.10).
const NO_REASON: u32 = u32::MAX;

/// The segment `tcp_reset(sk, skb)` was entered with on this CPU.
#[repr(C)]
#[derive(Clone, Copy)]
struct ResetSegment {
    sk: u64,
    skb: u64,
}

/// Per CPU: the entry hook and the tracepoint run back to back in one call
/// of tcp_reset(). A softirq interrupting in between overwrites the slot
/// with its own socket, and the interrupted call then finds no segment
/// (TTL unknown), never another's.
#[map]
static RESET_SEGMENT: PerCpuArray<ResetSegment> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn leave_segment(sk: u64, skb: u64) {
    if let Some(slot) = RESET_SEGMENT.get_ptr_mut(0) {
        // SAFETY: this CPU's slot.
        unsafe { *slot = ResetSegment { sk, skb } };
    }
}

#[inline(always)]
fn take_segment(sk: u64) -> u64 {
    let Some(slot) = RESET_SEGMENT.get_ptr_mut(0) else { return 0 };
    // SAFETY: this CPU's slot.
    let segment = unsafe { *slot };
    unsafe { (*slot).sk = 0 };
    if segment.sk == sk { segment.skb } else { 0 }
}

#[fentry(function = "tcp_reset")]
pub fn tcp_reset_fentry(ctx: FEntryContext) -> u32 {
    leave_segment(ctx.arg(0), ctx.arg(1));
    0
}

#[kprobe]
pub fn tcp_reset_kprobe(ctx: ProbeContext) -> u32 {
    leave_segment(ctx.arg(0).unwrap_or(0), ctx.arg(1).unwrap_or(0));
    0
}

/// Live connections: the TTL the peer's segments arrive with, and when
/// its FIN came (see `Connection`). Deleted when the socket closes
/// (`forget_connection`).
#[map]
static CONNECTIONS: HashMap<u64, Connection> = HashMap::with_max_entries(CONNECTION_ENTRIES, 0);

/// `tcp_create_openreq_child(sk, req, skb)` returns the new connection of
/// either family; `skb` is the peer's ACK that completed it. (Not
/// `tcp_v4_syn_recv_sock`: its seventh argument on recent kernels is more
/// than BPF trampolines take before 6.5, "error 524" on Debian's 6.1.)
#[fexit(function = "tcp_create_openreq_child")]
pub fn create_openreq_child_fexit(ctx: FExitContext) -> u32 {
    learn_peer_ttl(ctx.arg(3), ctx.arg(2));
    0
}

/// `tcp_finish_connect(sk, skb)`: an active open completed by the peer's
/// SYN-ACK (`skb`, NULL for some Fast Open paths).
#[fentry(function = "tcp_finish_connect")]
pub fn finish_connect_fentry(ctx: FEntryContext) -> u32 {
    learn_peer_ttl(ctx.arg(0), ctx.arg(1));
    0
}

#[inline(always)]
fn learn_peer_ttl(sk: u64, skb: u64) {
    if sk == 0 || skb == 0 {
        return;
    }
    if let Some(peer) = read::peer_of_skb(skb, offsets())
        && CONNECTIONS.insert(sk, peer, 0).is_err()
    {
        count(counter::UNKEPT);
    }
}

/// The peer's FIN reached `sk` (ESTABLISHED -> CLOSE_WAIT): when, kept
/// with what the handshake learned, for a reset that follows.
#[inline(always)]
pub fn note_peer_fin<M: Memory>(sk: u64, offsets: &KernelOffsets) -> Result<(), ReadError> {
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(kept) = CONNECTIONS.get_ptr_mut(sk) {
        // SAFETY: a live entry's value.
        let kept = unsafe { &mut *kept };
        kept.peer_fin_ns = now;
        kept.flags |= connection_flags::PEER_FIN;
        return Ok(());
    }
    let endpoints = read::endpoints_of::<M>(sk, offsets)?;
    let fresh = Connection {
        remote_addr: endpoints.remote_addr,
        remote_port: endpoints.remote_port,
        ttl: 0,
        flags: connection_flags::PEER_FIN,
        _pad: 0,
        peer_fin_ns: now,
    };
    if CONNECTIONS.insert(sk, fresh, 0).is_err() {
        count(counter::UNKEPT);
    }
    Ok(())
}

/// `sk` closed: what was kept of it goes (a missing entry costs one lookup).
#[inline(always)]
pub fn forget_connection(sk: u64) {
    let _ = CONNECTIONS.remove(sk);
}

// `fill` takes no `Option`: one is passed in two registers, and for `None`
// the value's is left unset, which the verifier refuses to see copied
// ("R4 !read_ok").
fn fill(
    sk: u64,
    skb: u64,
    offsets: &KernelOffsets,
    kind: RecordKind,
    record: &mut ResetRecord,
) -> Result<(), ReadError> {
    record.header = RecordHeader { kind: kind as u32, _pad: 0, ktime_ns: unsafe { bpf_ktime_get_ns() } };
    // Timewait and request socks have no inet_sock fields, lock, owner or
    // TCP timers: only their sock_common is read.
    let sk_state = read::kernel::<u8>(sk, offsets.skc_state);
    let full_socket = sk_state.is_some_and(|s| read::is_full_socket(s, offsets));
    // The segment being answered names the 4-tuple as the peer sent it
    // (its destination is this host); without one, the socket does.
    record.endpoints = if skb != 0 {
        read::endpoints_of_skb(skb, offsets).ok_or(ReadError)?
    } else if full_socket {
        read::endpoints_of_sock(sk, offsets)?
    } else {
        return Err(ReadError);
    };

    if kind == RecordKind::RstSent && skb != 0 {
        let (segment_flags, _) = read::flags_and_ttl_of_skb(skb, offsets).ok_or(ReadError)?;
        record.segment_flags = segment_flags;
        record.flags |= reset_flags::ANSWERS_SEGMENT;
    }
    if sk == 0 {
        // No socket (6.10+ resets to segments nobody owns): the namespace is
        // the receiving device's.
        if let Some(netns) = read::netns_of_skb(skb, offsets) {
            record.netns = netns;
            record.flags |= reset_flags::HAS_NETNS;
        }
        return Ok(());
    }
    record.flags |= reset_flags::HAS_SOCKET;
    if let Some(state) = sk_state {
        record.state = state;
        record.flags |= reset_flags::HAS_STATE;
    }
    if let Some(netns) = read::netns_of_sock(sk, offsets) {
        record.netns = netns;
        record.flags |= reset_flags::HAS_NETNS;
    }

    if !full_socket {
        if sk_state.is_some_and(|s| s as u32 == offsets.state_time_wait) {
            let entered_ns = crate::time_wait_table::entered_ns(record.netns, &record.endpoints);
            if entered_ns != 0 {
                record.closed_ns = entered_ns;
                record.flags |= reset_flags::HAS_CLOSED;
            }
        }
        return Ok(());
    }
    if let Some(cgroup_id) = read::cgroup_of_sock(sk, offsets) {
        record.cgroup_id = cgroup_id;
        record.flags |= reset_flags::HAS_CGROUP;
    }
    match kind {
        RecordKind::RstSent => {
            // The socket lock is only held by a task in process context
            // (softirq and timers back off from an owned socket), so an owned
            // socket means `current` is the process that caused the reset.
            // Not a listener: softirq answers segments at a listener without
            // its lock, which another CPU's accept() may hold.
            if sk_state.is_some_and(|s| s as u32 != offsets.state_listen)
                && read::kernel::<i32>(sk, offsets.sk_lock_owned).unwrap_or(0) != 0
            {
                record.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
                record.comm = bpf_get_current_comm().unwrap_or_default();
                record.flags |= reset_flags::FROM_PROCESS;
            }
        }
        _ => {
            if let (Some(sent), Some(received), Some(acked)) = (
                read::kernel::<u32>(sk, offsets.tcp_lsndtime),
                read::kernel::<u32>(sk, offsets.icsk_lrcvtime),
                read::kernel::<u32>(sk, offsets.tcp_rcv_tstamp),
            ) {
                record.now_jiffies = unsafe { bpf_jiffies64() } as u32;
                record.last_sent_jiffies = sent;
                record.last_received_jiffies = received;
                record.last_ack_jiffies = acked;
                record.flags |= reset_flags::HAS_ACTIVITY;
            }
            keepalive(sk, offsets, record);
            path(sk, offsets, record);
        }
    }
    Ok(())
}

/// Whether SO_KEEPALIVE is on, and after how long a silence the first probe
/// goes: the socket's TCP_KEEPIDLE, else its namespace's
/// net.ipv4.tcp_keepalive_time.
#[inline(always)]
fn keepalive(sk: u64, offsets: &KernelOffsets, record: &mut ResetRecord) {
    let Some(flags) = read::kernel::<u64>(sk, offsets.skc_flags) else { return };
    record.flags |= reset_flags::KEEPALIVE_KNOWN;
    if offsets.sock_flag_keepopen >= 64 || flags & (1 << offsets.sock_flag_keepopen) == 0 {
        return;
    }
    let own = read::kernel::<u32>(sk, offsets.tcp_keepalive_time).unwrap_or(0);
    let idle = if own != 0 {
        Some(own)
    } else {
        read::netns_net(sk, offsets).and_then(|net| read::kernel::<u32>(net, offsets.net_tcp_keepalive_time))
    };
    if let Some(idle) = idle {
        record.keepalive_jiffies = idle;
        record.flags |= reset_flags::KEEPALIVE_ON;
    } else {
        record.flags &= !reset_flags::KEEPALIVE_KNOWN;
    }
}

/// What the origin and cause of a received RST are judged by: the socket's
/// route (through a gateway or not), its minimum RTT, the TTL its peer's
/// segments came with, and when the peer's FIN came.
#[inline(always)]
fn path(sk: u64, offsets: &KernelOffsets, record: &mut ResetRecord) {
    if let Some(dst) = read::kernel::<u64>(sk, offsets.sk_dst_cache).filter(|&dst| dst != 0) {
        let via_gateway = if record.endpoints.family == AF_INET6 {
            read::kernel::<u32>(dst, offsets.rt6i_flags).map(|flags| flags & RTF_GATEWAY != 0)
        } else {
            read::kernel::<u8>(dst, offsets.rt_uses_gateway).map(|uses| uses != 0)
        };
        if let Some(via_gateway) = via_gateway {
            record.flags |= reset_flags::ROUTE_KNOWN;
            if via_gateway {
                record.flags |= reset_flags::VIA_GATEWAY;
            }
        }
    }
    if let Some(rtt_min_us) = read::kernel::<u32>(sk, offsets.tcp_rtt_min) {
        record.rtt_min_us = rtt_min_us;
        record.flags |= reset_flags::HAS_RTT_MIN;
    }
    // SAFETY: the map value is plain data, copied out at once.
    if let Some(kept) = unsafe { CONNECTIONS.get(sk) }.copied()
        && kept.remote_port == record.endpoints.remote_port
        && kept.remote_addr == record.endpoints.remote_addr
    {
        if kept.flags & connection_flags::TTL_KNOWN != 0 {
            record.peer_ttl = kept.ttl;
            record.flags |= reset_flags::HAS_PEER_TTL;
        }
        if kept.flags & connection_flags::PEER_FIN != 0 {
            record.closed_ns = kept.peer_fin_ns;
            record.flags |= reset_flags::HAS_CLOSED;
        }
    }
}

/// `RTF_GATEWAY` of `rt6i_flags`: the route goes through a router.
const RTF_GATEWAY: u32 = 0x0002;
