//! The output contract, byte for byte: a recorded set of kernel records of
//! every kind goes through decoding, correlation and rendering, and the JSON
//! lines, text lines and journal entries must equal the files in
//! `testdata/golden/`. A change that alters them breaks the contract other
//! tools parse; `RSTTRACE_UPDATE_GOLDEN=1 cargo test golden` rewrites them
//! for a deliberate addition, to be reviewed in the diff.

use std::{
    cell::RefCell,
    io,
    path::{Path, PathBuf},
    rc::Rc,
    time::SystemTime,
};

use rsttrace_common::{
    endpoints::{AF_INET, AF_INET6, Endpoints},
    record::RecordKind,
    reset::{ResetRecord, STORM_INDIVIDUAL, STORM_NO_REASON, STORM_NO_STATE, StormCount, StormKey, reset_flags},
    timewait::{TW_STATUS_UNKNOWN, TimeWaitRecord, source, tw_flags},
};

use crate::{
    events::{
        clock::Clock,
        correlate::{Correlator, Windows},
        decode::Decoder,
        decode::tests::record_bytes,
        filter::Filter,
    },
    kernel::{
        limitation::Limitation,
        strategy::{Hook, Strategy},
    },
    output::{
        Format,
        record::{Ready, Timestamp},
        sink::Sink,
    },
    owners::Owners,
    pipeline::Pipeline,
};

const MS: u64 = 1_000_000;
/// Wall clock = kernel monotonic clock + this: 2023-11-14T22:13:20Z at 0.
const EPOCH_OFFSET_NS: i128 = 1_700_000_000_000_000_000;
/// When the ready and summary records were written.
fn fixed_time() -> Timestamp {
    Timestamp(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_100))
}

fn endpoints(local: &str, remote: &str) -> Endpoints {
    let (local, remote): (std::net::SocketAddr, std::net::SocketAddr) =
        (local.parse().unwrap(), remote.parse().unwrap());
    let mut e = Endpoints { local_port: local.port(), remote_port: remote.port(), ..Default::default() };
    match (local.ip(), remote.ip()) {
        (std::net::IpAddr::V4(l), std::net::IpAddr::V4(r)) => {
            e.family = AF_INET;
            e.local_addr[..4].copy_from_slice(&l.octets());
            e.remote_addr[..4].copy_from_slice(&r.octets());
        }
        (std::net::IpAddr::V6(l), std::net::IpAddr::V6(r)) => {
            e.family = AF_INET6;
            e.local_addr = l.octets();
            e.remote_addr = r.octets();
        }
        _ => panic!("mixed families"),
    }
    e
}

fn reset(kind: RecordKind, at_ms: u64, local: &str, remote: &str) -> ResetRecord {
    let mut r = ResetRecord::default();
    r.header.kind = kind as u32;
    r.header.ktime_ns = at_ms * MS;
    r.endpoints = endpoints(local, remote);
    r.netns = 4026532001;
    r.flags = reset_flags::HAS_NETNS;
    r
}

fn timewait(kind: RecordKind, at_ms: u64, src: u8, local: &str, remote: &str) -> TimeWaitRecord {
    let mut r = TimeWaitRecord::default();
    r.header.kind = kind as u32;
    r.header.ktime_ns = at_ms * MS;
    r.endpoints = endpoints(local, remote);
    r.netns = 4026532002;
    r.source = src;
    r.tw_status = TW_STATUS_UNKNOWN;
    r
}

/// The recorded kernel records, in ring order, with the ms at which the
/// daemon's tick ran between them (None: no tick).
fn recorded() -> Vec<(Option<u64>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut push = |tick: Option<u64>, b: Vec<u8>| out.push((tick, b));

    // A closed port, both ends (6.10+: reason, no socket).
    let mut r = reset(RecordKind::RstSent, 1000, "10.77.0.2:9", "10.77.0.1:41146");
    r.reason = 1;
    r.flags |= reset_flags::HAS_REASON;
    push(None, record_bytes(&r));
    let mut r = reset(RecordKind::RstReceived, 1000, "10.77.0.1:41146", "10.77.0.2:9");
    r.state = 2;
    r.flags |= reset_flags::HAS_STATE | reset_flags::HAS_SOCKET | reset_flags::HAS_ACTIVITY;
    r.now_jiffies = 500;
    r.last_sent_jiffies = 499;
    push(None, record_bytes(&r));
    // SO_LINGER 0 over IPv6, by a process.
    let mut r = reset(RecordKind::RstSent, 1100, "[fd77::2]:7777", "[fd77::1]:35850");
    r.state = 7;
    r.reason = 12;
    r.pid = 14110;
    r.comm[..7].copy_from_slice(b"python3");
    r.flags |= reset_flags::HAS_STATE | reset_flags::HAS_SOCKET | reset_flags::HAS_REASON | reset_flags::FROM_PROCESS;
    push(None, record_bytes(&r));
    // Received after 1.5 s idle, namespace unknown.
    let mut r = reset(RecordKind::RstReceived, 1200, "10.77.0.1:50530", "10.77.0.2:45865");
    r.state = 1;
    r.flags = reset_flags::HAS_STATE | reset_flags::HAS_SOCKET | reset_flags::HAS_ACTIVITY;
    r.now_jiffies = 10_000;
    r.last_sent_jiffies = 9_625;
    r.last_received_jiffies = 9_600;
    r.last_ack_jiffies = 9_500;
    // The peer's own RST: the TTL its segments come with.
    r.ttl = 63;
    r.peer_ttl = 63;
    r.flags |= reset_flags::HAS_TTL | reset_flags::HAS_PEER_TTL;
    push(None, record_bytes(&r));
    // A device in between forgot the connection: this host wrote after 6
    // minutes of silence, an RST came back; keepalive off; appended to the
    // recorded set when rst_received gained peer_silent_ms.
    let mut r = reset(RecordKind::RstReceived, 1250, "10.77.0.2:8090", "10.77.0.1:40500");
    r.state = 1;
    r.flags |=
        reset_flags::HAS_STATE | reset_flags::HAS_SOCKET | reset_flags::HAS_ACTIVITY | reset_flags::KEEPALIVE_KNOWN;
    r.now_jiffies = 100_000;
    r.last_sent_jiffies = 100_000;
    r.last_received_jiffies = 10_000;
    r.last_ack_jiffies = 10_000;
    // A load balancer's forgery: its own TTL, not the peer's; answered
    // sooner than the RTT allows (recorded when rst_received gained origin).
    r.ttl = 64;
    r.peer_ttl = 63;
    r.rtt_min_us = 40_000;
    r.flags |= reset_flags::HAS_TTL
        | reset_flags::HAS_PEER_TTL
        | reset_flags::ROUTE_KNOWN
        | reset_flags::VIA_GATEWAY
        | reset_flags::HAS_RTT_MIN;
    push(None, record_bytes(&r));
    // A second forgery from that peer network, after 5 minutes: with the
    // first, the device's idle timeout (recorded with idle_timeout).
    let mut r = reset(RecordKind::RstReceived, 1260, "10.77.0.2:8090", "10.77.0.3:40600");
    r.state = 1;
    r.flags |=
        reset_flags::HAS_STATE | reset_flags::HAS_SOCKET | reset_flags::HAS_ACTIVITY | reset_flags::KEEPALIVE_KNOWN;
    r.now_jiffies = 100_000;
    r.last_sent_jiffies = 100_000;
    r.last_received_jiffies = 25_000;
    r.last_ack_jiffies = 25_000;
    r.ttl = 64;
    r.flags |= reset_flags::HAS_TTL | reset_flags::ROUTE_KNOWN | reset_flags::VIA_GATEWAY;
    push(None, record_bytes(&r));
    // The keep-alive pool race (recorded when resets gained a cause): the
    // client wrote on a pooled connection 1.27 s after the server's FIN,
    // and the server's TIME_WAIT socket (FIN_WAIT2 substate) reset it.
    let mut r = reset(RecordKind::RstReceived, 1270, "10.77.0.1:40700", "10.77.0.2:8080");
    r.state = 8;
    r.flags |= reset_flags::HAS_STATE
        | reset_flags::HAS_SOCKET
        | reset_flags::HAS_ACTIVITY
        | reset_flags::KEEPALIVE_KNOWN
        | reset_flags::HAS_CLOSED;
    r.now_jiffies = 200_000;
    r.last_sent_jiffies = 200_000;
    r.last_received_jiffies = 200_000 - 318;
    r.last_ack_jiffies = 200_000 - 318;
    r.closed_ns = 0;
    push(None, record_bytes(&r));
    let mut r = reset(RecordKind::RstSent, 1270, "10.77.0.2:8080", "10.77.0.1:40700");
    r.state = 6;
    r.reason = 9;
    r.segment_flags = 0x18;
    r.closed_ns = 0;
    r.flags |= reset_flags::HAS_STATE
        | reset_flags::HAS_SOCKET
        | reset_flags::HAS_REASON
        | reset_flags::ANSWERS_SEGMENT
        | reset_flags::HAS_CLOSED;
    push(None, record_bytes(&r));
    // Before 6.10: no reason; and numbers this build does not know.
    let mut r = reset(RecordKind::RstSent, 1300, "10.77.0.2:8080", "10.77.0.1:40000");
    r.state = 1;
    r.flags |= reset_flags::HAS_STATE | reset_flags::HAS_SOCKET;
    push(None, record_bytes(&r));
    let mut r = reset(RecordKind::RstSent, 1310, "10.77.0.2:8080", "10.77.0.1:40001");
    r.state = 99;
    r.reason = 77;
    r.flags |= reset_flags::HAS_STATE | reset_flags::HAS_SOCKET | reset_flags::HAS_REASON;
    push(None, record_bytes(&r));

    // The seed case (tracepoint strategy): SYN answered with a stale ACK,
    // the peer's RST kills the TIME_WAIT socket, its retry 11 ms later.
    let (server, lb) = ("10.77.0.2:8090", "10.77.0.1:40021");
    let mut r = timewait(RecordKind::TwCollision, 2000, source::KFREE_SKB, server, lb);
    r.segment_seq = 1467819630;
    r.tw_rcv_nxt = 1469966126;
    r.drop_reason = 2;
    r.entered_ns = 1950 * MS;
    r.flags = tw_flags::SEGMENT_OPTIONS_KNOWN
        | tw_flags::TW_FIELDS
        | tw_flags::TW_TIMESTAMPS_KNOWN
        | tw_flags::ENTERED_KNOWN
        | tw_flags::HAS_DROP_REASON;
    push(None, record_bytes(&r));
    let mut r = timewait(RecordKind::TwKilled, 2001, source::KFREE_SKB, server, lb);
    r.segment_seq = 1469966126;
    r.tw_rcv_nxt = 1469966126;
    r.drop_reason = 2;
    r.entered_ns = 1950 * MS;
    r.flags = tw_flags::SEGMENT_OPTIONS_KNOWN
        | tw_flags::TW_FIELDS
        | tw_flags::TW_TIMESTAMPS_KNOWN
        | tw_flags::ENTERED_KNOWN
        | tw_flags::HAS_DROP_REASON;
    push(None, record_bytes(&r));
    let mut r = timewait(RecordKind::TwFollowup, 2011, source::SET_STATE, server, lb);
    r.marked_ns = 2000 * MS;
    r.entered_ns = 1950 * MS;
    r.flags = tw_flags::WAS_KILLED | tw_flags::ENTERED_KNOWN;
    push(Some(2100), record_bytes(&r));

    // fexit: the kernel's RST verdict (half-closed TIME_WAIT), no retry.
    let mut r = timewait(RecordKind::TwCollision, 3000, source::FEXIT, server, "10.77.0.1:40022");
    r.tw_status = 1;
    r.segment_seq = 100;
    r.tw_rcv_nxt = 200;
    r.flags = tw_flags::SEGMENT_OPTIONS_KNOWN | tw_flags::TW_FIELDS | tw_flags::TW_TIMESTAMPS_KNOWN;
    push(None, record_bytes(&r));
    // fexit: PAWS, timestamps on both sides, entered before rsttrace began.
    let mut r = timewait(RecordKind::TwCollision, 3500, source::FEXIT, "[fd77::2]:8090", "[fd77::1]:40023");
    r.tw_status = 2;
    r.segment_seq = 300;
    r.tw_rcv_nxt = 200;
    r.segment_tsval = 1000;
    r.tw_ts_recent = 5000;
    r.tw_ts_recent_stamp = 77;
    r.flags = tw_flags::SEGMENT_OPTIONS_KNOWN
        | tw_flags::SEGMENT_TIMESTAMPS
        | tw_flags::TW_FIELDS
        | tw_flags::TW_TIMESTAMPS_KNOWN
        | tw_flags::TW_TIMESTAMPS;
    push(None, record_bytes(&r));
    // kprobe: a status this build does not know.
    let mut r = timewait(RecordKind::TwCollision, 3600, source::KPROBE, server, "10.77.0.1:40024");
    r.tw_status = 9;
    r.segment_seq = 300;
    r.tw_rcv_nxt = 200;
    r.flags =
        tw_flags::SEGMENT_OPTIONS_KNOWN | tw_flags::TW_FIELDS | tw_flags::TW_TIMESTAMPS_KNOWN | tw_flags::TW_TIMESTAMPS;
    push(None, record_bytes(&r));
    // A stale ACK turned RST: this host's RST from the TIME_WAIT socket.
    let mut r = timewait(RecordKind::TwCollision, 3700, source::KFREE_SKB, server, "10.77.0.1:40025");
    r.segment_seq = 100;
    r.tw_rcv_nxt = 200;
    r.drop_reason = 2;
    r.flags = tw_flags::SEGMENT_OPTIONS_KNOWN
        | tw_flags::TW_FIELDS
        | tw_flags::TW_TIMESTAMPS_KNOWN
        | tw_flags::HAS_DROP_REASON;
    push(None, record_bytes(&r));
    let mut r = reset(RecordKind::RstSent, 3700, server, "10.77.0.1:40025");
    r.netns = 4026532002;
    r.state = 6;
    r.reason = 1;
    r.flags |= reset_flags::HAS_STATE | reset_flags::HAS_SOCKET | reset_flags::HAS_REASON;
    push(None, record_bytes(&r));
    // Harmless reuse: three accepted SYNs by fexit, one by the tracepoint
    // strategy from another peer; a repeated SYN on a pending collision.
    for (i, port) in [40100u16, 40101, 40102].into_iter().enumerate() {
        let mut r =
            timewait(RecordKind::TwCollision, 4000 + i as u64, source::FEXIT, server, &format!("10.77.0.1:{port}"));
        r.tw_status = 3;
        r.segment_seq = 5000;
        r.tw_rcv_nxt = 200;
        r.entered_ns = 3900 * MS;
        r.flags = tw_flags::SEGMENT_OPTIONS_KNOWN
            | tw_flags::TW_FIELDS
            | tw_flags::TW_TIMESTAMPS_KNOWN
            | tw_flags::ENTERED_KNOWN;
        push(None, record_bytes(&r));
    }
    let mut r = timewait(RecordKind::TwCollision, 4500, source::SET_STATE, server, "10.77.0.3:40200");
    r.segment_seq = 5000;
    r.tw_rcv_nxt = 200;
    r.entered_ns = 4400 * MS;
    r.flags =
        tw_flags::SEGMENT_OPTIONS_KNOWN | tw_flags::TW_FIELDS | tw_flags::TW_TIMESTAMPS_KNOWN | tw_flags::ENTERED_KNOWN;
    push(None, record_bytes(&r));
    let mut r = timewait(RecordKind::TwCollision, 4600, source::FEXIT, server, "10.77.0.1:40022");
    r.tw_status = 1;
    r.segment_seq = 100;
    r.tw_rcv_nxt = 200;
    r.flags = tw_flags::SEGMENT_OPTIONS_KNOWN | tw_flags::TW_FIELDS | tw_flags::TW_TIMESTAMPS_KNOWN;
    push(Some(8100), record_bytes(&r));
    // After the follow-up window: a collision still pending at the end.
    let mut r = timewait(RecordKind::TwCollision, 9000, source::KFREE_SKB, server, "10.77.0.1:40026");
    r.segment_seq = 100;
    r.segment_tsval = 42;
    r.tw_rcv_nxt = 200;
    r.drop_reason = 2;
    r.flags = tw_flags::SEGMENT_OPTIONS_KNOWN
        | tw_flags::SEGMENT_TIMESTAMPS
        | tw_flags::TW_FIELDS
        | tw_flags::TW_TIMESTAMPS_KNOWN
        | tw_flags::HAS_DROP_REASON;
    push(None, record_bytes(&r));
    // RSTs the kernel discarded, aggregated per peer and outcome until the
    // end: a scan of a closed port, a health check's half-open connection,
    // an RST inside the window but not at rcv_nxt.
    for port in 41000u16..41003 {
        let mut r =
            reset(RecordKind::RstReceived, 9100 + u64::from(port - 41000), "10.77.0.2:9", &format!("10.77.0.1:{port}"));
        r.reason = 3;
        r.ttl = 64;
        r.flags |= reset_flags::DISCARDED | reset_flags::HAS_TTL;
        push(None, record_bytes(&r));
    }
    let mut r = reset(RecordKind::RstReceived, 9200, server, "10.77.0.1:41100");
    (r.reason, r.state, r.ttl) = (2, 10, 64);
    r.flags |= reset_flags::DISCARDED | reset_flags::HAS_TTL | reset_flags::HAS_SOCKET | reset_flags::HAS_STATE;
    push(None, record_bytes(&r));
    let mut r = reset(RecordKind::RstReceived, 9300, server, "10.77.0.1:40500");
    (r.reason, r.state, r.ttl) = (45, 1, 63);
    r.flags |= reset_flags::DISCARDED | reset_flags::HAS_TTL | reset_flags::HAS_SOCKET | reset_flags::HAS_STATE;
    push(None, record_bytes(&r));
    out
}

/// What the daemon writes for the recorded records, in each format.
struct Rendered {
    json: String,
    text: String,
    journal: String,
}

/// A writer the test keeps a handle on.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.borrow().clone()).unwrap()
    }
}

fn render() -> Rendered {
    let [json, text, journal] = [Format::Json, Format::Text, Format::Journal].map(through_the_pipeline);
    Rendered { json, text, journal }
}

/// The recorded records through the daemon's pipeline, written in `format`.
fn through_the_pipeline(format: Format) -> String {
    let decoder = Decoder { names: crate::events::decode::tests::names(), clock: Clock::with(250, EPOCH_OFFSET_NS) };
    let out = Shared::default();
    let sink = Sink::to(format, Box::new(out.clone()));
    // No owners: the names of this machine's cgroups and namespaces would
    // make the output depend on where the test runs.
    let owners = Owners::at(None, Path::new("/nonexistent"));
    let correlator = Correlator::new(Windows::default());
    let mut pipeline = Pipeline::new(decoder, correlator, sink, Filter::default(), None, owners);
    let ready = Ready::new(
        Strategy::Fexit,
        vec![Hook::FexitTimewaitProcess, Hook::InetSockSetState],
        "6.18.44".into(),
        &[Limitation::ResetReasonUnknown],
    );
    pipeline.ready(fixed_time(), &ready).unwrap();
    for (tick, record) in recorded() {
        pipeline.record(&record).unwrap();
        if let Some(ms) = tick {
            pipeline.tick(ms * MS).unwrap();
        }
    }
    // Storms counted in the kernel past their first resets: a closed port
    // hammered (sent, no socket) and the client's refused connections.
    for (kind, local, remote, state, reason) in [
        (RecordKind::RstSent, "10.77.0.2:9", "10.77.0.1:0", STORM_NO_STATE, 1),
        (RecordKind::RstReceived, "10.77.0.1:0", "10.77.0.2:9", 2, STORM_NO_REASON),
    ] {
        let e = endpoints(local, remote);
        let key = StormKey {
            local_addr: e.local_addr,
            remote_addr: e.remote_addr,
            local_port: e.local_port,
            remote_port: e.remote_port,
            family: e.family,
            netns: 4026532001,
            reason,
            kind: kind as u8,
            state,
            ..Default::default()
        };
        // One CPU's count: the first STORM_INDIVIDUAL went to the ring.
        let per_cpu =
            [StormCount { seen: STORM_INDIVIDUAL + 2984, first_ns: 15_000 * MS, port: 59696, ..Default::default() }];
        let storm = pipeline.decoder.storm(&key, &per_cpu, 1099).expect("counted past the individual ones");
        pipeline.event(storm).unwrap();
    }
    pipeline.finish(20_000 * MS).unwrap();
    // What the daemon reads from the kernel's counters.
    pipeline.summary.lost = 2;
    pipeline.summary.read_errors = 1;
    pipeline.summary.missed_runs = 3;
    pipeline.summary.duration_ms = 20_000;
    pipeline.summary(fixed_time()).unwrap();
    pipeline.flush().unwrap();
    out.text()
}

#[test]
fn output_is_byte_for_byte_the_contract() {
    let rendered = render();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/golden");
    let files = [("output.jsonl", &rendered.json), ("output.txt", &rendered.text), ("journal.txt", &rendered.journal)];
    if std::env::var_os("RSTTRACE_UPDATE_GOLDEN").is_some() {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        return;
    }
    for (name, text) in files {
        let expected = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (i, (want, got)) in expected.lines().zip(text.lines()).enumerate() {
            assert_eq!(got, want, "{name} line {}", i + 1);
        }
        assert_eq!(text.lines().count(), expected.lines().count(), "{name}: number of lines");
        assert_eq!(*text, expected, "{name}");
    }
}

/// docs/output.md's journal section lists, per kind, exactly the fields the
/// rule (every JSON key upper-cased) gives the rendered records.
#[test]
fn the_contract_lists_every_journal_field() {
    let contract = include_str!("../../docs/output.md");
    let section = contract.split("\n## Journal\n").nth(1).expect("docs/output.md has a Journal section");
    let section = section.split("\n## ").next().unwrap();
    let listed = |kind: &str| -> Option<String> {
        let row = section.lines().find(|l| l.trim_start().starts_with(&format!("| `{kind}` |")))?;
        Some(row.trim().trim_end_matches('|').rsplit('|').next().unwrap().replace('`', "").trim().to_string())
    };
    let mut kinds = std::collections::BTreeSet::new();
    for line in render().json.lines() {
        let serde_json::Value::Object(record) = serde_json::from_str(line).unwrap() else { panic!("{line}") };
        let kind = record["kind"].as_str().unwrap().to_string();
        let fields = record.keys().map(|k| k.to_ascii_uppercase()).collect::<Vec<_>>().join(", ");
        assert_eq!(listed(&kind).as_deref(), Some(fields.as_str()), "docs/output.md, Journal, fields of {kind}");
        kinds.insert(kind);
    }
    assert_eq!(kinds.len(), 7, "the golden set has every kind: {kinds:?}");
}
