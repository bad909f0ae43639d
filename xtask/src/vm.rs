//! `cargo xtask vm-test`: the integration tests inside Debian kernels booted
//! under QEMU (TCG), in the manner of aya's xtask/test-distro. Kernels come
//! from Debian's archive by package name (`kernels.rs`), the guest is one
//! initramfs with a busybox init (`initramfs.rs`), and each boot's console is
//! streamed and read for the verdict (`console.rs`).

mod console;
mod initramfs;
mod kernels;

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::ValueEnum;

use kernels::{KERNELS, Kernel};

#[derive(clap::Args)]
pub struct Options {
    /// Kernels to boot: 5.10, 6.1, 6.12, 6.18, 7.x (comma-separated) or all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    kernel: Vec<String>,
    /// What the tests pass to `rsttrace --strategy` (RSTTRACE_TEST_STRATEGY);
    /// `all` runs, one boot each, every strategy listed for the kernel.
    #[arg(long, value_enum, default_value_t = StrategyChoice::Auto)]
    strategy: StrategyChoice,
    /// Time limit of one boot, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Fetch Debian's package lists again first (to pick up a newer kernel).
    #[arg(long)]
    refresh: bool,
    /// Guests booted at once, one emulated CPU each [default: this machine's
    /// CPUs].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Arguments for every test binary: a name filter, --exact, …
    #[arg(last = true)]
    args: Vec<String>,
}

impl Options {
    /// Every kernel, the whole suite, with the strategy rsttrace picks there.
    pub fn whole_suite(args: Vec<String>) -> Self {
        Self {
            kernel: vec!["all".into()],
            strategy: StrategyChoice::Auto,
            timeout: 900,
            refresh: false,
            jobs: None,
            args,
        }
    }

    /// Every kernel with each strategy it supports, one boot each, running
    /// the tests whose names contain one of `filters`.
    pub fn every_strategy(filters: &[&str]) -> Self {
        let args = filters.iter().map(|f| f.to_string()).collect();
        Self {
            kernel: vec!["all".into()],
            strategy: StrategyChoice::All,
            timeout: 900,
            refresh: false,
            jobs: None,
            args,
        }
    }
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum StrategyChoice {
    Auto,
    Tracepoint,
    Fexit,
    Kprobe,
    All,
}

/// An rsttrace `--strategy`.
#[derive(Clone, Copy, PartialEq)]
pub enum Strategy {
    Auto,
    Tracepoint,
    #[allow(dead_code)] // listed per kernel once rsttrace implements it
    Fexit,
    #[allow(dead_code)]
    Kprobe,
}

impl Strategy {
    fn as_str(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Tracepoint => "tracepoint",
            Strategy::Fexit => "fexit",
            Strategy::Kprobe => "kprobe",
        }
    }
}

const DEFAULT_CACHE: &str = "/var/cache/rsttrace-kernels";

pub fn run(root: &Path, options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let selected = select(&options.kernel)?;
    let cache =
        std::env::var_os("RSTTRACE_KERNEL_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE));
    std::fs::create_dir_all(&cache).with_context(|| {
        format!("cannot create the kernel cache {} (run as root or set RSTTRACE_KERNEL_CACHE)", cache.display())
    })?;
    let busybox = static_busybox()?;

    let mut images = Vec::new();
    for kernel in &selected {
        let image =
            kernels::fetch(kernel, &cache, options.refresh).with_context(|| format!("kernel {}", kernel.name))?;
        eprintln!("vm-test: {} is {} {} (uname -r {})", kernel.name, image.package, image.version, image.uname);
        let modules =
            kernels::modules(&image, kernel.modules).with_context(|| format!("modules of {}", image.package))?;
        images.push((*kernel, image, modules));
    }

    // Release builds: under TCG a debug rsttrace takes 9-12 s to start, a
    // release one 5 s, and each boot starts it dozens of times (the whole
    // suite on 7.3: 325 s -> 168 s); the archive shrinks from 173 MiB to 20.
    // `cargo xtask deb` builds the same release rsttrace.
    let rsttrace = cargo_executables(&["build", "--release", "-p", "rsttrace"], |m| {
        m["target"]["name"] == "rsttrace" && kind_is(m, "bin") && m["profile"]["test"] == false
    })?;
    let [rsttrace] = &rsttrace[..] else {
        bail!("cargo build --release -p rsttrace produced no rsttrace binary");
    };
    let tests = cargo_executables(&["test", "--release", "-p", "rsttrace", "--no-run"], |m| {
        m["profile"]["test"] == true && kind_is(m, "test")
    })?;
    if tests.is_empty() {
        bail!("cargo test --release -p rsttrace --no-run produced no integration test binary");
    }

    let out_dir = crate::target_dir()?.join("vm-test");
    std::fs::create_dir_all(&out_dir)?;
    let initrd = out_dir.join("initrd.cpio");
    let modules: Vec<_> = images.iter().map(|(_, image, modules)| (image.uname.clone(), modules.clone())).collect();
    // tcpdump: the tests' packet capture, their ground truth for resets.
    // nft: the router of the origin tests forges RSTs with nftables.
    // haproxy: the load balancer of tests/load_balancer.rs.
    let programs =
        [rsttrace.1.clone(), which("ip")?, which("setpriv")?, which("tcpdump")?, which("nft")?, which("haproxy")?];
    initramfs::write(
        &initrd,
        &initramfs::Contents {
            busybox: &busybox,
            tests: &tests,
            programs: &programs,
            cwd: &root.join("rsttrace"),
            args: &options.args,
            modules: &modules,
        },
    )?;
    eprintln!("vm-test: {} ({} MiB)", initrd.display(), std::fs::metadata(&initrd)?.len() >> 20);

    // Each guest emulates one CPU in one host thread: as many at once as the
    // host has CPUs (2 on CI's machines) halves the matrix's wall time.
    let boots: Vec<(&Kernel, &kernels::Image, Strategy)> = images
        .iter()
        .flat_map(|(kernel, image, _)| {
            strategies(options.strategy, kernel).into_iter().map(move |s| (*kernel, image, s))
        })
        .collect();
    let jobs = options.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(boots.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(kernel, image, strategy)) = boots.get(i) else { break };
                    let label = format!("{} {}", kernel.name, strategy.as_str());
                    let log = out_dir.join(format!("{}-{}.log", kernel.name, strategy.as_str()));
                    eprintln!(
                        "vm-test: booting {} {} with --strategy {}",
                        image.package,
                        image.version,
                        strategy.as_str()
                    );
                    let outcome = console::boot(&console::Boot {
                        label: label.clone(),
                        vmlinuz: &image.vmlinuz,
                        initrd: &initrd,
                        strategy: strategy.as_str(),
                        timeout: Duration::from_secs(options.timeout),
                        log: &log,
                        about: format!(
                            "{} {} (uname -r {}), RSTTRACE_TEST_STRATEGY={}, test args {:?}",
                            image.package,
                            image.version,
                            image.uname,
                            strategy.as_str(),
                            options.args
                        ),
                    });
                    done.lock().unwrap().push((i, kernel, image, strategy, outcome, log));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, ..)| *i);
    let mut rows: Vec<Row> = Vec::new();
    for (_, kernel, image, strategy, outcome, log) in done {
        rows.push((kernel, image, strategy, outcome?, log));
    }

    print_table(&rows);
    println!("total wall time {:.1}s", started.elapsed().as_secs_f64());

    let mut failed = Vec::new();
    for (kernel, _, strategy, o, log) in &rows {
        let Some(failure) = &o.failure else { continue };
        let label = format!("{} {}", kernel.name, strategy.as_str());
        println!("\n{label}: {failure} (console: {})", log.display());
        for (test, output) in &o.failures {
            println!("  {test}:");
            let output: Vec<&String> = output.iter().skip_while(|l| l.is_empty()).collect();
            for line in &output[output.len().saturating_sub(40)..] {
                println!("    {line}");
            }
        }
        failed.push(label);
    }
    if !failed.is_empty() {
        bail!("vm-test failed on {}", failed.join(", "));
    }
    Ok(())
}

type Row<'a> = (&'a Kernel, &'a kernels::Image, Strategy, console::Outcome, PathBuf);

fn print_table(rows: &[Row]) {
    let secs = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1}s", d.as_secs_f64()));
    let mut table = vec![
        ["kernel", "package", "strategy", "passed", "failed", "skipped", "boot", "tests", "wall", "result"]
            .map(String::from),
    ];
    for (kernel, image, strategy, o, _) in rows {
        table.push([
            kernel.name.to_string(),
            format!("{} {}", image.package, image.version),
            strategy.as_str().to_string(),
            o.passed.to_string(),
            o.failed.to_string(),
            o.skipped.len().to_string(),
            secs(o.boot),
            secs(o.tests),
            secs(Some(o.wall)),
            o.failure.clone().unwrap_or_else(|| "ok".into()),
        ]);
    }
    let widths: Vec<usize> =
        (0..table[0].len()).map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    println!();
    for row in &table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let width = widths[c];
            // Names left, numbers right, the result last and unpadded.
            match c {
                0..=2 => line.push_str(&format!("{cell:<width$}  ")),
                9 => line.push_str(cell),
                _ => line.push_str(&format!("{cell:>width$}  ")),
            }
        }
        println!("{line}");
    }
    println!("(skipped: tests that printed a line starting with `skipped`; also counted as passed or failed)");
    for (kernel, _, strategy, o, _) in rows {
        for (test, reason) in &o.skipped {
            println!("  {} {} skipped {test}: {reason}", kernel.name, strategy.as_str());
        }
    }
}

fn select(names: &[String]) -> anyhow::Result<Vec<&'static Kernel>> {
    let mut selected = Vec::new();
    for name in names {
        if name == "all" {
            selected.extend(KERNELS);
            continue;
        }
        let kernel = KERNELS.iter().find(|k| k.name == name).with_context(|| {
            let known: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
            format!("unknown kernel {name}: use {} or all", known.join(", "))
        })?;
        selected.push(kernel);
    }
    selected.dedup_by_key(|k| k.name);
    Ok(selected)
}

fn strategies(choice: StrategyChoice, kernel: &Kernel) -> Vec<Strategy> {
    match choice {
        StrategyChoice::All => kernel.strategies.to_vec(),
        StrategyChoice::Auto => vec![Strategy::Auto],
        StrategyChoice::Tracepoint => vec![Strategy::Tracepoint],
        StrategyChoice::Fexit => vec![Strategy::Fexit],
        StrategyChoice::Kprobe => vec![Strategy::Kprobe],
    }
}

fn kind_is(message: &serde_json::Value, kind: &str) -> bool {
    message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == kind))
}

/// Runs cargo with `--message-format=json` and returns (target name,
/// executable) of the compiler artifacts `wanted` selects.
fn cargo_executables(
    args: &[&str],
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut cmd = Command::new("cargo");
    cmd.args(args).arg("--message-format=json-render-diagnostics").stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot start {cmd:?}"))?;
    let mut found = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let message: serde_json::Value = serde_json::from_str(&line?)?;
        if message["reason"] == "compiler-artifact"
            && wanted(&message)
            && let Some(executable) = message["executable"].as_str()
        {
            let name = message["target"]["name"].as_str().unwrap_or("").to_string();
            found.push((name, PathBuf::from(executable)));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(found)
}

fn which(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{program} not found on PATH"))
}

/// The guest has no libc of its own for busybox: it must be static.
fn static_busybox() -> anyhow::Result<PathBuf> {
    let busybox = which("busybox").context("apt-get install busybox-static")?;
    let out = Command::new("ldd").arg(&busybox).output()?;
    if out.status.success() {
        bail!("{} is dynamically linked (apt-get install busybox-static)", busybox.display());
    }
    Ok(busybox)
}

/// Runs `cmd`, showing its output only when it fails.
fn run_quiet(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout.
fn command_output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
