//! Ring-buffer records into typed events, with the running kernel's names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rsttrace_common::{
    endpoints::{AF_INET, AF_INET6, Endpoints},
    record::{RecordHeader, RecordKind},
    reset::{
        ResetRecord, STORM_HAS_CGROUP, STORM_HAS_TTL, STORM_INDIVIDUAL, STORM_NO_REASON, STORM_NO_STATE, StormCount,
        StormKey, reset_flags,
    },
    timewait::{ReuseCount, TW_STATUS_UNKNOWN, TimeWaitRecord, source, tw_flags},
};

use super::{
    Direction, Event, Followup, FourTuple, Keepalive, Outcome, Path, Process, Reset, Rtt, TcpFlags, TimeWaitSegment,
    clock::Clock,
};
use crate::kernel::{names::KernelNames, strategy::Hook};

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

impl Decoder {
    pub fn decode(&self, bytes: &[u8]) -> Result<Event, DecodeError> {
        let header: RecordHeader = read(bytes).ok_or(DecodeError::Short { kind: 0, len: bytes.len() })?;
        let short = DecodeError::Short { kind: header.kind, len: bytes.len() };
        match RecordKind::from_u32(header.kind) {
            Some(kind @ (RecordKind::RstSent | RecordKind::RstReceived)) => {
                let record: ResetRecord = read(bytes).ok_or(short)?;
                let direction = if kind == RecordKind::RstSent { Direction::Sent } else { Direction::Received };
                Ok(Event::Reset(self.reset(direction, &record)))
            }
            Some(RecordKind::TwCollision) => {
                let record: TimeWaitRecord = read(bytes).ok_or(short)?;
                Ok(Event::Collision(self.timewait(&record)))
            }
            Some(RecordKind::TwKilled) => {
                let record: TimeWaitRecord = read(bytes).ok_or(short)?;
                Ok(Event::Killed(self.timewait(&record)))
            }
            Some(RecordKind::TwFollowup) => {
                let r: TimeWaitRecord = read(bytes).ok_or(short)?;
                Ok(Event::Followup(Followup {
                    ktime_ns: r.header.ktime_ns,
                    tuple: tuple(&r.endpoints, netns(r.netns)),
                    was_killed: r.flags & tw_flags::WAS_KILLED != 0,
                }))
            }
            None => Err(DecodeError::UnknownKind(header.kind)),
        }
    }

    fn timewait(&self, r: &TimeWaitRecord) -> TimeWaitSegment {
        let has = |flag| r.flags & flag != 0;
        let tw_fields = has(tw_flags::TW_FIELDS);
        let tw_timestamps = has(tw_flags::TW_TIMESTAMPS);
        TimeWaitSegment {
            time: self.clock.wall_time(r.header.ktime_ns),
            ktime_ns: r.header.ktime_ns,
            tuple: tuple(&r.endpoints, netns(r.netns)),
            hook: match r.source {
                source::FEXIT => Hook::FexitTimewaitProcess,
                source::KPROBE => Hook::KretprobeTimewaitProcess,
                source::KFREE_SKB => Hook::KfreeSkb,
                _ => Hook::InetSockSetState,
            },
            seq: r.segment_seq,
            timestamps: has(tw_flags::SEGMENT_OPTIONS_KNOWN).then(|| has(tw_flags::SEGMENT_TIMESTAMPS)),
            tsval: has(tw_flags::SEGMENT_TIMESTAMPS).then_some(r.segment_tsval),
            tw_rcv_nxt: tw_fields.then_some(r.tw_rcv_nxt),
            tw_ts_recent: (tw_fields && tw_timestamps).then_some(r.tw_ts_recent),
            tw_ts_recent_stamp: (tw_fields && tw_timestamps).then_some(r.tw_ts_recent_stamp),
            tw_timestamps: has(tw_flags::TW_TIMESTAMPS_KNOWN).then_some(tw_timestamps),
            tw_age_ms: has(tw_flags::ENTERED_KNOWN).then(|| r.header.ktime_ns.saturating_sub(r.entered_ns) / 1_000_000),
            tw_status: (r.tw_status != TW_STATUS_UNKNOWN).then(|| self.names.tw_status(r.tw_status as u32)),
            drop_reason: has(tw_flags::HAS_DROP_REASON).then(|| self.names.drop_reason(r.drop_reason)),
            count: 1,
        }
    }

    fn reset(&self, direction: Direction, r: &ResetRecord) -> Reset {
        let has = |flag| r.flags & flag != 0;
        let state = has(reset_flags::HAS_STATE).then(|| self.names.tcp_state(r.state as u32));
        let reason =
            (direction == Direction::Sent && has(reset_flags::HAS_REASON)).then(|| self.names.reset_reason(r.reason));
        let synchronized = state.as_ref().is_some_and(|s| s.is_synchronized());
        let activity = direction == Direction::Received && has(reset_flags::HAS_ACTIVITY) && synchronized;
        let since = |stamps: &[u32]| {
            activity.then(|| jiffies_since(r.now_jiffies, stamps)).flatten().map(|j| self.clock.jiffies_to_ms(j))
        };
        let idle_ms = since(&[r.last_sent_jiffies, r.last_received_jiffies, r.last_ack_jiffies]);
        let peer_silent_ms = since(&[r.last_received_jiffies, r.last_ack_jiffies]);
        let keepalive = (direction == Direction::Received && has(reset_flags::KEEPALIVE_KNOWN)).then(|| {
            if has(reset_flags::KEEPALIVE_ON) {
                Keepalive::After(self.clock.jiffies_to_ms(r.keepalive_jiffies))
            } else {
                Keepalive::Off
            }
        });
        let process = has(reset_flags::FROM_PROCESS).then(|| Process { pid: r.pid, comm: c_string(&r.comm) });
        let closed_ms = has(reset_flags::HAS_CLOSED).then(|| r.header.ktime_ns.saturating_sub(r.closed_ns) / 1_000_000);
        // The last data sent, stamped in jiffies: up to one more jiffy ago.
        let since_data_max_us = activity
            .then(|| jiffies_since(r.now_jiffies, &[r.last_sent_jiffies]))
            .flatten()
            .map(|j| self.clock.jiffies_to_us(j + 1));
        let drop_reason =
            (direction == Direction::Received && has(reset_flags::DISCARDED)).then(|| self.names.drop_reason(r.reason));
        let outcome =
            (direction == Direction::Received).then(|| Outcome::of_received(drop_reason.as_ref(), state.as_ref()));
        Reset {
            direction,
            time: self.clock.wall_time(r.header.ktime_ns),
            ktime_ns: r.header.ktime_ns,
            tuple: tuple(&r.endpoints, has(reset_flags::HAS_NETNS).then_some(r.netns)),
            state,
            reason,
            idle_ms,
            peer_silent_ms,
            keepalive,
            path: Path {
                ttl: has(reset_flags::HAS_TTL).then_some(r.ttl),
                peer_ttl: has(reset_flags::HAS_PEER_TTL).then_some(r.peer_ttl),
                via_gateway: has(reset_flags::ROUTE_KNOWN).then(|| has(reset_flags::VIA_GATEWAY)),
                rtt: has(reset_flags::HAS_RTT_MIN)
                    .then_some(r.rtt_min_us)
                    .zip(since_data_max_us)
                    .map(|(min_us, since_data_max_us)| Rtt { min_us, since_data_max_us }),
            },
            peer_closed_ms: closed_ms.filter(|_| direction == Direction::Received),
            closed_ms: closed_ms.filter(|_| direction == Direction::Sent),
            answered: (direction == Direction::Sent && has(reset_flags::ANSWERS_SEGMENT))
                .then_some(TcpFlags(r.segment_flags)),
            process,
            cgroup_id: has(reset_flags::HAS_CGROUP).then_some(r.cgroup_id),
            outcome,
            drop_reason,
            count: 1,
            interval_ms: None,
            unit: None,
            netns_name: None,
        }
    }
}

impl Decoder {
    /// Accepted reuse the kernel counted under one peer in an interval, per
    /// CPU: the earliest first record, standing for them all. None when no
    /// CPU counted any.
    pub fn reuse(&self, per_cpu: &[ReuseCount]) -> Option<Event> {
        let (first, count) = reused(per_cpu)?;
        Some(Event::Collision(TimeWaitSegment { count, ..self.timewait(&first.first) }))
    }

    /// Resets the kernel counted under one storm table key in an interval,
    /// per CPU: one aggregated reset, the first counted one's time and peer
    /// port. None when every reset was recorded one by one.
    pub fn storm(&self, key: &StormKey, per_cpu: &[StormCount], interval_ms: u64) -> Option<Event> {
        let counted = counted(per_cpu)?;

        let direction = if key.kind == RecordKind::RstSent as u8 { Direction::Sent } else { Direction::Received };
        // The key leaves 0 the port that varies; the first counted one's.
        let (local_port, remote_port) =
            if key.local_port == 0 { (counted.port, key.remote_port) } else { (key.local_port, counted.port) };
        let endpoints = Endpoints {
            family: key.family,
            local_port,
            remote_port,
            local_addr: key.local_addr,
            remote_addr: key.remote_addr,
            ..Default::default()
        };
        let state = (key.state != STORM_NO_STATE).then(|| self.names.tcp_state(u32::from(key.state)));
        let known_reason = key.reason != STORM_NO_REASON;
        let reason = (direction == Direction::Sent && known_reason).then(|| self.names.reset_reason(key.reason));
        let drop_reason = (key.discarded != 0 && known_reason).then(|| self.names.drop_reason(key.reason));
        let outcome =
            (direction == Direction::Received).then(|| Outcome::of_received(drop_reason.as_ref(), state.as_ref()));
        Some(Event::Reset(Reset {
            direction,
            time: self.clock.wall_time(counted.first_ns),
            ktime_ns: counted.first_ns,
            tuple: tuple(&endpoints, netns(key.netns)),
            state,
            reason,
            idle_ms: None,
            peer_silent_ms: None,
            keepalive: None,
            path: Path { ttl: counted.ttl, ..Default::default() },
            peer_closed_ms: None,
            closed_ms: None,
            // The storm table keeps no segment: what the first answered is
            // not known.
            answered: None,
            process: None,
            cgroup_id: counted.cgroup_id,
            outcome,
            drop_reason,
            count: counted.count,
            interval_ms: Some(interval_ms),
            unit: None,
            netns_name: None,
        }))
    }
}

/// One key's resets past the individual ones, summed over the CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counted {
    pub count: u64,
    /// The earliest first counted reset of any CPU, and its port (the one
    /// the key leaves 0) and TTL (when known).
    pub first_ns: u64,
    pub port: u16,
    pub ttl: Option<u8>,
    /// The cgroup that owns the socket of the first counted one, when read.
    pub cgroup_id: Option<u64>,
}

/// What one key's per-CPU values say: None when every reset was recorded
/// one by one.
fn counted(per_cpu: &[StormCount]) -> Option<Counted> {
    let counted_on = |c: &StormCount| c.seen.saturating_sub(STORM_INDIVIDUAL);
    let count: u64 = per_cpu.iter().map(counted_on).sum();
    let first = per_cpu.iter().filter(|c| counted_on(c) > 0).min_by_key(|c| c.first_ns)?;
    Some(Counted {
        count,
        first_ns: first.first_ns,
        port: first.port,
        ttl: (first.flags & STORM_HAS_TTL != 0).then_some(first.ttl),
        cgroup_id: (first.flags & STORM_HAS_CGROUP != 0).then_some(first.cgroup_id),
    })
}

/// One peer's accepted reuse in an interval, summed over the CPUs: the
/// earliest first record and the count. None when no CPU counted any.
fn reused(per_cpu: &[ReuseCount]) -> Option<(&ReuseCount, u64)> {
    let first = per_cpu.iter().filter(|c| c.count > 0).min_by_key(|c| c.first.header.ktime_ns)?;
    Some((first, per_cpu.iter().map(|c| c.count).sum()))
}

/// TIME_WAIT records carry 0 for a namespace that could not be read.
fn netns(value: u32) -> Option<u32> {
    (value != 0).then_some(value)
}

/// Jiffies since the most recent of the socket's activity `stamps`. Zero
/// stamps were never set. Arithmetic wraps like the kernel's 32-bit jiffies.
fn jiffies_since(now: u32, stamps: &[u32]) -> Option<u32> {
    stamps
        .iter()
        .filter(|&&stamp| stamp != 0)
        .map(|&stamp| now.wrapping_sub(stamp))
        // A stamp "after" now (negative age) wraps to a huge value: ignore it.
        .filter(|&age| age < u32::MAX / 2)
        .min()
}

fn tuple(e: &Endpoints, netns: Option<u32>) -> FourTuple {
    FourTuple {
        local: socket_addr(e.family, &e.local_addr, e.local_port),
        remote: socket_addr(e.family, &e.remote_addr, e.remote_port),
        netns,
    }
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
    use std::time::SystemTime;

    use super::*;
    use crate::kernel::{
        btf::typed,
        names::{DropReason, ResetReason, TcpState, TwStatus},
    };

    pub(crate) fn names() -> KernelNames {
        let states = [
            (1, "ESTABLISHED"),
            (2, "SYN_SENT"),
            (5, "FIN_WAIT2"),
            (6, "TIME_WAIT"),
            (7, "CLOSE"),
            (8, "CLOSE_WAIT"),
            (10, "LISTEN"),
        ];
        let reasons =
            [(1, "NO_SOCKET"), (12, "TCP_ABORT_ON_LINGER"), (6, "TCP_ABORT_ON_DATA"), (9, "TCP_TIMEWAIT_SOCKET")];
        let statuses = [(0, "SUCCESS"), (1, "RST"), (2, "ACK"), (3, "SYN")];
        let drops = [(2, "NOT_SPECIFIED"), (3, "NO_SOCKET"), (45, "TCP_RESET"), (90, "TCP_RFC7323_TW_PAWS")];
        let pairs = |pairs: &[(u32, &str)]| pairs.iter().map(|(v, n)| (*v, n.to_string())).collect::<Vec<_>>();
        KernelNames {
            tcp_states: typed(pairs(&states), TcpState::from_name),
            reset_reasons: typed(pairs(&reasons), ResetReason::from_name),
            drop_reasons: typed(pairs(&drops), DropReason::from_name),
            tw_statuses: typed(pairs(&statuses), TwStatus::from_name),
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

    pub(crate) fn record_bytes<T>(r: &T) -> Vec<u8> {
        // SAFETY: records are repr(C) plain data.
        unsafe { std::slice::from_raw_parts((r as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn a_discarded_rst_has_its_outcome_and_drop_reason() {
        let mut r = v4_record(RecordKind::RstReceived);
        (r.reason, r.state, r.ttl) = (2, 10, 61);
        r.flags = reset_flags::DISCARDED | reset_flags::HAS_TTL | reset_flags::HAS_SOCKET | reset_flags::HAS_STATE;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!("a reset") };
        assert_eq!(e.outcome, Some(Outcome::HalfOpen));
        assert_eq!(e.drop_reason, Some(DropReason::NotSpecified));
        assert_eq!(e.state, Some(TcpState::Listen));
        assert_eq!((e.path.ttl, e.count, e.interval_ms), (Some(61), 1, None));
        // Without the flag the same bytes are a reset that ended a
        // connection; `reason` is not read as a drop reason.
        r.flags &= !reset_flags::DISCARDED;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!("a reset") };
        assert_eq!((e.outcome, e.drop_reason), (Some(Outcome::Reset), None));
        // A sent reset has no outcome.
        let Event::Reset(e) = decoder().decode(&bytes(&v4_record(RecordKind::RstSent))).unwrap() else {
            panic!("a reset")
        };
        assert_eq!(e.outcome, None);
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
        r.flags = tw_flags::SEGMENT_OPTIONS_KNOWN
            | tw_flags::TW_FIELDS
            | tw_flags::TW_TIMESTAMPS_KNOWN
            | tw_flags::ENTERED_KNOWN
            | tw_flags::HAS_DROP_REASON;
        let Event::Collision(e) = decoder().decode(&record_bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.hook, Hook::KfreeSkb);
        assert_eq!((e.seq, e.tw_rcv_nxt), (2417517023, Some(2418336172)));
        assert_eq!(e.timestamps, Some(false));
        assert_eq!(e.tw_timestamps, Some(false));
        assert_eq!(e.tw_ts_recent, None);
        assert_eq!(e.tw_age_ms, Some(50));
        assert_eq!(e.drop_reason, Some(DropReason::NotSpecified));
        assert_eq!(e.tw_status, None);
        assert_eq!(e.tuple.netns, Some(77));
    }

    #[test]
    fn unread_options_are_unknown_not_absent() {
        let mut r = TimeWaitRecord::default();
        r.header.kind = RecordKind::TwCollision as u32;
        r.endpoints = v4_endpoints();
        r.source = source::FEXIT;
        r.tw_status = 2;
        r.flags = tw_flags::TW_FIELDS;
        let Event::Collision(e) = decoder().decode(&record_bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.timestamps, None, "the SYN's options were not read");
        assert_eq!(e.tw_timestamps, None, "the old connection's timestamps were not read");
        assert_eq!(e.tw_status, Some(TwStatus::Ack));
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
        let Event::Followup(e) = decoder().decode(&record_bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.ktime_ns, 7_011_000_000);
        assert!(e.was_killed);
        assert_eq!(e.tuple.netns, None);
    }

    #[test]
    fn decodes_a_no_socket_reset() {
        let mut r = v4_record(RecordKind::RstSent);
        r.reason = 1;
        r.netns = 4026532001;
        r.flags = reset_flags::HAS_REASON | reset_flags::HAS_NETNS;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.direction, Direction::Sent);
        assert_eq!(e.tuple.local, "10.77.0.2:8090".parse().unwrap());
        assert_eq!(e.tuple.remote, "10.77.0.1:40021".parse().unwrap());
        assert_eq!(e.reason, Some(ResetReason::NoSocket));
        assert_eq!(e.state, None);
        assert_eq!(e.tuple.netns, Some(4026532001));
        assert_eq!(e.process, None);
        assert_eq!(e.cgroup_id, None, "no socket, no cgroup");
        assert_eq!(e.time.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis(), 1500);
    }

    #[test]
    fn decodes_the_cgroup_of_the_socket() {
        let mut r = v4_record(RecordKind::RstReceived);
        r.flags = reset_flags::HAS_SOCKET | reset_flags::HAS_STATE | reset_flags::HAS_CGROUP;
        r.state = 2;
        r.cgroup_id = 8812;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.cgroup_id, Some(8812));
        assert_eq!((e.unit, e.netns_name), (None, None), "named later, after the filters");
        r.flags &= !reset_flags::HAS_CGROUP;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.cgroup_id, None);
    }

    #[test]
    fn decodes_the_process_of_an_abort() {
        let mut r = v4_record(RecordKind::RstSent);
        r.flags = reset_flags::FROM_PROCESS | reset_flags::HAS_STATE | reset_flags::HAS_REASON;
        r.state = 7;
        r.reason = 12;
        r.pid = 4242;
        r.comm[..5].copy_from_slice(b"nginx");
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.state, Some(TcpState::Close));
        assert_eq!(e.reason, Some(ResetReason::TcpAbortOnLinger));
        assert_eq!(e.process, Some(Process { pid: 4242, comm: "nginx".into() }));
    }

    #[test]
    fn unknown_numbers_still_decode_with_their_value() {
        let mut r = v4_record(RecordKind::RstSent);
        r.flags = reset_flags::HAS_STATE | reset_flags::HAS_REASON;
        r.state = 99;
        r.reason = 77;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.state, Some(TcpState::Unnamed(99)));
        assert_eq!(e.reason, Some(ResetReason::Unnamed(77)));
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
    fn peer_silence_ignores_what_this_host_sent() {
        // The forgotten-connection case: this host wrote just now, the peer
        // was last heard of 8 s ago.
        let mut r = v4_record(RecordKind::RstReceived);
        r.flags = reset_flags::HAS_STATE | reset_flags::HAS_ACTIVITY | reset_flags::KEEPALIVE_KNOWN;
        r.state = 1;
        r.now_jiffies = 10_000;
        r.last_sent_jiffies = 10_000;
        r.last_received_jiffies = 7_000;
        r.last_ack_jiffies = 8_000;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.idle_ms, Some(0));
        assert_eq!(e.peer_silent_ms, Some(8000));
        assert_eq!(e.keepalive, Some(Keepalive::Off));
        r.flags |= reset_flags::KEEPALIVE_ON;
        r.keepalive_jiffies = 7200 * 250;
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.keepalive, Some(Keepalive::After(7_200_000)));
        r.flags &= !(reset_flags::KEEPALIVE_KNOWN | reset_flags::KEEPALIVE_ON);
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.keepalive, None, "unknown");
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
        assert_eq!(e.state, Some(TcpState::SynSent));
        assert_eq!(e.idle_ms, None);
    }

    #[test]
    fn ipv6_and_v4_mapped_addresses() {
        let mut r = v4_record(RecordKind::RstSent);
        r.endpoints.family = AF_INET6;
        r.endpoints.local_addr = "2001:db8::2".parse::<Ipv6Addr>().unwrap().octets();
        r.endpoints.remote_addr = "::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets();
        let Event::Reset(e) = decoder().decode(&bytes(&r)).unwrap() else { panic!() };
        assert_eq!(e.tuple.local, "[2001:db8::2]:8090".parse().unwrap());
        assert_eq!(e.tuple.remote, "10.0.0.1:40021".parse().unwrap());
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

    fn cpu(seen: u64, first_ns: u64, port: u16) -> StormCount {
        StormCount { seen, first_ns, port, ..Default::default() }
    }

    fn reuse(count: u64, first_ns: u64) -> ReuseCount {
        let mut r = ReuseCount { count, ..Default::default() };
        r.first.header.ktime_ns = first_ns;
        r
    }

    #[test]
    fn reuse_sums_every_cpu_with_the_earliest_first() {
        assert!(reused(&[reuse(0, 0), reuse(0, 0)]).is_none(), "no CPU counted");
        let values = [reuse(4, 900), reuse(0, 0), reuse(2, 700)];
        let (first, count) = reused(&values).unwrap();
        assert_eq!((first.first.header.ktime_ns, count), (700, 6));
    }

    #[test]
    fn counts_past_the_individual_ones_on_every_cpu() {
        assert_eq!(counted(&[cpu(STORM_INDIVIDUAL, 0, 0), cpu(3, 0, 0)]), None, "all recorded one by one");
        let c = counted(&[cpu(STORM_INDIVIDUAL + 5, 900, 41000), cpu(STORM_INDIVIDUAL + 2, 700, 42000), cpu(1, 0, 0)])
            .unwrap();
        assert_eq!(
            (c.count, c.first_ns, c.port, c.ttl, c.cgroup_id),
            (7, 700, 42000, None, None),
            "the earliest first"
        );
        let owned = StormCount { flags: STORM_HAS_CGROUP, cgroup_id: 4242, ..cpu(STORM_INDIVIDUAL + 1, 500, 43000) };
        let c = counted(&[owned, cpu(STORM_INDIVIDUAL + 2, 900, 41000)]).unwrap();
        assert_eq!((c.count, c.cgroup_id), (3, Some(4242)), "the first one's owner");
    }
}
