//! Prometheus metrics (`--metrics ADDR:PORT`): the summary's counts as
//! counters a Prometheus server can scrape, sum across hosts and alert on.
//!
//! They are counted from the same typed reports, at the same place and in
//! the same way as the summary (before filters and aggregation; a
//! `tw_collision` record stands for `count` SYNs), so each one equals the
//! summary's figure at the same moment. The kernel's own counters (records
//! lost, read errors, missed runs) are copied from the summary, which the
//! daemon refreshes from the kernel on every tick while metrics are on.
//!
//! Label values are bounded: directions, the kernel's reason and state
//! names, verdicts, and, only for the local ports named with
//! `--metrics-port-label`, those ports (every other port is `other`). No
//! address ever becomes a label.
//!
//! Served in the Prometheus text format (0.0.4) by `prometheus-client`'s own
//! encoder, for every client alike: Prometheus and `promtool check metrics`
//! both read it, and OpenMetrics adds nothing these counters use.

use std::{collections::BTreeSet, convert::Infallible, fmt, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{ALLOW, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    encoding::{EncodeLabel as _, EncodeLabelSet, LabelSetEncoder, prometheus_text},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{net::TcpListener, sync::Semaphore};

use super::record::{Ready, Summary};
use crate::events::{Direction, Outcome, Reset, cause::Cause, collision::Verdict};

/// At most this many local ports get a `port` label of their own: each one
/// multiplies the number of series.
pub const MAX_PORT_LABELS: usize = 32;

/// Connections served at once; more wait in the listen backlog. A scraper
/// or two (an HA pair) need a handful.
const MAX_CONNECTIONS: usize = 8;

/// A client that has not sent its request headers by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The value of the optional `port` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PortLabel {
    Port(u16),
    Other,
}

impl fmt::Display for PortLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortLabel::Port(port) => port.fmt(f),
            PortLabel::Other => f.write_str("other"),
        }
    }
}

/// Which local ports are labelled: none (no `port` label at all) or a set.
#[derive(Clone, Debug, Default)]
struct PortLabels(Option<BTreeSet<u16>>);

impl PortLabels {
    fn new(ports: &[u16]) -> Self {
        PortLabels((!ports.is_empty()).then(|| ports.iter().copied().collect()))
    }

    /// Every value the label can take (`None`: no label).
    fn all(&self) -> Vec<Option<PortLabel>> {
        match &self.0 {
            None => vec![None],
            Some(ports) => ports.iter().map(|p| Some(PortLabel::Port(*p))).chain([Some(PortLabel::Other)]).collect(),
        }
    }

    fn label(&self, local_port: u16) -> Option<PortLabel> {
        let ports = self.0.as_ref()?;
        Some(if ports.contains(&local_port) { PortLabel::Port(local_port) } else { PortLabel::Other })
    }
}

fn label(encoder: &mut LabelSetEncoder, key: &str, value: &str) -> fmt::Result {
    (key, value).encode(encoder.encode_label())
}

fn port_label(encoder: &mut LabelSetEncoder, port: Option<PortLabel>) -> fmt::Result {
    match port {
        Some(port) => label(encoder, "port", &port.to_string()),
        None => Ok(()),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ResetLabels {
    /// `sent` or `received`.
    direction: &'static str,
    /// The kernel's reset reason, `none` when there is none (received
    /// resets, kernels before 6.10).
    reason: String,
    /// The local socket's TCP state, `none` without a socket.
    state: String,
    /// Who sent a received reset: `peer`, `middlebox`, `unknown`; `none`
    /// for sent ones.
    origin: &'static str,
    /// What the kernel did with a received reset (`reset`, `half_open`,
    /// `no_socket`, `ignored`); `none` for sent ones.
    outcome: &'static str,
    /// Why it was sent (`events::cause::Cause`): a bounded set.
    cause: Cause,
    port: Option<PortLabel>,
}

impl EncodeLabelSet for ResetLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        label(encoder, "direction", self.direction)?;
        label(encoder, "reason", &self.reason)?;
        label(encoder, "state", &self.state)?;
        label(encoder, "origin", self.origin)?;
        label(encoder, "outcome", self.outcome)?;
        label(encoder, "cause", self.cause.as_str())?;
        port_label(encoder, self.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CollisionLabels {
    verdict: Verdict,
    port: Option<PortLabel>,
}

impl EncodeLabelSet for CollisionLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        label(encoder, "verdict", self.verdict.as_str())?;
        port_label(encoder, self.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct KillLabels {
    port: Option<PortLabel>,
}

impl EncodeLabelSet for KillLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        port_label(encoder, self.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BuildInfo {
    version: &'static str,
    strategy: &'static str,
    kernel: String,
}

impl EncodeLabelSet for BuildInfo {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        label(encoder, "version", self.version)?;
        label(encoder, "strategy", self.strategy)?;
        label(encoder, "kernel", &self.kernel)
    }
}

/// Every metric rsttrace exports, and the registry that encodes them.
pub struct Metrics {
    registry: Arc<Registry>,
    ports: PortLabels,
    resets: Family<ResetLabels, Counter>,
    collisions: Family<CollisionLabels, Counter>,
    kills: Family<KillLabels, Counter>,
    idle_timeouts: Counter,
    lost: Counter,
    read_errors: Counter,
    connections_unkept: Counter,
    missed_runs: Counter,
    undecodable: Counter,
    unwritten: Counter,
}

impl Metrics {
    pub fn new(ready: &Ready, port_labels: &[u16]) -> Self {
        let ports = PortLabels::new(port_labels);
        let mut registry = Registry::with_prefix("rsttrace");
        let resets = Family::<ResetLabels, Counter>::default();
        registry.register(
            "resets",
            "TCP resets this host sent or received, before filters (summary: counts.rst_sent, counts.rst_received)",
            resets.clone(),
        );
        let collisions = Family::<CollisionLabels, Counter>::default();
        registry.register(
            "timewait_collisions",
            "SYNs that met a TIME_WAIT socket of this host, by what the kernel did with them (summary: verdicts)",
            collisions.clone(),
        );
        let kills = Family::<KillLabels, Counter>::default();
        registry.register(
            "timewait_kills",
            "TIME_WAIT sockets of this host ended by the peer's RST (summary: counts.tw_killed)",
            kills.clone(),
        );
        let idle_timeouts = Counter::default();
        registry.register(
            "idle_timeouts",
            "Idle timeouts of a device in between inferred from its forged resets, one per peer network and interval (summary: counts.idle_timeout)",
            idle_timeouts.clone(),
        );
        let lost = Counter::default();
        registry.register(
            "lost_records",
            "Records the kernel could not deliver because the ring buffer was full (summary: lost)",
            lost.clone(),
        );
        let read_errors = Counter::default();
        registry.register(
            "read_errors",
            "Times a program in the kernel could not read a kernel structure; its record is missing (summary: read_errors)",
            read_errors.clone(),
        );
        let connections_unkept = Counter::default();
        registry.register(
            "connections_unkept",
            "Connections whose peer TTL and FIN time the kernel's table had no room for; their peer_ttl and peer_closed_ms are null (summary: connections_unkept)",
            connections_unkept.clone(),
        );
        let missed_runs = Counter::default();
        registry.register(
            "missed_runs",
            "Times the kernel skipped one of the programs because a BPF program was already running on that CPU, Linux 5.12+ (summary: missed_runs)",
            missed_runs.clone(),
        );
        let undecodable = Counter::default();
        registry.register(
            "undecodable_records",
            "Records that reached rsttrace but could not be decoded (summary: undecodable)",
            undecodable.clone(),
        );
        let unwritten = Counter::default();
        registry.register(
            "unwritten_journal_entries",
            "Journal entries journald did not accept (summary: unwritten)",
            unwritten.clone(),
        );
        let build_info = Family::<BuildInfo, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1: the rsttrace version, the hook strategy in use and the kernel release",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildInfo {
                version: ready.version,
                strategy: ready.strategy.as_str(),
                kernel: ready.kernel.clone(),
            })
            .set(1);
        let metrics = Metrics {
            registry: Arc::new(registry),
            ports,
            resets,
            collisions,
            kills,
            idle_timeouts,
            lost,
            read_errors,
            connections_unkept,
            missed_runs,
            undecodable,
            unwritten,
        };
        // Present at 0 from the first scrape, so that an alert's increase()
        // sees the first collision or kill (a series that appears at 1 has
        // no increase). Resets have too many label combinations for that.
        for port in metrics.ports.all() {
            for verdict in Verdict::ALL {
                let _ = metrics.collisions.get_or_create(&CollisionLabels { verdict, port });
            }
            let _ = metrics.kills.get_or_create(&KillLabels { port });
        }
        metrics
    }

    /// A reset (`finding::count` calls these, one per finding).
    pub fn count_reset(&self, r: &Reset, local_port: u16) {
        let labels = ResetLabels {
            direction: match r.direction {
                Direction::Sent => "sent",
                Direction::Received => "received",
            },
            reason: r.reason.as_ref().map_or_else(|| "none".to_string(), |reason| reason.to_string()),
            state: r.state.as_ref().map_or_else(|| "none".to_string(), |state| state.to_string()),
            origin: match (r.direction, r.origin()) {
                (Direction::Sent, _) => "none",
                (Direction::Received, Some((origin, _))) => origin.as_str(),
                (Direction::Received, None) => "unknown",
            },
            outcome: r.outcome.map_or("none", Outcome::as_str),
            cause: r.cause(),
            port: self.ports.label(local_port),
        };
        // Discarded resets come aggregated.
        self.resets.get_or_create(&labels).inc_by(r.count);
    }

    pub fn count_collision(&self, verdict: Verdict, syns: u64, local_port: u16) {
        let port = self.ports.label(local_port);
        self.collisions.get_or_create(&CollisionLabels { verdict, port }).inc_by(syns);
    }

    pub fn count_kill(&self, local_port: u16) {
        self.kills.get_or_create(&KillLabels { port: self.ports.label(local_port) }).inc();
    }

    pub fn count_idle_timeout(&self) {
        self.idle_timeouts.inc();
    }

    /// The summary's totals that are not counted per report: what the
    /// kernel counts (lost, read errors, missed runs) and what went wrong
    /// in rsttrace (undecodable, unwritten). They only grow.
    pub fn totals(&self, summary: &Summary) {
        for (counter, value) in [
            (&self.lost, summary.lost),
            (&self.read_errors, summary.read_errors),
            (&self.connections_unkept, summary.connections_unkept),
            (&self.missed_runs, summary.missed_runs),
            (&self.undecodable, summary.undecodable),
            (&self.unwritten, summary.unwritten),
        ] {
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    /// The exposition, as a scrape gets it.
    #[cfg(test)]
    fn encode(&self) -> String {
        encode(&self.registry)
    }

    /// Serves `/metrics` on `listener` until the runtime ends.
    pub fn serve(&self, listener: std::net::TcpListener) -> anyhow::Result<()> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        if let Ok(addr) = listener.local_addr() {
            log::info!("serving metrics on http://{addr}/metrics");
        }
        tokio::spawn(accept(listener, self.registry.clone()));
        Ok(())
    }
}

/// Binds the `--metrics` address: done before anything is loaded into the
/// kernel, so that an address in use stops the start with nothing
/// half-started.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EAFNOSUPPORT) {
            " (under systemd, the unit's RestrictAddressFamilies= must allow AF_INET and AF_INET6: see the comments in rsttrace.service)"
        } else {
            ""
        };
        anyhow::Error::new(e).context(format!("cannot listen on {addr} for --metrics{hint}"))
    })
}

fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    prometheus_text::encode(&mut text, registry).expect("encoding metrics into a String");
    text
}

async fn accept(listener: TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, a connection reset before accept:
                // the next one may go through.
                log::warn!("metrics endpoint: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&request, &registry);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                log::debug!("metrics endpoint: connection ended: {e}");
            }
            drop(slot);
        });
    }
}

fn respond(request: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let builder = Response::builder();
    let response = match (request.uri().path(), request.method()) {
        ("/metrics", &Method::GET | &Method::HEAD) => {
            let body = if request.method() == Method::HEAD { String::new() } else { encode(registry) };
            builder.header(CONTENT_TYPE, prometheus_text::CONTENT_TYPE).body(Full::new(Bytes::from(body)))
        }
        ("/metrics", _) => builder
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(ALLOW, "GET, HEAD")
            .body(Full::new(Bytes::from_static(b"GET /metrics\n"))),
        _ => builder
            .status(StatusCode::NOT_FOUND)
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(b"rsttrace serves its metrics at /metrics\n"))),
    };
    response.expect("a response from valid parts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::{Kill, Origin, Report, Reset, collision::Collision},
        kernel::{
            names::{ResetReason, TcpState},
            strategy::Strategy,
        },
    };

    fn count(metrics: &Metrics, report: &Report) {
        crate::output::finding::count(report, &mut Summary::default(), Some(metrics));
    }

    fn ready() -> Ready {
        Ready::new(Strategy::Tracepoint, vec![], "6.18.44".into(), &[])
    }

    fn reset(direction: Direction, local: &str, state: Option<TcpState>, reason: Option<ResetReason>) -> Report {
        let mut r = Reset { state, reason, ..Reset::example(direction) };
        r.tuple.local = local.parse().unwrap();
        Report::Reset(r)
    }

    fn collision(verdict: Verdict, count: u64) -> Report {
        let event = crate::events::TimeWaitSegment::example(40021, 0);
        Report::Collision(Collision { event, verdict, peer_rst: None, retry_delay_ms: None, count, interval_ms: None })
    }

    /// What a run could report: resets both ways, with and without reason
    /// and state, harmful and aggregated collisions, a kill.
    fn reports() -> Vec<Report> {
        vec![
            reset(Direction::Sent, "10.77.0.2:9", None, Some(ResetReason::NoSocket)),
            reset(Direction::Sent, "10.77.0.2:9", None, Some(ResetReason::NoSocket)),
            reset(Direction::Received, "10.77.0.1:41146", Some(TcpState::SynSent), None),
            reset(Direction::Sent, "10.77.0.2:8090", Some(TcpState::Close), Some(ResetReason::TcpState)),
            reset(Direction::Sent, "10.77.0.2:8080", Some(TcpState::Established), Some(ResetReason::Unnamed(77))),
            collision(Verdict::StaleAck, 1),
            collision(Verdict::Accepted, 1532),
            collision(Verdict::StaleAck, 2),
            Report::Killed(Kill(crate::events::TimeWaitSegment::example(40021, 1))),
        ]
    }

    /// `name{labels} value` lines of an exposition.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    /// The sum of the samples whose `name{labels}` starts with `prefix`.
    fn sum(text: &str, prefix: &str) -> u64 {
        samples(text)
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    #[test]
    fn counts_equal_the_summary() {
        let metrics = Metrics::new(&ready(), &[]);
        let mut summary = Summary::default();
        for report in reports() {
            crate::output::finding::count(&report, &mut summary, Some(&metrics));
        }
        let text = metrics.encode();
        assert_eq!(sum(&text, r#"rsttrace_resets_total{direction="sent""#), summary.counts.rst_sent);
        assert_eq!(sum(&text, r#"rsttrace_resets_total{direction="received""#), summary.counts.rst_received);
        assert_eq!(sum(&text, "rsttrace_timewait_collisions_total"), summary.counts.tw_collision);
        for (verdict, count) in &summary.verdicts {
            let prefix = format!(r#"rsttrace_timewait_collisions_total{{verdict="{}""#, verdict.as_str());
            assert_eq!(sum(&text, &prefix), *count, "{verdict:?}");
        }
        assert_eq!(sum(&text, "rsttrace_timewait_kills_total"), summary.counts.tw_killed);
    }

    #[test]
    fn the_exposition_names_every_metric_with_bounded_labels() {
        let metrics = Metrics::new(&ready(), &[]);
        for report in reports() {
            count(&metrics, &report);
        }
        let text = metrics.encode();
        let samples = samples(&text);
        for expected in [
            r#"rsttrace_resets_total{direction="sent",reason="NO_SOCKET",state="none",origin="none",outcome="none",cause="unknown"} 2"#,
            r#"rsttrace_resets_total{direction="received",reason="none",state="SYN_SENT",origin="unknown",outcome="reset",cause="refused"} 1"#,
            r#"rsttrace_resets_total{direction="sent",reason="TCP_STATE",state="CLOSE",origin="none",outcome="none",cause="unknown"} 1"#,
            r#"rsttrace_resets_total{direction="sent",reason="REASON_77",state="ESTABLISHED",origin="none",outcome="none",cause="unknown"} 1"#,
            r#"rsttrace_timewait_collisions_total{verdict="stale_ack"} 3"#,
            r#"rsttrace_timewait_collisions_total{verdict="accepted"} 1532"#,
            // Every verdict from the start, at 0 until one is seen.
            r#"rsttrace_timewait_collisions_total{verdict="paws_drop"} 0"#,
            r#"rsttrace_timewait_collisions_total{verdict="rst"} 0"#,
            r#"rsttrace_timewait_collisions_total{verdict="unknown"} 0"#,
            "rsttrace_timewait_kills_total 1",
            "rsttrace_idle_timeouts_total 0",
            "rsttrace_lost_records_total 0",
            "rsttrace_read_errors_total 0",
            "rsttrace_connections_unkept_total 0",
            "rsttrace_missed_runs_total 0",
            "rsttrace_undecodable_records_total 0",
            "rsttrace_unwritten_journal_entries_total 0",
            r#"rsttrace_build_info{version="0.1.0",strategy="tracepoint",kernel="6.18.44"} 1"#,
        ] {
            assert!(samples.contains(&expected), "no `{expected}` in:\n{text}");
        }
        assert_eq!(samples.len(), 18, "{text}");
        assert!(text.contains("# TYPE rsttrace_resets_total counter\n"), "{text}");
        assert!(text.contains("# TYPE rsttrace_build_info gauge\n"), "{text}");
        assert!(!text.contains("10.77."), "no address is a label: {text}");
        assert!(!text.contains("port="), "no port label unless asked for: {text}");
    }

    #[test]
    fn only_the_named_local_ports_get_a_label() {
        let metrics = Metrics::new(&ready(), &[9, 8090]);
        for report in reports() {
            count(&metrics, &report);
        }
        let text = metrics.encode();
        let samples = samples(&text);
        for expected in [
            r#"rsttrace_resets_total{direction="sent",reason="NO_SOCKET",state="none",origin="none",outcome="none",cause="unknown",port="9"} 2"#,
            // The client's ephemeral port is not one of them.
            r#"rsttrace_resets_total{direction="received",reason="none",state="SYN_SENT",origin="unknown",outcome="reset",cause="refused",port="other"} 1"#,
            r#"rsttrace_resets_total{direction="sent",reason="TCP_STATE",state="CLOSE",origin="none",outcome="none",cause="unknown",port="8090"} 1"#,
            r#"rsttrace_resets_total{direction="sent",reason="REASON_77",state="ESTABLISHED",origin="none",outcome="none",cause="unknown",port="other"} 1"#,
            r#"rsttrace_timewait_collisions_total{verdict="stale_ack",port="8090"} 3"#,
            r#"rsttrace_timewait_kills_total{port="8090"} 1"#,
            r#"rsttrace_timewait_kills_total{port="9"} 0"#,
            r#"rsttrace_timewait_kills_total{port="other"} 0"#,
            r#"rsttrace_timewait_collisions_total{verdict="accepted",port="other"} 0"#,
        ] {
            assert!(samples.contains(&expected), "no `{expected}` in:\n{text}");
        }
    }

    #[test]
    fn totals_follow_the_summary() {
        let metrics = Metrics::new(&ready(), &[]);
        let mut summary = Summary { lost: 5, read_errors: 1, missed_runs: 2, undecodable: 3, ..Default::default() };
        metrics.totals(&summary);
        metrics.totals(&summary);
        summary.lost = 7;
        summary.unwritten = 4;
        metrics.totals(&summary);
        let text = metrics.encode();
        for expected in [
            "rsttrace_lost_records_total 7",
            "rsttrace_read_errors_total 1",
            "rsttrace_missed_runs_total 2",
            "rsttrace_undecodable_records_total 3",
            "rsttrace_unwritten_journal_entries_total 4",
        ] {
            assert!(samples(&text).contains(&expected), "no `{expected}` in:\n{text}");
        }
    }

    /// From the `heading` line to the next heading of the same level.
    fn section<'a>(text: &'a str, heading: &str) -> &'a str {
        let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no {heading}"));
        let rest = &text[start + heading.len() + 2..];
        let level = heading.split(' ').next().unwrap();
        rest.find(&format!("\n{level} ")).map_or(rest, |end| &rest[..end])
    }

    /// docs/output.md's Metrics section and README's Fleet section name every
    /// metric, every label and, in the README, every value of the labels
    /// rsttrace itself defines.
    #[test]
    fn every_metric_and_label_is_documented() {
        let contract = section(include_str!("../../../docs/output.md"), "## Metrics");
        let fleet = section(include_str!("../../../README.md"), "## Fleet");
        let metrics = Metrics::new(&ready(), &[8090]);
        for report in reports() {
            count(&metrics, &report);
        }
        let text = metrics.encode();
        let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
        assert_eq!(names.len(), 11, "{text}");
        for name in names {
            assert!(contract.contains(&format!("| `{name}` |")), "docs/output.md does not list {name}");
            assert!(fleet.contains(&format!("`{name}`")), "README's Fleet section does not list {name}");
        }
        let labels: BTreeSet<&str> = samples(&text)
            .iter()
            .filter_map(|l| l.split_once('{')?.1.split_once('}'))
            .flat_map(|(labels, _)| labels.split(',').filter_map(|l| l.split_once('=')).map(|(key, _)| key))
            .collect();
        assert_eq!(labels.len(), 11, "{labels:?}");
        for label in labels {
            assert!(contract.contains(&format!("| `{label}`")), "docs/output.md's labels lack {label}");
            assert!(fleet.contains(&format!("| `{label}`")), "README's Fleet section's labels lack {label}");
        }
        // A new outcome or origin does not compile until it is added here.
        let outcomes = [Outcome::Reset, Outcome::HalfOpen, Outcome::NoSocket, Outcome::Ignored].map(|o| match o {
            Outcome::Reset | Outcome::HalfOpen | Outcome::NoSocket | Outcome::Ignored => o.as_str(),
        });
        let origins = [Origin::Peer, Origin::Middlebox].map(|o| match o {
            Origin::Peer | Origin::Middlebox => o.as_str(),
        });
        let verdicts = Verdict::ALL.map(Verdict::as_str);
        let causes = Cause::ALL.map(Cause::as_str);
        let values = ["sent", "received", "none", "unknown", "other"];
        for value in outcomes.iter().chain(&origins).chain(&verdicts).chain(&causes).chain(&values) {
            assert!(contract.contains(&format!("`{value}`")), "docs/output.md's labels lack the value {value}");
            assert!(fleet.contains(&format!("`{value}`")), "README's Fleet section lacks the label value {value}");
        }
    }

    #[test]
    fn label_values_are_escaped_by_the_encoder() {
        let mut ready = ready();
        ready.kernel = "6.1.0-\"odd\"\\build".into();
        let text = Metrics::new(&ready, &[]).encode();
        assert!(text.contains(r#"kernel="6.1.0-\"odd\"\\build""#), "{text}");
    }
}
