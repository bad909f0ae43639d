//! One boot: QEMU (TCG) with the serial console on a pipe, streamed to the
//! terminal line by line with a `[kernel strategy]` prefix and read for the
//! init's markers, libtest's results and signs of a dying kernel.

use std::{
    fs::File,
    io::{Read, Write},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::libtest::{self, Capture};

/// Console text that means the kernel is going down: stop the run.
const FATAL: &[&str] = &["Kernel panic", "soft lockup", "BUG:"];
/// After a fatal line, how long to keep reading (the stack trace follows).
const FATAL_GRACE: Duration = Duration::from_secs(2);

pub struct Boot<'a> {
    pub label: String,
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub strategy: &'a str,
    pub timeout: Duration,
    pub log: &'a Path,
    /// First line of the log: what was booted.
    pub about: String,
}

/// What one boot showed.
#[derive(Default)]
pub struct Outcome {
    /// The failure, when the run did not end with `rsttrace-vm: success`.
    pub failure: Option<String>,
    pub passed: u32,
    pub failed: u32,
    /// binary::test names whose output had a line starting with `skipped`,
    /// with the first such line.
    pub skipped: Vec<(String, String)>,
    /// binary::test of each failed test, with its output.
    pub failures: Vec<(String, Vec<String>)>,
    /// From starting QEMU to the init's first line.
    pub boot: Option<Duration>,
    /// From the init's first line to the verdict.
    pub tests: Option<Duration>,
    pub wall: Duration,
}

/// Output of QEMU as it arrives: the serial console (stdout) or QEMU's own
/// messages (stderr).
enum Chunk {
    Console(Vec<u8>),
    Qemu(Vec<u8>),
}

pub fn boot(boot: &Boot) -> anyhow::Result<Outcome> {
    let append = format!("console=ttyS0 panic=-1 loglevel=4 rsttrace.strategy={}", boot.strategy);
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1"])
        .arg("-kernel")
        .arg(boot.vmlinuz)
        .arg("-initrd")
        .arg(boot.initrd)
        .args(["-append", &append])
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .args(["-no-reboot", "-nic", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    let (tx, rx) = mpsc::channel();
    forward(child.stdout.take().unwrap(), tx.clone(), Chunk::Console);
    forward(child.stderr.take().unwrap(), tx, Chunk::Qemu);

    let mut log = File::create(boot.log).with_context(|| format!("create {}", boot.log.display()))?;
    writeln!(log, "# {}", boot.about)?;
    let mut console = Console {
        label: &boot.label,
        log,
        started,
        parser: Parser::new(),
        stop_at: None,
        pending: [Vec::new(), Vec::new()],
    };
    let deadline = started + boot.timeout;
    loop {
        let until = console.stop_at.unwrap_or(deadline).min(deadline);
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Chunk::Console(bytes)) => console.receive(0, &bytes)?,
            Ok(Chunk::Qemu(bytes)) => console.receive(1, &bytes)?,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A hanging test has printed `test NAME ... ` without a newline.
                console.flush()?;
                if console.stop_at.is_none() {
                    let running = console.parser.libtest.current_test().map(|t| format!(" (running {t})"));
                    console.parser.fail(format!(
                        "timeout: no verdict after {} s{}",
                        boot.timeout.as_secs(),
                        running.unwrap_or_default()
                    ));
                }
                break;
            }
        }
    }
    console.flush()?;
    let status = stop(&mut child);
    if console.parser.verdict.is_none() && console.parser.failure.is_none() {
        // With -no-reboot a guest reset (a triple fault prints nothing) ends QEMU.
        let why = format!("QEMU exited ({status}) before the verdict: the guest reset or stopped");
        println!("[{}] vm-test: {why}", boot.label);
        console.parser.fail(why);
    }
    let mut outcome = console.parser.finish();
    outcome.wall = started.elapsed();
    Ok(outcome)
}

/// Splits what QEMU writes into lines, shows and logs them, and reads them.
struct Console<'a> {
    label: &'a str,
    log: File,
    started: Instant,
    parser: Parser,
    /// Set when the kernel is dying: read on until then for its stack trace.
    stop_at: Option<Instant>,
    /// Incomplete last line of the console and of QEMU's stderr.
    pending: [Vec<u8>; 2],
}

impl Console<'_> {
    fn receive(&mut self, stream: usize, bytes: &[u8]) -> anyhow::Result<()> {
        self.pending[stream].extend_from_slice(bytes);
        while let Some(end) = self.pending[stream].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending[stream].drain(..=end).collect();
            self.line(stream, &line)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        for stream in 0..2 {
            if !self.pending[stream].is_empty() {
                let line = std::mem::take(&mut self.pending[stream]);
                self.line(stream, &line)?;
            }
        }
        Ok(())
    }

    fn line(&mut self, stream: usize, bytes: &[u8]) -> anyhow::Result<()> {
        let text = String::from_utf8_lossy(bytes).replace(['\r', '\n'], "");
        let shown = if stream == 0 { text.clone() } else { format!("qemu: {text}") };
        println!("[{}] {shown}", self.label);
        writeln!(self.log, "{shown}")?;
        if stream != 0 {
            return Ok(());
        }
        let parser = &mut self.parser;
        if parser.boot.is_none() && text.starts_with("rsttrace-vm: init") {
            parser.boot = Some(self.started.elapsed());
        }
        if text.starts_with("rsttrace-vm: success") || text.starts_with("rsttrace-vm: failure") {
            parser.tests = Some(self.started.elapsed() - parser.boot.unwrap_or_default());
        }
        if self.stop_at.is_none()
            && let Some(sign) = FATAL.iter().find(|f| text.contains(*f))
        {
            parser.fail(format!("kernel: {sign} ({})", text.trim()));
            self.stop_at = Some(Instant::now() + FATAL_GRACE);
        }
        parser.line(&text);
        Ok(())
    }
}

/// Ends QEMU if it still runs; its exit status, or how it was stopped.
fn stop(child: &mut Child) -> String {
    let killed = matches!(child.try_wait(), Ok(None)) && child.kill().is_ok();
    match child.wait() {
        _ if killed => "killed by vm-test".into(),
        Ok(status) => status.to_string(),
        Err(e) => e.to_string(),
    }
}

/// Sends what `from` yields, as it comes, until it closes.
fn forward(mut from: impl Read + Send + 'static, to: mpsc::Sender<Chunk>, wrap: fn(Vec<u8>) -> Chunk) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.send(wrap(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// Reads the guest init's markers (`rsttrace-vm: running BINARY`, then the
/// verdict) and libtest's `--nocapture --test-threads=1` output between them.
struct Parser {
    libtest: libtest::Reader,
    verdict: Option<String>,
    failure: Option<String>,
    boot: Option<Duration>,
    tests: Option<Duration>,
}

impl Parser {
    fn new() -> Self {
        Parser { libtest: libtest::Reader::new(Capture::Inline), verdict: None, failure: None, boot: None, tests: None }
    }

    fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }

    fn line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("rsttrace-vm: ") {
            if let Some(running) = rest.strip_prefix("running ") {
                self.libtest.start_binary(running.split(' ').next().unwrap_or(""));
            } else if rest == "success" || rest.starts_with("failure") {
                self.verdict = Some(rest.to_string());
            }
            return;
        }
        self.libtest.line(line);
    }

    fn finish(mut self) -> Outcome {
        match self.verdict.as_deref() {
            Some("success") if self.failure.is_none() => {}
            Some(verdict) => self.fail(verdict.to_string()),
            None => self.fail("the guest printed no verdict".into()),
        }
        let tests = self.libtest.finish();
        Outcome {
            failure: self.failure,
            passed: tests.passed,
            failed: tests.failed,
            skipped: tests.skipped,
            failures: tests.failures,
            boot: self.boot,
            tests: self.tests,
            wall: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Outcome {
        let mut parser = Parser::new();
        text.lines().for_each(|line| parser.line(line));
        parser.finish()
    }

    #[test]
    fn counts_skips_and_failures() {
        let out = parse(
            "rsttrace-vm: running resets (RSTTRACE_TEST_STRATEGY=auto)\n\
             running 3 tests\n\
             test a ... skipped the rst_sent half: old kernel\n\
             ok\n\
             test b ... ok\n\
             test c ... thread 'c' panicked at tests/resets.rs:1:1:\n\
             boom\n\
             FAILED\n\
             \n\
             failures:\n\
             \n\
             failures:\n    c\n\
             \n\
             test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s\n\
             \n\
             rsttrace-vm: failure resets\n",
        );
        assert_eq!((out.passed, out.failed), (2, 1));
        assert_eq!(out.skipped, [("resets::a".to_string(), "skipped the rst_sent half: old kernel".to_string())]);
        assert_eq!(out.failures.len(), 1);
        assert_eq!(out.failures[0].0, "resets::c");
        assert_eq!(out.failures[0].1, ["thread 'c' panicked at tests/resets.rs:1:1:", "boom"]);
        assert_eq!(out.failure.as_deref(), Some("failure resets"));
    }

    #[test]
    fn no_verdict_is_a_failure() {
        let out = parse("rsttrace-vm: running errors\ntest a ... ok\n");
        assert_eq!(out.failure.as_deref(), Some("the guest printed no verdict"));
    }
}
