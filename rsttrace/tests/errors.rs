//! Bad input gets one line saying what is wrong and how to fix it, and a
//! non-zero exit: 2 for arguments, 1 for the environment.

mod support;

use std::process::{Command, Output};

use support::require_root;

fn rsttrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rsttrace")).args(args).output().unwrap()
}

/// The one stderr line of a failed run.
fn one_line_error(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "expected one line, got:\n{stderr}");
    assert!(stderr.starts_with("rsttrace: "), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout when failing to start");
    stderr
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["--port", "http"][..],
        &["--addr", "10.0.0.0/40"],
        &["--format", "xml"],
        &["--duration", "0"],
        &["--prot", "80"],
        &["--metrics", "nonsense"],
        &["doctor", "--format", "journal"],
        &["frobnicate"],
    ] {
        let line = one_line_error(&rsttrace(args), 2);
        let help = if args[0] == "doctor" { "(see rsttrace doctor --help)" } else { "(see rsttrace --help)" };
        assert!(line.ends_with(help), "{args:?}: {line}");
    }
    let line = one_line_error(&rsttrace(&["--format", "xml"]), 2);
    assert!(line.contains("[possible values: text, json, journal]"), "{line}");
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [&["--help"][..], &["--version"], &["doctor", "--help"]] {
        let out = rsttrace(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn missing_privileges_name_the_capability() {
    require_root();
    // Drop to nobody with no capabilities at all.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(env!("CARGO_BIN_EXE_rsttrace"))
        .output()
        .expect("setpriv (util-linux)");
    let line = one_line_error(&out, 1);
    assert!(line.contains("CAP_BPF") && line.contains("CAP_PERFMON"), "{line}");
    assert!(line.contains("root"), "says how to fix it: {line}");
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn missing_btf_says_which_kernel_option() {
    require_root();
    let line = one_line_error(&rsttrace(&["--btf", "/nonexistent/vmlinux"]), 1);
    assert!(line.contains("CONFIG_DEBUG_INFO_BTF") && line.contains("/nonexistent/vmlinux"), "{line}");
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn a_directory_that_is_not_tracefs_is_refused() {
    require_root();
    let dir = tempdir("notracefs");
    let line = one_line_error(&rsttrace(&["--tracefs", dir.to_str().unwrap()]), 1);
    assert!(line.contains("mount -t tracefs"), "{line}");
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn a_kernel_without_the_tracepoint_is_named() {
    require_root();
    // A tracefs-like tree whose kernel has no tcp events.
    let dir = tempdir("notcp");
    std::fs::create_dir_all(dir.join("events/sched")).unwrap();
    let line = one_line_error(&rsttrace(&["--tracefs", dir.to_str().unwrap()]), 1);
    assert!(line.contains("tcp:tcp_send_reset"), "{line}");
}

/// A forced strategy either runs (the ready record names it) or, where the
/// kernel refuses it, exits 1 with one line naming it (fexit and kprobes are
/// both refused on some kernels, this project's 6.18 among them).
#[test]
#[ignore = "needs root: run cargo xtask test"]
fn a_forced_strategy_runs_or_says_why_not() {
    require_root();
    for strategy in ["fexit", "kprobe", "tracepoint"] {
        let out = rsttrace(&["--format", "json", "--strategy", strategy, "--duration", "0.2"]);
        if out.status.success() {
            let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
            let ready: serde_json::Value = serde_json::from_str(&first).unwrap();
            assert_eq!(ready["strategy"], strategy, "{first}");
        } else {
            let line = one_line_error(&out, 1);
            assert!(line.contains(&format!("--strategy {strategy} is not available here")), "{line}");
            eprintln!("note: {line}");
        }
    }
}

/// A bad configuration file stops the start: one line naming the file, the
/// line and the problem.
#[test]
fn a_bad_config_file_names_file_line_and_problem() {
    let dir = tempdir("config");
    for (text, line, problem) in [
        ("format = \"json\"\nprot = [80]\n", 2, "unknown field `prot`"),
        ("port = \"http\"\n", 1, "invalid type"),
        ("\n\naddr = [\"10.1.0.0/40\"]\n", 3, "is not an address or CIDR network"),
    ] {
        let path = dir.join("rsttrace.toml");
        std::fs::write(&path, text).unwrap();
        let out = rsttrace(&["--config", path.to_str().unwrap()]);
        let message = one_line_error(&out, 1);
        assert!(message.contains(&format!("{} line {line}:", path.display())), "{message}");
        assert!(message.contains(problem), "{message}");
    }
    let out = rsttrace(&["--config", "/nonexistent/rsttrace.toml"]);
    assert!(one_line_error(&out, 1).contains("cannot read /nonexistent/rsttrace.toml"));
}

fn tempdir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rsttrace-test-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
