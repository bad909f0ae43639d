//! Reused-port SYNs that meet TIME_WAIT sockets: the verdict, the advice,
//! and the correlation of a collision with what follows it (the peer's RST,
//! the retried SYN); and received resets that were not. Pure: fed decoded
//! events, it returns what to report.

use std::{collections::HashMap, net::SocketAddr};

use super::{
    Direction, Event, FourTuple, Outcome, Reset, TimeWaitSegment,
    idle_timeout::{IdleTimeout, IdleTimeouts},
};
use crate::kernel::{
    names::{DropReason, TcpState, TwStatus},
    strategy::Hook,
};

/// What the kernel did with a SYN that met a TIME_WAIT socket. Declared in
/// the order of their names: the summary lists verdicts sorted by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Recognised as a new connection (higher sequence number or newer
    /// timestamp): harmless reuse.
    Accepted,
    /// Dropped because its timestamp is older than the old connection's.
    PawsDrop,
    /// Answered with an RST (TIME_WAIT socket still half-closed).
    Rst,
    /// Taken for an old duplicate and answered with an ACK for the old
    /// connection; the peer typically resets and retries.
    StaleAck,
    /// The hook could not see what the kernel did.
    Unknown,
}

impl Verdict {
    pub const ALL: [Verdict; 5] =
        [Verdict::Accepted, Verdict::PawsDrop, Verdict::Rst, Verdict::StaleAck, Verdict::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::StaleAck => "stale_ack",
            Verdict::Rst => "rst",
            Verdict::PawsDrop => "paws_drop",
            Verdict::Unknown => "unknown",
        }
    }
}

impl serde::Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The verdict from what the hook saw: the kernel's own return value where
/// the hook has it (fexit, kprobe), else the freed segment's drop reason and
/// the evidence (kfree_skb), else the new connection (inet_sock_set_state).
pub fn verdict(e: &TimeWaitSegment) -> Verdict {
    let paws = e.drop_reason == Some(DropReason::TcpRfc7323TwPaws) || paws_rejects(e);
    match &e.tw_status {
        Some(TwStatus::Syn) => Verdict::Accepted,
        Some(TwStatus::Rst) => Verdict::Rst,
        // A SYN the socket did not take is answered with the old
        // connection's ACK through the out-of-window rate limit
        // (net.ipv4.tcp_invalid_ratelimit): ACK (ACK_OOW since 6.15) when the
        // ACK went out, SUCCESS when the limit held it back and nothing was
        // sent (TcpExt.TCPACKSkippedTimeWait). A PAWS reject takes that path
        // too, whichever of the two it got.
        Some(TwStatus::Ack | TwStatus::AckOow | TwStatus::Success) if paws => Verdict::PawsDrop,
        Some(TwStatus::Ack | TwStatus::AckOow) => Verdict::StaleAck,
        Some(_) => Verdict::Unknown,
        None if e.hook == Hook::InetSockSetState => Verdict::Accepted,
        None if paws => Verdict::PawsDrop,
        None if e.drop_reason.is_some() => Verdict::StaleAck,
        None => Verdict::Unknown,
    }
}

/// tcp_paws_reject() for a SYN: the TIME_WAIT socket saw timestamps and the
/// SYN's is older than the last one at all (tcp_paws_check with a window of
/// 0, as tcp_timewait_state_process asks for).
fn paws_rejects(e: &TimeWaitSegment) -> bool {
    match (e.tsval, e.tw_ts_recent, e.tw_ts_recent_stamp) {
        (Some(tsval), Some(recent), Some(stamp)) => {
            stamp != 0 && recent != 0 && (recent.wrapping_sub(tsval) as i32) > 0
        }
        _ => false,
    }
}

/// One reported collision, with what followed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Collision {
    /// The first SYN.
    pub event: TimeWaitSegment,
    pub verdict: Verdict,
    /// Whether the peer's RST killed the TIME_WAIT socket afterwards.
    pub peer_rst: Option<bool>,
    /// How long after the first SYN the peer's next connection on the
    /// 4-tuple was established.
    pub retry_delay_ms: Option<u64>,
    /// SYNs this record stands for (aggregated harmless reuse, or repeated
    /// SYNs on one TIME_WAIT socket).
    pub count: u64,
    /// Aggregated records: the interval they cover.
    pub interval_ms: Option<u64>,
}

impl Collision {
    /// One sentence a user can act on.
    pub fn advice(&self) -> String {
        let e = &self.event;
        let peer = e.tuple.remote.ip();
        let no_reuse =
            "net.ipv4.tcp_tw_reuse on this server does not help: it only affects connections this host opens";
        match self.verdict {
            Verdict::Accepted => "Harmless: the kernel recognised the new connection (newer sequence number or timestamp); nothing to change unless these reuses approach the peer's port range".to_string(),
            Verdict::PawsDrop => format!(
                "The SYN's timestamp is older than the last one of the old connection (PAWS): several hosts behind one address ({peer}: NAT or a load balancer passing client timestamps through) with unrelated timestamp clocks; give each backend connection its own source address or let the load balancer terminate TCP; {no_reuse}"
            ),
            Verdict::Rst => format!(
                "This host's socket was still waiting for {peer}'s FIN (half-closed TIME_WAIT) and answered the reused SYN with an RST: the peer opened a new connection from the same port before closing the old one; make the peer close connections fully before reusing ports, or widen its port range"
            ),
            Verdict::StaleAck | Verdict::Unknown if e.timestamps == Some(false) => format!(
                "The peer {peer} sends SYNs without TCP timestamps, so this host cannot tell its new connection from the old one in TIME_WAIT: enable net.ipv4.tcp_timestamps=1 on the peer (the load balancer); a wider source-port range on the peer (net.ipv4.ip_local_port_range) makes reuse rarer; {no_reuse}"
            ),
            Verdict::StaleAck | Verdict::Unknown if e.tw_timestamps == Some(false) => format!(
                "The old connection did not use TCP timestamps, so the SYN's timestamp cannot vouch for it: enable net.ipv4.tcp_timestamps=1 on this host and on {peer}; a wider source-port range on the peer makes reuse rarer; {no_reuse}"
            ),
            Verdict::StaleAck | Verdict::Unknown => format!(
                "The peer {peer} reused this port while this host held it in TIME_WAIT, with a sequence number and timestamp the kernel took for the old connection's: widen the peer's source-port range (net.ipv4.ip_local_port_range) or add source addresses; {no_reuse}"
            ),
        }
    }
}

/// Harmless reuse is counted per (namespace, local endpoint, peer address).
type PeerKey = (Option<u32>, SocketAddr, std::net::IpAddr);

/// Discarded resets (health checks, scans, floods) are counted per peer,
/// what the kernel did with them, and the state of the socket they reached.
type DiscardKey = (PeerKey, Outcome, Option<DropReason>, Option<TcpState>);

/// What to write out.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Reset(Reset),
    Collision(Collision),
    Killed(TimeWaitSegment),
    /// Middlebox resets from one peer network: the device's idle timeout.
    IdleTimeout(IdleTimeout),
}

impl Report {
    /// When the (first) event it stands for happened, kernel clock.
    pub fn ktime_ns(&self) -> u64 {
        match self {
            Report::Reset(r) => r.ktime_ns,
            Report::Collision(c) => c.event.ktime_ns,
            Report::Killed(t) => t.ktime_ns,
            Report::IdleTimeout(i) => i.last_ktime_ns,
        }
    }

    pub fn tuple(&self) -> &FourTuple {
        match self {
            Report::Reset(r) => &r.tuple,
            Report::Collision(c) => &c.event.tuple,
            Report::Killed(t) => &t.tuple,
            Report::IdleTimeout(i) => &i.tuple,
        }
    }
}

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

/// How close (ns) two records of the kernel's handling of one segment are
/// (an RST from a TIME_WAIT socket and the SYN it answers; an abort and the
/// RST it sends): both happen while the kernel handles the segment.
const SAME_SEGMENT_NS: u64 = 10_000_000;

#[derive(Default)]
pub struct Correlator {
    windows: Windows,
    pending: HashMap<FourTuple, Collision>,
    /// RSTs this host sent from TIME_WAIT sockets, by 4-tuple: ktime.
    timewait_resets: HashMap<FourTuple, u64>,
    /// Received resets that may be the kernel's own abort (see `on_reset`).
    held_resets: Vec<Reset>,
    /// RSTs this host sent from sockets it had just closed, by 4-tuple: ktime.
    aborts: HashMap<FourTuple, u64>,
    accepted: HashMap<PeerKey, Collision>,
    discarded: HashMap<DiscardKey, Reset>,
    /// Where the aggregation interval of accepted reuse and discarded
    /// resets began.
    interval_start: Option<u64>,
    idle_timeouts: IdleTimeouts,
}

impl Correlator {
    pub fn new(windows: Windows) -> Self {
        Self { windows, ..Default::default() }
    }

    pub fn push(&mut self, event: Event) -> Vec<Report> {
        let reports = self.correlate(event);
        self.note_middlebox_resets(&reports);
        reports
    }

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
                if let Some(pending) = self.pending.get_mut(&t.tuple) {
                    pending.peer_rst = Some(true);
                }
                vec![Report::Killed(t)]
            }
            Event::Followup(f) => match self.pending.remove(&f.tuple) {
                Some(mut collision) => {
                    collision.retry_delay_ms = Some(f.ktime_ns.saturating_sub(collision.event.ktime_ns) / 1_000_000);
                    collision.peer_rst = Some(collision.peer_rst.unwrap_or(false) || f.was_killed);
                    vec![Report::Collision(collision)]
                }
                None => Vec::new(),
            },
        }
    }

    fn on_reset(&mut self, r: Reset) -> Vec<Report> {
        if let Some(outcome) = r.outcome.filter(|&o| o != Outcome::Reset) {
            let interval_start = *self.interval_start.get_or_insert(r.ktime_ns);
            let peer = (r.tuple.netns, r.tuple.local, r.tuple.remote.ip());
            let key = (peer, outcome, r.drop_reason.clone(), r.state.clone());
            let ktime_ns = r.ktime_ns;
            let count = r.count;
            let entry = self.discarded.entry(key).or_insert(Reset { count: 0, ..r });
            entry.count += count;
            entry.interval_ms = Some(ktime_ns.saturating_sub(interval_start) / 1_000_000);
            return Vec::new();
        }
        match r.direction {
            // The kernel's tcp_receive_reset tracepoint sits in tcp_reset(),
            // which also runs when the kernel aborts a connection itself
            // because data arrived after the application shut it down
            // (TCPAbortOnData), right before it sends its own RST on the
            // 4-tuple from the now closed socket. No RST came in then: the
            // received one is held until that RST could have been seen.
            Direction::Received if r.state.as_ref().is_some_and(may_abort_on_data) => {
                if self.aborts.get(&r.tuple).is_some_and(|at| at.abs_diff(r.ktime_ns) < SAME_SEGMENT_NS) {
                    return Vec::new();
                }
                self.held_resets.push(r);
                Vec::new()
            }
            Direction::Received => vec![Report::Reset(r)],
            Direction::Sent => {
                if r.state == Some(TcpState::Close) {
                    let before = self.held_resets.len();
                    self.held_resets
                        .retain(|held| held.tuple != r.tuple || held.ktime_ns.abs_diff(r.ktime_ns) >= SAME_SEGMENT_NS);
                    if self.held_resets.len() == before {
                        self.aborts.insert(r.tuple, r.ktime_ns);
                    }
                }
                if r.state == Some(TcpState::TimeWait) {
                    // The RST may be seen after the SYN's record (it is sent
                    // first, but records from two hooks can arrive in either
                    // order).
                    if let Some(pending) = self.pending.get_mut(&r.tuple)
                        && pending.verdict == Verdict::StaleAck
                        && pending.event.ktime_ns.abs_diff(r.ktime_ns) < SAME_SEGMENT_NS
                    {
                        pending.verdict = Verdict::Rst;
                    }
                    self.timewait_resets.insert(r.tuple, r.ktime_ns);
                }
                vec![Report::Reset(r)]
            }
        }
    }

    fn on_collision(&mut self, t: TimeWaitSegment) -> Vec<Report> {
        let mut verdict = verdict(&t);
        if verdict == Verdict::StaleAck
            && self.timewait_resets.get(&t.tuple).is_some_and(|at| at.abs_diff(t.ktime_ns) < SAME_SEGMENT_NS)
        {
            verdict = Verdict::Rst;
        }
        if verdict == Verdict::Accepted {
            let interval_start = *self.interval_start.get_or_insert(t.ktime_ns);
            let peer = (t.tuple.netns, t.tuple.local, t.tuple.remote.ip());
            let (ktime_ns, count) = (t.ktime_ns, t.count);
            let entry = self.accepted.entry(peer).or_insert_with(|| Collision {
                event: t,
                verdict,
                peer_rst: None,
                retry_delay_ms: None,
                count: 0,
                interval_ms: None,
            });
            entry.count += count;
            entry.interval_ms = Some(ktime_ns.saturating_sub(interval_start) / 1_000_000);
            return Vec::new();
        }
        if let Some(pending) = self.pending.get_mut(&t.tuple) {
            // Another SYN on the same TIME_WAIT socket: the peer retried
            // into it again.
            pending.count += t.count;
            return Vec::new();
        }
        let count = t.count;
        self.pending.insert(
            t.tuple,
            Collision { event: t, verdict, peer_rst: None, retry_delay_ms: None, count, interval_ms: None },
        );
        Vec::new()
    }

    /// Reports what has waited long enough: received resets no abort
    /// followed, collisions whose follow-up did not come within the window,
    /// and harmless reuse once per interval.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Report> {
        let (released, held): (Vec<Reset>, Vec<Reset>) = std::mem::take(&mut self.held_resets)
            .into_iter()
            .partition(|r| now_ns.saturating_sub(r.ktime_ns) >= SAME_SEGMENT_NS);
        self.held_resets = held;
        let mut reports: Vec<Report> = released.into_iter().map(Report::Reset).collect();
        self.note_middlebox_resets(&reports);
        let followup = self.windows.followup_ns;
        let expired: Vec<FourTuple> = self
            .pending
            .iter()
            .filter(|(_, c)| now_ns.saturating_sub(c.event.ktime_ns) >= followup)
            .map(|(k, _)| *k)
            .collect();
        reports.extend(expired.into_iter().filter_map(|k| self.pending.remove(&k)).map(|mut c| {
            // Every strategy sees kills: none came within the window.
            c.peer_rst.get_or_insert(false);
            Report::Collision(c)
        }));
        self.timewait_resets.retain(|_, at| now_ns.saturating_sub(*at) < SAME_SEGMENT_NS * 100);
        self.aborts.retain(|_, at| now_ns.saturating_sub(*at) < SAME_SEGMENT_NS * 100);
        if self.interval_start.is_some_and(|start| now_ns.saturating_sub(start) >= self.windows.aggregate_ns) {
            reports.extend(self.flush_aggregated(now_ns));
        }
        let idle = self.idle_timeouts.take(now_ns, self.windows.aggregate_ns, false);
        reports.extend(idle.into_iter().map(Report::IdleTimeout));
        reports
    }

    /// Everything still held, at the end of a run.
    pub fn finish(&mut self, now_ns: u64) -> Vec<Report> {
        let mut reports: Vec<Report> = self.held_resets.drain(..).map(Report::Reset).collect();
        self.note_middlebox_resets(&reports);
        reports.extend(
            self.idle_timeouts.take(now_ns, self.windows.aggregate_ns, true).into_iter().map(Report::IdleTimeout),
        );
        let mut collisions: Vec<Report> = self.pending.drain().map(|(_, c)| Report::Collision(c)).collect();
        collisions.extend(self.flush_aggregated(now_ns));
        collisions.sort_by_key(Report::ktime_ns);
        reports.extend(collisions);
        reports
    }

    /// Aggregated records, once per interval: accepted reuse and discarded
    /// resets, in the order of their first event.
    fn flush_aggregated(&mut self, now_ns: u64) -> Vec<Report> {
        let start = self.interval_start.take().unwrap_or(now_ns);
        let interval_ms = Some(now_ns.saturating_sub(start) / 1_000_000);
        let mut reports: Vec<Report> = self
            .accepted
            .drain()
            .map(|(_, c)| Report::Collision(Collision { interval_ms, ..c }))
            .chain(self.discarded.drain().map(|(_, r)| Report::Reset(Reset { interval_ms, ..r })))
            .collect();
        reports.sort_by_key(Report::ktime_ns);
        reports
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
pub(crate) mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::{events::Followup, kernel::names::ResetReason};

    const MS: u64 = 1_000_000;

    /// The seed case's SYN (10.77.0.1 -> 10.77.0.2:8090), seen by kfree_skb.
    fn tuple(remote_port: u16) -> FourTuple {
        FourTuple {
            local: "10.77.0.2:8090".parse().unwrap(),
            remote: SocketAddr::new("10.77.0.1".parse().unwrap(), remote_port),
            netns: Some(1),
        }
    }

    pub(crate) fn tw(remote_port: u16, at_ms: u64) -> TimeWaitSegment {
        TimeWaitSegment {
            time: SystemTime::UNIX_EPOCH,
            ktime_ns: at_ms * MS,
            tuple: tuple(remote_port),
            hook: Hook::KfreeSkb,
            seq: 2417517023,
            timestamps: Some(false),
            tsval: None,
            tw_rcv_nxt: Some(2418336172),
            tw_ts_recent: None,
            tw_ts_recent_stamp: None,
            tw_timestamps: Some(false),
            tw_age_ms: Some(50),
            tw_status: None,
            drop_reason: Some(DropReason::NotSpecified),
            count: 1,
        }
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
    fn verdicts_from_the_kernel_status() {
        let mut e = tw(1, 0);
        e.drop_reason = None;
        for (status, verdict) in [
            ("SYN", Verdict::Accepted),
            ("RST", Verdict::Rst),
            ("ACK", Verdict::StaleAck),
            ("ACK_OOW", Verdict::StaleAck),
            ("SUCCESS", Verdict::Unknown),
            ("TCP_TW_SOMETHING_NEW", Verdict::Unknown),
        ] {
            e.tw_status = Some(TwStatus::from_name(status));
            assert_eq!(super::verdict(&e), verdict, "{status}");
        }
    }

    #[test]
    fn paws_from_evidence_or_drop_reason() {
        let mut e = tw(1, 0);
        e.tsval = Some(1000);
        e.tw_ts_recent = Some(5000);
        e.tw_ts_recent_stamp = Some(77);
        assert_eq!(super::verdict(&e), Verdict::PawsDrop, "older TSval");
        e.tw_status = Some(TwStatus::Ack);
        assert_eq!(super::verdict(&e), Verdict::PawsDrop);
        e.tsval = Some(4999);
        assert_eq!(super::verdict(&e), Verdict::PawsDrop, "older by 1 is rejected");
        e.tsval = Some(5000);
        assert_eq!(super::verdict(&e), Verdict::StaleAck, "the same TSval is no PAWS reject");
        e.tsval = Some(5001);
        assert_eq!(super::verdict(&e), Verdict::StaleAck, "newer TSval is no PAWS reject");
        e.tw_status = None;
        e.drop_reason = Some(DropReason::TcpRfc7323TwPaws);
        assert_eq!(super::verdict(&e), Verdict::PawsDrop);
        // TSval wrap-around: 10 is "after" u32::MAX - 5.
        e.drop_reason = Some(DropReason::NotSpecified);
        e.tsval = Some(10);
        e.tw_ts_recent = Some(u32::MAX - 5);
        assert_eq!(super::verdict(&e), Verdict::StaleAck);
    }

    /// A PAWS reject whose ACK the out-of-window rate limit held back: the
    /// kernel returns TCP_TW_SUCCESS, with the drop reason on 6.16+ and
    /// only the timestamps before.
    #[test]
    fn a_rate_limited_paws_reject_is_paws_drop() {
        let mut e = tw(1, 0);
        e.tw_status = Some(TwStatus::Success);
        e.drop_reason = Some(DropReason::TcpRfc7323TwPaws);
        assert_eq!(super::verdict(&e), Verdict::PawsDrop, "the drop reason (6.16+)");
        e.drop_reason = None;
        (e.tsval, e.tw_ts_recent, e.tw_ts_recent_stamp) = (Some(1000), Some(5000), Some(77));
        assert_eq!(super::verdict(&e), Verdict::PawsDrop, "older TSval (before 6.16)");
        e.tsval = Some(5001);
        assert_eq!(super::verdict(&e), Verdict::Unknown, "no evidence of PAWS: what held the ACK back is not known");
        e.tw_status = Some(TwStatus::AckOow);
        assert_eq!(super::verdict(&e), Verdict::StaleAck);
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
