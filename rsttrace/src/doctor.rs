//! `rsttrace doctor`: whether rsttrace can run here (privileges, kernel BTF,
//! tracefs, which hook strategies load), and the TCP settings, TIME_WAIT
//! sockets and counters behind resets. Sysctls, sockets and counters belong
//! to a network namespace: doctor reports the one it runs in.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde_json::{Map, Value, json};

use crate::{
    cli::{DoctorFormat, DoctorOptions},
    hooks::{self, Strategy},
    kernel_types::KernelTypes,
    privileges::Privileges,
    tracefs,
};

pub fn main(options: &DoctorOptions) -> ExitCode {
    let report = Report::gather(options);
    match options.format {
        DoctorFormat::Text => print!("{}", report.text()),
        DoctorFormat::Json => println!("{}", report.json()),
    }
    if report.can_run() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// The order `--strategy auto` tries them in (hooks::load).
const STRATEGIES: [Strategy; 3] = [Strategy::Fexit, Strategy::Kprobe, Strategy::Tracepoint];

struct Report {
    kernel: String,
    netns: Netns,
    privileges: Privileges,
    /// Why rsttrace lacks privileges, if it does.
    privileges_problem: Option<String>,
    btf: PathBuf,
    btf_problem: Option<String>,
    tracefs: Result<PathBuf, String>,
    /// tracefs was not mounted until doctor mounted it.
    mounted_tracefs: bool,
    strategies: Vec<(Strategy, Result<(), String>)>,
    sysctls: Vec<Sysctl>,
    time_wait: TimeWaitCount,
    counters: Vec<Counter>,
}

impl Report {
    fn gather(options: &DoctorOptions) -> Self {
        let privileges = Privileges::inspect();
        let privileges_problem = privileges.result().err().map(|e| e.to_string());
        let btf = options.btf.clone();
        let btf_problem = KernelTypes::open(&btf).err().map(|e| one_line(&e));
        let was_mounted = tracefs_mounted();
        let tracefs = match privileges.unreadable_tracefs.first() {
            // Mounted but closed to this process: trying to mount another
            // one would fail too, and only confuse.
            Some(dir) if options.tracefs.as_deref().is_none_or(|d| d == dir) => {
                Err(format!("{} is mounted but this process cannot read it (needs CAP_DAC_READ_SEARCH)", dir.display()))
            }
            _ => tracefs::locate(options.tracefs.as_deref()).map_err(|e| one_line(&e)),
        };
        let mounted_tracefs = tracefs.is_ok() && options.tracefs.is_none() && !was_mounted;

        let prerequisite = if privileges_problem.is_some() {
            Some("privileges")
        } else if btf_problem.is_some() {
            Some("kernel BTF")
        } else if tracefs.is_err() {
            Some("tracefs")
        } else {
            None
        };
        let strategies = STRATEGIES
            .iter()
            .map(|&strategy| {
                let outcome = match (prerequisite, &tracefs) {
                    (None, Ok(dir)) => {
                        hooks::load(dir, &btf, Some(strategy)).map(drop).map_err(|e| refusal(strategy, &e))
                    }
                    _ => Err(format!("not tried: {} missing (see above)", prerequisite.unwrap_or("tracefs"))),
                };
                (strategy, outcome)
            })
            .collect();

        let values = read_sysctls();
        let time_wait = TimeWaitCount::measure();
        let sysctls = interpret_sysctls(&values, time_wait.count);
        let mut tables = parse_proc_net(&std::fs::read_to_string("/proc/net/netstat").unwrap_or_default());
        tables.extend(parse_proc_net(&std::fs::read_to_string("/proc/net/snmp").unwrap_or_default()));
        Report {
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
            netns: Netns::current(),
            privileges,
            privileges_problem,
            btf,
            btf_problem,
            tracefs,
            mounted_tracefs,
            strategies,
            sysctls,
            time_wait,
            counters: counters(&tables),
        }
    }

    /// What `--strategy auto` would pick.
    fn auto(&self) -> Option<Strategy> {
        self.strategies.iter().find(|(_, outcome)| outcome.is_ok()).map(|(s, _)| *s)
    }

    fn can_run(&self) -> bool {
        self.privileges_problem.is_none() && self.btf_problem.is_none() && self.tracefs.is_ok() && self.auto().is_some()
    }

    fn json(&self) -> Value {
        let capabilities: Map<String, Value> =
            self.privileges.capabilities.iter().map(|(name, on)| (name.to_string(), json!(on))).collect();
        json!({
            "kind": "doctor",
            "version": env!("CARGO_PKG_VERSION"),
            "kernel": self.kernel,
            "can_run": self.can_run(),
            "netns": {
                "inode": self.netns.inode,
                "host": self.netns.host,
                "note": NETNS_NOTE,
            },
            "privileges": {
                "ok": self.privileges_problem.is_none(),
                "uid": self.privileges.uid,
                "capabilities": capabilities,
                "perf_event_paranoid": self.privileges.perf_event_paranoid,
                "problem": self.privileges_problem,
            },
            "btf": { "ok": self.btf_problem.is_none(), "path": self.btf, "problem": self.btf_problem },
            "tracefs": {
                "ok": self.tracefs.is_ok(),
                "path": self.tracefs.as_ref().ok(),
                "mounted_by_doctor": self.mounted_tracefs,
                "problem": self.tracefs.as_ref().err(),
            },
            "strategies": self.strategies.iter().map(|(s, outcome)| json!({
                "name": s.as_str(),
                "ok": outcome.is_ok(),
                "reason": outcome.as_ref().err(),
            })).collect::<Vec<_>>(),
            "auto": self.auto().map(Strategy::as_str),
            "sysctls": self.sysctls.iter().map(|s| json!({
                "name": s.name, "value": s.value, "meaning": s.meaning,
            })).collect::<Vec<_>>(),
            "time_wait": {
                "count": self.time_wait.count,
                "method": self.time_wait.method,
                "problem": self.time_wait.problem,
            },
            "counters": self.counters.iter().map(|c| json!({
                "name": c.name, "value": c.value, "meaning": c.meaning,
            })).collect::<Vec<_>>(),
        })
    }

    fn text(&self) -> String {
        let mut t = String::new();
        let mark = |ok: bool| if ok { "ok " } else { "NO " };
        let _ = writeln!(t, "rsttrace {} doctor on Linux {}", env!("CARGO_PKG_VERSION"), self.kernel);
        let _ = writeln!(
            t,
            "\nCan rsttrace run here: {}",
            if self.can_run() { "yes" } else { "no (fix the lines marked NO)" }
        );
        let held: Vec<&str> =
            self.privileges.capabilities.iter().filter(|(_, on)| *on).map(|(name, _)| *name).collect();
        let held = if held.is_empty() {
            "none of CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN".to_string()
        } else {
            held.join(", ")
        };
        let _ = writeln!(
            t,
            "  {} privileges: uid {}, {}{}",
            mark(self.privileges_problem.is_none()),
            self.privileges.uid,
            held,
            self.privileges_problem.as_deref().map(|p| format!(": {p}")).unwrap_or_default()
        );
        let _ = writeln!(
            t,
            "  {} kernel BTF: {}",
            mark(self.btf_problem.is_none()),
            self.btf_problem.clone().unwrap_or_else(|| self.btf.display().to_string())
        );
        let _ = match &self.tracefs {
            Ok(dir) if self.mounted_tracefs => {
                writeln!(t, "  ok  tracefs: {} (was not mounted: doctor mounted it)", dir.display())
            }
            Ok(dir) => writeln!(t, "  ok  tracefs: {}", dir.display()),
            Err(problem) => writeln!(t, "  NO  tracefs: {problem}"),
        };
        for (strategy, outcome) in &self.strategies {
            let _ = match outcome {
                Ok(()) => writeln!(t, "  ok  strategy {}: loads and attaches", strategy.as_str()),
                Err(reason) => writeln!(t, "  --  strategy {}: {reason}", strategy.as_str()),
            };
        }
        let _ = writeln!(
            t,
            "      --strategy auto picks: {}",
            self.auto().map_or("nothing (no strategy loads)", Strategy::as_str)
        );

        let _ = writeln!(t, "\nNetwork namespace: {}", self.netns.describe());
        let _ = writeln!(t, "  {NETNS_NOTE}");
        let _ = writeln!(t, "\nTCP settings:");
        for s in &self.sysctls {
            let _ = writeln!(t, "  {} = {}: {}", s.name, s.value.as_deref().unwrap_or("(absent)"), s.meaning);
        }
        let _ = match (&self.time_wait.count, &self.time_wait.problem) {
            (Some(n), _) => writeln!(t, "\nTIME_WAIT sockets now: {n} (counted with {})", self.time_wait.method),
            (None, problem) => writeln!(t, "\nTIME_WAIT sockets now: unknown ({})", problem.as_deref().unwrap_or("?")),
        };
        let _ = writeln!(t, "\nCounters since the namespace was created (/proc/net/netstat, /proc/net/snmp):");
        for c in &self.counters {
            let value = c.value.map_or("(absent)".to_string(), |v| v.to_string());
            let _ = writeln!(t, "  {} = {value}: {}", c.name, c.meaning);
        }
        t
    }
}

const NETNS_NOTE: &str = "sysctls, TIME_WAIT sockets and counters are per network namespace: these are this one's; for a container's or another namespace's, run `ip netns exec NAME rsttrace doctor` or `nsenter --net=/proc/PID/ns/net rsttrace doctor`";

/// First line of an error chain, as rsttrace prints errors.
fn one_line(e: &anyhow::Error) -> String {
    e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
}

/// hooks::load's reason for refusing a forced strategy, without the advice
/// meant for `--strategy` users.
fn refusal(strategy: Strategy, e: &anyhow::Error) -> String {
    let message = one_line(e);
    let prefix = format!("--strategy {} is not available here: ", strategy.as_str());
    let message = message.strip_prefix(&prefix).unwrap_or(&message);
    message.strip_suffix("; try --strategy auto").unwrap_or(message).to_string()
}

/// Whether any usual tracefs mount point already shows its events.
fn tracefs_mounted() -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"].iter().any(|d| Path::new(d).join("events").is_dir())
}

struct Netns {
    inode: Option<u64>,
    /// Whether it is PID 1's (the host's); None when that cannot be read.
    host: Option<bool>,
}

impl Netns {
    fn current() -> Self {
        let inode = |path: &str| {
            let link = std::fs::read_link(path).ok()?;
            link.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse::<u64>().ok()
        };
        let current = inode("/proc/self/ns/net");
        let host = inode("/proc/1/ns/net").zip(current).map(|(host, me)| host == me);
        Netns { inode: current, host }
    }

    fn describe(&self) -> String {
        let inode = self.inode.map_or("unknown".to_string(), |i| i.to_string());
        match self.host {
            Some(true) => format!("{inode} (the host's, PID 1's)"),
            Some(false) => format!("{inode} (not the host's)"),
            None => format!("{inode} (whether it is the host's is unknown: /proc/1/ns/net is unreadable)"),
        }
    }
}

/// The sysctls behind the TIME_WAIT and idle-reset cases, under net.ipv4.
const SYSCTLS: [&str; 9] = [
    "tcp_timestamps",
    "tcp_tw_reuse",
    "tcp_fin_timeout",
    "tcp_max_tw_buckets",
    "tcp_rfc1337",
    "tcp_keepalive_time",
    "tcp_keepalive_intvl",
    "tcp_keepalive_probes",
    "ip_local_port_range",
];

struct Sysctl {
    name: String,
    value: Option<String>,
    meaning: String,
}

/// `tcp_timestamps` -> its value with whitespace collapsed (port ranges are
/// tab-separated), or absent.
fn read_sysctls() -> BTreeMap<&'static str, String> {
    SYSCTLS
        .iter()
        .filter_map(|name| {
            let text = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).ok()?;
            Some((*name, text.split_whitespace().collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

/// One sentence per sysctl: what its value means for resets on a backend
/// behind a load balancer.
fn interpret_sysctls(values: &BTreeMap<&'static str, String>, time_wait: Option<u64>) -> Vec<Sysctl> {
    let number = |name: &str| values.get(name).and_then(|v| v.parse::<u64>().ok());
    SYSCTLS
        .iter()
        .map(|&name| {
            let value = values.get(name).cloned();
            let meaning = match (name, value.as_deref()) {
                (_, None) => "not on this kernel".to_string(),
                ("tcp_timestamps", Some("0")) => "off: a TIME_WAIT socket can judge a reused-port SYN only by its sequence number, so a SYN not above the old connection's rcv_nxt is answered with a stale ACK and the peer resets (the load balancer case); set net.ipv4.tcp_timestamps=1 here and on the peer".to_string(),
                ("tcp_timestamps", Some(v)) => format!(
                    "on ({}): a reused-port SYN carrying a newer timestamp than the old connection's is accepted even with a lower sequence number, provided the peer (the load balancer) sends timestamps too",
                    if v == "2" { "without random offsets" } else { "with random offsets" }
                ),
                ("tcp_tw_reuse", Some(v)) => format!(
                    "{}; only this host's own outgoing connect() can take over a 4-tuple in TIME_WAIT: it changes nothing for SYNs a load balancer sends to this backend",
                    match v {
                        "0" => "never reuse",
                        "1" => "reuse when timestamps make it safe",
                        "2" => "reuse for loopback connections only",
                        _ => "unknown mode",
                    }
                ),
                ("tcp_fin_timeout", Some(v)) => format!(
                    "an orphaned connection waits {v} s in FIN_WAIT2 for the peer's FIN; it does not shorten TIME_WAIT, which the kernel fixes at 60 s"
                ),
                ("tcp_max_tw_buckets", Some(v)) => format!(
                    "at most {v} TIME_WAIT sockets in this namespace{}; past it connections close without TIME_WAIT (TCPTimeWaitOverflow): no stale ACKs for reused ports, but no protection from old duplicate segments either",
                    time_wait.map(|n| format!(" (now {n})")).unwrap_or_default()
                ),
                ("tcp_rfc1337", Some("0")) => "an RST received in TIME_WAIT kills the socket at once, so a peer that resets after a stale ACK frees the 4-tuple and its retry connects (rsttrace's tw_killed)".to_string(),
                ("tcp_rfc1337", Some(_)) => "RSTs received in TIME_WAIT are ignored (RFC 1337): after a stale ACK the peer's RST does not free the 4-tuple, and its retries keep getting stale ACKs until the 60 s of TIME_WAIT end".to_string(),
                ("tcp_keepalive_time", Some(v)) => {
                    let secs: u64 = v.parse().unwrap_or(0);
                    if secs >= 240 {
                        format!("an idle SO_KEEPALIVE connection sends its first probe after {v} s, longer than common middlebox idle timeouts (4 min Azure LB, 350 s AWS NLB, NAT tables): the middlebox forgets the connection first and the next segment meets an RST; set it below the shortest idle timeout on the path")
                    } else {
                        format!("an idle SO_KEEPALIVE connection sends its first probe after {v} s, before common middlebox idle timeouts (4 min and more) drop it; connections without SO_KEEPALIVE get no probes at all")
                    }
                }
                ("tcp_keepalive_intvl", Some(v)) => format!("{v} s between unanswered keepalive probes"),
                ("tcp_keepalive_probes", Some(v)) => match (number("tcp_keepalive_time"), number("tcp_keepalive_intvl"), v.parse::<u64>()) {
                    (Some(time), Some(intvl), Ok(probes)) => format!(
                        "{v} unanswered probes declare the peer dead: a connection whose peer or middlebox vanished is reset after {} s of silence",
                        time + intvl * probes
                    ),
                    _ => format!("{v} unanswered probes declare the peer dead"),
                },
                ("ip_local_port_range", Some(v)) => {
                    let ports = v.split_once(' ').and_then(|(a, b)| Some(b.parse::<u64>().ok()?.checked_sub(a.parse::<u64>().ok()?)? + 1));
                    format!(
                        "{} source ports for connections this host opens; the load balancer's own range decides how soon it reuses a source port towards this backend (a narrow one there means frequent TIME_WAIT collisions here)",
                        ports.map_or("the".to_string(), |p| p.to_string())
                    )
                }
                (_, Some(_)) => String::new(),
            };
            Sysctl { name: format!("net.ipv4.{name}"), value, meaning }
        })
        .collect()
}

/// `TcpExt: A B` / `TcpExt: 1 2` line pairs (/proc/net/netstat, snmp) into
/// section -> name -> value.
fn parse_proc_net(text: &str) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut tables = BTreeMap::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((section, names)), Some((again, values))) = (names.split_once(':'), values.split_once(':')) else {
            break;
        };
        if section != again {
            break;
        }
        let table: &mut BTreeMap<String, i64> = tables.entry(section.to_string()).or_default();
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(value) = value.parse() {
                table.insert(name.to_string(), value);
            }
        }
    }
    tables
}

struct Counter {
    name: String,
    value: Option<i64>,
    meaning: &'static str,
}

/// Section, name, and what it counts for resets.
const COUNTERS: [(&str, &str, &str); 18] = [
    ("Tcp", "OutRsts", "RSTs this namespace sent, for any reason"),
    ("Tcp", "EstabResets", "connections reset (either way) while ESTABLISHED or CLOSE_WAIT"),
    (
        "TcpExt",
        "TW",
        "timewait sockets with their normal lifetime (TIME_WAIT: 60 s), counted as they start on recent kernels, as they end on older ones (5.10)",
    ),
    (
        "TcpExt",
        "TWKilled",
        "timewait sockets given 4 s or less (a short tcp_fin_timeout for FIN_WAIT2); TIME_WAIT sockets killed by an RST are not counted here (rsttrace reports them as tw_killed)",
    ),
    (
        "TcpExt",
        "TWRecycled",
        "4-tuples in TIME_WAIT taken over by this host's own connect() (tcp_tw_reuse); incoming SYNs never count here",
    ),
    ("TcpExt", "PAWSActive", "SYN-ACKs to this host's connections dropped for an old timestamp (PAWS)"),
    (
        "TcpExt",
        "PAWSEstab",
        "segments of established connections dropped for an old timestamp; growth points at a middlebox mixing timestamp clocks (NAT of several hosts); older kernels count TIME_WAIT rejects here too",
    ),
    (
        "TcpExt",
        "PAWSTimewait",
        "segments (reused-port SYNs among them) a TIME_WAIT socket dropped for an old timestamp: rsttrace's paws_drop verdict",
    ),
    ("TcpExt", "PAWSOldAck", "segments dropped by PAWS that were old duplicate ACKs"),
    ("TcpExt", "TSEcrRejected", "segments dropped because they echoed a timestamp this host never sent"),
    ("TcpExt", "TCPTimeWaitOverflow", "connections closed without TIME_WAIT because tcp_max_tw_buckets was reached"),
    (
        "TcpExt",
        "TCPACKSkippedTimeWait",
        "ACKs a TIME_WAIT socket did not send because of tcp_invalid_ratelimit: repeated SYNs or segments on one TIME_WAIT 4-tuple",
    ),
    (
        "TcpExt",
        "TCPAbortOnData",
        "resets sent by close() with SO_LINGER 0, or because data arrived after the application shut the connection",
    ),
    ("TcpExt", "TCPAbortOnClose", "resets sent because the application closed with unread data"),
    ("TcpExt", "TCPAbortOnLinger", "resets sent by close() in FIN_WAIT2 with TCP_LINGER2 negative"),
    (
        "TcpExt",
        "TCPAbortOnTimeout",
        "connections given up after retransmission or keepalive timeouts (a peer or middlebox went silent)",
    ),
    ("TcpExt", "TCPAbortOnMemory", "resets sent because orphaned sockets exceeded tcp_max_orphans or TCP memory"),
    ("TcpExt", "TCPAbortFailed", "resets this host wanted to send but could not allocate"),
];

fn counters(tables: &BTreeMap<String, BTreeMap<String, i64>>) -> Vec<Counter> {
    COUNTERS
        .iter()
        .map(|(section, name, meaning)| Counter {
            name: format!("{section}.{name}"),
            value: tables.get(*section).and_then(|t| t.get(*name)).copied(),
            meaning,
        })
        .collect()
}

struct TimeWaitCount {
    count: Option<u64>,
    method: &'static str,
    problem: Option<String>,
}

impl TimeWaitCount {
    /// sock_diag first (what `ss` uses); /proc/net/tcp{,6} if it fails.
    fn measure() -> Self {
        match sock_diag_time_wait() {
            Ok(n) => TimeWaitCount { count: Some(n), method: "sock_diag", problem: None },
            Err(e) => {
                let text: Result<Vec<String>, _> =
                    ["/proc/net/tcp", "/proc/net/tcp6"].iter().map(std::fs::read_to_string).collect();
                match text {
                    Ok(files) => TimeWaitCount {
                        count: Some(files.iter().map(|t| proc_net_tcp_time_wait(t)).sum()),
                        method: "/proc/net/tcp and /proc/net/tcp6",
                        problem: Some(format!("sock_diag failed: {e:#}")),
                    },
                    Err(e2) => TimeWaitCount {
                        count: None,
                        method: "none",
                        problem: Some(format!("sock_diag failed: {e:#}; /proc/net/tcp: {e2}")),
                    },
                }
            }
        }
    }
}

/// TIME_WAIT sockets of both families in this namespace, from a
/// SOCK_DIAG_BY_FAMILY dump filtered on that state by the kernel.
fn sock_diag_time_wait() -> anyhow::Result<u64> {
    use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_sock_diag::{
        SockDiagMessage,
        constants::{AF_INET, AF_INET6, IPPROTO_TCP, TCP_TIME_WAIT},
        inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    };
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut count = 0;
    for (family, socket_id) in [(AF_INET, SocketId::new_v4()), (AF_INET6, SocketId::new_v6())] {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let request = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::TIME_WAIT,
            socket_id,
        });
        let mut packet = NetlinkMessage::new(header, request.into());
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        socket.send(&buf, 0)?;
        'dump: loop {
            let (datagram, _) = socket.recv_from_full()?;
            let mut offset = 0;
            while offset < datagram.len() {
                let message = NetlinkMessage::<SockDiagMessage>::deserialize(&datagram[offset..])
                    .map_err(|e| anyhow::anyhow!("bad sock_diag message: {e}"))?;
                match message.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        count += u64::from(r.header.state == TCP_TIME_WAIT);
                    }
                    NetlinkPayload::Done(_) => break 'dump,
                    NetlinkPayload::Error(e) if e.to_io().raw_os_error() == Some(libc::ENOENT) => {
                        anyhow::bail!("this kernel has no sock_diag handler for TCP (tcp_diag module not loaded)")
                    }
                    NetlinkPayload::Error(e) => anyhow::bail!("sock_diag refused the dump: {e}"),
                    _ => {}
                }
                let length = message.header.length as usize;
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }
    Ok(count)
}

/// Lines of /proc/net/tcp or tcp6 whose `st` column is 06 (TIME_WAIT).
fn proc_net_tcp_time_wait(text: &str) -> u64 {
    text.lines().skip(1).filter(|line| line.split_whitespace().nth(3) == Some("06")).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT: &str = "\
TcpExt: SyncookiesSent TW TWRecycled TWKilled PAWSActive PAWSEstab PAWSTimewait TCPAbortOnData TCPTimeWaitOverflow
TcpExt: 0 118 3 0 1 7 2 9 0
IpExt: InNoRoutes InOctets
IpExt: 0 123456789012
";
    const SNMP: &str = "\
Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens EstabResets OutRsts
Tcp: 1 200 120000 -1 91 60 71
";

    #[test]
    fn parses_proc_net_tables() {
        let mut tables = parse_proc_net(NETSTAT);
        tables.extend(parse_proc_net(SNMP));
        assert_eq!(tables["TcpExt"]["TW"], 118);
        assert_eq!(tables["TcpExt"]["PAWSTimewait"], 2);
        assert_eq!(tables["IpExt"]["InOctets"], 123456789012);
        assert_eq!(tables["Tcp"]["MaxConn"], -1);
        assert_eq!(tables["Tcp"]["OutRsts"], 71);
        assert!(parse_proc_net("TcpExt: A B\nIpExt: 1 2\n").is_empty(), "mismatched sections are not paired");
    }

    #[test]
    fn counters_report_absent_ones_as_none() {
        let mut tables = parse_proc_net(NETSTAT);
        tables.extend(parse_proc_net(SNMP));
        let counters = counters(&tables);
        let get = |name: &str| counters.iter().find(|c| c.name == name).unwrap().value;
        assert_eq!(get("TcpExt.TWRecycled"), Some(3));
        assert_eq!(get("Tcp.EstabResets"), Some(60));
        assert_eq!(get("TcpExt.TCPACKSkippedTimeWait"), None);
        assert!(counters.iter().all(|c| !c.meaning.is_empty()));
    }

    #[test]
    fn counts_time_wait_lines_of_proc_net_tcp() {
        let text = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1
   1: 0200000A:1F9A 0100000A:9C45 06 00000000:00000000 03:00001770 00000000     0        0 0 3
   2: 0200000A:1F9A 0100000A:9C46 06 00000000:00000000 03:00001770 00000000     0        0 0 3
   3: 0200000A:1F9A 0100000A:9C47 01 00000000:00000000 00:00000000 00000000     0        0 99 1
";
        assert_eq!(proc_net_tcp_time_wait(text), 2);
        assert_eq!(proc_net_tcp_time_wait(""), 0);
    }

    fn sysctls(pairs: &[(&'static str, &str)], time_wait: Option<u64>) -> BTreeMap<String, Sysctl> {
        let values = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        interpret_sysctls(&values, time_wait).into_iter().map(|s| (s.name.clone(), s)).collect()
    }

    #[test]
    fn timestamps_off_is_the_stale_ack_case() {
        let s = sysctls(&[("tcp_timestamps", "0")], None);
        let meaning = &s["net.ipv4.tcp_timestamps"].meaning;
        assert!(meaning.contains("stale ACK") && meaning.contains("tcp_timestamps=1"), "{meaning}");
        let s = sysctls(&[("tcp_timestamps", "1")], None);
        assert!(s["net.ipv4.tcp_timestamps"].meaning.starts_with("on (with random offsets)"));
    }

    #[test]
    fn tw_reuse_only_affects_outgoing_connections() {
        for v in ["0", "1", "2"] {
            let s = sysctls(&[("tcp_tw_reuse", v)], None);
            assert!(s["net.ipv4.tcp_tw_reuse"].meaning.contains("own outgoing connect()"), "{v}");
        }
        assert!(
            sysctls(&[("tcp_tw_reuse", "2")], None)["net.ipv4.tcp_tw_reuse"].meaning.starts_with("reuse for loopback")
        );
    }

    #[test]
    fn keepalive_above_middlebox_idle_timeouts_warns() {
        let s = sysctls(
            &[("tcp_keepalive_time", "7200"), ("tcp_keepalive_intvl", "75"), ("tcp_keepalive_probes", "9")],
            None,
        );
        assert!(
            s["net.ipv4.tcp_keepalive_time"].meaning.contains("meets an RST"),
            "{}",
            s["net.ipv4.tcp_keepalive_time"].meaning
        );
        assert!(
            s["net.ipv4.tcp_keepalive_probes"].meaning.contains("after 7875 s"),
            "{}",
            s["net.ipv4.tcp_keepalive_probes"].meaning
        );
        let s = sysctls(&[("tcp_keepalive_time", "120")], None);
        assert!(s["net.ipv4.tcp_keepalive_time"].meaning.contains("before common middlebox idle timeouts"));
    }

    #[test]
    fn other_sysctls_say_what_they_change() {
        let s = sysctls(
            &[
                ("tcp_rfc1337", "1"),
                ("tcp_fin_timeout", "30"),
                ("tcp_max_tw_buckets", "262144"),
                ("ip_local_port_range", "32768 60999"),
            ],
            Some(12),
        );
        assert!(s["net.ipv4.tcp_rfc1337"].meaning.contains("ignored"));
        assert!(s["net.ipv4.tcp_fin_timeout"].meaning.contains("does not shorten TIME_WAIT"));
        assert!(
            s["net.ipv4.tcp_max_tw_buckets"].meaning.contains("262144 TIME_WAIT sockets in this namespace (now 12)")
        );
        assert!(s["net.ipv4.ip_local_port_range"].meaning.starts_with("28232 source ports"));
        assert_eq!(s["net.ipv4.ip_local_port_range"].value.as_deref(), Some("32768 60999"));
        assert!(sysctls(&[("tcp_rfc1337", "0")], None)["net.ipv4.tcp_rfc1337"].meaning.contains("kills the socket"));
        assert_eq!(sysctls(&[], None)["net.ipv4.tcp_rfc1337"].meaning, "not on this kernel");
        assert_eq!(sysctls(&[], None).len(), SYSCTLS.len());
    }

    /// A host where rsttrace runs: every sysctl and counter present.
    fn runnable_report() -> Report {
        let values = [
            ("tcp_timestamps", "1"),
            ("tcp_tw_reuse", "2"),
            ("tcp_fin_timeout", "60"),
            ("tcp_max_tw_buckets", "131072"),
            ("tcp_rfc1337", "0"),
            ("tcp_keepalive_time", "7200"),
            ("tcp_keepalive_intvl", "75"),
            ("tcp_keepalive_probes", "9"),
            ("ip_local_port_range", "32768 60999"),
        ]
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
        let mut tables = parse_proc_net(NETSTAT);
        tables.extend(parse_proc_net(SNMP));
        Report {
            kernel: "6.18.44".to_string(),
            netns: Netns { inode: Some(4026531833), host: Some(false) },
            privileges: Privileges {
                uid: 0,
                capabilities: vec![
                    ("CAP_BPF", true),
                    ("CAP_PERFMON", true),
                    ("CAP_DAC_READ_SEARCH", true),
                    ("CAP_SYS_ADMIN", false),
                ],
                unreadable_tracefs: vec![],
                perf_event_paranoid: Some(2),
                perf_events_refused: false,
            },
            privileges_problem: None,
            btf: PathBuf::from("/sys/kernel/btf/vmlinux"),
            btf_problem: None,
            tracefs: Ok(PathBuf::from("/sys/kernel/tracing")),
            mounted_tracefs: true,
            strategies: vec![
                (Strategy::Fexit, Err("the kernel refused fexit/tcp_timewait_state_process: EPERM".to_string())),
                (Strategy::Kprobe, Ok(())),
                (Strategy::Tracepoint, Ok(())),
            ],
            sysctls: interpret_sysctls(&values, Some(3)),
            time_wait: TimeWaitCount { count: Some(3), method: "sock_diag", problem: None },
            counters: counters(&tables),
        }
    }

    /// A host where nothing works and nothing can be read.
    fn broken_report() -> Report {
        Report {
            kernel: "5.10.0".to_string(),
            netns: Netns { inode: None, host: None },
            privileges: Privileges {
                uid: 1000,
                capabilities: vec![
                    ("CAP_BPF", false),
                    ("CAP_PERFMON", false),
                    ("CAP_DAC_READ_SEARCH", false),
                    ("CAP_SYS_ADMIN", false),
                ],
                unreadable_tracefs: vec![],
                perf_event_paranoid: None,
                perf_events_refused: false,
            },
            privileges_problem: Some("missing CAP_BPF (creating the maps)".to_string()),
            btf: PathBuf::from("/nonexistent/vmlinux"),
            btf_problem: Some("cannot read /nonexistent/vmlinux: No such file".to_string()),
            tracefs: Err("/sys/kernel/tracing is mounted but this process cannot read it".to_string()),
            mounted_tracefs: false,
            strategies: STRATEGIES
                .iter()
                .map(|&s| (s, Err("not tried: privileges missing (see above)".to_string())))
                .collect(),
            sysctls: interpret_sysctls(&BTreeMap::new(), None),
            time_wait: TimeWaitCount {
                count: None,
                method: "none",
                problem: Some("sock_diag failed: EPERM; /proc/net/tcp: EACCES".to_string()),
            },
            counters: counters(&BTreeMap::new()),
        }
    }

    /// What `rsttrace doctor` prints for fixed reports, byte for byte: the
    /// files hold the output of the code before it was split up.
    #[test]
    fn renders_text_and_json_as_before() {
        let host = Report {
            netns: Netns { inode: Some(4026531840), host: Some(true) },
            mounted_tracefs: false,
            ..runnable_report()
        };
        let expected = [
            (
                runnable_report(),
                include_str!("../testdata/doctor/runnable.txt"),
                include_str!("../testdata/doctor/runnable.json"),
            ),
            (host, include_str!("../testdata/doctor/host.txt"), include_str!("../testdata/doctor/host.json")),
            (
                broken_report(),
                include_str!("../testdata/doctor/broken.txt"),
                include_str!("../testdata/doctor/broken.json"),
            ),
        ];
        for (report, text, json) in expected {
            assert_eq!(report.text(), text);
            assert_eq!(format!("{}\n", report.json()), json);
        }
    }

    #[test]
    fn a_forced_strategy_refusal_loses_its_advice() {
        let e = anyhow::anyhow!(
            "--strategy fexit is not available here: the kernel refused fexit/x: EPERM; try --strategy auto"
        );
        assert_eq!(refusal(Strategy::Fexit, &e), "the kernel refused fexit/x: EPERM");
        assert_eq!(refusal(Strategy::Kprobe, &anyhow::anyhow!("other")), "other");
    }
}
