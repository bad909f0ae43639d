//! Loads the eBPF programs with what this kernel's tracefs and BTF say, and
//! attaches them.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

use anyhow::{anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    programs::{FExit, KProbe, RawTracePoint},
};
use rsttrace_common::{
    kernel::{ABSENT, KernelOffsets},
    reset::ResetConfig,
    timewait::TimeWaitConfig,
};

use crate::{
    kernel_types::{KernelNames, KernelTypes},
    tracefs::EventFormat,
};

/// The compiled programs (built by build.rs from rsttrace-ebpf).
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rsttrace"));

pub struct Hooks {
    pub ebpf: Ebpf,
    /// `raw_tracepoint/tcp_send_reset`, … in attach order.
    pub attached: Vec<String>,
    pub names: KernelNames,
    /// What this kernel cannot show, one sentence each.
    pub limitations: Vec<String>,
    pub strategy: Strategy,
}

/// How the kernel's handling of segments by TIME_WAIT sockets is observed.
/// Resets always use tracepoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// fexit on tcp_timewait_state_process: its exact verdict.
    Fexit,
    /// kprobe + kretprobe on the same function, for kernels without BPF
    /// trampolines.
    Kprobe,
    /// Tracepoints only: skb:kfree_skb's rx_sk (6.11+) and the table.
    Tracepoint,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Fexit => "fexit",
            Strategy::Kprobe => "kprobe",
            Strategy::Tracepoint => "tracepoint",
        }
    }
}

/// The state changes of every TCP socket (and the program's name).
const SET_STATE: &str = "inet_sock_set_state";

/// The function whose return value is the kernel's TIME_WAIT verdict.
const TW_PROCESS: &str = "tcp_timewait_state_process";

/// Everything read from the kernel before loading: the same for every
/// strategy.
struct Kernel {
    names: KernelNames,
    offsets: KernelOffsets,
    /// What the reset programs need to know.
    reset_config: ResetConfig,
    /// `kfree_skb` names the socket that received the freed segment (6.11+).
    kfree_skb_has_rx_sk: bool,
    /// Parameter names of tcp_timewait_state_process.
    tw_process_params: Option<Vec<String>>,
    limitations: Vec<String>,
}

/// Loads and attaches everything, with `requested` or, when `None`, the
/// first strategy this kernel accepts (fexit, kprobe, tracepoint).
pub fn load(tracefs: &Path, btf: &Path, requested: Option<Strategy>) -> anyhow::Result<Hooks> {
    let kernel = inspect(tracefs, btf)?;
    let candidates = match requested {
        Some(strategy) => vec![strategy],
        None => vec![Strategy::Fexit, Strategy::Kprobe, Strategy::Tracepoint],
    };
    let mut refusals = Vec::new();
    for strategy in candidates {
        match load_strategy(strategy, &kernel, btf) {
            Ok(hooks) => {
                for refusal in refusals {
                    log::info!("{refusal}");
                }
                return Ok(hooks);
            }
            Err(e) if requested.is_some() => {
                bail!("--strategy {} is not available here: {e:#}; try --strategy auto", strategy.as_str())
            }
            Err(e) => refusals.push(format!("strategy {} not available: {e:#}", strategy.as_str())),
        }
    }
    bail!("no hook strategy loads on this kernel: {}", refusals.join("; "))
}

fn inspect(tracefs: &Path, btf: &Path) -> anyhow::Result<Kernel> {
    let types = KernelTypes::open(btf)?;
    let mut names = types.names()?;
    let offsets = types.offsets(&names);

    // The programs are raw tracepoints, which take the events' arguments;
    // the format files say which arguments this kernel's events have.
    let send_format = EventFormat::read(tracefs, "tcp", "tcp_send_reset")?;
    let send_reset_has_reason = send_reset_has_reason(&send_format);
    EventFormat::read(tracefs, "tcp", "tcp_receive_reset")?;
    let kfree_format = EventFormat::read(tracefs, "skb", "kfree_skb")?;
    let kfree_skb_has_rx_sk = kfree_skb_has_rx_sk(&kfree_format);
    if names.reset_reasons.is_empty() {
        names.reset_reasons = numeric_symbols(&send_format, "reason");
    }
    if names.drop_reasons.is_empty() {
        names.drop_reasons = numeric_symbols(&kfree_format, "reason");
    }

    let mut limitations = Vec::new();
    if !send_reset_has_reason {
        // Linux 6.10 added the reason and made tcp_send_reset fire for every
        // reset; before, it fired only for full sockets.
        limitations.push("this kernel's tcp_send_reset has no reset reason (reason is null)".to_string());
        limitations.push(
            "this kernel's tcp_send_reset misses resets sent without a full socket (closed port, TIME_WAIT)"
                .to_string(),
        );
    }
    if offsets.tcp_lsndtime == ABSENT || offsets.icsk_lrcvtime == ABSENT || offsets.tcp_rcv_tstamp == ABSENT {
        limitations.push("idle_ms is null: kernel BTF lacks the TCP activity stamps".to_string());
    }
    let tw_process_params = types.function_params(TW_PROCESS);
    let reset_config = ResetConfig { send_reset_has_reason: send_reset_has_reason as u32 };
    Ok(Kernel { names, offsets, reset_config, kfree_skb_has_rx_sk, tw_process_params, limitations })
}

fn load_strategy(strategy: Strategy, kernel: &Kernel, btf: &Path) -> anyhow::Result<Hooks> {
    let mut limitations = kernel.limitations.clone();
    let mut raw_tracepoints = vec![SET_STATE, "tcp_send_reset", "tcp_receive_reset"];
    let params = kernel.tw_process_params.as_deref().unwrap_or_default();
    let config = TimeWaitConfig {
        // Without a hook on the verdict, the new connection is the evidence.
        accepted_from_set_state: (strategy == Strategy::Tracepoint) as u32,
        drop_reason_arg: params.iter().position(|p| p == "drop_reason").map_or(ABSENT, |i| i as u32),
        tw_status_syn: kernel.names.tw_statuses.iter().find(|(_, n)| *n == "SYN").map_or(ABSENT, |(v, _)| *v),
        _pad: 0,
    };
    if strategy == Strategy::Tracepoint {
        // Linux 6.11+ tells which socket a freed segment was for: the
        // TIME_WAIT socket's rejections and kills become visible.
        if kernel.kfree_skb_has_rx_sk {
            raw_tracepoints.push("kfree_skb");
        } else {
            limitations.push(
                "SYNs a TIME_WAIT socket rejects (stale ACK, RST, PAWS) and TIME_WAIT kills are invisible to tracepoints before Linux 6.11 (no rx_sk in skb:kfree_skb); only accepted reuse is reported".to_string(),
            );
        }
    } else if params.is_empty() {
        bail!("kernel BTF has no prototype of {TW_PROCESS}");
    }

    raise_memlock_limit();
    let mut ebpf = EbpfLoader::new()
        // The programs take offsets from globals, not CO-RE relocations: aya
        // need not parse the kernel's BTF a second time.
        .btf(None)
        .override_global("RESET_CONFIG", &kernel.reset_config, true)
        .override_global("TIME_WAIT_CONFIG", &config, true)
        .override_global("KERNEL_OFFSETS", &kernel.offsets, true)
        .load(PROGRAMS)
        .map_err(|e| anyhow!("cannot load the eBPF programs: {}", error_chain(&e)))?;

    // The strategy's own hook first: when it is refused, nothing else was
    // attached in vain.
    let mut attached = Vec::new();
    match strategy {
        Strategy::Fexit => {
            let program = match params.len() {
                3 => "tw_process_fexit3",
                4 => "tw_process_fexit4",
                5 => "tw_process_fexit5",
                n => bail!("{TW_PROCESS} has {n} parameters here; rsttrace knows 3 to 5"),
            };
            let kernel_btf = aya::Btf::parse_file(btf, aya::Endianness::default())
                .map_err(|e| anyhow!("cannot read kernel BTF for fexit: {}", error_chain(&e)))?;
            let fexit: &mut FExit = program_mut(&mut ebpf, program)?.try_into()?;
            fexit
                .load(TW_PROCESS, &kernel_btf)
                .map_err(|e| anyhow!("the kernel refused fexit/{TW_PROCESS}: {}", error_chain(&e)))?;
            fexit.attach().map_err(|e| anyhow!("cannot attach fexit/{TW_PROCESS}: {}", error_chain(&e)))?;
            attached.push(format!("fexit/{TW_PROCESS}"));
        }
        Strategy::Kprobe => {
            for (program, kind) in [("tw_process_entry", "kprobe"), ("tw_process_return", "kretprobe")] {
                let probe: &mut KProbe = program_mut(&mut ebpf, program)?.try_into()?;
                probe.load().map_err(|e| anyhow!("the kernel refused {kind}/{TW_PROCESS}: {}", error_chain(&e)))?;
                probe.attach(TW_PROCESS, 0).map_err(|e| {
                    let hint = crate::privileges::Privileges::inspect().kprobe_hint();
                    anyhow!(
                        "cannot attach {kind}/{TW_PROCESS}: {}{}",
                        error_chain(&e),
                        hint.map(|h| format!(" ({h})")).unwrap_or_default()
                    )
                })?;
                attached.push(format!("{kind}/{TW_PROCESS}"));
            }
        }
        Strategy::Tracepoint => {}
    }
    // Raw tracepoints, not classic ones: the kernel builds no trace record
    // (inet_sock_set_state fires on every state change of every TCP socket),
    // and attaching needs no perf event, which kernel.perf_event_paranoid=3
    // (Debian, Ubuntu) reserves to CAP_SYS_ADMIN.
    for name in raw_tracepoints {
        let program: &mut RawTracePoint = program_mut(&mut ebpf, name)?.try_into()?;
        program.load().map_err(|e| anyhow!("the kernel refused the {name} program: {}", error_chain(&e)))?;
        program.attach(name).map_err(|e| anyhow!("cannot attach to tracepoint {name}: {}", error_chain(&e)))?;
        attached.push(format!("raw_tracepoint/{name}"));
    }
    Ok(Hooks { ebpf, attached, names: kernel.names.clone(), limitations, strategy })
}

impl Hooks {
    /// Runs the kernel skipped because another BPF program was already
    /// running on that CPU (an interrupt arrived in the middle of one, from
    /// any tool): events missed with no record at all. Linux 5.12+ counts
    /// them per program; older kernels say nothing (0).
    pub fn missed_runs(&self) -> u64 {
        self.ebpf
            .programs()
            .filter_map(|(_, program)| program.fd().ok())
            .filter_map(|fd| std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd())).ok())
            .map(|fdinfo| fdinfo_value(&fdinfo, "recursion_misses").unwrap_or(0))
            .sum()
    }
}

/// A numeric `key:\tvalue` line of a /proc fdinfo file.
fn fdinfo_value(fdinfo: &str, key: &str) -> Option<u64> {
    fdinfo.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
}

fn program_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name).ok_or_else(|| anyhow!("eBPF object has no program {name}"))
}

/// `tcp_send_reset(sk, skb, reason)` since Linux 6.10, `(sk, skb)` before.
fn send_reset_has_reason(format: &EventFormat) -> bool {
    format.field("reason").is_some()
}

/// `kfree_skb(skb, location, reason, rx_sk)` since Linux 6.11.
fn kfree_skb_has_rx_sk(format: &EventFormat) -> bool {
    format.field("rx_sk").is_some()
}

/// `{ 1, "NO_SOCKET" }` pairs of a format's print_fmt, where numeric.
fn numeric_symbols(format: &EventFormat, field: &str) -> std::collections::HashMap<u32, String> {
    format.symbolic_names(field).into_iter().filter_map(|(v, n)| Some((v.parse().ok()?, n))).collect()
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones use
/// memcg. Raising it can fail (containers): that is only fatal on old kernels,
/// where the load error then says so.
fn raise_memlock_limit() {
    let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: valid resource and pointer to a live rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        log::debug!("cannot raise RLIMIT_MEMLOCK: {}", std::io::Error::last_os_error());
    }
}

/// `a: b: c` from an error and its sources, on one line. A verifier log is
/// cut to its verdict (the last line that is not a statistic).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    log::debug!("in full: {e}");
    let mut s = one_line(&e.to_string());
    let mut source = e.source();
    while let Some(inner) = source {
        let text = one_line(&inner.to_string());
        if !s.contains(&text) {
            s += &format!(": {text}");
        }
        source = inner.source();
    }
    s
}

fn one_line(message: &str) -> String {
    let Some((head, log)) = message.split_once("Verifier output:") else {
        return message.lines().next().unwrap_or_default().to_string();
    };
    let statistics = ["verification time", "stack depth", "processed ", "max_states"];
    let verdict =
        log.lines().map(str::trim).rev().find(|l| !l.is_empty() && !statistics.iter().any(|s| l.starts_with(s)));
    let head = head.trim().trim_end_matches('.');
    match verdict {
        Some(verdict) => format!("{head}; verifier: {verdict}"),
        None => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::tests::fixture;

    #[test]
    fn recursion_misses_from_a_program_fdinfo() {
        // As /proc/<pid>/fdinfo/<fd> of a BPF program reads on 6.18.
        let fdinfo = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t2057\nprog_type:\t5\nprog_jited:\t1\n\
                      prog_tag:\t2e6c7e2f0c9b5a1d\nmemlock:\t4096\nprog_id:\t812\nrun_time_ns:\t0\nrun_cnt:\t0\n\
                      recursion_misses:\t17\nverified_insns:\t412\n";
        assert_eq!(fdinfo_value(fdinfo, "recursion_misses"), Some(17));
        assert_eq!(fdinfo_value(fdinfo, "run_cnt"), Some(0));
        // Before 5.12 the line is absent.
        assert_eq!(fdinfo_value("prog_type:\t5\nrun_cnt:\t0\n", "recursion_misses"), None);
    }

    #[test]
    fn event_arguments_from_the_format_files() {
        for (kernel, reason, rx_sk) in [
            ("5.10", false, false),
            ("6.1", false, false),
            ("6.12", true, true),
            ("6.18", true, true),
            ("7.3", true, true),
        ] {
            assert_eq!(send_reset_has_reason(&fixture(kernel, "tcp", "tcp_send_reset")), reason, "{kernel}");
            assert_eq!(kfree_skb_has_rx_sk(&fixture(kernel, "skb", "kfree_skb")), rx_sk, "{kernel}");
        }
    }

    #[test]
    fn verifier_logs_are_cut_to_their_verdict() {
        let message = "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22). Verifier output: 0: R1=ctx() R10=fp0\n453: frame1: R1=fp[0]-88\ncannot return stack pointer to the caller\nverification time 3361 usec\nstack depth 88+376+0\nprocessed 610 insns (limit 1000000)\n";
        assert_eq!(
            one_line(message),
            "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22); verifier: cannot return stack pointer to the caller"
        );
        assert_eq!(one_line("Operation not permitted. Verifier output: "), "Operation not permitted");
        assert_eq!(one_line("first\nsecond"), "first");
    }

    #[test]
    fn reset_reason_names_from_the_format_file() {
        let names = numeric_symbols(&fixture("6.18", "tcp", "tcp_send_reset"), "reason");
        assert_eq!(names.get(&1).map(String::as_str), Some("NO_SOCKET"));
        assert_eq!(names.get(&11).map(String::as_str), Some("TCP_ABORT_ON_CLOSE"));
        assert!(numeric_symbols(&fixture("6.1", "tcp", "tcp_send_reset"), "reason").is_empty());
    }
}
