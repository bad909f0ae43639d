//! Reused-port SYNs meeting TIME_WAIT sockets, against the real kernel: a
//! "load balancer" namespace reconnects from the port it just used to a
//! server that closed first and holds the old connection in TIME_WAIT.
//! Without TCP timestamps on the client and with its new ISN below the old
//! connection's `rcv_nxt`, the TIME_WAIT socket answers the SYN with a stale
//! ACK, the client resets and retries; with timestamps the SYN is accepted.
//! A capture of the same namespaces is the ground truth for the resets.

mod support;

use std::{
    io::Read,
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    Arrivals, FIN_WAIT2, Handshakes, Netns, Observed, Pair, Sends, TIME_WAIT, Traced, addr, closed_by_server,
    connect_from, connection_closed_by_server, connection_closed_by_server_sending, linger_zero, require_root,
    reuse_unseen_here,
    segments::{self, Flags, send_segment, send_sequence},
    wait_until, with_stale_acks,
};

const CLIENT_PORT: u16 = 40021;

/// One try of the seed case: what it observed, the server's address, how
/// long the second connect() took and the whole try since the first.
struct Seed {
    observed: Observed<Pair>,
    server: SocketAddr,
    delay: Duration,
    since_first_connect: Duration,
    strategy: String,
}

fn seed_case(label: &str, client_ip: &'static str, server_ip: &'static str) {
    require_root();
    let local = addr(client_ip, CLIENT_PORT);
    // Tried afresh until the server's capture shows the reused port's SYN
    // numbered at or below rcv_nxt (`with_stale_acks`).
    let attempt = |bytes| {
        let traced = Traced::pair(label, &["--port", "8090"]);
        let pair = &traced.net;
        // The seed's load balancer had TCP timestamps disabled.
        pair.client.sysctl("net.ipv4.tcp_timestamps", "0");
        let listener = pair.server.run("server", move || TcpListener::bind(addr(server_ip, 8090)).unwrap());
        let server = listener.local_addr().unwrap();
        if !traced.daemon.sees_timewait_verdicts() {
            eprintln!(
                "skipped: strategy {} on this kernel cannot see TIME_WAIT verdicts (needs 6.11+ for tracepoints)",
                traced.daemon.strategy()
            );
            return None;
        }
        let strategy = traced.daemon.strategy().to_string();
        let handshakes = Handshakes::start(&pair.server);
        let first_connect = Instant::now();
        assert!(
            connection_closed_by_server_sending(pair, &listener, local, Some(bytes)),
            "no TIME_WAIT socket to reuse"
        );
        std::thread::sleep(Duration::from_millis(50));
        // Reuse the port at once: the stale ACK, the client's RST, its retry.
        let started = Instant::now();
        let second = pair.client.run("lb", move || connect_from(local, server).expect("second connection"));
        let delay = started.elapsed();
        let (accepted, _) = listener.accept().unwrap();
        drop((second, accepted));
        let observed = traced.stop();
        let since_first_connect = first_connect.elapsed();
        let syns = handshakes.stop(&observed.net.server);
        Some((Seed { observed, server, delay, since_first_connect, strategy }, syns))
    };
    let Some((Seed { observed, server, delay, since_first_connect, strategy }, syns)) = with_stale_acks(attempt) else {
        return;
    };
    let (pair, records) = (&observed.net, &observed.records);
    // The client's SYN_SENT socket resets the stale ACK; at the server that
    // RST kills the TIME_WAIT socket, no full socket.
    observed.assert_resets_match(&pair.client, Arrivals::EndNoConnection, Sends::FromFullSockets);
    observed.assert_resets_match(&pair.server, Arrivals::EndNoConnection, Sends::FromFullSockets);

    let finding = records.one("tw_collision", &pair.server, |_| true);
    assert_eq!(finding["verdict"], "stale_ack", "{finding}");
    assert_eq!(finding["local"], server.to_string());
    assert_eq!(finding["remote"], local.to_string());
    assert_eq!(finding["state"], "TIME_WAIT");
    // The evidence, as captured: the SYN numbered at or below rcv_nxt.
    let [syn] = syns[..] else { panic!("one reused SYN captured at the server: {syns:?}") };
    assert_eq!(
        (finding["syn_seq"].as_u64(), finding["tw_rcv_nxt"].as_u64()),
        (Some(syn.seq.into()), Some(syn.rcv_nxt.into())),
        "the captured {syn}: {finding}"
    );
    assert_eq!(finding["syn_timestamps"], false);
    assert_eq!(finding["tw_timestamps"], false);
    assert_eq!(finding["peer_rst"], true, "the client reset the stale ACK");
    // The first SYN and the retry both happen inside the second connect(),
    // and the kernel stamps them with CLOCK_MONOTONIC, the clock of Instant.
    // Seen missing once in about a hundred runs (the retry established,
    // no follow-up record): the summary says whether a run was missed.
    let retry = finding["retry_delay_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retry delay: {finding}\n{}", records.dump(&pair.server)));
    assert!(retry as u128 <= delay.as_millis(), "retry {retry} ms, the connect() around it took {delay:?}");
    // TIME_WAIT began after the first connect and at least the 50 ms of
    // sleep before the SYN.
    let age = finding["tw_age_ms"].as_u64().unwrap();
    assert!(
        age >= 50 && age as u128 <= since_first_connect.as_millis(),
        "TIME_WAIT age {age} ms, the test ran {since_first_connect:?}"
    );
    assert!(finding["advice"].as_str().unwrap().contains("net.ipv4.tcp_timestamps=1 on the peer"), "{finding}");
    assert_eq!(finding["source"], strategy.as_str());

    let killed = records.one("tw_killed", &pair.server, |_| true);
    assert_eq!(killed["by"], "rst");
    assert_eq!(killed["remote"], local.to_string());
    assert_eq!(killed["rst_seq"], finding["tw_rcv_nxt"], "the RST carried the stale ACK's number");
    let [rst] = observed.packets(&pair.server) else {
        panic!("one RST reached the server: {:?}", observed.packets(&pair.server))
    };
    assert_eq!(killed["rst_seq"], rst.seq, "the captured RST: {rst}");
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn seed_case_ipv4() {
    seed_case("seed4", Pair::CLIENT_V4, Pair::SERVER_V4);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn seed_case_ipv6() {
    seed_case("seed6", Pair::CLIENT_V6, Pair::SERVER_V6);
}

/// Aggregated reuse records of one peer come one per 10 s interval: every
/// record but the last closes a full interval, and a run of `span` holds no
/// more intervals than that.
fn assert_one_record_per_interval(reuse: &[&Value], span: Duration) {
    const INTERVAL_MS: u64 = 10_000;
    let Some((_last, closed)) = reuse.split_last() else { panic!("no aggregated record") };
    assert!(
        closed.iter().all(|r| r["interval_ms"].as_u64().is_some_and(|ms| ms >= INTERVAL_MS)),
        "a record before the last closes a full interval: {reuse:?}"
    );
    let intervals = span.as_millis() as u64 / INTERVAL_MS + 1;
    assert!(reuse.len() as u64 <= intervals, "{} records in {span:?}: {reuse:?}", reuse.len());
    assert!(reuse.iter().all(|r| r["verdict"] == "accepted"), "{reuse:?}");
}

/// With timestamps on the client the kernel accepts the reused port; a burst
/// of such reuses is one aggregated info record per interval, not a flood.
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn harmless_reuse_is_aggregated() {
    require_root();
    const CONNECTIONS: usize = 60;
    let started = Instant::now();
    let traced = Traced::pair("reuse", &["--port", "8091"]);
    let pair = &traced.net;
    let listener = pair.server.run("server", || TcpListener::bind(addr(Pair::SERVER_V4, 8091)).unwrap());
    let local = addr(Pair::CLIENT_V4, CLIENT_PORT);
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
        previous_in_time_wait = connection_closed_by_server(pair, &listener, local, false);
        killed += !previous_in_time_wait as usize;
    }
    assert!(reuses >= CONNECTIONS as u64 - 3, "only {reuses} connections met a TIME_WAIT socket");
    let observed = traced.stop();
    let span = started.elapsed();
    let (pair, records) = (&observed.net, &observed.records);
    // The client's RSTs (if any) come from no socket; they kill TIME_WAIT
    // sockets, no connection.
    observed.assert_resets_match(&pair.client, Arrivals::EndNoConnection, Sends::MaybeWithoutSocket);
    observed.assert_resets_match(&pair.server, Arrivals::EndNoConnection, Sends::FromFullSockets);

    let summary = records.summary();
    let reuse = records.of("tw_collision", &pair.server);
    if reuse_unseen_here(&observed, &reuse) {
        return;
    }
    assert_one_record_per_interval(&reuse, span);
    let kills = records.of("tw_killed", &pair.server);
    let arrived = observed.packets(&pair.server).iter().filter(|p| !p.outgoing).count();
    assert_eq!(kills.len(), arrived, "one kill per RST that reached the server: {:?}", observed.packets(&pair.server));
    assert!(killed <= arrived, "{killed} TIME_WAIT sockets vanished, {arrived} RSTs reached the server: {kills:?}");
    // A kill after the socket table showed the TIME_WAIT socket (the late
    // ACK above) leaves the next connection nothing to reuse: the table's
    // count is then one too many, for each kill it did not see.
    let unseen_kills = (arrived - killed) as u64;
    let total: u64 = reuse.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert!(
        (reuses - unseen_kills..=reuses).contains(&total),
        "{total} reuses reported; the socket table showed {reuses}, and {unseen_kills} kills came after it: {reuse:?} {summary}"
    );
    assert!(summary["verdicts"]["accepted"].as_u64().unwrap() >= total, "{summary}");
}

/// The server closed first and its socket waits in TIME_WAIT for the peer's
/// FIN; the peer aborts instead: its RST kills the TIME_WAIT socket, with no
/// reuse at all.
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn rst_kills_a_timewait_socket() {
    require_root();
    let traced = Traced::pair("kill", &["--port", "8092"]);
    let pair = &traced.net;
    let listener = pair.server.run("server", || TcpListener::bind(addr(Pair::SERVER_V4, 8092)).unwrap());
    let server = listener.local_addr().unwrap();
    if !traced.daemon.sees_timewait_verdicts() {
        eprintln!(
            "skipped: strategy {} on this kernel cannot see TIME_WAIT kills (needs 6.11+ for tracepoints)",
            traced.daemon.strategy()
        );
        return;
    }
    let mut client = pair.client.run("client", move || TcpStream::connect(server).unwrap());
    let (accepted, _) = listener.accept().unwrap();
    let local = client.local_addr().unwrap();
    // The server's FIN goes out while its socket is still open, and the
    // close waits for the client's ACK. Closed in FIN_WAIT1, the ACK can
    // arrive while close() still owns the socket: the kernel then keeps a
    // full FIN_WAIT2 socket on a timer, and the RST below ends that
    // connection instead of killing a TIME_WAIT socket (seen on 5.10 under
    // QEMU). Closed in FIN_WAIT2, it becomes a TIME_WAIT socket at once.
    accepted.shutdown(Shutdown::Write).unwrap();
    assert_eq!(client.read(&mut [0u8; 1]).unwrap(), 0, "the server's FIN");
    wait_until(
        Duration::from_secs(5),
        || pair.server.tcp_states(local.port(), true) == [FIN_WAIT2],
        || {
            format!(
                "the client's ACK of the server's FIN did not arrive: {:?}",
                pair.server.tcp_states(local.port(), true)
            )
        },
    );
    let server_closed = Instant::now();
    drop(accepted);
    std::thread::sleep(Duration::from_millis(20));
    pair.client.run("aborter", move || {
        linger_zero(&client);
        drop(client);
    });
    let observed = traced.stop();
    let since_server_closed = server_closed.elapsed();
    let (pair, records) = (&observed.net, &observed.records);
    observed.assert_resets_match(&pair.client, Arrivals::EndNoConnection, Sends::FromFullSockets);
    observed.assert_resets_match(&pair.server, Arrivals::EndNoConnection, Sends::FromFullSockets);

    let killed = records.one("tw_killed", &pair.server, |_| true);
    assert_eq!(killed["local"], server.to_string());
    assert_eq!(killed["remote"], local.to_string());
    // TIME_WAIT began with the server's close and ended with the kill.
    assert!(
        killed["tw_age_ms"].as_u64().is_some_and(|age| age as u128 <= since_server_closed.as_millis()),
        "the server closed {since_server_closed:?} ago: {killed}"
    );
    let [rst] = observed.packets(&pair.server) else {
        panic!("one RST reached the server: {:?}", observed.packets(&pair.server))
    };
    assert_eq!(killed["rst_seq"], rst.seq, "the captured RST: {rst}");
    assert!(records.of("tw_collision", &pair.server).is_empty(), "no SYN, no collision");
}

/// Connection churn on loopback through 16 ephemeral ports: nearly every
/// connection reuses a 4-tuple the server still holds in TIME_WAIT. The
/// kernel accepts them all (timestamps), and rsttrace writes a count, not a
/// line per SYN.
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn loopback_churn_is_aggregated() {
    require_root();
    const CONNECTIONS: u64 = 300;
    let started = Instant::now();
    let ns = Netns::new("churn");
    ns.sysctl("net.ipv4.ip_local_port_range", "40000 40015");
    let traced = Traced::start(ns, &["--port", "8094"]);
    let ns = &traced.net;
    let listener = ns.run("server", || TcpListener::bind("127.0.0.1:8094").unwrap());
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
    let observed = traced.stop();
    let span = started.elapsed();
    let (ns, records) = (&observed.net, &observed.records);
    // Seen about once in fifty runs: a late ACK makes the client resend its
    // FIN, the TIME_WAIT socket acks it again, and the client, whose socket
    // is gone by then, answers with an RST (NO_SOCKET) that kills it (a
    // tw_killed record, same seq; see harmless_reuse_is_aggregated).
    // So an RST that arrives may end a connection or kill a TIME_WAIT
    // socket: each must be accounted for, either way.
    observed.assert_resets_match(ns, Arrivals::Mixed, Sends::MaybeWithoutSocket);

    let reuse = records.of("tw_collision", ns);
    if reuse_unseen_here(&observed, &reuse) {
        return;
    }
    assert_one_record_per_interval(&reuse, span);
    let total: u64 = reuse.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    // Every connection after the first round through the 16 ports reused one.
    assert!(total >= CONNECTIONS - 16, "{total} reuses counted: {reuse:?}");
}

/// With net.ipv4.tcp_max_tw_buckets=0 the server's kernel cannot create
/// TIME_WAIT sockets: closing first ends each connection without one
/// (TcpExt.TCPTimeWaitOverflow), through the same FIN_WAIT2 -> CLOSE change
/// of state that entering TIME_WAIT shows. A SYN that reuses the 4-tuple then
/// meets no TIME_WAIT socket: there is no collision of any verdict and no
/// kill to report, with any strategy.
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn no_verdict_without_a_time_wait_socket() {
    require_root();
    // Each connection after the first reuses the previous one's 4-tuple.
    const CONNECTIONS: u64 = 4;
    let traced = Traced::pair("notw", &["--port", "8095"]);
    let pair = &traced.net;
    pair.server.sysctl("net.ipv4.tcp_max_tw_buckets", "0");
    let listener = pair.server.run("server", || TcpListener::bind(addr(Pair::SERVER_V4, 8095)).unwrap());
    let local = addr(Pair::CLIENT_V4, CLIENT_PORT);
    let overflows_before = pair.server.counter("TcpExt.TCPTimeWaitOverflow");
    for _ in 0..CONNECTIONS {
        let server_sockets = closed_by_server(pair, &listener, local, None);
        assert!(!server_sockets.contains(&TIME_WAIT), "a TIME_WAIT socket despite tcp_max_tw_buckets=0");
    }
    let overflows = pair.server.counter("TcpExt.TCPTimeWaitOverflow") - overflows_before;
    assert_eq!(overflows, CONNECTIONS, "each close went without a TIME_WAIT socket");
    let observed = traced.stop();
    let (pair, records) = (&observed.net, &observed.records);
    // The orphaned server socket cannot become a FIN_WAIT2 minisocket either:
    // when the client acknowledges the server's FIN apart from its own FIN
    // (its delayed ACK, seen under QEMU), the server's socket ends there, and
    // the client's FIN meets no socket: an RST ends the client's LAST_ACK.
    // Not always: twice in the host suite (never alone, never under QEMU)
    // the one RST reached the client after its socket was gone, reported
    // `no_socket`, the second time with no segment sent again (the client's
    // Tcp.RetransSegs unchanged).
    // Not explained yet. So the client's arrivals are mixed: each is still
    // matched with its record where the kernel shows discarded RSTs (6.11+).
    observed.assert_resets_match(&pair.client, Arrivals::Mixed, Sends::FromFullSockets);
    observed.assert_resets_match(&pair.server, Arrivals::EndNoConnection, Sends::MaybeWithoutSocket);

    let ours: Vec<&Value> = ["tw_collision", "tw_killed"]
        .into_iter()
        .flat_map(|kind| records.of(kind, &pair.server))
        .filter(|r| r["remote"] == local.to_string())
        .collect();
    let ours: Vec<String> = ours.iter().map(|r| r.to_string()).collect();
    assert!(ours.is_empty(), "no TIME_WAIT socket ever held {local}, yet rsttrace reports:\n{}", ours.join("\n"));
}

const PAWS_PORT: u16 = 8096;

/// The sequence number a TIME_WAIT socket of the server expects next from a
/// client (its rcv_nxt), and a TSval the client sent no later than the
/// socket's last one (its ts_recent).
struct OldConnection {
    rcv_nxt: u32,
    tsval: u32,
}

/// A connection from `local` with TCP timestamps, closed by the server
/// first: the server holds it in TIME_WAIT (the substate, not FIN_WAIT2)
/// once the client's socket is gone.
fn closed_with_timestamps(pair: &Pair, listener: &TcpListener, local: SocketAddr) -> OldConnection {
    let server = listener.local_addr().unwrap();
    let mut stream = pair.client.run("client", move || connect_from(local, server).expect("connect"));
    let (accepted, _) = listener.accept().unwrap();
    drop(accepted); // the server closes first
    assert_eq!(stream.read(&mut [0u8; 1]).unwrap(), 0, "the server's FIN");
    // Nothing was written: the client's FIN takes this number, and the
    // server then expects the next one.
    let fin_seq = send_sequence(&stream);
    let tsval = segments::timestamp(&stream);
    drop(stream);
    wait_until(
        Duration::from_secs(5),
        || {
            pair.client.tcp_states(local.port(), false).is_empty()
                && pair.server.tcp_states(local.port(), true) == [TIME_WAIT]
        },
        || {
            format!(
                "no TIME_WAIT socket for {local}: client {:?}, server {:?}",
                pair.client.tcp_states(local.port(), false),
                pair.server.tcp_states(local.port(), true)
            )
        },
    );
    OldConnection { rcv_nxt: fin_seq.wrapping_add(1), tsval }
}

/// Drops what arrives in `netns` for TCP port `port` before TCP sees it
/// (nftables), as if the segments had been lost. False (after saying why)
/// where nft is missing or the kernel refuses the rule.
fn drop_arrivals(netns: &Netns, port: u16) -> bool {
    let rules = format!(
        "table inet rsttrace_test {{ chain input {{ type filter hook input priority 0; tcp dport {port} drop; }}; }}"
    );
    match netns.nft(&rules) {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skipped: the rate-limited reject: {why}");
            false
        }
    }
}

/// Two hosts behind one address (NAT) with unrelated timestamp clocks: a SYN
/// reuses a 4-tuple the server holds in TIME_WAIT with a sequence number
/// above the old connection's, which alone would make the kernel accept it,
/// but with a TSval older than the old connection's last. Only PAWS rejects
/// it (tcp_timewait_state_process: paws_reject), the same way on every
/// kernel: the SYN goes through the out-of-window ACK's rate limit, and
/// 6.16+ gives the drop the reason TCP_RFC7323_TW_PAWS.
///
/// First the answered reject: the TIME_WAIT socket sends the old
/// connection's ACK (TCP_TW_ACK, TCP_TW_ACK_OOW on 6.15+); the client, with
/// no socket on that port, resets it, and the RST kills the TIME_WAIT
/// socket. The captured RST carries the ACK's acknowledgement number: the
/// old connection's rcv_nxt (a SYN-ACK would have made it the SYN's
/// sequence number + 1). Then the reject whose ACK the rate limit holds back
/// (TCP_TW_SUCCESS, TcpExt.TCPACKSkippedTimeWait): the client drops what the
/// server sends to that port, a bare ACK outside the window starts the
/// limit's clock, and the SYN right after it gets no answer at all. The
/// kernel's PAWS counter (TcpExt.PAWSTimewait on 6.16+, PAWSEstab before)
/// counts both.
fn paws_rejects_an_old_timestamp(label: &str, client_ip: &'static str, server_ip: &'static str) {
    require_root();
    let traced = Traced::pair(label, &["--port", "8096"]);
    let pair = &traced.net;
    // The out-of-window ACK's rate limit (500 ms by default) outlasts the
    // test, however slow the machine.
    pair.server.sysctl("net.ipv4.tcp_invalid_ratelimit", "60000");
    let listener = pair.server.run("server", move || TcpListener::bind(addr(server_ip, PAWS_PORT)).unwrap());
    let server = listener.local_addr().unwrap();
    if !traced.daemon.sees_timewait_verdicts() {
        eprintln!(
            "skipped: strategy {} on this kernel cannot see TIME_WAIT verdicts (needs 6.11+ for tracepoints)",
            traced.daemon.strategy()
        );
        return;
    }
    let strategy = traced.daemon.strategy().to_string();
    let paws_counter = match pair.server.counter_if_present("TcpExt.PAWSTimewait") {
        Some(_) => "TcpExt.PAWSTimewait",
        None => "TcpExt.PAWSEstab",
    };
    let (paws_before, held_before) =
        (pair.server.counter(paws_counter), pair.server.counter("TcpExt.TCPACKSkippedTimeWait"));
    // The SYN's numbers: 2^20 above rcv_nxt, 2^20 older than the client's
    // last TSval.
    let syn = |old: &OldConnection| (old.rcv_nxt.wrapping_add(1 << 20), old.tsval.wrapping_sub(1 << 20));

    let answered = addr(client_ip, 40023);
    let old = closed_with_timestamps(pair, &listener, answered);
    let (answered_seq, answered_tsval) = syn(&old);
    pair.client.run("nat-peer", move || {
        send_segment(answered, server, answered_seq, Flags::Syn { tsval: Some(answered_tsval) })
    });
    // The client's RST kills the TIME_WAIT socket.
    wait_until(
        Duration::from_secs(10),
        || !pair.server.tcp_states(answered.port(), true).contains(&TIME_WAIT),
        || format!("the TIME_WAIT socket of {answered} outlived the SYN"),
    );

    let held = addr(client_ip, 40024);
    let old_held = closed_with_timestamps(pair, &listener, held);
    let (held_seq, held_tsval) = syn(&old_held);
    let rate_limited = drop_arrivals(&pair.client, held.port());
    if rate_limited {
        pair.client.run("nat-peer", move || {
            send_segment(held, server, held_seq, Flags::Ack(1));
            send_segment(held, server, held_seq, Flags::Syn { tsval: Some(held_tsval) });
        });
    }
    let observed = traced.stop();
    let (pair, records) = (&observed.net, &observed.records);
    // The kernel's own account: PAWS rejected the SYNs, and the rate limit
    // held back the second one's ACK.
    assert_eq!(pair.server.counter(paws_counter) - paws_before, 1 + rate_limited as u64, "{paws_counter}");
    let held_back = pair.server.counter("TcpExt.TCPACKSkippedTimeWait") - held_before;
    assert_eq!(held_back, rate_limited as u64, "TcpExt.TCPACKSkippedTimeWait");
    // The client's RST comes from no socket; the server sends none.
    observed.assert_resets_match(&pair.client, Arrivals::EndNoConnection, Sends::MaybeWithoutSocket);
    observed.assert_resets_match(&pair.server, Arrivals::EndNoConnection, Sends::FromFullSockets);
    let [rst] = observed.packets(&pair.server) else {
        panic!("one RST reached the server: {:?}", observed.packets(&pair.server))
    };
    assert_eq!((rst.src, rst.dst, rst.ack), (answered, server, None), "the client's RST: {rst}");
    assert_eq!(rst.seq, old.rcv_nxt, "the RST answers the old connection's ACK, not a SYN-ACK: {rst}");

    let finding = records.one("tw_collision", &pair.server, |r| r["remote"] == answered.to_string());
    assert_eq!(finding["verdict"], "paws_drop", "{finding}");
    assert_eq!(finding["local"], server.to_string());
    assert_eq!(finding["source"], strategy.as_str());
    assert_eq!(
        (finding["syn_seq"].as_u64(), finding["tw_rcv_nxt"].as_u64()),
        (Some(answered_seq.into()), Some(old.rcv_nxt.into()))
    );
    assert_eq!(finding["syn_timestamps"], true);
    assert_eq!(finding["tw_timestamps"], true);
    assert_eq!(finding["syn_tsval"], answered_tsval, "{finding}");
    // The evidence: the SYN's TSval is older than the socket's last.
    let ts_recent = finding["tw_ts_recent"].as_u64().unwrap_or_else(|| panic!("no tw_ts_recent: {finding}")) as u32;
    assert!(ts_recent.wrapping_sub(answered_tsval) as i32 > 0, "{finding}");
    assert_eq!(finding["peer_rst"], true, "{finding}");
    assert!(finding["advice"].as_str().unwrap().contains("(PAWS)"), "{finding}");
    let killed = records.one("tw_killed", &pair.server, |r| r["remote"] == answered.to_string());
    assert_eq!(killed["rst_seq"], rst.seq, "the captured RST: {rst}");

    if rate_limited {
        let unanswered = records.one("tw_collision", &pair.server, |r| r["remote"] == held.to_string());
        assert_eq!(unanswered["verdict"], "paws_drop", "{unanswered}");
        assert_eq!(unanswered["syn_seq"], held_seq, "{unanswered}");
        assert_eq!(unanswered["tw_rcv_nxt"], old_held.rcv_nxt, "{unanswered}");
        assert_eq!(unanswered["syn_tsval"], held_tsval, "{unanswered}");
        assert_eq!(unanswered["count"], 1, "the bare ACK is no SYN: {unanswered}");
        assert_ne!(unanswered["peer_rst"], true, "nothing killed the socket: {unanswered}");
        assert!(records.of("tw_killed", &pair.server).iter().all(|r| r["remote"] != held.to_string()));
        assert!(pair.server.tcp_states(held.port(), true).contains(&TIME_WAIT), "the socket is still there");
    }
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn paws_rejects_an_old_timestamp_ipv4() {
    paws_rejects_an_old_timestamp("paws4", Pair::CLIENT_V4, Pair::SERVER_V4);
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn paws_rejects_an_old_timestamp_ipv6() {
    paws_rejects_an_old_timestamp("paws6", Pair::CLIENT_V6, Pair::SERVER_V6);
}
