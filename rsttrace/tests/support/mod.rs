//! Shared by the integration tests: network namespace topologies, running
//! code inside a namespace, the rsttrace daemon as a child process, and the
//! fixture that runs both with a packet capture (`Traced`; `Captured` where
//! a test runs rsttrace its own way).
#![allow(dead_code)] // each test file uses a different part

mod capture;
pub mod segments;
// rsttrace's own /proc parser, so that tests and doctor read /proc alike.
#[path = "../../src/procfs.rs"]
pub mod procfs;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    os::{fd::AsFd, unix::fs::MetadataExt},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use nix::{
    sched::{CloneFlags, setns},
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::Value;
use socket2::{Domain, Socket, Type};

#[allow(unused_imports)] // by the stale-ACK tests only
pub use capture::Handshakes;
pub use capture::{Arrivals, Capture, ReusedSyn, RstPacket, Sends};

/// Integration tests load eBPF programs and create namespaces: root only.
/// They are `#[ignore]`d, so a plain `cargo test` lists them as ignored;
/// `cargo xtask test` runs them as root with `--include-ignored`. Started
/// without root anyway, one fails here, saying why.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (loads eBPF programs, creates network namespaces): run `cargo xtask test`"
    );
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (apt install iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(label: &str) -> Self {
        let name = format!("rst-{label}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The inode number rsttrace reports as `netns`.
    pub fn inode(&self) -> u64 {
        std::fs::metadata(self.path()).expect("netns file").ino()
    }

    /// Runs `f` on a thread that lives in this namespace (sockets it creates
    /// belong here). `thread_name` becomes the thread's comm.
    pub fn run<T: Send + 'static>(&self, thread_name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = std::fs::File::open(self.path()).expect("open netns");
        std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .expect("spawn")
            .join()
            .expect("thread in netns panicked")
    }

    /// TCP states (the kernel's numbers: 6 is TIME_WAIT) of this
    /// namespace's sockets whose local (or, with `remote`, peer) port is
    /// `port`, as /proc/net/tcp{,6} list them.
    pub fn tcp_states(&self, port: u16, remote: bool) -> Vec<u8> {
        self.tcp_sockets()
            .into_iter()
            .filter(|s| if remote { s.remote.port() } else { s.local.port() } == port)
            .map(|s| s.state)
            .collect()
    }

    /// This namespace's TCP sockets, as /proc/net/tcp{,6} list them.
    pub fn tcp_sockets(&self) -> Vec<procfs::TcpSocket> {
        self.run("proc-net-tcp", move || {
            ["tcp", "tcp6"]
                .iter()
                .filter_map(|table| std::fs::read_to_string(format!("/proc/thread-self/net/{table}")).ok())
                .flat_map(|text| procfs::tcp_sockets(&text).collect::<Vec<_>>())
                .collect()
        })
    }

    /// A counter of this namespace's /proc/net/netstat or /proc/net/snmp,
    /// named GROUP.Name as doctor shows it (`TcpExt.TCPAbortOnData`), read
    /// with rsttrace's own parser.
    pub fn counter(&self, name: &str) -> u64 {
        self.counter_if_present(name).unwrap_or_else(|| panic!("no counter {name}"))
    }

    /// The same, None where this kernel does not have the counter.
    pub fn counter_if_present(&self, name: &str) -> Option<u64> {
        let name = name.to_string();
        self.run("proc-net-netstat", move || {
            let (group, field) = name.split_once('.').expect("GROUP.Name");
            let mut tables = procfs::counter_tables(
                &std::fs::read_to_string("/proc/thread-self/net/netstat").expect("read /proc/net/netstat"),
            );
            tables.extend(procfs::counter_tables(
                &std::fs::read_to_string("/proc/thread-self/net/snmp").expect("read /proc/net/snmp"),
            ));
            let value = tables.get(group)?.get(field)?;
            Some(u64::try_from(*value).unwrap_or_else(|_| panic!("{name} is {value}")))
        })
    }

    /// Joins this namespace to `peer` with a veth pair: `dev` here,
    /// `peer_dev` there. Created straight inside the namespaces: names
    /// cannot collide.
    pub fn veth(&self, dev: &str, peer: &Netns, peer_dev: &str) {
        ip(&["link", "add", dev, "netns", &self.name, "type", "veth", "peer", "name", peer_dev, "netns", &peer.name]);
    }

    /// Gives `dev` these addresses ("10.77.0.1/24", "fd77::1/64") and brings
    /// it up. IPv6 ones skip duplicate address detection, so that they are
    /// usable at once.
    pub fn addresses(&self, dev: &str, cidrs: &[&str]) {
        for cidr in cidrs {
            let nodad: &[&str] = if cidr.contains(':') { &["nodad"] } else { &[] };
            ip(&[&["-n", &self.name, "addr", "add", cidr, "dev", dev], nodad].concat());
        }
        ip(&["-n", &self.name, "link", "set", dev, "up"]);
    }

    pub fn default_route(&self, via: &str) {
        ip(&["-n", &self.name, "route", "add", "default", "via", via]);
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_string();
        self.run("sysctl", move || std::fs::write(&path, value).expect("write sysctl"));
    }

    /// A listener on a free port of `ip` in this namespace.
    pub fn listen(&self, ip: &'static str) -> TcpListener {
        self.run("listener", move || TcpListener::bind(addr(ip, 0)).expect("bind a listener"))
    }

    /// Loads an nftables ruleset into this namespace; Err with what nft
    /// said when it refused.
    pub fn nft(&self, rules: &str) -> Result<(), String> {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(rules.as_bytes())?;
                child.wait_with_output()
            })
            .map_err(|e| format!("cannot run nft (apt install nftables; xtask/bootstrap.sh does): {e}"))?;
        if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).trim().to_string()) }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A client and a server namespace joined by a veth pair, with IPv4
/// 10.77.0.1 (client) / 10.77.0.2 (server) and IPv6 fd77::1 / fd77::2.
pub struct Pair {
    pub client: Netns,
    pub server: Netns,
}

impl Pair {
    pub const CLIENT_V4: &str = "10.77.0.1";
    pub const SERVER_V4: &str = "10.77.0.2";
    pub const CLIENT_V6: &str = "fd77::1";
    pub const SERVER_V6: &str = "fd77::2";

    pub fn new(label: &str) -> Self {
        Self::with_addresses(label, Self::CLIENT_V4, Self::SERVER_V4)
    }

    /// Same, with other IPv4 addresses (for address filters).
    pub fn with_addresses(label: &str, client_v4: &str, server_v4: &str) -> Self {
        let client = Netns::new(&format!("{label}-c"));
        let server = Netns::new(&format!("{label}-s"));
        client.veth("veth0", &server, "veth0");
        for (ns, v4, v6) in [(&client, client_v4, Self::CLIENT_V6), (&server, server_v4, Self::SERVER_V6)] {
            ns.addresses("veth0", &[&format!("{v4}/24"), &format!("{v6}/64")]);
        }
        Pair { client, server }
    }
}

/// Parses "1.2.3.4" / "fd77::2" with a port into a socket address.
pub fn addr(ip: &str, port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port)
}

/// The rsttrace binary under test, started with `--format json`.
pub struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub ready: Value,
}

impl Daemon {
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rsttrace"));
        command.args(["--format", "json"]).args(args);
        // The VM matrix runs the same tests with each hook strategy forced.
        if let Ok(strategy) = std::env::var("RSTTRACE_TEST_STRATEGY") {
            command.args(["--strategy", &strategy]);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start rsttrace");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
            let status = child.try_wait().ok().flatten();
            panic!("rsttrace printed no ready record within 30 s (exit status {status:?})")
        });
        let ready: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("ready line `{first}`: {e}"));
        assert_eq!(ready["kind"], "ready", "first line must be the ready record: {first}");
        Daemon { child, lines, ready }
    }

    /// Whether this kernel's tcp_send_reset fires for resets sent without a
    /// full socket (Linux 6.10+); the ready record lists the limitation.
    pub fn sees_socketless_resets(&self) -> bool {
        sees_socketless_resets(&self.ready)
    }

    /// Whether this strategy on this kernel sees what a TIME_WAIT socket
    /// does with a SYN (tracepoints need Linux 6.11+).
    pub fn sees_timewait_verdicts(&self) -> bool {
        !has_limitation(&self.ready, "timewait_rejections_unseen")
    }

    pub fn strategy(&self) -> &str {
        self.ready["strategy"].as_str().unwrap_or_default()
    }

    pub fn has_reset_reasons(&self) -> bool {
        !has_limitation(&self.ready, "reset_reason_unknown")
    }

    /// SIGTERM, then every record written after `ready` (the summary last).
    pub fn stop(mut self) -> Records {
        // Let records of the traffic just generated reach the ring buffer.
        std::thread::sleep(Duration::from_millis(200));
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut records = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            records
                .push(serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("bad JSON line `{line}`: {e}")));
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "rsttrace exited with {status} after SIGTERM");
        Records(records)
    }
}

/// Whether the ready record lists `code` in `limitation_codes`.
pub fn has_limitation(ready: &Value, code: &str) -> bool {
    ready["limitation_codes"].as_array().expect("the ready record's limitation_codes").iter().any(|c| c == code)
}

/// The ready record's sentence for `code`, to say why a test skips.
pub fn limitation(ready: &Value, code: &str) -> Option<String> {
    let codes = ready["limitation_codes"].as_array()?;
    let at = codes.iter().position(|c| c == code)?;
    ready["limitations"][at].as_str().map(String::from)
}

/// Whether received RSTs the kernel discards are reported (Linux 6.11+;
/// the ready record lists the limitation).
pub fn sees_discarded_resets(ready: &Value) -> bool {
    !has_limitation(ready, "discards_unseen") && !has_limitation(ready, "discards_without_state")
}

/// Whether some of them are, without state (Linux 5.17 to 6.10).
pub fn sees_discarded_resets_without_socket(ready: &Value) -> bool {
    has_limitation(ready, "discards_without_state")
}

fn sees_socketless_resets(ready: &Value) -> bool {
    !has_limitation(ready, "socketless_resets_unseen")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a daemon wrote, with helpers to select records.
#[derive(Debug)]
pub struct Records(pub Vec<Value>);

impl Records {
    /// Event records of `kind` seen in network namespace `netns`.
    pub fn of(&self, kind: &str, netns: &Netns) -> Vec<&Value> {
        let inode = netns.inode();
        self.0.iter().filter(|r| r["kind"] == kind && r["netns"].as_u64() == Some(inode)).collect()
    }

    /// Exactly one record of `kind` in `netns` matching `pred`; panics with
    /// everything seen in that namespace otherwise.
    pub fn one(&self, kind: &str, netns: &Netns, pred: impl Fn(&Value) -> bool) -> &Value {
        let found: Vec<&Value> = self.of(kind, netns).into_iter().filter(|r| pred(r)).collect();
        assert_eq!(
            found.len(),
            1,
            "expected exactly one {kind} in {}; all records there:\n{}",
            netns.name,
            self.dump(netns)
        );
        found[0]
    }

    pub fn summary(&self) -> &Value {
        let last = self.0.last().expect("no records at all");
        assert_eq!(last["kind"], "summary", "last record must be the summary: {last}");
        last
    }

    /// The records of `netns`, then the summary (what was lost or could not
    /// be read counts there).
    pub fn dump(&self, netns: &Netns) -> String {
        let inode = netns.inode();
        self.0
            .iter()
            .filter(|r| r["netns"].as_u64() == Some(inode) || r["kind"] == "summary")
            .map(|r| format!("  {r}\n"))
            .collect()
    }
}

/// The namespaces a test captures in: a `Pair`, one `Netns`, or a tuple of
/// those.
pub trait Namespaces {
    fn namespaces(&self) -> Vec<&Netns>;
}

impl Namespaces for Netns {
    fn namespaces(&self) -> Vec<&Netns> {
        vec![self]
    }
}

impl Namespaces for Pair {
    fn namespaces(&self) -> Vec<&Netns> {
        vec![&self.client, &self.server]
    }
}

impl<A: Namespaces, B: Namespaces> Namespaces for (A, B) {
    fn namespaces(&self) -> Vec<&Netns> {
        let mut all = self.0.namespaces();
        all.extend(self.1.namespaces());
        all
    }
}

/// A test's namespaces with tcpdump capturing RSTs in each (started first,
/// and capturing before anything else happens) and rsttrace running.
pub struct Traced<N: Namespaces> {
    pub net: N,
    pub daemon: Daemon,
    captures: Vec<Capture>,
}

impl Traced<Pair> {
    /// A new client/server pair (`Pair::new`), captured and traced.
    pub fn pair(label: &str, daemon_args: &[&str]) -> Self {
        Self::start(Pair::new(label), daemon_args)
    }
}

impl<N: Namespaces> Traced<N> {
    pub fn start(net: N, daemon_args: &[&str]) -> Self {
        let Captured { net, captures } = Captured::start(net);
        let daemon = Daemon::start(daemon_args);
        Traced { net, daemon, captures }
    }

    /// Stops rsttrace, then the captures (once each has written everything
    /// up to now).
    pub fn stop(self) -> Observed<N> {
        let Traced { net, daemon, captures } = self;
        let ready = daemon.ready.clone();
        let records = daemon.stop();
        Captured { net, captures }.stop(records, ready)
    }
}

/// A test's namespaces with tcpdump capturing RSTs in each, and no rsttrace
/// of the fixture's: for a test that runs rsttrace its own way (as a
/// service writing to journald, say) and reads the records back itself.
/// `Traced` is this plus the daemon on stdout.
pub struct Captured<N: Namespaces> {
    pub net: N,
    captures: Vec<Capture>,
}

impl<N: Namespaces> Captured<N> {
    /// Returns once every namespace is being captured: start rsttrace after.
    pub fn start(net: N) -> Self {
        let captures = net.namespaces().into_iter().map(Capture::start).collect();
        Captured { net, captures }
    }

    /// Stops the captures (once each has written everything up to now) and
    /// sets them beside what rsttrace wrote: its event records (in the JSON
    /// form) and its ready record, which says what this kernel lets it see.
    pub fn stop(self, records: Records, ready: Value) -> Observed<N> {
        let Captured { net, captures } = self;
        let packets = net.namespaces().into_iter().zip(captures).map(|(ns, c)| (ns.name.clone(), c.stop(ns))).collect();
        Observed { net, records, ready, packets }
    }
}

/// What a traced test produced: rsttrace's records and the RSTs captured.
pub struct Observed<N: Namespaces> {
    pub net: N,
    pub records: Records,
    pub ready: Value,
    /// Per namespace name.
    packets: Vec<(String, Vec<RstPacket>)>,
}

impl<N: Namespaces> Observed<N> {
    /// Whether this strategy on this kernel reports accepted TIME_WAIT
    /// reuse (tracepoints need the ISN proof of Linux 6.12+).
    pub fn sees_accepted_reuse(&self) -> bool {
        !has_limitation(&self.ready, "accepted_reuse_unseen")
    }

    pub fn strategy(&self) -> &str {
        self.ready["strategy"].as_str().unwrap_or_default()
    }

    /// Whether the kernel traced resets sent without a full socket (6.10+).
    pub fn sees_socketless_resets(&self) -> bool {
        sees_socketless_resets(&self.ready)
    }

    /// The RSTs captured in `netns`, in capture order.
    pub fn packets(&self, netns: &Netns) -> &[RstPacket] {
        let found = self.packets.iter().find(|(name, _)| *name == netns.name);
        &found.unwrap_or_else(|| panic!("{} was not captured", netns.name)).1
    }

    /// rsttrace's resets in `netns` are the captured RSTs, count for count
    /// per 4-tuple: see `capture::compare`.
    pub fn assert_resets_match(&self, netns: &Netns, arrivals: Arrivals, sends: Sends) {
        self.assert_resets_match_where(netns, arrivals, sends, &|_| true);
    }

    /// The same for the RSTs `reported` keeps (what rsttrace's --port and
    /// --addr filters let through).
    pub fn assert_resets_match_where(
        &self,
        netns: &Netns,
        arrivals: Arrivals,
        sends: Sends,
        reported: &dyn Fn(&RstPacket) -> bool,
    ) {
        let socketless = sees_socketless_resets(&self.ready);
        let discards = sees_discarded_resets(&self.ready);
        capture::compare(netns, &self.records, self.packets(netns), socketless, discards, arrivals, sends, reported);
    }
}

/// Where the ready record says accepted reuse is not reported (the
/// tracepoint strategy without the ISN proof): checks that none was, and
/// says the test is skipped.
pub fn reuse_unseen_here<N: Namespaces>(observed: &Observed<N>, reuse: &[&Value]) -> bool {
    if observed.sees_accepted_reuse() {
        return false;
    }
    assert!(reuse.is_empty(), "accepted reuse reported where the ready record says it is not: {reuse:?}");
    eprintln!(
        "skipped: strategy {} on this kernel does not report accepted reuse (the ready record's limitation); none was reported",
        observed.strategy()
    );
    true
}

/// Polls `done` every millisecond until it holds; after `within`, fails the
/// test with what `failure` says (read then, so it shows the last state).
pub fn wait_until(within: Duration, mut done: impl FnMut() -> bool, failure: impl FnOnce() -> String) {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            panic!("{}", failure());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sets SO_LINGER {on, 0}: close() then aborts with an RST.
pub fn linger_zero(stream: &std::net::TcpStream) {
    nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::Linger, &libc::linger { l_onoff: 1, l_linger: 0 })
        .expect("SO_LINGER");
}

/// A client socket bound to `local` (SO_REUSEADDR), connected to `server`.
pub fn connect_from(local: SocketAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(server), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&local.into())?;
    socket.connect_timeout(&server.into(), Duration::from_secs(10))?;
    Ok(socket.into())
}

/// The least `outrun_the_isn_clock` sends on a stale-ACK scenario's first
/// try; each try after doubles it.
pub const FIRST_TRANSFER: usize = 32 << 20;

/// How many times `with_stale_acks` tries.
const STALE_ACK_TRIES: u32 = 5;

/// Sends enough on `stream` that the next ISN of its 4-tuple stays below
/// this connection's last sequence number (a reused port's SYN then gets a
/// stale ACK from the TIME_WAIT socket): 48 MB per second of transfer
/// outruns the ISN clock (15.6 M/s), and `at_least` (32 MiB: ~2 s of the
/// clock) more covers the time between this connect and the next (a loaded
/// machine, or QEMU). Never 2 GiB, half the sequence space: past it the
/// next ISN is "after" rcv_nxt again and the kernel accepts the SYN (a
/// loaded QEMU below 48 MB/s kept sending that long); `at_least` stays
/// below the 1 GiB this stops at.
pub fn outrun_the_isn_clock(stream: &mut TcpStream, at_least: usize) {
    let started = Instant::now();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0usize;
    while sent < 1 << 30 && (sent < at_least || (sent as f64) < 48e6 * started.elapsed().as_secs_f64()) {
        stream.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
}

/// A scenario whose reused port's SYNs must get stale ACKs: each numbered at
/// or below the old connection's rcv_nxt, which only a transfer that
/// outruns the ISN clock until the SYN makes true, and a slow machine may
/// not. `attempt(bytes)` runs it afresh (its own namespaces, rsttrace and
/// captures), calling `outrun_the_isn_clock` with `bytes` before each
/// reuse, and returns what it observed with the reused SYNs its
/// `Handshakes` capture saw, or None where it cannot run (having said why).
///
/// Returns the first attempt where every reused SYN was stale. Where one
/// was not, the kernel rightly accepted it: the attempt proves nothing
/// either way, and is tried again sending twice as much, up to
/// `STALE_ACK_TRIES` times. Then it says `skipped:` with the numbers and
/// returns None.
pub fn with_stale_acks<T>(
    mut attempt: impl FnMut(usize) -> Option<(T, Vec<ReusedSyn>)>,
) -> Option<(T, Vec<ReusedSyn>)> {
    let mut bytes = FIRST_TRANSFER;
    for tries in 1..=STALE_ACK_TRIES {
        let (observed, syns) = attempt(bytes)?;
        let said: Vec<String> = syns.iter().map(|s| s.to_string()).collect();
        let Some(accepted) = syns.iter().find(|s| !s.stale()) else {
            eprintln!("stale ACKs on try {tries} (at least {} MiB): {}", bytes >> 20, said.join("; "));
            return Some((observed, syns));
        };
        eprintln!("try {tries} (at least {} MiB) proves nothing: {}", bytes >> 20, said.join("; "));
        if tries == STALE_ACK_TRIES {
            eprintln!(
                "skipped: no stale ACK in {tries} tries (transfers of at least {} to {} MiB): the ISN clock outran them; the last {accepted}",
                FIRST_TRANSFER >> 20,
                bytes >> 20
            );
            break;
        }
        bytes *= 2;
    }
    None
}

/// TCP state number of TIME_WAIT in /proc/net/tcp.
pub const FIN_WAIT2: u8 = 5;
pub const TIME_WAIT: u8 = 6;

/// One connection from `local` that the server closes first, leaving it in
/// TIME_WAIT on the server. Enough data goes through that the client's next
/// ISN (which advances ~15.6 M per second) stays below the old rcv_nxt.
/// Returns once the client's socket is gone, with whether the server holds
/// the connection in TIME_WAIT (rarely it does not: then it says why).
pub fn connection_closed_by_server(pair: &Pair, listener: &TcpListener, local: SocketAddr, bulk: bool) -> bool {
    connection_closed_by_server_sending(pair, listener, local, bulk.then_some(FIRST_TRANSFER))
}

/// The same, with `bulk` for `outrun_the_isn_clock` when given.
pub fn connection_closed_by_server_sending(
    pair: &Pair,
    listener: &TcpListener,
    local: SocketAddr,
    bulk: Option<usize>,
) -> bool {
    let server_sockets = closed_by_server(pair, listener, local, bulk);
    if server_sockets.contains(&TIME_WAIT) {
        return true;
    }
    let nstat = Command::new("ip").args(["netns", "exec", &pair.server.name, "nstat", "-a"]).output();
    let nstat = nstat.map(|o| String::from_utf8_lossy(&o.stdout).replace('\n', "; ")).unwrap_or_default();
    eprintln!(
        "the server did not keep the connection from {local} in TIME_WAIT ({server_sockets:?}); its counters: {nstat}"
    );
    false
}

/// The same connection (with `bulk` for `outrun_the_isn_clock` when given);
/// returns the TCP states of the server's sockets for it (/proc/net/tcp)
/// once the client's socket is gone.
pub fn closed_by_server(pair: &Pair, listener: &TcpListener, local: SocketAddr, bulk: Option<usize>) -> Vec<u8> {
    let server = listener.local_addr().unwrap();
    let mut stream = pair.client.run("lb", move || connect_from(local, server).expect("first connection"));
    let (mut accepted, _) = listener.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = accepted.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
            if buf[n - 1] == b'.' {
                break;
            }
        }
        drop(accepted); // the server closes first
        total
    });
    if let Some(bulk) = bulk {
        outrun_the_isn_clock(&mut stream, bulk);
    }
    stream.write_all(b".").unwrap();
    reader.join().unwrap();
    // The server's FIN: the client sees EOF, then closes its side.
    assert_eq!(stream.read(&mut [0u8; 1]).unwrap(), 0);
    drop(stream);
    // The last ACK may still be on its way (the kernel defers packet
    // processing under load): until it arrives the client's socket holds
    // the port, and the server's may not be in TIME_WAIT yet. Once the
    // client's is gone the server has handled the client's FIN: it holds a
    // TIME_WAIT socket, or none at all (killed, or tcp_max_tw_buckets).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let client_sockets = pair.client.tcp_states(local.port(), false);
        let server_sockets = pair.server.tcp_states(local.port(), true);
        let settled = server_sockets.contains(&TIME_WAIT) || server_sockets.is_empty();
        if client_sockets.is_empty() && settled {
            return server_sockets;
        }
        if Instant::now() >= deadline {
            assert!(
                client_sockets.is_empty(),
                "the client's connection from {local} did not close: {client_sockets:?}"
            );
            return server_sockets;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
