//! The configuration file (`/etc/rsttrace/rsttrace.toml`, optional): the
//! run options by their long names; the command line overrides it.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::{
    cli::{RunOptions, distinct_ports, parse_network, parse_seconds},
    kernel::btf::DEFAULT_BTF,
    kernel::strategy::StrategyRequest,
    output::{Format, metrics::MAX_PORT_LABELS},
};

pub const DEFAULT_PATH: &str = "/etc/rsttrace/rsttrace.toml";

/// What a configuration file may say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    format: Option<Format>,
    port: Option<Vec<u16>>,
    #[serde(default, deserialize_with = "networks")]
    addr: Option<Vec<IpNet>>,
    strategy: Option<StrategyRequest>,
    #[serde(default, deserialize_with = "seconds")]
    duration: Option<Duration>,
    btf: Option<PathBuf>,
    tracefs: Option<PathBuf>,
    metrics: Option<SocketAddr>,
    #[serde(default, rename = "metrics-port-label", deserialize_with = "port_labels")]
    metrics_port_label: Option<Vec<u16>>,
}

/// A run's options once file and command line are merged.
#[derive(Debug, PartialEq)]
pub struct Settings {
    pub format: Option<Format>,
    pub ports: Vec<u16>,
    pub networks: Vec<IpNet>,
    pub strategy: StrategyRequest,
    pub duration: Option<Duration>,
    pub btf: PathBuf,
    pub tracefs: Option<PathBuf>,
    pub metrics: Option<SocketAddr>,
    pub metrics_port_labels: Vec<u16>,
}

/// Reads `explicit`, or the default file when it exists.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<ConfigFile> {
    let path = match explicit {
        Some(path) => path,
        None if Path::new(DEFAULT_PATH).exists() => Path::new(DEFAULT_PATH),
        None => return Ok(ConfigFile::default()),
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> anyhow::Result<ConfigFile> {
    toml::from_str(text).or_else(|e: toml::de::Error| {
        let line = e.span().map_or(1, |span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        bail!("{} line {line}: {}", path.display(), e.message().trim())
    })
}

/// The command line wins over the file; lists given on the command line
/// replace the file's.
pub fn merge(cli: RunOptions, file: ConfigFile) -> Settings {
    Settings {
        format: cli.format.or(file.format),
        ports: pick_list(cli.ports, file.port),
        networks: pick_list(cli.networks, file.addr),
        strategy: cli.strategy.or(file.strategy).unwrap_or_default(),
        duration: cli.duration.or(file.duration),
        btf: cli.btf.or(file.btf).unwrap_or_else(|| PathBuf::from(DEFAULT_BTF)),
        tracefs: cli.tracefs.or(file.tracefs),
        metrics: cli.metrics.or(file.metrics),
        metrics_port_labels: pick_list(cli.metrics_port_labels, file.metrics_port_label),
    }
}

fn pick_list<T>(cli: Vec<T>, file: Option<Vec<T>>) -> Vec<T> {
    if cli.is_empty() { file.unwrap_or_default() } else { cli }
}

fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<IpNet>>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts.iter().map(|t| parse_network(t)).collect::<Result<_, _>>().map(Some).map_err(serde::de::Error::custom)
}

fn port_labels<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u16>>, D::Error> {
    let ports = Vec::<u16>::deserialize(d)?;
    let distinct = distinct_ports(&ports);
    if distinct > MAX_PORT_LABELS {
        return Err(serde::de::Error::custom(format!(
            "{distinct} ports; at most {MAX_PORT_LABELS} get a label of their own (each one multiplies the number of series)"
        )));
    }
    Ok(Some(ports))
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let secs = f64::deserialize(d)?;
    parse_seconds(&secs.to_string()).map(Some).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{cli::Cli, kernel::strategy::Strategy};

    fn run_options(args: &[&str]) -> RunOptions {
        Cli::try_parse_from(std::iter::once("rsttrace").chain(args.iter().copied())).unwrap().run
    }

    fn error(text: &str) -> String {
        parse(Path::new("/etc/rsttrace/rsttrace.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn every_run_option_can_be_set() {
        let text = r#"
format = "journal"
port = [80, 443]
addr = ["10.0.0.0/8", "2001:db8::1"]
strategy = "kprobe"
duration = 30
btf = "/boot/vmlinux.btf"
tracefs = "/sys/kernel/tracing"
metrics = "127.0.0.1:9747"
metrics-port-label = [8090, 443]
"#;
        let settings = merge(run_options(&[]), parse(Path::new("f"), text).unwrap());
        assert_eq!(settings.format, Some(Format::Journal));
        assert_eq!(settings.ports, [80, 443]);
        assert_eq!(settings.networks[1].to_string(), "2001:db8::1/128");
        assert_eq!(settings.strategy, StrategyRequest::Only(Strategy::Kprobe));
        assert_eq!(settings.duration, Some(Duration::from_secs(30)));
        assert_eq!(settings.btf, PathBuf::from("/boot/vmlinux.btf"));
        assert_eq!(settings.metrics, Some("127.0.0.1:9747".parse().unwrap()));
        assert_eq!(settings.metrics_port_labels, [8090, 443]);
    }

    #[test]
    fn the_command_line_wins() {
        let file = parse(Path::new("f"), "port = [80]\nstrategy = \"kprobe\"\nformat = \"json\"\n").unwrap();
        let settings = merge(run_options(&["--port", "8080", "--strategy", "fexit"]), file);
        assert_eq!(settings.ports, [8080], "a list on the command line replaces the file's");
        assert_eq!(settings.strategy, StrategyRequest::Only(Strategy::Fexit));
        assert_eq!(settings.format, Some(Format::Json), "what the command line leaves out comes from the file");
    }

    #[test]
    fn defaults_without_a_file() {
        let settings = merge(run_options(&[]), ConfigFile::default());
        assert_eq!(settings.strategy, StrategyRequest::Auto);
        assert_eq!(settings.btf, PathBuf::from(DEFAULT_BTF));
        assert!(settings.ports.is_empty() && settings.format.is_none());
        assert!(settings.metrics.is_none() && settings.metrics_port_labels.is_empty(), "metrics are off");
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_problem() {
        let unknown = error("format = \"json\"\n\nprot = [80]\n");
        assert!(unknown.starts_with("/etc/rsttrace/rsttrace.toml line 3: unknown field `prot`"), "{unknown}");
        let wrong_type = error("port = \"eighty\"\n");
        assert!(wrong_type.starts_with("/etc/rsttrace/rsttrace.toml line 1: invalid type"), "{wrong_type}");
        let bad_cidr = error("format = \"text\"\naddr = [\"10.0.0.0/33\"]\n");
        assert!(
            bad_cidr.contains("line 2") && bad_cidr.contains("`10.0.0.0/33` is not an address or CIDR"),
            "{bad_cidr}"
        );
        let bad_port = error("port = [70000]\n");
        assert!(bad_port.contains("line 1"), "{bad_port}");
        let bad_metrics = error("\nmetrics = \"localhost\"\n");
        assert!(bad_metrics.contains("line 2") && bad_metrics.contains("invalid socket address"), "{bad_metrics}");
        let ports: Vec<String> = (1..=33).map(|p| p.to_string()).collect();
        let many_labels = error(&format!("metrics-port-label = [{}]\n", ports.join(", ")));
        assert!(many_labels.contains("line 1") && many_labels.contains("at most 32"), "{many_labels}");
        let bad_enum = error("strategy = \"magic\"\n");
        assert!(bad_enum.contains("unknown variant `magic`"), "{bad_enum}");
        assert!(!unknown.contains('\n') && !bad_cidr.contains('\n'), "one line");
    }
}
