//! Segments the kernel frees as dropped (`kfree_skb`): RSTs it discarded
//! without ending a connection, and (Linux 6.11+, whose `rx_sk` names the
//! socket that received them) what TIME_WAIT sockets did with SYNs and RSTs.

use aya_ebpf::{
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};

use crate::{
    offsets, patched,
    read::{Memory, Probed, Typed},
    reset, timewait,
};

/// `kfree_skb(skb, location, reason, rx_sk)`. Runs for every segment the
/// kernel drops (not for those it consumes): the drop reason and the
/// socket's state decide before the segment is read.
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb(ctx: RawTracePointContext) -> u32 {
    on_freed::<Probed>(ctx.arg(0), ctx.arg::<u64>(2) as u32, ctx.arg(3))
}

/// The same as a BTF-typed tracepoint (tp_btf), where the kernel takes it:
/// the socket's and the segment's fields are plain loads.
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb_typed(ctx: BtfTracePointContext) -> u32 {
    on_freed::<Typed>(ctx.arg(0), ctx.arg::<u64>(2) as u32, ctx.arg(3))
}

#[inline(always)]
fn on_freed<M: Memory>(skb: u64, reason: u32, rx_sk: u64) -> u32 {
    let offsets = offsets();
    let state = M::load::<u8>(rx_sk, offsets.skc_state);
    if state.map(u32::from) == Some(offsets.state_time_wait) {
        timewait::on_freed(rx_sk, skb, reason, offsets);
    } else if patched(&reset::RESET_CONFIG).discards(reason) {
        reset::on_discarded::<M>(skb, reason, rx_sk, state, offsets);
    }
    0
}

/// `kfree_skb(skb, location, reason)` (Linux 5.17 to 6.10): no receiving
/// socket, so no TIME_WAIT handling and no state; the loader leaves the
/// reasons that need the socket to be understood (NOT_SPECIFIED: a half-open
/// connection's RST, or one at a TIME_WAIT socket) out of the bitmap.
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb_without_socket(ctx: RawTracePointContext) -> u32 {
    on_freed_without_socket::<Probed>(ctx.arg(0), ctx.arg::<u64>(2) as u32)
}

#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb_without_socket_typed(ctx: BtfTracePointContext) -> u32 {
    on_freed_without_socket::<Typed>(ctx.arg(0), ctx.arg::<u64>(2) as u32)
}

#[inline(always)]
fn on_freed_without_socket<M: Memory>(skb: u64, reason: u32) -> u32 {
    if patched(&reset::RESET_CONFIG).discards(reason) {
        reset::on_discarded::<M>(skb, reason, 0, None, offsets());
    }
    0
}
