//! The systemd unit's capabilities are enough and each one is needed:
//! rsttrace runs as an unprivileged user (not root) with exactly the unit's
//! AmbientCapabilities and reports a reset; with one of them removed it exits
//! 1 with one line naming that capability, and serves metrics with them. The
//! unit itself passes `systemd-analyze verify` and allows the metrics
//! endpoint. With those capabilities, `inet_sock_set_state`,
//! `tcp_send_reset` and `tcp_receive_reset` get their BTF-typed programs.

mod support;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::Path,
    process::{Command, Output, Stdio},
    sync::{Mutex, MutexGuard, mpsc},
    time::Duration,
};

use serde_json::Value;
use support::{Pair, require_root};

/// Compiled in: the QEMU guests have the test binaries, not the sources.
const UNIT: &str = include_str!("../../packaging/systemd/rsttrace.service");

/// The values of `key=` lines in the unit (whitespace-separated words).
fn unit_values(key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    UNIT.lines()
        .filter_map(|l| l.trim().strip_prefix(&prefix))
        .flat_map(|v| v.split_whitespace().map(String::from))
        .collect()
}

/// `CAP_BPF` -> `+bpf`, as setpriv spells it.
fn setpriv_caps(caps: &[String]) -> String {
    let mut spec = vec!["-all".to_string()];
    spec.extend(caps.iter().map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase())));
    spec.join(",")
}

/// rsttrace ARGS as nobody with exactly `caps` (inheritable, ambient and
/// bounding), the way systemd starts the unit.
fn as_nobody(caps: &[String], args: &[&str]) -> Command {
    let spec = setpriv_caps(caps);
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    command.args([format!("--inh-caps={spec}"), format!("--ambient-caps={spec}"), format!("--bounding-set={spec}")]);
    command.arg(env!("CARGO_BIN_EXE_rsttrace")).args(args);
    if let Ok(strategy) = std::env::var("RSTTRACE_TEST_STRATEGY") {
        command.args(["--strategy", &strategy]);
    }
    // The unit's LimitMEMLOCK=infinity (kernels before 5.11 charge maps to
    // it). Where even root cannot raise it, those kernels are not in use.
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim);
            Ok(())
        });
    }
    command
}

/// tracefs must be mounted for a process that cannot mount it.
fn tracefs_mounted() {
    if !Path::new("/sys/kernel/tracing/events").is_dir() {
        let status = Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]).status().unwrap();
        assert!(status.success(), "mount tracefs");
    }
}

/// kernel.perf_event_paranoid, set for as long as this lives. Tests that
/// run rsttrace unprivileged hold the lock: the value changes what they see.
struct Paranoid {
    old: String,
    _lock: MutexGuard<'static, ()>,
}

static PARANOID: Mutex<()> = Mutex::new(());
const PARANOID_PATH: &str = "/proc/sys/kernel/perf_event_paranoid";

impl Paranoid {
    fn lock() -> MutexGuard<'static, ()> {
        PARANOID.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current() -> i32 {
        std::fs::read_to_string(PARANOID_PATH).unwrap().trim().parse().unwrap()
    }

    fn set(level: i32, lock: MutexGuard<'static, ()>) -> Self {
        let old = std::fs::read_to_string(PARANOID_PATH).unwrap();
        std::fs::write(PARANOID_PATH, level.to_string()).unwrap();
        Paranoid { old, _lock: lock }
    }
}

impl Drop for Paranoid {
    fn drop(&mut self) {
        let _ = std::fs::write(PARANOID_PATH, self.old.trim());
    }
}

fn unit_capabilities() -> Vec<String> {
    let ambient = unit_values("AmbientCapabilities");
    assert_eq!(ambient, unit_values("CapabilityBoundingSet"), "the unit bounds to exactly what it grants");
    assert!(!ambient.is_empty());
    ambient
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn runs_unprivileged_with_exactly_the_units_capabilities() {
    require_root();
    tracefs_mounted();
    let caps = unit_capabilities();
    // Debian's and Ubuntu's kernels (perf_event_paranoid 3 by default) let
    // only CAP_SYS_ADMIN open perf events, which only kprobes need: every
    // other strategy runs at their default level.
    let lock = Paranoid::lock();
    let kprobes = std::env::var("RSTTRACE_TEST_STRATEGY").is_ok_and(|s| s == "kprobe");
    let _paranoid = if Paranoid::current() > 2 && kprobes {
        let out = as_nobody(&caps, &["--format", "json", "--duration", "1"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            None // a mainline kernel: above 2 means 2
        } else {
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains("(Debian's and Ubuntu's kernels) reserves to CAP_SYS_ADMIN"), "{stderr}");
            eprintln!("note: {stderr}; retrying with kernel.perf_event_paranoid=2");
            Some(Paranoid::set(2, lock))
        }
    } else {
        eprintln!("note: kernel.perf_event_paranoid is {}", Paranoid::current());
        drop(lock);
        None
    };
    let pair = Pair::new("caps");
    // The metrics endpoint on a port above 1023 needs no capability of its own.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut child = as_nobody(&caps, &["--format", "json", "--duration", "4", "--metrics", &metrics])
        // Says which program inet_sock_set_state got (below).
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) rsttrace");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let Ok(first) = lines.recv_timeout(Duration::from_secs(30)) else {
        let out = child.wait_with_output().unwrap();
        panic!("no ready record as nobody with {caps:?}: {}", String::from_utf8_lossy(&out.stderr))
    };
    let ready: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("`{first}`: {e}"));
    assert_eq!(ready["kind"], "ready", "{first}");
    assert!(!ready["hooks"].as_array().unwrap().is_empty(), "{first}");
    let mut scrape = std::net::TcpStream::connect(&metrics).expect("the metrics endpoint listens");
    scrape.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    scrape.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    scrape.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200 OK") && response.contains("rsttrace_build_info{"), "{response}");

    // A SYN to a closed port in the pair: the client receives an RST.
    let server = std::net::SocketAddr::new(Pair::SERVER_V4.parse().unwrap(), 9);
    pair.client.run("caps-client", move || {
        let err = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(2)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {}: {stderr}", out.status);
    // Every kernel of the matrix (5.10+) takes the BTF-typed programs, with
    // the unit's capabilities too: a fallback to the raw tracepoints'
    // programs would work, slower, and would go unnoticed otherwise.
    for tracepoint in ["inet_sock_set_state", "tcp_send_reset", "tcp_receive_reset"] {
        assert!(
            stderr.contains(&format!("raw_tracepoint/{tracepoint}: a BTF-typed program (tp_btf)")),
            "{tracepoint} has its BTF-typed program: {stderr}"
        );
    }
    let records: Vec<Value> = lines.try_iter().map(|l| serde_json::from_str(&l).unwrap()).collect();
    let client = pair.client.inode();
    assert!(
        records.iter().any(|r| r["kind"] == "rst_received" && r["netns"].as_u64() == Some(client)),
        "the reset in namespace {client} is reported: {records:#?}"
    );
    assert_eq!(records.last().unwrap()["kind"], "summary");
}

/// Whether an unprivileged process can read the tracepoint format files
/// without CAP_DAC_READ_SEARCH (tracefs was world-readable before the
/// kernels of late 2021).
fn tracefs_is_world_readable() -> bool {
    let mode = |p: &str| std::fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
    mode("/sys/kernel/tracing") & 0o005 == 0o005
        && mode("/sys/kernel/tracing/events/tcp/tcp_send_reset/format") & 0o004 != 0
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn each_capability_is_needed_and_named_when_missing() {
    require_root();
    tracefs_mounted();
    let caps = unit_capabilities();
    // Only the capability taken away may be missing (see above).
    let lock = Paranoid::lock();
    let _paranoid = (Paranoid::current() > 2).then(|| Paranoid::set(2, lock));
    for missing in &caps {
        if missing == "CAP_DAC_READ_SEARCH" && tracefs_is_world_readable() {
            eprintln!("note: tracefs is world-readable on this kernel: CAP_DAC_READ_SEARCH is not needed here");
            continue;
        }
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let out: Output = as_nobody(&fewer, &["--format", "json", "--duration", "1"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(out.status.code(), Some(1), "without {missing}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line without {missing}:\n{stderr}");
        assert!(stderr.starts_with(&format!("rsttrace: missing privilege {missing} ")), "{stderr}");
        for other in fewer {
            assert!(!stderr.contains(&format!("{other} ")), "only {missing} is missing: {stderr}");
        }
        assert!(out.stdout.is_empty(), "no ready record without {missing}");
    }
}

/// Metrics need AF_INET and AF_INET6 (`--metrics` and `metrics =` take
/// either), and nothing in the unit may refuse their traffic: turning them
/// on needs no drop-in (README, "Fleet").
#[test]
fn the_unit_allows_the_metrics_endpoint() {
    let families = unit_values("RestrictAddressFamilies");
    for family in ["AF_UNIX", "AF_INET", "AF_INET6"] {
        assert!(families.iter().any(|f| f == family), "RestrictAddressFamilies= lacks {family}: {families:?}");
    }
    for key in ["PrivateNetwork", "IPAddressDeny", "SocketBindDeny"] {
        assert!(unit_values(key).is_empty(), "{key}= would refuse the scrapes");
    }
}

/// `systemd-analyze verify` on the unit, with ExecStart pointed at the
/// binary under test and its man pages on MANPATH (verify checks that the
/// command exists and that Documentation= man pages resolve).
#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("skipped: no systemd-analyze (apt install systemd; xtask/bootstrap.sh does)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rsttrace-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let man1 = dir.join("man/man1");
    let out =
        Command::new(env!("CARGO_BIN_EXE_rsttrace")).args(["generate", "man", "--out"]).arg(&man1).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(UNIT.contains("ExecStart=/usr/bin/rsttrace "), "the package installs the binary there");
    let unit = UNIT.replace("ExecStart=/usr/bin/rsttrace ", &format!("ExecStart={} ", env!("CARGO_BIN_EXE_rsttrace")));
    let path = dir.join("rsttrace.service");
    std::fs::write(&path, unit).unwrap();
    let out =
        Command::new("systemd-analyze").arg("verify").arg(&path).env("MANPATH", dir.join("man")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
