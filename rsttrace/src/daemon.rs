//! The run loop: read the ring buffer as records arrive, decode, filter,
//! write; stop on SIGINT/SIGTERM or --duration and write the summary.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use rsttrace_common::record::counter;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    clock::monotonic_ns,
    collision::{Correlator, Report, Windows},
    event::{Decoder, Event, EventKind, TimeWaitKind},
    filter::Filter,
    hooks::Hooks,
    journal,
    output::{self, Format, Summary},
    service,
};

/// How often the ring is drained (the programs only wake the reader when
/// it is half full) and held-back findings are checked: the longest a
/// record waits before it is written.
const TICK: Duration = Duration::from_millis(100);

pub struct Options {
    pub format: Format,
    pub filter: Filter,
    pub duration: Option<Duration>,
    pub kernel: String,
}

pub async fn run(mut hooks: Hooks, mut decoder: Decoder, options: Options) -> anyhow::Result<()> {
    // Before mapping the ring buffer, whose pages count in our RSS at once.
    release_startup_memory();
    let ring = RingBuf::try_from(hooks.ebpf.take_map("EVENTS").context("eBPF object has no EVENTS map")?)?;
    let counters: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(hooks.ebpf.take_map("COUNTERS").context("eBPF object has no COUNTERS map")?)?;
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
    // for as long as the AsyncFd (which owns the RingBuf) lives.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("cannot poll the ring buffer: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let deadline = tokio::time::sleep(options.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);

    let mut out = Writer::new(options.format, options.filter);
    let ready = output::ready_fields(hooks.strategy.as_str(), &hooks.attached, &options.kernel, &hooks.limitations);
    out.control(&ready, output::ready_sentence(&ready))?;
    service::ready();
    let watchdog = service::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));

    let started = Instant::now();
    let mut summary = Summary::default();
    let mut correlator = Correlator::new(Windows::default());
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                decoder.clock.refresh();
                drain(guard.get_inner_mut(), &decoder, &mut correlator, &mut summary, &mut out)?;
                guard.clear_ready();
            }
            _ = tick.tick() => {
                // The programs wake this reader only when the ring fills up:
                // the tick collects what arrived in between.
                decoder.clock.refresh();
                drain(ring.get_mut(), &decoder, &mut correlator, &mut summary, &mut out)?;
                let reports = correlator.tick(monotonic_ns());
                out.reports(reports, &mut summary)?;
                out.flush()?;
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => service::watchdog_ping(),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = &mut deadline => break,
        }
    }
    service::stopping();
    // Records submitted before the stop are still in the ring, findings are
    // still held back: write them all.
    drain(ring.get_mut(), &decoder, &mut correlator, &mut summary, &mut out)?;
    let reports = correlator.finish(monotonic_ns());
    out.reports(reports, &mut summary)?;
    summary.verdicts = correlator.verdict_counts().clone();
    summary.unwritten = out.unwritten;

    summary.lost = sum_counter(&counters, counter::LOST);
    summary.read_errors = sum_counter(&counters, counter::READ_ERRORS);
    summary.missed_runs = hooks.missed_runs();
    summary.duration = started.elapsed();
    out.control(&output::summary_fields(&summary), output::summary_sentence(&summary))?;
    Ok(())
}

fn drain(
    ring: &mut RingBuf<MapData>,
    decoder: &Decoder,
    correlator: &mut Correlator,
    summary: &mut Summary,
    out: &mut Writer,
) -> anyhow::Result<()> {
    while let Some(item) = ring.next() {
        let event = match decoder.decode(&item) {
            Ok(event) => event,
            Err(e) => {
                summary.undecodable += 1;
                log::warn!("dropping a record: {e}");
                continue;
            }
        };
        if let Some(kind) = counted_kind(&event) {
            *summary.counts.entry(kind).or_default() += 1;
        }
        let reports = correlator.push(event);
        out.reports(reports, summary)?;
    }
    out.flush()
}

/// The output kind an event counts as in the summary (follow-ups are part
/// of the collision they follow).
fn counted_kind(event: &Event) -> Option<EventKind> {
    match event {
        Event::Reset(r) => Some(r.kind),
        Event::TimeWait(t) => match t.kind {
            TimeWaitKind::Collision => Some(EventKind::TwCollision),
            TimeWaitKind::Killed => Some(EventKind::TwKilled),
            TimeWaitKind::Followup => None,
        },
    }
}

/// Loading parsed kernel BTF (aya does, ~20 MiB) and freed it; glibc keeps
/// freed heap mapped unless asked. A daemon should not sit on it for weeks.
fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn sum_counter(counters: &PerCpuArray<MapData, u64>, slot: u32) -> u64 {
    match counters.get(&slot, 0) {
        Ok(values) => values.iter().sum(),
        Err(e) => {
            log::warn!("cannot read the kernel's counter {slot}: {e}");
            0
        }
    }
}

/// Writes reports and control records in the chosen format.
struct Writer {
    format: Format,
    filter: Filter,
    sink: Box<dyn Write>,
    /// Journal entries journald did not take.
    unwritten: u64,
}

impl Writer {
    fn new(format: Format, filter: Filter) -> Self {
        let sink: Box<dyn Write> = match format {
            Format::TextOnStderr => Box::new(std::io::stderr()),
            // Block-buffered: stdout's own line buffering would make every
            // record a write(2); each drained batch is flushed instead.
            _ => Box::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())),
        };
        Writer { format, filter, sink, unwritten: 0 }
    }

    fn reports(&mut self, reports: Vec<Report>, summary: &mut Summary) -> anyhow::Result<()> {
        for report in reports {
            let (local, remote) = output::endpoints(&report);
            if !self.filter.matches(local, remote) {
                continue;
            }
            summary.reported += 1;
            let fields = output::fields(&report);
            match self.format {
                Format::Json => self.line(&output::json_line(&fields))?,
                Format::Text | Format::TextOnStderr => {
                    let time = fields["time"].as_str().unwrap_or_default();
                    self.line(&format!("{time} {}", output::sentence(&report)))?
                }
                Format::Journal => self.journal(output::priority(&report), &output::sentence(&report), &fields),
            }
        }
        Ok(())
    }

    fn control(&mut self, fields: &serde_json::Map<String, serde_json::Value>, sentence: String) -> anyhow::Result<()> {
        match self.format {
            Format::Json => self.line(&output::json_line(fields))?,
            Format::Text | Format::TextOnStderr => self.line(&sentence)?,
            Format::Journal => self.journal(libsystemd::logging::Priority::Info, &sentence, fields),
        }
        self.flush()
    }

    fn journal(
        &mut self,
        priority: libsystemd::logging::Priority,
        message: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) {
        if let Err(e) = journal::send(priority, message, fields) {
            if self.unwritten == 0 {
                log::warn!("journald did not take an entry ({e}); counting the ones it misses");
            }
            self.unwritten += 1;
        }
    }

    fn line(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.sink, "{line}").map_err(stdout_error)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.sink.flush().map_err(stdout_error)
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
