//! Events: what the eBPF programs saw, decoded once into types
//! (`decode`), correlated into what is reported (`correlate`), and
//! filtered (`filter`).

mod abort;
mod aggregate;
pub mod cause;
pub mod clock;
pub mod collision;
pub mod correlate;
pub mod decode;
pub mod filter;
mod followup;
pub mod idle_timeout;
pub mod kernel_counts;

use std::{net::SocketAddr, time::SystemTime};

use crate::kernel::{
    names::{DropReason, ResetReason, TcpState, TwStatus},
    strategy::Hook,
};

/// A 4-tuple in its network namespace. "Local" is this host, "remote" the
/// peer, whatever the direction of the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FourTuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Network namespace inode number; None when it could not be read.
    pub netns: Option<u32>,
}

/// One decoded record of the eBPF programs.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Reset(Reset),
    /// A SYN for a 4-tuple a TIME_WAIT socket holds.
    Collision(TimeWaitSegment),
    /// An RST that killed a TIME_WAIT socket.
    Killed(TimeWaitSegment),
    /// The first connection on a 4-tuple after a collision or kill.
    Followup(Followup),
}

impl Event {
    /// When the kernel saw it (the first of those it stands for).
    pub fn ktime_ns(&self) -> u64 {
        match self {
            Event::Reset(r) => r.ktime_ns,
            Event::Collision(t) | Event::Killed(t) => t.ktime_ns,
            Event::Followup(f) => f.ktime_ns,
        }
    }
}

/// What to write out: an event, complete with what the correlation
/// added, or a finding inferred from several.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Reset(Reset),
    Collision(collision::Collision),
    Killed(Kill),
    /// Middlebox resets from one peer network: the device's idle timeout.
    IdleTimeout(idle_timeout::IdleTimeout),
}

/// An RST that killed a TIME_WAIT socket: the segment, as the socket met it.
#[derive(Clone, Debug, PartialEq)]
pub struct Kill(pub TimeWaitSegment);

impl Report {
    /// When the (first) event it stands for happened, kernel clock.
    pub fn ktime_ns(&self) -> u64 {
        match self {
            Report::Reset(r) => r.ktime_ns,
            Report::Collision(c) => c.event.ktime_ns,
            Report::Killed(k) => k.0.ktime_ns,
            Report::IdleTimeout(i) => i.last_ktime_ns,
        }
    }

    pub fn tuple(&self) -> &FourTuple {
        match self {
            Report::Reset(r) => &r.tuple,
            Report::Collision(c) => &c.event.tuple,
            Report::Killed(k) => &k.0.tuple,
            Report::IdleTimeout(i) => &i.tuple,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Sent,
    Received,
}

/// An RST this host sent or received.
#[derive(Clone, Debug, PartialEq)]
pub struct Reset {
    pub direction: Direction,
    pub time: SystemTime,
    /// Kernel monotonic time, for correlating events.
    pub ktime_ns: u64,
    pub tuple: FourTuple,
    /// The local socket's state; None when there was no socket.
    pub state: Option<TcpState>,
    /// The kernel's reset reason (sent resets, Linux 6.10+).
    pub reason: Option<ResetReason>,
    /// Received resets: time since the socket last sent or received.
    pub idle_ms: Option<u64>,
    /// Received resets: time since anything (data or ACK) came from the
    /// peer: a device in between that forgot an idle connection answers
    /// this host's first segment after the silence.
    pub peer_silent_ms: Option<u64>,
    /// Received resets: how long the connection may be silent before
    /// keepalive probes it (SO_KEEPALIVE on); None when off or unknown.
    pub keepalive: Option<Keepalive>,
    /// Received resets: what tells who sent it.
    pub path: Path,
    /// Received resets: how long before it the peer's FIN arrived (the
    /// socket was in CLOSE_WAIT or LAST_ACK).
    pub peer_closed_ms: Option<u64>,
    /// Sent resets from a TIME_WAIT socket: how long before it the
    /// connection entered TIME_WAIT (this host's FIN acknowledged).
    pub closed_ms: Option<u64>,
    /// Sent resets: the TCP flags of the segment it answers; None for this
    /// host's own abort (no segment).
    pub answered: Option<TcpFlags>,
    /// Sent resets: the process whose system call sent it.
    pub process: Option<Process>,
    /// The cgroup that owns the socket (full sockets; kernels with the 5.15
    /// layout of `sock_cgroup_data`): the
    /// inode number of its directory under /sys/fs/cgroup.
    pub cgroup_id: Option<u64>,
    /// Received resets: what the kernel did with it; None for sent ones.
    pub outcome: Option<Outcome>,
    /// Why the kernel discarded it (received resets it did not act on).
    pub drop_reason: Option<DropReason>,
    /// Resets this report stands for: 1, or more for discarded resets,
    /// which are aggregated over `interval_ms`.
    pub count: u64,
    pub interval_ms: Option<u64>,
    /// Filled in by `owners::Owners` once the reset passed the filters: the
    /// systemd unit (or cgroup path) of `cgroup_id`, and the `ip netns`
    /// name of the network namespace.
    pub unit: Option<String>,
    pub netns_name: Option<String>,
}

/// What the kernel did with a received RST. Declared in the order of their
/// names: the summary lists outcomes sorted by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    /// It reached a connection still in its handshake (SYN_RECV) through
    /// the listener: the kernel drops that connection when the RST is in
    /// its window.
    HalfOpen,
    /// The kernel discarded it: outside the window (answered with a
    /// challenge ACK when close), PAWS, a listener without the connection,
    /// a TIME_WAIT socket it did not kill.
    Ignored,
    /// No socket matched it.
    NoSocket,
    /// It ended a connection (the kernel's tcp_reset()).
    Reset,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A received RST's outcome: it ended a connection unless the kernel
    /// freed it with a drop reason (`of_discard`).
    pub fn of_received(drop_reason: Option<&DropReason>, state: Option<&TcpState>) -> Outcome {
        drop_reason.map_or(Outcome::Reset, |reason| Outcome::of_discard(reason, state))
    }

    /// A discarded RST's outcome, from its drop reason and the state of the
    /// socket that received it. Measured on 6.18: a half-open connection's
    /// RST is freed NOT_SPECIFIED at its listener; an RST to a listener
    /// without that connection, TCP_RESET.
    pub fn of_discard(reason: &DropReason, state: Option<&TcpState>) -> Outcome {
        match (reason, state) {
            (DropReason::NoSocket, _) => Outcome::NoSocket,
            (DropReason::NotSpecified, Some(TcpState::Listen)) => Outcome::HalfOpen,
            _ => Outcome::Ignored,
        }
    }
}

/// The TCP flags of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    const NAMES: [(u8, &'static str); 8] = [
        (0x01, "FIN"),
        (0x02, "SYN"),
        (0x04, "RST"),
        (0x08, "PSH"),
        (0x10, "ACK"),
        (0x20, "URG"),
        (0x40, "ECE"),
        (0x80, "CWR"),
    ];

    pub fn syn(self) -> bool {
        self.0 & 0x02 != 0
    }

    /// The names of the flags set, lowest bit first: `["PSH", "ACK"]`.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES.iter().filter(|(bit, _)| self.0 & bit != 0).map(|(_, name)| *name).collect()
    }
}

impl serde::Serialize for TcpFlags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

/// What a received reset's origin is judged by; None: not seen here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Path {
    /// The RST's IPv4 TTL or IPv6 hop limit.
    pub ttl: Option<u8>,
    /// What the peer's segments arrived with when the connection was set up.
    pub peer_ttl: Option<u8>,
    /// The socket's route to the peer goes through a gateway.
    pub via_gateway: Option<bool>,
    /// The path's minimum RTT, and at most how long before the RST this
    /// host last sent data on it.
    pub rtt: Option<Rtt>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtt {
    /// `tcp_sock.rtt_min`: no think time of the peer's, no delayed ACK.
    pub min_us: u32,
    /// An upper bound (the kernel stamps data in jiffies): the last data
    /// segment left no longer ago than this.
    pub since_data_max_us: u64,
}

/// Who sent a received RST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Origin {
    Peer,
    /// A device in between (load balancer, NAT, firewall) forged it.
    Middlebox,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The rule that decided a received RST's origin, with its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The RST's TTL differs from the peer's: it came from elsewhere.
    TtlDiffers { ttl: u8, peer_ttl: u8 },
    /// An initial TTL (no router passed) from a peer behind a gateway.
    InitialTtlViaGateway { ttl: u8 },
    /// It answered this host's data sooner than the peer could.
    FasterThanRtt { since_data_max_us: u64, rtt_min_us: u32 },
    /// Same TTL as the peer's own segments.
    SameTtl { ttl: u8 },
}

/// TTLs operating systems start from: a packet that still carries one has
/// passed no router.
const INITIAL_TTLS: [u8; 3] = [64, 128, 255];

/// Below this minimum RTT the timing rule is noise (a LAN, loopback).
const MIN_RTT_US: u32 = 1_000;

/// The timing rule only judges an RST after the peer had been quiet this
/// long: in a busy exchange a spontaneous RST can follow any segment.
const MIN_SILENCE_FOR_TIMING_MS: u64 = 1_000;

/// What else is known of the connection when its origin is judged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// How long nothing had come from the peer.
    pub peer_silent_ms: Option<u64>,
    /// The peer's FIN had come: its kernel answers data with an RST at
    /// once, however fast.
    pub peer_closed: bool,
    /// The peer is this host (loopback, or one of its own addresses):
    /// nothing lies in between.
    pub same_host: bool,
}

impl Path {
    /// Who sent the RST, by the first rule the evidence satisfies; None when
    /// it does not decide. The TTLs decide first and alone when both are
    /// known; the other rules only stand in for an unknown peer TTL, and
    /// never after the peer's FIN or towards this host itself.
    pub fn origin(&self, context: Context) -> Option<(Origin, Evidence)> {
        match (self.ttl, self.peer_ttl) {
            (Some(ttl), Some(peer_ttl)) if ttl == peer_ttl => return Some((Origin::Peer, Evidence::SameTtl { ttl })),
            (Some(ttl), Some(peer_ttl)) => {
                return Some((Origin::Middlebox, Evidence::TtlDiffers { ttl, peer_ttl }));
            }
            _ => {}
        }
        if context.peer_closed || context.same_host {
            return None;
        }
        if let Some(ttl) = self.ttl
            && self.via_gateway == Some(true)
            && INITIAL_TTLS.contains(&ttl)
        {
            return Some((Origin::Middlebox, Evidence::InitialTtlViaGateway { ttl }));
        }
        if let Some(rtt) = self.rtt
            && rtt.min_us >= MIN_RTT_US
            && rtt.since_data_max_us < rtt.min_us as u64 / 2
            && context.peer_silent_ms.is_some_and(|ms| ms >= MIN_SILENCE_FOR_TIMING_MS)
        {
            return Some((
                Origin::Middlebox,
                Evidence::FasterThanRtt { since_data_max_us: rtt.since_data_max_us, rtt_min_us: rtt.min_us },
            ));
        }
        None
    }
}

/// The socket's keepalive setting, where it could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keepalive {
    Off,
    /// Idle time before the first probe, in ms.
    After(u64),
}

/// The task whose system call made the kernel send a reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
}

/// A segment (SYN or RST) a TIME_WAIT socket handled, with the evidence the
/// hook saw.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeWaitSegment {
    pub time: SystemTime,
    pub ktime_ns: u64,
    pub tuple: FourTuple,
    /// The hook that saw it (its strategy is the record's `source`).
    pub hook: Hook,
    /// The segment's sequence number: the SYN's ISN, the RST's seq.
    pub seq: u32,
    /// Whether the segment carried TCP timestamps (None: its options could
    /// not be read), and its TSval.
    pub timestamps: Option<bool>,
    pub tsval: Option<u32>,
    /// The TIME_WAIT socket's rcv_nxt and last peer timestamp (and when, in
    /// seconds of the kernel's clock).
    pub tw_rcv_nxt: Option<u32>,
    pub tw_ts_recent: Option<u32>,
    pub tw_ts_recent_stamp: Option<u32>,
    /// Whether the old connection used timestamps.
    pub tw_timestamps: Option<bool>,
    /// How long the connection had been in TIME_WAIT.
    pub tw_age_ms: Option<u64>,
    /// The kernel's verdict, where the hook sees it (fexit, kprobe).
    pub tw_status: Option<TwStatus>,
    /// Why the kernel freed the segment (kfree_skb).
    pub drop_reason: Option<DropReason>,
    /// Segments this stands for: 1 from the ring; accepted reuse the kernel
    /// counted (the first one's fields, the interval's count).
    pub count: u64,
}

/// The first connection on a 4-tuple after a collision or kill.
#[derive(Clone, Debug, PartialEq)]
pub struct Followup {
    pub ktime_ns: u64,
    pub tuple: FourTuple,
    /// An RST had killed the TIME_WAIT socket in between.
    pub was_killed: bool,
}

impl Reset {
    pub fn origin(&self) -> Option<(Origin, Evidence)> {
        if self.direction != Direction::Received {
            return None;
        }
        let (local, remote) = (self.tuple.local.ip(), self.tuple.remote.ip());
        self.path.origin(Context {
            peer_silent_ms: self.peer_silent_ms,
            peer_closed: self.state.as_ref().is_some_and(TcpState::peer_has_closed),
            same_host: remote.is_loopback() || remote == local,
        })
    }

    /// Why it was sent, from the kernel's facts (`cause::Cause`).
    pub fn cause(&self) -> cause::Cause {
        cause::Cause::of(self)
    }

    /// What to change, following from the cause.
    pub fn advice(&self) -> Option<String> {
        self.cause().advice(self)
    }
}

#[cfg(test)]
impl Reset {
    /// A reset between the seed case's hosts (this host 10.77.0.2:8090, the
    /// peer 10.77.0.1:40021), at time 0, with nothing else known: tests set
    /// what they need.
    pub fn example(direction: Direction) -> Reset {
        Reset {
            direction,
            time: SystemTime::UNIX_EPOCH,
            ktime_ns: 0,
            tuple: FourTuple {
                local: "10.77.0.2:8090".parse().unwrap(),
                remote: "10.77.0.1:40021".parse().unwrap(),
                netns: None,
            },
            state: None,
            reason: None,
            idle_ms: None,
            peer_silent_ms: None,
            keepalive: None,
            path: Path::default(),
            peer_closed_ms: None,
            closed_ms: None,
            answered: None,
            process: None,
            cgroup_id: None,
            outcome: (direction == Direction::Received).then_some(Outcome::Reset),
            drop_reason: None,
            count: 1,
            interval_ms: None,
            unit: None,
            netns_name: None,
        }
    }
}

#[cfg(test)]
impl TimeWaitSegment {
    /// The seed case's SYN (10.77.0.1:`remote_port` -> 10.77.0.2:8090) at
    /// `at_ms`, seen by kfree_skb, without timestamps.
    pub fn example(remote_port: u16, at_ms: u64) -> TimeWaitSegment {
        TimeWaitSegment {
            time: SystemTime::UNIX_EPOCH,
            ktime_ns: at_ms * 1_000_000,
            tuple: FourTuple {
                local: "10.77.0.2:8090".parse().unwrap(),
                remote: SocketAddr::new("10.77.0.1".parse().unwrap(), remote_port),
                netns: Some(1),
            },
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(peer_silent_ms: u64, keepalive: Option<Keepalive>) -> Reset {
        Reset {
            state: Some(TcpState::Established),
            idle_ms: Some(0),
            peer_silent_ms: Some(peer_silent_ms),
            keepalive,
            ..Reset::example(Direction::Received)
        }
    }

    #[test]
    fn discarded_resets_by_reason_and_socket() {
        let listener = Some(&TcpState::Listen);
        assert_eq!(Outcome::of_discard(&DropReason::NoSocket, None), Outcome::NoSocket);
        assert_eq!(Outcome::of_discard(&DropReason::NotSpecified, listener), Outcome::HalfOpen);
        let tcp_reset = DropReason::from_name("TCP_RESET");
        assert_eq!(Outcome::of_discard(&tcp_reset, listener), Outcome::Ignored);
        assert_eq!(Outcome::of_discard(&tcp_reset, Some(&TcpState::Established)), Outcome::Ignored);
        let old = DropReason::from_name("TCP_OLD_SEQUENCE");
        assert_eq!(Outcome::of_discard(&old, Some(&TcpState::Established)), Outcome::Ignored);
        assert_eq!(Outcome::of_discard(&DropReason::NotSpecified, Some(&TcpState::TimeWait)), Outcome::Ignored);
    }

    #[test]
    fn no_advice_for_a_silence_alone() {
        // A long silence is not a cause: without evidence of a device the
        // advice would be a guess.
        assert_eq!(received(400_000, Some(Keepalive::Off)).advice(), None);
        let mut sent = received(400_000, None);
        sent.direction = Direction::Sent;
        assert_eq!(sent.advice(), None);
    }

    fn path(ttl: Option<u8>, peer_ttl: Option<u8>, via_gateway: Option<bool>, rtt: Option<(u32, u64)>) -> Path {
        Path {
            ttl,
            peer_ttl,
            via_gateway,
            rtt: rtt.map(|(min_us, since_data_max_us)| Rtt { min_us, since_data_max_us }),
        }
    }

    /// A remote peer, quiet for `silent_ms`, that had not closed.
    fn open(silent_ms: u64) -> Context {
        Context { peer_silent_ms: Some(silent_ms), ..Default::default() }
    }

    #[test]
    fn a_different_ttl_is_a_middlebox_the_same_the_peer() {
        let forged = path(Some(64), Some(63), Some(true), None).origin(open(8000));
        assert_eq!(forged, Some((Origin::Middlebox, Evidence::TtlDiffers { ttl: 64, peer_ttl: 63 })));
        let genuine = path(Some(63), Some(63), Some(true), None).origin(open(8000));
        assert_eq!(genuine, Some((Origin::Peer, Evidence::SameTtl { ttl: 63 })));
    }

    #[test]
    fn the_same_ttl_is_the_peer_whatever_the_other_rules_say() {
        // An initial TTL through a gateway (a pod whose default route has
        // one, or a peer routed without a TTL decrement), and an answer
        // faster than half the RTT: the peer's own TTL still decides.
        let genuine = path(Some(64), Some(64), Some(true), Some((50_000, 4_000))).origin(open(8000));
        assert_eq!(genuine, Some((Origin::Peer, Evidence::SameTtl { ttl: 64 })));
    }

    #[test]
    fn an_initial_ttl_through_a_gateway_only_stands_in_for_an_unknown_peer_ttl() {
        let forged = path(Some(64), None, Some(true), None).origin(open(0));
        assert_eq!(forged, Some((Origin::Middlebox, Evidence::InitialTtlViaGateway { ttl: 64 })));
        // On the same link an initial TTL is what the peer sends.
        assert_eq!(path(Some(64), None, Some(false), None).origin(open(0)), None);
        assert_eq!(path(Some(63), None, Some(true), None).origin(open(0)), None);
        // After the peer's FIN, or towards this host, it does not apply.
        let closed = Context { peer_closed: true, ..open(0) };
        assert_eq!(path(Some(64), None, Some(true), None).origin(closed), None);
        let local = Context { same_host: true, ..open(0) };
        assert_eq!(path(Some(64), None, Some(true), None).origin(local), None);
    }

    #[test]
    fn an_answer_faster_than_the_minimum_rtt_is_a_middlebox() {
        // 50 ms minimum RTT, the RST came at most 8 ms after this host's data.
        let forged = path(None, None, None, Some((50_000, 8_000))).origin(open(8000));
        assert_eq!(
            forged,
            Some((Origin::Middlebox, Evidence::FasterThanRtt { since_data_max_us: 8_000, rtt_min_us: 50_000 }))
        );
        // Not after an active exchange, not on a LAN, not in time.
        assert_eq!(path(None, None, None, Some((50_000, 8_000))).origin(open(10)), None);
        assert_eq!(path(None, None, None, Some((300, 20))).origin(open(8000)), None);
        assert_eq!(path(None, None, None, Some((50_000, 30_000))).origin(open(8000)), None);
        // The look-alike of the pool race: a 30 ms service on a 0.1 ms link
        // has a smoothed RTT near 30 ms, but its minimum RTT stays 0.1 ms.
        assert_eq!(path(None, None, None, Some((100, 4_000))).origin(open(2000)), None);
        // Never after the peer's FIN (its kernel answers at once), never
        // over loopback or to this host's own address.
        let closed = Context { peer_closed: true, ..open(8000) };
        assert_eq!(path(None, None, None, Some((50_000, 8_000))).origin(closed), None);
        let local = Context { same_host: true, ..open(8000) };
        assert_eq!(path(None, None, None, Some((50_000, 8_000))).origin(local), None);
    }

    #[test]
    fn same_host_means_loopback_or_this_hosts_own_address() {
        let mut r = received(8000, None);
        r.path = path(None, None, None, Some((50_000, 8_000)));
        assert!(matches!(r.origin(), Some((Origin::Middlebox, _))));
        r.tuple.remote = "127.0.0.1:40021".parse().unwrap();
        assert_eq!(r.origin(), None);
        r.tuple.remote = "10.77.0.2:40021".parse().unwrap();
        assert_eq!(r.origin(), None, "the peer has this host's own address");
        r.tuple = FourTuple { local: "[::1]:80".parse().unwrap(), remote: "[::1]:4000".parse().unwrap(), netns: None };
        assert_eq!(r.origin(), None);
    }

    #[test]
    fn a_middlebox_gets_advice_however_short_the_silence() {
        let mut r = received(5_000, Some(Keepalive::Off));
        r.path = path(Some(64), Some(63), None, None);
        let advice = r.advice().unwrap();
        assert!(advice.starts_with("A device between this host and 10.77.0.1"), "{advice}");
        assert!(advice.contains("after 5.0 s without a segment"), "{advice}");
        assert!(advice.contains("enable SO_KEEPALIVE"), "{advice}");
    }
}
