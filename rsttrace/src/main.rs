//! rsttrace: explains TCP resets on this host from inside the kernel.

mod cli;
mod config;
mod daemon;
mod doctor;
mod error;
mod events;
mod generate;
#[cfg(test)]
mod golden;
mod kernel;
mod output;
mod owners;
mod pipeline;
mod procfs;
mod service;

use std::{io::IsTerminal as _, process::ExitCode};

use crate::{
    cli::{Cli, Command, RunOptions},
    events::{clock::Clock, decode::Decoder, filter::Filter},
    kernel::{hooks, privileges, tracefs},
    output::{Format, journal, metrics, sink},
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse_checked() {
        Ok(cli) => cli,
        // Bad arguments: one line, exit 2 (the unit does not restart then).
        Err(e) if e.use_stderr() => {
            eprintln!("{}", cli::one_line(&e, std::env::args_os()));
            return ExitCode::from(2);
        }
        // --help, --version: on stdout, exit 0.
        Err(e) => e.exit(),
    };
    init_logging();
    let result = match cli.command {
        Some(Command::Doctor(options)) => return doctor::main(&options),
        Some(Command::Generate(options)) => generate::run(&options),
        None => run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if sink::is_reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rsttrace: {}", error::one_line(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

fn run(cli: RunOptions) -> anyhow::Result<()> {
    let file = config::load(cli.config.as_deref())?;
    let settings = config::merge(cli, file);
    // Before anything is loaded into the kernel: an address in use stops
    // the start with nothing half-started.
    let metrics = settings.metrics.map(metrics::bind).transpose()?;
    if metrics.is_none() && !settings.metrics_port_labels.is_empty() {
        log::warn!("--metrics-port-label has no effect without --metrics");
    }
    privileges::check()?;
    let tracefs = tracefs::locate(settings.tracefs.as_deref())?;
    let hooks = hooks::load(&tracefs, &settings.btf, settings.strategy)?;
    let decoder = Decoder { names: hooks.names.clone(), clock: Clock::now() };
    let format = output_format(settings.format);
    let options = daemon::Options {
        format,
        filter: Filter { ports: settings.ports, networks: settings.networks },
        duration: settings.duration,
        kernel: kernel::release(),
        metrics: metrics
            .map(|listener| daemon::MetricsEndpoint { listener, port_labels: settings.metrics_port_labels }),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(daemon::run(hooks, decoder, options))
}

/// Under systemd (stderr on the journal) log lines become journal entries
/// with their priority; elsewhere env_logger writes them to stderr.
fn init_logging() {
    if journal::connected() && journal::available() {
        let level = std::env::var("RUST_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(log::LevelFilter::Info);
        log::set_max_level(level);
        if log::set_boxed_logger(Box::new(journal::JournalLogger { level })).is_ok() {
            return;
        }
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
}

/// The journal when systemd connected us to it, text on a terminal, JSON
/// lines otherwise. Asked for the journal where journald is not listening:
/// one warning, then text on stderr.
fn output_format(requested: Option<Format>) -> Format {
    let format = requested.unwrap_or(if journal::connected() {
        Format::Journal
    } else if std::io::stdout().is_terminal() {
        Format::Text
    } else {
        Format::Json
    });
    if format == Format::Journal && !journal::available() {
        log::warn!("no journald socket at /run/systemd/journal/socket: writing text to stderr instead");
        return Format::TextOnStderr;
    }
    format
}
