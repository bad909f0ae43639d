//! A reused-port SYN that met a TIME_WAIT socket: what the kernel did with
//! it (the verdict), and what to change (the advice).

use super::TimeWaitSegment;
use crate::kernel::{
    names::{DropReason, TwStatus},
    strategy::Hook,
};

/// What the kernel did with a SYN that met a TIME_WAIT socket. Declared in
/// the order of their names: the summary lists verdicts sorted by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Verdict {
    /// Recognised as a new connection (higher sequence number or newer
    /// timestamp): harmless reuse.
    Accepted,
    /// Dropped because its timestamp is older than the old connection's.
    PawsDrop,
    /// Answered with an RST (TIME_WAIT socket still half-closed).
    Rst,
    /// Taken for an old duplicate and answered with an ACK for the old
    /// connection; the peer typically resets and retries.
    StaleAck,
    /// The hook could not see what the kernel did.
    Unknown,
}

impl Verdict {
    pub const ALL: [Verdict; 5] =
        [Verdict::Accepted, Verdict::PawsDrop, Verdict::Rst, Verdict::StaleAck, Verdict::Unknown];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The verdict from what the hook saw: the kernel's own return value where
/// the hook has it (fexit, kprobe), else the freed segment's drop reason and
/// the evidence (kfree_skb), else the new connection (inet_sock_set_state).
pub fn verdict(e: &TimeWaitSegment) -> Verdict {
    let paws = e.drop_reason == Some(DropReason::TcpRfc7323TwPaws) || paws_rejects(e);
    match &e.tw_status {
        Some(TwStatus::Syn) => Verdict::Accepted,
        Some(TwStatus::Rst) => Verdict::Rst,
        // A SYN the socket did not take is answered with the old
        // connection's ACK through the out-of-window rate limit
        // (net.ipv4.tcp_invalid_ratelimit): ACK (ACK_OOW since 6.15) when the
        // ACK went out, SUCCESS when the limit held it back and nothing was
        // sent (TcpExt.TCPACKSkippedTimeWait). A PAWS reject takes that path
        // too, whichever of the two it got.
        Some(TwStatus::Ack | TwStatus::AckOow | TwStatus::Success) if paws => Verdict::PawsDrop,
        Some(TwStatus::Ack | TwStatus::AckOow) => Verdict::StaleAck,
        Some(_) => Verdict::Unknown,
        None if e.hook == Hook::InetSockSetState => Verdict::Accepted,
        None if paws => Verdict::PawsDrop,
        None if e.drop_reason.is_some() => Verdict::StaleAck,
        None => Verdict::Unknown,
    }
}

/// tcp_paws_reject() for a SYN: the TIME_WAIT socket saw timestamps and the
/// SYN's is older than the last one at all (tcp_paws_check with a window of
/// 0, as tcp_timewait_state_process asks for).
fn paws_rejects(e: &TimeWaitSegment) -> bool {
    match (e.tsval, e.tw_ts_recent, e.tw_ts_recent_stamp) {
        (Some(tsval), Some(recent), Some(stamp)) => {
            stamp != 0 && recent != 0 && (recent.wrapping_sub(tsval) as i32) > 0
        }
        _ => false,
    }
}

/// One reported collision, with what followed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Collision {
    /// The first SYN.
    pub event: TimeWaitSegment,
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
        let peer = e.tuple.remote.ip();
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
            Verdict::StaleAck | Verdict::Unknown if e.timestamps == Some(false) => format!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::TimeWaitSegment;

    fn tw() -> TimeWaitSegment {
        TimeWaitSegment::example(1, 0)
    }

    #[test]
    fn verdicts_from_the_kernel_status() {
        let mut e = tw();
        e.drop_reason = None;
        for (status, expected) in [
            ("SYN", Verdict::Accepted),
            ("RST", Verdict::Rst),
            ("ACK", Verdict::StaleAck),
            ("ACK_OOW", Verdict::StaleAck),
            ("SUCCESS", Verdict::Unknown),
            ("TCP_TW_SOMETHING_NEW", Verdict::Unknown),
        ] {
            e.tw_status = Some(TwStatus::from_name(status));
            assert_eq!(verdict(&e), expected, "{status}");
        }
    }

    #[test]
    fn paws_from_evidence_or_drop_reason() {
        let mut e = tw();
        e.tsval = Some(1000);
        e.tw_ts_recent = Some(5000);
        e.tw_ts_recent_stamp = Some(77);
        assert_eq!(verdict(&e), Verdict::PawsDrop, "older TSval");
        e.tw_status = Some(TwStatus::Ack);
        assert_eq!(verdict(&e), Verdict::PawsDrop);
        e.tsval = Some(4999);
        assert_eq!(verdict(&e), Verdict::PawsDrop, "older by 1 is rejected");
        e.tsval = Some(5000);
        assert_eq!(verdict(&e), Verdict::StaleAck, "the same TSval is no PAWS reject");
        e.tsval = Some(5001);
        assert_eq!(verdict(&e), Verdict::StaleAck, "newer TSval is no PAWS reject");
        e.tw_status = None;
        e.drop_reason = Some(DropReason::TcpRfc7323TwPaws);
        assert_eq!(verdict(&e), Verdict::PawsDrop);
        // TSval wrap-around: 10 is "after" u32::MAX - 5.
        e.drop_reason = Some(DropReason::NotSpecified);
        e.tsval = Some(10);
        e.tw_ts_recent = Some(u32::MAX - 5);
        assert_eq!(verdict(&e), Verdict::StaleAck);
    }

    /// A PAWS reject whose ACK the out-of-window rate limit held back: the
    /// kernel returns TCP_TW_SUCCESS, with the drop reason on 6.16+ and
    /// only the timestamps before.
    #[test]
    fn a_rate_limited_paws_reject_is_paws_drop() {
        let mut e = tw();
        e.tw_status = Some(TwStatus::Success);
        e.drop_reason = Some(DropReason::TcpRfc7323TwPaws);
        assert_eq!(verdict(&e), Verdict::PawsDrop, "the drop reason (6.16+)");
        e.drop_reason = None;
        (e.tsval, e.tw_ts_recent, e.tw_ts_recent_stamp) = (Some(1000), Some(5000), Some(77));
        assert_eq!(verdict(&e), Verdict::PawsDrop, "older TSval (before 6.16)");
        e.tsval = Some(5001);
        assert_eq!(verdict(&e), Verdict::Unknown, "no evidence of PAWS: what held the ACK back is not known");
        e.tw_status = Some(TwStatus::AckOow);
        assert_eq!(verdict(&e), Verdict::StaleAck);
    }
}
