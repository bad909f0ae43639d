//! The output contract as code: one struct per record kind, serialized in
//! the contract's key order (docs/output.md). Other tools parse this: keys
//! are only ever added.

use std::{collections::BTreeMap, net::SocketAddr, time::SystemTime};

use serde::Serialize;

use crate::{
    events::{
        Direction, FourTuple, Keepalive, Kill, Origin, Outcome, Reset, TcpFlags,
        cause::Cause,
        collision::{Collision, Verdict},
        idle_timeout::IdleTimeout,
    },
    kernel::{
        limitation::Limitation,
        names::{DropReason, ResetReason, TcpState},
        strategy::{Hook, Strategy},
    },
};

/// The `kind` of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Kind {
    Ready,
    Summary,
    RstSent,
    RstReceived,
    TwCollision,
    TwKilled,
    IdleTimeout,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// RFC 3339, UTC, microseconds: `2026-11-21T10:32:00.123456Z`.
#[derive(Clone, Copy, Debug)]
pub struct Timestamp(pub SystemTime);

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        humantime::format_rfc3339_micros(self.0).fmt(f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Every record starts with these.
#[derive(Serialize)]
pub struct Line<T: Serialize> {
    pub time: Timestamp,
    pub kind: Kind,
    #[serde(flatten)]
    pub body: T,
}

/// The endpoints every event record has after `time` and `kind`.
#[derive(Serialize)]
pub struct Endpoints {
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    /// `10.0.0.2:80`, `[2001:db8::2]:80`.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub netns: Option<u32>,
}

impl From<&FourTuple> for Endpoints {
    fn from(t: &FourTuple) -> Self {
        Endpoints {
            family: if t.local.is_ipv6() { "ipv6" } else { "ipv4" },
            local: t.local,
            remote: t.remote,
            netns: t.netns,
        }
    }
}

#[derive(Serialize)]
pub struct RstSent<'a> {
    #[serde(flatten)]
    pub endpoints: Endpoints,
    pub state: Option<&'a TcpState>,
    pub reason: Option<&'a ResetReason>,
    pub pid: Option<u32>,
    pub comm: Option<&'a str>,
    pub unit: Option<&'a str>,
    pub netns_name: Option<&'a str>,
    /// RSTs this record stands for; more than 1 only for aggregated ones
    /// (a storm), which have `interval_ms`.
    pub count: u64,
    pub interval_ms: Option<u64>,
    pub cause: Cause,
    /// The flags of the segment it answered; null for this host's own abort.
    pub answered: Option<TcpFlags>,
    /// From a TIME_WAIT socket: ms since the connection entered TIME_WAIT.
    pub closed_ms: Option<u64>,
    pub advice: Option<String>,
}

#[derive(Serialize)]
pub struct RstReceived<'a> {
    #[serde(flatten)]
    pub endpoints: Endpoints,
    pub state: Option<&'a TcpState>,
    pub idle_ms: Option<u64>,
    pub peer_silent_ms: Option<u64>,
    pub ttl: Option<u8>,
    pub peer_ttl: Option<u8>,
    pub origin: Option<Origin>,
    /// SO_KEEPALIVE's idle time in seconds; null when off or unknown.
    pub keepalive_s: Option<u64>,
    pub advice: Option<String>,
    pub unit: Option<&'a str>,
    pub netns_name: Option<&'a str>,
    pub outcome: Outcome,
    pub drop_reason: Option<&'a DropReason>,
    /// RSTs this record stands for; more than 1 only for aggregated
    /// discarded RSTs, which have `interval_ms`.
    pub count: u64,
    pub interval_ms: Option<u64>,
    pub cause: Cause,
    /// ms since the peer's FIN (CLOSE_WAIT, LAST_ACK).
    pub peer_closed_ms: Option<u64>,
    /// `on`, `off`, or null when it could not be read (`keepalive_s` is
    /// null both when off and when unknown).
    pub keepalive: Option<&'static str>,
}

#[derive(Serialize)]
pub struct TwCollision {
    #[serde(flatten)]
    pub endpoints: Endpoints,
    pub state: &'static TcpState,
    pub verdict: Verdict,
    pub tw_age_ms: Option<u64>,
    pub syn_seq: u32,
    pub tw_rcv_nxt: Option<u32>,
    pub syn_timestamps: Option<bool>,
    pub tw_timestamps: Option<bool>,
    pub source: Strategy,
    pub advice: String,
    pub syn_tsval: Option<u32>,
    pub tw_ts_recent: Option<u32>,
    pub peer_rst: Option<bool>,
    pub retry_delay_ms: Option<u64>,
    pub count: u64,
    pub interval_ms: Option<u64>,
    pub hook: Hook,
}

#[derive(Serialize)]
pub struct TwKilled {
    #[serde(flatten)]
    pub endpoints: Endpoints,
    pub state: &'static TcpState,
    /// What killed it: always an RST today.
    pub by: &'static str,
    pub tw_age_ms: Option<u64>,
    pub rst_seq: u32,
    pub source: Strategy,
    pub hook: Hook,
}

/// Middlebox resets from one peer network (`IdleTimeout`).
#[derive(Serialize)]
pub struct IdleTimeoutRecord {
    pub family: &'static str,
    /// The peer network: `10.0.1.0/24`, `2001:db8::/64`.
    pub network: ipnet::IpNet,
    pub netns: Option<u32>,
    pub count: u64,
    pub silence_min_ms: u64,
    pub silence_max_ms: u64,
    /// The device forgets connections idle for at most this long.
    pub timeout_s: u64,
    pub interval_ms: u64,
    pub advice: String,
}

/// An event record's body, by kind.
#[derive(Serialize)]
#[serde(untagged)]
pub enum EventBody<'a> {
    RstSent(RstSent<'a>),
    RstReceived(RstReceived<'a>),
    TwCollision(TwCollision),
    TwKilled(TwKilled),
    IdleTimeout(IdleTimeoutRecord),
}

static TIME_WAIT: TcpState = TcpState::TimeWait;

/// The record of a report.
pub(super) fn collision(c: &Collision) -> EventBody<'_> {
    let e = &c.event;
    EventBody::TwCollision(TwCollision {
        endpoints: Endpoints::from(&e.tuple),
        state: &TIME_WAIT,
        verdict: c.verdict,
        tw_age_ms: e.tw_age_ms,
        syn_seq: e.seq,
        tw_rcv_nxt: e.tw_rcv_nxt,
        syn_timestamps: e.timestamps,
        tw_timestamps: e.tw_timestamps,
        source: e.hook.strategy(),
        advice: c.advice(),
        syn_tsval: e.tsval,
        tw_ts_recent: e.tw_ts_recent,
        peer_rst: c.peer_rst,
        retry_delay_ms: c.retry_delay_ms,
        count: c.count,
        interval_ms: c.interval_ms,
        hook: e.hook,
    })
}

pub(super) fn kill(k: &Kill) -> EventBody<'_> {
    let t = &k.0;
    EventBody::TwKilled(TwKilled {
        endpoints: Endpoints::from(&t.tuple),
        state: &TIME_WAIT,
        by: "rst",
        tw_age_ms: t.tw_age_ms,
        rst_seq: t.seq,
        source: t.hook.strategy(),
        hook: t.hook,
    })
}

pub(super) fn idle_timeout(i: &IdleTimeout) -> EventBody<'_> {
    EventBody::IdleTimeout(IdleTimeoutRecord {
        family: Endpoints::from(&i.tuple).family,
        network: i.network,
        netns: i.tuple.netns,
        count: i.count,
        silence_min_ms: i.silence_min_ms,
        silence_max_ms: i.silence_max_ms,
        timeout_s: i.timeout_s(),
        interval_ms: i.interval_ms,
        advice: i.advice(),
    })
}

pub(super) fn reset(r: &Reset) -> EventBody<'_> {
    let endpoints = Endpoints::from(&r.tuple);
    match r.direction {
        Direction::Sent => EventBody::RstSent(RstSent {
            endpoints,
            state: r.state.as_ref(),
            reason: r.reason.as_ref(),
            pid: r.process.as_ref().map(|p| p.pid),
            comm: r.process.as_ref().map(|p| p.comm.as_str()),
            unit: r.unit.as_deref(),
            netns_name: r.netns_name.as_deref(),
            count: r.count,
            interval_ms: r.interval_ms,
            cause: r.cause(),
            answered: r.answered,
            closed_ms: r.closed_ms,
            advice: r.advice(),
        }),
        Direction::Received => EventBody::RstReceived(RstReceived {
            endpoints,
            state: r.state.as_ref(),
            idle_ms: r.idle_ms,
            peer_silent_ms: r.peer_silent_ms,
            ttl: r.path.ttl,
            peer_ttl: r.path.peer_ttl,
            origin: r.origin().map(|(origin, _)| origin),
            keepalive_s: match r.keepalive {
                Some(Keepalive::After(ms)) => Some(ms / 1000),
                _ => None,
            },
            advice: r.advice(),
            unit: r.unit.as_deref(),
            netns_name: r.netns_name.as_deref(),
            outcome: r.outcome.unwrap_or(Outcome::Reset),
            drop_reason: r.drop_reason.as_ref(),
            count: r.count,
            interval_ms: r.interval_ms,
            cause: r.cause(),
            peer_closed_ms: r.peer_closed_ms,
            keepalive: r.keepalive.map(|k| match k {
                Keepalive::Off => "off",
                Keepalive::After(_) => "on",
            }),
        }),
    }
}

/// The first record, once every hook is attached.
#[derive(Clone, Debug, Serialize)]
pub struct Ready {
    pub version: &'static str,
    pub strategy: Strategy,
    pub hooks: Vec<Hook>,
    /// `uname -r`.
    pub kernel: String,
    /// What this kernel cannot show, one sentence each.
    pub limitations: Vec<String>,
    /// The same, one stable code each, in the same order.
    pub limitation_codes: Vec<&'static str>,
}

impl Ready {
    pub fn new(strategy: Strategy, hooks: Vec<Hook>, kernel: String, limitations: &[Limitation]) -> Self {
        Ready {
            version: env!("CARGO_PKG_VERSION"),
            strategy,
            hooks,
            kernel,
            limitations: limitations.iter().map(Limitation::sentence).collect(),
            limitation_codes: limitations.iter().map(Limitation::code).collect(),
        }
    }
}

/// Events seen per kind, before filters and aggregation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub rst_sent: u64,
    pub rst_received: u64,
    pub tw_collision: u64,
    pub tw_killed: u64,
    pub idle_timeout: u64,
}

impl Counts {
    fn of_mut(&mut self, kind: Kind) -> &mut u64 {
        match kind {
            Kind::RstSent => &mut self.rst_sent,
            Kind::RstReceived => &mut self.rst_received,
            Kind::TwCollision => &mut self.tw_collision,
            Kind::TwKilled => &mut self.tw_killed,
            Kind::IdleTimeout => &mut self.idle_timeout,
            Kind::Ready | Kind::Summary => unreachable!("{kind:?} is no finding"),
        }
    }

    /// In the contract's order, with their kinds.
    pub fn by_kind(&self) -> [(Kind, u64); 5] {
        [
            (Kind::RstSent, self.rst_sent),
            (Kind::RstReceived, self.rst_received),
            (Kind::TwCollision, self.tw_collision),
            (Kind::TwKilled, self.tw_killed),
            (Kind::IdleTimeout, self.idle_timeout),
        ]
    }
}

/// What the run saw, for the last record. Nothing is dropped without being
/// counted here.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub counts: Counts,
    /// TIME_WAIT collisions per verdict, before aggregation.
    pub verdicts: BTreeMap<Verdict, u64>,
    /// Received RSTs per outcome, before aggregation.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Records the kernel could not deliver (ring buffer full).
    pub lost: u64,
    /// Records dropped in the kernel because a read failed.
    pub read_errors: u64,
    /// Program runs the kernel skipped: a BPF program was already running
    /// on that CPU when the hook fired (their events are missing).
    pub missed_runs: u64,
    /// Records userspace could not decode.
    pub undecodable: u64,
    /// Records written after filtering and aggregation.
    pub reported: u64,
    /// Journal entries journald did not take.
    pub unwritten: u64,
    pub duration_ms: u64,
    /// Connections whose peer TTL and FIN time could not be kept (the
    /// kernel's connection table was full): their `peer_ttl` and
    /// `peer_closed_ms` are null.
    pub connections_unkept: u64,
    /// Bytes of the ring buffer that programs had reserved before the stop
    /// and not finished writing when rsttrace gave up waiting for them.
    pub unfinished_bytes: u64,
}

/// What one finding counts for in the summary (`finding::count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    pub events: u64,
    pub verdict: Option<Verdict>,
    pub outcome: Option<Outcome>,
}

impl Tally {
    pub fn events(events: u64) -> Self {
        Tally { events, verdict: None, outcome: None }
    }
}

impl Summary {
    /// Counts a finding of `kind` before filters (`finding::count`).
    pub fn count(&mut self, kind: Kind, tally: Tally) {
        *self.counts.of_mut(kind) += tally.events;
        if let Some(verdict) = tally.verdict {
            *self.verdicts.entry(verdict).or_default() += tally.events;
        }
        if let Some(outcome) = tally.outcome {
            *self.outcomes.entry(outcome).or_default() += tally.events;
        }
    }
}
