//! The Prometheus alert rules and the Grafana dashboard the package ships
//! (packaging/prometheus/, packaging/grafana/): the rules pass `promtool
//! check rules` and their unit tests (`promtool test rules`), every query of
//! the dashboard is valid PromQL, and both use only the metrics rsttrace
//! exports, as docs/output.md lists them.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// promtool with `args`, or None where it is not installed (xtask/bootstrap.sh
/// installs Debian's prometheus package, which has it).
fn promtool(args: &[&str], dir: &Path) -> Option<std::process::Output> {
    match Command::new("promtool").args(args).current_dir(dir).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: promtool not installed");
            None
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rsttrace_…` names in `text`, without the `_total` a counter's series
/// has or not in queries (the contract lists counters with it).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("rsttrace_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The metrics the contract documents: the names in its Metrics section.
fn documented() -> BTreeSet<String> {
    let contract = include_str!("../../docs/output.md");
    let section = contract.split("\n## Metrics\n").nth(1).expect("docs/output.md has a Metrics section");
    let section = section.split("\n## ").next().unwrap();
    metric_names(section)
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = packaging().join("prometheus");
    let Some(check) = promtool(&["check", "rules", "rsttrace.rules.yml"], &dir) else { return };
    assert_success(&check, "promtool check rules rsttrace.rules.yml");
    let test = promtool(&["test", "rules", "rsttrace.rules.test.yml"], &dir).unwrap();
    assert_success(&test, "promtool test rules rsttrace.rules.test.yml");
}

#[test]
fn the_rules_use_only_documented_metrics() {
    let rules = std::fs::read_to_string(packaging().join("prometheus/rsttrace.rules.yml")).unwrap();
    let used = metric_names(&rules);
    assert!(used.contains("rsttrace_timewait_collisions_total"), "{used:?}");
    let documented = documented();
    let unknown: Vec<&String> = used.difference(&documented).collect();
    assert!(unknown.is_empty(), "the rules use metrics docs/output.md does not list: {unknown:?}");
}

/// The dashboard's queries, with Grafana's variables replaced by what they
/// stand for in PromQL.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(packaging().join("grafana/rsttrace.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "rsttrace");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut queries = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap().to_string();
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "panel ids are unique: {title}");
        let grid = &panel["gridPos"];
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24, "{title} fits the grid");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title} uses the chosen Prometheus");
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let promql =
                expr.replace("$__rate_interval", "5m").replace("$__range", "6h").replace("\"$instance\"", "\".*\"");
            assert!(!promql.contains('$'), "{title}: a variable left in {promql}");
            queries.push((title.clone(), promql));
        }
    }
    queries
}

#[test]
fn the_dashboard_queries_documented_metrics() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    let used: BTreeSet<String> = queries.iter().flat_map(|(_, q)| metric_names(q)).collect();
    let documented = documented();
    let unknown: Vec<&String> = used.difference(&documented).collect();
    assert!(unknown.is_empty(), "the dashboard uses metrics docs/output.md does not list: {unknown:?}");
    let unused: Vec<&String> = documented.difference(&used).collect();
    assert!(unused.is_empty(), "the dashboard shows every metric; not: {unused:?}");
}

/// Each query as a recording rule: `promtool check rules` parses it.
#[test]
fn the_dashboard_queries_are_valid_promql() {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, query)) in dashboard_queries().iter().enumerate() {
        let quoted = serde_json::to_string(query).unwrap();
        rules += &format!("      - record: rsttrace_dashboard:query_{i}\n        expr: {quoted}\n");
    }
    let dir = std::env::temp_dir().join(format!("rsttrace-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dashboard.rules.yml"), &rules).unwrap();
    let out = promtool(&["check", "rules", "dashboard.rules.yml"], &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(out) = out {
        assert_success(&out, &format!("promtool check rules on the dashboard's queries:\n{rules}"));
    }
}

/// Checked without building the package: the files are assets of it.
#[test]
fn the_package_installs_rules_and_dashboard() {
    let manifest = include_str!("../../rsttrace/Cargo.toml");
    for asset in [
        r#"["../packaging/prometheus/rsttrace.rules.yml", "usr/share/rsttrace/prometheus/", "644"]"#,
        r#"["../packaging/prometheus/rsttrace.rules.test.yml", "usr/share/rsttrace/prometheus/", "644"]"#,
        r#"["../packaging/grafana/rsttrace.json", "usr/share/rsttrace/grafana/", "644"]"#,
    ] {
        assert!(manifest.contains(asset), "rsttrace/Cargo.toml [package.metadata.deb] assets lack {asset}");
    }
}
