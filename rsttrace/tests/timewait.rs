//! Reused-port SYNs meeting TIME_WAIT sockets, against the real kernel
//! (../shared/SCENARIOS.md §1): a "load balancer" namespace reconnects from
//! the port it just used to a server that closed first and holds the old
//! connection in TIME_WAIT.

mod support;

use std::{
    io::Read,
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};

use support::{Daemon, Pair, addr, connect_from, connection_closed_by_server, linger_zero, require_root};

const CLIENT_PORT: u16 = 40021;

fn seed_case(label: &str, client_ip: &'static str, server_ip: &'static str) {
    if !require_root() {
        return;
    }
    let pair = Pair::new(label);
    // The seed's load balancer had TCP timestamps disabled.
    pair.client.sysctl("net.ipv4.tcp_timestamps", "0");
    let listener = pair.server.run("server", move || TcpListener::bind(addr(server_ip, 8090)).unwrap());
    let server = listener.local_addr().unwrap();
    let local = addr(client_ip, CLIENT_PORT);
    let daemon = Daemon::start(&["--port", "8090"]);
    if !daemon.sees_timewait_verdicts() {
        eprintln!(
            "skipped: strategy {} on this kernel cannot see TIME_WAIT verdicts (needs 6.11+ for tracepoints)",
            daemon.strategy()
        );
        return;
    }
    let strategy = daemon.strategy().to_string();
    assert!(connection_closed_by_server(&pair, &listener, local, true), "no TIME_WAIT socket to reuse");
    std::thread::sleep(Duration::from_millis(50));
    // Reuse the port at once: the stale ACK, the client's RST, its retry.
    let started = Instant::now();
    let second = pair.client.run("lb", move || connect_from(local, server).expect("second connection"));
    let delay = started.elapsed();
    let (accepted, _) = listener.accept().unwrap();
    drop((second, accepted));
    let records = daemon.stop();

    let finding = records.one("tw_collision", &pair.server, |_| true);
    assert_eq!(finding["verdict"], "stale_ack", "{finding}");
    assert_eq!(finding["local"], server.to_string());
    assert_eq!(finding["remote"], local.to_string());
    assert_eq!(finding["state"], "TIME_WAIT");
    let (syn_seq, rcv_nxt) =
        (finding["syn_seq"].as_u64().unwrap() as u32, finding["tw_rcv_nxt"].as_u64().unwrap() as u32);
    assert!((syn_seq.wrapping_sub(rcv_nxt) as i32) < 0, "the evidence: SYN seq below rcv_nxt: {finding}");
    assert_eq!(finding["syn_timestamps"], false);
    assert_eq!(finding["tw_timestamps"], false);
    assert_eq!(finding["peer_rst"], true, "the client reset the stale ACK");
    let retry = finding["retry_delay_ms"].as_u64().unwrap_or_else(|| panic!("no retry delay: {finding}"));
    assert!(retry as u128 <= delay.as_millis() + 5, "retry {retry} ms, connect took {delay:?}");
    let age = finding["tw_age_ms"].as_u64().unwrap();
    assert!((50..10_000).contains(&age), "TIME_WAIT age {age} ms");
    assert!(finding["advice"].as_str().unwrap().contains("net.ipv4.tcp_timestamps=1 on the peer"), "{finding}");
    assert_eq!(finding["source"], strategy.as_str());

    let killed = records.one("tw_killed", &pair.server, |_| true);
    assert_eq!(killed["by"], "rst");
    assert_eq!(killed["remote"], local.to_string());
    assert_eq!(killed["rst_seq"], finding["tw_rcv_nxt"], "the RST carried the stale ACK's number");
}

#[test]
fn seed_case_ipv4() {
    seed_case("seed4", Pair::CLIENT_V4, Pair::SERVER_V4);
}

#[test]
fn seed_case_ipv6() {
    seed_case("seed6", Pair::CLIENT_V6, Pair::SERVER_V6);
}

/// With timestamps on the client the kernel accepts the reused port; a burst
/// of such reuses is one aggregated info record, not a flood.
#[test]
fn harmless_reuse_is_aggregated() {
    if !require_root() {
        return;
    }
    const CONNECTIONS: usize = 60;
    let pair = Pair::new("reuse");
    let listener = pair.server.run("server", || TcpListener::bind(addr(Pair::SERVER_V4, 8091)).unwrap());
    let local = addr(Pair::CLIENT_V4, CLIENT_PORT);
    let daemon = Daemon::start(&["--port", "8091"]);
    // Each connection reuses the previous one's 4-tuple, when the server
    // held that in TIME_WAIT. Under load one rarely is not: a late ACK makes
    // the client resend its FIN, the TIME_WAIT socket acks it again, and the
    // client, whose socket is gone by then, answers with an RST that kills
    // it; rsttrace must report that kill.
    let mut reuses = 0;
    let mut killed = 0;
    let mut previous_in_time_wait = false;
    for _ in 0..CONNECTIONS {
        reuses += previous_in_time_wait as u64;
        previous_in_time_wait = connection_closed_by_server(&pair, &listener, local, false);
        killed += !previous_in_time_wait as usize;
    }
    assert!(reuses >= CONNECTIONS as u64 - 3, "only {reuses} connections met a TIME_WAIT socket");
    let records = daemon.stop();

    let summary = records.summary();
    let reuse = records.of("tw_collision", &pair.server);
    assert!(!reuse.is_empty() && reuse.len() <= 2, "one record per interval, got {}: {reuse:?}", reuse.len());
    assert!(reuse.iter().all(|r| r["verdict"] == "accepted"), "{reuse:?}");
    let total: u64 = reuse.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, reuses, "{reuse:?} {summary}");
    let kills = records.of("tw_killed", &pair.server);
    assert_eq!(kills.len(), killed, "every TIME_WAIT socket that vanished was killed: {kills:?}");
    assert!(summary["verdicts"]["accepted"].as_u64().unwrap() >= reuses, "{summary}");
}

/// The server closed first and its socket waits in TIME_WAIT for the peer's
/// FIN; the peer aborts instead: its RST kills the TIME_WAIT socket, with no
/// reuse at all.
#[test]
fn rst_kills_a_timewait_socket() {
    if !require_root() {
        return;
    }
    let pair = Pair::new("kill");
    let listener = pair.server.run("server", || TcpListener::bind(addr(Pair::SERVER_V4, 8092)).unwrap());
    let server = listener.local_addr().unwrap();
    let daemon = Daemon::start(&["--port", "8092"]);
    if !daemon.sees_timewait_verdicts() {
        eprintln!(
            "skipped: strategy {} on this kernel cannot see TIME_WAIT kills (needs 6.11+ for tracepoints)",
            daemon.strategy()
        );
        return;
    }
    let mut client = pair.client.run("client", move || TcpStream::connect(server).unwrap());
    let (accepted, _) = listener.accept().unwrap();
    drop(accepted);
    assert_eq!(client.read(&mut [0u8; 1]).unwrap(), 0, "the server's FIN");
    std::thread::sleep(Duration::from_millis(20));
    let local = client.local_addr().unwrap();
    pair.client.run("aborter", move || {
        linger_zero(&client);
        drop(client);
    });
    let records = daemon.stop();

    let killed = records.one("tw_killed", &pair.server, |_| true);
    assert_eq!(killed["local"], server.to_string());
    assert_eq!(killed["remote"], local.to_string());
    // TIME_WAIT began when the client's (possibly delayed) ACK of the FIN
    // arrived, some ms before the abort.
    assert!(killed["tw_age_ms"].as_u64().is_some_and(|age| age < 5_000), "{killed}");
    assert!(records.of("tw_collision", &pair.server).is_empty(), "no SYN, no collision");
}

/// Connection churn on loopback through 16 ephemeral ports: nearly every
/// connection reuses a 4-tuple the server still holds in TIME_WAIT. The
/// kernel accepts them all (timestamps), and rsttrace writes a count, not a
/// line per SYN.
#[test]
fn loopback_churn_is_aggregated() {
    if !require_root() {
        return;
    }
    const CONNECTIONS: u64 = 300;
    let ns = support::Netns::new("churn");
    ns.sysctl("net.ipv4.ip_local_port_range", "40000 40015");
    let listener = ns.run("server", || TcpListener::bind("127.0.0.1:8094").unwrap());
    let daemon = Daemon::start(&["--port", "8094"]);
    let server = listener.local_addr().unwrap();
    let accepter = std::thread::spawn(move || {
        for _ in 0..CONNECTIONS {
            drop(listener.accept().unwrap()); // the server closes first
        }
    });
    ns.run("churn", move || {
        for _ in 0..CONNECTIONS {
            let mut stream = TcpStream::connect(server).unwrap();
            assert_eq!(stream.read(&mut [0u8; 1]).unwrap(), 0);
        }
    });
    accepter.join().unwrap();
    let records = daemon.stop();

    let reuse = records.of("tw_collision", &ns);
    assert!(!reuse.is_empty() && reuse.len() <= 2, "aggregated per interval, got {}: {reuse:?}", reuse.len());
    assert!(reuse.iter().all(|r| r["verdict"] == "accepted"), "{reuse:?}");
    let total: u64 = reuse.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    // Every connection after the first round through the 16 ports reused one.
    assert!(total >= CONNECTIONS - 16, "{total} reuses counted: {reuse:?}");
    assert!(records.0.iter().filter(|r| r["kind"] == "tw_collision").count() <= 4, "no flood");
}
