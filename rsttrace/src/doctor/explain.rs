//! What each sysctl value and counter means for resets on a backend behind a
//! load balancer: pure functions of the values gathered.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::procfs::CounterTables;

/// The sysctls behind the TIME_WAIT and idle-reset cases, under net.ipv4.
pub const SYSCTLS: [&str; 10] = [
    "tcp_timestamps",
    "tcp_tw_reuse",
    "tcp_tw_reuse_delay",
    "tcp_fin_timeout",
    "tcp_max_tw_buckets",
    "tcp_rfc1337",
    "tcp_keepalive_time",
    "tcp_keepalive_intvl",
    "tcp_keepalive_probes",
    "ip_local_port_range",
];

/// A sysctl of this namespace, its value (None: not on this kernel) and
/// what that value means.
#[derive(Serialize)]
pub struct Sysctl {
    pub name: String,
    pub value: Option<String>,
    pub meaning: String,
}

/// Sysctls newer than the oldest kernel rsttrace supports, listed only
/// where the kernel has them: tcp_tw_reuse_delay since Linux 6.14.
const NEWER_SYSCTLS: [&str; 1] = ["tcp_tw_reuse_delay"];

/// One sentence per sysctl: what its value means for resets on a backend
/// behind a load balancer.
pub fn sysctls(values: &BTreeMap<&'static str, String>, time_wait: Option<u64>) -> Vec<Sysctl> {
    let number = |name: &str| values.get(name).and_then(|v| v.parse::<u64>().ok());
    SYSCTLS
        .iter()
        .filter(|name| values.contains_key(*name) || !NEWER_SYSCTLS.contains(name))
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
                ("tcp_tw_reuse_delay", Some(v)) => tw_reuse_delay(v, values.get("tcp_tw_reuse").map(String::as_str)),
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

/// tcp_tw_reuse_delay (milliseconds) under this tcp_tw_reuse mode.
fn tw_reuse_delay(delay_ms: &str, tw_reuse: Option<&str>) -> String {
    let mode = match tw_reuse {
        Some("0") => ": unused, tcp_tw_reuse is 0",
        Some("2") => ", loopback connections only (tcp_tw_reuse is 2)",
        _ => "",
    };
    let peer_clock = match delay_ms.parse::<u64>() {
        Ok(ms) if ms < 1000 => format!(
            "; below the 1 s default, a peer whose timestamp clock ticks slower than every {ms} ms may drop the new connection's segments as old (PAWS)"
        ),
        _ => String::new(),
    };
    format!(
        "{delay_ms} ms in TIME_WAIT before this host's own connect() may take over the 4-tuple (with tcp_tw_reuse, if the old connection used timestamps){mode}; like tcp_tw_reuse it only affects connections this host opens, not the load balancer's SYNs that hit TIME_WAIT here{peer_clock}"
    )
}

/// What it means that `with_keepalive` of this namespace's `established`
/// connections have SO_KEEPALIVE on, behind middleboxes that forget idle
/// connections.
pub fn keepalive(established: u64, with_keepalive: u64) -> String {
    let without = established.saturating_sub(with_keepalive);
    let unprobed = "get no keepalive probes, whatever tcp_keepalive_time says: idle, they outlive a middlebox's idle timeout (4 min Azure LB, 350 s AWS NLB, NAT tables) only if the application sends something sooner";
    // Both sources show one timer per socket, retransmission first.
    let snapshot = "; counted by the timer pending now, so one waiting for an ACK at this moment counts as without";
    match (established, without) {
        (0, _) => "no established connection to tell by now".to_string(),
        (_, 0) => {
            "every one sends keepalive probes after tcp_keepalive_time idle (or its own TCP_KEEPIDLE)".to_string()
        }
        (n, w) if w == n => format!("all {n} {unprobed}{snapshot}"),
        (_, w) => format!("the {w} without {unprobed}{snapshot}"),
    }
}

/// A counter of /proc/net/netstat or snmp (None: not on this kernel) and
/// what it counts.
#[derive(Serialize)]
pub struct Counter {
    pub name: String,
    pub value: Option<i64>,
    pub meaning: String,
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

/// Each counter with its value and meaning, on this kernel.
pub fn counters(tables: &CounterTables) -> Vec<Counter> {
    // Linux 6.16 counts TIME_WAIT PAWS rejects in PAWSTimewait, older
    // kernels in PAWSEstab; None: no TcpExt table to tell by.
    let paws_timewait = tables.get("TcpExt").map(|t| t.contains_key("PAWSTimewait"));
    COUNTERS
        .iter()
        .map(|(section, name, meaning)| {
            let on_this_kernel = match (*name, paws_timewait) {
                ("PAWSEstab", Some(true)) => ": not this one (6.16 or newer), which counts them in TcpExt.PAWSTimewait",
                ("PAWSEstab", Some(false)) => {
                    ", this one among them (before 6.16): rsttrace's paws_drop verdicts are counted here"
                }
                ("PAWSTimewait", Some(false)) => {
                    "; not on this kernel (before 6.16): they are counted in TcpExt.PAWSEstab"
                }
                _ => "",
            };
            Counter {
                name: format!("{section}.{name}"),
                value: tables.get(*section).and_then(|t| t.get(*name)).copied(),
                meaning: format!("{meaning}{on_this_kernel}"),
            }
        })
        .collect()
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::procfs;

    /// Parts of /proc/net/netstat and snmp.
    pub const NETSTAT: &str = "\
TcpExt: SyncookiesSent TW TWRecycled TWKilled PAWSActive PAWSEstab PAWSTimewait TCPAbortOnData TCPTimeWaitOverflow
TcpExt: 0 118 3 0 1 7 2 9 0
IpExt: InNoRoutes InOctets
IpExt: 0 123456789012
";
    pub const SNMP: &str = "\
Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens EstabResets OutRsts
Tcp: 1 200 120000 -1 91 60 71
";

    #[test]
    fn counters_report_absent_ones_as_none() {
        let mut tables = procfs::counter_tables(NETSTAT);
        tables.extend(procfs::counter_tables(SNMP));
        let counters = counters(&tables);
        let get = |name: &str| counters.iter().find(|c| c.name == name).unwrap().value;
        assert_eq!(get("TcpExt.TWRecycled"), Some(3));
        assert_eq!(get("Tcp.EstabResets"), Some(60));
        assert_eq!(get("TcpExt.TCPACKSkippedTimeWait"), None);
        assert!(counters.iter().all(|c| !c.meaning.is_empty()));
    }

    fn explained(pairs: &[(&'static str, &str)], time_wait: Option<u64>) -> BTreeMap<String, Sysctl> {
        let values = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        super::sysctls(&values, time_wait).into_iter().map(|s| (s.name.clone(), s)).collect()
    }

    #[test]
    fn timestamps_off_is_the_stale_ack_case() {
        let s = explained(&[("tcp_timestamps", "0")], None);
        let meaning = &s["net.ipv4.tcp_timestamps"].meaning;
        assert!(meaning.contains("stale ACK") && meaning.contains("tcp_timestamps=1"), "{meaning}");
        let s = explained(&[("tcp_timestamps", "1")], None);
        assert!(s["net.ipv4.tcp_timestamps"].meaning.starts_with("on (with random offsets)"));
    }

    #[test]
    fn tw_reuse_only_affects_outgoing_connections() {
        for v in ["0", "1", "2"] {
            let s = explained(&[("tcp_tw_reuse", v)], None);
            assert!(s["net.ipv4.tcp_tw_reuse"].meaning.contains("own outgoing connect()"), "{v}");
        }
        assert!(
            explained(&[("tcp_tw_reuse", "2")], None)["net.ipv4.tcp_tw_reuse"]
                .meaning
                .starts_with("reuse for loopback")
        );
    }

    #[test]
    fn keepalive_above_middlebox_idle_timeouts_warns() {
        let s = explained(
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
        let s = explained(&[("tcp_keepalive_time", "120")], None);
        assert!(s["net.ipv4.tcp_keepalive_time"].meaning.contains("before common middlebox idle timeouts"));
    }

    #[test]
    fn other_sysctls_say_what_they_change() {
        let s = explained(
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
        assert!(explained(&[("tcp_rfc1337", "0")], None)["net.ipv4.tcp_rfc1337"].meaning.contains("kills the socket"));
        assert_eq!(explained(&[], None)["net.ipv4.tcp_rfc1337"].meaning, "not on this kernel");
        assert_eq!(explained(&[], None).len(), SYSCTLS.len() - NEWER_SYSCTLS.len());
    }

    #[test]
    fn tw_reuse_delay_is_listed_only_where_the_kernel_has_it() {
        let s = explained(&[("tcp_tw_reuse", "1"), ("tcp_tw_reuse_delay", "1000")], None);
        let delay = &s["net.ipv4.tcp_tw_reuse_delay"];
        assert_eq!(delay.value.as_deref(), Some("1000"));
        assert!(delay.meaning.starts_with("1000 ms in TIME_WAIT before"), "{}", delay.meaning);
        assert!(delay.meaning.contains("only affects connections this host opens"), "{}", delay.meaning);
        assert!(delay.meaning.contains("not the load balancer's SYNs"), "{}", delay.meaning);
        assert!(!delay.meaning.contains("PAWS"), "the default is safe: {}", delay.meaning);
        // Before 6.14: no line at all rather than "not on this kernel".
        assert!(!explained(&[("tcp_tw_reuse", "1")], None).contains_key("net.ipv4.tcp_tw_reuse_delay"));
        // Listed right after tcp_tw_reuse, which it qualifies.
        let values = [("tcp_tw_reuse", "1".to_string()), ("tcp_tw_reuse_delay", "1000".to_string())].into();
        let names: Vec<String> = super::sysctls(&values, None).into_iter().map(|s| s.name).collect();
        assert_eq!(names[1..3], ["net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_tw_reuse_delay"]);
    }

    #[test]
    fn tw_reuse_delay_depends_on_the_reuse_mode_and_the_peer_clock() {
        let meaning = |reuse: &str, delay: &str| {
            explained(&[("tcp_tw_reuse", reuse), ("tcp_tw_reuse_delay", delay)], None)["net.ipv4.tcp_tw_reuse_delay"]
                .meaning
                .clone()
        };
        assert!(meaning("0", "1000").contains("timestamps): unused, tcp_tw_reuse is 0; like tcp_tw_reuse"));
        assert!(meaning("2", "1000").contains(", loopback connections only (tcp_tw_reuse is 2); like"));
        assert!(!meaning("1", "1000").contains("tcp_tw_reuse is"));
        let short = meaning("1", "10");
        assert!(short.contains("slower than every 10 ms") && short.contains("(PAWS)"), "{short}");
    }

    #[test]
    fn keepalive_share_says_which_connections_get_no_probes() {
        assert_eq!(keepalive(0, 0), "no established connection to tell by now");
        assert!(keepalive(4, 4).starts_with("every one sends keepalive probes after tcp_keepalive_time"));
        let none = keepalive(10, 0);
        assert!(none.starts_with("all 10 get no keepalive probes, whatever tcp_keepalive_time says"), "{none}");
        let some = keepalive(10, 3);
        assert!(some.starts_with("the 7 without get no keepalive probes"), "{some}");
        assert!(some.contains("350 s AWS NLB") && some.contains("waiting for an ACK"), "{some}");
    }

    #[test]
    fn paws_counters_are_explained_by_kernel() {
        let meaning = |netstat: &str, name: &str| {
            counters(&procfs::counter_tables(netstat)).into_iter().find(|c| c.name == name).unwrap().meaning
        };
        // 6.16 and newer: TIME_WAIT rejects have their own counter.
        let new = "TcpExt: PAWSEstab PAWSTimewait\nTcpExt: 7 2\n";
        assert!(
            meaning(new, "TcpExt.PAWSEstab")
                .ends_with("not this one (6.16 or newer), which counts them in TcpExt.PAWSTimewait")
        );
        assert!(meaning(new, "TcpExt.PAWSTimewait").ends_with("rsttrace's paws_drop verdict"));
        // Before: both in PAWSEstab.
        let old = "TcpExt: PAWSEstab\nTcpExt: 7\n";
        assert!(
            meaning(old, "TcpExt.PAWSEstab")
                .ends_with("this one among them (before 6.16): rsttrace's paws_drop verdicts are counted here")
        );
        assert!(
            meaning(old, "TcpExt.PAWSTimewait")
                .ends_with("not on this kernel (before 6.16): they are counted in TcpExt.PAWSEstab")
        );
        // Unreadable: no claim about this kernel.
        assert!(meaning("", "TcpExt.PAWSEstab").ends_with("older kernels count TIME_WAIT rejects here too"));
        assert!(meaning("", "TcpExt.PAWSTimewait").ends_with("rsttrace's paws_drop verdict"));
    }
}
