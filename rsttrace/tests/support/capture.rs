//! The ground truth for tests that assert on resets: tcpdump captures every
//! RST in a test's network namespaces while rsttrace runs, and the records
//! are compared with the packets, count for count, so that a phantom or a
//! missing record fails the test.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    io::{BufRead, BufReader},
    net::{IpAddr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use pcap_file::{DataLink, pcap::PcapReader};
use serde_json::Value;

use super::{Netns, Records};

/// The UDP port of the datagram that marks the end of a capture (nothing
/// listens there; only the capture looks at it).
const MARK_PORT: u16 = 47999;

/// RSTs over IPv4 and IPv6 (libpcap's `tcp[]` is IPv4 only: the IPv6 clause
/// reads the flags behind a fixed header), and the end-of-capture mark.
const FILTER: &str = "(tcp[tcpflags] & tcp-rst != 0) \
    or (ip6 and ip6[6] == 6 and ip6[53] & 4 != 0) \
    or (udp and dst host 127.0.0.1 and dst port 47999)";

/// SYNs and FINs (the IPv6 clause as above), and the mark: a few per
/// connection, however much data it carries.
const HANDSHAKES: &str = "(tcp[tcpflags] & (tcp-syn|tcp-fin) != 0) \
    or (ip6 and ip6[6] == 6 and ip6[53] & 3 != 0) \
    or (udp and dst host 127.0.0.1 and dst port 47999)";

/// How long tcpdump may take to start or to write the mark (QEMU is slow).
const PATIENCE: Duration = Duration::from_secs(60);

/// One TCP segment with RST set, as captured in a namespace.
#[derive(Clone, Debug)]
pub struct RstPacket {
    /// Capture time (wall clock).
    pub time: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Sent from the namespace, or arriving in it.
    pub outgoing: bool,
    pub seq: u32,
    /// The acknowledgement number, when ACK is set too.
    pub ack: Option<u32>,
    pub interface: Option<u32>,
}

impl RstPacket {
    /// (local, remote) as seen from the capturing namespace, as rsttrace
    /// writes them.
    pub fn tuple(&self) -> (String, String) {
        if self.outgoing {
            (self.src.to_string(), self.dst.to_string())
        } else {
            (self.dst.to_string(), self.src.to_string())
        }
    }

    pub fn has_port(&self, port: u16) -> bool {
        self.src.port() == port || self.dst.port() == port
    }
}

impl fmt::Display for RstPacket {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let direction = if self.outgoing { "sent" } else { "arrived" };
        write!(f, "{:.6} {} > {} R seq {}", self.time.as_secs_f64(), self.src, self.dst, self.seq)?;
        if let Some(ack) = self.ack {
            write!(f, " ack {ack}")?;
        }
        write!(f, " ({direction}")?;
        if let Some(index) = self.interface {
            write!(f, " on ifindex {index}")?;
        }
        write!(f, ")")
    }
}

/// tcpdump writing the RSTs of one namespace to a file.
pub struct Capture {
    netns: String,
    /// What it captures ("rst", "handshakes"): in its file's name and mark.
    what: &'static str,
    child: Child,
    file: PathBuf,
    stderr: mpsc::Receiver<String>,
}

impl Capture {
    /// Starts tcpdump in `netns` and returns once it is capturing.
    pub fn start(netns: &Netns) -> Self {
        Self::start_filtered(netns, "rst", FILTER)
    }

    fn start_filtered(netns: &Netns, what: &'static str, filter: &str) -> Self {
        let file = std::env::temp_dir().join(format!("{}-{what}.pcap", netns.name));
        let _ = std::fs::remove_file(&file);
        let mut child = Command::new("ip")
            // A 32 MiB buffer: the storm tests send hundreds of RSTs at once.
            .args(["netns", "exec", &netns.name, "tcpdump", "-i", "any", "-n", "-U", "--immediate-mode", "-B", "32768"])
            // Stay root: the file is ours, and the QEMU guests know no
            // tcpdump user to switch to.
            .args(["-Z", "root", "-w"])
            .arg(&file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump (apt install tcpdump; xtask/bootstrap.sh does)");
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut capture = Capture { netns: netns.name.clone(), what, child, file, stderr };
        // tcpdump says so once its filter is set on the open socket: from
        // then on every packet is captured.
        let deadline = Instant::now() + PATIENCE;
        let mut said = Vec::new();
        loop {
            match capture.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("listening on") => return capture,
                Ok(line) => said.push(line),
                Err(_) => {
                    let status = capture.child.try_wait().ok().flatten();
                    panic!("tcpdump in {} is not capturing (exit status {status:?}): {}", netns.name, said.join("; "))
                }
            }
        }
    }

    /// Marks the end of the traffic, waits until tcpdump has written the
    /// mark (so it has written everything before it), stops it and returns
    /// the RSTs it captured.
    pub fn stop(self, netns: &Netns) -> Vec<RstPacket> {
        self.finish(netns)
            .into_iter()
            .filter_map(|p| match p {
                Captured::Rst(rst) => Some(rst),
                _ => None,
            })
            .collect()
    }

    /// The same, returning every packet captured but the mark.
    fn finish(mut self, netns: &Netns) -> Vec<Captured> {
        let mark = format!("end of capture {} {}", self.netns, self.what);
        let deadline = Instant::now() + PATIENCE;
        let packets = loop {
            let payload = mark.clone().into_bytes();
            netns.run("capture-mark", move || {
                let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the mark's socket");
                socket.send_to(&payload, ("127.0.0.1", MARK_PORT)).expect("send the mark");
            });
            std::thread::sleep(Duration::from_millis(50));
            // Read while tcpdump may still be writing: an error is a packet
            // half written, and the mark is not there yet either.
            if let Ok(captured) = read_pcap(&self.file)
                && captured.iter().any(|p| matches!(p, Captured::Mark(m) if *m == mark.as_bytes()))
            {
                break captured;
            }
            assert!(Instant::now() < deadline, "tcpdump in {} did not record the end mark in time", self.netns);
        };
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        let stats: Vec<String> = self.stderr.iter().collect();
        let dropped = stats.iter().find(|l| l.contains("dropped by kernel"));
        assert!(
            dropped.is_some_and(|l| l.starts_with("0 ")),
            "tcpdump in {} lost packets or did not say ({status}): {}",
            self.netns,
            stats.join("; ")
        );
        let _ = std::fs::remove_file(&self.file);
        packets.into_iter().filter(|p| !matches!(p, Captured::Mark(_))).collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Captured {
    Rst(RstPacket),
    /// A SYN or a FIN without RST (only a `Handshakes` capture has them).
    Segment(Segment),
    Mark(Vec<u8>),
}

struct Segment {
    time: Duration,
    src: SocketAddr,
    dst: SocketAddr,
    outgoing: bool,
    seq: u32,
    /// Its data's length.
    len: u32,
    syn: bool,
    fin: bool,
    ack: bool,
}

/// The loopback device's index, the same in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// The packets of a pcap file that tcpdump wrote with `-i any` (Linux
/// cooked capture, v1 or v2: both say which way the packet went).
fn read_pcap(path: &Path) -> Result<Vec<Captured>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut reader = PcapReader::new(file).map_err(|e| e.to_string())?;
    let datalink = reader.header().datalink;
    let mut packets = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.map_err(|e| e.to_string())?;
        let data: &[u8] = &packet.data;
        let be16 = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
        // Linux's PACKET_OUTGOING; anything else arrived.
        const OUTGOING: u16 = 4;
        let (outgoing, interface, ip) = match datalink {
            DataLink::LINUX_SLL if data.len() >= 16 => (be16(0) == OUTGOING, None, &data[16..]),
            DataLink::LINUX_SLL2 if data.len() >= 20 => {
                let index = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                (u16::from(data[10]) == OUTGOING, Some(index), &data[20..])
            }
            DataLink::LINUX_SLL | DataLink::LINUX_SLL2 => return Err("short cooked header".into()),
            other => panic!("tcpdump -i any wrote link type {other:?}, not Linux cooked capture"),
        };
        let sliced = SlicedPacket::from_ip(ip).map_err(|e| format!("packet at {:?}: {e}", packet.timestamp))?;
        let (src, dst): (IpAddr, IpAddr) = match &sliced.net {
            Some(NetSlice::Ipv4(v4)) => (v4.header().source_addr().into(), v4.header().destination_addr().into()),
            Some(NetSlice::Ipv6(v6)) => (v6.header().source_addr().into(), v6.header().destination_addr().into()),
            _ => continue,
        };
        match &sliced.transport {
            Some(TransportSlice::Tcp(tcp)) if tcp.rst() => {
                let rst = RstPacket {
                    time: packet.timestamp,
                    src: SocketAddr::new(src, tcp.source_port()),
                    dst: SocketAddr::new(dst, tcp.destination_port()),
                    outgoing,
                    seq: tcp.sequence_number(),
                    ack: tcp.ack().then(|| tcp.acknowledgment_number()),
                    interface,
                };
                // On loopback (ifindex 1 in every namespace) tcpdump sees a
                // segment once, arriving, yet this namespace also sent it.
                if interface == Some(LOOPBACK_IFINDEX) && !outgoing {
                    packets.push(Captured::Rst(RstPacket { outgoing: true, ..rst.clone() }));
                }
                packets.push(Captured::Rst(rst));
            }
            Some(TransportSlice::Tcp(tcp)) if tcp.syn() || tcp.fin() => packets.push(Captured::Segment(Segment {
                time: packet.timestamp,
                src: SocketAddr::new(src, tcp.source_port()),
                dst: SocketAddr::new(dst, tcp.destination_port()),
                outgoing,
                seq: tcp.sequence_number(),
                len: tcp.payload().len() as u32,
                syn: tcp.syn(),
                fin: tcp.fin(),
                ack: tcp.ack(),
            })),
            Some(TransportSlice::Udp(udp)) if udp.destination_port() == MARK_PORT => {
                packets.push(Captured::Mark(udp.payload().to_vec()))
            }
            _ => {}
        }
    }
    Ok(packets)
}

/// tcpdump writing the SYNs and FINs of one namespace: what a SYN that reuses
/// a 4-tuple met at a TIME_WAIT socket there.
pub struct Handshakes(Capture);

impl Handshakes {
    /// Starts capturing in `netns`; returns once tcpdump is capturing.
    pub fn start(netns: &Netns) -> Self {
        Handshakes(Capture::start_filtered(netns, "handshakes", HANDSHAKES))
    }

    /// Stops the capture (once it has written everything up to now) and
    /// returns each SYN that arrived in `netns` on a 4-tuple whose earlier
    /// connection's FIN had arrived there before it, in capture order (a
    /// SYN sent again counts once).
    pub fn stop(self, netns: &Netns) -> Vec<ReusedSyn> {
        // Per 4-tuple: the last SYN that opened a connection, and the
        // rcv_nxt its FIN left (the FIN ends the sequence space it uses).
        let mut opened: HashMap<(SocketAddr, SocketAddr), (Duration, u32)> = HashMap::new();
        let mut closed: HashMap<(SocketAddr, SocketAddr), (Duration, u32, u32)> = HashMap::new();
        let mut reused = Vec::new();
        for captured in self.0.finish(netns) {
            let Captured::Segment(s) = captured else { continue };
            let tuple = (s.src, s.dst);
            if s.outgoing {
                continue;
            }
            if s.fin {
                // A connection opened before the capture is none of ours.
                if let Some(&(time, isn)) = opened.get(&tuple) {
                    closed.insert(tuple, (time, isn, s.seq.wrapping_add(s.len).wrapping_add(1)));
                }
            } else if s.syn && !s.ack {
                if let Some((old_syn, old_isn, rcv_nxt)) = closed.remove(&tuple) {
                    reused.push(ReusedSyn {
                        from: s.src,
                        to: s.dst,
                        seq: s.seq,
                        rcv_nxt,
                        // Less the SYN's and the FIN's sequence numbers.
                        sent: rcv_nxt.wrapping_sub(old_isn).wrapping_sub(2),
                        after: s.time.saturating_sub(old_syn),
                    });
                }
                opened.insert(tuple, (s.time, s.seq));
            }
        }
        reused
    }
}

/// A SYN that reused a 4-tuple, as captured where it arrived.
#[derive(Clone, Copy, Debug)]
pub struct ReusedSyn {
    pub from: SocketAddr,
    pub to: SocketAddr,
    /// Its sequence number.
    pub seq: u32,
    /// What the earlier connection's FIN left its TIME_WAIT socket
    /// expecting next: the FIN's sequence number, its data, and 1.
    pub rcv_nxt: u32,
    /// How much data the earlier connection carried to `to`.
    pub sent: u32,
    /// How long after the earlier connection's SYN it came.
    pub after: Duration,
}

impl ReusedSyn {
    /// Whether a TIME_WAIT socket without timestamps answers it with a stale
    /// ACK: the kernel accepts such a SYN only numbered after rcv_nxt
    /// (tcp_timewait_state_process), in sequence space.
    pub fn stale(&self) -> bool {
        self.seq.wrapping_sub(self.rcv_nxt) as i32 <= 0
    }
}

impl fmt::Display for ReusedSyn {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "SYN {} > {} seq {}, {} rcv_nxt {} by {} (the earlier connection carried {} MiB; {:.2} s between their SYNs)",
            self.from,
            self.to,
            self.seq,
            if self.stale() { "at or below" } else { "above" },
            self.rcv_nxt,
            (self.seq.wrapping_sub(self.rcv_nxt) as i32).unsigned_abs(),
            self.sent >> 20,
            self.after.as_secs_f64()
        )
    }
}

/// Which RSTs arriving in a namespace rsttrace must report as `rst_received`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrivals {
    /// Each one reaches a full socket and ends its connection (the kernel's
    /// tcp_reset): each has its record.
    EndConnections,
    /// None ends a connection (they kill TIME_WAIT sockets, or find no
    /// socket): none may have a record with outcome `reset`.
    EndNoConnection,
    /// Some end connections, some do not: only the accounting of every
    /// arrival (kernels that show discarded RSTs) and the absence of
    /// phantoms are checked.
    Mixed,
}

/// Where the RSTs a namespace sends come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sends {
    /// Full sockets, which every kernel's tcp_send_reset traces.
    FromFullSockets,
    /// Possibly no socket (closed port) or a TIME_WAIT socket, which
    /// tcp_send_reset traces only since Linux 6.10 (the ready record's
    /// limitations say so).
    MaybeWithoutSocket,
}

/// (local, remote) -> how many.
type Tally = BTreeMap<(String, String), usize>;

fn tally<'a>(tuples: impl Iterator<Item = (String, String)> + 'a) -> Tally {
    let mut tally = Tally::new();
    for tuple in tuples {
        *tally.entry(tuple).or_default() += 1;
    }
    tally
}

/// What `more` has beyond `less`, tuple by tuple: "local remote xN".
fn excess(more: &Tally, less: &Tally) -> Vec<String> {
    more.iter()
        .filter_map(|(tuple, &n)| {
            let m = less.get(tuple).copied().unwrap_or(0);
            (n > m).then(|| format!("{} <-> {} x{}", tuple.0, tuple.1, n - m))
        })
        .collect()
}

/// Compares the `rst_sent` and `rst_received` records of `netns` with the
/// RSTs captured there that `reported` keeps (rsttrace's own filters leave
/// the others out): every record has its packet (no phantom), and every
/// packet that the scenario says rsttrace can see has its record, as many
/// records as packets per 4-tuple. A half the kernel cannot see
/// (`socketless_visible` false) is skipped with a `skipped:` line when it
/// would fail.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    netns: &Netns,
    records: &Records,
    packets: &[RstPacket],
    socketless_visible: bool,
    discards_visible: bool,
    arrivals: Arrivals,
    sends: Sends,
    reported: &dyn Fn(&RstPacket) -> bool,
) {
    let kept: Vec<&RstPacket> = packets.iter().filter(|p| reported(p)).collect();
    let tuple_of = |r: &Value| {
        (r["local"].as_str().unwrap_or_default().to_string(), r["remote"].as_str().unwrap_or_default().to_string())
    };
    // A storm's resets counted in the kernel come as one record with
    // `count` and the first one's ports: where a kind has such records, both
    // sides are compared by address pair, counts added up.
    // (Discarded RSTs are always aggregated, and compared below.)
    let aggregated = |kind: &str| {
        records
            .of(kind, netns)
            .iter()
            .any(|r| r["interval_ms"].is_u64() && (kind == "rst_sent" || r["outcome"] == "reset"))
    };
    let by_addresses = |(local, remote): (String, String)| {
        let ip = |a: String| a.parse::<SocketAddr>().map(|a| a.ip().to_string()).unwrap_or(a);
        (ip(local), ip(remote))
    };
    let (coarse_sent, coarse_received) = (aggregated("rst_sent"), aggregated("rst_received"));
    let key = move |coarse: bool, tuple: (String, String)| if coarse { by_addresses(tuple) } else { tuple };
    let record_tally = |kind: &str, coarse: bool, keep: &dyn Fn(&Value) -> bool| {
        let mut tally = Tally::new();
        for r in records.of(kind, netns).into_iter().filter(|r| keep(r)) {
            *tally.entry(key(coarse, tuple_of(r))).or_default() += r["count"].as_u64().unwrap_or(1) as usize;
        }
        tally
    };
    let sent_packets = tally(kept.iter().filter(|p| p.outgoing).map(|p| key(coarse_sent, p.tuple())));
    let arrived_packets = tally(kept.iter().filter(|p| !p.outgoing).map(|p| key(coarse_received, p.tuple())));
    let sent_records = record_tally("rst_sent", coarse_sent, &|_| true);
    // The RSTs that ended a connection.
    let received_records = record_tally("rst_received", coarse_received, &|r| r["outcome"] == "reset");
    let evidence = || {
        let captured: String = packets.iter().map(|p| format!("  {p}\n")).collect();
        format!("RSTs captured in {}:\n{captured}records there:\n{}", netns.name, records.dump(netns))
    };

    let phantoms = excess(&sent_records, &sent_packets);
    assert!(
        phantoms.is_empty(),
        "rst_sent records without an RST sent from {}: {phantoms:?}\n{}",
        netns.name,
        evidence()
    );
    let phantoms = excess(&received_records, &arrived_packets);
    assert!(
        phantoms.is_empty(),
        "rst_received records without an RST arriving in {}: {phantoms:?}\n{}",
        netns.name,
        evidence()
    );

    let unreported = excess(&sent_packets, &sent_records);
    if !unreported.is_empty() && sends == Sends::MaybeWithoutSocket && !socketless_visible {
        eprintln!(
            "skipped: RSTs sent from {} without their rst_sent record ({}): this kernel's tcp_send_reset misses resets sent without a full socket (before 6.10)",
            netns.name,
            // A storm's would fill the screen.
            if unreported.len() > 5 {
                format!("{}, … {} more", unreported[..5].join(", "), unreported.len() - 5)
            } else {
                unreported.join(", ")
            }
        );
    } else {
        assert!(
            unreported.is_empty(),
            "RSTs sent from {} without an rst_sent record: {unreported:?}\n{}",
            netns.name,
            evidence()
        );
    }

    if discards_visible {
        // Every RST that arrived is accounted for: it ended a connection,
        // was discarded, or killed a TIME_WAIT socket.
        // By address pair: aggregated records (discarded RSTs, storms) carry
        // the ports of their first RST only.
        let peer = by_addresses;
        let mut accounted = Tally::new();
        for r in records.of("rst_received", netns) {
            *accounted.entry(peer(tuple_of(r))).or_default() += r["count"].as_u64().unwrap_or(1) as usize;
        }
        for r in records.of("tw_killed", netns) {
            *accounted.entry(peer(tuple_of(r))).or_default() += 1;
        }
        let arrived = tally(kept.iter().filter(|p| !p.outgoing).map(|p| peer(p.tuple())));
        let (unaccounted, phantoms) = (excess(&arrived, &accounted), excess(&accounted, &arrived));
        assert!(
            unaccounted.is_empty() && phantoms.is_empty(),
            "RSTs arriving in {} and the records accounting for them (rst_received by count, tw_killed) differ: arrived without a record {unaccounted:?}, records without an RST {phantoms:?}\n{}",
            netns.name,
            evidence()
        );
    }

    match arrivals {
        Arrivals::EndConnections => {
            let unreported = excess(&arrived_packets, &received_records);
            assert!(
                unreported.is_empty(),
                "RSTs arriving in {} that ended a connection without an rst_received record: {unreported:?}\n{}",
                netns.name,
                evidence()
            );
        }
        Arrivals::EndNoConnection => assert!(
            received_records.is_empty(),
            "no RST arriving in {} ended a connection, yet rsttrace reports outcome reset for {received_records:?}\n{}",
            netns.name,
            evidence()
        ),
        Arrivals::Mixed => {}
    }
}
