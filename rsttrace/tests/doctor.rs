//! `rsttrace doctor` reports the real values of the network namespace it
//! runs in, in text and JSON, and exits 0 only when rsttrace can run.

mod support;

use std::{
    io::Read as _,
    net::{TcpListener, TcpStream},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{Netns, procfs, require_root};

/// `rsttrace doctor ARGS` inside `netns` (ip netns exec).
fn doctor_in(netns: &Netns, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &netns.name, env!("CARGO_BIN_EXE_rsttrace"), "doctor"])
        .args(args)
        .output()
        .expect("run ip netns exec rsttrace doctor")
}

fn json_report(netns: &Netns, args: &[&str]) -> (Value, Output) {
    let out = doctor_in(netns, &[&["--format", "json"], args].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON object on one line:\n{stdout}");
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("doctor JSON `{stdout}`: {e}"));
    (report, out)
}

fn sysctl<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["sysctls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

fn counter(report: &Value, name: &str) -> i64 {
    let c = report["counters"].as_array().unwrap().iter().find(|c| c["name"] == name);
    c.and_then(|c| c["value"].as_i64()).unwrap_or_else(|| panic!("{name} in {report}"))
}

/// What /proc says inside the namespace (a thread there reads its own).
fn proc_in(netns: &Netns, path: &'static str) -> String {
    netns.run("proc", move || std::fs::read_to_string(path).expect(path))
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn reports_this_namespace_sysctls_in_json_and_text() {
    require_root();
    let netns = Netns::new("doctor-sysctl");
    // Not the default: doctor must read this namespace, not the host's.
    netns.sysctl("net.ipv4.tcp_timestamps", "0");
    netns.sysctl("net.ipv4.tcp_keepalive_time", "600");
    let timestamps = proc_in(&netns, "/proc/sys/net/ipv4/tcp_timestamps").trim().to_string();
    assert_eq!(timestamps, "0");

    let (report, out) = json_report(&netns, &[]);
    assert_eq!(out.status.code(), Some(0), "rsttrace can run here: {report}");
    assert_eq!(report["can_run"], true);
    assert_eq!(report["netns"]["inode"].as_u64(), Some(netns.inode()), "{report}");
    let ts = sysctl(&report, "net.ipv4.tcp_timestamps");
    assert_eq!(ts["value"].as_str(), Some(timestamps.as_str()), "{ts}");
    assert!(ts["meaning"].as_str().unwrap().contains("stale ACK"), "{ts}");
    assert_eq!(sysctl(&report, "net.ipv4.tcp_keepalive_time")["value"], "600");
    let range =
        proc_in(&netns, "/proc/sys/net/ipv4/ip_local_port_range").split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(sysctl(&report, "net.ipv4.ip_local_port_range")["value"].as_str(), Some(range.as_str()));
    assert_eq!(
        report["kernel"].as_str().unwrap(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim()
    );
    assert_eq!(report["privileges"]["ok"], true);
    assert_eq!(report["btf"]["ok"], true);
    assert_eq!(report["tracefs"]["ok"], true);

    // auto is the first strategy that loads, in fexit, kprobe, tracepoint order.
    let strategies = report["strategies"].as_array().unwrap();
    let names: Vec<&str> = strategies.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fexit", "kprobe", "tracepoint"]);
    let first_ok = strategies.iter().find(|s| s["ok"] == true).expect("a strategy loads");
    assert_eq!(report["auto"], first_ok["name"]);
    for refused in strategies.iter().filter(|s| s["ok"] == false) {
        let reason = refused["reason"].as_str().unwrap();
        assert!(!reason.is_empty() && !reason.contains('\n') && !reason.contains("--strategy"), "{refused}");
    }

    let out = doctor_in(&netns, &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Can rsttrace run here: yes"), "{text}");
    assert!(text.contains("net.ipv4.tcp_timestamps = 0: off"), "{text}");
    assert!(text.contains(&format!("Network namespace: {}", netns.inode())), "{text}");
    assert!(text.contains(&format!("--strategy auto picks: {}", first_ok["name"].as_str().unwrap())), "{text}");
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn shows_tw_reuse_delay_and_paws_counters_by_kernel() {
    require_root();
    let netns = Netns::new("doctor-kernel");
    // Linux 6.14+: shown, with this namespace's value; before: not listed.
    let has_delay = netns.run("proc", || std::path::Path::new("/proc/sys/net/ipv4/tcp_tw_reuse_delay").exists());
    if has_delay {
        netns.sysctl("net.ipv4.tcp_tw_reuse_delay", "250");
    }
    // Linux 6.16+ counts TIME_WAIT PAWS rejects apart from PAWSEstab.
    let netstat = procfs::counter_tables(&proc_in(&netns, "/proc/thread-self/net/netstat"));
    let has_paws_timewait = netstat["TcpExt"].contains_key("PAWSTimewait");

    let (report, _) = json_report(&netns, &[]);
    let text = String::from_utf8_lossy(&doctor_in(&netns, &[]).stdout).to_string();
    let delay = report["sysctls"].as_array().unwrap().iter().find(|s| s["name"] == "net.ipv4.tcp_tw_reuse_delay");
    if has_delay {
        let delay = delay.unwrap_or_else(|| panic!("tcp_tw_reuse_delay in {report}"));
        assert_eq!(delay["value"], "250", "{delay}");
        let meaning = delay["meaning"].as_str().unwrap();
        assert!(
            meaning.contains("only affects connections this host opens") && meaning.contains("(PAWS)"),
            "{meaning}"
        );
        assert!(text.contains("  net.ipv4.tcp_tw_reuse_delay = 250: 250 ms in TIME_WAIT"), "{text}");
    } else {
        assert_eq!(delay, None, "this kernel has no tcp_tw_reuse_delay: {report}");
        assert!(!text.contains("tcp_tw_reuse_delay"), "{text}");
    }

    let paws = |name: &str| report["counters"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    let (estab, timewait) = (paws("TcpExt.PAWSEstab"), paws("TcpExt.PAWSTimewait"));
    assert_eq!(estab["value"].as_i64(), Some(netstat["TcpExt"]["PAWSEstab"]), "{estab}");
    assert_eq!(timewait["value"].as_i64(), netstat["TcpExt"].get("PAWSTimewait").copied(), "{timewait}");
    let estab_meaning = estab["meaning"].as_str().unwrap();
    let timewait_meaning = timewait["meaning"].as_str().unwrap();
    if has_paws_timewait {
        assert!(estab_meaning.ends_with("not this one (6.16 or newer), which counts them in TcpExt.PAWSTimewait"));
        assert!(text.contains("  TcpExt.PAWSTimewait = 0: "), "{text}");
    } else {
        assert!(estab_meaning.contains("this one among them (before 6.16)"), "{estab_meaning}");
        assert!(timewait_meaning.contains("not on this kernel (before 6.16)"), "{timewait_meaning}");
        assert!(text.contains("  TcpExt.PAWSTimewait = (absent): "), "{text}");
    }
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn counts_time_wait_sockets_of_its_namespace() {
    require_root();
    let netns = Netns::new("doctor-tw");
    let (before, _) = json_report(&netns, &[]);
    // sock_diag needs tcp_diag, a module where nothing loads it (the QEMU
    // guests): doctor then counts from /proc/net/tcp and says why.
    let method = before["time_wait"]["method"].as_str().unwrap().to_string();
    if method != "sock_diag" {
        let problem = before["time_wait"]["problem"].as_str().unwrap_or_default();
        assert!(problem.starts_with("sock_diag failed: "), "{before}");
        eprintln!("note: doctor counted with {method}: {problem}");
    }
    let count_before = before["time_wait"]["count"].as_u64().unwrap();

    const N: usize = 5;
    netns.run("tw-maker", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for _ in 0..N {
            let client = TcpStream::connect(addr).unwrap();
            let (mut server, _) = listener.accept().unwrap();
            // The client closes first and ends in TIME_WAIT; the server
            // closes once it has read the FIN.
            drop(client);
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).unwrap();
        }
    });
    // The last ACKs travel in softirq: wait until /proc shows them all.
    let in_time_wait = |netns: &Netns| {
        let tcp = proc_in(netns, "/proc/thread-self/net/tcp");
        procfs::tcp_sockets(&tcp).filter(|s| s.state == procfs::TCP_TIME_WAIT).count() as u64
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while in_time_wait(&netns) < count_before + N as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let alive = in_time_wait(&netns);
    assert_eq!(alive, count_before + N as u64, "TIME_WAIT sockets per /proc/net/tcp");

    // TIME_WAIT lasts 60 s and a doctor run can take half of that under
    // QEMU: sockets may end during a run, none can start. What doctor
    // counts lies between what /proc shows after its run and before it,
    // and the counters it shows between their values around it.
    let tw_counter_before = netns.counter("TcpExt.TW");
    let (after, _) = json_report(&netns, &[]);
    let (alive_after, tw_counter_after) = (in_time_wait(&netns), netns.counter("TcpExt.TW"));
    let count = after["time_wait"]["count"].as_u64().unwrap();
    assert!((alive_after..=alive).contains(&count), "doctor counted {count}, /proc {alive} then {alive_after}");
    if alive_after == count_before {
        eprintln!("skipped: every new TIME_WAIT socket ended during doctor's run: its count checks nothing");
    }
    // Recent kernels count TIME_WAIT sockets in TcpExt.TW as they start (6.1
    // here), older ones as they end (5.10): the kernel's value, either way.
    let tw = counter(&after, "TcpExt.TW") as u64;
    assert!(
        (tw_counter_before..=tw_counter_after).contains(&tw),
        "doctor's TcpExt.TW {tw}, /proc {tw_counter_before} then {tw_counter_after}"
    );
    let text = String::from_utf8_lossy(&doctor_in(&netns, &[]).stdout).to_string();
    let alive_after_text = in_time_wait(&netns);
    let line = text.lines().find(|l| l.starts_with("TIME_WAIT sockets now: ")).unwrap_or_else(|| panic!("{text}"));
    let (count, how) = line["TIME_WAIT sockets now: ".len()..].split_once(' ').unwrap();
    let count: u64 = count.parse().unwrap();
    assert!((alive_after_text..=alive_after).contains(&count), "{line}: /proc {alive_after} then {alive_after_text}");
    assert_eq!(how, format!("(counted with {method})"), "{line}");

    // Another namespace does not see them.
    let other = Netns::new("doctor-tw-other");
    let (elsewhere, _) = json_report(&other, &[]);
    assert_eq!(elsewhere["time_wait"]["count"].as_u64(), Some(0), "{elsewhere}");
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn counts_established_connections_with_keepalive() {
    require_root();
    let netns = Netns::new("doctor-keepalive");
    // (client, accepted side) SO_KEEPALIVE per connection: 12 established
    // sockets, 5 with keepalive, both families.
    let v4 = [(true, false), (true, false), (true, false), (false, true), (false, false)];
    let v6 = [(true, false)];
    let connections = netns.run("keepalive", move || {
        let mut open = Vec::new();
        for (listen_on, pairs) in [("127.0.0.1:0", &v4[..]), ("[::1]:0", &v6[..])] {
            let listener = TcpListener::bind(listen_on).unwrap();
            for &(client_keepalive, server_keepalive) in pairs {
                let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (server, _) = listener.accept().unwrap();
                socket2::SockRef::from(&client).set_keepalive(client_keepalive).unwrap();
                socket2::SockRef::from(&server).set_keepalive(server_keepalive).unwrap();
                open.extend([client, server]);
            }
        }
        open
    });
    // What the kernel itself shows: the premise of the counts below.
    let tables = [proc_in(&netns, "/proc/thread-self/net/tcp"), proc_in(&netns, "/proc/thread-self/net/tcp6")];
    let established: Vec<_> =
        tables.iter().flat_map(|t| procfs::tcp_sockets(t)).filter(|s| s.state == procfs::TCP_ESTABLISHED).collect();
    let with_keepalive = established.iter().filter(|s| s.timer == procfs::TIMER_KEEPALIVE).count();
    assert_eq!((established.len(), with_keepalive), (12, 5), "/proc/net/tcp{{,6}}: {established:?}");

    let (report, _) = json_report(&netns, &[]);
    let keepalive = &report["keepalive"];
    assert_eq!(keepalive["established"].as_u64(), Some(12), "{report}");
    assert_eq!(keepalive["with_keepalive"].as_u64(), Some(5), "{report}");
    assert!(keepalive["meaning"].as_str().unwrap().starts_with("the 7 without get no keepalive probes"), "{keepalive}");
    let method = keepalive["method"].as_str().unwrap();
    assert_eq!(method, report["time_wait"]["method"], "one count of the sockets: {report}");
    let text = String::from_utf8_lossy(&doctor_in(&netns, &[]).stdout).to_string();
    let line =
        format!("  keepalive is on for 5 of 12 established connections now (counted with {method}): the 7 without");
    assert!(text.contains(&line), "{text}");
    drop(connections);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn exits_1_when_rsttrace_cannot_run() {
    require_root();
    let netns = Netns::new("doctor-nobtf");
    let (report, out) = json_report(&netns, &["--btf", "/nonexistent/vmlinux"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["can_run"], false);
    assert_eq!(report["btf"]["ok"], false);
    assert!(report["btf"]["problem"].as_str().unwrap().contains("CONFIG_DEBUG_INFO_BTF"), "{report}");
    assert_eq!(report["auto"], Value::Null);
    // The settings are reported all the same.
    assert!(sysctl(&report, "net.ipv4.tcp_timestamps")["value"].is_string());

    let out = doctor_in(&netns, &["--btf", "/nonexistent/vmlinux"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Can rsttrace run here: no") && text.contains("NO  kernel BTF"), "{text}");
}
