//! The cause of a reset, against the wire: the keep-alive pool race (a
//! client writes on a pooled connection the server's keep-alive timeout had
//! closed: the everyday "connection reset by peer", and a load balancer's
//! 502), over a link (IPv4, IPv6) and over loopback, seen from both ends;
//! and the look-alikes that must never be blamed on a device in between: a
//! peer on the link while the default route has a gateway, and a peer's own
//! abort after 100,000 other connections came and went. A capture of the
//! same traffic is the ground truth, as everywhere.

mod support;

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    Arrivals, Namespaces, Netns, Observed, Pair, Sends, Traced, addr, has_limitation, linger_zero, require_root,
    wait_until,
};

/// /proc/net/tcp's CLOSE_WAIT.
const CLOSE_WAIT: u8 = 8;

/// How long after the server's close the client writes on the pooled
/// connection.
const POOL_IDLE: Duration = Duration::from_secs(2);

/// The server's think time: its smoothed RTT grows to it, its minimum RTT
/// stays the link's.
const SERVICE_TIME: Duration = Duration::from_millis(30);

/// The longest a Linux peer delays an ACK (TCP_DELACK_MAX): a socket that
/// just entered CLOSE_WAIT acknowledges the FIN in its ping-pong mode.
const DELAYED_ACK_MAX: Duration = Duration::from_millis(200);

/// What one pool race did, measured by the test itself.
struct PoolRace {
    /// The client's end of the pooled connection.
    client: SocketAddr,
    /// From the server's close() to the client's write on the pooled
    /// connection: at least `POOL_IDLE`.
    closed_to_write: Duration,
}

/// The pool race between `client_ns` and `server_ns` (the same namespace
/// over loopback): a request answered after `SERVICE_TIME`, the server's
/// keep-alive timeout closing the idle connection, and the client's next
/// request `POOL_IDLE` after its socket saw the FIN (CLOSE_WAIT, proved
/// from its socket table before it writes), answered with an RST.
fn pool_race(client_ns: &Netns, server_ns: &Netns, server_ip: &'static str) -> PoolRace {
    let listener = server_ns.listen(server_ip);
    let server_addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 64];
        let n = conn.read(&mut request).unwrap();
        assert!(n > 0, "the first request");
        std::thread::sleep(SERVICE_TIME);
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
        // The keep-alive timeout: nothing more came, so the server closes.
        std::thread::sleep(Duration::from_millis(100));
        let closed = Instant::now();
        drop(conn);
        closed
    });
    let mut client = client_ns.run("client", move || TcpStream::connect(server_addr).expect("connect"));
    let local = client.local_addr().unwrap();
    client.write_all(b"GET /1 HTTP/1.1\r\n\r\n").unwrap();
    let mut response = [0u8; 64];
    assert!(client.read(&mut response).unwrap() > 0, "the first response");
    let closed = server.join().unwrap();
    // The precondition: the server's FIN reached the pooled socket.
    wait_until(
        Duration::from_secs(10),
        || client_ns.tcp_states(local.port(), false).contains(&CLOSE_WAIT),
        || format!("the client's socket never reached CLOSE_WAIT: {:?}", client_ns.tcp_states(local.port(), false)),
    );
    std::thread::sleep(POOL_IDLE);
    let closed_to_write = closed.elapsed();
    // The pool hands the connection out again; the request goes out, the
    // server's kernel answers with an RST.
    client.write_all(b"GET /2 HTTP/1.1\r\n\r\n").expect("the write itself succeeds");
    wait_until(
        Duration::from_secs(10),
        || !client_ns.tcp_states(local.port(), false).contains(&CLOSE_WAIT),
        || "no RST ended the pooled connection".to_string(),
    );
    // tcp_reset() reports EPIPE to a socket in CLOSE_WAIT.
    let error = client.take_error().unwrap().map(|e| e.kind());
    assert_eq!(error, Some(ErrorKind::BrokenPipe), "the client's socket was reset");
    PoolRace { client: local, closed_to_write }
}

/// The records of one pool race, checked against what the test measured.
fn assert_pool_race<N: Namespaces>(observed: &Observed<N>, client_ns: &Netns, server_ns: &Netns, race: &PoolRace) {
    let records = &observed.records;
    let client = race.client.to_string();
    let received = records.one("rst_received", client_ns, |r| r["local"] == client.as_str());
    assert_eq!(received["state"], "CLOSE_WAIT", "{received}");
    assert_eq!(received["cause"], "peer_had_closed", "{received}");
    assert_ne!(received["origin"], "middlebox", "the peer's own kernel answered: {received}");
    if received["ttl"].is_u64() && received["peer_ttl"].is_u64() {
        assert_eq!(received["origin"], "peer", "{received}");
    } else {
        assert_eq!(received["origin"], Value::Null, "without both TTLs nothing else may decide: {received}");
    }
    let at_least = POOL_IDLE.as_millis() as u64;
    let at_most = race.closed_to_write.as_millis() as u64 + 1000;
    let peer_closed = received["peer_closed_ms"].as_u64().unwrap_or_else(|| panic!("no peer_closed_ms: {received}"));
    assert!((at_least..=at_most).contains(&peer_closed), "peer_closed_ms {peer_closed} not in {at_least}..={at_most}");
    let advice = received["advice"].as_str().unwrap_or_else(|| panic!("no advice: {received}"));
    assert!(advice.contains("shorter than") && advice.contains("keep-alive timeout"), "{advice}");
    assert!(
        records.0.iter().all(|r| r["kind"] != "idle_timeout"),
        "no device was inferred: {}",
        records.dump(client_ns)
    );

    if !observed.sees_socketless_resets() {
        // The capture comparison said `skipped:` for the TIME_WAIT socket's RST.
        eprintln!("skipped: data_after_close from a TIME_WAIT socket needs Linux 6.10's tcp_send_reset");
        return;
    }
    let sent = records.one("rst_sent", server_ns, |r| r["remote"] == client.as_str());
    assert_eq!(sent["state"], "TIME_WAIT", "the orphaned connection's timewait socket (FIN_WAIT2): {sent}");
    assert_eq!(sent["cause"], "data_after_close", "{sent}");
    let answered: Vec<&str> = sent["answered"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(answered.contains(&"ACK") && !answered.contains(&"SYN"), "it answered the request: {sent}");
    assert_eq!(sent["pid"], Value::Null, "sent from softirq: {sent}");
    let closed = sent["closed_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no closed_ms: {sent}\nall records there:\n{}", records.dump(server_ns)));
    // Entered TIME_WAIT when the client acknowledged the FIN: after close(),
    // and at most a delayed ACK (200 ms) after its socket showed CLOSE_WAIT.
    let at_least = at_least - DELAYED_ACK_MAX.as_millis() as u64;
    assert!((at_least..=at_most).contains(&closed), "closed_ms {closed} not in {at_least}..={at_most}: {sent}");
    let advice = sent["advice"].as_str().unwrap_or_else(|| panic!("no advice: {sent}"));
    assert!(advice.contains("keep-alive timeout must be longer"), "{advice}");
}

fn pool_race_over_a_link(label: &str, server_ip: &'static str) {
    require_root();
    let traced = Traced::pair(label, &[]);
    let race = pool_race(&traced.net.client, &traced.net.server, server_ip);
    let observed = traced.stop();
    let pair = &observed.net;
    observed.assert_resets_match(&pair.client, Arrivals::EndConnections, Sends::FromFullSockets);
    observed.assert_resets_match(&pair.server, Arrivals::EndConnections, Sends::MaybeWithoutSocket);
    assert_pool_race(&observed, &pair.client, &pair.server, &race);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn pool_race_ipv4() {
    pool_race_over_a_link("prv4", Pair::SERVER_V4);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn pool_race_ipv6() {
    pool_race_over_a_link("prv6", Pair::SERVER_V6);
}

fn pool_race_over_loopback(label: &str, ip: &'static str) {
    require_root();
    let netns = Netns::new(label);
    let traced = Traced::start(netns, &[]);
    let race = pool_race(&traced.net, &traced.net, ip);
    let observed = traced.stop();
    let netns = &observed.net;
    observed.assert_resets_match(netns, Arrivals::EndConnections, Sends::MaybeWithoutSocket);
    assert_pool_race(&observed, netns, netns, &race);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn pool_race_over_loopback_ipv4() {
    pool_race_over_loopback("prl4", "127.0.0.1");
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn pool_race_over_loopback_ipv6() {
    pool_race_over_loopback("prl6", "::1");
}

/// A genuine abort (SO_LINGER 0) by the peer on an open connection, seen
/// by the server: never `middlebox`, `peer` where both TTLs are known.
/// `before` runs between the connection's set-up and the abort.
fn genuine_abort(pair: &Pair, server_ip: &'static str, before: impl FnOnce()) -> SocketAddr {
    let listener = pair.server.listen(server_ip);
    let server_addr = listener.local_addr().unwrap();
    let client = pair.client.run("client", move || TcpStream::connect(server_addr).expect("connect"));
    let (mut server, _) = listener.accept().unwrap();
    before();
    linger_zero(&client);
    drop(client);
    server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let err = server.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    server.local_addr().unwrap()
}

fn assert_genuine<N: Namespaces>(observed: &Observed<N>, server_ns: &Netns, server: SocketAddr, ttl: u64) {
    let r = observed.records.one("rst_received", server_ns, |r| r["local"] == server.to_string());
    assert_ne!(r["origin"], "middlebox", "the peer's own abort: {r}");
    assert_ne!(r["cause"], "middlebox", "{r}");
    assert_eq!(r["advice"], Value::Null, "{r}");
    if r["ttl"].is_u64() && r["peer_ttl"].is_u64() {
        assert_eq!((&r["ttl"], &r["peer_ttl"]), (&Value::from(ttl), &Value::from(ttl)), "{r}");
        assert_eq!(r["origin"], "peer", "{r}");
        assert_eq!(r["cause"], "peer_abort", "{r}");
    } else {
        assert_eq!(r["origin"], Value::Null, "{r}");
        assert_eq!(r["cause"], "unknown", "{r}");
        eprintln!(
            "skipped: origin peer needs ttl and peer_ttl, which this kernel and strategy do not show (the ready record says why)"
        );
    }
    assert!(observed.records.0.iter().all(|r| r["kind"] != "idle_timeout"), "no device was inferred");
}

/// Both namespaces' default routes go through a gateway (as a pod's or a
/// container's do), but the peer is on the link: its RSTs come with TTL
/// 64, like its other segments.
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn on_link_peer_with_a_default_gateway() {
    require_root();
    let pair = Pair::new("olgw");
    for ns in [&pair.client, &pair.server] {
        ns.default_route("10.77.0.254");
    }
    let traced = Traced::start(pair, &[]);
    let server = genuine_abort(&traced.net, Pair::SERVER_V4, || {
        std::thread::sleep(Duration::from_millis(1500));
    });
    let observed = traced.stop();
    observed.assert_resets_match(&observed.net.server, Arrivals::EndConnections, Sends::FromFullSockets);
    observed.assert_resets_match(&observed.net.client, Arrivals::EndConnections, Sends::FromFullSockets);
    assert_genuine(&observed, &observed.net.server, server, 64);
}

/// The peer's TTL is kept for the connection's whole life: a genuine abort
/// after 100,000 other connections came and went through the host (an LRU
/// of 65,536 entries had forgotten it) is still judged by it.
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn peer_abort_after_100000_other_connections() {
    require_root();
    const CHURN: usize = 100_000;
    let traced = Traced::pair("churn", &[]);
    if has_limitation(&traced.daemon.ready, "ttl_unknown") || has_limitation(&traced.daemon.ready, "peer_ttl_unknown") {
        eprintln!("skipped: this kernel and strategy show no ttl or peer_ttl to keep (the ready record says why)");
        return;
    }
    let pair = &traced.net;
    // The client closes first and keeps each 4-tuple in TIME_WAIT, reusing
    // those a second old for its next connections (timestamps vouch for
    // them); the server closes after the client's FIN and keeps none. Room
    // for every TIME_WAIT socket: past the limit (a guest's default is a
    // few thousand) the kernel drops one, and the server's late FIN meets no
    // socket and an RST.
    pair.client.sysctl("net.ipv4.tcp_tw_reuse", "1");
    pair.client.sysctl("net.ipv4.tcp_max_tw_buckets", "262144");
    let listeners: Vec<TcpListener> = (0..2).map(|_| pair.server.listen(Pair::SERVER_V4)).collect();
    let targets: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let started = Instant::now();
    let server = genuine_abort(pair, Pair::SERVER_V4, || {
        let acceptors: Vec<_> = listeners
            .into_iter()
            .map(|listener| {
                std::thread::spawn(move || {
                    for _ in 0..CHURN / 2 {
                        // Closed after the client's FIN: the server keeps no
                        // TIME_WAIT.
                        let (mut conn, _) = listener.accept().unwrap();
                        assert_eq!(conn.read(&mut [0u8; 1]).unwrap(), 0, "the client closes first");
                    }
                })
            })
            .collect();
        pair.client.run("churn", move || {
            for i in 0..CHURN {
                drop(TcpStream::connect(targets[i % 2]).expect("churn connect"));
            }
        });
        for acceptor in acceptors {
            acceptor.join().unwrap();
        }
    });
    eprintln!("{CHURN} connections in {:.1} s before the abort", started.elapsed().as_secs_f64());
    let observed = traced.stop();
    observed.assert_resets_match(&observed.net.server, Arrivals::EndConnections, Sends::FromFullSockets);
    observed.assert_resets_match(&observed.net.client, Arrivals::EndConnections, Sends::FromFullSockets);
    assert_genuine(&observed, &observed.net.server, server, 64);
    assert_eq!(observed.records.summary()["connections_unkept"], 0, "every connection was kept");
}

/// A peer that vanished: the server's namespace drops everything from now
/// on (nftables), the client's keepalive probes go unanswered, and its
/// kernel gives up with an RST from the keepalive timer (Linux 6.10+ names
/// it `TCP_KEEPALIVE_TIMEOUT`). Its look-alike is the client's own abort,
/// which a process makes (`application_abort`, in resets.rs).
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn keepalive_probes_unanswered() {
    require_root();
    let traced = Traced::pair("kato", &[]);
    let reasons = traced.daemon.has_reset_reasons();
    let pair = &traced.net;
    let listener = pair.server.listen(Pair::SERVER_V4);
    let server_addr = listener.local_addr().unwrap();
    let client = pair.client.run("client", move || TcpStream::connect(server_addr).expect("connect"));
    let local = client.local_addr().unwrap();
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(1))
        .with_interval(Duration::from_secs(1))
        .with_retries(1);
    socket2::SockRef::from(&client).set_tcp_keepalive(&keepalive).expect("SO_KEEPALIVE");
    let (_server_conn, _) = listener.accept().unwrap();
    let rules = "table inet gone {\n  chain input {\n    type filter hook input priority 0; policy drop;\n  }\n}\n";
    if let Err(why) = pair.server.nft(rules) {
        panic!("the server's namespace cannot drop everything: {why}");
    }
    // About 1 s idle, one probe, 1 s for its answer; a slow guest may take longer.
    wait_until(
        Duration::from_secs(30),
        || pair.client.tcp_states(local.port(), false).is_empty(),
        || format!("the keepalive timer never gave up: {:?}", pair.client.tcp_states(local.port(), false)),
    );
    let error = client.take_error().unwrap().map(|e| e.kind());
    assert_eq!(error, Some(ErrorKind::TimedOut), "the kernel's keepalive gave up");
    let observed = traced.stop();
    // The client's RST left on the wire; the server's namespace captured it
    // arriving, but nftables dropped it before TCP: it is not compared there.
    observed.assert_resets_match(&observed.net.client, Arrivals::EndConnections, Sends::FromFullSockets);
    let sent = observed.records.one("rst_sent", &observed.net.client, |r| r["local"] == local.to_string());
    assert_eq!(sent["pid"], Value::Null, "sent by a timer: {sent}");
    assert_eq!(sent["answered"], Value::Null, "it answers no segment: {sent}");
    if reasons {
        assert_eq!(sent["reason"], "TCP_KEEPALIVE_TIMEOUT", "{sent}");
        assert_eq!(sent["cause"], "keepalive_timeout", "{sent}");
        assert!(sent["advice"].as_str().is_some_and(|a| a.contains("Keepalive probes")), "{sent}");
    } else {
        assert_eq!(sent["cause"], "unknown", "before 6.10 no reason tells a timer's reset: {sent}");
        eprintln!("skipped: keepalive_timeout needs Linux 6.10's reset reason");
    }
}

/// A segment with data for a connection the server does not have (a raw
/// socket in the client's namespace sends it, as a client whose server
/// restarted or forgot the connection would): the server's kernel answers
/// from no socket (`no_connection`). Its look-alike, a SYN to a port
/// nothing listens on, is `no_listener` (resets.rs, closed_port_*).
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn data_for_a_connection_the_server_does_not_have() {
    require_root();
    let traced = Traced::pair("noconn", &[]);
    let from = addr(Pair::CLIENT_V4, 40999);
    let to = addr(Pair::SERVER_V4, 9);
    traced.net.client.run("stray", move || send_tcp_segment(from, to, TCP_PSH | TCP_ACK, b"GET / HTTP/1.1\r\n\r\n"));
    // The server's RST reaches a client without that connection.
    std::thread::sleep(Duration::from_millis(500));
    let observed = traced.stop();
    let pair = &observed.net;
    observed.assert_resets_match(&pair.server, Arrivals::EndNoConnection, Sends::MaybeWithoutSocket);
    observed.assert_resets_match(&pair.client, Arrivals::EndNoConnection, Sends::FromFullSockets);
    if !observed.sees_socketless_resets() {
        eprintln!("skipped: an RST from no socket needs Linux 6.10's tcp_send_reset");
        return;
    }
    let sent = observed.records.one("rst_sent", &pair.server, |r| r["remote"] == from.to_string());
    assert_eq!(sent["state"], Value::Null, "{sent}");
    assert_eq!(sent["answered"], serde_json::json!(["PSH", "ACK"]), "{sent}");
    assert_eq!(sent["cause"], "no_connection", "{sent}");
}

/// A stray ACK to a listening port: the listener answers with an RST from
/// packet processing, without taking its lock, while this process's other
/// thread calls accept() on it over and over (each call locks it): the
/// record names no process (`pid` null), whoever held the lock.
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn a_listeners_reset_names_no_process() {
    require_root();
    let traced = Traced::pair("lsnrst", &[]);
    let listener = traced.net.server.listen(Pair::SERVER_V4);
    listener.set_nonblocking(true).unwrap();
    let to = listener.local_addr().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let accepting = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = listener.accept();
            }
        })
    };
    const STRAYS: u16 = 20;
    for i in 0..STRAYS {
        let from = addr(Pair::CLIENT_V4, 41000 + i);
        traced.net.client.run("stray", move || send_tcp_segment(from, to, TCP_ACK, b""));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    accepting.join().unwrap();
    let observed = traced.stop();
    let pair = &observed.net;
    observed.assert_resets_match(&pair.server, Arrivals::EndNoConnection, Sends::FromFullSockets);
    observed.assert_resets_match(&pair.client, Arrivals::EndNoConnection, Sends::FromFullSockets);
    let sent = observed.records.of("rst_sent", &pair.server);
    let count: u64 = sent.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(count, STRAYS as u64, "one RST per stray ACK:\n{}", observed.records.dump(&pair.server));
    for r in sent {
        assert_eq!(r["state"], "LISTEN", "{r}");
        assert_eq!(r["pid"], Value::Null, "softirq answered, not the accepting thread: {r}");
        if r["answered"].is_array() {
            assert_eq!(r["cause"], "no_connection", "{r}");
        }
    }
}

const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

/// Sends one IPv4 TCP segment from `from` to `to` through a raw socket
/// (the kernel adds the IP header): no socket of this host owns it.
fn send_tcp_segment(from: SocketAddr, to: SocketAddr, flags: u8, payload: &[u8]) {
    let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else { panic!("IPv4 only") };
    let mut segment = vec![0u8; 20];
    segment[0..2].copy_from_slice(&from.port().to_be_bytes());
    segment[2..4].copy_from_slice(&to.port().to_be_bytes());
    segment[4..8].copy_from_slice(&1_000_000u32.to_be_bytes());
    segment[8..12].copy_from_slice(&2_000_000u32.to_be_bytes());
    segment[12] = 5 << 4;
    segment[13] = flags;
    segment[14..16].copy_from_slice(&65535u16.to_be_bytes());
    segment.extend_from_slice(payload);
    // The checksum over the pseudo header and the segment.
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&from.ip().octets());
    pseudo.extend_from_slice(&to.ip().octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&segment);
    if pseudo.len() % 2 == 1 {
        pseudo.push(0);
    }
    let mut sum: u32 = pseudo.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    segment[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::TCP))
        .expect("a raw socket (needs CAP_NET_RAW)");
    socket.bind(&SocketAddr::V4(std::net::SocketAddrV4::new(*from.ip(), 0)).into()).expect("bind the raw socket");
    let sent = socket.send_to(&segment, &SocketAddr::V4(to).into()).expect("send the segment");
    assert_eq!(sent, segment.len());
}
