//! Each kind of finding, defined in one place: its record kind, its journal
//! priority, its sentence, its record's body, and what it counts for in the
//! summary and in the metrics. A new finding is a type that implements
//! `Finding` and a `Report` variant; the sink, the summary and the metrics
//! take it from here.

use std::time::SystemTime;

use libsystemd::logging::Priority;

use super::{
    metrics::Metrics,
    record::{self, EventBody, Kind, Line, Summary, Tally, Timestamp},
    sentence,
};
use crate::events::{
    Direction, Kill, Outcome, Report, Reset,
    collision::{Collision, Verdict},
    idle_timeout::IdleTimeout,
};

pub trait Finding {
    fn kind(&self) -> Kind;
    /// When it happened (the first event it stands for).
    fn time(&self) -> SystemTime;
    /// Warnings for what broke a connection or may; information for what
    /// did not (harmless reuse, discarded RSTs, inferences).
    fn priority(&self) -> Priority;
    fn sentence(&self) -> String;
    fn body(&self) -> EventBody<'_>;
    /// The events it stands for, and the verdict or outcome the summary
    /// counts them under.
    fn tally(&self) -> Tally;
    /// Adds it to its metric family, labelled with `port` (the local port,
    /// when it is one of those labelled).
    fn count_in(&self, metrics: &Metrics, port: u16);
}

/// A report's record: its finding's kind, time and body.
pub fn record(report: &Report) -> Line<EventBody<'_>> {
    let finding = report.finding();
    Line { time: Timestamp(finding.time()), kind: finding.kind(), body: finding.body() }
}

/// Counts a report before the filters: in the summary and the metrics
/// alike, through this one function.
pub fn count(report: &Report, summary: &mut Summary, metrics: Option<&Metrics>) {
    let finding = report.finding();
    summary.count(finding.kind(), finding.tally());
    if let Some(metrics) = metrics {
        finding.count_in(metrics, report.tuple().local.port());
    }
}

impl Report {
    pub fn finding(&self) -> &dyn Finding {
        match self {
            Report::Reset(r) => r,
            Report::Collision(c) => c,
            Report::Killed(k) => k,
            Report::IdleTimeout(i) => i,
        }
    }
}

impl Finding for Reset {
    fn kind(&self) -> Kind {
        match self.direction {
            Direction::Sent => Kind::RstSent,
            Direction::Received => Kind::RstReceived,
        }
    }

    fn time(&self) -> SystemTime {
        self.time
    }

    fn priority(&self) -> Priority {
        // Discarded RSTs ended nothing (scans, health checks, late RSTs).
        match self.outcome {
            Some(outcome) if outcome != Outcome::Reset => Priority::Info,
            _ => Priority::Warning,
        }
    }

    fn sentence(&self) -> String {
        sentence::reset(self)
    }

    fn body(&self) -> EventBody<'_> {
        record::reset(self)
    }

    fn tally(&self) -> Tally {
        let outcome = (self.direction == Direction::Received).then(|| self.outcome.unwrap_or(Outcome::Reset));
        Tally { outcome, ..Tally::events(self.count) }
    }

    fn count_in(&self, metrics: &Metrics, port: u16) {
        metrics.count_reset(self, port);
    }
}

impl Finding for Collision {
    fn kind(&self) -> Kind {
        Kind::TwCollision
    }

    fn time(&self) -> SystemTime {
        self.event.time
    }

    fn priority(&self) -> Priority {
        if self.verdict == Verdict::Accepted { Priority::Info } else { Priority::Warning }
    }

    fn sentence(&self) -> String {
        sentence::collision(self)
    }

    fn body(&self) -> EventBody<'_> {
        record::collision(self)
    }

    fn tally(&self) -> Tally {
        Tally { verdict: Some(self.verdict), ..Tally::events(self.count) }
    }

    fn count_in(&self, metrics: &Metrics, port: u16) {
        metrics.count_collision(self.verdict, self.count, port);
    }
}

impl Finding for Kill {
    fn kind(&self) -> Kind {
        Kind::TwKilled
    }

    fn time(&self) -> SystemTime {
        self.0.time
    }

    fn priority(&self) -> Priority {
        Priority::Warning
    }

    fn sentence(&self) -> String {
        sentence::kill(self)
    }

    fn body(&self) -> EventBody<'_> {
        record::kill(self)
    }

    fn tally(&self) -> Tally {
        Tally::events(1)
    }

    fn count_in(&self, metrics: &Metrics, port: u16) {
        metrics.count_kill(port);
    }
}

impl Finding for IdleTimeout {
    fn kind(&self) -> Kind {
        Kind::IdleTimeout
    }

    fn time(&self) -> SystemTime {
        self.time
    }

    fn priority(&self) -> Priority {
        Priority::Info
    }

    fn sentence(&self) -> String {
        sentence::idle_timeout(self)
    }

    fn body(&self) -> EventBody<'_> {
        record::idle_timeout(self)
    }

    fn tally(&self) -> Tally {
        Tally::events(1)
    }

    fn count_in(&self, metrics: &Metrics, _port: u16) {
        metrics.count_idle_timeout();
    }
}
