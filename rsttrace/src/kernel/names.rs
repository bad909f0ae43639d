//! The kernel enums rsttrace decodes (TCP states, reset reasons, drop
//! reasons, TIME_WAIT verdicts), as types. Their numbers move between
//! kernels, so the running kernel's BTF maps numbers to names at start-up and
//! names to these types; a name this build does not know stays `Other(name)`,
//! a number the kernel does not name `Unnamed(number)`: a newer kernel never
//! breaks decoding. They serialize as the kernel's name without its prefix.

use std::{borrow::Cow, collections::HashMap};

macro_rules! kernel_enum {
    (
        $(#[$doc:meta])*
        $name:ident, unnamed $unnamed:literal {
            $($(#[$variant_doc:meta])* $variant:ident = $text:literal,)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_doc])* $variant,)*
            /// A name this build does not know (a newer kernel's).
            Other(String),
            /// A number the running kernel's BTF does not name.
            Unnamed(u32),
        }

        impl $name {
            /// From the kernel's name without its prefix (`TCP_`, …).
            pub fn from_name(name: &str) -> Self {
                match name {
                    $($text => Self::$variant,)*
                    _ => Self::Other(name.to_string()),
                }
            }

            /// The kernel's name without its prefix; `
            #[doc = $unnamed]
            /// _<n>` for an unnamed number.
            pub fn name(&self) -> Cow<'_, str> {
                match self {
                    $(Self::$variant => Cow::Borrowed($text),)*
                    Self::Other(name) => Cow::Borrowed(name),
                    Self::Unnamed(value) => Cow::Owned(format!(concat!($unnamed, "_{}"), value)),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.name())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.name())
            }
        }
    };
}

kernel_enum! {
    /// A TCP socket's state (`TCP_ESTABLISHED` …).
    TcpState, unnamed "STATE" {
        Established = "ESTABLISHED",
        SynSent = "SYN_SENT",
        SynRecv = "SYN_RECV",
        FinWait1 = "FIN_WAIT1",
        FinWait2 = "FIN_WAIT2",
        TimeWait = "TIME_WAIT",
        Close = "CLOSE",
        CloseWait = "CLOSE_WAIT",
        LastAck = "LAST_ACK",
        Listen = "LISTEN",
        Closing = "CLOSING",
        NewSynRecv = "NEW_SYN_RECV",
        BoundInactive = "BOUND_INACTIVE",
    }
}

impl TcpState {
    /// The connection has exchanged data both ways, so idle time means
    /// something (not SYN_SENT, SYN_RECV, LISTEN, CLOSE).
    pub fn is_synchronized(&self) -> bool {
        matches!(
            self,
            Self::Established | Self::FinWait1 | Self::FinWait2 | Self::CloseWait | Self::Closing | Self::LastAck
        )
    }

    /// The peer's FIN came before this host closed (CLOSE_WAIT, LAST_ACK).
    pub fn peer_has_closed(&self) -> bool {
        matches!(self, Self::CloseWait | Self::LastAck)
    }
}

kernel_enum! {
    /// Why the kernel sent a reset (`enum sk_rst_reason`, Linux 6.10+).
    ResetReason, unnamed "REASON" {
        NoSocket = "NO_SOCKET",
        TcpInvalidAckSequence = "TCP_INVALID_ACK_SEQUENCE",
        TcpAckUnsentData = "TCP_ACK_UNSENT_DATA",
        TcpRfc7323Paws = "TCP_RFC7323_PAWS",
        TcpTooOldAck = "TCP_TOO_OLD_ACK",
        TcpOldAck = "TCP_OLD_ACK",
        TcpFlags = "TCP_FLAGS",
        TcpAbortOnData = "TCP_ABORT_ON_DATA",
        TcpTimewaitSocket = "TCP_TIMEWAIT_SOCKET",
        InvalidSyn = "INVALID_SYN",
        TcpAbortOnClose = "TCP_ABORT_ON_CLOSE",
        TcpAbortOnLinger = "TCP_ABORT_ON_LINGER",
        TcpAbortOnMemory = "TCP_ABORT_ON_MEMORY",
        TcpState = "TCP_STATE",
        TcpKeepaliveTimeout = "TCP_KEEPALIVE_TIMEOUT",
        TcpDisconnectWithData = "TCP_DISCONNECT_WITH_DATA",
    }
}

kernel_enum! {
    /// Why the kernel freed a segment (`enum skb_drop_reason`): only the
    /// reasons rsttrace decides on are variants.
    DropReason, unnamed "REASON" {
        NotSpecified = "NOT_SPECIFIED",
        /// No socket matched the segment.
        NoSocket = "NO_SOCKET",
        /// A SYN rejected by PAWS in TIME_WAIT (Linux 6.16+).
        TcpRfc7323TwPaws = "TCP_RFC7323_TW_PAWS",
    }
}

impl DropReason {
    /// A reason of TCP's receive path (no socket, a sequence number outside
    /// the window, PAWS, …): an RST freed with it reached this host's TCP and
    /// was discarded. Others (netfilter, queues, forwarding) were not for
    /// this host's TCP.
    pub fn is_tcp_discard(&self) -> bool {
        match self {
            Self::NotSpecified | Self::NoSocket | Self::TcpRfc7323TwPaws => true,
            Self::Other(name) => name.starts_with("TCP_"),
            Self::Unnamed(_) => false,
        }
    }
}

kernel_enum! {
    /// What `tcp_timewait_state_process` returned (`enum tcp_tw_status`).
    TwStatus, unnamed "STATUS" {
        /// Nothing to send: for a SYN, the out-of-window rate limit held its
        /// ACK back (TcpExt.TCPACKSkippedTimeWait).
        Success = "SUCCESS",
        /// Answered with an RST.
        Rst = "RST",
        /// Answered with an ACK for the old connection (before 6.15 also the
        /// out-of-window ACK that ACK_OOW is now).
        Ack = "ACK",
        /// Accepted as a new connection.
        Syn = "SYN",
        /// An out-of-window ACK that the rate limit let through, sent with
        /// the ECN bits cleared (Linux 6.15+): still the old connection's
        /// ACK. When the limit holds it back the kernel returns SUCCESS.
        AckOow = "ACK_OOW",
    }
}

/// Number -> type tables of the running kernel, from its BTF.
#[derive(Clone, Debug, Default)]
pub struct KernelNames {
    pub tcp_states: HashMap<u32, TcpState>,
    /// Empty before Linux 6.10, which had no reset reasons.
    pub reset_reasons: HashMap<u32, ResetReason>,
    pub drop_reasons: HashMap<u32, DropReason>,
    pub tw_statuses: HashMap<u32, TwStatus>,
}

impl KernelNames {
    pub fn tcp_state(&self, value: u32) -> TcpState {
        self.tcp_states.get(&value).cloned().unwrap_or(TcpState::Unnamed(value))
    }

    pub fn reset_reason(&self, value: u32) -> ResetReason {
        self.reset_reasons.get(&value).cloned().unwrap_or(ResetReason::Unnamed(value))
    }

    pub fn drop_reason(&self, value: u32) -> DropReason {
        self.drop_reasons.get(&value).cloned().unwrap_or(DropReason::Unnamed(value))
    }

    pub fn tw_status(&self, value: u32) -> TwStatus {
        self.tw_statuses.get(&value).cloned().unwrap_or(TwStatus::Unnamed(value))
    }

    /// This kernel's number for a TCP state.
    pub fn tcp_state_number(&self, state: &TcpState) -> Option<u32> {
        number_of(&self.tcp_states, state)
    }

    pub fn tw_status_number(&self, status: &TwStatus) -> Option<u32> {
        number_of(&self.tw_statuses, status)
    }
}

fn number_of<T: PartialEq>(table: &HashMap<u32, T>, wanted: &T) -> Option<u32> {
    table.iter().find(|(_, t)| *t == wanted).map(|(v, _)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_become_variants_and_others_keep_their_name() {
        assert_eq!(TcpState::from_name("TIME_WAIT"), TcpState::TimeWait);
        assert_eq!(TwStatus::from_name("ACK_OOW"), TwStatus::AckOow);
        let new = ResetReason::from_name("TCP_SOMETHING_NEW");
        assert_eq!(new, ResetReason::Other("TCP_SOMETHING_NEW".into()));
        assert_eq!(new.to_string(), "TCP_SOMETHING_NEW");
    }

    #[test]
    fn unnamed_numbers_keep_their_value() {
        let names = KernelNames::default();
        assert_eq!(names.tcp_state(99).to_string(), "STATE_99");
        assert_eq!(names.reset_reason(77).to_string(), "REASON_77");
        assert_eq!(names.tw_status(9).to_string(), "STATUS_9");
        assert_eq!(serde_json::to_string(&names.drop_reason(5)).unwrap(), "\"REASON_5\"");
    }

    #[test]
    fn numbers_of_states_come_from_the_table() {
        let names = KernelNames {
            tcp_states: [(6, TcpState::TimeWait), (1, TcpState::Established)].into_iter().collect(),
            ..Default::default()
        };
        assert_eq!(names.tcp_state_number(&TcpState::TimeWait), Some(6));
        assert_eq!(names.tcp_state_number(&TcpState::Listen), None);
        assert_eq!(names.tcp_state(1), TcpState::Established);
    }
}
