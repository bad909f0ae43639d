//! The one path from kernel records to the sinks: decoded once,
//! correlated, counted (summary and metrics), filtered, their owners named,
//! written. The daemon feeds it the ring buffer and the kernel's counts;
//! the golden test feeds it recorded records, through the same code.

use crate::{
    events::{Event, Report, correlate::Correlator, decode::Decoder, filter::Filter},
    output::{
        finding,
        metrics::Metrics,
        record::{Ready, Summary, Timestamp},
        sink::Sink,
    },
    owners::Owners,
};

pub struct Pipeline {
    pub decoder: Decoder,
    correlator: Correlator,
    /// What the run saw; the kernel's own counters are set by the caller.
    pub summary: Summary,
    sink: Sink,
    filter: Filter,
    metrics: Option<Metrics>,
    owners: Owners,
}

impl Pipeline {
    pub fn new(
        decoder: Decoder,
        correlator: Correlator,
        sink: Sink,
        filter: Filter,
        metrics: Option<Metrics>,
        owners: Owners,
    ) -> Self {
        Pipeline { decoder, correlator, summary: Summary::default(), sink, filter, metrics, owners }
    }

    pub fn ready(&mut self, time: Timestamp, ready: &Ready) -> anyhow::Result<()> {
        self.sink.ready(time, ready)
    }

    /// One record as a program wrote it into the ring buffer. One that
    /// cannot be decoded is counted (`undecodable`) and said in the log.
    pub fn record(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self.decoder.decode(bytes) {
            Ok(event) => self.event(event),
            Err(e) => {
                self.summary.undecodable += 1;
                log::warn!("dropping a record: {e}");
                Ok(())
            }
        }
    }

    /// One event, from a record or from what the kernel counted.
    pub fn event(&mut self, event: Event) -> anyhow::Result<()> {
        let reports = self.correlator.push(event);
        self.write(reports)
    }

    /// What has waited long enough by `now_ns` (kernel clock).
    pub fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        let reports = self.correlator.tick(now_ns);
        self.write(reports)?;
        self.sink.flush()
    }

    /// The end of a run: everything still held.
    pub fn finish(&mut self, now_ns: u64) -> anyhow::Result<()> {
        let reports = self.correlator.finish(now_ns);
        self.write(reports)
    }

    /// The last record.
    pub fn summary(&mut self, time: Timestamp) -> anyhow::Result<()> {
        self.summary.unwritten = self.sink.unwritten;
        self.sink.summary(time, &self.summary)
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.sink.flush()
    }

    /// The summary's totals, for the metrics endpoint.
    pub fn publish_totals(&mut self) {
        if let Some(metrics) = &self.metrics {
            self.summary.unwritten = self.sink.unwritten;
            metrics.totals(&self.summary);
        }
    }

    pub fn has_metrics(&self) -> bool {
        self.metrics.is_some()
    }

    /// Every report is counted before the filters, in the summary and the
    /// metrics alike; those that pass are named and written.
    fn write(&mut self, reports: Vec<Report>) -> anyhow::Result<()> {
        for mut report in reports {
            finding::count(&report, &mut self.summary, self.metrics.as_ref());
            let tuple = report.tuple();
            if !self.filter.matches(&tuple.local, &tuple.remote) {
                continue;
            }
            self.summary.reported += 1;
            if let Report::Reset(reset) = &mut report {
                self.owners.name(reset);
            }
            self.sink.report(&report)?;
        }
        Ok(())
    }
}
