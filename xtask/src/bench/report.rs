//! The runs as a markdown report: the machine, one table of throughput and
//! delivery per load and watcher, the reset checks, cost per program hit,
//! memory, and the targets.

use std::{collections::BTreeMap, fmt::Write as _, process::Command};

use super::{Bench, Options, Run, Variant, load::Load, tools, tools::Tool};

/// Where and how the figures were taken.
pub struct Machine {
    nproc: usize,
    cpu: String,
    kernel: String,
    memory: String,
    load_before: String,
    load_after: String,
    started: String,
    commit: String,
    command: String,
    versions: Vec<(&'static str, String)>,
    settings: String,
}

impl Machine {
    pub fn now(bench: &Bench, options: &Options) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_string();
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
            .map_or("?".into(), |kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0));
        let mut command = "cargo xtask bench".to_string();
        for arg in std::env::args().skip(2).filter(|a| a != "--no-build") {
            command += " ";
            command += &arg;
        }
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: first_line("uname", &["-r"]),
            memory,
            load_before: loadavg(),
            load_after: String::new(),
            started: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit: first_line("git", &["describe", "--always", "--dirty"]),
            command,
            versions: vec![
                ("rsttrace", first_line(&bench.rsttrace.to_string_lossy(), &["--version"])),
                ("bpftrace", tools::version("bpftrace")),
                ("tcpdump", tools::version("tcpdump")),
                ("bpftool", tools::version("bpftool")),
            ],
            settings: format!(
                "{} pairs, {} s per churn/reset run, floods of {} connections, {} client threads + 1 accept thread (serial-churn: 1 thread that connects, accepts and closes)",
                options.pairs, bench.seconds, bench.flood, bench.clients
            ),
        }
    }

    pub fn finish(mut self) -> Machine {
        self.load_after = loadavg();
        self
    }

    pub fn summary_line(&self) -> String {
        format!("{} CPUs ({}), kernel {}, load average {}", self.nproc, self.cpu, self.kernel, self.load_before)
    }
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "?".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
}

/// 1234567 -> "1,234,567".
fn int(value: f64) -> String {
    let negative = value < 0.0;
    let digits = (value.abs().round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if negative { format!("-{out}") } else { out }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn signed_mib(kib: i64) -> String {
    format!("{:+.1} MiB", kib as f64 / 1024.0)
}

fn opt(value: Option<f64>, f: impl Fn(f64) -> String) -> String {
    value.map_or("–".into(), f)
}

impl Run {
    fn elapsed(&self) -> f64 {
        self.outcome.elapsed.as_secs_f64().max(1e-9)
    }

    fn throughput(&self) -> f64 {
        self.outcome.rate(self.load)
    }

    /// What the kernel (or, for the churns' reuse, the load itself) says the
    /// watcher should have seen, when that is comparable with what it
    /// delivered.
    fn expected(&self) -> Option<i64> {
        let resets = self.kernel.out_rsts + self.kernel.attempt_fails;
        match (self.load, self.tool) {
            (Load::Resets, Tool::Rsttrace | Tool::Bpftrace) => Some(resets),
            // An RST kills at most one TIME_WAIT socket that a reuse would
            // otherwise have met.
            (Load::Churn | Load::SerialChurn, Tool::Rsttrace) => Some(self.outcome.reuse as i64 - self.kernel.out_rsts),
            (_, Tool::Tcpdump) => Some(self.kernel.out_rsts),
            _ => None,
        }
    }

    /// Records delivered of what `expected` counts (rsttrace: of the
    /// bench's namespace).
    fn delivered(&self) -> u64 {
        let Some(s) = &self.stopped else { return 0 };
        let get = |k: &str| s.delivered.get(k).copied().unwrap_or(0);
        match (self.load, self.tool) {
            (Load::Resets, _) if self.tool != Tool::Tcpdump => get("rst_sent") + get("rst_received"),
            (Load::Churn | Load::SerialChurn, Tool::Rsttrace) => get("tw_collision"),
            _ => s.delivered_total(),
        }
    }

    fn lost(&self) -> u64 {
        self.stopped.as_ref().map_or(0, |s| s.lost + s.read_errors)
    }

    /// Expected minus delivered minus counted as lost: above zero, records
    /// vanished without being counted.
    fn unaccounted(&self) -> Option<i64> {
        self.expected().map(|e| e - self.delivered() as i64 - self.lost() as i64)
    }

    /// Events per second the watcher handled: rsttrace's summary counts
    /// (every kind, every namespace), bpftrace's lines, tcpdump's packets.
    fn events_per_second(&self) -> f64 {
        let Some(s) = &self.stopped else { return 0.0 };
        let events = if self.tool == Tool::Rsttrace { s.summary_counts() } else { s.delivered_total() };
        events as f64 / self.elapsed()
    }

    fn sleeps_per_second(&self) -> f64 {
        self.sleeps as f64 / self.elapsed()
    }

    fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu_seconds / self.elapsed()
    }
}

pub fn progress_line(tag: &str, run: &Run) -> String {
    let mut line = format!("{tag}: {} {}", int(run.throughput()), run.load.unit());
    if run.tool != Tool::None {
        let _ = write!(
            line,
            ", cpu {:.0}%, {} sleeps/s, peak {}, {} events/s, delivered {}, lost {}",
            run.cpu_percent(),
            int(run.sleeps_per_second()),
            mib(run.peak_rss_kib),
            int(run.events_per_second()),
            int(run.delivered() as f64),
            int(run.lost() as f64)
        );
        if let Some(u) = run.unaccounted() {
            let _ =
                write!(line, ", expected {} (unaccounted {})", int(run.expected().unwrap_or(0) as f64), int(u as f64));
        }
    }
    if !run.outcome.errors.is_empty() {
        let _ = write!(line, ", errors {:?}", run.outcome.errors);
    }
    line
}

/// Pair runs of `tool` with the run without a watcher just before each.
fn pairs(runs: &[Run], load: Load, tool: Tool) -> Vec<(&Run, &Run)> {
    runs.windows(2)
        .filter(|w| {
            w[0].load == load
                && w[1].load == load
                && w[0].tool == Tool::None
                && w[1].tool == tool
                && w[1].variant == Variant::Pair
        })
        .map(|w| (&w[0], &w[1]))
        .collect()
}

struct Row {
    runs: usize,
    without: Option<f64>,
    with: Option<f64>,
    ratio: Option<f64>,
    events: Option<f64>,
    delivered: u64,
    lost: u64,
    expected: Option<i64>,
    unaccounted: Option<i64>,
    cpu: Option<f64>,
    sleeps: Option<f64>,
    peak_kib: u64,
}

fn row(runs: &[Run], load: Load, tool: Tool) -> Row {
    let pairs = pairs(runs, load, tool);
    let with: Vec<&Run> = pairs.iter().map(|p| p.1).collect();
    let sum_opt = |f: &dyn Fn(&Run) -> Option<i64>| -> Option<i64> { with.iter().map(|r| f(r)).sum() };
    Row {
        runs: pairs.len(),
        without: median(pairs.iter().map(|p| p.0.throughput()).collect()),
        with: median(with.iter().map(|r| r.throughput()).collect()),
        ratio: median(pairs.iter().map(|(a, b)| b.throughput() / a.throughput().max(1e-9)).collect()),
        events: median(with.iter().map(|r| r.events_per_second()).collect()),
        delivered: with.iter().map(|r| r.delivered()).sum(),
        lost: with.iter().map(|r| r.lost()).sum(),
        expected: sum_opt(&|r| r.expected()),
        unaccounted: sum_opt(&|r| r.unaccounted()),
        cpu: median(with.iter().map(|r| r.cpu_percent()).collect()),
        sleeps: median(with.iter().map(|r| r.sleeps_per_second()).collect()),
        peak_kib: runs.iter().filter(|r| r.load == load && r.tool == tool).map(|r| r.peak_rss_kib).max().unwrap_or(0),
    }
}

fn delivered_label(load: Load, tool: Tool) -> &'static str {
    match (load, tool) {
        (_, Tool::Tcpdump) => "RST packets captured; expected: Tcp OutRsts",
        (Load::Resets, Tool::Rsttrace) => {
            "rst_sent + rst_received records of the bench's namespace; expected: Tcp OutRsts + AttemptFails"
        }
        (Load::Resets, Tool::Bpftrace) => "reset lines; expected: Tcp OutRsts + AttemptFails",
        (Load::Churn | Load::SerialChurn, Tool::Rsttrace) => {
            "tw_collision SYNs, by their `count`; expected: connections whose client port was used < 60 s before (the load's own tally: the kernel has no counter) less Tcp OutRsts (an RST can kill the TIME_WAIT socket first), so an estimate"
        }
        (_, Tool::Bpftrace) => "lines of all four probes; lost: bpftrace's `Lost N events`",
        (Load::Flood, Tool::Rsttrace) => "records of the bench's namespace (none expected: no 4-tuple is reused)",
        _ => "",
    }
}

pub fn markdown(
    machine: &Machine,
    loads: &[Load],
    watchers: &[Tool],
    runs: &[Run],
    unavailable: &[(Tool, String)],
) -> String {
    let mut md = String::new();
    let m = machine;
    let _ = writeln!(md, "# rsttrace benchmark results\n");
    let _ = writeln!(md, "`{}` at {}, rsttrace {}.\n", m.command, m.started, m.commit);
    let _ = writeln!(md, "- machine: {} CPUs, {}, {} RAM, kernel {}", m.nproc, m.cpu, m.memory, m.kernel);
    let _ = writeln!(md, "- load average (1, 5, 15 min): {} before, {} after", m.load_before, m.load_after);
    let _ = writeln!(md, "- settings: {}", m.settings);
    let versions: Vec<String> = m.versions.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(md, "- {}\n", versions.join("; "));

    let _ = writeln!(md, "## Throughput, delivery, daemon cost\n");
    let _ = writeln!(
        md,
        "Medians over the interleaved pairs; *with/without* is the median of each pair's ratio. *Expected* is what the kernel counted (see the notes), *unaccounted* = expected − delivered − lost (above 0: vanished without being counted). CPU is the watcher's own utime+stime during the load, in % of one core; the eBPF programs' time is not in it (it is spent by the load, see the cost per hit). *Sleeps/s*: the watcher's voluntary context switches per second, i.e. how often it was woken.\n"
    );
    let _ = writeln!(
        md,
        "| load | watcher | pairs | without | with | with/without | events/s handled | delivered | lost | expected | unaccounted | CPU | sleeps/s | peak RSS |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut notes = Vec::new();
    for &load in loads {
        for &tool in watchers {
            if let Some((_, reason)) = unavailable.iter().find(|(t, _)| *t == tool) {
                let _ =
                    writeln!(md, "| {} | {} | – | could not run: {} ||||||||||", load.as_str(), tool.as_str(), reason);
                continue;
            }
            let r = row(runs, load, tool);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                load.as_str(),
                tool.as_str(),
                r.runs,
                opt(r.without, |v| format!("{} {}", int(v), load.unit())),
                opt(r.with, |v| format!("{} {}", int(v), load.unit())),
                opt(r.ratio, |v| format!("{v:.3}")),
                opt(r.events, int),
                int(r.delivered as f64),
                int(r.lost as f64),
                r.expected.map_or("–".into(), |e| int(e as f64)),
                r.unaccounted.map_or("–".into(), |u| int(u as f64)),
                opt(r.cpu, |v| format!("{v:.1}%")),
                opt(r.sleeps, int),
                mib(r.peak_kib),
            );
            let label = delivered_label(load, tool);
            if !label.is_empty() {
                notes.push(format!("{} / {}: {label}.", load.as_str(), tool.as_str()));
            }
        }
    }
    let _ = writeln!(md);
    for note in notes {
        let _ = writeln!(md, "- {note}");
    }
    let _ = writeln!(md);

    let kernel_notes: Vec<String> = loads
        .iter()
        .map(|&load| {
            let tw: Vec<f64> =
                runs.iter().filter(|r| r.load == load && r.tool == Tool::None).map(|r| r.kernel.tw_end as f64).collect();
            let overflow: i64 = runs.iter().filter(|r| r.load == load).map(|r| r.kernel.tw_overflow).sum();
            let rsts: Vec<f64> = runs
                .iter()
                .filter(|r| r.load == load && r.tool == Tool::None)
                .map(|r| r.kernel.out_rsts as f64 / r.elapsed())
                .collect();
            let errors: BTreeMap<String, u64> =
                runs.iter().filter(|r| r.load == load).flat_map(|r| r.outcome.errors.clone()).fold(
                    BTreeMap::new(),
                    |mut acc, (k, v)| {
                        *acc.entry(k).or_default() += v;
                        acc
                    },
                );
            format!(
                "{}: TIME_WAIT sockets in the namespace at the end of a run (median) {}, TIME_WAIT overflows {}, RSTs sent per second {}, load errors {:?}",
                load.as_str(),
                opt(median(tw), int),
                overflow,
                opt(median(rsts), int),
                errors
            )
        })
        .collect();
    let _ = writeln!(md, "Kernel side, runs without a watcher:\n");
    for note in kernel_notes {
        let _ = writeln!(md, "- {note}");
    }
    let _ = writeln!(md);

    let checks: Vec<&Run> = runs.iter().filter(|r| matches!(r.variant, Variant::Paced(_) | Variant::Paused)).collect();
    if !checks.is_empty() {
        let _ = writeln!(md, "## Reset accounting checks (rsttrace)\n");
        let _ = writeln!(
            md,
            "*paced*: the reset load held at the given rate. *reader stopped*: flat out, with rsttrace stopped (SIGSTOP) from 20 % to 70 % of the run, so the ring buffer overflows.\n"
        );
        let _ = writeln!(
            md,
            "| run | resets/s | kernel resets | delivered | lost | read errors | unaccounted | peak RSS |"
        );
        let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for r in checks {
            let name = match r.variant {
                Variant::Paced(rate) => format!("paced at {} resets/s", int(rate as f64)),
                _ => "flat out, reader stopped half the run".into(),
            };
            let s = r.stopped.as_ref();
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                int(r.throughput()),
                int(r.expected().unwrap_or(0) as f64),
                int(r.delivered() as f64),
                int(s.map_or(0, |s| s.lost) as f64),
                int(s.map_or(0, |s| s.read_errors) as f64),
                r.unaccounted().map_or("–".into(), |u| int(u as f64)),
                mib(r.peak_rss_kib)
            );
        }
        let _ = writeln!(md);
    }

    let profiles: Vec<&Run> =
        runs.iter().filter(|r| matches!(r.variant, Variant::Profile | Variant::ProfileStopped)).collect();
    if !profiles.is_empty() {
        let _ = writeln!(md, "## Cost per program hit\n");
        let _ = writeln!(
            md,
            "One extra run per load and watcher with BPF run-time statistics on (`kernel.bpf_stats_enabled`): `run_time_ns / run_cnt` per program, as `bpftool prog show` reports them. *per op*: the program's time per connection (churn, serial-churn, flood) or per refused attempt (resets, two resets each).\n"
        );
        let _ = writeln!(md, "| load | watcher | program | hits | hits/s | ns per hit | ns per op |");
        let _ = writeln!(md, "| --- | --- | --- | ---: | ---: | ---: | ---: |");
        for r in profiles {
            let ops = r.outcome.ops.max(1) as f64;
            let watcher = match r.variant {
                Variant::ProfileStopped => format!("{} (reader stopped)", r.tool.as_str()),
                _ => r.tool.as_str().to_string(),
            };
            let mut progs = r.progs.clone();
            progs.sort_by_key(|p| std::cmp::Reverse(p.run_time_ns));
            for p in &progs {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    r.load.as_str(),
                    watcher,
                    p.name,
                    int(p.run_cnt as f64),
                    int(p.run_cnt as f64 / r.elapsed()),
                    if p.run_cnt > 0 { int(p.run_time_ns as f64 / p.run_cnt as f64) } else { "–".into() },
                    int(p.run_time_ns as f64 / ops)
                );
            }
            let total: u64 = progs.iter().map(|p| p.run_time_ns).sum();
            let _ =
                writeln!(md, "| {} | {} | **all** | | | | **{}** |", r.load.as_str(), watcher, int(total as f64 / ops));
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "## Start-up\n");
    let _ = writeln!(
        md,
        "From starting the watcher until it watches (rsttrace: its ready record, all programs attached; bpftrace: its four programs loaded; tcpdump: `listening on`), polled every 10 ms, over every run of the bench.\n"
    );
    let _ = writeln!(md, "| watcher | starts | median | slowest |");
    let _ = writeln!(md, "| --- | ---: | ---: | ---: |");
    for &tool in watchers {
        let starts: Vec<f64> = runs
            .iter()
            .filter(|r| r.tool == tool)
            .filter_map(|r| r.ready_after)
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        if starts.is_empty() {
            continue;
        }
        let slowest = starts.iter().copied().fold(0.0, f64::max);
        let (count, median) = (starts.len(), median(starts));
        let _ = writeln!(md, "| {} | {count} | {} ms | {} ms |", tool.as_str(), opt(median, int), int(slowest));
    }
    let _ = writeln!(md);

    let _ = writeln!(md, "## Memory\n");
    let _ = writeln!(
        md,
        "Watcher's VmRSS at load start and end (medians over its runs), the largest sample (every 100 ms) and peak (VmHWM) over all its runs of the load.\n"
    );
    let _ = writeln!(md, "| load | watcher | RSS at start | RSS at end | growth (max) | largest sample | peak |");
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for &load in loads {
        for &tool in watchers {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.load == load && r.tool == tool).collect();
            if mine.is_empty() {
                continue;
            }
            let growth = mine.iter().map(|r| r.rss_max_kib as i64 - r.rss_start_kib as i64).max().unwrap_or(0);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                load.as_str(),
                tool.as_str(),
                opt(median(mine.iter().map(|r| r.rss_start_kib as f64).collect()), |v| mib(v as u64)),
                opt(median(mine.iter().map(|r| r.rss_end_kib as f64).collect()), |v| mib(v as u64)),
                signed_mib(growth),
                mib(mine.iter().map(|r| r.rss_max_kib).max().unwrap_or(0)),
                mib(mine.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0)),
            );
        }
    }
    let _ = writeln!(md);
    for &load in loads {
        let Some(r) = runs.iter().rev().find(|r| r.load == load && !r.memory_map.is_empty()) else { continue };
        let parts: Vec<String> = r
            .memory_map
            .iter()
            .filter(|(_, kib)| *kib >= 100)
            .map(|(kind, kib)| format!("{kind} {}", mib(*kib)))
            .collect();
        let _ = writeln!(md, "- rsttrace's RSS at the end of a {} run: {}", load.as_str(), parts.join(", "));
    }
    let _ = writeln!(md);
    if let Some(r) = runs.iter().find(|r| !r.maps.is_empty()) {
        let _ = writeln!(md, "rsttrace's BPF maps (kernel memory, `bpftool map show`, not in its RSS):\n");
        let _ = writeln!(md, "| map | type | max entries | bytes (memlock) |");
        let _ = writeln!(md, "| --- | --- | ---: | ---: |");
        let mut maps = r.maps.clone();
        maps.sort_by_key(|m| std::cmp::Reverse(m.bytes_memlock));
        for m in &maps {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                m.name,
                m.kind,
                int(m.max_entries as f64),
                int(m.bytes_memlock as f64)
            );
        }
        let total: u64 = maps.iter().map(|m| m.bytes_memlock).sum();
        let _ = writeln!(md, "| **all** | | | **{}** ({}) |\n", int(total as f64), mib(total / 1024));
    }

    if watchers.contains(&Tool::Rsttrace) && !unavailable.iter().any(|(t, _)| *t == Tool::Rsttrace) {
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | measured | holds |");
        let _ = writeln!(md, "| --- | --- | --- |");
        for (target, measured, holds) in targets(loads, runs) {
            let _ = writeln!(md, "| {target} | {measured} | {holds} |");
        }
        let _ = writeln!(md);
    }
    md
}

fn verdict(holds: Option<bool>) -> &'static str {
    match holds {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "not measured",
    }
}

fn targets(loads: &[Load], runs: &[Run]) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    let rst = |load: Load| runs.iter().filter(move |r| r.load == load && r.tool == Tool::Rsttrace);
    for (load, min) in [(Load::Churn, 0.98), (Load::SerialChurn, 0.95)] {
        if loads.contains(&load) {
            let ratio = row(runs, load, Tool::Rsttrace).ratio;
            out.push((
                format!("{} throughput with rsttrace ≥ {min:.2} × without", load.as_str()),
                opt(ratio, |v| format!("{v:.3}")),
                verdict(ratio.map(|v| v >= min)),
            ));
        }
    }
    if loads.contains(&Load::Resets) {
        let storm = row(runs, Load::Resets, Tool::Rsttrace);
        let tcpdump = row(runs, Load::Resets, Tool::Tcpdump).ratio;
        out.push((
            "resets throughput with rsttrace ≥ 0.95 × without".into(),
            opt(storm.ratio, |v| format!("{v:.3}")),
            verdict(storm.ratio.map(|v| v >= 0.95)),
        ));
        out.push((
            "resets: rsttrace's ratio at or above tcpdump's (same run)".into(),
            format!("{} against {}", opt(storm.ratio, |v| format!("{v:.3}")), opt(tcpdump, |v| format!("{v:.3}"))),
            verdict(storm.ratio.zip(tcpdump).map(|(r, t)| r >= t)),
        ));
        out.push((
            "daemon CPU under the reset storm < 10 % of a core".into(),
            opt(storm.cpu, |v| format!("{v:.1} %")),
            verdict(storm.cpu.map(|c| c < 10.0)),
        ));
        match rst(Load::Resets).find(|r| matches!(r.variant, Variant::Paced(_))) {
            Some(r) => {
                let Variant::Paced(target) = r.variant else { unreachable!() };
                let reached = r.throughput() >= 0.95 * target as f64;
                let measured = format!(
                    "{} resets/s reached, {} lost, {} read errors",
                    int(r.throughput()),
                    int(r.stopped.as_ref().map_or(0, |s| s.lost) as f64),
                    int(r.stopped.as_ref().map_or(0, |s| s.read_errors) as f64)
                );
                let holds = match (reached, r.lost() == 0) {
                    (_, false) => "**no**",
                    (true, true) => "yes",
                    (false, true) => "not reached: the load is slower",
                };
                out.push((format!("zero records lost at {} resets/s", int(target as f64)), measured, holds));
            }
            None => out.push(("zero records lost at 100,000 resets/s".into(), "no paced run".into(), verdict(None))),
        }
        let checked: Vec<&Run> = rst(Load::Resets).collect();
        let vanished: i64 = checked.iter().filter_map(|r| r.unaccounted()).filter(|&u| u > 0).sum();
        let lost: u64 = checked.iter().map(|r| r.lost()).sum();
        out.push((
            "every reset beyond capacity counted as lost (delivered + lost ≥ kernel count)".into(),
            format!(
                "{} rsttrace reset runs, {} records counted lost, {} vanished",
                checked.len(),
                int(lost as f64),
                int(vanished as f64)
            ),
            verdict((!checked.is_empty()).then_some(vanished == 0)),
        ));
    }
    let peaks: Vec<String> = loads
        .iter()
        .filter_map(|&l| rst(l).map(|r| r.peak_rss_kib).max().map(|p| format!("{} {}", l.as_str(), mib(p))))
        .collect();
    let peak = loads.iter().flat_map(|&l| rst(l).map(|r| r.peak_rss_kib)).max();
    out.push((
        "daemon peak RSS ≤ 32 MiB under every load".into(),
        peaks.join(", "),
        verdict(peak.map(|p| p <= 32 * 1024)),
    ));
    if loads.contains(&Load::Flood) {
        let growth = rst(Load::Flood).map(|r| r.rss_max_kib as i64 - r.rss_start_kib as i64).max();
        let tw = median(runs.iter().filter(|r| r.load == Load::Flood).map(|r| r.kernel.tw_end as f64).collect());
        out.push((
            "memory flat under the TIME_WAIT flood (RSS growth during the load ≤ 1 MiB)".into(),
            format!(
                "largest growth {}, with {} TIME_WAIT sockets (table: 65,536)",
                growth.map_or("–".into(), signed_mib),
                opt(tw, int)
            ),
            verdict(growth.map(|g| g <= 1024)),
        ));
    }
    out
}
