//! The run loop: read the ring buffer as records arrive (and the kernel's
//! counts every second), decode, correlate, count, filter, name the owners,
//! write; stop on SIGINT/SIGTERM or --duration and write the summary.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use rsttrace_common::record::counter;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    events::{
        clock::monotonic_ns,
        correlate::{Correlator, Windows},
        decode::Decoder,
        filter::Filter,
        kernel_counts::KernelCounts,
    },
    kernel::hooks::Hooks,
    output::{
        Format,
        metrics::Metrics,
        record::{Ready, Summary, Timestamp},
        sink::Sink,
    },
    owners::Owners,
    pipeline::Pipeline,
    service,
};

/// How often the ring is drained (the programs only wake the reader when
/// it is half full) and held-back findings are checked: the longest a
/// record waits before it is written.
const TICK: Duration = Duration::from_millis(100);

/// How long the stop waits for records that programs reserved before it
/// and were still filling: microseconds, unless their CPU was interrupted.
const UNFINISHED_RECORD_WAIT: Duration = Duration::from_millis(500);

pub struct Options {
    pub format: Format,
    pub filter: Filter,
    pub duration: Option<Duration>,
    pub kernel: String,
    pub metrics: Option<MetricsEndpoint>,
}

/// `--metrics`: the socket already bound, and the ports to label.
pub struct MetricsEndpoint {
    pub listener: std::net::TcpListener,
    pub port_labels: Vec<u16>,
}

pub async fn run(mut hooks: Hooks, decoder: Decoder, options: Options) -> anyhow::Result<()> {
    // Before mapping the ring buffer, whose pages count in our RSS at once.
    release_startup_memory();
    let ring = RingBuf::try_from(hooks.ebpf.take_map("EVENTS").context("eBPF object has no EVENTS map")?)?;
    let counters: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(hooks.ebpf.take_map("COUNTERS").context("eBPF object has no COUNTERS map")?)?;
    let mut counted = KernelCounts::take(&mut hooks.ebpf, monotonic_ns())?;
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
    // for as long as the AsyncFd (which owns the RingBuf) lives.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("cannot poll the ring buffer: {e}"))?;
    let positions = RingPositions::map(ring.get_ref())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let deadline = tokio::time::sleep(options.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);

    let ready = Ready::new(hooks.strategy, hooks.attached.clone(), options.kernel.clone(), &hooks.limitations);
    let metrics = match options.metrics {
        Some(endpoint) => {
            let metrics = Metrics::new(&ready, &endpoint.port_labels);
            metrics.serve(endpoint.listener)?;
            Some(metrics)
        }
        None => None,
    };
    let sink = Sink::new(options.format);
    let correlator = Correlator::new(Windows::default());
    let mut pipeline = Pipeline::new(decoder, correlator, sink, options.filter, metrics, Owners::new());
    pipeline.ready(Timestamp(std::time::SystemTime::now()), &ready)?;
    service::ready();
    let watchdog = service::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));

    let started = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut pipeline)?;
                guard.clear_ready();
            }
            _ = tick.tick() => {
                // The programs wake this reader only when the ring fills up:
                // the tick collects what arrived in between.
                drain(ring.get_mut(), &mut pipeline)?;
                for event in counted.tick(monotonic_ns(), &pipeline.decoder) {
                    pipeline.event(event)?;
                }
                pipeline.tick(monotonic_ns())?;
                if pipeline.has_metrics() {
                    kernel_counts(&hooks, &counters, &mut pipeline.summary);
                    pipeline.publish_totals();
                }
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => service::watchdog_ping(),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = &mut deadline => break,
        }
    }
    service::stopping();
    // Records written before the stop are still in the ring, findings are
    // still held back: write them all. A record reserved before the stop
    // may still be being filled (its program interrupted, on another CPU):
    // the ring is read up to the stop's producer position, the later
    // records behind the unfinished one included.
    let stop_position = positions.producer();
    let waiting_since = Instant::now();
    loop {
        drain(ring.get_mut(), &mut pipeline)?;
        let unread = stop_position.saturating_sub(positions.consumer());
        if unread == 0 {
            break;
        }
        if waiting_since.elapsed() >= UNFINISHED_RECORD_WAIT {
            pipeline.summary.unfinished_bytes = unread;
            log::warn!(
                "{unread} bytes of records were still being written {} ms after the stop; rsttrace stops without them",
                UNFINISHED_RECORD_WAIT.as_millis()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for event in counted.finish(monotonic_ns(), &pipeline.decoder) {
        pipeline.event(event)?;
    }
    pipeline.finish(monotonic_ns())?;
    kernel_counts(&hooks, &counters, &mut pipeline.summary);
    pipeline.summary.duration_ms = started.elapsed().as_millis() as u64;
    pipeline.summary(Timestamp(std::time::SystemTime::now()))?;
    pipeline.flush()
}

/// Everything the ring holds now, through the pipeline.
fn drain(ring: &mut RingBuf<MapData>, pipeline: &mut Pipeline) -> anyhow::Result<()> {
    pipeline.decoder.clock.refresh();
    while let Some(item) = ring.next() {
        pipeline.record(&item)?;
    }
    pipeline.flush()
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

/// What the kernel counted: records lost, failed reads, skipped runs.
fn kernel_counts(hooks: &Hooks, counters: &PerCpuArray<MapData, u64>, summary: &mut Summary) {
    summary.lost = sum_counter(counters, counter::LOST);
    summary.read_errors = sum_counter(counters, counter::READ_ERRORS);
    summary.connections_unkept = sum_counter(counters, counter::UNKEPT);
    summary.missed_runs = hooks.missed_runs();
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

/// The ring buffer's consumer and producer positions, mapped read-only
/// beside aya's own mapping: aya's reader stops at a record still being
/// written and does not say whether more follow. Page 0 of the map holds
/// the consumer position, page 1 the producer position (the kernel's ring
/// buffer layout).
struct RingPositions {
    consumer: memmap2::Mmap,
    producer: memmap2::Mmap,
}

impl RingPositions {
    fn map(ring: &RingBuf<MapData>) -> anyhow::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let map_page = |page: usize| {
            // SAFETY: a read-only shared mapping of one page of the ring's
            // map fd, which outlives it (the daemon holds the ring).
            unsafe { memmap2::MmapOptions::new().offset((page * page_size) as u64).len(page_size).map(ring) }
                .map_err(|e| anyhow::anyhow!("cannot map the ring buffer's positions: {e}"))
        };
        Ok(Self { consumer: map_page(0)?, producer: map_page(1)? })
    }

    fn consumer(&self) -> u64 {
        load(&self.consumer)
    }

    fn producer(&self) -> u64 {
        load(&self.producer)
    }
}

/// The position at the start of a mapped page, written by the kernel or
/// aya's reader with release ordering.
fn load(page: &memmap2::Mmap) -> u64 {
    // SAFETY: a page-aligned mapping of at least 8 bytes.
    unsafe { (*(page.as_ptr() as *const std::sync::atomic::AtomicU64)).load(std::sync::atomic::Ordering::Acquire) }
}
