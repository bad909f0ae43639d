//! The report as text for people and as one JSON object for tools. The
//! JSON is serialized from the structs below: their fields, in order, are
//! the keys.

use std::fmt::Write as _;

use caps::Capability;
use serde::{Serialize, Serializer};

use super::{
    Netns, Report,
    explain::{Counter, Sysctl},
};
use crate::kernel::{privileges::CAPABILITIES, strategy::Strategy};

const NETNS_NOTE: &str = "sysctls, TIME_WAIT sockets and counters are per network namespace: these are this one's; for a container's or another namespace's, run `ip netns exec NAME rsttrace doctor` or `nsenter --net=/proc/PID/ns/net rsttrace doctor`";

pub fn text(report: &Report) -> String {
    let mut t = String::new();
    let mark = |ok: bool| if ok { "ok " } else { "NO " };
    let _ = writeln!(t, "rsttrace {} doctor on Linux {}", env!("CARGO_PKG_VERSION"), report.kernel);
    let _ = writeln!(
        t,
        "\nCan rsttrace run here: {}",
        if report.can_run() { "yes" } else { "no (fix the lines marked NO)" }
    );
    let held: Vec<String> =
        report.privileges.capabilities.iter().filter(|(_, on)| *on).map(|(cap, _)| cap.to_string()).collect();
    let held = if held.is_empty() {
        let all: Vec<String> = CAPABILITIES.iter().map(ToString::to_string).collect();
        format!("none of {}", all.join(", "))
    } else {
        held.join(", ")
    };
    let _ = writeln!(
        t,
        "  {} privileges: uid {}, {}{}",
        mark(report.privileges_problem.is_none()),
        report.privileges.uid,
        held,
        report.privileges_problem.as_deref().map(|p| format!(": {p}")).unwrap_or_default()
    );
    let _ = writeln!(
        t,
        "  {} kernel BTF: {}",
        mark(report.btf_problem.is_none()),
        report.btf_problem.clone().unwrap_or_else(|| report.btf.display().to_string())
    );
    let _ = match &report.tracefs {
        Ok(dir) if report.mounted_tracefs => {
            writeln!(t, "  ok  tracefs: {} (was not mounted: doctor mounted it)", dir.display())
        }
        Ok(dir) => writeln!(t, "  ok  tracefs: {}", dir.display()),
        Err(problem) => writeln!(t, "  NO  tracefs: {problem}"),
    };
    for (strategy, outcome) in &report.strategies {
        let _ = match outcome {
            Ok(()) => writeln!(t, "  ok  strategy {}: loads and attaches", strategy.as_str()),
            Err(reason) => writeln!(t, "  --  strategy {}: {reason}", strategy.as_str()),
        };
    }
    let _ = writeln!(
        t,
        "      --strategy auto picks: {}",
        report.auto().map_or("nothing (no strategy loads)", Strategy::as_str)
    );

    let _ = writeln!(t, "\nNetwork namespace: {}", describe(&report.netns));
    let _ = writeln!(t, "  {NETNS_NOTE}");
    let _ = writeln!(t, "\nTCP settings:");
    let sockets = &report.sockets;
    let problem = sockets.problem.as_deref().unwrap_or("?");
    for s in &report.sysctls {
        let _ = writeln!(t, "  {} = {}: {}", s.name, s.value.as_deref().unwrap_or("(absent)"), s.meaning);
        // Right below the keepalive settings it qualifies (always listed).
        if s.name != "net.ipv4.tcp_keepalive_probes" {
            continue;
        }
        let _ = match (sockets.counts, &report.keepalive) {
            (Some(c), Some(meaning)) => writeln!(
                t,
                "  keepalive is on for {} of {} established connections now (counted with {}): {meaning}",
                c.keepalive, c.established, sockets.method
            ),
            _ => writeln!(t, "  keepalive on established connections now: unknown ({problem})"),
        };
    }
    let _ = match sockets.counts {
        Some(c) => writeln!(t, "\nTIME_WAIT sockets now: {} (counted with {})", c.time_wait, sockets.method),
        None => writeln!(t, "\nTIME_WAIT sockets now: unknown ({problem})"),
    };
    let _ = writeln!(t, "\nCounters since the namespace was created (/proc/net/netstat, /proc/net/snmp):");
    for c in &report.counters {
        let value = c.value.map_or("(absent)".to_string(), |v| v.to_string());
        let _ = writeln!(t, "  {} = {value}: {}", c.name, c.meaning);
    }
    t
}

/// The namespace's inode and whether it is the host's.
fn describe(netns: &Netns) -> String {
    let inode = netns.inode.map_or("unknown".to_string(), |i| i.to_string());
    match netns.host {
        Some(true) => format!("{inode} (the host's, PID 1's)"),
        Some(false) => format!("{inode} (not the host's)"),
        None => format!("{inode} (whether it is the host's is unknown: /proc/1/ns/net is unreadable)"),
    }
}

/// The report as one line of JSON.
pub fn json(report: &Report) -> String {
    let privileges = &report.privileges;
    let json = Json {
        kind: "doctor",
        version: env!("CARGO_PKG_VERSION"),
        kernel: &report.kernel,
        can_run: report.can_run(),
        netns: NetnsJson { inode: report.netns.inode, host: report.netns.host, note: NETNS_NOTE },
        privileges: PrivilegesJson {
            ok: report.privileges_problem.is_none(),
            uid: privileges.uid,
            capabilities: &privileges.capabilities,
            perf_event_paranoid: privileges.perf_event_paranoid,
            problem: report.privileges_problem.as_deref(),
        },
        btf: BtfJson {
            ok: report.btf_problem.is_none(),
            path: report.btf.display().to_string(),
            problem: report.btf_problem.as_deref(),
        },
        tracefs: TracefsJson {
            ok: report.tracefs.is_ok(),
            path: report.tracefs.as_ref().ok().map(|dir| dir.display().to_string()),
            mounted_by_doctor: report.mounted_tracefs,
            problem: report.tracefs.as_ref().err().map(String::as_str),
        },
        strategies: report
            .strategies
            .iter()
            .map(|(strategy, outcome)| StrategyJson {
                name: strategy.as_str(),
                ok: outcome.is_ok(),
                reason: outcome.as_ref().err().map(String::as_str),
            })
            .collect(),
        auto: report.auto().map(Strategy::as_str),
        sysctls: &report.sysctls,
        time_wait: TimeWaitJson {
            count: report.sockets.counts.map(|c| c.time_wait),
            method: report.sockets.method,
            problem: report.sockets.problem.as_deref(),
        },
        counters: &report.counters,
        keepalive: KeepaliveJson {
            established: report.sockets.counts.map(|c| c.established),
            with_keepalive: report.sockets.counts.map(|c| c.keepalive),
            method: report.sockets.method,
            meaning: report.keepalive.as_deref(),
        },
    };
    // Every key is a string and every path was made text: nothing can fail.
    serde_json::to_string(&json).expect("the doctor report serializes")
}

/// The `--format json` object. Tools read it by key: a new key goes at
/// the end of its object, an existing one never changes.
#[derive(Serialize)]
struct Json<'a> {
    kind: &'static str,
    version: &'static str,
    kernel: &'a str,
    can_run: bool,
    netns: NetnsJson,
    privileges: PrivilegesJson<'a>,
    btf: BtfJson<'a>,
    tracefs: TracefsJson<'a>,
    strategies: Vec<StrategyJson<'a>>,
    auto: Option<&'static str>,
    sysctls: &'a [Sysctl],
    time_wait: TimeWaitJson<'a>,
    counters: &'a [Counter],
    keepalive: KeepaliveJson<'a>,
}

#[derive(Serialize)]
struct NetnsJson {
    inode: Option<u64>,
    host: Option<bool>,
    note: &'static str,
}

#[derive(Serialize)]
struct PrivilegesJson<'a> {
    ok: bool,
    uid: u32,
    /// `{"CAP_BPF": true, …}` in the order Privileges lists them.
    #[serde(serialize_with = "as_map")]
    capabilities: &'a [(Capability, bool)],
    perf_event_paranoid: Option<i32>,
    problem: Option<&'a str>,
}

#[derive(Serialize)]
struct BtfJson<'a> {
    ok: bool,
    path: String,
    problem: Option<&'a str>,
}

#[derive(Serialize)]
struct TracefsJson<'a> {
    ok: bool,
    path: Option<String>,
    mounted_by_doctor: bool,
    problem: Option<&'a str>,
}

#[derive(Serialize)]
struct TimeWaitJson<'a> {
    count: Option<u64>,
    method: &'static str,
    problem: Option<&'a str>,
}

/// How many established connections have SO_KEEPALIVE on (null: unknown).
#[derive(Serialize)]
struct KeepaliveJson<'a> {
    established: Option<u64>,
    with_keepalive: Option<u64>,
    method: &'static str,
    meaning: Option<&'a str>,
}

#[derive(Serialize)]
struct StrategyJson<'a> {
    name: &'static str,
    ok: bool,
    reason: Option<&'a str>,
}

fn as_map<S: Serializer>(pairs: &&[(Capability, bool)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(cap, on)| (cap.to_string(), on)))
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, path::PathBuf};

    use super::*;
    use crate::{
        doctor::{
            explain::{
                self,
                tests::{NETSTAT, SNMP},
            },
            sockets::{Counts, SocketCounts},
        },
        kernel::{privileges::Privileges, strategy::Strategy},
        procfs,
    };

    /// A host where rsttrace runs: every sysctl and counter present.
    fn runnable_report() -> Report {
        let values = [
            ("tcp_timestamps", "1"),
            ("tcp_tw_reuse", "2"),
            ("tcp_tw_reuse_delay", "1000"),
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
        let mut tables = procfs::counter_tables(NETSTAT);
        tables.extend(procfs::counter_tables(SNMP));
        Report {
            kernel: "6.18.44".to_string(),
            netns: Netns { inode: Some(4026531833), host: Some(false) },
            privileges: Privileges {
                uid: 0,
                capabilities: vec![
                    (Capability::CAP_BPF, true),
                    (Capability::CAP_PERFMON, true),
                    (Capability::CAP_DAC_READ_SEARCH, true),
                    (Capability::CAP_SYS_ADMIN, false),
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
            sysctls: explain::sysctls(&values, Some(3)),
            sockets: SocketCounts {
                counts: Some(Counts { time_wait: 3, established: 10, keepalive: 3 }),
                method: "sock_diag",
                problem: None,
            },
            keepalive: Some(explain::keepalive(10, 3)),
            counters: explain::counters(&tables),
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
                    (Capability::CAP_BPF, false),
                    (Capability::CAP_PERFMON, false),
                    (Capability::CAP_DAC_READ_SEARCH, false),
                    (Capability::CAP_SYS_ADMIN, false),
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
            strategies: Strategy::AUTO_ORDER
                .iter()
                .map(|&s| (s, Err("not tried: privileges missing (see above)".to_string())))
                .collect(),
            sysctls: explain::sysctls(&BTreeMap::new(), None),
            sockets: SocketCounts {
                counts: None,
                method: "none",
                problem: Some("sock_diag failed: EPERM; /proc/net/tcp: EACCES".to_string()),
            },
            keepalive: None,
            counters: explain::counters(&BTreeMap::new()),
        }
    }

    /// What `rsttrace doctor` prints for fixed reports, byte for byte. The
    /// files began as the output of the code before it was split up; output
    /// may only grow. `RSTTRACE_BLESS=1` rewrites them (review the diff).
    #[test]
    fn renders_text_and_json_as_before() {
        let host = Report {
            netns: Netns { inode: Some(4026531840), host: Some(true) },
            mounted_tracefs: false,
            ..runnable_report()
        };
        let bless = std::env::var_os("RSTTRACE_BLESS").is_some();
        for (name, report) in [("runnable", runnable_report()), ("host", host), ("broken", broken_report())] {
            for (extension, rendered) in [("txt", text(&report)), ("json", format!("{}\n", json(&report)))] {
                let path = format!("{}/testdata/doctor/{name}.{extension}", env!("CARGO_MANIFEST_DIR"));
                if bless {
                    std::fs::write(&path, &rendered).unwrap();
                }
                let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                assert_eq!(rendered, expected, "{path}");
            }
        }
    }
}
