//! Reading the host: privileges, kernel BTF, tracefs, which strategies load,
//! the sysctls, sockets (see `sockets`) and counters of this namespace.

use std::{collections::BTreeMap, path::Path};

use super::{Netns, Report, explain, sockets::SocketCounts};
use crate::{
    cli::DoctorOptions,
    error,
    kernel::{
        btf::KernelTypes,
        hooks::{self, LoadError},
        privileges::Privileges,
        strategy::{Strategy, StrategyRequest},
        tracefs,
    },
    procfs,
};

pub fn report(options: &DoctorOptions) -> Report {
    let privileges = Privileges::inspect();
    let privileges_problem = privileges.result().err().map(|e| e.to_string());
    let btf = options.btf.clone();
    let btf_problem = KernelTypes::open(&btf).err().map(|e| error::one_line(e.as_ref()));
    let was_mounted = tracefs_mounted();
    let tracefs = match privileges.unreadable_tracefs.first() {
        // Mounted but closed to this process: trying to mount another
        // one would fail too, and only confuse.
        Some(dir) if options.tracefs.as_deref().is_none_or(|d| d == dir) => {
            Err(format!("{} is mounted but this process cannot read it (needs CAP_DAC_READ_SEARCH)", dir.display()))
        }
        _ => tracefs::locate(options.tracefs.as_deref()).map_err(|e| error::one_line(e.as_ref())),
    };
    let mounted_tracefs = tracefs.is_ok() && options.tracefs.is_none() && !was_mounted;

    let prerequisite = if privileges_problem.is_some() {
        Some("privileges")
    } else if btf_problem.is_some() {
        Some("kernel BTF")
    } else if tracefs.is_err() {
        Some("tracefs")
    } else {
        None
    };
    let strategies = Strategy::AUTO_ORDER
        .iter()
        .map(|&strategy| {
            let outcome = match (prerequisite, &tracefs) {
                (None, Ok(dir)) => {
                    hooks::load(dir, &btf, StrategyRequest::Only(strategy)).map(drop).map_err(|e| refusal(&e))
                }
                _ => Err(format!("not tried: {} missing (see above)", prerequisite.unwrap_or("tracefs"))),
            };
            (strategy, outcome)
        })
        .collect();

    let sockets = SocketCounts::measure();
    let sysctls = explain::sysctls(&read_sysctls(), sockets.counts.map(|c| c.time_wait));
    let keepalive = sockets.counts.map(|c| explain::keepalive(c.established, c.keepalive));
    let mut tables = procfs::counter_tables(&std::fs::read_to_string("/proc/net/netstat").unwrap_or_default());
    tables.extend(procfs::counter_tables(&std::fs::read_to_string("/proc/net/snmp").unwrap_or_default()));
    Report {
        kernel: crate::kernel::release(),
        netns: netns(),
        privileges,
        privileges_problem,
        btf,
        btf_problem,
        tracefs,
        mounted_tracefs,
        strategies,
        sysctls,
        sockets,
        keepalive,
        counters: explain::counters(&tables),
    }
}

/// Why hooks::load refused a strategy, without the advice its message has
/// for `--strategy` users.
fn refusal(e: &LoadError) -> String {
    match e {
        LoadError::Refused(_, why) | LoadError::Kernel(why) => error::one_line(why.as_ref()),
        LoadError::NoneLoads(_) => error::one_line(e),
    }
}

/// Whether any usual tracefs mount point already shows its events.
fn tracefs_mounted() -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"].iter().any(|d| Path::new(d).join("events").is_dir())
}

/// The namespace this process runs in, and whether it is the host's.
fn netns() -> Netns {
    let inode = |path: &str| {
        let link = std::fs::read_link(path).ok()?;
        link.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse::<u64>().ok()
    };
    let current = inode("/proc/self/ns/net");
    let host = inode("/proc/1/ns/net").zip(current).map(|(host, me)| host == me);
    Netns { inode: current, host }
}

/// `tcp_timestamps` -> its value with whitespace collapsed (port ranges are
/// tab-separated), or absent.
fn read_sysctls() -> BTreeMap<&'static str, String> {
    explain::SYSCTLS
        .iter()
        .filter_map(|name| {
            let text = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).ok()?;
            Some((*name, text.split_whitespace().collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forced_strategy_refusal_loses_its_advice() {
        let e = LoadError::Refused(Strategy::Fexit, anyhow::anyhow!("the kernel refused fexit/x: EPERM"));
        assert!(error::one_line(&e).ends_with("; try --strategy auto"));
        assert_eq!(refusal(&e), "the kernel refused fexit/x: EPERM");
        assert_eq!(refusal(&LoadError::Kernel(anyhow::anyhow!("other"))), "other");
    }
}
