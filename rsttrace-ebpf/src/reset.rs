//! `tcp:tcp_send_reset` and `tcp:tcp_receive_reset`.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_jiffies64,
        bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use rsttrace_common::{
    kernel::{ABSENT, KernelOffsets},
    record::{RecordHeader, RecordKind, counter},
    reset::{AF_INET6, ResetRecord, ResetTracepointLayout, address_layout, reset_flags},
};

use crate::{count, emit};

// Filled by the loader before the programs are verified.
#[unsafe(no_mangle)]
static SEND_RESET_LAYOUT: ResetTracepointLayout = ResetTracepointLayout::absent();
#[unsafe(no_mangle)]
static RECEIVE_RESET_LAYOUT: ResetTracepointLayout = ResetTracepointLayout::absent();
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets::absent();

/// A failed kernel read: the record is dropped and counted.
struct ReadError;

#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    // Volatile: the compiler must not fold the loader-patched globals.
    let layout = unsafe { core::ptr::read_volatile(&SEND_RESET_LAYOUT) };
    on_reset(&ctx, &layout, RecordKind::RstSent)
}

#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    let layout = unsafe { core::ptr::read_volatile(&RECEIVE_RESET_LAYOUT) };
    on_reset(&ctx, &layout, RecordKind::RstReceived)
}

fn on_reset(ctx: &TracePointContext, layout: &ResetTracepointLayout, kind: RecordKind) -> u32 {
    let offsets = unsafe { core::ptr::read_volatile(&KERNEL_OFFSETS) };
    let mut record = ResetRecord::default();
    match fill(ctx, layout, &offsets, kind, &mut record) {
        Ok(()) => emit(&record),
        Err(ReadError) => count(counter::READ_ERRORS),
    }
    0
}

fn fill(
    ctx: &TracePointContext,
    layout: &ResetTracepointLayout,
    offsets: &KernelOffsets,
    kind: RecordKind,
    record: &mut ResetRecord,
) -> Result<(), ReadError> {
    record.header = RecordHeader {
        kind: kind as u32,
        cpu: unsafe { bpf_get_smp_processor_id() },
        ktime_ns: unsafe { bpf_ktime_get_ns() },
    };
    let sk: u64 = read_field(ctx, layout.skaddr)?.unwrap_or(0);
    read_addresses(ctx, layout, sk, offsets, record)?;

    let skb: u64 = read_field(ctx, layout.skbaddr)?.unwrap_or(0);
    if let Some(reason) = read_field::<u32>(ctx, layout.reason)? {
        record.reason = reason;
        record.flags |= reset_flags::HAS_REASON;
    }

    if sk == 0 {
        // No socket (6.10+ resets to segments nobody owns): the namespace is
        // the receiving device's.
        if let Some(netns) = netns_of_skb(skb, offsets) {
            record.netns = netns;
            record.flags |= reset_flags::HAS_NETNS;
        }
        return Ok(());
    }
    record.flags |= reset_flags::HAS_SOCKET;

    let state = match read_field::<i32>(ctx, layout.state)? {
        Some(state) => Some(state as u8),
        None => read_kernel::<u8>(sk, offsets.skc_state),
    };
    if let Some(state) = state {
        record.state = state;
        record.flags |= reset_flags::HAS_STATE;
    }
    if let Some(netns) = netns_of_sock(sk, offsets) {
        record.netns = netns;
        record.flags |= reset_flags::HAS_NETNS;
    }

    // Timewait and request socks have no lock, owner or TCP timers.
    let sk_state = read_kernel::<u8>(sk, offsets.skc_state).unwrap_or(0);
    if sk_state >= 32 || offsets.minisock_state_mask & (1 << sk_state) != 0 {
        return Ok(());
    }
    match kind {
        RecordKind::RstSent => {
            // The socket lock is only held by a task in process context
            // (softirq and timers back off from an owned socket), so an owned
            // socket means `current` is the process that caused the reset.
            if read_kernel::<i32>(sk, offsets.sk_lock_owned).unwrap_or(0) != 0 {
                let pid_tgid = bpf_get_current_pid_tgid();
                record.pid = (pid_tgid >> 32) as u32;
                record.tid = pid_tgid as u32;
                record.comm = bpf_get_current_comm().unwrap_or_default();
                record.flags |= reset_flags::FROM_PROCESS;
            }
        }
        RecordKind::RstReceived => {
            if let (Some(sent), Some(received), Some(acked)) = (
                read_kernel::<u32>(sk, offsets.tcp_lsndtime),
                read_kernel::<u32>(sk, offsets.icsk_lrcvtime),
                read_kernel::<u32>(sk, offsets.tcp_rcv_tstamp),
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

fn read_addresses(
    ctx: &TracePointContext,
    layout: &ResetTracepointLayout,
    sk: u64,
    offsets: &KernelOffsets,
    record: &mut ResetRecord,
) -> Result<(), ReadError> {
    match layout.address_layout {
        address_layout::SOCKADDR => {
            // sockaddr_in: family, port (network order), v4 address at 4;
            // sockaddr_in6: family, port, flowinfo, v6 address at 8.
            let local: [u8; 28] = read_field(ctx, layout.saddr)?.ok_or(ReadError)?;
            let remote: [u8; 28] = read_field(ctx, layout.daddr)?.ok_or(ReadError)?;
            record.family = u16::from_ne_bytes([local[0], local[1]]);
            record.local_port = u16::from_be_bytes([local[2], local[3]]);
            record.remote_port = u16::from_be_bytes([remote[2], remote[3]]);
            if record.family == AF_INET6 {
                record.local_addr.copy_from_slice(&local[8..24]);
                record.remote_addr.copy_from_slice(&remote[8..24]);
            } else {
                record.local_addr[..4].copy_from_slice(&local[4..8]);
                record.remote_addr[..4].copy_from_slice(&remote[4..8]);
            }
        }
        address_layout::SPLIT => {
            // Ports are stored in host order by these events. Before 6.1
            // tcp_send_reset had no family field: the socket has it.
            record.family = match read_field::<u16>(ctx, layout.family)? {
                Some(family) => family,
                None => read_kernel::<u16>(sk, offsets.skc_family).ok_or(ReadError)?,
            };
            record.local_port = read_field::<u16>(ctx, layout.sport)?.ok_or(ReadError)?;
            record.remote_port = read_field::<u16>(ctx, layout.dport)?.ok_or(ReadError)?;
            if record.family == AF_INET6 {
                record.local_addr = read_field(ctx, layout.saddr_v6)?.ok_or(ReadError)?;
                record.remote_addr = read_field(ctx, layout.daddr_v6)?.ok_or(ReadError)?;
            } else {
                let local: [u8; 4] = read_field(ctx, layout.saddr)?.ok_or(ReadError)?;
                let remote: [u8; 4] = read_field(ctx, layout.daddr)?.ok_or(ReadError)?;
                record.local_addr[..4].copy_from_slice(&local);
                record.remote_addr[..4].copy_from_slice(&remote);
            }
        }
        _ => return Err(ReadError),
    }
    Ok(())
}

/// Reads a tracepoint field; `Ok(None)` when this kernel's event lacks it.
fn read_field<T>(ctx: &TracePointContext, offset: u32) -> Result<Option<T>, ReadError> {
    if offset == ABSENT {
        return Ok(None);
    }
    unsafe { ctx.read_at::<T>(offset as usize) }
        .map(Some)
        .map_err(|_| ReadError)
}

/// Reads `base + offset` from kernel memory; `None` for a NULL base, an
/// offset BTF did not give, or a failed read.
fn read_kernel<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

fn netns_of_sock(sk: u64, offsets: &KernelOffsets) -> Option<u32> {
    let net: u64 = read_kernel(sk, offsets.skc_net)?;
    read_kernel(net, offsets.net_ns_inum)
}

fn netns_of_skb(skb: u64, offsets: &KernelOffsets) -> Option<u32> {
    let dev: u64 = read_kernel(skb, offsets.skb_dev)?;
    let net: u64 = read_kernel(dev, offsets.netdev_nd_net)?;
    read_kernel(net, offsets.net_ns_inum)
}
