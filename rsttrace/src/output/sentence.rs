//! The text of each record: one sentence a user can act on, written alone
//! by the text format and as the journal's MESSAGE.

use crate::{
    events::{
        Direction, Evidence, Keepalive, Kill, Origin, Outcome, Reset,
        cause::human_duration,
        collision::{Collision, Verdict},
        idle_timeout::IdleTimeout,
    },
    kernel::{
        names::{ResetReason, TcpState},
        strategy::Hook,
    },
    output::record::{Ready, Summary},
};

pub(super) fn idle_timeout(i: &IdleTimeout) -> String {
    let s = format!(
        "{} RSTs forged by a device between {} and {} after {} to {} of silence over {}: it forgets idle connections after at most {} s",
        i.count,
        i.tuple.local.ip(),
        i.network,
        human_duration(i.silence_min_ms),
        human_duration(i.silence_max_ms),
        human_duration(i.interval_ms),
        i.timeout_s()
    );
    format!("{}. {}", netns_suffix(s, i.tuple.netns), i.advice())
}

pub(super) fn kill(k: &Kill) -> String {
    let t = &k.0;
    let mut s = format!("RST from {} killed the TIME_WAIT socket of {}", t.tuple.remote, t.tuple.local);
    if let Some(age) = t.tw_age_ms {
        s += &format!(" ({} old)", human_duration(age));
    }
    netns_suffix(s, t.tuple.netns)
}

pub(super) fn collision(c: &Collision) -> String {
    let e = &c.event;
    if c.verdict == Verdict::Accepted {
        let over = c.interval_ms.map(|ms| format!(" over {}", human_duration(ms))).unwrap_or_default();
        let s = format!(
            "{} SYN{} from {} reused 4-tuples of {} still in TIME_WAIT{over}: accepted as new connections (harmless)",
            c.count,
            if c.count == 1 { "" } else { "s" },
            e.tuple.remote.ip(),
            e.tuple.local
        );
        return netns_suffix(s, e.tuple.netns);
    }
    let mut s = format!("SYN from {} to {} hit a TIME_WAIT socket", e.tuple.remote, e.tuple.local);
    if let Some(age) = e.tw_age_ms {
        s += &format!(" {} old", human_duration(age));
    }
    s += match c.verdict {
        Verdict::StaleAck => ": answered with a stale ACK",
        Verdict::Rst => ": answered with an RST",
        Verdict::PawsDrop => ": dropped by PAWS",
        _ => ": verdict unknown",
    };
    let mut evidence = Vec::new();
    if let Some(rcv_nxt) = e.tw_rcv_nxt {
        let seq = e.seq;
        let relation = if (seq.wrapping_sub(rcv_nxt) as i32) > 0 { "above" } else { "not above" };
        evidence.push(format!("SYN seq {seq} {relation} rcv_nxt {rcv_nxt}"));
    }
    match e.timestamps {
        Some(false) => evidence.push("SYN without timestamps".into()),
        Some(true) => evidence.push(format!("SYN TSval {}", e.tsval.map_or("?".into(), |v| v.to_string()))),
        None => {}
    }
    if let Some(recent) = e.tw_ts_recent {
        evidence.push(format!("last TSval {recent}"));
    } else if e.tw_timestamps == Some(false) {
        evidence.push("old connection without timestamps".into());
    }
    if !evidence.is_empty() {
        s += &format!(" ({})", evidence.join(", "));
    }
    if c.count > 1 {
        s += &format!("; {} SYNs in all", c.count);
    }
    match (c.peer_rst, c.retry_delay_ms) {
        (Some(true), Some(delay)) => s += &format!("; the peer reset it and connected {} later", human_duration(delay)),
        (_, Some(delay)) => s += &format!("; the peer connected {} later", human_duration(delay)),
        (Some(true), None) => s += "; the peer reset it and did not connect again",
        (Some(false), None) => s += "; no new connection followed",
        (None, None) => {}
    }
    s = netns_suffix(s, e.tuple.netns);
    format!("{s}. {}", c.advice())
}

fn netns_suffix(s: String, netns: Option<u32>) -> String {
    match netns {
        Some(n) => format!("{s} [netns {n}]"),
        None => s,
    }
}

/// A received RST the kernel discarded: one, or several from one peer
/// address over an interval.
fn discarded_sentence(r: &Reset, outcome: Outcome) -> String {
    let (local, remote) = (r.tuple.local, r.tuple.remote);
    let what = match outcome {
        Outcome::NoSocket => "no socket matched it",
        Outcome::HalfOpen => {
            "it reached a half-open connection (SYN_RECV), which the kernel drops when the RST is in its window"
        }
        Outcome::Ignored => "the kernel ignored it (no connection ended)",
        Outcome::Reset => "it ended the connection",
    };
    let mut s = if r.count > 1 {
        let over = r.interval_ms.map(|ms| format!(" over {}", human_duration(ms))).unwrap_or_default();
        format!("{} RSTs from {} to {local}{over}, the first from port {}", r.count, remote.ip(), remote.port())
    } else {
        format!("{local} received RST from {remote}")
    };
    if let Some(state) = &r.state {
        s += &format!(" at a socket in {state}");
    }
    s += &format!(": {what}");
    if let Some(reason) = &r.drop_reason {
        s += &format!(" ({reason})");
    }
    if let Some(ttl) = r.path.ttl {
        s += &format!(", TTL {ttl}");
    }
    match (&r.netns_name, r.tuple.netns) {
        (Some(name), Some(n)) => format!("{s} [netns {n} {name}]"),
        _ => netns_suffix(s, r.tuple.netns),
    }
}

/// A reset's sentence starts with its cause.
pub(super) fn reset(r: &Reset) -> String {
    format!("{}: {}", r.cause().as_str(), reset_facts(r))
}

fn reset_facts(r: &Reset) -> String {
    if let Some(outcome) = r.outcome.filter(|&o| o != Outcome::Reset) {
        return discarded_sentence(r, outcome);
    }
    let (local, remote) = (r.tuple.local, r.tuple.remote);
    let mut s = match (r.direction, r.interval_ms) {
        (Direction::Sent, None) => format!("{local} sent RST to {remote}"),
        (Direction::Received, None) => format!("{local} received RST from {remote}"),
        // Counted in the kernel during a storm.
        (Direction::Sent, Some(ms)) => format!(
            "{local} sent {} more RSTs to {} over {}, the first to port {}",
            r.count,
            remote.ip(),
            human_duration(ms),
            remote.port()
        ),
        // Refused connections: the peer's service is fixed, this host's
        // source port varies.
        (Direction::Received, Some(ms)) if r.state == Some(TcpState::SynSent) => format!(
            "{} received {} more RSTs from {remote} over {}, the first on port {}",
            local.ip(),
            r.count,
            human_duration(ms),
            local.port()
        ),
        (Direction::Received, Some(ms)) => format!(
            "{local} received {} more RSTs from {} over {}, the first from port {}",
            r.count,
            remote.ip(),
            human_duration(ms),
            remote.port()
        ),
    };
    match &r.state {
        Some(state) => s += &format!(" in {state}"),
        None if r.direction == Direction::Sent => s += " with no socket",
        None => {}
    }
    if let Some(reason) = &r.reason {
        match reason_explained(reason) {
            Some(why) => s += &format!(": {why} ({reason})"),
            None => s += &format!(" ({reason})"),
        }
    }
    if let Some(p) = &r.process {
        s += &format!(", by pid {} ({})", p.pid, p.comm);
    }
    if let Some(idle) = r.idle_ms {
        s += &format!(" after {} idle", human_duration(idle));
    } else if r.direction == Direction::Received && r.state == Some(TcpState::SynSent) {
        s += ": connection refused by the peer";
    }
    if let Some(silent) = r.peer_silent_ms {
        s += &format!(", {} after the peer's last segment", human_duration(silent));
    }
    if let Some(closed) = r.peer_closed_ms {
        s += &format!(", {} after the peer's FIN", human_duration(closed));
    }
    if let Some(closed) = r.closed_ms {
        s += &format!(", {} after this host closed", human_duration(closed));
    }
    if let Some((origin, evidence)) = r.origin() {
        s += &format!("; sent by {}: {}", origin_name(origin), evidence_explained(evidence));
    }
    match r.keepalive {
        Some(Keepalive::Off) => s += "; keepalive off",
        Some(Keepalive::After(ms)) => s += &format!("; keepalive after {}", human_duration(ms)),
        None => {}
    }
    // The root cgroup's sockets belong to no unit worth naming.
    if let Some(unit) = r.unit.as_deref().filter(|&unit| unit != "/") {
        s += &format!(" (socket of {unit})");
    }
    s = match (&r.netns_name, r.tuple.netns) {
        (Some(name), Some(n)) => format!("{s} [netns {n} {name}]"),
        _ => netns_suffix(s, r.tuple.netns),
    };
    match r.advice() {
        Some(advice) => format!("{s}. {advice}"),
        None => s,
    }
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Peer => "the peer",
        Origin::Middlebox => "a device in between",
    }
}

/// The rule that decided who sent an RST, with its numbers.
fn evidence_explained(evidence: Evidence) -> String {
    match evidence {
        Evidence::TtlDiffers { ttl, peer_ttl } => {
            // All the TTL shows: another host than the one the connection was
            // set up with sent it (a re-DNAT to a new backend looks the same).
            format!(
                "it arrived with TTL {ttl}, the peer's segments with {peer_ttl} (another sender than the host the connection was set up with)"
            )
        }
        Evidence::InitialTtlViaGateway { ttl } => {
            format!(
                "it arrived with TTL {ttl}, an initial value no router has decremented, yet the peer is reached through a gateway"
            )
        }
        Evidence::FasterThanRtt { since_data_max_us, rtt_min_us } => format!(
            "it answered this host's data within {}, sooner than the peer can (minimum RTT {})",
            human_micros(since_data_max_us),
            human_micros(rtt_min_us as u64)
        ),
        Evidence::SameTtl { ttl } => format!("it arrived with TTL {ttl}, like the peer's own segments"),
    }
}

fn human_micros(us: u64) -> String {
    if us < 1_000 { format!("{us} µs") } else { human_duration(us / 1_000) }
}

/// What a kernel reset reason means for a user.
fn reason_explained(reason: &ResetReason) -> Option<&'static str> {
    use ResetReason::*;
    Some(match reason {
        NoSocket => "no socket for this 4-tuple (port closed or connection already gone)",
        TcpInvalidAckSequence | TcpAckUnsentData => "segment acknowledged data never sent",
        TcpRfc7323Paws => "segment failed the PAWS timestamp check",
        TcpTooOldAck | TcpOldAck => "segment acknowledged data that is too old",
        TcpFlags => "segment flags invalid for the socket's state",
        TcpAbortOnData => "data arrived after the application closed the socket",
        TcpTimewaitSocket => "a TIME_WAIT socket rejected the segment",
        InvalidSyn => "unexpected SYN on a synchronized connection",
        TcpAbortOnClose => "application closed the socket with unread data",
        TcpAbortOnLinger => "application closed with SO_LINGER timeout 0",
        TcpAbortOnMemory => "out of memory for orphaned sockets",
        TcpState => "the application aborted the connection (close or shutdown)",
        TcpKeepaliveTimeout => "keepalive probes went unanswered",
        TcpDisconnectWithData => "application disconnected with data unsent",
        Other(_) | Unnamed(_) => return None,
    })
}

pub fn ready_sentence(ready: &Ready) -> String {
    let hooks: Vec<String> = ready.hooks.iter().map(Hook::to_string).collect();
    let mut s = format!(
        "rsttrace {} ready on Linux {}: strategy {}, hooks {}",
        ready.version,
        ready.kernel,
        ready.strategy.as_str(),
        hooks.join(", ")
    );
    for note in &ready.limitations {
        s += &format!("; {note}");
    }
    s
}

pub fn summary_sentence(s: &Summary) -> String {
    let counts: Vec<String> = s.counts.by_kind().iter().map(|(kind, n)| format!("{n} {}", kind.as_str())).collect();
    let mut sentence = format!(
        "rsttrace summary after {}: {}; {} reported after filters; {} lost (ring buffer full), {} kernel read errors, {} hook runs the kernel skipped, {} undecodable, {} connections unkept",
        human_duration(s.duration_ms),
        counts.join(", "),
        s.reported,
        s.lost,
        s.read_errors,
        s.missed_runs,
        s.undecodable,
        s.connections_unkept
    );
    if s.unfinished_bytes != 0 {
        sentence += &format!(", {} bytes of records unfinished at the stop", s.unfinished_bytes);
    }
    sentence
}
#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{events::Process, kernel::names::DropReason};

    fn seed_collision() -> Collision {
        let mut event = crate::events::TimeWaitSegment::example(40021, 0);
        event.time = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        event.tuple.netns = Some(4026532001);
        event.tw_age_ms = Some(52);
        Collision {
            event,
            verdict: Verdict::StaleAck,
            peer_rst: Some(true),
            retry_delay_ms: Some(11),
            count: 1,
            interval_ms: None,
        }
    }

    #[test]
    fn tw_collision_sentence_tells_the_story() {
        let s = super::collision(&seed_collision());
        assert!(
            s.starts_with("SYN from 10.77.0.1:40021 to 10.77.0.2:8090 hit a TIME_WAIT socket 52 ms old: answered with a stale ACK (SYN seq 2417517023 not above rcv_nxt 2418336172, SYN without timestamps, old connection without timestamps); the peer reset it and connected 11 ms later [netns 4026532001]. The peer 10.77.0.1 sends SYNs without TCP timestamps"),
            "{s}"
        );
    }

    #[test]
    fn unknown_timestamps_are_not_called_absent() {
        let mut c = seed_collision();
        c.event.timestamps = None;
        c.event.tw_timestamps = None;
        let s = super::collision(&c.clone());
        assert!(!s.contains("without timestamps"), "{s}");
        assert!(!c.advice().contains("without TCP timestamps"), "{}", c.advice());
        assert!(!c.advice().contains("did not use TCP timestamps"), "{}", c.advice());
    }

    #[test]
    fn aggregated_reuse_is_information() {
        let mut c = seed_collision();
        c.verdict = Verdict::Accepted;
        c.count = 1532;
        c.interval_ms = Some(10_000);
        assert_eq!(
            super::collision(&c),
            "1532 SYNs from 10.77.0.1 reused 4-tuples of 10.77.0.2:8090 still in TIME_WAIT over 10.0 s: accepted as new connections (harmless) [netns 4026532001]"
        );
    }

    #[test]
    fn tw_killed_sentence() {
        let t = seed_collision().event;
        assert_eq!(
            super::kill(&Kill(t)),
            "RST from 10.77.0.1:40021 killed the TIME_WAIT socket of 10.77.0.2:8090 (52 ms old) [netns 4026532001]"
        );
    }

    fn reset(direction: Direction) -> Reset {
        let mut r = Reset::example(direction);
        r.tuple.netns = Some(4026532001);
        r
    }

    #[test]
    fn discarded_resets_say_what_the_kernel_did() {
        let mut r = reset(Direction::Received);
        r.outcome = Some(Outcome::NoSocket);
        r.drop_reason = Some(DropReason::NoSocket);
        r.path.ttl = Some(64);
        assert_eq!(
            super::reset(&r.clone()),
            "unknown: 10.77.0.2:8090 received RST from 10.77.0.1:40021: no socket matched it (NO_SOCKET), TTL 64 [netns 4026532001]"
        );
        r.outcome = Some(Outcome::HalfOpen);
        r.drop_reason = Some(DropReason::NotSpecified);
        r.state = Some(TcpState::Listen);
        r.count = 3;
        r.interval_ms = Some(10_020);
        assert_eq!(
            super::reset(&r),
            "unknown: 3 RSTs from 10.77.0.1 to 10.77.0.2:8090 over 10.0 s, the first from port 40021 at a socket in LISTEN: it reached a half-open connection (SYN_RECV), which the kernel drops when the RST is in its window (NOT_SPECIFIED), TTL 64 [netns 4026532001]"
        );
    }

    #[test]
    fn sentences_say_what_happened() {
        let mut sent = reset(Direction::Sent);
        sent.reason = Some(ResetReason::NoSocket);
        assert_eq!(
            super::reset(&sent.clone()),
            "unknown: 10.77.0.2:8090 sent RST to 10.77.0.1:40021 with no socket: no socket for this 4-tuple (port closed or connection already gone) (NO_SOCKET) [netns 4026532001]"
        );
        sent.state = Some(TcpState::Close);
        sent.reason = Some(ResetReason::TcpAbortOnLinger);
        sent.process = Some(Process { pid: 42, comm: "nginx".into() });
        assert_eq!(
            super::reset(&sent),
            "application_abort: 10.77.0.2:8090 sent RST to 10.77.0.1:40021 in CLOSE: application closed with SO_LINGER timeout 0 (TCP_ABORT_ON_LINGER), by pid 42 (nginx) [netns 4026532001]"
        );
        let mut received = reset(Direction::Received);
        received.state = Some(TcpState::Established);
        received.idle_ms = Some(300_500);
        received.tuple.netns = None;
        assert_eq!(
            super::reset(&received.clone()),
            "unknown: 10.77.0.2:8090 received RST from 10.77.0.1:40021 in ESTABLISHED after 5m00s idle"
        );
        received.tuple.netns = Some(4026532001);
        received.unit = Some("nginx.service".into());
        received.netns_name = Some("blue".into());
        assert_eq!(
            super::reset(&received.clone()),
            "unknown: 10.77.0.2:8090 received RST from 10.77.0.1:40021 in ESTABLISHED after 5m00s idle (socket of nginx.service) [netns 4026532001 blue]"
        );
        (received.tuple.netns, received.unit, received.netns_name) = (None, None, None);
        // The forgotten connection: this host just wrote, the peer has been
        // silent for minutes, keepalive off.
        received.idle_ms = Some(0);
        received.peer_silent_ms = Some(350_100);
        received.keepalive = Some(Keepalive::Off);
        // A silence alone decides nothing: no advice.
        assert_eq!(
            super::reset(&received.clone()),
            "unknown: 10.77.0.2:8090 received RST from 10.77.0.1:40021 in ESTABLISHED after 0 ms idle, 5m50s after the peer's last segment; keepalive off"
        );
        // The TTL proves a device forged it.
        (received.path.ttl, received.path.peer_ttl) = (Some(64), Some(61));
        let s = super::reset(&received);
        assert!(
            s.starts_with("middlebox: 10.77.0.2:8090 received RST from 10.77.0.1:40021 in ESTABLISHED after 0 ms idle, 5m50s after the peer's last segment; sent by a device in between: it arrived with TTL 64, the peer's segments with 61 (another sender than the host the connection was set up with); keepalive off. A device between this host and 10.77.0.1 (load balancer, NAT, firewall) sent this RST after 5m50s without a segment from the peer"),
            "{s}"
        );
        assert!(s.contains("enable SO_KEEPALIVE with TCP_KEEPIDLE below the device's idle timeout"), "{s}");
    }

    #[test]
    fn the_pool_race_from_both_ends() {
        let mut client = reset(Direction::Received);
        client.state = Some(TcpState::CloseWait);
        (client.idle_ms, client.peer_silent_ms, client.peer_closed_ms) = (Some(0), Some(2_004), Some(2_004));
        let s = super::reset(&client);
        assert!(
            s.starts_with("peer_had_closed: 10.77.0.2:8090 received RST from 10.77.0.1:40021 in CLOSE_WAIT after 0 ms idle, 2.0 s after the peer's last segment, 2.0 s after the peer's FIN [netns 4026532001]. 10.77.0.1 had closed this connection 2.0 s earlier"),
            "{s}"
        );
        let mut server = reset(Direction::Sent);
        server.state = Some(TcpState::TimeWait);
        server.reason = Some(ResetReason::TcpTimewaitSocket);
        server.answered = Some(crate::events::TcpFlags(0x18));
        server.closed_ms = Some(2_004);
        let s = super::reset(&server);
        assert!(
            s.starts_with("data_after_close: 10.77.0.2:8090 sent RST to 10.77.0.1:40021 in TIME_WAIT: a TIME_WAIT socket rejected the segment (TCP_TIMEWAIT_SOCKET), 2.0 s after this host closed [netns 4026532001]. 10.77.0.1 wrote on a connection this host had closed 2.0 s earlier"),
            "{s}"
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(999), "999 ms");
        assert_eq!(human_duration(1520), "1.5 s");
        assert_eq!(human_duration(61_000), "1m01s");
    }
}
