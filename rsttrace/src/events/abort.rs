//! The kernel's own abort on data, told from a received RST.
//!
//! The kernel's tcp_receive_reset tracepoint sits in tcp_reset(), which also
//! runs when the kernel aborts a connection itself because data arrived
//! after the application shut it down (TCPAbortOnData), right before it
//! sends its own RST on the 4-tuple from the now closed socket. No RST came
//! in then: a received one in such a state is held until that RST could
//! have been seen.

use std::collections::HashMap;

use super::{FourTuple, Reset, followup::SAME_SEGMENT_NS};
use crate::kernel::names::TcpState;

#[derive(Default)]
pub struct Aborts {
    /// Received resets that may be the kernel's own abort.
    held: Vec<Reset>,
    /// RSTs this host sent from sockets it had just closed, by 4-tuple: ktime.
    sent: HashMap<FourTuple, u64>,
}

impl Aborts {
    /// A received reset: itself, to report now, or None (held, or the
    /// kernel's abort already seen).
    pub fn received(&mut self, r: Reset) -> Option<Reset> {
        if !r.state.as_ref().is_some_and(may_abort_on_data) {
            return Some(r);
        }
        if self.sent.get(&r.tuple).is_some_and(|at| at.abs_diff(r.ktime_ns) < SAME_SEGMENT_NS) {
            return None;
        }
        self.held.push(r);
        None
    }

    /// A reset this host sent: from a closed socket, it is the abort of a
    /// held "received" reset on the 4-tuple, which then never came in.
    pub fn sent(&mut self, r: &Reset) {
        if r.state != Some(TcpState::Close) {
            return;
        }
        let before = self.held.len();
        self.held.retain(|held| held.tuple != r.tuple || held.ktime_ns.abs_diff(r.ktime_ns) >= SAME_SEGMENT_NS);
        if self.held.len() == before {
            self.sent.insert(r.tuple, r.ktime_ns);
        }
    }

    /// Held resets no abort followed: they were received.
    pub fn released(&mut self, now_ns: u64) -> Vec<Reset> {
        self.sent.retain(|_, at| now_ns.saturating_sub(*at) < SAME_SEGMENT_NS * 100);
        let (released, held) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|r| now_ns.saturating_sub(r.ktime_ns) >= SAME_SEGMENT_NS);
        self.held = held;
        released
    }

    /// Every held reset, at the end of a run.
    pub fn finish(&mut self) -> Vec<Reset> {
        std::mem::take(&mut self.held)
    }
}

/// States in which tcp_rcv_state_process() aborts a connection on data
/// that arrives after the application shut down reading.
fn may_abort_on_data(state: &TcpState) -> bool {
    matches!(
        state,
        TcpState::FinWait1 | TcpState::FinWait2 | TcpState::CloseWait | TcpState::Closing | TcpState::LastAck
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{events::Direction, kernel::names::ResetReason};

    const MS: u64 = 1_000_000;

    fn reset(direction: Direction, state: TcpState, at_ms: u64) -> Reset {
        Reset { ktime_ns: at_ms * MS, state: Some(state), ..Reset::example(direction) }
    }

    #[test]
    fn the_kernels_abort_is_no_received_reset() {
        let mut aborts = Aborts::default();
        assert!(aborts.received(reset(Direction::Received, TcpState::FinWait2, 1000)).is_none(), "held");
        let mut abort = reset(Direction::Sent, TcpState::Close, 1000);
        abort.reason = Some(ResetReason::TcpAbortOnData);
        aborts.sent(&abort);
        assert!(aborts.released(2000 * MS).is_empty());
        assert!(aborts.finish().is_empty());
        // The abort's RST first: the received one is dropped at once.
        aborts.sent(&abort);
        assert!(aborts.received(reset(Direction::Received, TcpState::FinWait2, 1001)).is_none());
        assert!(aborts.finish().is_empty());
    }

    #[test]
    fn a_received_reset_no_abort_follows_is_released() {
        let mut aborts = Aborts::default();
        let held = reset(Direction::Received, TcpState::CloseWait, 1000);
        assert!(aborts.received(held.clone()).is_none());
        assert!(aborts.released(1009 * MS).is_empty(), "may still be an abort");
        assert_eq!(aborts.released(1010 * MS), [held]);
        let open = reset(Direction::Received, TcpState::Established, 1000);
        assert_eq!(aborts.received(open.clone()), Some(open), "no abort in ESTABLISHED");
    }
}
