//! rsttrace: explains TCP resets on this host from inside the kernel.

mod cli;
mod clock;
mod collision;
mod daemon;
mod doctor;
mod event;
mod filter;
mod generate;
mod hooks;
mod kernel_types;
mod output;
mod privileges;
mod tracefs;

use std::{io::IsTerminal as _, process::ExitCode};

use clap::Parser as _;

use crate::{
    cli::{Cli, Command, RunOptions, Strategy},
    clock::Clock,
    event::Decoder,
    filter::Filter,
    output::Format,
};

fn main() -> ExitCode {
    // Bad arguments exit 2 with clap's message.
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let result = match cli.command {
        Some(Command::Doctor(options)) => return doctor::main(&options),
        Some(Command::Generate(options)) => generate::run(&options),
        None => run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if daemon::is_reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a user can act on.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("rsttrace: {}", chain.join(": "));
            ExitCode::from(1)
        }
    }
}

fn run(cli: RunOptions) -> anyhow::Result<()> {
    privileges::check()?;
    let tracefs = tracefs::locate(cli.tracefs.as_deref())?;
    let strategy = match cli.strategy {
        Strategy::Auto => None,
        Strategy::Fexit => Some(hooks::Strategy::Fexit),
        Strategy::Kprobe => Some(hooks::Strategy::Kprobe),
        Strategy::Tracepoint => Some(hooks::Strategy::Tracepoint),
    };
    let hooks = hooks::load(&tracefs, &cli.btf, strategy)?;
    let decoder = Decoder { names: hooks.names.clone(), clock: Clock::now() };
    let format = cli.format.unwrap_or(if std::io::stdout().is_terminal() { Format::Text } else { Format::Json });
    let options = daemon::Options {
        format,
        filter: Filter { ports: cli.ports, networks: cli.networks },
        duration: cli.duration,
        kernel: kernel_release(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(daemon::run(hooks, decoder, options))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}
