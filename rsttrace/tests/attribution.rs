//! Resets name the service whose socket it was (`unit`, from the socket's
//! cgroup) and the `ip netns` name of the namespace (`netns_name`), also
//! when the kernel sends or handles the reset in packet processing, where no
//! process is named. The traffic comes from a helper process that the test
//! puts in a cgroup of its own, `rsttrace-test-PID.scope`; a capture of both
//! namespaces (the `Traced` fixture) is the ground truth the records are
//! compared with.

mod support;

use std::{
    ffi::CString,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::Command,
    time::Duration,
};

use serde_json::Value;
use support::{Arrivals, Netns, Pair, Sends, Traced, addr, has_limitation, require_root};

/// The server's closed port, and a server that closes its connection and
/// then gets data on it: its RST is sent in packet processing.
const CLOSED: u16 = 7401;
/// Connections refused: more than the kernel records one by one per CPU and
/// second (8) on this machine's CPUs, so that some are counted as a storm.
const REFUSED: u64 = 60;
const CLOSING_SERVER: u16 = 7403;

const HELPER: &str = "RSTTRACE_TEST_CGROUP_HELPER";

/// Where cgroup v2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified
/// next to v1 hierarchies).
fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        if filesystem.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(mount.split_whitespace().nth(4)?))
    })
}

/// cgroup v2 mounted by the test where nothing mounts it (the QEMU guests'
/// init); unmounted on drop.
struct Cgroup2Mount(PathBuf);

impl Cgroup2Mount {
    fn new() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("rsttrace-cgroup2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let target = CString::new(dir.clone().into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: valid C strings; no data argument.
        let mounted =
            unsafe { libc::mount(c"none".as_ptr(), target.as_ptr(), c"cgroup2".as_ptr(), 0, std::ptr::null()) } == 0;
        if !mounted {
            eprintln!("cannot mount cgroup2: {}", std::io::Error::last_os_error());
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Cgroup2Mount(dir))
    }
}

impl Drop for Cgroup2Mount {
    fn drop(&mut self) {
        let target = CString::new(self.0.clone().into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid C string.
        unsafe { libc::umount(target.as_ptr()) };
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A cgroup of the test's own, removed on drop.
struct Cgroup {
    path: PathBuf,
    name: String,
}

impl Cgroup {
    fn new(root: PathBuf) -> Self {
        let name = format!("rsttrace-test-{}.scope", std::process::id());
        let path = root.join(&name);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Cgroup { path, name }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The helper has exited; the kernel may take a moment to let go.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.path.display());
    }
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn resets_name_the_unit_that_owns_the_socket() {
    require_root();
    // Started by itself as the helper (below): only the traffic.
    if let Ok(names) = std::env::var(HELPER) {
        helper_traffic(&names);
        return;
    }
    // Mounted before rsttrace starts: it looks for the hierarchy then.
    let mut mounted = None;
    let root = match cgroup2_mount() {
        Some(root) => root,
        None => match Cgroup2Mount::new() {
            Some(mount) => mounted.insert(mount).0.clone(),
            None => {
                eprintln!("skipped: no cgroup v2 hierarchy here, and none can be mounted");
                return;
            }
        },
    };
    let pair = Pair::new("unit");
    // An orphaned socket that has its FIN acked stays a full socket in
    // FIN_WAIT2 for tcp_fin_timeout - 60 s, instead of a TIME_WAIT
    // minisocket (which has no cgroup).
    pair.server.sysctl("net.ipv4.tcp_fin_timeout", "120");
    // The capture of both namespaces, started before rsttrace, is the
    // ground truth its records are compared with.
    let traced = Traced::start(pair, &[]);
    let daemon = &traced.daemon;
    if has_limitation(&daemon.ready, "unit_unknown") {
        eprintln!("skipped: this kernel's BTF has no sock.sk_cgrp_data.cgroup (the 5.15 layout)");
        return;
    }
    let (socketless, daemon_reasons) = (daemon.sees_socketless_resets(), daemon.has_reset_reasons());
    let cgroup = Cgroup::new(root);

    // The helper: this test binary, running this test again with HELPER
    // set, moved into the cgroup before it runs (writing 0 to cgroup.procs
    // moves the writer).
    let procs = CString::new(cgroup.path.join("cgroup.procs").into_os_string().into_encoded_bytes()).unwrap();
    let mut helper = Command::new(std::env::current_exe().unwrap());
    helper
        .args(["--exact", "resets_name_the_unit_that_owns_the_socket", "--ignored", "--nocapture", "--test-threads=1"])
        .env(HELPER, format!("{} {}", traced.net.client.name, traced.net.server.name));
    // SAFETY: open, write and close are async-signal-safe; the path was
    // allocated before the fork.
    unsafe {
        helper.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let out = helper.output().expect("run the helper");
    assert!(
        out.status.success(),
        "helper: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let observed = traced.stop();
    let (pair, records) = (&observed.net, &observed.records);
    // The client's sockets end by the RSTs they receive (the refusals, the
    // reset of the late data) and send none; the server receives none, and
    // sends the refusals' RSTs without a socket and the late data's from
    // its orphaned socket.
    observed.assert_resets_match(&pair.client, Arrivals::EndConnections, Sends::FromFullSockets);
    observed.assert_resets_match(&pair.server, Arrivals::EndNoConnection, Sends::MaybeWithoutSocket);
    let everything = format!("{}{}", records.dump(&pair.client), records.dump(&pair.server));

    // The refused connections: the client's sockets received the RSTs in
    // packet processing, past the first ones counted in the kernel (a
    // storm); the server had no socket.
    let received = records.of("rst_received", &pair.client);
    let refused: Vec<&Value> = received.into_iter().filter(|r| r["remote"] == format!("10.77.0.2:{CLOSED}")).collect();
    let count: u64 = refused.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(count, REFUSED, "{everything}");
    assert!(refused.iter().any(|r| r["interval_ms"].is_u64()), "some counted in the kernel: {everything}");
    for r in &refused {
        assert_eq!(r["state"], "SYN_SENT");
        assert_eq!(r["unit"], cgroup.name.as_str(), "one by one and counted alike: {r}");
        assert_eq!(r["netns_name"], pair.client.name.as_str());
    }
    if socketless {
        let sent: Vec<&Value> = records
            .of("rst_sent", &pair.server)
            .into_iter()
            .filter(|r| r["local"] == format!("10.77.0.2:{CLOSED}"))
            .collect();
        assert!(!sent.is_empty(), "{everything}");
        for r in sent {
            assert_eq!(r["unit"], Value::Null, "no socket, no unit: {r}");
            assert_eq!(r["netns_name"], pair.server.name.as_str());
        }
    }
    // Data after the server closed: its orphaned socket (accepted from the
    // helper's listener) answers with an RST in packet processing, where no
    // process is named; the socket still names its unit.
    let sent = records.one("rst_sent", &pair.server, |r| r["local"] == format!("10.77.0.2:{CLOSING_SERVER}"));
    assert!(sent["state"].is_string(), "from a full socket: {sent}");
    assert_eq!(sent["pid"], Value::Null, "sent in packet processing: {sent}");
    assert_eq!(sent["unit"], cgroup.name.as_str(), "{sent}");
    assert_eq!(sent["netns_name"], pair.server.name.as_str());
    if daemon_reasons {
        assert_eq!(sent["reason"], "TCP_ABORT_ON_DATA", "{sent}");
    }
}

/// The traffic of the test above, run in a process of its own that the test
/// put in a cgroup.
fn helper_traffic(names: &str) {
    let (client, server) = names.split_once(' ').unwrap();
    // The test's namespaces, not ours to delete.
    let pair = Pair { client: Netns { name: client.to_string() }, server: Netns { name: server.to_string() } };
    for _ in 0..REFUSED {
        let err = pair
            .client
            .run("refused", || TcpStream::connect_timeout(&addr("10.77.0.2", CLOSED), Duration::from_secs(5)))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    }

    let listener = pair.server.run("server", || TcpListener::bind(addr("10.77.0.2", CLOSING_SERVER)).unwrap());
    let server = listener.local_addr().unwrap();
    let mut client = pair.client.run("client", move || TcpStream::connect(server).unwrap());
    let (accepted, _) = listener.accept().unwrap();
    drop(accepted);
    assert_eq!(client.read(&mut [0u8; 1]).unwrap(), 0, "the server's FIN");
    // The client's ACK of the FIN puts the server's socket in FIN_WAIT2.
    std::thread::sleep(Duration::from_millis(100));
    client.write_all(b"too late").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(client.write_all(b"again").is_err() || client.read(&mut [0u8; 1]).is_err(), "the server reset");
    std::mem::forget(pair);
}
