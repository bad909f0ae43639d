//! The configuration file the Debian package installs
//! (packaging/rsttrace.toml -> /etc/rsttrace/rsttrace.toml) names every run
//! option, and rsttrace accepts it as shipped and with every key uncommented.

mod support;

use std::process::Command;

use support::require_root;

/// Compiled in: the QEMU guests have the test binaries, not the sources.
fn shipped() -> String {
    include_str!("../../packaging/rsttrace.toml").to_string()
}

/// `# key = value` lines, uncommented.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '-')) =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The shipped metrics address with a port nothing else here listens on
/// (other runs of this test, a real rsttrace).
fn on_a_free_port(text: &str) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    text.replace("metrics = \"127.0.0.1:9747\"", &format!("metrics = \"127.0.0.1:{port}\""))
}

#[test]
fn every_run_option_has_a_commented_key() {
    let help = Command::new(env!("CARGO_BIN_EXE_rsttrace")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let options: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split([' ', '=']).next())
        .filter(|o| !matches!(*o, "help" | "version" | "config"))
        .collect();
    assert!(options.contains(&"format") && options.contains(&"port"), "{help}");
    let text = shipped();
    for option in options {
        assert!(text.contains(&format!("\n# {option} = ")), "packaging/rsttrace.toml lacks a `# {option} = …` line");
    }
    assert!(!uncommented(&text).contains("\n# format = "), "uncommenting works");
    assert!(!uncommented(&text).contains("\n# metrics-port-label = "), "uncommenting works");
    let listening = on_a_free_port(&uncommented(&text));
    let address = listening.lines().find(|l| l.starts_with("metrics = ")).expect("a metrics line");
    assert!(!address.contains(":9747"), "the address is replaced: {address}");
}

#[test]
#[ignore = "needs root: run cargo xtask test"]
fn rsttrace_accepts_the_file_as_shipped_and_uncommented() {
    require_root();
    let dir = std::env::temp_dir().join(format!("rsttrace-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [("shipped.toml", shipped()), ("uncommented.toml", on_a_free_port(&uncommented(&shipped())))] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        // The command line wins over the file's format and duration.
        let out = Command::new(env!("CARGO_BIN_EXE_rsttrace"))
            .arg("--config")
            .arg(&path)
            .args(["--format", "json", "--duration", "0.2"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
        assert!(first.contains("\"kind\":\"ready\""), "{name}: {first}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
