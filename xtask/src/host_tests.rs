//! `cargo xtask test` on this machine's kernel: `cargo test` with libtest's
//! `--show-output`, streamed to the terminal and read on the way, so that the
//! tests that print a `skipped` line are counted and named here as the QEMU
//! runs count them (vm/console.rs).

use std::{
    io::{BufRead as _, BufReader},
    process::Command,
};

use anyhow::Context as _;

use crate::libtest::{self, Capture};

/// What one `cargo test` run showed.
#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub tests: libtest::Results,
}

/// How much of a failed test's output the closing lines repeat: from its
/// panic on, so that a log whose middle is cut still says why.
const FAILURE_LINES: usize = 40;
const FAILURE_LINE_CHARS: usize = 400;

impl Outcome {
    /// The closing lines: counts, then each skip with its reason and each
    /// failure.
    pub fn print(&self, kernel: &str) {
        println!();
        let tests = &self.tests;
        println!("host: {} passed, {} failed, {} skipped", tests.passed, tests.failed, tests.skipped.len());
        println!(
            "(Linux {kernel}; {} ignored; skipped: tests that printed a line starting with `skipped`, also counted as passed or failed)",
            tests.ignored
        );
        for (test, reason) in &tests.skipped {
            println!("  skipped {test}: {reason}");
        }
        for (test, output) in &tests.failures {
            println!("  FAILED {test}");
            let from_panic = output.iter().position(|l| l.contains("panicked at")).unwrap_or(0);
            for line in output.iter().skip(from_panic).take(FAILURE_LINES) {
                let cut = line.char_indices().nth(FAILURE_LINE_CHARS).map_or(line.len(), |(i, _)| i);
                println!("    {}{}", &line[..cut], if cut < line.len() { " […]" } else { "" });
            }
        }
    }
}

/// Runs `cargo` (a `cargo test` command whose test arguments include
/// `--show-output`) with stdout and stderr on one pipe, so cargo's `Running`
/// lines and the tests' output stay in order; shows every line as it comes.
pub fn run(mut cargo: Command) -> anyhow::Result<Outcome> {
    let (pipe, writer) = std::io::pipe()?;
    cargo.stdout(writer.try_clone()?).stderr(writer);
    let mut child = cargo.spawn().with_context(|| format!("cannot start {cargo:?}"))?;
    // The command keeps copies of the write end: without dropping it the
    // pipe would never reach end of file.
    drop(cargo);
    let mut reader = libtest::Reader::new(Capture::Sections);
    let mut pipe = BufReader::new(pipe);
    let mut bytes = Vec::new();
    while pipe.read_until(b'\n', &mut bytes)? > 0 {
        let line = String::from_utf8_lossy(&bytes);
        let line = line.trim_end_matches(['\n', '\r']);
        println!("{line}");
        read(&mut reader, line);
        bytes.clear();
    }
    let status = child.wait()?;
    Ok(Outcome { success: status.success(), tests: reader.finish() })
}

/// Reads a line of `cargo test` with `--show-output`: cargo's `Running …`
/// or `Doc-tests …`, which names the test binary whose output follows, or
/// libtest's.
fn read(reader: &mut libtest::Reader, line: &str) {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("Running ") {
        // "Running tests/resets.rs (target/debug/deps/resets-1a2b…)"
        let path = rest.rsplit_once(" (").map_or(rest, |(_, p)| p.trim_end_matches(')'));
        let file = path.rsplit('/').next().unwrap_or(path);
        reader.start_binary(file.rsplit_once('-').map_or(file, |(name, _hash)| name));
    } else if let Some(krate) = trimmed.strip_prefix("Doc-tests ") {
        reader.start_binary(&format!("doctest {krate}"));
    } else {
        reader.line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> libtest::Results {
        let mut reader = libtest::Reader::new(Capture::Sections);
        text.lines().for_each(|line| read(&mut reader, line));
        reader.finish()
    }

    #[test]
    fn counts_skips_of_unit_and_integration_tests_with_their_binary() {
        let out = parse(
            "     Running unittests src/main.rs (/t/debug/deps/rsttrace-cd241a5b54c9c473)\n\
             \n\
             running 2 tests\n\
             test kernel_types::tests::tcp_states_come_from_btf_names ... ok\n\
             test kernel_types::tests::a_missing_member ... ok\n\
             \n\
             successes:\n\
             \n\
             ---- kernel_types::tests::tcp_states_come_from_btf_names stdout ----\n\
             skipped: /sys/kernel/btf/vmlinux missing (kernel without CONFIG_DEBUG_INFO_BTF)\n\
             \n\
             \n\
             successes:\n\
             \x20   kernel_types::tests::a_missing_member\n\
             \x20   kernel_types::tests::tcp_states_come_from_btf_names\n\
             \n\
             test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
             \n\
             \x20    Running tests/resets.rs (/t/debug/deps/resets-12ea0752d927da52)\n\
             \n\
             running 3 tests\n\
             test closed_port_ipv4 ... ok\n\
             test abort_on_data ... FAILED\n\
             test duration_stops_the_run ... ignored, needs root\n\
             \n\
             successes:\n\
             \n\
             ---- closed_port_ipv4 stdout ----\n\
             note: something else\n\
             skipped: 1 RSTs sent from rst-cp4-s without their rst_sent record\n\
             skipped: said twice\n\
             \n\
             successes:\n\
             \x20   closed_port_ipv4\n\
             \n\
             failures:\n\
             \n\
             ---- abort_on_data stdout ----\n\
             thread 'abort_on_data' panicked at tests/resets.rs:1:1:\n\
             rst_received records without an RST arriving\n\
             \n\
             failures:\n\
             \x20   abort_on_data\n\
             \n\
             test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.00s\n\
             \n\
             \x20  Doc-tests rsttrace_common\n\
             \n\
             running 0 tests\n\
             \n\
             test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n",
        );
        assert_eq!((out.passed, out.failed, out.ignored), (3, 1, 1));
        assert_eq!(
            out.skipped,
            [
                (
                    "rsttrace::kernel_types::tests::tcp_states_come_from_btf_names".to_string(),
                    "skipped: /sys/kernel/btf/vmlinux missing (kernel without CONFIG_DEBUG_INFO_BTF)".to_string()
                ),
                (
                    "resets::closed_port_ipv4".to_string(),
                    "skipped: 1 RSTs sent from rst-cp4-s without their rst_sent record".to_string()
                ),
            ]
        );
        assert_eq!(
            out.failures,
            [(
                "resets::abort_on_data".to_string(),
                vec![
                    "thread 'abort_on_data' panicked at tests/resets.rs:1:1:".to_string(),
                    "rst_received records without an RST arriving".to_string(),
                    String::new()
                ]
            )]
        );
    }

    #[test]
    fn output_outside_a_test_section_is_no_skip() {
        let out = parse(
            "     Running tests/resets.rs (/t/debug/deps/resets-12ea0752d927da52)\n\
             skipped: printed by a child process, not by a test\n\
             test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s\n",
        );
        assert!(out.skipped.is_empty(), "{out:?}");
    }
}
