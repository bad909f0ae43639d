//! `rsttrace generate man|completions SHELL --out DIR` (hidden): the man
//! pages and shell completions the Debian package ships (`cargo xtask deb`),
//! generated from the clap definition itself so they never drift from it.

use std::{fs, path::Path};

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::{Cli, GenerateOptions, Generated};

pub fn run(options: &GenerateOptions) -> anyhow::Result<()> {
    let out = &options.out;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut command = visible(Cli::command());
    command.build();
    match options.what {
        Generated::Man => {
            write_man(&command, "rsttrace", out)?;
            for sub in command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
                write_man(sub, &format!("rsttrace-{}", sub.get_name()), out)?;
            }
        }
        Generated::Completions { shell } => {
            let path = clap_complete::generate_to(shell, &mut command, "rsttrace", out)
                .with_context(|| format!("cannot write {shell} completions into {}", out.display()))?;
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// The command without its hidden subcommands (this one): clap has no way
/// to drop a subcommand, so the visible parts are copied into a new one.
fn visible(full: clap::Command) -> clap::Command {
    let mut command = clap::Command::new("rsttrace")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
        .args_conflicts_with_subcommands(true);
    if let Some(about) = full.get_about() {
        command = command.about(about.clone());
    }
    if let Some(about) = full.get_long_about() {
        command = command.long_about(about.clone());
    }
    command
}

fn write_man(command: &clap::Command, name: &str, out: &Path) -> anyhow::Result<()> {
    // The synopsis shows `rsttrace doctor`, the page is rsttrace-doctor(1).
    let command = command.clone().bin_name(name.replace('-', " "));
    let mut page = Vec::new();
    clap_mangen::Man::new(command).title(name).render(&mut page)?;
    let path = out.join(format!("{name}.1"));
    fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}
