//! Typed events, decoded from the eBPF programs' records.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::SystemTime,
};

use rsttrace_common::{
    endpoints::{AF_INET, AF_INET6, Endpoints},
    record::{RecordHeader, RecordKind},
    reset::{ResetRecord, reset_flags},
    timewait::{TW_STATUS_UNKNOWN, TimeWaitRecord, source, tw_flags},
};

use crate::{clock::Clock, kernel_types::KernelNames};

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Reset(ResetEvent),
    TimeWait(TimeWaitEvent),
}

impl Event {
    pub fn endpoints(&self) -> (&SocketAddr, &SocketAddr) {
        match self {
            Event::Reset(r) => (&r.local, &r.remote),
            Event::TimeWait(t) => (&t.local, &t.remote),
        }
    }
}

/// The `kind` of an event record in the output contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    RstSent,
    RstReceived,
    TwCollision,
    TwKilled,
}

impl EventKind {
    pub const ALL: [EventKind; 4] =
        [EventKind::RstSent, EventKind::RstReceived, EventKind::TwCollision, EventKind::TwKilled];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RstSent => "rst_sent",
            EventKind::RstReceived => "rst_received",
            EventKind::TwCollision => "tw_collision",
            EventKind::TwKilled => "tw_killed",
        }
    }
}

/// What met a TIME_WAIT socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeWaitKind {
    /// A SYN for the 4-tuple the TIME_WAIT socket holds.
    Collision,
    /// An RST that killed the TIME_WAIT socket.
    Killed,
    /// The first connection on the 4-tuple after a collision or kill.
    Followup,
}

/// A segment handled by a TIME_WAIT socket, with the evidence the hook saw.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeWaitEvent {
    pub kind: TimeWaitKind,
    pub time: SystemTime,
    /// Kernel monotonic time, for correlating events.
    pub ktime_ns: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub netns: Option<u32>,
    /// The hook strategy that saw it: "fexit", "kprobe" or "tracepoint".
    pub source: &'static str,
    /// The hook itself ("kfree_skb", "inet_sock_set_state", …).
    pub hook: &'static str,
    /// The segment's sequence number: the SYN's ISN, the RST's seq.
    pub segment_seq: Option<u32>,
    /// Whether the segment carried TCP timestamps, and its TSval.
    pub segment_timestamps: Option<bool>,
    pub segment_tsval: Option<u32>,
    /// The TIME_WAIT socket's rcv_nxt and last peer timestamp.
    pub tw_rcv_nxt: Option<u32>,
    pub tw_ts_recent: Option<u32>,
    pub tw_ts_recent_stamp: Option<u32>,
    /// Whether the old connection used timestamps.
    pub tw_timestamps: Option<bool>,
    pub tw_age_ms: Option<u64>,
    /// `enum tcp_tw_status` name returned by the kernel ("ACK", "SYN" …).
    pub tw_status: Option<String>,
    /// `enum skb_drop_reason` name of the freed segment.
    pub drop_reason: Option<String>,
    /// Follow-up: time since the collision, and whether an RST killed the
    /// TIME_WAIT socket in between.
    pub since_collision_ms: Option<u64>,
    pub was_killed: bool,
}

/// The task whose system call made the kernel send a reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
}

/// An RST this host sent (`RstSent`) or received (`RstReceived`).
#[derive(Clone, Debug, PartialEq)]
pub struct ResetEvent {
    pub kind: EventKind,
    pub time: SystemTime,
    /// Kernel monotonic time, for correlating events.
    pub ktime_ns: u64,
    /// This host's end.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Network namespace inode number.
    pub netns: Option<u32>,
    /// TCP state name of the local socket; None when there was no socket.
    pub state: Option<String>,
    /// Kernel reset reason name (sent resets on 6.10+).
    pub reason: Option<String>,
    /// Received resets: time since the socket last sent or received.
    pub idle_ms: Option<u64>,
    /// Sent resets: the process that caused it, when sent from its context.
    pub process: Option<Process>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    Short { kind: u32, len: usize },
    UnknownKind(u32),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Short { kind, len } => {
                write!(f, "record of kind {kind} too short ({len} bytes)")
            }
            DecodeError::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
        }
    }
}

/// Turns ring-buffer bytes into events, with the running kernel's names.
pub struct Decoder {
    pub names: KernelNames,
    pub clock: Clock,
}

/// TCP states in which a connection has exchanged data, so idle time means
/// something (not SYN_SENT, SYN_RECV, LISTEN, CLOSE).
const SYNCHRONIZED_STATES: [&str; 6] = ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "CLOSING", "LAST_ACK"];

impl Decoder {
    pub fn decode(&self, bytes: &[u8]) -> Result<Event, DecodeError> {
        let header: RecordHeader = read(bytes).ok_or(DecodeError::Short { kind: 0, len: bytes.len() })?;
        let short = DecodeError::Short { kind: header.kind, len: bytes.len() };
        match RecordKind::from_u32(header.kind) {
            Some(RecordKind::RstSent | RecordKind::RstReceived) => {
                let record: ResetRecord = read(bytes).ok_or(short)?;
                Ok(Event::Reset(self.reset(&record)))
            }
            Some(kind @ (RecordKind::TwCollision | RecordKind::TwKilled | RecordKind::TwFollowup)) => {
                let record: TimeWaitRecord = read(bytes).ok_or(short)?;
                Ok(Event::TimeWait(self.timewait(kind, &record)))
            }
            None => Err(DecodeError::UnknownKind(header.kind)),
        }
    }

    fn timewait(&self, kind: RecordKind, r: &TimeWaitRecord) -> TimeWaitEvent {
        let has = |flag| r.flags & flag != 0;
        let ms_between = |from: u64, to: u64| to.saturating_sub(from) / 1_000_000;
        let (local, remote) = addresses(&r.endpoints);
        let tw_fields = has(tw_flags::TW_FIELDS);
        let tw_timestamps = has(tw_flags::TW_TIMESTAMPS);
        let name = |table: &HashMap<u32, String>, value: u32, prefix: &str| {
            table.get(&value).cloned().unwrap_or_else(|| format!("{prefix}_{value}"))
        };
        TimeWaitEvent {
            kind: match kind {
                RecordKind::TwCollision => TimeWaitKind::Collision,
                RecordKind::TwKilled => TimeWaitKind::Killed,
                _ => TimeWaitKind::Followup,
            },
            time: self.clock.wall_time(r.header.ktime_ns),
            ktime_ns: r.header.ktime_ns,
            local,
            remote,
            netns: (r.netns != 0).then_some(r.netns),
            source: match r.source {
                source::FEXIT => "fexit",
                source::KPROBE => "kprobe",
                _ => "tracepoint",
            },
            hook: match r.source {
                source::FEXIT => "fexit/tcp_timewait_state_process",
                source::KPROBE => "kretprobe/tcp_timewait_state_process",
                source::KFREE_SKB => "raw_tracepoint/kfree_skb",
                _ => "raw_tracepoint/inet_sock_set_state",
            },
            segment_seq: (kind != RecordKind::TwFollowup).then_some(r.segment_seq),
            segment_timestamps: has(tw_flags::SEGMENT_OPTIONS_KNOWN).then(|| has(tw_flags::SEGMENT_TIMESTAMPS)),
            segment_tsval: has(tw_flags::SEGMENT_TIMESTAMPS).then_some(r.segment_tsval),
            tw_rcv_nxt: tw_fields.then_some(r.tw_rcv_nxt),
            tw_ts_recent: (tw_fields && tw_timestamps).then_some(r.tw_ts_recent),
            tw_ts_recent_stamp: (tw_fields && tw_timestamps).then_some(r.tw_ts_recent_stamp),
            tw_timestamps: (tw_fields || r.source == source::SET_STATE).then_some(tw_timestamps),
            tw_age_ms: has(tw_flags::ENTERED_KNOWN).then(|| ms_between(r.entered_ns, r.header.ktime_ns)),
            tw_status: (r.tw_status != TW_STATUS_UNKNOWN)
                .then(|| name(&self.names.tw_statuses, r.tw_status as u32, "STATUS")),
            drop_reason: has(tw_flags::HAS_DROP_REASON)
                .then(|| name(&self.names.drop_reasons, r.drop_reason, "REASON")),
            since_collision_ms: (kind == RecordKind::TwFollowup && r.marked_ns != 0)
                .then(|| ms_between(r.marked_ns, r.header.ktime_ns)),
            was_killed: has(tw_flags::WAS_KILLED),
        }
    }

    fn reset(&self, r: &ResetRecord) -> ResetEvent {
        let has = |flag| r.flags & flag != 0;
        let kind =
            if r.header.kind == RecordKind::RstSent as u32 { EventKind::RstSent } else { EventKind::RstReceived };
        let state = has(reset_flags::HAS_STATE).then(|| self.state_name(r.state as u32));
        let reason = (kind == EventKind::RstSent && has(reset_flags::HAS_REASON)).then(|| {
            self.names.reset_reasons.get(&r.reason).cloned().unwrap_or_else(|| format!("REASON_{}", r.reason))
        });
        let synchronized = state.as_deref().is_some_and(|s| SYNCHRONIZED_STATES.contains(&s));
        let idle_ms = (kind == EventKind::RstReceived && has(reset_flags::HAS_ACTIVITY) && synchronized)
            .then(|| idle_jiffies(r))
            .flatten()
            .map(|j| self.clock.jiffies_to_ms(j));
        let process =
            has(reset_flags::FROM_PROCESS).then(|| Process { pid: r.pid, tid: r.tid, comm: c_string(&r.comm) });
        let (local, remote) = addresses(&r.endpoints);
        ResetEvent {
            kind,
            time: self.clock.wall_time(r.header.ktime_ns),
            ktime_ns: r.header.ktime_ns,
            local,
            remote,
            netns: has(reset_flags::HAS_NETNS).then_some(r.netns),
            state,
            reason,
            idle_ms,
            process,
        }
    }

    fn state_name(&self, state: u32) -> String {
        self.names.tcp_state(state).map(str::to_string).unwrap_or_else(|| format!("STATE_{state}"))
    }
}

/// Jiffies since the most recent of the socket's activity stamps. Zero
/// stamps were never set. Arithmetic wraps like the kernel's 32-bit jiffies.
fn idle_jiffies(r: &ResetRecord) -> Option<u32> {
    [r.last_sent_jiffies, r.last_received_jiffies, r.last_ack_jiffies]
        .into_iter()
        .filter(|&stamp| stamp != 0)
        .map(|stamp| r.now_jiffies.wrapping_sub(stamp))
        // A stamp "after" now (negative age) wraps to a huge value: ignore it.
        .filter(|&age| age < u32::MAX / 2)
        .min()
}

fn addresses(e: &Endpoints) -> (SocketAddr, SocketAddr) {
    (socket_addr(e.family, &e.local_addr, e.local_port), socket_addr(e.family, &e.remote_addr, e.remote_port))
}

fn socket_addr(family: u16, addr: &[u8; 16], port: u16) -> SocketAddr {
    let ip = match family {
        AF_INET6 => {
            let v6 = Ipv6Addr::from(*addr);
            // A dual-stack socket talking IPv4 stores v4-mapped addresses;
            // the wire carried IPv4, so show IPv4.
            v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6))
        }
        AF_INET => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, port)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= size_of::<T>())
        // SAFETY: length checked; T is a plain-old-data record.
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn names() -> KernelNames {
        let states = [(1, "ESTABLISHED"), (2, "SYN_SENT"), (6, "TIME_WAIT"), (7, "CLOSE"), (10, "LISTEN")];
        let reasons = [(1, "NO_SOCKET"), (12, "TCP_ABORT_ON_LINGER")];
        let statuses = [(0, "SUCCESS"), (1, "RST"), (2, "ACK"), (3, "SYN")];
        let drops = [(2, "NOT_SPECIFIED"), (90, "TCP_RFC7323_TW_PAWS")];
        let table = |pairs: &[(u32, &str)]| pairs.iter().map(|(v, n)| (*v, n.to_string())).collect::<HashMap<_, _>>();
        KernelNames {
            tcp_states: table(&states),
            reset_reasons: table(&reasons),
            drop_reasons: table(&drops),
            tw_statuses: table(&statuses),
        }
    }

    pub(crate) fn decoder() -> Decoder {
        Decoder { names: names(), clock: Clock::with(250, 0) }
    }

    fn bytes(r: &ResetRecord) -> Vec<u8> {
        record_bytes(r)
    }

    pub(crate) fn v4_endpoints() -> Endpoints {
        let mut e = Endpoints { family: AF_INET, local_port: 8090, remote_port: 40021, ..Default::default() };
        e.local_addr[..4].copy_from_slice(&[10, 77, 0, 2]);
        e.remote_addr[..4].copy_from_slice(&[10, 77, 0, 1]);
        e
    }

    fn v4_record(kind: RecordKind) -> ResetRecord {
        let mut r = ResetRecord::default();
        r.header.kind = kind as u32;
        r.header.ktime_ns = 1_500_000_000;
        r.endpoints = v4_endpoints();
        r
    }

    fn record_bytes<T>(r: &T) -> Vec<u8> {
        // SAFETY: records are repr(C) plain data.
        unsafe { std::slice::from_raw_parts((r as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn decodes_a_stale_ack_collision_seen_by_kfree_skb() {
        let mut r = TimeWaitRecord::default();
        r.header.kind = RecordKind::TwCollision as u32;
        r.header.ktime_ns = 5_000_000_000;
        r.endpoints = v4_endpoints();
        r.netns = 77;
        r.source = source::KFREE_SKB;
        r.tw_status = TW_STATUS_UNKNOWN;
        r.segment_seq = 2417517023;
        r.tw_rcv_nxt = 2418336172;
        r.drop_reason = 2;
        r.entered_ns = 4_950_000_000;
        r.flags =
            tw_flags::SEGMENT_OPTIONS_KNOWN | tw_flags::TW_FIELDS | tw_flags::ENTERED_KNOWN | tw_flags::HAS_DROP_REASON;
        let Event::TimeWait(e) = decoder().decode(&record_bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.kind, TimeWaitKind::Collision);
        assert_eq!(e.source, "tracepoint");
        assert_eq!((e.segment_seq, e.tw_rcv_nxt), (Some(2417517023), Some(2418336172)));
        assert_eq!(e.segment_timestamps, Some(false));
        assert_eq!(e.tw_timestamps, Some(false));
        assert_eq!(e.tw_ts_recent, None);
        assert_eq!(e.tw_age_ms, Some(50));
        assert_eq!(e.drop_reason.as_deref(), Some("NOT_SPECIFIED"));
        assert_eq!(e.tw_status, None);
        assert_eq!(e.netns, Some(77));
    }

    #[test]
    fn decodes_a_followup_with_its_delay() {
        let mut r = TimeWaitRecord::default();
        r.header.kind = RecordKind::TwFollowup as u32;
        r.header.ktime_ns = 7_011_000_000;
        r.marked_ns = 7_000_000_000;
        r.endpoints = v4_endpoints();
        r.source = source::SET_STATE;
        r.flags = tw_flags::WAS_KILLED;
        let Event::TimeWait(e) = decoder().decode(&record_bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.kind, TimeWaitKind::Followup);
        assert_eq!(e.since_collision_ms, Some(11));
        assert!(e.was_killed);
        assert_eq!(e.segment_seq, None);
    }

    #[test]
    fn decodes_a_no_socket_reset() {
        let mut r = v4_record(RecordKind::RstSent);
        r.reason = 1;
        r.netns = 4026532001;
        r.flags = reset_flags::HAS_REASON | reset_flags::HAS_NETNS;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.kind, EventKind::RstSent);
        assert_eq!(e.local, "10.77.0.2:8090".parse().unwrap());
        assert_eq!(e.remote, "10.77.0.1:40021".parse().unwrap());
        assert_eq!(e.reason.as_deref(), Some("NO_SOCKET"));
        assert_eq!(e.state, None);
        assert_eq!(e.netns, Some(4026532001));
        assert_eq!(e.process, None);
        assert_eq!(e.time.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis(), 1500);
    }

    #[test]
    fn decodes_the_process_of_an_abort() {
        let mut r = v4_record(RecordKind::RstSent);
        r.flags = reset_flags::FROM_PROCESS | reset_flags::HAS_STATE | reset_flags::HAS_REASON;
        r.state = 7;
        r.reason = 12;
        r.pid = 4242;
        r.tid = 4243;
        r.comm[..5].copy_from_slice(b"nginx");
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.state.as_deref(), Some("CLOSE"));
        assert_eq!(e.reason.as_deref(), Some("TCP_ABORT_ON_LINGER"));
        assert_eq!(e.process, Some(Process { pid: 4242, tid: 4243, comm: "nginx".into() }));
    }

    #[test]
    fn unknown_numbers_still_decode_with_their_value() {
        let mut r = v4_record(RecordKind::RstSent);
        r.flags = reset_flags::HAS_STATE | reset_flags::HAS_REASON;
        r.state = 99;
        r.reason = 77;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.state.as_deref(), Some("STATE_99"));
        assert_eq!(e.reason.as_deref(), Some("REASON_77"));
    }

    #[test]
    fn idle_time_is_since_the_latest_activity() {
        let mut r = v4_record(RecordKind::RstReceived);
        r.flags = reset_flags::HAS_STATE | reset_flags::HAS_ACTIVITY;
        r.state = 1;
        r.now_jiffies = 10_000;
        r.last_sent_jiffies = 9_000;
        r.last_received_jiffies = 9_500; // latest: 500 jiffies = 2000 ms at HZ=250
        r.last_ack_jiffies = 8_000;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.idle_ms, Some(2000));
        assert_eq!(e.reason, None, "received resets carry no reason");
    }

    #[test]
    fn idle_time_survives_jiffies_wrapping() {
        let mut r = v4_record(RecordKind::RstReceived);
        r.flags = reset_flags::HAS_STATE | reset_flags::HAS_ACTIVITY;
        r.state = 1;
        r.now_jiffies = 100;
        r.last_sent_jiffies = u32::MAX - 149; // 250 jiffies ago, across the wrap
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.idle_ms, Some(1000));
    }

    #[test]
    fn no_idle_time_before_the_handshake_completed() {
        let mut r = v4_record(RecordKind::RstReceived);
        r.flags = reset_flags::HAS_STATE | reset_flags::HAS_ACTIVITY;
        r.state = 2; // SYN_SENT
        r.now_jiffies = 100;
        r.last_sent_jiffies = 50;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.state.as_deref(), Some("SYN_SENT"));
        assert_eq!(e.idle_ms, None);
    }

    #[test]
    fn ipv6_and_v4_mapped_addresses() {
        let mut r = v4_record(RecordKind::RstSent);
        r.endpoints.family = AF_INET6;
        r.endpoints.local_addr = "2001:db8::2".parse::<Ipv6Addr>().unwrap().octets();
        r.endpoints.remote_addr = "::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets();
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.local, "[2001:db8::2]:8090".parse().unwrap());
        assert_eq!(e.remote, "10.0.0.1:40021".parse().unwrap());
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        let r = v4_record(RecordKind::RstSent);
        let b = bytes(&r);
        assert_eq!(decoder().decode(&b[..50]), Err(DecodeError::Short { kind: 1, len: 50 }));
        assert!(matches!(decoder().decode(&b[..4]), Err(DecodeError::Short { .. })));
        let mut unknown = b.clone();
        unknown[0] = 200;
        assert_eq!(decoder().decode(&unknown), Err(DecodeError::UnknownKind(200)));
    }
}
