//! Resets sent and received: the `tcp_send_reset` and `tcp_receive_reset`
//! tracepoints.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_jiffies64, bpf_ktime_get_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use rsttrace_common::{
    kernel::KernelOffsets,
    record::{RecordHeader, RecordKind, counter},
    reset::{ResetConfig, ResetRecord, reset_flags},
};

use crate::{
    Draft, count, offsets, patched,
    read::{self, ReadError},
};

/// Filled by the loader before the programs are verified.
#[unsafe(no_mangle)]
static RESET_CONFIG: ResetConfig = ResetConfig { send_reset_has_reason: 0 };

// Raw tracepoints: the arguments are read in place and the kernel builds no
// trace record; attaching them needs no perf event (which Debian's
// perf_event_paranoid=3 reserves to CAP_SYS_ADMIN).

/// `tcp_send_reset(sk, skb[, reason])`: `sk` is NULL when no socket owns the
/// segment, a timewait or request socket, or a full one; `skb` is the
/// segment being answered, NULL for an abort.
#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: RawTracePointContext) -> u32 {
    let reason = (patched(&RESET_CONFIG).send_reset_has_reason != 0).then(|| ctx.arg::<u64>(2) as u32);
    on_reset(ctx.arg(0), ctx.arg(1), reason, RecordKind::RstSent)
}

/// `tcp_receive_reset(sk)`: a full socket.
#[raw_tracepoint(tracepoint = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: RawTracePointContext) -> u32 {
    on_reset(ctx.arg(0), 0, None, RecordKind::RstReceived)
}

#[inline(always)]
fn on_reset(sk: u64, skb: u64, reason: Option<u32>, kind: RecordKind) -> u32 {
    let Some(mut record) = Draft::<ResetRecord>::new() else { return 0 };
    if let Some(reason) = reason {
        record.reason = reason;
        record.flags |= reset_flags::HAS_REASON;
    }
    match fill(sk, skb, offsets(), kind, &mut record) {
        Ok(()) => record.emit(),
        Err(ReadError) => count(counter::READ_ERRORS),
    }
    0
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
    let full_socket = sk_state.is_some_and(|s| s < 32 && offsets.minisock_state_mask & (1 << s) == 0);
    // The segment being answered names the 4-tuple as the peer sent it
    // (its destination is this host); without one, the socket does.
    record.endpoints = if skb != 0 {
        read::endpoints_of_skb(skb, offsets).ok_or(ReadError)?
    } else if full_socket {
        read::endpoints_of_sock(sk, offsets)?
    } else {
        return Err(ReadError);
    };

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
            if read::kernel::<i32>(sk, offsets.sk_lock_owned).unwrap_or(0) != 0 {
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
        }
    }
    Ok(())
}
