//! Where records go: stdout (JSON lines or text, block-buffered) or the
//! journal (one native entry each). Every record is rendered from its typed
//! form here, in the chosen format.

use std::io::Write;

use libsystemd::logging::Priority;
use serde::Serialize;

use super::{
    Format, finding, journal,
    record::{Kind, Line, Ready, Summary, Timestamp},
    sentence,
};
use crate::events::Report;

pub struct Sink {
    format: Format,
    out: Box<dyn Write>,
    /// Journal entries go to journald; else to `out`, in the journal's
    /// export format.
    journald: bool,
    /// Journal entries journald did not take.
    pub unwritten: u64,
}

impl Sink {
    pub fn new(format: Format) -> Self {
        let out: Box<dyn Write> = match format {
            Format::TextOnStderr => Box::new(std::io::stderr()),
            // Block-buffered: stdout's own line buffering would make every
            // record a write(2); each drained batch is flushed instead.
            _ => Box::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())),
        };
        Sink { format, out, journald: true, unwritten: 0 }
    }

    /// A sink writing to `out`, journal entries too (export format).
    #[cfg(test)]
    pub fn to(format: Format, out: Box<dyn Write>) -> Self {
        Sink { format, out, journald: false, unwritten: 0 }
    }

    pub fn report(&mut self, report: &Report) -> anyhow::Result<()> {
        let record = finding::record(report);
        match self.format {
            Format::Json => self.json(&record),
            Format::Text | Format::TextOnStderr => {
                let line = format!("{} {}", record.time, report.finding().sentence());
                self.line(&line)
            }
            Format::Journal => {
                let finding = report.finding();
                self.journal(finding.priority(), &finding.sentence(), &record)
            }
        }
    }

    pub fn ready(&mut self, time: Timestamp, ready: &Ready) -> anyhow::Result<()> {
        let line = Line { time, kind: Kind::Ready, body: ready };
        self.control(&line, sentence::ready_sentence(ready))
    }

    pub fn summary(&mut self, time: Timestamp, summary: &Summary) -> anyhow::Result<()> {
        let line = Line { time, kind: Kind::Summary, body: summary };
        self.control(&line, sentence::summary_sentence(summary))
    }

    /// The ready and summary records: information, flushed at once.
    fn control(&mut self, line: &impl Serialize, sentence: String) -> anyhow::Result<()> {
        match self.format {
            Format::Json => self.json(line)?,
            Format::Text | Format::TextOnStderr => self.line(&sentence)?,
            Format::Journal => self.journal(Priority::Info, &sentence, line)?,
        }
        self.flush()
    }

    fn json(&mut self, record: &impl Serialize) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, record).map_err(std::io::Error::from).map_err(stdout_error)?;
        self.out.write_all(b"\n").map_err(stdout_error)
    }

    fn journal(&mut self, priority: Priority, message: &str, record: &impl Serialize) -> anyhow::Result<()> {
        if !self.journald {
            return journal::export(&mut self.out, priority, message, record).map_err(stdout_error);
        }
        if let Err(e) = journal::send(priority, message, record) {
            if self.unwritten == 0 {
                log::warn!("journald did not take an entry ({e}); counting the ones it misses");
            }
            self.unwritten += 1;
        }
        Ok(())
    }

    fn line(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.out, "{line}").map_err(stdout_error)
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush().map_err(stdout_error)
    }
}

fn stdout_error(e: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("cannot write to stdout")
}

/// The reader of stdout went away (`rsttrace | head`): a normal end of a
/// run, not an error.
pub fn is_reader_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
