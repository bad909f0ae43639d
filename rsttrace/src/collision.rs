//! Reused-port SYNs that meet TIME_WAIT sockets: the verdict, the advice,
//! and the correlation of a collision with what follows it (the peer's RST,
//! the retried SYN). Pure: fed decoded events, it returns what to report.

use std::{collections::HashMap, net::SocketAddr};

use crate::event::{Event, EventKind, ResetEvent, TimeWaitEvent, TimeWaitKind};

/// What the kernel did with a SYN that met a TIME_WAIT socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Recognised as a new connection (higher sequence number or newer
    /// timestamp): harmless reuse.
    Accepted,
    /// Taken for an old duplicate and answered with an ACK for the old
    /// connection; the peer typically resets and retries.
    StaleAck,
    /// Answered with an RST (TIME_WAIT socket still half-closed).
    Rst,
    /// Dropped because its timestamp is older than the old connection's.
    PawsDrop,
    /// The hook could not see what the kernel did.
    Unknown,
}

impl Verdict {
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

/// The verdict from what the hook saw: the kernel's own return value where
/// the hook has it (fexit, kprobe), else the freed segment's drop reason and
/// the evidence (kfree_skb), else the new connection (inet_sock_set_state).
pub fn verdict(e: &TimeWaitEvent) -> Verdict {
    match e.tw_status.as_deref() {
        Some("SYN") => Verdict::Accepted,
        Some("RST") => Verdict::Rst,
        Some("ACK" | "ACK_OOW") if paws_rejects(e) || e.drop_reason.as_deref() == Some(PAWS) => Verdict::PawsDrop,
        Some("ACK" | "ACK_OOW") => Verdict::StaleAck,
        Some(_) => Verdict::Unknown,
        None if e.hook.ends_with("inet_sock_set_state") => Verdict::Accepted,
        None if e.drop_reason.as_deref() == Some(PAWS) || paws_rejects(e) => Verdict::PawsDrop,
        None if e.drop_reason.is_some() => Verdict::StaleAck,
        None => Verdict::Unknown,
    }
}

/// The drop reason of a SYN rejected by PAWS in TIME_WAIT (6.16+).
const PAWS: &str = "TCP_RFC7323_TW_PAWS";

/// tcp_paws_reject() for a SYN: the TIME_WAIT socket saw timestamps and the
/// SYN's is older than the last one by more than the PAWS window (1).
fn paws_rejects(e: &TimeWaitEvent) -> bool {
    match (e.segment_tsval, e.tw_ts_recent, e.tw_ts_recent_stamp) {
        (Some(tsval), Some(recent), Some(stamp)) => {
            stamp != 0 && recent != 0 && (recent.wrapping_sub(tsval) as i32) > 1
        }
        _ => false,
    }
}

/// One reported collision, with what followed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Collision {
    /// The first SYN's event.
    pub event: TimeWaitEvent,
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
        let peer = e.remote.ip();
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
            Verdict::StaleAck | Verdict::Unknown if e.segment_timestamps == Some(false) => format!(
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

/// (network namespace, local, remote): one TIME_WAIT 4-tuple.
type TupleKey = (Option<u32>, SocketAddr, SocketAddr);
/// Harmless reuse is counted per (namespace, local endpoint, peer address).
type PeerKey = (Option<u32>, SocketAddr, std::net::IpAddr);

/// What to write out.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    /// An event reported as it is (resets).
    Event(Event),
    Collision(Collision),
    Killed(TimeWaitEvent),
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

/// How close (ns) an RST from a TIME_WAIT socket and the SYN it answers are:
/// both happen while the kernel handles the one segment.
const SAME_SEGMENT_NS: u64 = 10_000_000;

#[derive(Default)]
pub struct Correlator {
    windows: Windows,
    /// Collisions seen per verdict, before aggregation.
    verdicts: std::collections::BTreeMap<&'static str, u64>,
    pending: HashMap<TupleKey, Collision>,
    /// RSTs this host sent from TIME_WAIT sockets, by 4-tuple: ktime.
    timewait_resets: HashMap<TupleKey, u64>,
    accepted: HashMap<PeerKey, Collision>,
    interval_start: Option<u64>,
}

impl Correlator {
    pub fn new(windows: Windows) -> Self {
        Self { windows, ..Default::default() }
    }

    pub fn push(&mut self, event: Event) -> Vec<Report> {
        match event {
            Event::Reset(r) => {
                self.on_reset(&r);
                vec![Report::Event(Event::Reset(r))]
            }
            Event::TimeWait(t) => match t.kind {
                TimeWaitKind::Collision => self.on_collision(t),
                TimeWaitKind::Killed => {
                    if let Some(pending) = self.pending.get_mut(&key(&t)) {
                        pending.peer_rst = Some(true);
                    }
                    vec![Report::Killed(t)]
                }
                TimeWaitKind::Followup => match self.pending.remove(&key(&t)) {
                    Some(mut collision) => {
                        collision.retry_delay_ms =
                            Some(t.ktime_ns.saturating_sub(collision.event.ktime_ns) / 1_000_000);
                        collision.peer_rst = Some(collision.peer_rst.unwrap_or(false) || t.was_killed);
                        vec![Report::Collision(collision)]
                    }
                    None => Vec::new(),
                },
            },
        }
    }

    fn on_reset(&mut self, r: &ResetEvent) {
        if r.kind != EventKind::RstSent || r.state.as_deref() != Some("TIME_WAIT") {
            return;
        }
        let key = (r.netns, r.local, r.remote);
        // The RST may be seen after the SYN's record (it is sent first, but
        // records from two hooks can arrive in either order).
        if let Some(pending) = self.pending.get_mut(&key)
            && pending.verdict == Verdict::StaleAck
            && pending.event.ktime_ns.abs_diff(r.ktime_ns) < SAME_SEGMENT_NS
        {
            pending.verdict = Verdict::Rst;
        }
        self.timewait_resets.insert(key, r.ktime_ns);
    }

    /// Collisions seen per verdict so far.
    pub fn verdict_counts(&self) -> &std::collections::BTreeMap<&'static str, u64> {
        &self.verdicts
    }

    fn on_collision(&mut self, t: TimeWaitEvent) -> Vec<Report> {
        let mut verdict = verdict(&t);
        let key = key(&t);
        if verdict == Verdict::StaleAck
            && self.timewait_resets.get(&key).is_some_and(|at| at.abs_diff(t.ktime_ns) < SAME_SEGMENT_NS)
        {
            verdict = Verdict::Rst;
        }
        *self.verdicts.entry(verdict.as_str()).or_default() += 1;
        if verdict == Verdict::Accepted {
            let interval_start = *self.interval_start.get_or_insert(t.ktime_ns);
            let peer = (t.netns, t.local, t.remote.ip());
            let entry = self.accepted.entry(peer).or_insert_with(|| Collision {
                event: t.clone(),
                verdict,
                peer_rst: None,
                retry_delay_ms: None,
                count: 0,
                interval_ms: None,
            });
            entry.count += 1;
            entry.interval_ms = Some(t.ktime_ns.saturating_sub(interval_start) / 1_000_000);
            return Vec::new();
        }
        if let Some(pending) = self.pending.get_mut(&key) {
            // Another SYN on the same TIME_WAIT socket: the peer retried
            // into it again.
            pending.count += 1;
            return Vec::new();
        }
        self.pending.insert(
            key,
            Collision { event: t, verdict, peer_rst: None, retry_delay_ms: None, count: 1, interval_ms: None },
        );
        Vec::new()
    }

    /// Reports what has waited long enough: collisions whose follow-up did
    /// not come within the window, and harmless reuse once per interval.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Report> {
        let followup = self.windows.followup_ns;
        let expired: Vec<TupleKey> = self
            .pending
            .iter()
            .filter(|(_, c)| now_ns.saturating_sub(c.event.ktime_ns) >= followup)
            .map(|(k, _)| *k)
            .collect();
        let mut reports: Vec<Report> = expired
            .into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .map(|mut c| {
                // Every strategy sees kills: none came within the window.
                c.peer_rst.get_or_insert(false);
                Report::Collision(c)
            })
            .collect();
        self.timewait_resets.retain(|_, at| now_ns.saturating_sub(*at) < SAME_SEGMENT_NS * 100);
        if self.interval_start.is_some_and(|start| now_ns.saturating_sub(start) >= self.windows.aggregate_ns) {
            reports.extend(self.flush_accepted(now_ns));
        }
        reports
    }

    /// Everything still held, at the end of a run.
    pub fn finish(&mut self, now_ns: u64) -> Vec<Report> {
        let mut reports: Vec<Report> = self.pending.drain().map(|(_, c)| Report::Collision(c)).collect();
        reports.extend(self.flush_accepted(now_ns));
        reports.sort_by_key(|r| match r {
            Report::Collision(c) => c.event.ktime_ns,
            _ => 0,
        });
        reports
    }

    fn flush_accepted(&mut self, now_ns: u64) -> Vec<Report> {
        let start = self.interval_start.take().unwrap_or(now_ns);
        let interval_ms = now_ns.saturating_sub(start) / 1_000_000;
        let mut reports: Vec<Collision> = self.accepted.drain().map(|(_, c)| c).collect();
        reports.sort_by_key(|c| c.event.ktime_ns);
        reports
            .into_iter()
            .map(|mut c| {
                c.interval_ms = Some(interval_ms);
                Report::Collision(c)
            })
            .collect()
    }
}

fn key(t: &TimeWaitEvent) -> TupleKey {
    (t.netns, t.local, t.remote)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::SystemTime;

    use super::*;

    const MS: u64 = 1_000_000;

    /// The seed case's SYN (10.77.0.1 -> 10.77.0.2:8090), seen by kfree_skb.
    pub(crate) fn tw(kind: TimeWaitKind, remote_port: u16, at_ms: u64) -> TimeWaitEvent {
        TimeWaitEvent {
            kind,
            time: SystemTime::UNIX_EPOCH,
            ktime_ns: at_ms * MS,
            local: "10.77.0.2:8090".parse().unwrap(),
            remote: SocketAddr::new("10.77.0.1".parse().unwrap(), remote_port),
            netns: Some(1),
            source: "tracepoint",
            hook: "raw_tracepoint/kfree_skb",
            segment_seq: Some(2417517023),
            segment_timestamps: Some(false),
            segment_tsval: None,
            tw_rcv_nxt: Some(2418336172),
            tw_ts_recent: None,
            tw_ts_recent_stamp: None,
            tw_timestamps: Some(false),
            tw_age_ms: Some(50),
            tw_status: None,
            drop_reason: Some("NOT_SPECIFIED".into()),
            since_collision_ms: None,
            was_killed: false,
        }
    }

    fn collisions(reports: &[Report]) -> Vec<&Collision> {
        reports.iter().filter_map(|r| if let Report::Collision(c) = r { Some(c) } else { None }).collect()
    }

    #[test]
    fn verdicts_from_the_kernel_status() {
        let mut e = tw(TimeWaitKind::Collision, 1, 0);
        e.drop_reason = None;
        for (status, verdict) in [
            ("SYN", Verdict::Accepted),
            ("RST", Verdict::Rst),
            ("ACK", Verdict::StaleAck),
            ("ACK_OOW", Verdict::StaleAck),
            ("SUCCESS", Verdict::Unknown),
        ] {
            e.tw_status = Some(status.into());
            assert_eq!(super::verdict(&e), verdict, "{status}");
        }
    }

    #[test]
    fn paws_from_evidence_or_drop_reason() {
        let mut e = tw(TimeWaitKind::Collision, 1, 0);
        e.segment_tsval = Some(1000);
        e.tw_ts_recent = Some(5000);
        e.tw_ts_recent_stamp = Some(77);
        assert_eq!(super::verdict(&e), Verdict::PawsDrop, "older TSval");
        e.tw_status = Some("ACK".into());
        assert_eq!(super::verdict(&e), Verdict::PawsDrop);
        e.segment_tsval = Some(5001);
        assert_eq!(super::verdict(&e), Verdict::StaleAck, "newer TSval is no PAWS reject");
        e.tw_status = None;
        e.drop_reason = Some("TCP_RFC7323_TW_PAWS".into());
        assert_eq!(super::verdict(&e), Verdict::PawsDrop);
        // TSval wrap-around: 10 is "after" u32::MAX - 5.
        e.drop_reason = Some("NOT_SPECIFIED".into());
        e.segment_tsval = Some(10);
        e.tw_ts_recent = Some(u32::MAX - 5);
        assert_eq!(super::verdict(&e), Verdict::StaleAck);
    }

    #[test]
    fn seed_case_is_one_finding_with_rst_and_retry() {
        let mut c = Correlator::new(Windows::default());
        assert!(c.push(Event::TimeWait(tw(TimeWaitKind::Collision, 40021, 1000))).is_empty(), "held for the follow-up");
        let killed = c.push(Event::TimeWait(tw(TimeWaitKind::Killed, 40021, 1001)));
        assert!(matches!(killed.as_slice(), [Report::Killed(_)]));
        let mut retry = tw(TimeWaitKind::Followup, 40021, 1011);
        retry.was_killed = true;
        let reports = c.push(Event::TimeWait(retry));
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
        c.push(Event::TimeWait(tw(TimeWaitKind::Collision, 5, 1000)));
        assert!(c.tick(3999 * MS).is_empty(), "still inside the window");
        let reports = c.tick(4000 * MS);
        let found = collisions(&reports);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].retry_delay_ms, None);
        assert_eq!(found[0].peer_rst, Some(false));
        assert!(c.tick(9000 * MS).is_empty(), "reported once");
        // A follow-up after the report is not reported again.
        assert!(c.push(Event::TimeWait(tw(TimeWaitKind::Followup, 5, 9000))).is_empty());
    }

    #[test]
    fn interleaved_collisions_on_many_tuples_stay_apart() {
        let mut c = Correlator::new(Windows::default());
        for port in 0..100u16 {
            c.push(Event::TimeWait(tw(TimeWaitKind::Collision, 30000 + port, 1000 + port as u64)));
        }
        // Kills for the even ports, retries for every third.
        for port in (0..100u16).filter(|p| p % 2 == 0) {
            c.push(Event::TimeWait(tw(TimeWaitKind::Killed, 30000 + port, 1200)));
        }
        let mut found = Vec::new();
        for port in (0..100u16).filter(|p| p % 3 == 0) {
            found.extend(c.push(Event::TimeWait(tw(TimeWaitKind::Followup, 30000 + port, 1300 + port as u64))));
        }
        let retried = collisions(&found);
        assert_eq!(retried.len(), 34);
        for r in &retried {
            let port = r.event.remote.port() - 30000;
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
            let mut e = tw(TimeWaitKind::Collision, 20000 + (i % 500) as u16, 100 + i);
            e.hook = "raw_tracepoint/inet_sock_set_state";
            e.drop_reason = None;
            assert!(c.push(Event::TimeWait(e)).is_empty(), "not reported one by one");
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
        let reset = ResetEvent {
            kind: EventKind::RstSent,
            time: SystemTime::UNIX_EPOCH,
            ktime_ns: 1000 * MS,
            local: "10.77.0.2:8090".parse().unwrap(),
            remote: "10.77.0.1:7".parse().unwrap(),
            netns: Some(1),
            state: Some("TIME_WAIT".into()),
            reason: Some("TCP_TIMEWAIT_SOCKET".into()),
            idle_ms: None,
            process: None,
        };
        // Reset first, then the freed SYN.
        let mut c = Correlator::new(Windows::default());
        assert_eq!(c.push(Event::Reset(reset.clone())).len(), 1, "the reset itself is reported");
        c.push(Event::TimeWait(tw(TimeWaitKind::Collision, 7, 1000)));
        assert_eq!(collisions(&c.finish(2000 * MS))[0].verdict, Verdict::Rst);
        // The other order.
        let mut c = Correlator::new(Windows::default());
        c.push(Event::TimeWait(tw(TimeWaitKind::Collision, 7, 1000)));
        c.push(Event::Reset(reset));
        let reports = c.finish(2000 * MS);
        let found = collisions(&reports);
        assert_eq!(found[0].verdict, Verdict::Rst);
        assert!(found[0].advice().contains("half-closed"));
    }

    #[test]
    fn repeated_syns_on_one_timewait_socket_are_one_finding() {
        let mut c = Correlator::new(Windows::default());
        c.push(Event::TimeWait(tw(TimeWaitKind::Collision, 9, 1000)));
        c.push(Event::TimeWait(tw(TimeWaitKind::Collision, 9, 2000)));
        c.push(Event::TimeWait(tw(TimeWaitKind::Collision, 9, 4000)));
        let reports = c.finish(5000 * MS);
        let found = collisions(&reports);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].count, 3);
    }
}
