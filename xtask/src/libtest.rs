//! Reads libtest's output line by line: the counts of each `test result:`
//! line, the tests that printed a line starting with `skipped`, and each
//! failed test with what it printed. One reader for this machine's run
//! (host_tests.rs) and the QEMU guests' (vm/console.rs), so that both count
//! alike; which test binary runs comes from the caller (cargo's `Running`
//! lines, the guest init's markers).

use std::collections::BTreeMap;

/// Where libtest shows what a test printed.
#[derive(Clone, Copy)]
pub enum Capture {
    /// `--show-output`: after the binary's tests, in a `---- NAME stdout ----`
    /// section per test that printed anything.
    Sections,
    /// `--nocapture --test-threads=1`: as it comes, after `test NAME ... `
    /// and before the test's verdict.
    Inline,
}

/// What the output of every test binary read said.
#[derive(Debug, Default, PartialEq)]
pub struct Results {
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
    /// binary::test and the first line of its output starting with `skipped`.
    pub skipped: Vec<(String, String)>,
    /// binary::test of each failed test, with what it printed.
    pub failures: Vec<(String, Vec<String>)>,
}

pub struct Reader {
    capture: Capture,
    binary: String,
    /// binary::test whose output is being read.
    test: Option<String>,
    /// In libtest's `failures:` part, which ends with the failed tests' names.
    in_failures: bool,
    /// What each binary::test printed.
    output: BTreeMap<String, Vec<String>>,
    /// binary::test of each failed test, in the order first seen.
    failed_tests: Vec<String>,
    results: Results,
}

impl Reader {
    pub fn new(capture: Capture) -> Self {
        Reader {
            capture,
            binary: String::new(),
            test: None,
            in_failures: false,
            output: BTreeMap::new(),
            failed_tests: Vec::new(),
            results: Results::default(),
        }
    }

    /// The lines that follow are the output of the test binary `binary`.
    pub fn start_binary(&mut self, binary: &str) {
        self.binary = binary.to_string();
        self.test = None;
        self.in_failures = false;
    }

    /// binary::test whose output is being read: with `Capture::Inline`, the
    /// test that runs.
    pub fn current_test(&self) -> Option<&str> {
        self.test.as_deref()
    }

    pub fn line(&mut self, line: &str) {
        if let Some(summary) = line.strip_prefix("test result: ") {
            self.test = None;
            self.in_failures = false;
            self.count(summary);
            return;
        }
        if line == "successes:" || line == "failures:" {
            self.test = None;
            self.in_failures = line == "failures:";
            return;
        }
        if let Some(name) = line.strip_prefix("---- ").and_then(|l| l.strip_suffix(" stdout ----")) {
            self.test = Some(format!("{}::{name}", self.binary));
            return;
        }
        // The `failures:` list and the sections name a #[should_panic] test
        // without its mark. A name with spaces (a doc test's) only with its
        // verdict: text a test printed may start with "test ".
        if let Some((name, rest)) = line
            .strip_prefix("test ")
            .and_then(|l| l.split_once(" ... "))
            .map(|(name, rest)| (name.strip_suffix(" - should panic").unwrap_or(name), rest))
            && (is_verdict(rest) || !name.contains(' '))
        {
            let test = format!("{}::{name}", self.binary);
            match self.capture {
                Capture::Inline => {
                    self.test = Some(test);
                    self.verdict_or_output(rest);
                    return;
                }
                // In a section the line is what the test printed.
                Capture::Sections if self.test.is_some() => {}
                // Text beside the line is no test's output: libtest holds that.
                Capture::Sections => {
                    if rest == "FAILED" {
                        self.fail(test);
                    }
                    return;
                }
            }
        }
        if self.in_failures && self.test.is_none() {
            if let Some(name) = line.strip_prefix("    ").filter(|n| !n.contains(' ')) {
                self.fail(format!("{}::{name}", self.binary));
            }
            return;
        }
        self.verdict_or_output(line);
    }

    pub fn finish(mut self) -> Results {
        self.results.failures =
            self.failed_tests.into_iter().map(|t| (t.clone(), self.output.remove(&t).unwrap_or_default())).collect();
        self.results
    }

    /// A line of the current test's output, or with `Capture::Inline` its
    /// verdict; outside a test (a child process's output, cargo's) nothing.
    fn verdict_or_output(&mut self, text: &str) {
        let Some(test) = self.test.clone() else {
            return;
        };
        if matches!(self.capture, Capture::Inline) && is_verdict(text) {
            self.test = None;
            if text == "FAILED" {
                self.fail(test);
            }
            return;
        }
        if text.starts_with("skipped") && !self.results.skipped.iter().any(|(t, _)| *t == test) {
            self.results.skipped.push((test.clone(), text.to_string()));
        }
        self.output.entry(test).or_default().push(text.to_string());
    }

    /// Once a test: both its verdict and the `failures:` list name it.
    fn fail(&mut self, test: String) {
        if !self.failed_tests.contains(&test) {
            self.failed_tests.push(test);
        }
    }

    /// "ok. 3 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; …"
    fn count(&mut self, summary: &str) {
        for part in summary.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            match what {
                "passed" => self.results.passed += n,
                "failed" => self.results.failed += n,
                "ignored" => self.results.ignored += n,
                _ => {}
            }
        }
    }
}

/// What libtest prints after `test NAME ... ` when the test ends.
fn is_verdict(text: &str) -> bool {
    matches!(text, "ok" | "FAILED") || text.starts_with("ignored")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(capture: Capture, text: &str) -> Results {
        let mut reader = Reader::new(capture);
        reader.start_binary("resets");
        text.lines().for_each(|line| reader.line(line));
        reader.finish()
    }

    #[test]
    fn counts_add_up_over_result_lines() {
        let results = read(
            Capture::Sections,
            "test result: ok. 2 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
             test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.00s\n",
        );
        assert_eq!((results.passed, results.failed, results.ignored), (3, 1, 4));
    }

    #[test]
    fn a_failure_is_named_once_in_the_order_the_tests_ended() {
        let results = read(
            Capture::Inline,
            "test b ... boom\n\
             FAILED\n\
             test a ... FAILED\n\
             \n\
             failures:\n\
             \x20   a\n\
             \x20   b\n\
             \x20   c\n",
        );
        let names: Vec<&str> = results.failures.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["resets::b", "resets::a", "resets::c"]);
        assert_eq!(results.failures[0].1, ["boom"]);
    }

    #[test]
    fn text_beside_a_test_line_is_its_output_only_inline() {
        let text = "test a ... skipped: no IPv6\nok\n";
        assert!(read(Capture::Sections, text).skipped.is_empty());
        assert_eq!(read(Capture::Inline, text).skipped, [("resets::a".to_string(), "skipped: no IPv6".to_string())]);
    }

    #[test]
    fn a_should_panic_test_is_named_as_its_section_names_it() {
        let results = read(
            Capture::Sections,
            "test f - should panic ... FAILED\n\
             \n\
             failures:\n\
             \n\
             ---- f stdout ----\n\
             test looks ... like a verdict\n\
             note: panic did not contain expected string\n\
             \n\
             failures:\n\
             \x20   f\n",
        );
        assert_eq!(
            results.failures,
            [(
                "resets::f".to_string(),
                vec![
                    "test looks ... like a verdict".to_string(),
                    "note: panic did not contain expected string".to_string(),
                    String::new()
                ]
            )]
        );
    }

    #[test]
    fn a_failed_doc_test_keeps_the_spaces_of_its_name() {
        let results = read(Capture::Sections, "test src/lib.rs - f (line 3) ... FAILED\n");
        assert_eq!(results.failures, [("resets::src/lib.rs - f (line 3)".to_string(), Vec::new())]);
    }
}
