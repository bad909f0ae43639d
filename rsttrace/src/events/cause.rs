//! Why a reset was sent, in words an engineer acts on: decided from the
//! kernel's facts about the socket and the segment (its state, the reset
//! reason, the segment the RST answers, the TTLs), never from a guess. Each
//! cause has its advice here; docs/output.md has the table.

use serde::Serialize;

use super::{Direction, Keepalive, Origin, Outcome, Reset};
use crate::kernel::names::{ResetReason, TcpState};

/// The cause of a sent or received RST (`cause` in the output). Declared in
/// the order of their names: metrics and summaries list them sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Cause {
    /// Sent: this host's application aborted the connection (close() with
    /// SO_LINGER 0 or with unread data, or a disconnect), without the
    /// kernel saying which.
    ApplicationAbort,
    /// Sent: data came on a connection this host had already closed (a
    /// TIME_WAIT socket still waiting for the peer's FIN, or an orphaned
    /// FIN_WAIT socket).
    DataAfterClose,
    /// Sent: keepalive probes went unanswered.
    KeepaliveTimeout,
    /// Received: a device in between forged it (`origin: middlebox`).
    Middlebox,
    /// Sent: the segment's 4-tuple has no connection here (a SYN-less
    /// segment nobody owns, or one a listener has no handshake for: the
    /// connection ended here long ago, or never existed).
    NoConnection,
    /// Sent: a SYN to a port nothing listens on.
    NoListener,
    /// Received: the peer reset an open connection itself (the TTL proves
    /// it was the peer): its application aborted, or its kernel dropped
    /// the connection.
    PeerAbort,
    /// Received: the peer had closed the connection (its FIN came) before
    /// this host wrote on it, and the peer's kernel reset it.
    PeerHadClosed,
    /// Sent: a SYN reused the 4-tuple of a connection this host had not
    /// finished closing (a half-closed TIME_WAIT socket answers with an RST;
    /// its `tw_collision` record has the details).
    PortReuse,
    /// Received: the peer refused this host's SYN (nothing listens there,
    /// or a firewall rejects it).
    Refused,
    /// The evidence does not decide.
    Unknown,
    /// Sent: this host's application closed the socket with data it had
    /// not read.
    UnreadData,
}

impl Cause {
    #[cfg(test)]
    pub const ALL: [Cause; 12] = [
        Cause::ApplicationAbort,
        Cause::DataAfterClose,
        Cause::KeepaliveTimeout,
        Cause::Middlebox,
        Cause::NoConnection,
        Cause::NoListener,
        Cause::PeerAbort,
        Cause::PeerHadClosed,
        Cause::PortReuse,
        Cause::Refused,
        Cause::Unknown,
        Cause::UnreadData,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn of(r: &Reset) -> Cause {
        match r.direction {
            Direction::Sent => Self::of_sent(r),
            Direction::Received => Self::of_received(r),
        }
    }

    fn of_sent(r: &Reset) -> Cause {
        // The kernel's own reason decides where it names a cause (6.10+).
        match r.reason {
            Some(ResetReason::TcpAbortOnData) => return Cause::DataAfterClose,
            Some(ResetReason::TcpAbortOnClose) => return Cause::UnreadData,
            Some(ResetReason::TcpKeepaliveTimeout) => return Cause::KeepaliveTimeout,
            _ => {}
        }
        let answered = r.answered;
        match (&r.state, answered) {
            // No socket: a SYN found no listener, anything else no connection.
            (None, Some(flags)) if flags.syn() => Cause::NoListener,
            (None, Some(_)) => Cause::NoConnection,
            // A listener answers a segment without SYN only when no
            // handshake of its own matches it (expired, or never begun).
            (Some(TcpState::Listen), Some(flags)) if !flags.syn() => Cause::NoConnection,
            // A TIME_WAIT socket answers with an RST only a SYN (half-closed:
            // it still waited for the peer's FIN) or new data after this
            // host's close (tcp_timewait_state_process, FIN_WAIT2 substate).
            (Some(TcpState::TimeWait), Some(flags)) if flags.syn() => Cause::PortReuse,
            (Some(TcpState::TimeWait), Some(_)) => Cause::DataAfterClose,
            // A full socket already CLOSE that answers a segment: the kernel
            // aborted an orphaned FIN_WAIT socket the peer sent data to
            // (tcp_rcv_state_process, TCPAbortOnData), the only path that
            // closes it before the RST goes out.
            (Some(TcpState::Close), Some(flags)) if !flags.syn() => Cause::DataAfterClose,
            // Its own abort from a system call: close() with SO_LINGER 0 or
            // unread data, or a disconnect.
            (Some(TcpState::Close), None) if r.process.is_some() => Cause::ApplicationAbort,
            _ => Cause::Unknown,
        }
    }

    fn of_received(r: &Reset) -> Cause {
        if r.outcome.is_some_and(|o| o != Outcome::Reset) {
            // Discarded: what the kernel did with it is the record's outcome;
            // why it was sent is not known here.
            return Cause::Unknown;
        }
        match r.origin() {
            Some((Origin::Middlebox, _)) => return Cause::Middlebox,
            _ if r.state.as_ref().is_some_and(TcpState::peer_has_closed) => return Cause::PeerHadClosed,
            _ if r.state == Some(TcpState::SynSent) => return Cause::Refused,
            Some((Origin::Peer, _)) => return Cause::PeerAbort,
            None => {}
        }
        Cause::Unknown
    }

    /// What to change, for the causes with something to change; None for
    /// the others.
    pub fn advice(self, r: &Reset) -> Option<String> {
        let peer = r.tuple.remote.ip();
        let after = |ms: Option<u64>| ms.map(|ms| format!(" {} earlier", human_duration(ms))).unwrap_or_default();
        Some(match self {
            Cause::PeerHadClosed => format!(
                "{peer} had closed this connection{} and reset this host's next segment on it: this host's idle timeout for pooled connections must be shorter than {peer}'s keep-alive timeout; check a pooled connection before reusing it, or retry idempotent requests",
                after(r.peer_closed_ms)
            ),
            Cause::DataAfterClose => format!(
                "{peer} wrote on a connection this host had closed{}: this server's keep-alive timeout must be longer than the peer's (the load balancer's) idle timeout, for example nginx keepalive_timeout above an AWS ALB's idle_timeout.timeout_seconds or HAProxy's timeout http-keep-alive",
                after(r.closed_ms)
            ),
            Cause::Middlebox => middlebox_advice(r),
            Cause::UnreadData => "The application closed the socket before reading all that the peer sent: read the request (or response) to its end before close(), or shut the socket down for writing first".to_string(),
            Cause::KeepaliveTimeout => format!("Keepalive probes to {peer} went unanswered: the peer or the path to it is gone"),
            Cause::ApplicationAbort
            | Cause::NoConnection
            | Cause::NoListener
            | Cause::PeerAbort
            | Cause::PortReuse
            | Cause::Refused
            | Cause::Unknown => return None,
        })
    }
}

/// A device in between forgot the connection while it was idle: keep it
/// busier than the device's idle timeout, or raise that timeout.
fn middlebox_advice(r: &Reset) -> String {
    let peer = r.tuple.remote.ip();
    let silence = r.peer_silent_ms.map(|ms| format!(" after {} without a segment from the peer", human_duration(ms)));
    let forgot = format!(
        "A device between this host and {peer} (load balancer, NAT, firewall) sent this RST{}: it most likely forgot the idle connection",
        silence.unwrap_or_default()
    );
    let sysctl = "net.ipv4.tcp_keepalive_time only applies to sockets that enable SO_KEEPALIVE";
    match r.keepalive {
        Some(Keepalive::Off) => format!(
            "{forgot}; keepalive is off on this socket: enable SO_KEEPALIVE with TCP_KEEPIDLE below the device's idle timeout (or send keepalives in the application's protocol), or raise the device's idle timeout; {sysctl}"
        ),
        Some(Keepalive::After(after)) => format!(
            "{forgot}; keepalive is on but probes only after {} of silence: lower TCP_KEEPIDLE (or net.ipv4.tcp_keepalive_time) below the device's idle timeout, or raise that timeout",
            human_duration(after)
        ),
        None => format!(
            "{forgot}; keep the connection busy below the device's idle timeout (SO_KEEPALIVE with TCP_KEEPIDLE, or application keepalives), or raise that timeout; {sysctl}"
        ),
    }
}

/// As the sentences write durations.
pub fn human_duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Path, Process, TcpFlags};

    const SYN: Option<TcpFlags> = Some(TcpFlags(0x02));
    const ACK_PSH: Option<TcpFlags> = Some(TcpFlags(0x18));

    fn sent(state: Option<TcpState>, answered: Option<TcpFlags>) -> Reset {
        Reset { state, answered, ..Reset::example(Direction::Sent) }
    }

    fn received(state: TcpState, ttl: Option<u8>, peer_ttl: Option<u8>) -> Reset {
        Reset {
            state: Some(state),
            peer_silent_ms: Some(2_000),
            path: Path { ttl, peer_ttl, ..Default::default() },
            ..Reset::example(Direction::Received)
        }
    }

    #[test]
    fn the_pool_race_is_the_peer_having_closed_not_a_device() {
        // The client wrote on a pooled connection the server had closed:
        // the RST comes at once, and no TTL is known (tracepoints).
        let mut r = received(TcpState::CloseWait, Some(64), None);
        r.path.via_gateway = Some(true);
        r.peer_closed_ms = Some(2_000);
        assert_eq!(r.origin(), None);
        assert_eq!(r.cause(), Cause::PeerHadClosed);
        let advice = r.advice().unwrap();
        assert!(advice.contains("closed this connection 2.0 s earlier"), "{advice}");
        assert!(advice.contains("shorter than 10.77.0.1's keep-alive timeout"), "{advice}");
        // LAST_ACK: this host closed too, after the peer.
        assert_eq!(received(TcpState::LastAck, None, None).cause(), Cause::PeerHadClosed);
        // The look-alike: the same state, but the TTL proves a device
        // forged it (a firewall that forgot the closed connection).
        let forged = received(TcpState::CloseWait, Some(64), Some(61));
        assert_eq!(forged.cause(), Cause::Middlebox);
        assert_eq!(received(TcpState::CloseWait, Some(61), Some(61)).cause(), Cause::PeerHadClosed);
    }

    #[test]
    fn received_causes_from_state_and_ttl() {
        assert_eq!(received(TcpState::SynSent, None, None).cause(), Cause::Refused);
        assert_eq!(received(TcpState::Established, Some(63), Some(63)).cause(), Cause::PeerAbort);
        assert_eq!(received(TcpState::Established, Some(64), Some(63)).cause(), Cause::Middlebox);
        // Without TTLs an open connection's RST is not decided.
        assert_eq!(received(TcpState::Established, None, None).cause(), Cause::Unknown);
        let mut discarded = received(TcpState::Established, Some(64), Some(63));
        discarded.outcome = Some(Outcome::Ignored);
        assert_eq!(discarded.cause(), Cause::Unknown);
    }

    #[test]
    fn data_after_close_from_timewait_or_an_orphan() {
        let mut r = sent(Some(TcpState::TimeWait), ACK_PSH);
        r.closed_ms = Some(1_500);
        assert_eq!(r.cause(), Cause::DataAfterClose);
        let advice = r.advice().unwrap();
        assert!(advice.contains("had closed 1.5 s earlier"), "{advice}");
        assert!(advice.contains("keep-alive timeout must be longer"), "{advice}");
        // The look-alike: a SYN on the same socket is port reuse.
        assert_eq!(sent(Some(TcpState::TimeWait), SYN).cause(), Cause::PortReuse);
        // An orphan aborted on data is CLOSE by the time its RST goes out.
        assert_eq!(sent(Some(TcpState::Close), ACK_PSH).cause(), Cause::DataAfterClose);
        let reason = Reset { reason: Some(ResetReason::TcpAbortOnData), ..sent(Some(TcpState::Close), None) };
        assert_eq!(reason.cause(), Cause::DataAfterClose);
    }

    #[test]
    fn this_hosts_own_aborts() {
        // close() with SO_LINGER 0 or unread data: no segment answered.
        let process = Some(Process { pid: 7, comm: "app".into() });
        let abort = Reset { process: process.clone(), ..sent(Some(TcpState::Close), None) };
        assert_eq!(abort.cause(), Cause::ApplicationAbort);
        assert_eq!(abort.advice(), None);
        let unread = Reset { reason: Some(ResetReason::TcpAbortOnClose), ..abort.clone() };
        assert_eq!(unread.cause(), Cause::UnreadData);
        // Not from a system call (a timer): not decided.
        assert_eq!(sent(Some(TcpState::Close), None).cause(), Cause::Unknown);
        let keepalive =
            Reset { reason: Some(ResetReason::TcpKeepaliveTimeout), ..sent(Some(TcpState::Established), None) };
        assert_eq!(keepalive.cause(), Cause::KeepaliveTimeout);
    }

    #[test]
    fn no_socket_splits_on_the_syn() {
        assert_eq!(sent(None, SYN).cause(), Cause::NoListener);
        assert_eq!(sent(None, ACK_PSH).cause(), Cause::NoConnection);
        assert_eq!(sent(None, None).cause(), Cause::Unknown);
        assert_eq!(sent(Some(TcpState::Listen), ACK_PSH).cause(), Cause::NoConnection);
        assert_eq!(sent(Some(TcpState::Listen), SYN).cause(), Cause::Unknown);
        assert_eq!(sent(Some(TcpState::Established), ACK_PSH).cause(), Cause::Unknown);
    }

    #[test]
    fn names_are_the_serialized_ones_and_sorted() {
        for cause in Cause::ALL {
            assert_eq!(serde_json::to_value(cause).unwrap(), cause.as_str());
        }
        let mut sorted = Cause::ALL;
        sorted.sort();
        assert_eq!(sorted, Cause::ALL);
        assert!(Cause::ALL.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
    }

    #[test]
    fn middlebox_advice_says_the_silence_as_the_sentence_does() {
        let mut r = received(TcpState::Established, Some(64), Some(61));
        r.peer_silent_ms = Some(1_988);
        r.keepalive = Some(Keepalive::Off);
        let advice = r.advice().unwrap();
        assert!(advice.contains("after 2.0 s without a segment"), "{advice}");
        assert!(advice.contains("enable SO_KEEPALIVE"), "{advice}");
        r.keepalive = Some(Keepalive::After(7_200_000));
        assert!(r.advice().unwrap().contains("probes only after 120m00s of silence"));
    }
}
