//! What follows a harmful collision: a collision waits for the peer's RST
//! that kills the TIME_WAIT socket and for the peer's next connection on the
//! 4-tuple (the retry), and is reported with both, or without them once
//! the window has passed.

use std::collections::HashMap;

use super::{
    Followup, FourTuple, Reset, TimeWaitSegment,
    collision::{Collision, Verdict, verdict},
};

/// How close (ns) two records of the kernel's handling of one segment are:
/// both happen while the kernel handles it.
pub const SAME_SEGMENT_NS: u64 = 10_000_000;

/// Collisions waiting for what follows them.
pub struct Followups {
    window_ns: u64,
    pending: HashMap<FourTuple, Collision>,
    /// RSTs this host sent from TIME_WAIT sockets, by 4-tuple: ktime.
    timewait_resets: HashMap<FourTuple, u64>,
}

impl Followups {
    pub fn new(window_ns: u64) -> Self {
        Self { window_ns, pending: HashMap::new(), timewait_resets: HashMap::new() }
    }

    /// The verdict on a SYN: the kernel's, unless this host's TIME_WAIT
    /// socket answered it with an RST rather than the stale ACK the
    /// evidence suggests (`timewait_reset` sees that RST; the two records
    /// come from different hooks and arrive in either order).
    pub fn verdict(&self, t: &TimeWaitSegment) -> Verdict {
        let verdict = verdict(t);
        if verdict == Verdict::StaleAck
            && self.timewait_resets.get(&t.tuple).is_some_and(|at| at.abs_diff(t.ktime_ns) < SAME_SEGMENT_NS)
        {
            return Verdict::Rst;
        }
        verdict
    }

    /// A harmful collision: held until what follows it. Another SYN on the
    /// same TIME_WAIT socket (the peer retried into it) is counted in it.
    pub fn hold(&mut self, t: TimeWaitSegment, verdict: Verdict) {
        if let Some(pending) = self.pending.get_mut(&t.tuple) {
            pending.count += t.count;
            return;
        }
        let count = t.count;
        self.pending.insert(
            t.tuple,
            Collision { event: t, verdict, peer_rst: None, retry_delay_ms: None, count, interval_ms: None },
        );
    }

    /// This host sent an RST from a TIME_WAIT socket: the other half of
    /// `verdict`.
    pub fn timewait_reset(&mut self, r: &Reset) {
        if let Some(pending) = self.pending.get_mut(&r.tuple)
            && pending.verdict == Verdict::StaleAck
            && pending.event.ktime_ns.abs_diff(r.ktime_ns) < SAME_SEGMENT_NS
        {
            pending.verdict = Verdict::Rst;
        }
        self.timewait_resets.insert(r.tuple, r.ktime_ns);
    }

    /// An RST killed a TIME_WAIT socket.
    pub fn killed(&mut self, t: &TimeWaitSegment) {
        if let Some(pending) = self.pending.get_mut(&t.tuple) {
            pending.peer_rst = Some(true);
        }
    }

    /// The next connection on a 4-tuple: its collision, complete.
    pub fn followed(&mut self, f: &Followup) -> Option<Collision> {
        let mut collision = self.pending.remove(&f.tuple)?;
        collision.retry_delay_ms = Some(f.ktime_ns.saturating_sub(collision.event.ktime_ns) / 1_000_000);
        collision.peer_rst = Some(collision.peer_rst.unwrap_or(false) || f.was_killed);
        Some(collision)
    }

    /// Collisions nothing followed within the window, complete.
    pub fn expired(&mut self, now_ns: u64) -> Vec<Collision> {
        self.timewait_resets.retain(|_, at| now_ns.saturating_sub(*at) < SAME_SEGMENT_NS * 100);
        let window_ns = self.window_ns;
        let expired: Vec<FourTuple> = self
            .pending
            .iter()
            .filter(|(_, c)| now_ns.saturating_sub(c.event.ktime_ns) >= window_ns)
            .map(|(k, _)| *k)
            .collect();
        expired
            .into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .map(|mut c| {
                // Every strategy sees kills: none came within the window.
                c.peer_rst.get_or_insert(false);
                c
            })
            .collect()
    }

    /// Every collision still waiting, at the end of a run: what followed it
    /// so far.
    pub fn finish(&mut self) -> impl Iterator<Item = Collision> + '_ {
        self.pending.drain().map(|(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::Direction,
        kernel::names::{ResetReason, TcpState},
    };

    const MS: u64 = 1_000_000;

    fn followed(remote_port: u16, at_ms: u64, was_killed: bool) -> Followup {
        let tuple = TimeWaitSegment::example(remote_port, 0).tuple;
        Followup { ktime_ns: at_ms * MS, tuple, was_killed }
    }

    #[test]
    fn a_collision_is_complete_with_its_kill_and_retry() {
        let mut f = Followups::new(5000 * MS);
        let syn = TimeWaitSegment::example(1, 1000);
        f.hold(syn.clone(), f.verdict(&syn));
        f.hold(TimeWaitSegment::example(1, 1003), Verdict::StaleAck);
        f.killed(&TimeWaitSegment::example(1, 1004));
        assert!(f.followed(&followed(2, 1010, false)).is_none(), "another 4-tuple");
        let c = f.followed(&followed(1, 1011, false)).expect("the collision");
        assert_eq!((c.verdict, c.count, c.peer_rst, c.retry_delay_ms), (Verdict::StaleAck, 2, Some(true), Some(11)));
        assert!(f.followed(&followed(1, 1012, false)).is_none(), "reported once");
    }

    #[test]
    fn without_a_retry_it_waits_out_the_window() {
        let mut f = Followups::new(3000 * MS);
        f.hold(TimeWaitSegment::example(1, 1000), Verdict::StaleAck);
        assert!(f.expired(3999 * MS).is_empty());
        let [c] = &f.expired(4000 * MS)[..] else { panic!("one expired") };
        assert_eq!((c.peer_rst, c.retry_delay_ms), (Some(false), None));
        assert_eq!(f.finish().count(), 0);
    }

    #[test]
    fn an_rst_from_the_timewait_socket_makes_a_stale_ack_rst_in_either_order() {
        let mut rst = Reset::example(Direction::Sent);
        (rst.ktime_ns, rst.tuple) = (1000 * MS, TimeWaitSegment::example(7, 0).tuple);
        (rst.state, rst.reason) = (Some(TcpState::TimeWait), Some(ResetReason::TcpTimewaitSocket));
        let syn = TimeWaitSegment::example(7, 1000);

        let mut rst_first = Followups::new(5000 * MS);
        rst_first.timewait_reset(&rst);
        assert_eq!(rst_first.verdict(&syn), Verdict::Rst);

        let mut syn_first = Followups::new(5000 * MS);
        syn_first.hold(syn.clone(), syn_first.verdict(&syn));
        syn_first.timewait_reset(&rst);
        assert_eq!(syn_first.finish().next().unwrap().verdict, Verdict::Rst);

        // The look-alike: an RST on the 4-tuple long after the SYN.
        let mut later = Followups::new(5000 * MS);
        later.hold(syn.clone(), later.verdict(&syn));
        rst.ktime_ns += 2 * SAME_SEGMENT_NS;
        later.timewait_reset(&rst);
        assert_eq!(later.finish().next().unwrap().verdict, Verdict::StaleAck);
    }
}
