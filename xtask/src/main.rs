//! Developer tasks. Every task first runs the part of `xtask/bootstrap.sh`
//! it needs ([`Needs`]), which installs what is missing of it: `run` only
//! what building and running need (LLVM for bpf-linker, nightly `rust-src`,
//! bpf-linker), `clippy` that and clippy, every other task everything (the
//! tests' packages, QEMU, the benchmarks' tools, cargo-deb).
//!
//!   cargo xtask run -- [ARGS]   build rsttrace (release) and run it as root
//!   cargo xtask test [--host]   unit and integration tests (as root), then
//!                               the same in Debian kernels under QEMU
//!   cargo xtask clippy          both clippy passes, warnings are errors
//!   cargo xtask deb             the Debian package, checked (target/debian/)
//!   cargo xtask setup           only the set-up, all of it

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

mod bench;
mod deb;
#[cfg(test)]
mod fleet;
mod host_tests;
mod libtest;
mod vm;

#[derive(Parser)]
#[command(about = "rsttrace developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install whatever any task needs and is missing (Debian packages,
    /// nightly rust-src, bpf-linker, cargo-deb) and mount tracefs and bpffs.
    Setup,
    /// Build rsttrace in release mode and run it as root with ARGS.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// The whole test suite: unit and integration tests on this kernel, then
    /// the integration tests in Debian's 5.10, 6.1, 6.12, 6.18 and newest 7.x
    /// under QEMU.
    Test {
        /// Only this machine's kernel (no QEMU).
        #[arg(long)]
        host: bool,
        /// Extra arguments for the test binaries (a test name filter,
        /// --nocapture …); with a filter the strategy pass is left out.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Clippy over userspace and over the eBPF crate (bpf target).
    Clippy,
    /// Run the integration tests inside Debian kernels (5.10, 6.1, 6.12, 6.18,
    /// 7.x) booted under QEMU.
    VmTest(vm::Options),
    /// Build the Debian package (cargo-deb) with its man pages and shell
    /// completions, and check what it holds.
    Deb,
    /// Measure rsttrace's overhead under churn (two clients, and one thread
    /// alone), reset storm and TIME_WAIT flood, against bpftrace and tcpdump
    /// (BENCHMARKS.md).
    Bench(bench::Options),
}

/// What a task needs installed: which part of `xtask/bootstrap.sh` it runs.
#[derive(Clone, Copy)]
enum Needs {
    /// Building and running rsttrace: LLVM for bpf-linker, nightly with
    /// rust-src, bpf-linker; tracefs and bpffs mounted.
    Build,
    /// `Build`, and clippy on stable and nightly.
    Clippy,
    /// Everything: also the tests' packages (tcpdump, nftables, Prometheus,
    /// HAProxy, …), QEMU, bpftrace and bpftool, cargo-deb, rustfmt.
    Everything,
}

impl Needs {
    /// The argument `xtask/bootstrap.sh` takes for this part.
    fn bootstrap_part(self) -> &'static str {
        match self {
            Needs::Build => "build",
            Needs::Clippy => "clippy",
            Needs::Everything => "all",
        }
    }
}

impl Task {
    fn needs(&self) -> Needs {
        match self {
            Task::Run { .. } => Needs::Build,
            Task::Clippy => Needs::Clippy,
            Task::Setup | Task::Test { .. } | Task::VmTest(_) | Task::Deb | Task::Bench(_) => Needs::Everything,
        }
    }
}

fn main() -> std::process::ExitCode {
    // One line, without a backtrace (CI environments set RUST_BACKTRACE):
    // the last lines of a failed run then say what failed.
    match run_task(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_task(cli: Cli) -> anyhow::Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    setup(&root, cli.task.needs())?;
    match cli.task {
        Task::Setup => Ok(()),
        Task::Run { args } => {
            cargo(&["build", "--release", "--package", "rsttrace"])?;
            let binary = target_dir()?.join("release/rsttrace");
            let mut cmd = as_root(&binary);
            cmd.args(args);
            // Exit with rsttrace's own status (1 and 2 mean different things).
            let status = cmd.status().with_context(|| format!("cannot start {}", binary.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Test { host, args } => {
            let mut cmd = Command::new("cargo");
            // The eBPF crate only builds for the bpf target (rsttrace/build.rs).
            // Every test binary runs, so the counts below cover the suite.
            cmd.args(["test", "--workspace", "--exclude", "rsttrace-ebpf", "--no-fail-fast"]);
            if !is_root() {
                // Integration tests load eBPF programs and create namespaces.
                cmd.args(["--config", "target.'cfg(all())'.runner = 'sudo -E'"]);
            }
            // Root-only tests are #[ignore]d for a plain `cargo test`;
            // --show-output prints what passing tests said, skips included.
            cmd.args(["--", "--include-ignored", "--show-output"]).args(&args);
            let outcome = host_tests::run(cmd)?;
            outcome.print(std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim());
            if !outcome.success {
                bail!("the tests on this machine's kernel failed");
            }
            if args.is_empty() {
                untyped_pass()?;
            }
            if host {
                return Ok(());
            }
            let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
            let filtered = !args.is_empty();
            vm::run(&root, vm::Options::whole_suite(args))?;
            if !filtered {
                vm::run(&root, vm::Options::every_strategy(STRATEGY_SCENARIOS))?;
            }
            Ok(())
        }
        Task::VmTest(options) => vm::run(&root, options),
        Task::Deb => deb::run_task(),
        Task::Bench(options) => bench::run(options),
        Task::Clippy => {
            cargo(&["clippy", "--workspace", "--exclude", "rsttrace-ebpf", "--all-targets", "--", "-D", "warnings"])?;
            cargo(&[
                &format!("+{}", include_str!("../../rust-nightly").trim()),
                "clippy",
                "--package",
                "rsttrace-ebpf",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ])
        }
    }
}

/// The tests run once more with every hook strategy each kernel supports:
/// where strategies differ. They observe TIME_WAIT differently
/// (rsttrace/tests/timewait.rs), and the segment of a received RST comes
/// from a fentry or a kprobe on tcp_reset(), or not at all (its TTL, and
/// whether it was an RST or the kernel's own abort; origin.rs, resets.rs).
/// IPv4 only for the second kind: the families share those hooks. The
/// keep-alive pool race and a peer on the link under a default gateway: the
/// cause and origin of a reset, judged with what each strategy shows.
/// The scenarios run a second time on this machine with the raw
/// tracepoints' programs (`RSTTRACE_NO_TP_BTF`): every kernel of the matrix
/// takes the BTF-typed ones, and the others, for kernels that do not, would
/// go untested. One scenario per program and path: TIME_WAIT entry and reuse,
/// kills, resets sent and received one by one and as a storm, discarded RSTs.
const UNTYPED_SCENARIOS: &[&str] = &[
    "seed_case_ipv4",
    "harmless_reuse_is_aggregated",
    "rst_kills_a_timewait_socket",
    "closed_port_ipv6",
    "refused_storm_ipv4",
    "linger_abort_ipv4",
    "idle_time_of_a_received_reset",
    "every_arriving_rst_is_accounted_for_ipv4",
    "pool_race_ipv4",
];

/// `cargo test` of `UNTYPED_SCENARIOS` with `RSTTRACE_NO_TP_BTF` set.
fn untyped_pass() -> anyhow::Result<()> {
    println!("\nthe same on this machine with the raw tracepoints' programs (RSTTRACE_NO_TP_BTF=1):");
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--exclude", "rsttrace-ebpf", "--no-fail-fast"]);
    if !is_root() {
        cmd.args(["--config", "target.'cfg(all())'.runner = 'sudo -E'"]);
    }
    cmd.env("RSTTRACE_NO_TP_BTF", "1");
    cmd.args(["--", "--include-ignored", "--show-output"]).args(UNTYPED_SCENARIOS);
    let outcome = host_tests::run(cmd)?;
    outcome.print(&format!(
        "{}, raw tracepoints' programs",
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim()
    ));
    if !outcome.success {
        bail!("the tests with the raw tracepoints' programs failed");
    }
    Ok(())
}

const STRATEGY_SCENARIOS: &[&str] = &[
    "seed_case",
    "rst_kills",
    "harmless_reuse",
    "loopback_churn",
    "no_verdict_without_a_time_wait_socket",
    "paws_rejects_an_old_timestamp",
    "forged_reset_seen_by_the_server_ipv4",
    "forged_reset_seen_by_the_client_ipv4",
    "the_peers_own_abort_through_the_router_ipv4",
    "abort_on_data_reports_no_received_reset",
    "behind_haproxy",
    "pool_race_ipv4",
    "on_link_peer_with_a_default_gateway",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the workspace").to_path_buf()
}

/// Where cargo builds, as cargo itself resolves it (`CARGO_TARGET_DIR`,
/// relative or not, or `build.target-dir` in a config file): the binaries
/// `run`, `bench`, `deb` and `vm-test` use are the ones cargo just built.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let output = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cannot start cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).context("cargo metadata's output")?;
    let dir = metadata["target_directory"].as_str().context("cargo metadata names no target_directory")?;
    Ok(PathBuf::from(dir))
}

fn setup(root: &Path, needs: Needs) -> anyhow::Result<()> {
    let part = needs.bootstrap_part();
    let mut cmd = as_root(Path::new("bash"));
    cmd.arg(root.join("xtask/bootstrap.sh")).arg(part);
    run(cmd).with_context(|| format!("set-up failed (xtask/bootstrap.sh {part})"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program` directly as root, or through sudo, keeping the environment
/// (PATH, CARGO_HOME, RUSTUP_HOME).
fn as_root(program: &Path) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut cmd = Command::new("sudo");
        cmd.arg("-E").arg(program);
        cmd
    }
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.args(args);
    run(cmd)
}

fn run(mut cmd: Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
