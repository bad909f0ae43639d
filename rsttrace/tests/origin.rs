//! Who really sent a received reset (seed case 000): a client and a server
//! behind a router whose connection tracking forgets idle connections and
//! answers the next segment with a forged RST (`ct state invalid reject with
//! tcp reset`, no loose pick-up, a 2 s established timeout), as load
//! balancers, NATs and firewalls do. IPv4 and IPv6; the server's side and
//! the client's; the peer's own abort through the same router as the
//! control; and the device's idle timeout inferred from several of them.

mod support;

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    Arrivals, Namespaces, Netns, Observed, Records, Sends, Traced, addr, has_limitation, limitation, linger_zero,
    require_root,
};

/// How long the router remembers an idle established connection.
const CONNTRACK_TIMEOUT_S: u64 = 2;

/// client (.1) -- router (.254 on both sides) -- server (.1).
struct Routed {
    client: Netns,
    /// Held for its lifetime: dropping it deletes the namespace.
    _router: Netns,
    server: Netns,
    client_ip: &'static str,
    server_ip: &'static str,
}

impl Routed {
    /// None (after saying why) where the router cannot be built: nft or
    /// connection tracking missing.
    fn new(label: &str, v6: bool) -> Option<Self> {
        if Command::new("nft").arg("--version").output().is_err() {
            eprintln!("skipped: nft is not installed here (apt install nftables)");
            return None;
        }
        let client = Netns::new(&format!("{label}-c"));
        let router = Netns::new(&format!("{label}-r"));
        let server = Netns::new(&format!("{label}-s"));
        let (client_ip, server_ip, client_net, server_net, gw_c, gw_s, prefix) = if v6 {
            ("fd91:1::1", "fd91:2::1", "fd91:1::254", "fd91:2::254", "fd91:1::254", "fd91:2::254", 64)
        } else {
            ("10.91.1.1", "10.91.2.1", "10.91.1.254", "10.91.2.254", "10.91.1.254", "10.91.2.254", 24)
        };
        client.veth("eth0", &router, "c0");
        server.veth("eth0", &router, "s0");
        for (ns, dev, address) in [
            (&client, "eth0", client_ip),
            (&router, "c0", client_net),
            (&server, "eth0", server_ip),
            (&router, "s0", server_net),
        ] {
            ns.addresses(dev, &[&format!("{address}/{prefix}")]);
        }
        client.default_route(gw_c);
        server.default_route(gw_s);
        router.sysctl(if v6 { "net.ipv6.conf.all.forwarding" } else { "net.ipv4.ip_forward" }, "1");
        let rules = "table inet middlebox {\n  chain forward {\n    type filter hook forward priority 0;\n    ct state invalid reject with tcp reset\n  }\n}\n";
        if let Err(why) = router.nft(rules) {
            eprintln!("skipped: this kernel refuses the router's nftables rules ({why})");
            return None;
        }
        // The conntrack sysctls appear once nft loaded connection tracking.
        let conntrack = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established";
        if !router.run("conntrack", move || std::path::Path::new(conntrack).exists()) {
            eprintln!("skipped: no connection tracking in this kernel ({conntrack} missing)");
            return None;
        }
        router.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0");
        router.sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", &CONNTRACK_TIMEOUT_S.to_string());
        Some(Routed { client, _router: router, server, client_ip, server_ip })
    }
}

/// The captured ends: every RST either of them sends or receives is on the
/// wire there (the router's own forgeries arrive, never leave).
impl Namespaces for Routed {
    fn namespaces(&self) -> Vec<&Netns> {
        vec![&self.client, &self.server]
    }
}

/// Every RST that reached client or server ended a connection and has its
/// record; every record its packet.
fn assert_records_are_the_capture(observed: &Observed<Routed>) {
    for netns in [&observed.net.client, &observed.net.server] {
        observed.assert_resets_match(netns, Arrivals::EndConnections, Sends::FromFullSockets);
    }
}

/// An established connection through the router, warmed up so that both
/// sides have a smoothed RTT: each side sends small segments the other only
/// reads, so they are acknowledged by delayed ACKs (tens of ms).
fn connected(net: &Routed, port_hint: u16) -> (TcpStream, TcpStream) {
    let server_ip = net.server_ip;
    let listener =
        net.server.run("listener", move || TcpListener::bind(addr(server_ip, port_hint)).expect("bind the server"));
    let server_addr = listener.local_addr().unwrap();
    let client = net.client.run("client", move || TcpStream::connect(server_addr).expect("connect through the router"));
    let (server, _) = listener.accept().unwrap();
    for (from, to) in [(&server, &client), (&client, &server)] {
        let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
        for _ in 0..12 {
            from.write_all(b"w").unwrap();
            to.read_exact(&mut [0u8; 1]).unwrap();
            // Out of quick-ACK mode (in which a new connection acknowledges
            // at once): the next segment waits for the delayed ACK.
            quickack_off(&to);
            std::thread::sleep(Duration::from_millis(60));
        }
    }
    (client, server)
}

fn quickack_off(stream: &TcpStream) {
    use std::os::fd::AsRawFd as _;
    let off: libc::c_int = 0;
    // SAFETY: a valid socket and a pointer to a live int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&off as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_QUICKACK: {}", std::io::Error::last_os_error());
}

/// Writes after `silence`: the router has forgotten the connection and
/// answers with a forged RST. Returns when the silence began.
fn write_after_silence(writer: &mut TcpStream, silence: Duration) -> Instant {
    let began = Instant::now();
    std::thread::sleep(silence);
    let _ = writer.write_all(b"after the silence");
    let mut buf = [0u8; 64];
    writer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match writer.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the router's RST, got {other:?}"),
    }
    began
}

/// The ready record says this kernel and strategy show `key` (`ttl`,
/// `peer_ttl`) of received resets.
fn shows(ready: &Value, key: &str) -> bool {
    !has_limitation(ready, &format!("{key}_unknown"))
}

fn only_received(records: &Records, netns: &Netns, local: SocketAddr) -> Value {
    records.one("rst_received", netns, |r| r["local"] == local.to_string()).clone()
}

/// The forged RST, seen from the side that wrote after the silence.
fn forged(label: &str, v6: bool, server_writes: bool) {
    require_root();
    let Some(net) = Routed::new(label, v6) else { return };
    let traced = Traced::start(net, &[]);
    let (ttl_shown, peer_ttl_shown) = (shows(&traced.daemon.ready, "ttl"), shows(&traced.daemon.ready, "peer_ttl"));
    let (mut client, mut server) = connected(&traced.net, 0);
    let silence = Duration::from_secs(CONNTRACK_TIMEOUT_S + 1);
    let writer = if server_writes { &mut server } else { &mut client };
    let local = writer.local_addr().unwrap();
    let began = write_after_silence(writer, silence);
    let measured = began.elapsed();
    drop((client, server));
    let observed = traced.stop();
    assert_records_are_the_capture(&observed);
    let net = &observed.net;
    let netns = if server_writes { &net.server } else { &net.client };

    let r = only_received(&observed.records, netns, local);
    let silent = r["peer_silent_ms"].as_u64().unwrap_or_else(|| panic!("no peer_silent_ms: {r}"));
    assert!(
        silent.abs_diff(silence.as_millis() as u64) <= 1000 && silent <= measured.as_millis() as u64 + 1000,
        "peer_silent_ms {silent} for a silence of {silence:?}: {r}"
    );
    assert!(r["idle_ms"].as_u64().unwrap() < silent, "idle_ms counts this host's own write: {r}");
    if !ttl_shown && r["origin"].is_null() {
        // Without the TTL only the timing rule can decide (an answer sooner
        // than half the path's minimum RTT after this host's data), and a
        // link shorter than a millisecond (veth, without sch_netem to
        // lengthen it on this machine's kernel) gives it nothing to go on.
        // It must never say `peer`.
        eprintln!(
            "skipped: origin: without the ttl only the timing rule decides, and it cannot on a link shorter than 1 ms (the minimum RTT): {r}"
        );
        assert_eq!(r["cause"], "unknown", "{r}");
    } else {
        assert_eq!(r["origin"], "middlebox", "{r}");
        assert_eq!(r["cause"], "middlebox", "{r}");
        assert!(r["advice"].as_str().is_some_and(|a| a.contains("keepalive")), "{r}");
    }
    if ttl_shown {
        // The router answered from its own stack: no hop decremented it.
        assert_eq!(r["ttl"], 64, "{r}");
    } else {
        assert_eq!(r["ttl"], Value::Null, "{r}");
        eprintln!("skipped: ttl is not shown with this kernel and strategy (the ready record says why)");
    }
    if peer_ttl_shown {
        assert_eq!(r["peer_ttl"], 63, "the peer is one router away: {r}");
    }
    // The peer's address is in the record, but it never sent this RST.
    let peer = if server_writes { net.client_ip } else { net.server_ip };
    assert!(r["remote"].as_str().unwrap().contains(peer), "{r}");
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn forged_reset_seen_by_the_server_ipv4() {
    forged("fsv4", false, true);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn forged_reset_seen_by_the_server_ipv6() {
    forged("fsv6", true, true);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn forged_reset_seen_by_the_client_ipv4() {
    forged("fcv4", false, false);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn forged_reset_seen_by_the_client_ipv6() {
    forged("fcv6", true, false);
}

/// The control: the client aborts (SO_LINGER 0) while the router still
/// knows the connection; its RST is the peer's own.
fn genuine(label: &str, v6: bool) {
    require_root();
    let Some(net) = Routed::new(label, v6) else { return };
    let traced = Traced::start(net, &[]);
    let (ttl_shown, peer_ttl_shown) = (shows(&traced.daemon.ready, "ttl"), shows(&traced.daemon.ready, "peer_ttl"));
    let (client, mut server) = connected(&traced.net, 0);
    let local = server.local_addr().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    linger_zero(&client);
    drop(client);
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let err = server.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    drop(server);
    let observed = traced.stop();
    assert_records_are_the_capture(&observed);

    let r = only_received(&observed.records, &observed.net.server, local);
    assert_ne!(r["origin"], "middlebox", "the peer's own abort: {r}");
    assert_eq!(r["advice"], Value::Null, "{r}");
    if ttl_shown && peer_ttl_shown {
        assert_eq!((&r["ttl"], &r["peer_ttl"]), (&Value::from(63), &Value::from(63)), "{r}");
        assert_eq!(r["origin"], "peer", "{r}");
        assert_eq!(r["cause"], "peer_abort", "{r}");
    } else {
        assert_eq!(r["origin"], Value::Null, "{r}");
        assert_eq!(r["cause"], "unknown", "{r}");
        let why: Vec<String> =
            ["ttl_unknown", "peer_ttl_unknown"].iter().filter_map(|code| limitation(&observed.ready, code)).collect();
        eprintln!("skipped: origin peer needs ttl and peer_ttl: {}", why.join("; "));
    }
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn the_peers_own_abort_through_the_router_ipv4() {
    genuine("gv4", false);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn the_peers_own_abort_through_the_router_ipv6() {
    genuine("gv6", true);
}

/// Three connections from the client's network, forgotten after 3 to 4 s of
/// silence: one idle_timeout record for that network, with a timeout between
/// the router's (2 s) and the shortest silence.
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn several_forged_resets_give_the_idle_timeout() {
    require_root();
    let Some(net) = Routed::new("idle", false) else { return };
    let traced = Traced::start(net, &[]);
    let silences = [3000u64, 3500, 4000];
    let handles: Vec<_> = silences
        .into_iter()
        .map(|silence| {
            // Each silence starts when its connection's warm-up ends.
            let (client, mut server) = connected(&traced.net, 0);
            std::thread::spawn(move || {
                write_after_silence(&mut server, Duration::from_millis(silence));
                drop(client);
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let observed = traced.stop();
    assert_records_are_the_capture(&observed);
    let (net, records) = (&observed.net, &observed.records);

    let forged = records.of("rst_received", &net.server);
    if !shows(&observed.ready, "ttl") {
        // Without the RST's TTL only the timing rule could prove the router
        // sent these, and on a link of a fraction of a millisecond (no
        // sch_netem to lengthen it on this machine's kernel) it cannot:
        // nothing may be blamed, and no timeout inferred.
        assert!(forged.iter().all(|r| r["origin"].is_null()), "{}", records.dump(&net.server));
        assert!(records.0.iter().all(|r| r["kind"] != "idle_timeout"), "{}", records.dump(&net.server));
        eprintln!("skipped: the idle timeout needs the RSTs' ttl, which this kernel and strategy do not show");
        return;
    }
    assert_eq!(forged.iter().filter(|r| r["origin"] == "middlebox").count(), 3, "{}", records.dump(&net.server));
    // The clients' own closes meet the router's forgetting too: their
    // namespace has its own record; the server's is the one for this.
    let server_netns = Some(net.server.inode());
    let idle: Vec<&Value> =
        records.0.iter().filter(|r| r["kind"] == "idle_timeout" && r["netns"].as_u64() == server_netns).collect();
    assert_eq!(idle.len(), 1, "{idle:?}");
    let idle = idle[0];
    assert_eq!(idle["network"], "10.91.1.0/24", "{idle}");
    assert_eq!(idle["netns"].as_u64(), Some(net.server.inode()), "{idle}");
    assert_eq!(idle["count"], 3, "{idle}");
    let timeout = idle["timeout_s"].as_u64().unwrap();
    assert!((CONNTRACK_TIMEOUT_S..=3).contains(&timeout), "timeout_s {timeout}: {idle}");
    let all_idle = records.0.iter().filter(|r| r["kind"] == "idle_timeout").count();
    assert_eq!(records.summary()["counts"]["idle_timeout"], all_idle, "the summary counts every one");
}
