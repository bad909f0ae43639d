//! `rsttrace doctor`: whether rsttrace can run here (privileges, kernel BTF,
//! tracefs, which hook strategies load), and the TCP settings, sockets
//! (TIME_WAIT, established with keepalive) and counters behind resets.
//! Sysctls, sockets and counters belong to a network namespace: doctor
//! reports the one it runs in.
//!
//! `gather` and `sockets` read the host, `explain` says what each value
//! means behind a load balancer, `render` writes the report as text or JSON.

mod explain;
mod gather;
mod render;
mod sockets;

use std::{path::PathBuf, process::ExitCode};

use crate::{
    cli::{DoctorFormat, DoctorOptions},
    kernel::{privileges::Privileges, strategy::Strategy},
};
use explain::{Counter, Sysctl};
use sockets::SocketCounts;

pub fn main(options: &DoctorOptions) -> ExitCode {
    let report = gather::report(options);
    match options.format {
        DoctorFormat::Text => print!("{}", render::text(&report)),
        DoctorFormat::Json => println!("{}", render::json(&report)),
    }
    if report.can_run() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Everything doctor found out about this host and namespace.
struct Report {
    kernel: String,
    netns: Netns,
    privileges: Privileges,
    /// Why rsttrace lacks privileges, if it does.
    privileges_problem: Option<String>,
    btf: PathBuf,
    btf_problem: Option<String>,
    tracefs: Result<PathBuf, String>,
    /// tracefs was not mounted until doctor mounted it.
    mounted_tracefs: bool,
    strategies: Vec<(Strategy, Result<(), String>)>,
    sysctls: Vec<Sysctl>,
    sockets: SocketCounts,
    /// What the share of established connections with keepalive means;
    /// None when the sockets could not be counted.
    keepalive: Option<String>,
    counters: Vec<Counter>,
}

impl Report {
    /// What `--strategy auto` would pick.
    fn auto(&self) -> Option<Strategy> {
        self.strategies.iter().find(|(_, outcome)| outcome.is_ok()).map(|(s, _)| *s)
    }

    fn can_run(&self) -> bool {
        self.privileges_problem.is_none() && self.btf_problem.is_none() && self.tracefs.is_ok() && self.auto().is_some()
    }
}

/// The network namespace doctor runs in.
struct Netns {
    inode: Option<u64>,
    /// Whether it is PID 1's (the host's); None when that cannot be read.
    host: Option<bool>,
}
