//! The output contract (../shared/DESIGN.md): JSON lines, and text sentences.
//! Other tools parse this: extend it, never break it.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use serde_json::{Map, Value, json};

use crate::event::{Event, EventKind, ResetEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One readable sentence per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// RFC 3339, UTC, microseconds: `2026-11-21T10:32:00.123456Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// `10.0.0.2:80` or `[2001:db8::2]:80`.
fn endpoint(addr: &SocketAddr) -> String {
    addr.to_string()
}

/// An event's keys in contract order: the common ones, then its kind's.
pub fn fields(event: &Event) -> Map<String, Value> {
    match event {
        Event::Reset(r) => reset_fields(r),
    }
}

fn reset_fields(r: &ResetEvent) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(r.time)));
    m.insert("kind".into(), json!(r.kind.as_str()));
    m.insert(
        "family".into(),
        json!(if r.is_ipv6() { "ipv6" } else { "ipv4" }),
    );
    m.insert("local".into(), json!(endpoint(&r.local)));
    m.insert("remote".into(), json!(endpoint(&r.remote)));
    m.insert("netns".into(), json!(r.netns));
    m.insert("state".into(), json!(r.state));
    match r.kind {
        EventKind::RstSent => {
            m.insert("reason".into(), json!(r.reason));
            m.insert("pid".into(), json!(r.process.as_ref().map(|p| p.pid)));
            m.insert("comm".into(), json!(r.process.as_ref().map(|p| &p.comm)));
        }
        EventKind::RstReceived => {
            m.insert("idle_ms".into(), json!(r.idle_ms));
        }
    }
    m
}

pub fn json_line(fields: &Map<String, Value>) -> String {
    Value::Object(fields.clone()).to_string()
}

/// The human sentence for an event: the text format's line and, later, the
/// journal's MESSAGE.
pub fn sentence(event: &Event) -> String {
    match event {
        Event::Reset(r) => reset_sentence(r),
    }
}

fn reset_sentence(r: &ResetEvent) -> String {
    let mut s = match r.kind {
        EventKind::RstSent => format!("{} sent RST to {}", r.local, r.remote),
        EventKind::RstReceived => format!("{} received RST from {}", r.local, r.remote),
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
    if let Some(netns) = r.netns {
        s += &format!(" [netns {netns}]");
    }
    s
}

/// What a kernel reset reason means for a user, by name (numbers vary).
fn reason_explained(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "NO_SOCKET" => "no socket for this 4-tuple (port closed or connection already gone)",
        "TCP_INVALID_ACK_SEQUENCE" | "TCP_ACK_UNSENT_DATA" => {
            "segment acknowledged data never sent"
        }
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
pub fn ready_fields(
    strategy: &str,
    hooks: &[String],
    kernel: &str,
    notes: &[String],
) -> Map<String, Value> {
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
    let hooks: Vec<&str> = fields["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut s = format!(
        "rsttrace {} ready on Linux {}: strategy {}, hooks {}",
        fields["version"].as_str().unwrap_or_default(),
        fields["kernel"].as_str().unwrap_or_default(),
        fields["strategy"].as_str().unwrap_or_default(),
        hooks.join(", ")
    );
    for note in fields["limitations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
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
    /// Records userspace could not decode.
    pub undecodable: u64,
    /// Events written after filtering.
    pub reported: u64,
    pub duration: Duration,
}

pub fn summary_fields(s: &Summary) -> Map<String, Value> {
    let counts: Map<String, Value> = EventKind::ALL
        .iter()
        .map(|k| {
            (
                k.as_str().to_string(),
                json!(s.counts.get(k).copied().unwrap_or(0)),
            )
        })
        .collect();
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(SystemTime::now())));
    m.insert("kind".into(), json!("summary"));
    m.insert("counts".into(), Value::Object(counts));
    m.insert("lost".into(), json!(s.lost));
    m.insert("read_errors".into(), json!(s.read_errors));
    m.insert("undecodable".into(), json!(s.undecodable));
    m.insert("reported".into(), json!(s.reported));
    m.insert("duration_ms".into(), json!(s.duration.as_millis() as u64));
    m
}

pub fn summary_sentence(s: &Summary) -> String {
    let counts: Vec<String> = EventKind::ALL
        .iter()
        .map(|k| format!("{} {}", s.counts.get(k).copied().unwrap_or(0), k.as_str()))
        .collect();
    format!(
        "rsttrace summary after {}: {}; {} reported after filters; {} lost (ring buffer full), {} kernel read errors, {} undecodable",
        human_duration(s.duration.as_millis() as u64),
        counts.join(", "),
        s.reported,
        s.lost,
        s.read_errors,
        s.undecodable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Process, ResetEvent};

    fn reset(kind: EventKind) -> ResetEvent {
        ResetEvent {
            kind,
            time: SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
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
        let line = json_line(&fields(&Event::Reset(r)));
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
        let v: Value = serde_json::from_str(&json_line(&fields(&Event::Reset(r)))).unwrap();
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
            sentence(&Event::Reset(sent.clone())),
            "10.77.0.2:8090 sent RST to 10.77.0.1:40021 with no socket: no socket for this 4-tuple (port closed or connection already gone) (NO_SOCKET) [netns 4026532001]"
        );
        sent.state = Some("CLOSE".into());
        sent.reason = Some("TCP_ABORT_ON_LINGER".into());
        sent.process = Some(Process {
            pid: 42,
            tid: 43,
            comm: "nginx".into(),
        });
        assert_eq!(
            sentence(&Event::Reset(sent)),
            "10.77.0.2:8090 sent RST to 10.77.0.1:40021 in CLOSE: application closed with SO_LINGER timeout 0 (TCP_ABORT_ON_LINGER), by pid 42 (nginx) [netns 4026532001]"
        );
        let mut received = reset(EventKind::RstReceived);
        received.state = Some("ESTABLISHED".into());
        received.idle_ms = Some(300_500);
        received.netns = None;
        assert_eq!(
            sentence(&Event::Reset(received)),
            "10.77.0.2:8090 received RST from 10.77.0.1:40021 in ESTABLISHED after 5m00s idle"
        );
    }

    #[test]
    fn summary_counts_every_kind() {
        let mut s = Summary {
            lost: 3,
            ..Default::default()
        };
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
