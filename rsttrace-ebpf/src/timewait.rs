//! Connections in TIME_WAIT and the segments that meet them.
//!
//! `inet_sock_set_state` fills the table when a connection enters TIME_WAIT
//! and reports what happens to the 4-tuple next; the kernel's handling of a
//! segment by a TIME_WAIT socket is seen by `kfree_skb` (tracepoint strategy).

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_func_arg, bpf_ktime_get_ns, bpf_skc_to_tcp_sock},
    macros::{btf_tracepoint, fexit, kprobe, kretprobe, map, raw_tracepoint},
    maps::{PerCpuArray, PerCpuHashMap},
    programs::{BtfTracePointContext, FExitContext, ProbeContext, RawTracePointContext, RetProbeContext},
};
use rsttrace_common::{
    kernel::KernelOffsets,
    record::{RecordKind, counter},
    timewait::{
        REUSE_ENTRIES, ReuseCount, ReuseKey, TIME_WAIT_NS, TW_STATUS_UNKNOWN, TimeWaitConfig, TimeWaitEntry,
        TimeWaitKey, TimeWaitRecord, entry_flags, isn_after_time_wait, source, tw_flags,
    },
};

use crate::{
    Draft, count, offsets, patched,
    read::{self, Memory, ReadError, Segment, TCP_ACK, TCP_RST, TCP_SYN},
    time_wait_table::TIME_WAIT,
};

#[unsafe(no_mangle)]
static TIME_WAIT_CONFIG: TimeWaitConfig = TimeWaitConfig::absent();

const IPPROTO_TCP: u16 = 6;

/// A record for `key`, in place in the ring buffer.
#[inline(always)]
fn new_record(kind: RecordKind, source: u8, key: &TimeWaitKey, now: u64) -> Option<Draft<TimeWaitRecord>> {
    let mut record = Draft::<TimeWaitRecord>::new()?;
    start(&mut record, kind, source, key, now);
    Some(record)
}

/// What every TIME_WAIT record says first, in the ring or in the reuse
/// table (whose slot may hold an earlier attempt: `flags` starts empty).
#[inline(always)]
fn start(record: &mut TimeWaitRecord, kind: RecordKind, source: u8, key: &TimeWaitKey, now: u64) {
    record.header.kind = kind as u32;
    record.header.ktime_ns = now;
    record.endpoints = key.endpoints;
    record.netns = key.netns;
    record.source = source;
    record.tw_status = TW_STATUS_UNKNOWN;
    record.flags = 0;
}

/// Accepted reuse, per (namespace, local endpoint, peer address) and
/// generation, per CPU: the daemon reports it aggregated per peer anyway,
/// so past the first per key, CPU and interval a connection costs one
/// lookup and an add instead of a ring record. Per CPU, no atomics: a
/// value is changed only in softirq, which does not nest on a CPU.
#[map]
static REUSE: PerCpuHashMap<ReuseKey, ReuseCount> = PerCpuHashMap::with_max_entries(2 * REUSE_ENTRIES, 0);

/// A new key's value, passed from the program's data rather than copied
/// onto its 512-byte stack.
static EMPTY_REUSE: ReuseCount = unsafe { core::mem::zeroed() };

/// This CPU's count of accepted reuse under `key` in this interval, added
/// to: a count of 1 is the first, whose record the caller writes into the
/// table; null when the table is full (the reuse then takes a ring record
/// of its own, as before the table).
// A function of its own: its key stays off the callers' stacks.
#[inline(never)]
fn reuse_count(key: &TimeWaitKey) -> *mut ReuseCount {
    let mut endpoints = key.endpoints;
    endpoints.remote_port = 0;
    let reuse_key = ReuseKey { endpoints, netns: key.netns, generation: crate::generation() };
    let slot = match REUSE.get_ptr_mut(reuse_key) {
        Some(slot) => slot,
        None => {
            // By reference: by value the static would be copied onto the stack.
            #[allow(clippy::needless_borrows_for_generic_args)]
            let inserted = REUSE.insert(reuse_key, &EMPTY_REUSE, 0);
            if inserted.is_err() {
                return core::ptr::null_mut();
            }
            match REUSE.get_ptr_mut(reuse_key) {
                Some(slot) => slot,
                None => return core::ptr::null_mut(),
            }
        }
    };
    // SAFETY: this CPU's value of a live entry.
    unsafe { (*slot).count += 1 };
    slot
}

/// `inet_sock_set_state(sk, oldstate, newstate)`, a raw tracepoint: the
/// arguments are read straight from the context, and the kernel builds no
/// trace record. Six of a connection's ten state changes leave at once.
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: RawTracePointContext) -> u32 {
    let (sk, old, new) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1) as u32, ctx.arg::<u64>(2) as u32);
    let offsets = offsets();
    let Some(change) = StateChange::of(old, new, offsets) else { return 0 };
    if read::kernel::<u16>(sk, offsets.sk_protocol).is_some_and(|p| p != IPPROTO_TCP) {
        return 0;
    }
    if on_set_state::<read::Probed>(sk, change, offsets).is_err() {
        count(counter::READ_ERRORS);
    }
    0
}

/// The same program as a BTF-typed tracepoint (tp_btf), where the kernel
/// allows one: the verifier knows `sk`'s type, so the socket's fields are
/// plain loads instead of a helper call each.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state_typed(ctx: BtfTracePointContext) -> u32 {
    let (sk, old, new) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1) as u32, ctx.arg::<u64>(2) as u32);
    let offsets = offsets();
    let Some(change) = StateChange::of(old, new, offsets) else { return 0 };
    // The socket typed as a tcp_sock, whose members include the TCP
    // fields; null for another protocol.
    // SAFETY: a helper taking the tracepoint's socket argument.
    let tcp_sk = unsafe { bpf_skc_to_tcp_sock(sk as *mut c_void) } as u64;
    if tcp_sk == 0 {
        return 0;
    }
    if on_set_state::<read::Typed>(tcp_sk, change, offsets).is_err() {
        count(counter::READ_ERRORS);
    }
    0
}

/// The state changes of a connection that matter here.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StateChange {
    /// FIN_WAIT2/CLOSING -> CLOSE: tcp_time_wait() handing the connection
    /// to a timewait socket, unless a reset or error closed it.
    EnteringTimeWait,
    /// SYN_RECV -> ESTABLISHED: a passive connection. Active ones are left
    /// out: an active connection on a TIME_WAIT 4-tuple of this host is its
    /// own reuse (tcp_tw_reuse), not a peer's SYN.
    Established,
    /// ESTABLISHED -> CLOSE_WAIT: the peer's FIN came.
    PeerFin,
    /// Any other change to CLOSE: the socket is done; `after_peer_fin`: from
    /// CLOSE_WAIT or LAST_ACK, where `PeerFin` kept an entry for it.
    Closed { after_peer_fin: bool },
}

impl StateChange {
    #[inline(always)]
    fn of(old: u32, new: u32, offsets: &KernelOffsets) -> Option<Self> {
        if new == offsets.state_close {
            if old == offsets.state_fin_wait2 || old == offsets.state_closing {
                Some(StateChange::EnteringTimeWait)
            } else {
                let after_peer_fin = old == offsets.state_close_wait || old == offsets.state_last_ack;
                Some(StateChange::Closed { after_peer_fin })
            }
        } else if new == offsets.state_established && old == offsets.state_syn_recv {
            Some(StateChange::Established)
        } else if new == offsets.state_close_wait && old == offsets.state_established {
            Some(StateChange::PeerFin)
        } else {
            None
        }
    }
}

/// A TCP socket's state change that matters; `M` says how `sk` is read.
#[inline(always)]
fn on_set_state<M: Memory>(sk: u64, change: StateChange, offsets: &KernelOffsets) -> Result<(), ReadError> {
    // Only sockets that can have an entry are looked up: every one where
    // the peer TTL is learned, else those the peer closed first.
    let keeps_every_connection = patched(&crate::reset::RESET_CONFIG).keeps_every_connection != 0;
    match change {
        StateChange::PeerFin => return crate::reset::note_peer_fin::<M>(sk, offsets),
        StateChange::Closed { after_peer_fin } => {
            if after_peer_fin || keeps_every_connection {
                crate::reset::forget_connection(sk);
            }
            return Ok(());
        }
        StateChange::EnteringTimeWait if keeps_every_connection => crate::reset::forget_connection(sk),
        StateChange::EnteringTimeWait | StateChange::Established => {}
    }
    let entering = change == StateChange::EnteringTimeWait;
    if entering && M::load::<i32>(sk, offsets.sk_err).unwrap_or(0) != 0 {
        return Ok(());
    }
    let key = TimeWaitKey {
        netns: read::netns_of::<M>(sk, offsets).unwrap_or(0),
        endpoints: read::endpoints_of::<M>(sk, offsets)?,
    };
    if entering {
        let mut entry = TimeWaitEntry {
            entered_ns: unsafe { bpf_ktime_get_ns() },
            rcv_nxt: M::load(sk, offsets.tcp_rcv_nxt).unwrap_or(0),
            ts_recent: M::load(sk, offsets.tcp_ts_recent).unwrap_or(0),
            ts_recent_stamp: M::load(sk, offsets.tcp_ts_recent_stamp).unwrap_or(0),
            snd_nxt: M::load(sk, offsets.tcp_snd_nxt).unwrap_or(0),
            ..Default::default()
        };
        match timestamps_ok::<M>(sk, offsets) {
            Some(true) => entry.flags |= entry_flags::TIMESTAMPS | entry_flags::TIMESTAMPS_KNOWN,
            Some(false) => entry.flags |= entry_flags::TIMESTAMPS_KNOWN,
            None => {}
        }
        let _ = TIME_WAIT.insert(key, entry, 0);
        return Ok(());
    }

    // A connection established on a 4-tuple the table holds.
    let Some(entry) = (unsafe { TIME_WAIT.get(key) }).copied() else {
        return Ok(());
    };
    let _ = TIME_WAIT.remove(key);
    let now = unsafe { bpf_ktime_get_ns() };
    // Decided before a record is reserved in the ring: the retry after a
    // collision, or (tracepoint strategy) accepted reuse of a live entry.
    let followup = entry.flags & (entry_flags::COLLIDED | entry_flags::KILLED) != 0;
    let config = patched(&TIME_WAIT_CONFIG);
    // Only a SYN that a TIME_WAIT socket accepted gives the new connection
    // the ISN derived from the old one: when tcp_max_tw_buckets refused the
    // TIME_WAIT socket, the table entry stands for nothing.
    let accepted = !followup
        && config.accepted_from_set_state != 0
        && now.saturating_sub(entry.entered_ns) <= TIME_WAIT_NS
        && M::load::<u32>(sk, offsets.tcp_snd_una)
            .is_some_and(|snd_una| snd_una.wrapping_sub(1) == isn_after_time_wait(entry.snd_nxt));
    if followup {
        // A full ring was counted as lost.
        let Some(mut record) = new_record(RecordKind::TwFollowup, source::SET_STATE, &key, now) else {
            return Ok(());
        };
        fill_from_entry(&mut record, &entry);
        // The daemon ties the retry to the collision.
        record.marked_ns = entry.marked_ns;
        if entry.flags & entry_flags::KILLED != 0 {
            record.flags |= tw_flags::WAS_KILLED;
        }
        record.emit();
        return Ok(());
    }
    if !accepted {
        return Ok(());
    }
    // As in `on_segment`: two paths, each with its own fill.
    let slot = reuse_count(&key);
    if !slot.is_null() {
        // SAFETY: this CPU's value, as returned by `reuse_count`.
        let slot = unsafe { &mut *slot };
        if slot.count == 1 {
            start(&mut slot.first, RecordKind::TwCollision, source::SET_STATE, &key, now);
            fill_accepted::<M>(&mut slot.first, sk, &entry, offsets);
        }
        return Ok(());
    }
    let Some(mut record) = new_record(RecordKind::TwCollision, source::SET_STATE, &key, now) else {
        return Ok(());
    };
    fill_accepted::<M>(&mut record, sk, &entry, offsets);
    record.emit();
    Ok(())
}

/// The kernel accepted a SYN on a TIME_WAIT 4-tuple (the only way a passive
/// connection appears on it while the socket lives). The SYN's ISN is
/// rcv_nxt - 1 of the new socket; its timestamps, as negotiated.
#[inline(always)]
fn fill_accepted<M: Memory>(record: &mut TimeWaitRecord, sk: u64, entry: &TimeWaitEntry, offsets: &KernelOffsets) {
    fill_from_entry(record, entry);
    record.segment_seq = M::load::<u32>(sk, offsets.tcp_rcv_nxt).unwrap_or(1).wrapping_sub(1);
    match timestamps_ok::<M>(sk, offsets) {
        Some(true) => {
            if let Some(tsval) = M::load::<u32>(sk, offsets.tcp_ts_recent) {
                record.segment_tsval = tsval;
                record.flags |= tw_flags::SEGMENT_OPTIONS_KNOWN | tw_flags::SEGMENT_TIMESTAMPS;
            }
        }
        Some(false) => record.flags |= tw_flags::SEGMENT_OPTIONS_KNOWN,
        None => {}
    }
}

/// `tcp_sock.rx_opt.tstamp_ok`: the connection negotiated timestamps; None
/// when it cannot be read.
#[inline(always)]
fn timestamps_ok<M: Memory>(sk: u64, offsets: &KernelOffsets) -> Option<bool> {
    M::load::<u8>(sk, offsets.tcp_tstamp_ok_byte).map(|byte| (byte >> (offsets.tcp_tstamp_ok_bit & 7)) & 1 != 0)
}

/// A segment freed after the TIME_WAIT socket `tw` handled it (seen by
/// `kfree_skb`): a SYN (rejected or accepted), or an RST. An RST that did not
/// kill the socket is reported as discarded; what killed it, and SYNs, are
/// reported here only by the tracepoint strategy (fexit and kprobe see the
/// kernel's verdict).
#[inline(always)]
pub fn on_freed(tw: u64, skb: u64, reason: u32, offsets: &KernelOffsets) {
    let Some(segment) = read::segment_of_skb(skb, offsets) else {
        count(counter::READ_ERRORS);
        return;
    };
    if segment.flags & TCP_RST != 0 && rst_kills(tw, &segment, offsets) == Some(false) {
        crate::reset::on_discarded::<read::Probed>(skb, reason, tw, Some(offsets.state_time_wait as u8), offsets);
        return;
    }
    if patched(&TIME_WAIT_CONFIG).segments_from_kfree_skb != 0 {
        on_segment(tw, &segment, source::KFREE_SKB, TW_STATUS_UNKNOWN, Some(reason), offsets);
    }
}

/// Whether an RST kills the TIME_WAIT socket `tw`: tcp_timewait_state_process
/// kills on an in-window RST (seq == rcv_nxt) unless net.ipv4.tcp_rfc1337
/// protects TIME_WAIT (the loader refuses to start without the sysctl's
/// offset). None when `rcv_nxt` cannot be read.
#[inline(always)]
fn rst_kills(tw: u64, segment: &Segment, offsets: &KernelOffsets) -> Option<bool> {
    let tw_rcv_nxt = read::kernel::<u32>(tw, offsets.tw_rcv_nxt)?;
    let rfc1337 =
        read::netns_net(tw, offsets).and_then(|net| read::kernel::<u8>(net, offsets.net_tcp_rfc1337)).unwrap_or(0);
    Some(segment.seq == tw_rcv_nxt && rfc1337 == 0)
}

// fexit and kprobe strategies: the kernel's own verdict, the return value
// of tcp_timewait_state_process(tw, skb, th[, tw_isn[, drop_reason]]).

// One fexit program per prototype: the return value follows the arguments,
// and tracing programs must read their context at constant offsets. The
// loader loads the one matching the kernel's BTF.
#[fexit(function = "tcp_timewait_state_process")]
pub fn tw_process_fexit3(ctx: FExitContext) -> u32 {
    on_process(ctx.arg(0), ctx.arg(1), ctx.arg::<u64>(3) as u8, 0, source::FEXIT)
}

#[fexit(function = "tcp_timewait_state_process")]
pub fn tw_process_fexit4(ctx: FExitContext) -> u32 {
    on_process(ctx.arg(0), ctx.arg(1), ctx.arg::<u64>(4) as u8, 0, source::FEXIT)
}

#[fexit(function = "tcp_timewait_state_process")]
pub fn tw_process_fexit5(ctx: FExitContext) -> u32 {
    // drop_reason is an `enum skb_drop_reason *`: the verifier refuses a
    // context read of a pointer to neither an integer nor a struct ("arg4
    // type ENUM is not a struct", seen on Debian's 6.18). The helper reads
    // it untyped (Linux 5.17+; this prototype is 6.16+).
    let mut drop_reason = 0u64;
    // SAFETY: a tracing program's context, a valid out pointer.
    unsafe { bpf_get_func_arg(ctx.as_ptr(), 4, &mut drop_reason) };
    on_process(ctx.arg(0), ctx.arg(1), ctx.arg::<u64>(5) as u8, drop_reason, source::FEXIT)
}

/// Arguments saved at entry for the return probe.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProcessArgs {
    tw: u64,
    skb: u64,
    drop_reason: u64,
}

/// Per CPU: tcp_timewait_state_process runs in softirq, which does not nest
/// on a CPU, so entry and return pair up.
#[map]
static PROCESS_ARGS: PerCpuArray<ProcessArgs> = PerCpuArray::with_max_entries(1, 0);

#[kprobe]
pub fn tw_process_entry(ctx: ProbeContext) -> u32 {
    let config = patched(&TIME_WAIT_CONFIG);
    if let Some(slot) = PROCESS_ARGS.get_ptr_mut(0) {
        let drop_reason = if config.drop_reason_arg == 4 { ctx.arg(4).unwrap_or(0) } else { 0 };
        let args = ProcessArgs { tw: ctx.arg(0).unwrap_or(0), skb: ctx.arg(1).unwrap_or(0), drop_reason };
        // SAFETY: this CPU's slot.
        unsafe { *slot = args };
    }
    0
}

#[kretprobe]
pub fn tw_process_return(ctx: RetProbeContext) -> u32 {
    let Some(slot) = PROCESS_ARGS.get_ptr_mut(0) else { return 0 };
    // SAFETY: this CPU's slot, written by the entry probe.
    let args = unsafe { *slot };
    unsafe { (*slot).tw = 0 };
    if args.tw == 0 {
        return 0;
    }
    on_process(args.tw, args.skb, ctx.ret::<u64>() as u8, args.drop_reason, source::KPROBE)
}

// Inlined: BPF calls take at most five register arguments.
#[inline(always)]
fn on_process(tw: u64, skb: u64, tw_status: u8, drop_reason_ptr: u64, source: u8) -> u32 {
    let offsets = offsets();
    let Some(segment) = read::segment_of_skb(skb, offsets) else {
        count(counter::READ_ERRORS);
        return 0;
    };
    // 6.16+ says why it dropped the segment (TCP_RFC7323_TW_PAWS).
    let drop_reason = read::kernel::<u32>(drop_reason_ptr, 0);
    on_segment(tw, &segment, source, tw_status, drop_reason, offsets);
    0
}

/// A segment a TIME_WAIT socket `tw` handled: a SYN is a collision, an RST
/// that matches `rcv_nxt` kills the socket (unless tcp_rfc1337 is set).
#[inline(always)]
pub fn on_segment(
    tw: u64,
    segment: &Segment,
    source: u8,
    tw_status: u8,
    drop_reason: Option<u32>,
    offsets: &KernelOffsets,
) {
    let is_syn = segment.flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN;
    let is_rst = segment.flags & TCP_RST != 0;
    if !is_syn && !is_rst {
        return;
    }
    let config = patched(&TIME_WAIT_CONFIG);
    let accepted = is_syn && tw_status as u32 == config.tw_status_syn;
    if is_rst && rst_kills(tw, segment, offsets) != Some(true) {
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    let key = TimeWaitKey { netns: read::netns_of_sock(tw, offsets).unwrap_or(0), endpoints: segment.endpoints };
    let kind = if is_syn { RecordKind::TwCollision } else { RecordKind::TwKilled };
    // Accepted: the kernel descheduled the TIME_WAIT socket and a new
    // connection takes the 4-tuple. Nothing follows to correlate, and the
    // table's entry goes when that connection is established.
    let slot = if accepted { reuse_count(&key) } else { core::ptr::null_mut() };
    // Two paths, each with its own fill: one variable holding the ring's
    // record or none is checked again before the submit, and 6.1's verifier
    // takes the record for possibly unreleased there ("Unreleased
    // reference").
    if !slot.is_null() {
        // SAFETY: this CPU's value, as returned by `reuse_count`.
        let slot = unsafe { &mut *slot };
        // Counted already: only the first of a key, CPU and interval is
        // read (the others are a count, whatever they would show).
        if slot.count == 1 {
            start(&mut slot.first, kind, source, &key, now);
            fill_segment(&mut slot.first, tw, segment, tw_status, drop_reason, &key, offsets);
            // Unreadable, the count stands and rcv_nxt stays unknown.
            if let Some(tw_rcv_nxt) = read::kernel::<u32>(tw, offsets.tw_rcv_nxt) {
                slot.first.tw_rcv_nxt = tw_rcv_nxt;
                slot.first.flags |= tw_flags::TW_FIELDS;
            }
        }
        return;
    }
    // Decided before anything is reserved: what no record can be without.
    let Some(tw_rcv_nxt) = read::kernel::<u32>(tw, offsets.tw_rcv_nxt) else {
        count(counter::READ_ERRORS);
        return;
    };
    let Some(mut record) = new_record(kind, source, &key, now) else {
        return;
    };
    record.tw_rcv_nxt = tw_rcv_nxt;
    record.flags |= tw_flags::TW_FIELDS;
    let entry = fill_segment(&mut record, tw, segment, tw_status, drop_reason, &key, offsets);
    if !accepted {
        mark(&key, entry, if is_syn { entry_flags::COLLIDED } else { entry_flags::KILLED }, now);
    }
    record.emit();
}

/// The segment and the TIME_WAIT socket `tw` it met (but its rcv_nxt),
/// into a record begun by `start`; what cannot be read stays unknown.
/// Returns the table's entry for the 4-tuple.
// Inlined: BPF calls take at most five register arguments.
#[inline(always)]
fn fill_segment(
    record: &mut TimeWaitRecord,
    tw: u64,
    segment: &Segment,
    tw_status: u8,
    drop_reason: Option<u32>,
    key: &TimeWaitKey,
    offsets: &KernelOffsets,
) -> Option<*mut TimeWaitEntry> {
    record.segment_seq = segment.seq;
    record.tw_status = tw_status;
    if segment.options_known {
        record.flags |= tw_flags::SEGMENT_OPTIONS_KNOWN;
        if let Some(tsval) = segment.tsval {
            record.segment_tsval = tsval;
            record.flags |= tw_flags::SEGMENT_TIMESTAMPS;
        }
    }
    if let Some(reason) = drop_reason {
        record.drop_reason = reason;
        record.flags |= tw_flags::HAS_DROP_REASON;
    }
    // Read straight into the record: the kretprobe's stack (with the
    // segment's) has no room for more (6.1's verifier: "combined stack size
    // of 2 calls is 544"). Unreadable, the old connection's timestamps are
    // unknown, not absent.
    if let (Some(ts_recent), Some(stamp)) =
        (read::kernel::<u32>(tw, offsets.tw_ts_recent), read::kernel::<u32>(tw, offsets.tw_ts_recent_stamp))
    {
        record.tw_ts_recent = ts_recent;
        record.tw_ts_recent_stamp = stamp;
        record.flags |= tw_flags::TW_TIMESTAMPS_KNOWN;
        // The kernel keeps ts_recent_stamp zero unless timestamps were used.
        if stamp != 0 {
            record.flags |= tw_flags::TW_TIMESTAMPS;
        }
    }
    let entry = TIME_WAIT.get_ptr_mut(key);
    if let Some(entry) = entry {
        // SAFETY: a valid map value pointer; racing updates only blur marks.
        let entry = unsafe { &*entry };
        // Zero: the entry was made by a mark, after rsttrace started late.
        if entry.entered_ns != 0 {
            record.entered_ns = entry.entered_ns;
            record.flags |= tw_flags::ENTERED_KNOWN;
        }
    }
    entry
}

/// Marks the 4-tuple as collided or killed, so the next connection on it is
/// reported as the follow-up; creates the entry when rsttrace started after
/// the connection entered TIME_WAIT.
fn mark(key: &TimeWaitKey, entry: Option<*mut TimeWaitEntry>, flag: u32, now: u64) {
    match entry {
        Some(entry) => {
            let entry = unsafe { &mut *entry };
            if entry.flags & (entry_flags::COLLIDED | entry_flags::KILLED) == 0 {
                entry.marked_ns = now;
            }
            entry.flags |= flag;
        }
        None => {
            let entry = TimeWaitEntry { marked_ns: now, flags: flag, ..Default::default() };
            let _ = TIME_WAIT.insert(key, entry, 0);
        }
    }
}

fn fill_from_entry(record: &mut TimeWaitRecord, entry: &TimeWaitEntry) {
    if entry.entered_ns != 0 {
        record.entered_ns = entry.entered_ns;
        record.flags |= tw_flags::ENTERED_KNOWN;
    }
    if entry.rcv_nxt != 0 {
        record.tw_rcv_nxt = entry.rcv_nxt;
        record.tw_ts_recent = entry.ts_recent;
        record.tw_ts_recent_stamp = entry.ts_recent_stamp;
        record.flags |= tw_flags::TW_FIELDS;
    }
    if entry.flags & entry_flags::TIMESTAMPS_KNOWN != 0 {
        record.flags |= tw_flags::TW_TIMESTAMPS_KNOWN;
    }
    if entry.flags & entry_flags::TIMESTAMPS != 0 {
        record.flags |= tw_flags::TW_TIMESTAMPS;
    }
}
