//! What a kernel or strategy cannot show: the ready record's `limitations`
//! (a sentence each, for people) and `limitation_codes` (a stable code
//! each, for tools and tests).

/// One thing this kernel, with this strategy, cannot show. The code is the
/// variant's name in snake case (docs/output.md lists them).
#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Limitation {
    /// tcp_send_reset without its reason (before Linux 6.10).
    ResetReasonUnknown,
    /// tcp_send_reset only for full sockets (before Linux 6.10).
    SocketlessResetsUnseen,
    IdleMsUnknown,
    PeerSilentMsUnknown,
    KeepaliveSUnknown,
    UnitUnknown,
    /// The tracepoint strategy without `tw_isn` (before Linux 6.12).
    AcceptedReuseUnseen,
    /// skb:kfree_skb with a drop reason but no rx_sk (5.17 to 6.10).
    DiscardsWithoutState,
    /// skb:kfree_skb without a drop reason (before 5.17).
    DiscardsUnseen,
    /// The tracepoint strategy without kfree_skb's rx_sk (before 6.11).
    TimewaitRejectionsUnseen,
    /// `ttl` of received resets is null, and why.
    TtlUnknown(String),
    /// `peer_ttl` of received resets is null, and why.
    PeerTtlUnknown(String),
}

impl Limitation {
    pub fn code(&self) -> &'static str {
        self.into()
    }

    pub fn sentence(&self) -> String {
        match self {
            Limitation::ResetReasonUnknown => "this kernel's tcp_send_reset has no reset reason (reason is null)".into(),
            Limitation::SocketlessResetsUnseen => {
                "this kernel's tcp_send_reset misses resets sent without a full socket (closed port, TIME_WAIT)".into()
            }
            Limitation::IdleMsUnknown => "idle_ms is null: kernel BTF lacks the TCP activity stamps".into(),
            Limitation::PeerSilentMsUnknown => "peer_silent_ms is null: kernel BTF lacks the TCP activity stamps".into(),
            Limitation::KeepaliveSUnknown => "keepalive_s is null: kernel BTF lacks the keepalive settings".into(),
            Limitation::UnitUnknown => {
                "unit is null: kernel BTF lacks sock.sk_cgrp_data.cgroup (the Linux 5.15 layout)".into()
            }
            Limitation::AcceptedReuseUnseen => "accepted (harmless) TIME_WAIT reuse is not reported with the tracepoint strategy on this kernel: its tcp_timewait_state_process gives the new connection no ISN derived from the TIME_WAIT socket (no tw_isn), so nothing proves a TIME_WAIT socket accepted the SYN (tcp_max_tw_buckets may have refused it); fexit and kprobe see the kernel's verdict".into(),
            Limitation::DiscardsWithoutState => "received RSTs the kernel discards are reported without state before Linux 6.11 (no rx_sk in skb:kfree_skb), and only those it frees with a drop reason of TCP's own: to half-open connections and TIME_WAIT sockets never (NOT_SPECIFIED), and on Debian's 6.1 none but outcome no_socket".into(),
            Limitation::DiscardsUnseen => "received RSTs the kernel discards without ending a connection (no socket, half-open, outside the window) are not reported before Linux 5.17 (no drop reason in skb:kfree_skb): only outcome reset is seen".into(),
            Limitation::TimewaitRejectionsUnseen => "SYNs a TIME_WAIT socket rejects (stale ACK, RST, PAWS) and TIME_WAIT kills are invisible to tracepoints before Linux 6.11 (no rx_sk in skb:kfree_skb); only accepted reuse is reported".into(),
            Limitation::TtlUnknown(why) => format!("ttl of received resets is null: {why}"),
            Limitation::PeerTtlUnknown(why) => format!("peer_ttl of received resets is null: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_variants_in_snake_case() {
        assert_eq!(Limitation::ResetReasonUnknown.code(), "reset_reason_unknown");
        assert_eq!(Limitation::KeepaliveSUnknown.code(), "keepalive_s_unknown");
        assert_eq!(Limitation::PeerTtlUnknown("why".into()).code(), "peer_ttl_unknown");
        assert_eq!(Limitation::PeerTtlUnknown("why".into()).sentence(), "peer_ttl of received resets is null: why");
    }
}
