//! The command line (docs/output.md has the exit codes).

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::{
    kernel::{btf::DEFAULT_BTF, strategy::StrategyRequest},
    output::{Format, metrics::MAX_PORT_LABELS},
};

/// Explains TCP resets on this host from inside the kernel: every RST sent or
/// received, with the kernel's reason, the TCP state, the process, and how
/// long the connection had been idle.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Without a subcommand rsttrace runs (the options below).
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunOptions,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check whether rsttrace can run here, and show the TCP settings and
    /// counters behind resets (of this network namespace).
    Doctor(DoctorOptions),
    /// Write the man page or shell completions (used to build packages).
    /// Generated from this very definition, so they never drift from it.
    #[command(hide = true)]
    Generate(GenerateOptions),
}

#[derive(Debug, Args)]
pub struct DoctorOptions {
    /// Output format.
    #[arg(long, value_enum, default_value_t = DoctorFormat::Text)]
    pub format: DoctorFormat,

    /// Kernel BTF to read struct layouts from.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_BTF)]
    pub btf: PathBuf,

    /// tracefs mount point [default: found or mounted].
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DoctorFormat {
    /// Readable lines.
    Text,
    /// One JSON object.
    Json,
}

#[derive(Debug, Args)]
pub struct GenerateOptions {
    #[command(subcommand)]
    pub what: Generated,

    /// Directory to write into.
    #[arg(long, value_name = "DIR", global = true, default_value = ".")]
    pub out: PathBuf,
}

#[derive(Clone, Copy, Debug, Subcommand)]
pub enum Generated {
    /// rsttrace.1 and rsttrace-doctor.1.
    Man,
    /// Completions for one shell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Options of a run (no subcommand). The configuration file sets the same
/// ones; what is given here wins.
#[derive(Debug, Args)]
pub struct RunOptions {
    /// Configuration file [default: /etc/rsttrace/rsttrace.toml, if present].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output format [default: text on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Report only events with this port at either end (repeatable).
    #[arg(long = "port", value_name = "N")]
    pub ports: Vec<u16>,

    /// Report only events with an endpoint in this network, e.g. 10.0.0.0/8
    /// or 2001:db8::/32; a bare address means just that host (repeatable).
    #[arg(long = "addr", value_name = "CIDR", value_parser = parse_network)]
    pub networks: Vec<IpNet>,

    /// How TIME_WAIT verdicts are observed (resets always use tracepoints):
    /// `auto` takes the first of fexit, kprobe, tracepoint this kernel
    /// accepts [default: auto].
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyRequest>,

    /// Stop after this many seconds and print the summary.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,

    /// Kernel BTF to read struct layouts from [default: /sys/kernel/btf/vmlinux].
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,

    /// tracefs mount point [default: found or mounted].
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics, e.g.
    /// 127.0.0.1:9747 or [::]:9747 [default: off].
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_metrics_address)]
    pub metrics: Option<SocketAddr>,

    /// Give the metrics a `port` label: this local port by its number, every
    /// other one as `other` (repeatable, at most 32) [default: no port label].
    #[arg(long = "metrics-port-label", value_name = "N")]
    pub metrics_port_labels: Vec<u16>,
}

impl Cli {
    /// The command line, checked: what clap's attributes say, then `check`.
    /// `--help` and `--version` come back as errors too (`use_stderr()`
    /// false): clap prints them on stdout and exits 0.
    pub fn try_parse_checked() -> Result<Self, clap::Error> {
        let cli = <Cli as Parser>::try_parse()?;
        cli.run.check()?;
        Ok(cli)
    }
}

/// A command-line error in one line, as every other error of rsttrace:
/// what is wrong, with clap's possible values and tip when it has them,
/// and whose help to see. Clap's own message has several lines (a blank
/// one, the usage, "For more information…"), which the journal would show
/// as separate entries. `args` is the command line, program name first.
pub fn one_line<I: Into<OsString>>(error: &clap::Error, args: impl IntoIterator<Item = I>) -> String {
    let text = error.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let mut line = match error.kind() {
        // `rsttrace generate` without its subcommand: clap's "error" is
        // the help.
        clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            "rsttrace: a subcommand or argument is missing".to_string()
        }
        _ => {
            let mut line = format!("rsttrace: {}", first.strip_prefix("error: ").unwrap_or(first));
            // `[possible values: …]`, `tip: a similar argument exists: …`,
            // the names of missing arguments; then the usage and "For more
            // information…", which the hint below replaces.
            for l in lines.take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information")) {
                line.push_str(if l.starts_with("tip: ") { "; " } else { " " });
                line.push_str(l);
            }
            line
        }
    };
    line.push_str(&format!(" (see {} --help)", subcommand(args)));
    line
}

/// `rsttrace`, `rsttrace doctor` or `rsttrace generate completions`: the
/// subcommands named on the command line.
fn subcommand<I: Into<OsString>>(args: impl IntoIterator<Item = I>) -> String {
    use clap::CommandFactory as _;
    let mut command = Cli::command();
    let mut words = vec!["rsttrace".to_string()];
    for arg in args.into_iter().skip(1) {
        let arg = arg.into();
        let Some(next) = arg.to_str().and_then(|name| command.find_subcommand(name)).cloned() else { continue };
        words.push(next.get_name().to_string());
        command = next;
    }
    words.join(" ")
}

impl RunOptions {
    /// What clap's attributes cannot say.
    pub fn check(&self) -> Result<(), clap::Error> {
        let ports = distinct_ports(&self.metrics_port_labels);
        if ports > MAX_PORT_LABELS {
            use clap::CommandFactory as _;
            return Err(Cli::command().error(
                clap::error::ErrorKind::TooManyValues,
                format!(
                    "--metrics-port-label names {ports} ports; at most {MAX_PORT_LABELS} get a label of their own (each one multiplies the number of series)"
                ),
            ));
        }
        Ok(())
    }
}

/// Ports named more than once count once.
pub fn distinct_ports(ports: &[u16]) -> usize {
    ports.iter().collect::<std::collections::BTreeSet<_>>().len()
}

pub fn parse_network(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not an address or CIDR network (like 10.0.0.0/8 or 2001:db8::/32)"))
}

/// `--metrics`: an IP address (not a name) and a port.
pub fn parse_metrics_address(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!("`{s}` is not an IP address and port, like 127.0.0.1:9747 or [::]:9747; a host name is not accepted")
    })
}

pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctor_takes_its_own_options() {
        let cli =
            Cli::try_parse_from(["rsttrace", "doctor", "--format", "json", "--btf", "/b", "--tracefs", "/t"]).unwrap();
        let Some(Command::Doctor(doctor)) = cli.command else { panic!("not doctor: {cli:?}") };
        assert_eq!(doctor.format, DoctorFormat::Json);
        assert_eq!(doctor.btf, PathBuf::from("/b"));
        assert_eq!(doctor.tracefs, Some(PathBuf::from("/t")));
        let cli = Cli::try_parse_from(["rsttrace", "doctor"]).unwrap();
        let Some(Command::Doctor(doctor)) = cli.command else { panic!("not doctor: {cli:?}") };
        assert_eq!(doctor.format, DoctorFormat::Text);
    }

    #[test]
    fn generate_is_hidden_and_parses() {
        let cli = Cli::try_parse_from(["rsttrace", "generate", "completions", "zsh", "--out", "/o"]).unwrap();
        let Some(Command::Generate(g)) = cli.command else { panic!("not generate: {cli:?}") };
        assert!(matches!(g.what, Generated::Completions { shell: clap_complete::Shell::Zsh }));
        assert_eq!(g.out, PathBuf::from("/o"));
        use clap::CommandFactory as _;
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("doctor") && !help.contains("generate"), "{help}");
    }

    #[test]
    fn parses_the_contract_command_line() {
        let cli = Cli::try_parse_from([
            "rsttrace",
            "--format",
            "json",
            "--port",
            "80",
            "--port",
            "443",
            "--addr",
            "10.0.0.0/8",
            "--addr",
            "2001:db8::1",
            "--strategy",
            "tracepoint",
            "--duration",
            "2.5",
            "--metrics",
            "[::1]:9747",
            "--metrics-port-label",
            "8090",
            "--metrics-port-label",
            "443",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let run = cli.run;
        assert_eq!(run.format, Some(Format::Json));
        assert_eq!(run.ports, [80, 443]);
        assert_eq!(run.networks[1].to_string(), "2001:db8::1/128");
        assert_eq!(run.strategy, Some(StrategyRequest::Only(crate::kernel::strategy::Strategy::Tracepoint)));
        assert_eq!(run.duration, Some(Duration::from_millis(2500)));
        assert_eq!(run.metrics, Some("[::1]:9747".parse().unwrap()));
        assert_eq!(run.metrics_port_labels, [8090, 443]);
        assert!(run.check().is_ok());
    }

    #[test]
    fn port_labels_are_bounded() {
        let ports: Vec<String> = (1..=40).map(|p| format!("--metrics-port-label={}", 1000 + p % 33)).collect();
        let cli = Cli::try_parse_from(std::iter::once("rsttrace".to_string()).chain(ports)).unwrap();
        let error = cli.run.check().unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("names 33 ports; at most 32"), "{error}");
        let ports: Vec<String> = (1..=40).map(|p| format!("--metrics-port-label={}", 1000 + p % 32)).collect();
        let cli = Cli::try_parse_from(std::iter::once("rsttrace".to_string()).chain(ports)).unwrap();
        assert!(cli.run.check().is_ok(), "a port named twice counts once");
    }

    #[test]
    fn bad_arguments_are_refused() {
        for args in [
            &["rsttrace", "--port", "70000"][..],
            &["rsttrace", "--addr", "10.0.0.0/33"],
            &["rsttrace", "--format", "xml"],
            &["rsttrace", "--strategy", "magic"],
            &["rsttrace", "--duration=-1"],
            &["rsttrace", "--duration", "0"],
            &["rsttrace", "--duration", "soon"],
            &["rsttrace", "--metrics", "9747"],
            &["rsttrace", "--metrics", "localhost:9747"],
            &["rsttrace", "--metrics", "127.0.0.1"],
            &["rsttrace", "--metrics", "127.0.0.1:70000"],
            &["rsttrace", "--metrics-port-label", "http"],
            // Run options belong to the run, not to a subcommand.
            &["rsttrace", "--port", "80", "doctor"],
            &["rsttrace", "doctor", "--port", "80"],
            &["rsttrace", "doctor", "--format", "journal"],
            &["rsttrace", "--prot", "80"],
            &["rsttrace", "frobnicate"],
            &["rsttrace", "generate"],
            &["rsttrace", "generate", "completions"],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert!(error.use_stderr() && error.exit_code() == 2, "{args:?}");
            let line = one_line(&error, args);
            assert!(!line.contains('\n') && line.starts_with("rsttrace: ") && line.ends_with(" --help)"), "{line}");
        }
    }

    #[test]
    fn argument_errors_are_one_line() {
        for (args, expected) in [
            (
                &["rsttrace", "--metrics", "nonsense"][..],
                "rsttrace: invalid value 'nonsense' for '--metrics <ADDR:PORT>': `nonsense` is not an IP address and port, like 127.0.0.1:9747 or [::]:9747; a host name is not accepted (see rsttrace --help)",
            ),
            (
                &["rsttrace", "--format", "xml"],
                "rsttrace: invalid value 'xml' for '--format <FORMAT>' [possible values: text, json, journal] (see rsttrace --help)",
            ),
            (
                &["rsttrace", "--prot", "80"],
                "rsttrace: unexpected argument '--prot' found; tip: a similar argument exists: '--port' (see rsttrace --help)",
            ),
            (
                &["rsttrace", "doctor", "--format", "journal"],
                "rsttrace: invalid value 'journal' for '--format <FORMAT>' [possible values: text, json]; tip: a similar value exists: 'json' (see rsttrace doctor --help)",
            ),
            (
                &["rsttrace", "generate", "completions"],
                "rsttrace: the following required arguments were not provided: <SHELL> (see rsttrace generate completions --help)",
            ),
            (&["rsttrace", "generate"], "rsttrace: a subcommand or argument is missing (see rsttrace generate --help)"),
        ] {
            assert_eq!(one_line(&Cli::try_parse_from(args).unwrap_err(), args), expected);
        }
        // What `check` refuses, likewise.
        let ports: Vec<String> = (1..=33).map(|p| format!("--metrics-port-label={p}")).collect();
        let args: Vec<&str> = std::iter::once("rsttrace").chain(ports.iter().map(String::as_str)).collect();
        let error = Cli::try_parse_from(&args).unwrap().run.check().unwrap_err();
        assert_eq!(
            one_line(&error, &args),
            "rsttrace: --metrics-port-label names 33 ports; at most 32 get a label of their own (each one multiplies the number of series) (see rsttrace --help)"
        );
    }

    #[test]
    fn help_and_version_are_not_argument_errors() {
        for args in
            [&["rsttrace", "--help"][..], &["rsttrace", "-V"], &["rsttrace", "doctor", "--help"], &["rsttrace", "help"]]
        {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert!(!error.use_stderr() && error.exit_code() == 0, "{args:?}: {:?}", error.kind());
        }
    }
}
