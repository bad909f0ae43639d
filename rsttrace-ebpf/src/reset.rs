//! `tcp:tcp_send_reset` and `tcp:tcp_receive_reset`.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_jiffies64, bpf_ktime_get_ns,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use rsttrace_common::{
    kernel::KernelOffsets,
    record::{RecordHeader, RecordKind, counter},
    reset::{ResetRecord, reset_flags},
    tracepoint::TracepointLayout,
};

use crate::{
    count, emit, offsets, patched,
    read::{self, ReadError, field},
};

// Filled by the loader before the programs are verified.
#[unsafe(no_mangle)]
static SEND_RESET_LAYOUT: TracepointLayout = TracepointLayout::absent();
#[unsafe(no_mangle)]
static RECEIVE_RESET_LAYOUT: TracepointLayout = TracepointLayout::absent();

#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    on_reset(&ctx, patched(&SEND_RESET_LAYOUT), RecordKind::RstSent)
}

#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    on_reset(&ctx, patched(&RECEIVE_RESET_LAYOUT), RecordKind::RstReceived)
}

fn on_reset(ctx: &TracePointContext, layout: &TracepointLayout, kind: RecordKind) -> u32 {
    let mut record = ResetRecord::default();
    match fill(ctx, layout, offsets(), kind, &mut record) {
        Ok(()) => emit(&record),
        Err(ReadError) => count(counter::READ_ERRORS),
    }
    0
}

fn fill(
    ctx: &TracePointContext,
    layout: &TracepointLayout,
    offsets: &KernelOffsets,
    kind: RecordKind,
    record: &mut ResetRecord,
) -> Result<(), ReadError> {
    record.header = RecordHeader {
        kind: kind as u32,
        cpu: unsafe { bpf_get_smp_processor_id() },
        ktime_ns: unsafe { bpf_ktime_get_ns() },
    };
    let sk: u64 = field(ctx, layout.skaddr)?.unwrap_or(0);
    let skb: u64 = field(ctx, layout.skbaddr)?.unwrap_or(0);
    record.endpoints = read::endpoints(ctx, layout, sk, offsets)?;
    if let Some(reason) = field::<u32>(ctx, layout.reason)? {
        record.reason = reason;
        record.flags |= reset_flags::HAS_REASON;
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

    let state = match field::<i32>(ctx, layout.state)? {
        Some(state) => Some(state as u8),
        None => read::kernel::<u8>(sk, offsets.skc_state),
    };
    if let Some(state) = state {
        record.state = state;
        record.flags |= reset_flags::HAS_STATE;
    }
    if let Some(netns) = read::netns_of_sock(sk, offsets) {
        record.netns = netns;
        record.flags |= reset_flags::HAS_NETNS;
    }

    // Timewait and request socks have no lock, owner or TCP timers.
    let sk_state = read::kernel::<u8>(sk, offsets.skc_state).unwrap_or(0);
    if sk_state >= 32 || offsets.minisock_state_mask & (1 << sk_state) != 0 {
        return Ok(());
    }
    match kind {
        RecordKind::RstSent => {
            // The socket lock is only held by a task in process context
            // (softirq and timers back off from an owned socket), so an owned
            // socket means `current` is the process that caused the reset.
            if read::kernel::<i32>(sk, offsets.sk_lock_owned).unwrap_or(0) != 0 {
                let pid_tgid = bpf_get_current_pid_tgid();
                record.pid = (pid_tgid >> 32) as u32;
                record.tid = pid_tgid as u32;
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
