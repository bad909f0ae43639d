//! Events: what the eBPF programs saw, decoded once into types
//! (`decode`), correlated into what is reported (`correlate`), and
//! filtered (`filter`).

pub mod clock;
pub mod correlate;
pub mod decode;
pub mod filter;

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
    /// Sent resets: the process whose system call sent it.
    pub process: Option<Process>,
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
}

/// The first connection on a 4-tuple after a collision or kill.
#[derive(Clone, Debug, PartialEq)]
pub struct Followup {
    pub ktime_ns: u64,
    pub tuple: FourTuple,
    /// An RST had killed the TIME_WAIT socket in between.
    pub was_killed: bool,
}

/// Below this, a silence before a received reset is ordinary.
const LONG_SILENCE_MS: u64 = 30_000;

impl Reset {
    /// What to change when a received reset came after a long silence from
    /// the peer: the sign of a device in between that forgot the connection.
    pub fn advice(&self) -> Option<String> {
        let silence =
            self.peer_silent_ms.filter(|&ms| self.direction == Direction::Received && ms >= LONG_SILENCE_MS)?;
        let peer = self.tuple.remote.ip();
        let forgot = format!(
            "Nothing had come from {peer} for {} s before this RST: a load balancer, NAT or firewall in between may have dropped the idle connection and answered for the peer (idle timeouts of 60 to 350 s are common)",
            silence / 1000
        );
        let sysctl = "net.ipv4.tcp_keepalive_time only applies to sockets that enable SO_KEEPALIVE";
        Some(match self.keepalive {
            Some(Keepalive::Off) => format!(
                "{forgot}; keepalive is off on this socket: enable SO_KEEPALIVE with TCP_KEEPIDLE below the device's idle timeout (or send keepalives in the application's protocol), or raise the device's idle timeout; {sysctl}"
            ),
            Some(Keepalive::After(after)) if after >= silence => format!(
                "{forgot}; keepalive is on but probes only after {} s of silence: lower TCP_KEEPIDLE (or net.ipv4.tcp_keepalive_time) below the device's idle timeout, or raise that timeout",
                after / 1000
            ),
            Some(Keepalive::After(after)) => format!(
                "{forgot}; keepalive is on ({} s) yet nothing came back: its probes went unanswered, so the path or the peer was already gone",
                after / 1000
            ),
            None => format!(
                "{forgot}; keep the connection busy below the device's idle timeout (SO_KEEPALIVE with TCP_KEEPIDLE, or application keepalives), or raise that timeout; {sysctl}"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(peer_silent_ms: u64, keepalive: Option<Keepalive>) -> Reset {
        Reset {
            direction: Direction::Received,
            time: SystemTime::UNIX_EPOCH,
            ktime_ns: 0,
            tuple: FourTuple {
                local: "10.77.0.2:8090".parse().unwrap(),
                remote: "10.77.0.1:40021".parse().unwrap(),
                netns: None,
            },
            state: Some(TcpState::Established),
            reason: None,
            idle_ms: Some(0),
            peer_silent_ms: Some(peer_silent_ms),
            keepalive,
            process: None,
        }
    }

    #[test]
    fn advice_only_after_a_long_silence() {
        assert_eq!(received(29_999, Some(Keepalive::Off)).advice(), None);
        let advice = received(400_000, Some(Keepalive::After(7_200_000))).advice().unwrap();
        assert!(advice.contains("for 400 s"), "{advice}");
        assert!(advice.contains("probes only after 7200 s of silence: lower TCP_KEEPIDLE"), "{advice}");
        let advice = received(400_000, Some(Keepalive::After(60_000))).advice().unwrap();
        assert!(advice.contains("keepalive is on (60 s) yet nothing came back"), "{advice}");
        let advice = received(400_000, None).advice().unwrap();
        assert!(advice.contains("only applies to sockets that enable SO_KEEPALIVE"), "{advice}");
        let mut sent = received(400_000, None);
        sent.direction = Direction::Sent;
        assert_eq!(sent.advice(), None, "only received resets");
    }
}
