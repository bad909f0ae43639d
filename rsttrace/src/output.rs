//! The output contract (../shared/DESIGN.md): JSON lines, and text sentences.
//! Other tools parse this: extend it, never break it.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use serde_json::{Map, Value, json};

use crate::{
    collision::{Collision, Report, Verdict},
    event::{Event, EventKind, ResetEvent, TimeWaitEvent},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One readable sentence per event.
    Text,
    /// One JSON object per line.
    Json,
    /// One native journal entry per event (the default under systemd).
    Journal,
    /// Text on stderr: the journal's fallback when journald is not there.
    #[value(skip)]
    #[serde(skip)]
    TextOnStderr,
}

/// RFC 3339, UTC, microseconds: `2026-11-21T10:32:00.123456Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// `10.0.0.2:80` or `[2001:db8::2]:80`.
fn endpoint(addr: &SocketAddr) -> String {
    addr.to_string()
}

/// Journal priority: warnings for resets, kills and harmful collisions,
/// information for harmless reuse.
pub fn priority(report: &Report) -> libsystemd::logging::Priority {
    use libsystemd::logging::Priority;
    match report {
        Report::Collision(c) if c.verdict == Verdict::Accepted => Priority::Info,
        _ => Priority::Warning,
    }
}

/// The endpoints filters look at.
pub fn endpoints(report: &Report) -> (&SocketAddr, &SocketAddr) {
    match report {
        Report::Event(e) => e.endpoints(),
        Report::Collision(c) => (&c.event.local, &c.event.remote),
        Report::Killed(t) => (&t.local, &t.remote),
    }
}

/// A report's keys in contract order: the common ones, then its kind's.
pub fn fields(report: &Report) -> Map<String, Value> {
    match report {
        Report::Event(Event::Reset(r)) => reset_fields(r),
        Report::Event(Event::TimeWait(t)) | Report::Killed(t) => killed_fields(t),
        Report::Collision(c) => collision_fields(c),
    }
}

fn common(
    time: SystemTime,
    kind: EventKind,
    local: &SocketAddr,
    remote: &SocketAddr,
    netns: Option<u32>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(time)));
    m.insert("kind".into(), json!(kind.as_str()));
    m.insert("family".into(), json!(if local.is_ipv6() { "ipv6" } else { "ipv4" }));
    m.insert("local".into(), json!(endpoint(local)));
    m.insert("remote".into(), json!(endpoint(remote)));
    m.insert("netns".into(), json!(netns));
    m
}

fn collision_fields(c: &Collision) -> Map<String, Value> {
    let e = &c.event;
    let mut m = common(e.time, EventKind::TwCollision, &e.local, &e.remote, e.netns);
    m.insert("state".into(), json!("TIME_WAIT"));
    m.insert("verdict".into(), json!(c.verdict.as_str()));
    m.insert("tw_age_ms".into(), json!(e.tw_age_ms));
    m.insert("syn_seq".into(), json!(e.segment_seq));
    m.insert("tw_rcv_nxt".into(), json!(e.tw_rcv_nxt));
    m.insert("syn_timestamps".into(), json!(e.segment_timestamps));
    m.insert("tw_timestamps".into(), json!(e.tw_timestamps));
    m.insert("source".into(), json!(e.source));
    m.insert("advice".into(), json!(c.advice()));
    m.insert("syn_tsval".into(), json!(e.segment_tsval));
    m.insert("tw_ts_recent".into(), json!(e.tw_ts_recent));
    m.insert("peer_rst".into(), json!(c.peer_rst));
    m.insert("retry_delay_ms".into(), json!(c.retry_delay_ms));
    m.insert("count".into(), json!(c.count));
    m.insert("interval_ms".into(), json!(c.interval_ms));
    m.insert("hook".into(), json!(e.hook));
    m
}

fn killed_fields(t: &TimeWaitEvent) -> Map<String, Value> {
    let mut m = common(t.time, EventKind::TwKilled, &t.local, &t.remote, t.netns);
    m.insert("state".into(), json!("TIME_WAIT"));
    m.insert("by".into(), json!("rst"));
    m.insert("tw_age_ms".into(), json!(t.tw_age_ms));
    m.insert("rst_seq".into(), json!(t.segment_seq));
    m.insert("source".into(), json!(t.source));
    m.insert("hook".into(), json!(t.hook));
    m
}

fn reset_fields(r: &ResetEvent) -> Map<String, Value> {
    let mut m = common(r.time, r.kind, &r.local, &r.remote, r.netns);
    m.insert("state".into(), json!(r.state));
    match r.kind {
        EventKind::RstSent => {
            m.insert("reason".into(), json!(r.reason));
            m.insert("pid".into(), json!(r.process.as_ref().map(|p| p.pid)));
            m.insert("comm".into(), json!(r.process.as_ref().map(|p| &p.comm)));
        }
        _ => {
            m.insert("idle_ms".into(), json!(r.idle_ms));
        }
    }
    m
}

pub fn json_line(fields: &Map<String, Value>) -> String {
    Value::Object(fields.clone()).to_string()
}

/// The human sentence for a report: the text format's line and, later, the
/// journal's MESSAGE.
pub fn sentence(report: &Report) -> String {
    match report {
        Report::Event(Event::Reset(r)) => reset_sentence(r),
        Report::Event(Event::TimeWait(t)) | Report::Killed(t) => killed_sentence(t),
        Report::Collision(c) => collision_sentence(c),
    }
}

fn killed_sentence(t: &TimeWaitEvent) -> String {
    let mut s = format!("RST from {} killed the TIME_WAIT socket of {}", t.remote, t.local);
    if let Some(age) = t.tw_age_ms {
        s += &format!(" ({} old)", human_duration(age));
    }
    netns_suffix(s, t.netns)
}

fn collision_sentence(c: &Collision) -> String {
    let e = &c.event;
    if c.verdict == Verdict::Accepted {
        let over = c.interval_ms.map(|ms| format!(" over {}", human_duration(ms))).unwrap_or_default();
        let s = format!(
            "{} SYN{} from {} reused 4-tuples of {} still in TIME_WAIT{over}: accepted as new connections (harmless)",
            c.count,
            if c.count == 1 { "" } else { "s" },
            e.remote.ip(),
            e.local
        );
        return netns_suffix(s, e.netns);
    }
    let mut s = format!("SYN from {} to {} hit a TIME_WAIT socket", e.remote, e.local);
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
    if let (Some(seq), Some(rcv_nxt)) = (e.segment_seq, e.tw_rcv_nxt) {
        let relation = if (seq.wrapping_sub(rcv_nxt) as i32) > 0 { "above" } else { "not above" };
        evidence.push(format!("SYN seq {seq} {relation} rcv_nxt {rcv_nxt}"));
    }
    match e.segment_timestamps {
        Some(false) => evidence.push("SYN without timestamps".into()),
        Some(true) => evidence.push(format!("SYN TSval {}", e.segment_tsval.map_or("?".into(), |v| v.to_string()))),
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
    s = netns_suffix(s, e.netns);
    format!("{s}. {}", c.advice())
}

fn netns_suffix(s: String, netns: Option<u32>) -> String {
    match netns {
        Some(n) => format!("{s} [netns {n}]"),
        None => s,
    }
}

fn reset_sentence(r: &ResetEvent) -> String {
    let mut s = match r.kind {
        EventKind::RstSent => format!("{} sent RST to {}", r.local, r.remote),
        _ => format!("{} received RST from {}", r.local, r.remote),
    };
    match &r.state {
        Some(state) => s += &format!(" in {state}"),
        None if r.kind == EventKind::RstSent => s += " with no socket",
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
    } else if r.kind == EventKind::RstReceived && r.state.as_deref() == Some("SYN_SENT") {
        s += ": connection refused by the peer";
    }
    netns_suffix(s, r.netns)
}

/// What a kernel reset reason means for a user, by name (numbers vary).
fn reason_explained(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "NO_SOCKET" => "no socket for this 4-tuple (port closed or connection already gone)",
        "TCP_INVALID_ACK_SEQUENCE" | "TCP_ACK_UNSENT_DATA" => "segment acknowledged data never sent",
        "TCP_RFC7323_PAWS" => "segment failed the PAWS timestamp check",
        "TCP_TOO_OLD_ACK" | "TCP_OLD_ACK" => "segment acknowledged data that is too old",
        "TCP_FLAGS" => "segment flags invalid for the socket's state",
        "TCP_ABORT_ON_DATA" => "data arrived after the application closed the socket",
        "TCP_TIMEWAIT_SOCKET" => "a TIME_WAIT socket rejected the segment",
        "INVALID_SYN" => "unexpected SYN on a synchronized connection",
        "TCP_ABORT_ON_CLOSE" => "application closed the socket with unread data",
        "TCP_ABORT_ON_LINGER" => "application closed with SO_LINGER timeout 0",
        "TCP_ABORT_ON_MEMORY" => "out of memory for orphaned sockets",
        "TCP_STATE" => "the application aborted the connection (close or shutdown)",
        "TCP_KEEPALIVE_TIMEOUT" => "keepalive probes went unanswered",
        "TCP_DISCONNECT_WITH_DATA" => "application disconnected with data unsent",
        _ => return None,
    })
}

fn human_duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
    }
}

/// The first record, once every hook is attached.
pub fn ready_fields(strategy: &str, hooks: &[String], kernel: &str, notes: &[String]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(SystemTime::now())));
    m.insert("kind".into(), json!("ready"));
    m.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    m.insert("strategy".into(), json!(strategy));
    m.insert("hooks".into(), json!(hooks));
    m.insert("kernel".into(), json!(kernel));
    m.insert("limitations".into(), json!(notes));
    m
}

pub fn ready_sentence(fields: &Map<String, Value>) -> String {
    let hooks: Vec<&str> = fields["hooks"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut s = format!(
        "rsttrace {} ready on Linux {}: strategy {}, hooks {}",
        fields["version"].as_str().unwrap_or_default(),
        fields["kernel"].as_str().unwrap_or_default(),
        fields["strategy"].as_str().unwrap_or_default(),
        hooks.join(", ")
    );
    for note in fields["limitations"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        s += &format!("; {note}");
    }
    s
}

/// What the run saw, for the last record.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Events seen per kind, before filters.
    pub counts: BTreeMap<EventKind, u64>,
    /// Records the kernel could not deliver (ring buffer full).
    pub lost: u64,
    /// Records dropped in the kernel because a read failed.
    pub read_errors: u64,
    /// Program runs the kernel skipped: a BPF program was already running
    /// on that CPU when the hook fired (their events are missing).
    pub missed_runs: u64,
    /// Records userspace could not decode.
    pub undecodable: u64,
    /// Records written after filtering and aggregation.
    pub reported: u64,
    /// Journal entries journald did not take.
    pub unwritten: u64,
    /// TIME_WAIT collisions per verdict, before aggregation.
    pub verdicts: BTreeMap<&'static str, u64>,
    pub duration: Duration,
}

pub fn summary_fields(s: &Summary) -> Map<String, Value> {
    let counts: Map<String, Value> =
        EventKind::ALL.iter().map(|k| (k.as_str().to_string(), json!(s.counts.get(k).copied().unwrap_or(0)))).collect();
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(SystemTime::now())));
    m.insert("kind".into(), json!("summary"));
    m.insert("counts".into(), Value::Object(counts));
    m.insert("verdicts".into(), json!(s.verdicts));
    m.insert("lost".into(), json!(s.lost));
    m.insert("read_errors".into(), json!(s.read_errors));
    m.insert("missed_runs".into(), json!(s.missed_runs));
    m.insert("undecodable".into(), json!(s.undecodable));
    m.insert("reported".into(), json!(s.reported));
    m.insert("unwritten".into(), json!(s.unwritten));
    m.insert("duration_ms".into(), json!(s.duration.as_millis() as u64));
    m
}

pub fn summary_sentence(s: &Summary) -> String {
    let counts: Vec<String> =
        EventKind::ALL.iter().map(|k| format!("{} {}", s.counts.get(k).copied().unwrap_or(0), k.as_str())).collect();
    format!(
        "rsttrace summary after {}: {}; {} reported after filters; {} lost (ring buffer full), {} kernel read errors, {} hook runs the kernel skipped, {} undecodable",
        human_duration(s.duration.as_millis() as u64),
        counts.join(", "),
        s.reported,
        s.lost,
        s.read_errors,
        s.missed_runs,
        s.undecodable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Process, ResetEvent, TimeWaitKind};

    fn rep(r: ResetEvent) -> Report {
        Report::Event(Event::Reset(r))
    }

    fn seed_collision() -> Collision {
        let mut event = crate::collision::tests::tw(TimeWaitKind::Collision, 40021, 0);
        event.time = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        event.netns = Some(4026532001);
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
    fn tw_collision_json_has_the_contract_keys() {
        let report = Report::Collision(seed_collision());
        let v = Value::Object(fields(&report));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys[..15],
            [
                "time",
                "kind",
                "family",
                "local",
                "remote",
                "netns",
                "state",
                "verdict",
                "tw_age_ms",
                "syn_seq",
                "tw_rcv_nxt",
                "syn_timestamps",
                "tw_timestamps",
                "source",
                "advice"
            ]
        );
        assert_eq!(v["kind"], "tw_collision");
        assert_eq!(v["verdict"], "stale_ack");
        assert_eq!(v["syn_seq"], 2417517023u32);
        assert_eq!(v["tw_rcv_nxt"], 2418336172u32);
        assert_eq!(v["syn_timestamps"], false);
        assert_eq!(v["peer_rst"], true);
        assert_eq!(v["retry_delay_ms"], 11);
    }

    #[test]
    fn priorities_follow_harm() {
        use libsystemd::logging::Priority;
        let mut c = seed_collision();
        assert!(matches!(priority(&Report::Collision(c.clone())), Priority::Warning));
        c.verdict = Verdict::Accepted;
        assert!(matches!(priority(&Report::Collision(c.clone())), Priority::Info));
        assert!(matches!(priority(&Report::Killed(c.event)), Priority::Warning));
    }

    #[test]
    fn tw_collision_sentence_tells_the_story() {
        let s = sentence(&Report::Collision(seed_collision()));
        assert!(
            s.starts_with("SYN from 10.77.0.1:40021 to 10.77.0.2:8090 hit a TIME_WAIT socket 52 ms old: answered with a stale ACK (SYN seq 2417517023 not above rcv_nxt 2418336172, SYN without timestamps, old connection without timestamps); the peer reset it and connected 11 ms later [netns 4026532001]. The peer 10.77.0.1 sends SYNs without TCP timestamps"),
            "{s}"
        );
    }

    #[test]
    fn aggregated_reuse_is_information() {
        let mut c = seed_collision();
        c.verdict = Verdict::Accepted;
        c.count = 1532;
        c.interval_ms = Some(10_000);
        let report = Report::Collision(c);
        assert_eq!(
            sentence(&report),
            "1532 SYNs from 10.77.0.1 reused 4-tuples of 10.77.0.2:8090 still in TIME_WAIT over 10.0 s: accepted as new connections (harmless) [netns 4026532001]"
        );
        assert_eq!(Value::Object(fields(&report))["count"], 1532);
    }

    #[test]
    fn tw_killed_record() {
        let mut t = seed_collision().event;
        t.kind = TimeWaitKind::Killed;
        t.segment_seq = Some(2418336172);
        let report = Report::Killed(t);
        let v = Value::Object(fields(&report));
        assert_eq!(v["kind"], "tw_killed");
        assert_eq!(v["by"], "rst");
        assert_eq!(v["tw_age_ms"], 52);
        assert_eq!(
            sentence(&report),
            "RST from 10.77.0.1:40021 killed the TIME_WAIT socket of 10.77.0.2:8090 (52 ms old) [netns 4026532001]"
        );
    }

    fn reset(kind: EventKind) -> ResetEvent {
        ResetEvent {
            kind,
            time: SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            ktime_ns: 0,
            local: "10.77.0.2:8090".parse().unwrap(),
            remote: "10.77.0.1:40021".parse().unwrap(),
            netns: Some(4026532001),
            state: None,
            reason: None,
            idle_ms: None,
            process: None,
        }
    }

    #[test]
    fn rst_sent_json_has_the_contract_keys_in_order() {
        let mut r = reset(EventKind::RstSent);
        r.reason = Some("NO_SOCKET".into());
        let line = json_line(&fields(&rep(r)));
        assert_eq!(
            line,
            r#"{"time":"2023-11-14T22:13:20.123456Z","kind":"rst_sent","family":"ipv4","local":"10.77.0.2:8090","remote":"10.77.0.1:40021","netns":4026532001,"state":null,"reason":"NO_SOCKET","pid":null,"comm":null}"#
        );
    }

    #[test]
    fn rst_received_json_carries_idle_ms_and_ipv6_brackets() {
        let mut r = reset(EventKind::RstReceived);
        r.local = "[2001:db8::2]:80".parse().unwrap();
        r.remote = "[2001:db8::1]:5555".parse().unwrap();
        r.state = Some("ESTABLISHED".into());
        r.idle_ms = Some(1520);
        let v: Value = serde_json::from_str(&json_line(&fields(&rep(r)))).unwrap();
        assert_eq!(v["family"], "ipv6");
        assert_eq!(v["local"], "[2001:db8::2]:80");
        assert_eq!(v["state"], "ESTABLISHED");
        assert_eq!(v["idle_ms"], 1520);
        assert!(v.get("reason").is_none());
    }

    #[test]
    fn sentences_say_what_happened() {
        let mut sent = reset(EventKind::RstSent);
        sent.reason = Some("NO_SOCKET".into());
        assert_eq!(
            sentence(&rep(sent.clone())),
            "10.77.0.2:8090 sent RST to 10.77.0.1:40021 with no socket: no socket for this 4-tuple (port closed or connection already gone) (NO_SOCKET) [netns 4026532001]"
        );
        sent.state = Some("CLOSE".into());
        sent.reason = Some("TCP_ABORT_ON_LINGER".into());
        sent.process = Some(Process { pid: 42, tid: 43, comm: "nginx".into() });
        assert_eq!(
            sentence(&rep(sent)),
            "10.77.0.2:8090 sent RST to 10.77.0.1:40021 in CLOSE: application closed with SO_LINGER timeout 0 (TCP_ABORT_ON_LINGER), by pid 42 (nginx) [netns 4026532001]"
        );
        let mut received = reset(EventKind::RstReceived);
        received.state = Some("ESTABLISHED".into());
        received.idle_ms = Some(300_500);
        received.netns = None;
        assert_eq!(
            sentence(&rep(received)),
            "10.77.0.2:8090 received RST from 10.77.0.1:40021 in ESTABLISHED after 5m00s idle"
        );
    }

    #[test]
    fn summary_counts_every_kind() {
        let mut s = Summary { lost: 3, ..Default::default() };
        s.counts.insert(EventKind::RstSent, 5);
        let v = Value::Object(summary_fields(&s));
        assert_eq!(v["kind"], "summary");
        assert_eq!(v["counts"]["rst_sent"], 5);
        assert_eq!(v["counts"]["rst_received"], 0);
        assert_eq!(v["lost"], 3);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(999), "999 ms");
        assert_eq!(human_duration(1520), "1.5 s");
        assert_eq!(human_duration(61_000), "1m01s");
    }
}
