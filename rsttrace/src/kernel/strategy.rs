//! How rsttrace observes what TIME_WAIT sockets do (the strategy), and the
//! kernel hooks its programs attach to.

/// How the kernel's handling of segments by TIME_WAIT sockets is observed.
/// Resets always use raw tracepoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, strum::VariantNames)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
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

    /// Its name, as serde writes it (a const fn: the names of
    /// `StrategyRequest` are a constant).
    pub const fn as_str(self) -> &'static str {
        <Strategy as strum::VariantNames>::VARIANTS[self as usize]
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
    /// Every request, `auto` first, then `Strategy::AUTO_ORDER`: the values
    /// of `--strategy` and of `strategy` in the configuration file.
    const ALL: [StrategyRequest; Strategy::AUTO_ORDER.len() + 1] = {
        let mut all = [StrategyRequest::Auto; Strategy::AUTO_ORDER.len() + 1];
        let mut i = 0;
        while i < Strategy::AUTO_ORDER.len() {
            all[i + 1] = StrategyRequest::Only(Strategy::AUTO_ORDER[i]);
            i += 1;
        }
        all
    };

    /// Their names, in the same order.
    const NAMES: [&'static str; Self::ALL.len()] = {
        let mut names = [""; Self::ALL.len()];
        let mut i = 0;
        while i < Self::ALL.len() {
            names[i] = Self::ALL[i].as_str();
            i += 1;
        }
        names
    };

    /// The strategies to try, in order.
    pub fn candidates(self) -> Vec<Strategy> {
        match self {
            StrategyRequest::Auto => Strategy::AUTO_ORDER.to_vec(),
            StrategyRequest::Only(strategy) => vec![strategy],
        }
    }

    const fn as_str(self) -> &'static str {
        match self {
            StrategyRequest::Auto => "auto",
            StrategyRequest::Only(strategy) => strategy.as_str(),
        }
    }
}

impl clap::ValueEnum for StrategyRequest {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl<'de> serde::Deserialize<'de> for StrategyRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        <Self as clap::ValueEnum>::from_str(&name, false)
            .map_err(|_| serde::de::Error::unknown_variant(&name, &Self::NAMES))
    }
}

/// How a program attaches to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attach {
    /// A raw tracepoint: the event's arguments, no trace record.
    RawTracepoint,
    /// A BPF trampoline on a kernel function's entry.
    Fentry,
    /// A BPF trampoline on a kernel function's return.
    Fexit,
    Kprobe,
    Kretprobe,
}

impl Attach {
    /// As hook names show it: `raw_tracepoint`, `fentry`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Attach::RawTracepoint => "raw_tracepoint",
            Attach::Fentry => "fentry",
            Attach::Fexit => "fexit",
            Attach::Kprobe => "kprobe",
            Attach::Kretprobe => "kretprobe",
        }
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

/// An eBPF program in rsttrace-ebpf, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    /// Its BTF-typed twin (tp_btf), which reads sockets with plain loads.
    pub typed: Option<&'static str>,
}

/// The function whose return value is the kernel's TIME_WAIT verdict.
pub const TW_PROCESS: &str = "tcp_timewait_state_process";

impl Hook {
    /// Every hook (`every_hook_is_in_all` keeps the list whole).
    pub const ALL: [Hook; 11] = [
        Hook::InetSockSetState,
        Hook::TcpSendReset,
        Hook::TcpReceiveReset,
        Hook::KfreeSkb,
        Hook::FexitTimewaitProcess,
        Hook::KprobeTimewaitProcess,
        Hook::KretprobeTimewaitProcess,
        Hook::FentryTcpReset,
        Hook::KprobeTcpReset,
        Hook::FexitTcpCreateOpenreqChild,
        Hook::FentryTcpFinishConnect,
    ];

    /// How it attaches, and to what: the tracepoint's or the kernel
    /// function's name.
    pub fn target(self) -> (Attach, &'static str) {
        match self {
            Hook::InetSockSetState => (Attach::RawTracepoint, "inet_sock_set_state"),
            Hook::TcpSendReset => (Attach::RawTracepoint, "tcp_send_reset"),
            Hook::TcpReceiveReset => (Attach::RawTracepoint, "tcp_receive_reset"),
            Hook::KfreeSkb => (Attach::RawTracepoint, "kfree_skb"),
            Hook::FexitTimewaitProcess => (Attach::Fexit, TW_PROCESS),
            Hook::KprobeTimewaitProcess => (Attach::Kprobe, TW_PROCESS),
            Hook::KretprobeTimewaitProcess => (Attach::Kretprobe, TW_PROCESS),
            Hook::FentryTcpReset => (Attach::Fentry, "tcp_reset"),
            Hook::KprobeTcpReset => (Attach::Kprobe, "tcp_reset"),
            Hook::FexitTcpCreateOpenreqChild => (Attach::Fexit, "tcp_create_openreq_child"),
            Hook::FentryTcpFinishConnect => (Attach::Fentry, "tcp_finish_connect"),
        }
    }

    /// The eBPF programs (rsttrace-ebpf's names) that can serve it, one per
    /// prototype of what it attaches to, the first for the newest: the
    /// fexit per arity of tcp_timewait_state_process (5, 4, 3), kfree_skb
    /// with and without rx_sk. A raw tracepoint's program has a
    /// BTF-typed twin.
    pub fn programs(self) -> &'static [Program] {
        match self {
            Hook::InetSockSetState => {
                &[Program { name: "inet_sock_set_state", typed: Some("inet_sock_set_state_typed") }]
            }
            Hook::TcpSendReset => &[Program { name: "tcp_send_reset", typed: Some("tcp_send_reset_typed") }],
            Hook::TcpReceiveReset => &[Program { name: "tcp_receive_reset", typed: Some("tcp_receive_reset_typed") }],
            Hook::KfreeSkb => &[
                Program { name: "kfree_skb", typed: Some("kfree_skb_typed") },
                Program { name: "kfree_skb_without_socket", typed: Some("kfree_skb_without_socket_typed") },
            ],
            Hook::FexitTimewaitProcess => &[
                Program { name: "tw_process_fexit5", typed: None },
                Program { name: "tw_process_fexit4", typed: None },
                Program { name: "tw_process_fexit3", typed: None },
            ],
            Hook::KprobeTimewaitProcess => &[Program { name: "tw_process_entry", typed: None }],
            Hook::KretprobeTimewaitProcess => &[Program { name: "tw_process_return", typed: None }],
            Hook::FentryTcpReset => &[Program { name: "tcp_reset_fentry", typed: None }],
            Hook::KprobeTcpReset => &[Program { name: "tcp_reset_kprobe", typed: None }],
            Hook::FexitTcpCreateOpenreqChild => &[Program { name: "create_openreq_child_fexit", typed: None }],
            Hook::FentryTcpFinishConnect => &[Program { name: "finish_connect_fentry", typed: None }],
        }
    }

    pub fn attach(self) -> Attach {
        self.target().0
    }

    /// The kernel's name of a raw tracepoint (also its program's name).
    pub fn tracepoint(self) -> Option<&'static str> {
        match self.target() {
            (Attach::RawTracepoint, name) => Some(name),
            _ => None,
        }
    }

    /// The kernel function a fentry, fexit or kprobe hook attaches to.
    pub fn function(self) -> Option<&'static str> {
        match self.target() {
            (Attach::RawTracepoint, _) => None,
            (_, function) => Some(function),
        }
    }

    /// The parameters of its kernel function that the program reads by
    /// position, for the functions whose prototype changed between kernels
    /// (`tcp_reset(sk)` before 5.13): the hook is only attached where the
    /// kernel's BTF names these parameters. A kprobe reads registers by
    /// position too, and a parameter the kernel does not pass is garbage.
    /// (`tcp_timewait_state_process` has one program per prototype.)
    pub fn reads_params(self) -> Option<&'static [&'static str]> {
        match self {
            Hook::FentryTcpReset | Hook::KprobeTcpReset | Hook::FentryTcpFinishConnect => Some(&["sk", "skb"]),
            Hook::FexitTcpCreateOpenreqChild => Some(&["sk", "req", "skb"]),
            Hook::InetSockSetState
            | Hook::TcpSendReset
            | Hook::TcpReceiveReset
            | Hook::KfreeSkb
            | Hook::FexitTimewaitProcess
            | Hook::KprobeTimewaitProcess
            | Hook::KretprobeTimewaitProcess => None,
        }
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
}

/// As the ready record lists it: `raw_tracepoint/tcp_send_reset`,
/// `fexit/tcp_timewait_state_process` …
impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (attach, target) = self.target();
        write!(f, "{}/{target}", attach.as_str())
    }
}

impl serde::Serialize for Hook {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
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
        assert_eq!(StrategyRequest::NAMES, ["auto", "fexit", "kprobe", "tracepoint"]);
        for strategy in Strategy::AUTO_ORDER {
            assert_eq!(serde_json::to_value(strategy).unwrap(), strategy.as_str(), "the output's name is the option's");
        }
        let error = toml::from_str::<std::collections::HashMap<String, StrategyRequest>>("s = \"magic\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("expected one of `auto`, `fexit`, `kprobe`, `tracepoint`"), "{error}");
    }

    #[test]
    fn raw_tracepoints_know_their_kernel_name() {
        assert_eq!(Hook::KfreeSkb.tracepoint(), Some("kfree_skb"));
        assert_eq!(Hook::FexitTimewaitProcess.tracepoint(), None);
        assert_eq!(Hook::KretprobeTimewaitProcess.strategy(), Strategy::Kprobe);
        assert_eq!(Hook::FentryTcpReset.function(), Some("tcp_reset"));
        assert_eq!(Hook::KfreeSkb.function(), None);
        assert_eq!(Hook::KfreeSkb.to_string(), "raw_tracepoint/kfree_skb");
        assert_eq!(Hook::KretprobeTimewaitProcess.to_string(), "kretprobe/tcp_timewait_state_process");
        assert_eq!(serde_json::to_string(&Hook::FentryTcpFinishConnect).unwrap(), r#""fentry/tcp_finish_connect""#);
    }

    #[test]
    fn every_hook_is_in_all() {
        // A new variant fails to compile here until it is listed in ALL.
        for hook in Hook::ALL {
            match hook {
                Hook::InetSockSetState
                | Hook::TcpSendReset
                | Hook::TcpReceiveReset
                | Hook::KfreeSkb
                | Hook::FexitTimewaitProcess
                | Hook::KprobeTimewaitProcess
                | Hook::KretprobeTimewaitProcess
                | Hook::FentryTcpReset
                | Hook::KprobeTcpReset
                | Hook::FexitTcpCreateOpenreqChild
                | Hook::FentryTcpFinishConnect => {}
            }
        }
        let distinct: std::collections::HashSet<Hook> = Hook::ALL.into_iter().collect();
        assert_eq!(distinct.len(), Hook::ALL.len());
    }

    #[test]
    fn hooks_on_one_function_read_the_same_parameters() {
        // A kprobe on tcp_reset(sk) of 5.10 read a second register as the
        // segment when only the fentry hook's parameters were checked.
        assert_eq!(Hook::KprobeTcpReset.reads_params(), Hook::FentryTcpReset.reads_params());
        assert_eq!(Hook::KprobeTcpReset.reads_params(), Some(&["sk", "skb"][..]));
        assert_eq!(Hook::KprobeTimewaitProcess.reads_params(), None);
    }
}
