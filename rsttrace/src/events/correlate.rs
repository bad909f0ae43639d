//! The correlation of decoded events into what is reported: each event
//! goes to the state machine it belongs to, which says when it is complete.
//! Pure: fed decoded events, it returns what to report.

use std::net::SocketAddr;

use super::{
    Direction, Event, Kill, Outcome, Report, Reset, TimeWaitSegment,
    abort::Aborts,
    aggregate::{Aggregator, Interval},
    collision::{Collision, Verdict},
    followup::Followups,
    idle_timeout::IdleTimeouts,
};
use crate::kernel::names::{DropReason, TcpState};

/// Harmless reuse is counted per (namespace, local endpoint, peer address).
type PeerKey = (Option<u32>, SocketAddr, std::net::IpAddr);

/// Discarded resets (health checks, scans, floods) are counted per peer,
/// what the kernel did with them, and the state of the socket they reached.
type DiscardKey = (PeerKey, Outcome, Option<DropReason>, Option<TcpState>);

/// Settings of the correlation.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    /// How long a harmful collision waits for the peer's RST and retry.
    pub followup_ns: u64,
    /// Harmless reuse is summed over this interval.
    pub aggregate_ns: u64,
}

impl Default for Windows {
    fn default() -> Self {
        // Load balancers retry a failed SYN after 1-3 s.
        Self { followup_ns: 5_000_000_000, aggregate_ns: 10_000_000_000 }
    }
}

pub struct Correlator {
    windows: Windows,
    followups: Followups,
    aborts: Aborts,
    accepted: Aggregator<PeerKey, Collision>,
    discarded: Aggregator<DiscardKey, Reset>,
    /// The one interval of both aggregators.
    interval: Interval,
    idle_timeouts: IdleTimeouts,
}

impl Default for Correlator {
    fn default() -> Self {
        Self::new(Windows::default())
    }
}

impl Correlator {
    pub fn new(windows: Windows) -> Self {
        Self {
            windows,
            followups: Followups::new(windows.followup_ns),
            aborts: Aborts::default(),
            accepted: Aggregator::default(),
            discarded: Aggregator::default(),
            interval: Interval::default(),
            idle_timeouts: IdleTimeouts::default(),
        }
    }

    pub fn push(&mut self, event: Event) -> Vec<Report> {
        let reports = self.correlate(event);
        self.note_middlebox_resets(&reports);
        reports
    }

    /// Every reset reported, whenever that is, goes by the idle-timeout
    /// inference.
    fn note_middlebox_resets(&mut self, reports: &[Report]) {
        for report in reports {
            if let Report::Reset(r) = report {
                self.idle_timeouts.push(r);
            }
        }
    }

    fn correlate(&mut self, event: Event) -> Vec<Report> {
        match event {
            Event::Reset(r) => self.on_reset(r),
            Event::Collision(t) => self.on_collision(t),
            Event::Killed(t) => {
                self.followups.killed(&t);
                vec![Report::Killed(Kill(t))]
            }
            Event::Followup(f) => self.followups.followed(&f).map(Report::Collision).into_iter().collect(),
        }
    }

    fn on_reset(&mut self, r: Reset) -> Vec<Report> {
        if let Some(outcome) = r.outcome.filter(|&o| o != Outcome::Reset) {
            self.interval.note(r.ktime_ns);
            let peer = (r.tuple.netns, r.tuple.local, r.tuple.remote.ip());
            let key = (peer, outcome, r.drop_reason.clone(), r.state.clone());
            self.discarded.add(key, r);
            return Vec::new();
        }
        match r.direction {
            Direction::Received => self.aborts.received(r).map(Report::Reset).into_iter().collect(),
            Direction::Sent => {
                self.aborts.sent(&r);
                if r.state == Some(TcpState::TimeWait) {
                    self.followups.timewait_reset(&r);
                }
                vec![Report::Reset(r)]
            }
        }
    }

    fn on_collision(&mut self, t: TimeWaitSegment) -> Vec<Report> {
        let verdict = self.followups.verdict(&t);
        if verdict == Verdict::Accepted {
            self.interval.note(t.ktime_ns);
            let peer = (t.tuple.netns, t.tuple.local, t.tuple.remote.ip());
            let count = t.count;
            self.accepted.add(
                peer,
                Collision { event: t, verdict, peer_rst: None, retry_delay_ms: None, count, interval_ms: None },
            );
            return Vec::new();
        }
        self.followups.hold(t, verdict);
        Vec::new()
    }

    /// Reports what has waited long enough: received resets no abort
    /// followed, collisions whose follow-up did not come within the window,
    /// and aggregated records once per interval.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Report> {
        let mut reports: Vec<Report> = self.aborts.released(now_ns).into_iter().map(Report::Reset).collect();
        self.note_middlebox_resets(&reports);
        reports.extend(self.followups.expired(now_ns).into_iter().map(Report::Collision));
        if self.interval.is_over(now_ns, self.windows.aggregate_ns) {
            reports.extend(self.flush_aggregated(now_ns));
        }
        let idle = self.idle_timeouts.take(now_ns, self.windows.aggregate_ns, false);
        reports.extend(idle.into_iter().map(Report::IdleTimeout));
        reports
    }

    /// Everything still held, at the end of a run.
    pub fn finish(&mut self, now_ns: u64) -> Vec<Report> {
        let mut reports: Vec<Report> = self.aborts.finish().into_iter().map(Report::Reset).collect();
        self.note_middlebox_resets(&reports);
        reports.extend(
            self.idle_timeouts.take(now_ns, self.windows.aggregate_ns, true).into_iter().map(Report::IdleTimeout),
        );
        let mut collisions: Vec<Report> = self.followups.finish().map(Report::Collision).collect();
        collisions.extend(self.flush_aggregated(now_ns));
        collisions.sort_by_key(Report::ktime_ns);
        reports.extend(collisions);
        reports
    }

    /// Aggregated records, once per interval: accepted reuse and discarded
    /// resets, in the order of their first event.
    fn flush_aggregated(&mut self, now_ns: u64) -> Vec<Report> {
        let interval_ms = self.interval.close(now_ns);
        let mut reports: Vec<Report> = self
            .accepted
            .drain(interval_ms)
            .map(Report::Collision)
            .chain(self.discarded.drain(interval_ms).map(Report::Reset))
            .collect();
        reports.sort_by_key(Report::ktime_ns);
        reports
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::{Followup, FourTuple},
        kernel::{names::ResetReason, strategy::Hook},
    };

    const MS: u64 = 1_000_000;

    fn tuple(remote_port: u16) -> FourTuple {
        TimeWaitSegment::example(remote_port, 0).tuple
    }

    fn tw(remote_port: u16, at_ms: u64) -> TimeWaitSegment {
        TimeWaitSegment::example(remote_port, at_ms)
    }

    fn collision(remote_port: u16, at_ms: u64) -> Event {
        Event::Collision(tw(remote_port, at_ms))
    }

    fn killed(remote_port: u16, at_ms: u64) -> Event {
        Event::Killed(tw(remote_port, at_ms))
    }

    fn followup(remote_port: u16, at_ms: u64, was_killed: bool) -> Event {
        Event::Followup(Followup { ktime_ns: at_ms * MS, tuple: tuple(remote_port), was_killed })
    }

    fn collisions(reports: &[Report]) -> Vec<&Collision> {
        reports.iter().filter_map(|r| if let Report::Collision(c) = r { Some(c) } else { None }).collect()
    }

    #[test]
    fn seed_case_is_one_finding_with_rst_and_retry() {
        let mut c = Correlator::new(Windows::default());
        assert!(c.push(collision(40021, 1000)).is_empty(), "held for the follow-up");
        let killed = c.push(killed(40021, 1001));
        assert!(matches!(killed.as_slice(), [Report::Killed(_)]));
        let reports = c.push(followup(40021, 1011, true));
        let found = collisions(&reports);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].verdict, Verdict::StaleAck);
        assert_eq!(found[0].peer_rst, Some(true));
        assert_eq!(found[0].retry_delay_ms, Some(11));
        assert!(found[0].advice().contains("net.ipv4.tcp_timestamps=1 on the peer"), "{}", found[0].advice());
        assert!(found[0].advice().contains("tcp_tw_reuse on this server does not help"));
        assert!(c.finish(2000 * MS).is_empty(), "nothing left over");
    }

    #[test]
    fn a_retry_that_never_comes_is_reported_after_the_window() {
        let mut c = Correlator::new(Windows { followup_ns: 3000 * MS, aggregate_ns: 10_000 * MS });
        c.push(collision(5, 1000));
        assert!(c.tick(3999 * MS).is_empty(), "still inside the window");
        let reports = c.tick(4000 * MS);
        let found = collisions(&reports);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].retry_delay_ms, None);
        assert_eq!(found[0].peer_rst, Some(false));
        assert!(c.tick(9000 * MS).is_empty(), "reported once");
        // A follow-up after the report is not reported again.
        assert!(c.push(followup(5, 9000, false)).is_empty());
    }

    #[test]
    fn interleaved_collisions_on_many_tuples_stay_apart() {
        let mut c = Correlator::new(Windows::default());
        for port in 0..100u16 {
            c.push(collision(30000 + port, 1000 + port as u64));
        }
        // Kills for the even ports, retries for every third.
        for port in (0..100u16).filter(|p| p % 2 == 0) {
            c.push(killed(30000 + port, 1200));
        }
        let mut found = Vec::new();
        for port in (0..100u16).filter(|p| p % 3 == 0) {
            found.extend(c.push(followup(30000 + port, 1300 + port as u64, false)));
        }
        let retried = collisions(&found);
        assert_eq!(retried.len(), 34);
        for r in &retried {
            let port = r.event.tuple.remote.port() - 30000;
            assert_eq!(r.retry_delay_ms, Some(300), "port {port}");
            assert_eq!(r.peer_rst, Some(port % 2 == 0), "port {port}");
        }
        let rest = c.tick(10_000 * MS);
        let rest = collisions(&rest);
        assert_eq!(rest.len(), 66);
        assert!(rest.iter().all(|r| r.retry_delay_ms.is_none()));
        assert_eq!(rest.iter().filter(|r| r.peer_rst == Some(true)).count(), 33);
    }

    #[test]
    fn harmless_reuse_is_aggregated_per_peer_and_interval() {
        let mut c = Correlator::new(Windows { followup_ns: 5000 * MS, aggregate_ns: 10_000 * MS });
        for i in 0..1000u64 {
            let mut e = tw(20000 + (i % 500) as u16, 100 + i);
            e.hook = Hook::InetSockSetState;
            e.drop_reason = None;
            assert!(c.push(Event::Collision(e)).is_empty(), "not reported one by one");
        }
        assert!(c.tick(5_000 * MS).is_empty());
        let reports = c.tick(10_100 * MS);
        let found = collisions(&reports);
        assert_eq!(found.len(), 1, "one record per peer");
        assert_eq!(found[0].verdict, Verdict::Accepted);
        assert_eq!(found[0].count, 1000);
        assert_eq!(found[0].interval_ms, Some(10_000));
    }

    #[test]
    fn an_rst_from_the_timewait_socket_makes_the_verdict_rst() {
        let mut reset = reset(Direction::Sent, 7, 1000);
        reset.state = Some(TcpState::TimeWait);
        reset.reason = Some(ResetReason::TcpTimewaitSocket);
        // Reset first, then the freed SYN.
        let mut c = Correlator::new(Windows::default());
        assert_eq!(c.push(Event::Reset(reset.clone())).len(), 1, "the reset itself is reported");
        c.push(collision(7, 1000));
        assert_eq!(collisions(&c.finish(2000 * MS))[0].verdict, Verdict::Rst);
        // The other order.
        let mut c = Correlator::new(Windows::default());
        c.push(collision(7, 1000));
        c.push(Event::Reset(reset));
        let reports = c.finish(2000 * MS);
        let found = collisions(&reports);
        assert_eq!(found[0].verdict, Verdict::Rst);
        assert!(found[0].advice().contains("half-closed"));
    }

    #[test]
    fn discarded_resets_are_counted_per_peer_and_outcome_once_per_interval() {
        let mut c = Correlator::new(Windows::default());
        let discarded = |remote_port, at_ms, outcome, reason: &str| {
            let mut r = reset(Direction::Received, remote_port, at_ms);
            (r.outcome, r.drop_reason) = (Some(outcome), Some(DropReason::from_name(reason)));
            Event::Reset(r)
        };
        for port in 0..3 {
            assert!(c.push(discarded(41000 + port, 1000 + u64::from(port), Outcome::NoSocket, "NO_SOCKET")).is_empty());
        }
        assert!(c.push(discarded(41100, 1500, Outcome::HalfOpen, "NOT_SPECIFIED")).is_empty());
        // A reset that ended a connection is not held.
        assert_eq!(c.push(Event::Reset(reset(Direction::Received, 40000, 1600))).len(), 1);
        assert!(c.tick(10_999 * MS).is_empty(), "the interval is not over");
        let reports = c.tick(11_000 * MS);
        let resets: Vec<&Reset> = reports
            .iter()
            .filter_map(|r| match r {
                Report::Reset(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(resets.len(), 2, "{reports:?}");
        assert_eq!(
            (resets[0].outcome, resets[0].count, resets[0].interval_ms),
            (Some(Outcome::NoSocket), 3, Some(10_000))
        );
        assert_eq!(resets[0].tuple.remote.port(), 41000, "the first one's keys");
        assert_eq!((resets[1].outcome, resets[1].count), (Some(Outcome::HalfOpen), 1));
        assert!(c.finish(12_000 * MS).is_empty());
    }

    #[test]
    fn repeated_syns_on_one_timewait_socket_are_one_finding() {
        let mut c = Correlator::new(Windows::default());
        c.push(collision(9, 1000));
        c.push(collision(9, 2000));
        c.push(collision(9, 4000));
        let reports = c.finish(5000 * MS);
        let found = collisions(&reports);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].count, 3);
    }

    fn reset(direction: Direction, remote_port: u16, at_ms: u64) -> Reset {
        Reset { ktime_ns: at_ms * MS, tuple: tuple(remote_port), ..Reset::example(direction) }
    }

    fn resets(reports: &[Report]) -> Vec<&Reset> {
        reports.iter().filter_map(|r| if let Report::Reset(r) = r { Some(r) } else { None }).collect()
    }

    #[test]
    fn an_abort_on_data_is_no_received_reset() {
        // tcp_reset() in FIN_WAIT2, then this host's RST from the closed
        // socket: the kernel aborted, nothing came in.
        let mut c = Correlator::new(Windows::default());
        let mut received = reset(Direction::Received, 3, 1000);
        received.state = Some(TcpState::FinWait2);
        assert!(c.push(Event::Reset(received.clone())).is_empty(), "held");
        let mut sent = reset(Direction::Sent, 3, 1000);
        sent.state = Some(TcpState::Close);
        sent.reason = Some(ResetReason::TcpAbortOnData);
        let reports = c.push(Event::Reset(sent.clone()));
        assert_eq!(resets(&reports), [&sent]);
        assert!(c.tick(2000 * MS).is_empty());
        assert!(c.finish(3000 * MS).is_empty());

        // A real RST in FIN_WAIT2 is reported once nothing followed it.
        let mut c = Correlator::new(Windows::default());
        assert!(c.push(Event::Reset(received.clone())).is_empty());
        assert!(c.tick(1005 * MS).is_empty(), "may still be an abort");
        assert_eq!(resets(&c.tick(1010 * MS)), [&received]);
        // And one in ESTABLISHED at once.
        received.state = Some(TcpState::Established);
        assert_eq!(resets(&c.push(Event::Reset(received.clone()))), [&received]);
    }

    #[test]
    fn a_reset_sent_later_on_the_tuple_is_no_abort() {
        let mut c = Correlator::new(Windows::default());
        let mut received = reset(Direction::Received, 3, 1000);
        received.state = Some(TcpState::FinWait1);
        c.push(Event::Reset(received.clone()));
        // The peer's next segment meets no socket: NO_SOCKET, no state.
        let mut sent = reset(Direction::Sent, 3, 1002);
        sent.reason = Some(ResetReason::NoSocket);
        c.push(Event::Reset(sent));
        assert_eq!(resets(&c.finish(2000 * MS)), [&received]);
    }
}
