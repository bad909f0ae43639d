//! How rsttrace observes what TIME_WAIT sockets do (the strategy), and the
//! kernel hooks its programs attach to.

/// How the kernel's handling of segments by TIME_WAIT sockets is observed.
/// Resets always use raw tracepoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// fexit on tcp_timewait_state_process: its exact verdict.
    Fexit,
    /// kprobe + kretprobe on the same function, for kernels without BPF
    /// trampolines.
    Kprobe,
    /// Tracepoints only: skb:kfree_skb's rx_sk (6.11+) and the table.
    Tracepoint,
}

impl Strategy {
    /// The order `--strategy auto` tries them in: most exact first.
    pub const AUTO_ORDER: [Strategy; 3] = [Strategy::Fexit, Strategy::Kprobe, Strategy::Tracepoint];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Fexit => "fexit",
            Strategy::Kprobe => "kprobe",
            Strategy::Tracepoint => "tracepoint",
        }
    }
}

impl serde::Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What `--strategy` (or the configuration file) asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StrategyRequest {
    /// The first of `Strategy::AUTO_ORDER` this kernel accepts.
    #[default]
    Auto,
    Only(Strategy),
}

impl StrategyRequest {
    /// The strategies to try, in order.
    pub fn candidates(self) -> Vec<Strategy> {
        match self {
            StrategyRequest::Auto => Strategy::AUTO_ORDER.to_vec(),
            StrategyRequest::Only(strategy) => vec![strategy],
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            StrategyRequest::Auto => "auto",
            StrategyRequest::Only(strategy) => strategy.as_str(),
        }
    }
}

impl clap::ValueEnum for StrategyRequest {
    fn value_variants<'a>() -> &'a [Self] {
        const VARIANTS: [StrategyRequest; 4] = [
            StrategyRequest::Auto,
            StrategyRequest::Only(Strategy::AUTO_ORDER[0]),
            StrategyRequest::Only(Strategy::AUTO_ORDER[1]),
            StrategyRequest::Only(Strategy::AUTO_ORDER[2]),
        ];
        &VARIANTS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl<'de> serde::Deserialize<'de> for StrategyRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        <Self as clap::ValueEnum>::from_str(&name, false)
            .map_err(|_| serde::de::Error::unknown_variant(&name, &["auto", "fexit", "kprobe", "tracepoint"]))
    }
}

/// A kernel hook one of rsttrace's programs attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// Every state change of every TCP socket.
    InetSockSetState,
    TcpSendReset,
    TcpReceiveReset,
    /// A freed segment with its drop reason and receiving socket (6.11+).
    KfreeSkb,
    FexitTimewaitProcess,
    KprobeTimewaitProcess,
    KretprobeTimewaitProcess,
    /// The segment `tcp_reset()` handles: a received RST's TTL.
    FentryTcpReset,
    KprobeTcpReset,
    /// Connections being set up: the TTL the peer's segments come with.
    FexitTcpCreateOpenreqChild,
    FentryTcpFinishConnect,
}

/// The function whose return value is the kernel's TIME_WAIT verdict.
pub const TW_PROCESS: &str = "tcp_timewait_state_process";

impl Hook {
    /// As the ready record lists it: `raw_tracepoint/tcp_send_reset` …
    pub fn name(self) -> &'static str {
        match self {
            Hook::InetSockSetState => "raw_tracepoint/inet_sock_set_state",
            Hook::TcpSendReset => "raw_tracepoint/tcp_send_reset",
            Hook::TcpReceiveReset => "raw_tracepoint/tcp_receive_reset",
            Hook::KfreeSkb => "raw_tracepoint/kfree_skb",
            Hook::FexitTimewaitProcess => "fexit/tcp_timewait_state_process",
            Hook::KprobeTimewaitProcess => "kprobe/tcp_timewait_state_process",
            Hook::KretprobeTimewaitProcess => "kretprobe/tcp_timewait_state_process",
            Hook::FentryTcpReset => "fentry/tcp_reset",
            Hook::KprobeTcpReset => "kprobe/tcp_reset",
            Hook::FexitTcpCreateOpenreqChild => "fexit/tcp_create_openreq_child",
            Hook::FentryTcpFinishConnect => "fentry/tcp_finish_connect",
        }
    }

    /// The kernel's name of a raw tracepoint (also its program's name).
    pub fn tracepoint(self) -> Option<&'static str> {
        self.name().strip_prefix("raw_tracepoint/")
    }

    /// The strategy that attaches this hook.
    pub fn strategy(self) -> Strategy {
        match self {
            Hook::FexitTimewaitProcess
            | Hook::FentryTcpReset
            | Hook::FexitTcpCreateOpenreqChild
            | Hook::FentryTcpFinishConnect => Strategy::Fexit,
            Hook::KprobeTimewaitProcess | Hook::KretprobeTimewaitProcess | Hook::KprobeTcpReset => Strategy::Kprobe,
            Hook::InetSockSetState | Hook::TcpSendReset | Hook::TcpReceiveReset | Hook::KfreeSkb => {
                Strategy::Tracepoint
            }
        }
    }

    /// The kernel function a fentry, fexit or kprobe hook attaches to.
    pub fn function(self) -> Option<&'static str> {
        self.name().split_once('/').filter(|(kind, _)| *kind != "raw_tracepoint").map(|(_, function)| function)
    }
}

impl serde::Serialize for Hook {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum as _;

    use super::*;

    #[test]
    fn requests_parse_by_name() {
        assert_eq!(StrategyRequest::from_str("auto", false), Ok(StrategyRequest::Auto));
        assert_eq!(StrategyRequest::from_str("kprobe", false), Ok(StrategyRequest::Only(Strategy::Kprobe)));
        assert!(StrategyRequest::from_str("magic", false).is_err());
        assert_eq!(StrategyRequest::Auto.candidates(), Strategy::AUTO_ORDER);
    }

    #[test]
    fn raw_tracepoints_know_their_kernel_name() {
        assert_eq!(Hook::KfreeSkb.tracepoint(), Some("kfree_skb"));
        assert_eq!(Hook::FexitTimewaitProcess.tracepoint(), None);
        assert_eq!(Hook::KretprobeTimewaitProcess.strategy(), Strategy::Kprobe);
    }
}
