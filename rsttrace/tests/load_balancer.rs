//! rsttrace behind a real load balancer (seed 001). HAProxy (Debian's
//! package; each test starts its own) runs in the client namespace and
//! forwards connections to a backend in the server namespace from a narrow
//! range of source ports, as a load balancer does towards each backend. The
//! backend closes first and keeps each connection in TIME_WAIT, so the
//! balancer's SYNs come back onto 4-tuples the backend still holds.
//!
//! Which SYN met a TIME_WAIT socket is read from the backend's own socket
//! table before each connection: a connection whose 4-tuple was listed
//! there in TIME_WAIT reused it. The RSTs are compared with a capture, as
//! everywhere.

mod support;

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    ops::RangeInclusive,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Mutex, mpsc},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::Value;
use support::{
    Arrivals, Handshakes, Netns, Pair, RstPacket, Sends, TIME_WAIT, Traced, addr, outrun_the_isn_clock, require_root,
    reuse_unseen_here, wait_until, with_stale_acks,
};

/// The tests of this file run one at a time. Side by side, about one pair
/// of runs in a hundred reported a tw_collision without its retry: the
/// kernel traced the retried connection's establishment (ftrace showed it),
/// but neither test's rsttrace followed it up, with nothing counted as lost,
/// unreadable or missed. Not explained yet; alone, none in 170 runs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const BACKEND_PORT: u16 = 8097;
const FRONTEND_PORT: u16 = 8098;
/// /proc/net/tcp's number of LISTEN.
const LISTEN: u8 = 10;
const HAPROXY: &str = "/usr/sbin/haproxy";

/// HAProxy in `netns`, accepting on 127.0.0.1:FRONTEND_PORT and forwarding
/// each connection to `backend` from `source` with one of `ports`.
struct Haproxy {
    child: Child,
    config: PathBuf,
    log: PathBuf,
}

impl Haproxy {
    /// None where HAProxy is not installed (xtask/bootstrap.sh installs it,
    /// and the QEMU guests get the host's).
    fn start(netns: &Netns, backend: SocketAddr, source: &str, ports: RangeInclusive<u16>) -> Option<Haproxy> {
        if !std::path::Path::new(HAPROXY).exists() {
            return None;
        }
        let config = std::env::temp_dir().join(format!("{}-haproxy.cfg", netns.name));
        let log = std::env::temp_dir().join(format!("{}-haproxy.log", netns.name));
        // Layer 4, as the seed's balancer: the backend sees the balancer's
        // own address and ports. A connect timeout well above the SYN's 1 s
        // retransmission, which the retry after a stale ACK waits for.
        let text = format!(
            "global\n    maxconn 64\n\
             defaults\n    mode tcp\n    timeout connect 10s\n    timeout client 30s\n    timeout server 30s\n\
             frontend front\n    bind 127.0.0.1:{FRONTEND_PORT}\n    default_backend back\n\
             backend back\n    server backend1 {backend} source {source}:{}-{}\n",
            ports.start(),
            ports.end()
        );
        std::fs::write(&config, text).expect("write haproxy.cfg");
        let output = std::fs::File::create(&log).expect("haproxy's log");
        let child = Command::new("ip")
            .args(["netns", "exec", &netns.name, HAPROXY, "-db", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("start haproxy");
        let haproxy = Haproxy { child, config, log };
        wait_until(
            Duration::from_secs(10),
            || netns.tcp_states(FRONTEND_PORT, false).contains(&LISTEN),
            || format!("haproxy did not listen on {FRONTEND_PORT}: {}", haproxy.said()),
        );
        Some(haproxy)
    }

    fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The backend: answers each connection's request (everything up to a
/// `.`) with `ok`, then closes first, so that it keeps the connection in
/// TIME_WAIT. Sends each connection's peer (the balancer's side) on.
fn serve(listener: TcpListener, connections: usize) -> mpsc::Receiver<SocketAddr> {
    let (peers, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..connections {
            let Ok((mut stream, peer)) = listener.accept() else { return };
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || buf[n - 1] == b'.' {
                    break;
                }
            }
            let _ = stream.write_all(b"ok\n");
            drop(stream);
            if peers.send(peer).is_err() {
                return;
            }
        }
    });
    received
}

/// One request through the balancer, from its own namespace. With `bulk`,
/// enough data that the balancer's next SYN on the 4-tuple gets a stale ACK
/// (`outrun_the_isn_clock`, at least `bulk` bytes).
fn request(lb: &Netns, bulk: Option<usize>) {
    lb.run("client", move || {
        let mut stream = TcpStream::connect(("127.0.0.1", FRONTEND_PORT)).expect("connect to haproxy");
        if let Some(bulk) = bulk {
            outrun_the_isn_clock(&mut stream, bulk);
        }
        stream.write_all(b".").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("the backend's answer through haproxy");
        assert_eq!(answer, "ok\n", "the backend's answer through haproxy");
    });
}

/// The backend's TIME_WAIT sockets on BACKEND_PORT, by peer.
fn time_wait_peers(backend: &Netns) -> HashSet<SocketAddr> {
    backend
        .tcp_sockets()
        .into_iter()
        .filter(|s| s.local.port() == BACKEND_PORT && s.state == TIME_WAIT)
        .map(|s| s.remote)
        .collect()
}

/// A connection whose SYN met a TIME_WAIT socket of the backend: its peer
/// (the balancer's side) and how long the request through haproxy took.
struct Reuse {
    peer: SocketAddr,
    took: Duration,
}

/// `connections` requests one after the other; returns those that reused a
/// 4-tuple the backend held in TIME_WAIT.
fn requests(pair: &Pair, listener: TcpListener, connections: usize, bulk: Option<usize>) -> Vec<Reuse> {
    let peers = serve(listener, connections);
    let mut reused = Vec::new();
    for _ in 0..connections {
        let held = time_wait_peers(&pair.server);
        let started = Instant::now();
        request(&pair.client, bulk);
        let took = started.elapsed();
        let peer = peers.recv_timeout(Duration::from_secs(30)).expect("the backend accepted the connection");
        if held.contains(&peer) {
            reused.push(Reuse { peer, took });
        }
        // Settled before the next: the backend holds this connection in
        // TIME_WAIT and the balancer's socket is gone (its port is free).
        wait_until(
            Duration::from_secs(5),
            || {
                let backend: Vec<u8> = pair
                    .server
                    .tcp_sockets()
                    .into_iter()
                    .filter(|s| s.local.port() == BACKEND_PORT && s.remote == peer)
                    .map(|s| s.state)
                    .collect();
                backend == [TIME_WAIT] && pair.client.tcp_states(peer.port(), false).is_empty()
            },
            || format!("the connection from {peer} did not settle into TIME_WAIT at the backend"),
        );
        // A new millisecond: the next SYN's timestamp is newer than the
        // last one the TIME_WAIT socket saw.
        std::thread::sleep(Duration::from_millis(2));
    }
    reused
}

/// With timestamps (Linux's default), the backend's kernel accepts every
/// SYN that reuses a 4-tuple in TIME_WAIT: harmless, reported once per
/// peer and interval with the count.
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn harmless_reuse_behind_haproxy() {
    require_root();
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    const CONNECTIONS: usize = 6;
    let traced = Traced::pair("lbok", &["--port", &BACKEND_PORT.to_string()]);
    let pair = &traced.net;
    let listener = pair.server.run("backend", || TcpListener::bind(addr(Pair::SERVER_V4, BACKEND_PORT)).unwrap());
    let backend = listener.local_addr().unwrap();
    let Some(haproxy) = Haproxy::start(&pair.client, backend, Pair::CLIENT_V4, 40200..=40201) else {
        eprintln!("skipped: no {HAPROXY} here (apt install haproxy; xtask/bootstrap.sh does)");
        return;
    };
    let reused = requests(pair, listener, CONNECTIONS, None);
    drop(haproxy);
    let observed = traced.stop();
    let (pair, records) = (&observed.net, &observed.records);
    assert!(!reused.is_empty(), "haproxy reused none of its 2 source ports in {CONNECTIONS} connections");
    let ours = |p: &RstPacket| p.has_port(BACKEND_PORT);
    observed.assert_resets_match_where(&pair.client, Arrivals::EndNoConnection, Sends::FromFullSockets, &ours);
    observed.assert_resets_match_where(&pair.server, Arrivals::EndNoConnection, Sends::FromFullSockets, &ours);

    let reuse = records.of("tw_collision", &pair.server);
    if reuse_unseen_here(&observed, &reuse) {
        return;
    }
    let reused: Vec<SocketAddr> = reused.iter().map(|r| r.peer).collect();
    let counted: u64 = reuse.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    println!(
        "haproxy reused {} 4-tuples the backend held in TIME_WAIT; rsttrace counted {counted} in {} record(s)",
        reused.len(),
        reuse.len()
    );
    assert_eq!(counted, reused.len() as u64, "every reuse counted once ({reused:?}): {reuse:?}");
    for r in &reuse {
        assert_eq!(r["verdict"], "accepted", "{r}");
        assert_eq!(r["local"], backend.to_string());
        let remote: SocketAddr = r["remote"].as_str().unwrap().parse().unwrap();
        assert_eq!(remote.ip().to_string(), Pair::CLIENT_V4, "the balancer: {r}");
        assert!((40200..=40201).contains(&remote.port()), "one of haproxy's source ports: {r}");
    }
}

/// Seed 001 itself: the balancer sends no TCP timestamps and moves enough
/// data that its next SYN on a 4-tuple is numbered below what the backend's
/// TIME_WAIT socket expects. The backend answers with a stale ACK, the
/// balancer's kernel resets it (killing the TIME_WAIT socket) and haproxy's
/// connect succeeds on the SYN's retransmission, milliseconds later. Whether
/// the data outran the ISN clock depends on the machine: the backend's
/// capture tells, and a try where it did not is repeated (`with_stale_acks`).
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn stale_ack_behind_haproxy_without_timestamps() {
    require_root();
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    const CONNECTIONS: usize = 3;
    let attempt = |bytes| {
        let traced = Traced::pair("lbseed", &["--port", &BACKEND_PORT.to_string()]);
        if !traced.daemon.sees_timewait_verdicts() {
            eprintln!(
                "skipped: strategy {} on this kernel cannot see TIME_WAIT verdicts (needs 6.11+ for tracepoints)",
                traced.daemon.strategy()
            );
            return None;
        }
        let pair = &traced.net;
        pair.client.sysctl("net.ipv4.tcp_timestamps", "0");
        let listener = pair.server.run("backend", || TcpListener::bind(addr(Pair::SERVER_V4, BACKEND_PORT)).unwrap());
        let backend = listener.local_addr().unwrap();
        // One source port: every connection after the first reuses it.
        let Some(haproxy) = Haproxy::start(&pair.client, backend, Pair::CLIENT_V4, 40210..=40210) else {
            eprintln!("skipped: no {HAPROXY} here (apt install haproxy; xtask/bootstrap.sh does)");
            return None;
        };
        let handshakes = Handshakes::start(&pair.server);
        let reused = requests(pair, listener, CONNECTIONS, Some(bytes));
        let said = haproxy.said();
        drop(haproxy);
        let observed = traced.stop();
        let syns = handshakes.stop(&observed.net.server);
        Some(((observed, backend, reused, said), syns))
    };
    let Some(((observed, backend, reused, said), syns)) = with_stale_acks(attempt) else { return };
    let (pair, records) = (&observed.net, &observed.records);
    assert_eq!(reused.len(), CONNECTIONS - 1, "haproxy's one source port came round each time; it said: {said}");
    let ours = |p: &RstPacket| p.has_port(BACKEND_PORT);
    // The balancer's SYN_SENT socket resets each stale ACK; at the backend
    // that RST kills the TIME_WAIT socket, no connection.
    observed.assert_resets_match_where(&pair.client, Arrivals::EndNoConnection, Sends::FromFullSockets, &ours);
    observed.assert_resets_match_where(&pair.server, Arrivals::EndNoConnection, Sends::FromFullSockets, &ours);

    let collisions = records.of("tw_collision", &pair.server);
    let everything = format!("{}{}", records.dump(&pair.server), records.dump(&pair.client));
    assert_eq!(collisions.len(), reused.len(), "one finding per reuse:\n{everything}");
    assert_eq!(syns.len(), reused.len(), "the backend's capture saw each reuse: {syns:?}");
    for ((finding, Reuse { peer, took }), syn) in collisions.iter().zip(&reused).zip(&syns) {
        assert_eq!(finding["verdict"], "stale_ack", "{finding}");
        assert_eq!(finding["local"], backend.to_string());
        assert_eq!(finding["remote"], peer.to_string());
        // The evidence, as captured: the SYN numbered at or below rcv_nxt.
        assert_eq!((syn.from, syn.to), (*peer, backend), "{syn}");
        assert_eq!(
            (finding["syn_seq"].as_u64(), finding["tw_rcv_nxt"].as_u64()),
            (Some(syn.seq.into()), Some(syn.rcv_nxt.into())),
            "the captured {syn}: {finding}"
        );
        assert_eq!(finding["syn_timestamps"], false, "{finding}");
        assert_eq!(finding["peer_rst"], true, "the balancer reset the stale ACK: {finding}");
        // The retry comes within the request: the balancer's kernel, having
        // reset an ACK in SYN_SENT, sends its SYN again after the shortest
        // timeout (TCP_TIMEOUT_MIN), not the 1 s of a lost SYN.
        let retry = finding["retry_delay_ms"].as_u64().unwrap_or_else(|| panic!("no retry: {finding}\n{everything}"));
        assert!(retry as u128 <= took.as_millis(), "retry {retry} ms, the request took {took:?}: {finding}");
        let advice = finding["advice"].as_str().unwrap();
        assert!(advice.contains("net.ipv4.tcp_timestamps=1 on the peer"), "{finding}");
    }
    println!(
        "{} stale ACKs to haproxy's SYNs, each reset and retried: {}",
        collisions.len(),
        collisions
            .iter()
            .map(|f| format!("{} after {} ms", f["remote"], f["retry_delay_ms"]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let killed: Vec<&Value> = records.of("tw_killed", &pair.server);
    assert_eq!(killed.len(), reused.len(), "each stale ACK's RST killed its TIME_WAIT socket: {killed:?}");
    for (k, Reuse { peer, .. }) in killed.iter().zip(&reused) {
        assert_eq!(k["by"], "rst", "{k}");
        assert_eq!(k["remote"], peer.to_string());
    }
}
