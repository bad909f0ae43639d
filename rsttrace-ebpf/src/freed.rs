//! Segments the kernel frees as dropped (`kfree_skb`): RSTs it discarded
//! without ending a connection, and (Linux 6.11+, whose `rx_sk` names the
//! socket that received them) what TIME_WAIT sockets did with SYNs and RSTs.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{offsets, patched, read, reset, timewait};

/// `kfree_skb(skb, location, reason, rx_sk)`. Runs for every segment the
/// kernel drops (not for those it consumes): the drop reason and the
/// socket's state decide before the segment is read.
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb(ctx: RawTracePointContext) -> u32 {
    let (skb, reason, rx_sk) = (ctx.arg::<u64>(0), ctx.arg::<u64>(2) as u32, ctx.arg::<u64>(3));
    let offsets = offsets();
    let state = read::kernel::<u8>(rx_sk, offsets.skc_state);
    if state.map(u32::from) == Some(offsets.state_time_wait) {
        timewait::on_freed(rx_sk, skb, reason, offsets);
    } else if patched(&reset::RESET_CONFIG).discards(reason) {
        reset::on_discarded(skb, reason, rx_sk, state, offsets);
    }
    0
}

/// `kfree_skb(skb, location, reason)` (Linux 5.17 to 6.10): no receiving
/// socket, so no TIME_WAIT handling and no state; the loader leaves the
/// reasons that need the socket to be understood (NOT_SPECIFIED: a half-open
/// connection's RST, or one at a TIME_WAIT socket) out of the bitmap.
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb_without_socket(ctx: RawTracePointContext) -> u32 {
    let (skb, reason) = (ctx.arg::<u64>(0), ctx.arg::<u64>(2) as u32);
    if patched(&reset::RESET_CONFIG).discards(reason) {
        reset::on_discarded(skb, reason, 0, None, offsets());
    }
    0
}
