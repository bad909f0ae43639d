//! Loads the eBPF programs with what this kernel's tracefs and BTF say, and
//! attaches them.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

use anyhow::{anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    programs::{BtfTracePoint, FEntry, FExit, KProbe, RawTracePoint},
};
use rsttrace_common::{
    kernel::{ABSENT, KernelOffsets},
    reset::{DISCARD_REASON_WORDS, ResetConfig},
    timewait::TimeWaitConfig,
};

use super::{
    btf::{self, KernelTypes},
    limitation::Limitation,
    names::{DropReason, KernelNames, ResetReason, TwStatus},
    strategy::{Attach, Hook, Strategy, StrategyRequest, TW_PROCESS},
    tracefs::EventFormat,
};
use crate::error::one_line;

/// The compiled programs (built by build.rs from rsttrace-ebpf).
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rsttrace"));

pub struct Hooks {
    pub ebpf: Ebpf,
    /// In attach order.
    pub attached: Vec<Hook>,
    pub names: KernelNames,
    /// What this kernel cannot show.
    pub limitations: Vec<Limitation>,
    pub strategy: Strategy,
}

/// Everything read from the kernel before loading: the same for every
/// strategy.
struct Kernel {
    names: KernelNames,
    offsets: KernelOffsets,
    /// What the reset programs need to know.
    reset_config: ResetConfig,
    /// What `kfree_skb` says of a freed segment.
    kfree_skb: FreedSegments,
    /// Parameter names of tcp_timewait_state_process.
    tw_process_params: Option<Vec<String>>,
    /// Whether the kernel's prototype of each hook's function has the
    /// parameters its program reads by position (`Hook::reads_params`):
    /// `(hook, why not)`.
    prototypes: Vec<(Hook, Result<(), String>)>,
    limitations: Vec<Limitation>,
}

/// Why `load` attached nothing. Callers that explain it (doctor) match on
/// the variant; its text is the one line rsttrace prints.
#[derive(Debug)]
pub enum LoadError {
    /// The kernel's BTF or tracefs could not be read: no strategy was tried.
    Kernel(anyhow::Error),
    /// The one strategy asked for (`--strategy fexit` …) was refused, and why.
    Refused(Strategy, anyhow::Error),
    /// `--strategy auto`: every strategy was refused, in the order tried.
    NoneLoads(Vec<(Strategy, anyhow::Error)>),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Kernel(e) => write!(f, "{e}"),
            LoadError::Refused(strategy, why) => {
                write!(f, "--strategy {} is not available here: {why:#}; try --strategy auto", strategy.as_str())
            }
            LoadError::NoneLoads(refusals) => {
                f.write_str("no hook strategy loads on this kernel: ")?;
                for (i, (strategy, why)) in refusals.iter().enumerate() {
                    let separator = if i == 0 { "" } else { "; " };
                    write!(f, "{separator}strategy {} not available: {why:#}", strategy.as_str())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // What the kernel's error was caused by, as if it came alone.
            LoadError::Kernel(e) => e.source(),
            LoadError::Refused(..) | LoadError::NoneLoads(_) => None,
        }
    }
}

/// Loads and attaches everything with the first strategy of `requested`
/// this kernel accepts.
pub fn load(tracefs: &Path, btf: &Path, requested: StrategyRequest) -> Result<Hooks, LoadError> {
    let kernel = inspect(tracefs, btf).map_err(LoadError::Kernel)?;
    let forced = requested != StrategyRequest::Auto;
    let mut refusals: Vec<(Strategy, anyhow::Error)> = Vec::new();
    for strategy in requested.candidates() {
        match load_strategy(strategy, &kernel, btf) {
            Ok(hooks) => {
                for (strategy, why) in refusals {
                    log::info!("strategy {} not available: {why:#}", strategy.as_str());
                }
                return Ok(hooks);
            }
            Err(why) if forced => return Err(LoadError::Refused(strategy, why)),
            Err(why) => refusals.push((strategy, why)),
        }
    }
    Err(LoadError::NoneLoads(refusals))
}

fn inspect(tracefs: &Path, btf: &Path) -> anyhow::Result<Kernel> {
    let types = KernelTypes::open(btf)?;
    let mut names = types.names()?;
    let offsets = types.offsets(&names);
    let missing = btf::missing_members(&offsets);
    if !missing.is_empty() {
        bail!(
            "kernel BTF ({}) lacks {}, which rsttrace reads on every event: this kernel ({}) is not supported",
            btf.display(),
            missing.join(", "),
            super::release()
        );
    }

    // The programs are raw tracepoints, which take the events' arguments;
    // the format files say which arguments this kernel's events have.
    let send_format = EventFormat::read(tracefs, "tcp", "tcp_send_reset")?;
    let send_reset_has_reason = send_reset_has_reason(&send_format);
    EventFormat::read(tracefs, "tcp", "tcp_receive_reset")?;
    let kfree_format = EventFormat::read(tracefs, "skb", "kfree_skb")?;
    let kfree_skb = FreedSegments::of(&kfree_format);
    if names.reset_reasons.is_empty() {
        names.reset_reasons = btf::typed(numeric_symbols(&send_format, "reason"), ResetReason::from_name);
    }
    if names.drop_reasons.is_empty() {
        names.drop_reasons = btf::typed(numeric_symbols(&kfree_format, "reason"), DropReason::from_name);
    }

    let mut limitations = Vec::new();
    if !send_reset_has_reason {
        // Linux 6.10 added the reason and made tcp_send_reset fire for every
        // reset; before, it fired only for full sockets.
        limitations.push(Limitation::ResetReasonUnknown);
        limitations.push(Limitation::SocketlessResetsUnseen);
    }
    if offsets.tcp_lsndtime == ABSENT || offsets.icsk_lrcvtime == ABSENT || offsets.tcp_rcv_tstamp == ABSENT {
        limitations.push(Limitation::IdleMsUnknown);
        limitations.push(Limitation::PeerSilentMsUnknown);
    }
    if [offsets.skc_flags, offsets.sock_flag_keepopen, offsets.tcp_keepalive_time, offsets.net_tcp_keepalive_time]
        .contains(&ABSENT)
    {
        limitations.push(Limitation::KeepaliveSUnknown);
    }
    if offsets.sk_cgroup == ABSENT || offsets.cgroup_kn == ABSENT || offsets.kernfs_node_id == ABSENT {
        // Mainline before 5.15 (and stable kernels without the backport)
        // keeps a tagged pointer there, with no member for it.
        limitations.push(Limitation::UnitUnknown);
    }
    let tw_process_params = types.function_params(TW_PROCESS);
    let reset_config = ResetConfig {
        send_reset_has_reason: send_reset_has_reason as u32,
        // Set per strategy (`load_strategy`).
        keeps_every_connection: 0,
        discard_reasons: discard_reasons(&names, kfree_skb),
    };
    // The programs read these functions' arguments by position.
    let prototypes = Hook::ALL
        .into_iter()
        .filter_map(|hook| Some((hook, hook.function()?, hook.reads_params()?)))
        .map(|(hook, function, wanted)| {
            let found = match types.function_params(function) {
                None => Err(format!("kernel BTF has no {function}")),
                Some(params) if params == wanted => Ok(()),
                Some(params) => Err(format!("{function}({}) here, not ({})", params.join(", "), wanted.join(", "))),
            };
            (hook, found)
        })
        .collect();
    Ok(Kernel { names, offsets, reset_config, kfree_skb, tw_process_params, prototypes, limitations })
}

fn load_strategy(strategy: Strategy, kernel: &Kernel, btf: &Path) -> anyhow::Result<Hooks> {
    let mut limitations = kernel.limitations.clone();
    let mut raw_tracepoints = vec![Hook::InetSockSetState, Hook::TcpSendReset, Hook::TcpReceiveReset];
    let params = kernel.tw_process_params.as_deref().unwrap_or_default();
    let isn_proves_accept = params.iter().any(|p| p == "tw_isn");
    let config = TimeWaitConfig {
        // Without a hook on the verdict, the new connection is the evidence,
        // where its ISN proves a TIME_WAIT socket accepted its SYN: without
        // that proof a connection whose TIME_WAIT socket tcp_max_tw_buckets
        // refused would be reported as accepted reuse.
        accepted_from_set_state: (strategy == Strategy::Tracepoint && isn_proves_accept) as u32,
        drop_reason_arg: params.iter().position(|p| p == "drop_reason").map_or(ABSENT, |i| i as u32),
        tw_status_syn: kernel.names.tw_status_number(&TwStatus::Syn).unwrap_or(ABSENT),
        segments_from_kfree_skb: (strategy == Strategy::Tracepoint) as u32,
    };
    if strategy == Strategy::Tracepoint && !isn_proves_accept {
        limitations.push(Limitation::AcceptedReuseUnseen);
    }
    // Linux 6.11+ tells which socket a freed segment was for: the RSTs the
    // kernel discards, and (tracepoint strategy) the TIME_WAIT socket's
    // rejections and kills, become visible; 5.17+ at least why it was freed.
    match kernel.kfree_skb {
        FreedSegments::WithSocket => {}
        FreedSegments::WithReason => limitations.push(Limitation::DiscardsWithoutState),
        FreedSegments::Unexplained => limitations.push(Limitation::DiscardsUnseen),
    }
    if kernel.kfree_skb != FreedSegments::Unexplained {
        raw_tracepoints.push(Hook::KfreeSkb);
    }
    if kernel.kfree_skb != FreedSegments::WithSocket && strategy == Strategy::Tracepoint {
        limitations.push(Limitation::TimewaitRejectionsUnseen);
    }
    if strategy != Strategy::Tracepoint && params.is_empty() {
        bail!("kernel BTF has no prototype of {TW_PROCESS}");
    }

    // The fexit strategy learns every connection's peer TTL: each one's
    // entry goes when it closes.
    let reset_config =
        ResetConfig { keeps_every_connection: (strategy == Strategy::Fexit) as u32, ..kernel.reset_config };
    raise_memlock_limit();
    let mut ebpf = EbpfLoader::new()
        // The programs take offsets from globals, not CO-RE relocations: aya
        // need not parse the kernel's BTF a second time.
        .btf(None)
        .override_global("RESET_CONFIG", &reset_config, true)
        .override_global("TIME_WAIT_CONFIG", &config, true)
        .override_global("KERNEL_OFFSETS", &kernel.offsets, true)
        .load(PROGRAMS)
        .map_err(|e| anyhow!("cannot load the eBPF programs: {}", one_line(&e)))?;

    // Parsed once for every fentry, fexit and BTF-typed tracepoint program
    // (aya needs the types of what they attach to). Only fexit cannot do
    // without it.
    let kernel_btf = match aya::Btf::parse_file(btf, aya::Endianness::default()) {
        Ok(kernel_btf) => Some(kernel_btf),
        Err(e) if strategy == Strategy::Fexit => bail!("cannot read kernel BTF for fexit: {}", one_line(&e)),
        Err(e) => {
            log::warn!("cannot read kernel BTF for typed programs: {}", one_line(&e));
            None
        }
    };
    // The strategy's own hook first: when it is refused, nothing else was
    // attached in vain.
    let mut attached = Vec::new();
    match strategy {
        Strategy::Fexit => {
            let hook = Hook::FexitTimewaitProcess;
            let program = match params.len() {
                n @ 3..=5 => hook.programs()[5 - n].name,
                n => bail!("{TW_PROCESS} has {n} parameters here; rsttrace knows 3 to 5"),
            };
            let kernel_btf = kernel_btf.as_ref().expect("parsed for fexit");
            let fexit: &mut FExit = program_mut(&mut ebpf, program)?.try_into()?;
            fexit.load(TW_PROCESS, kernel_btf).map_err(|e| anyhow!("the kernel refused {hook}: {}", one_line(&e)))?;
            fexit.attach().map_err(|e| anyhow!("cannot attach {hook}: {}", one_line(&e)))?;
            attached.push(hook);
        }
        Strategy::Kprobe => {
            for hook in [Hook::KprobeTimewaitProcess, Hook::KretprobeTimewaitProcess] {
                let probe: &mut KProbe = program_mut(&mut ebpf, hook.programs()[0].name)?.try_into()?;
                probe.load().map_err(|e| anyhow!("the kernel refused {hook}: {}", one_line(&e)))?;
                probe.attach(TW_PROCESS, 0).map_err(|e| {
                    let hint = super::privileges::Privileges::inspect().kprobe_hint();
                    anyhow!(
                        "cannot attach {hook}: {}{}",
                        one_line(&e),
                        hint.map(|h| format!(" ({h})")).unwrap_or_default()
                    )
                })?;
                attached.push(hook);
            }
        }
        Strategy::Tracepoint => {}
    }
    let tracing_btf = kernel_btf.as_ref().filter(|_| strategy == Strategy::Fexit);
    attach_origin_hooks(strategy, kernel, tracing_btf, &mut ebpf, &mut attached, &mut limitations);
    // Raw tracepoints, not classic ones: the kernel builds no trace record
    // (inet_sock_set_state fires on every state change of every TCP socket),
    // and attaching needs no perf event, which kernel.perf_event_paranoid=3
    // (Debian, Ubuntu) reserves to CAP_SYS_ADMIN.
    let untyped_only = std::env::var_os(NO_TP_BTF).is_some();
    if untyped_only {
        log::warn!("{NO_TP_BTF} is set: the raw tracepoints' programs read sockets through bpf_probe_read_kernel");
    }
    for hook in raw_tracepoints {
        let name = hook.tracepoint().expect("a raw tracepoint");
        // One program per prototype, like the fexit programs.
        let program = match hook {
            Hook::KfreeSkb if kernel.kfree_skb == FreedSegments::WithReason => hook.programs()[1],
            _ => hook.programs()[0],
        };
        if let (Some(typed), Some(kernel_btf), false) = (program.typed, kernel_btf.as_ref(), untyped_only) {
            match attach_typed_tracepoint(&mut ebpf, typed, name, kernel_btf) {
                Ok(()) => {
                    log::info!("{hook}: a BTF-typed program (tp_btf), reading sockets with plain loads");
                    attached.push(hook);
                    continue;
                }
                Err(why) => log::warn!("{why}; {hook} reads sockets through bpf_probe_read_kernel instead"),
            }
        }
        let program: &mut RawTracePoint = program_mut(&mut ebpf, program.name)?.try_into()?;
        program.load().map_err(|e| anyhow!("the kernel refused the {name} program: {}", one_line(&e)))?;
        program.attach(name).map_err(|e| anyhow!("cannot attach to tracepoint {name}: {}", one_line(&e)))?;
        attached.push(hook);
    }
    Ok(Hooks { ebpf, attached, names: kernel.names.clone(), limitations, strategy })
}

/// Set (to anything), rsttrace attaches the raw tracepoints' programs, not
/// their BTF-typed twins: an escape hatch should a kernel's verifier accept
/// a typed program that then misreads, and how the tests keep the programs
/// kernels without `tp_btf` get under test.
pub const NO_TP_BTF: &str = "RSTTRACE_NO_TP_BTF";

/// Loads and attaches a BTF-typed tracepoint (tp_btf, Linux 5.5+) program.
fn attach_typed_tracepoint(
    ebpf: &mut Ebpf,
    program: &str,
    tracepoint: &str,
    kernel_btf: &aya::Btf,
) -> Result<(), String> {
    let refused = |e: &dyn std::error::Error| format!("the kernel refused tp_btf/{tracepoint}: {}", one_line(e));
    let program = ebpf.program_mut(program).ok_or_else(|| format!("eBPF object has no program {program}"))?;
    let typed: &mut BtfTracePoint = program.try_into().map_err(|e| refused(&e))?;
    typed.load(tracepoint, kernel_btf).map_err(|e| refused(&e))?;
    typed.attach().map_err(|e| refused(&e))?;
    Ok(())
}

/// Hooks that tell who sent a received RST: the segment tcp_reset()
/// handles (its TTL, and whether it is an RST at all), and the TTL of the
/// peer's segments, learned as connections are set up. They need fentry,
/// fexit or kprobes; what cannot be attached leaves its key null and says
/// why in `limitations`, without failing the strategy.
fn attach_origin_hooks(
    strategy: Strategy,
    kernel: &Kernel,
    kernel_btf: Option<&aya::Btf>,
    ebpf: &mut Ebpf,
    attached: &mut Vec<Hook>,
    limitations: &mut Vec<Limitation>,
) {
    let usable = |hook: Hook| -> Result<(), String> {
        // A hook that reads no parameter by position fits any prototype.
        kernel.prototypes.iter().find(|(h, _)| *h == hook).map_or(Ok(()), |(_, found)| found.clone())
    };
    let mut attach = |hook: Hook| -> Result<(), String> {
        usable(hook)?;
        let function = hook.function().unwrap_or_default();
        let program = hook.programs()[0].name;
        let result = match kernel_btf {
            Some(kernel_btf) => attach_tracing(ebpf, hook, program, function, kernel_btf),
            None => attach_kprobe(ebpf, program, function),
        };
        result.map(|()| attached.push(hook))
    };
    let ttl = match strategy {
        Strategy::Fexit => attach(Hook::FentryTcpReset),
        Strategy::Kprobe => attach(Hook::KprobeTcpReset),
        Strategy::Tracepoint => Err("the tracepoint strategy has no hook on tcp_reset()'s segment".to_string()),
    };
    if let Err(why) = ttl {
        limitations.push(Limitation::TtlUnknown(why));
    }
    let peer_ttl = match strategy {
        // A SYN proxy on this host completes handshakes itself: the segment
        // the TTL would be learned from may be its own (TTL 64), and every
        // genuine RST would then differ from it.
        Strategy::Fexit if synproxy_loaded(Path::new("/proc/modules")) => {
            Err("a SYN proxy is loaded (nf_synproxy_core), which builds the handshake's last segment itself"
                .to_string())
        }
        Strategy::Fexit => [Hook::FexitTcpCreateOpenreqChild, Hook::FentryTcpFinishConnect]
            .into_iter()
            .map(&mut attach)
            .collect::<Result<Vec<()>, String>>()
            .map(drop),
        _ => Err(format!("learning it needs the fexit strategy (this is {})", strategy.as_str())),
    };
    if let Err(why) = peer_ttl {
        limitations.push(Limitation::PeerTtlUnknown(why));
    }
}

/// Whether the kernel's SYN proxy (nftables or iptables SYNPROXY) is loaded
/// as a module.
fn synproxy_loaded(modules: &Path) -> bool {
    std::fs::read_to_string(modules).is_ok_and(|m| m.lines().any(|l| l.starts_with("nf_synproxy_core ")))
}

fn attach_tracing(
    ebpf: &mut Ebpf,
    hook: Hook,
    program: &str,
    function: &str,
    kernel_btf: &aya::Btf,
) -> Result<(), String> {
    let refused = |e: &dyn std::error::Error| format!("the kernel refused {hook}: {}", one_line(e));
    let program = ebpf.program_mut(program).ok_or_else(|| format!("eBPF object has no program {program}"))?;
    match hook.attach() {
        Attach::Fentry => {
            let fentry: &mut FEntry = program.try_into().map_err(|e| refused(&e))?;
            fentry.load(function, kernel_btf).map_err(|e| refused(&e))?;
            fentry.attach().map_err(|e| refused(&e))?;
        }
        Attach::Fexit => {
            let fexit: &mut FExit = program.try_into().map_err(|e| refused(&e))?;
            fexit.load(function, kernel_btf).map_err(|e| refused(&e))?;
            fexit.attach().map_err(|e| refused(&e))?;
        }
        other => unreachable!("{hook} is not a tracing hook ({other:?})"),
    }
    Ok(())
}

fn attach_kprobe(ebpf: &mut Ebpf, program: &str, function: &str) -> Result<(), String> {
    let refused = |e: &dyn std::error::Error| format!("the kernel refused kprobe/{function}: {}", one_line(e));
    let program = ebpf.program_mut(program).ok_or_else(|| format!("eBPF object has no program {program}"))?;
    let probe: &mut KProbe = program.try_into().map_err(|e| refused(&e))?;
    probe.load().map_err(|e| refused(&e))?;
    probe.attach(function, 0).map_err(|e| refused(&e))?;
    Ok(())
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

/// What the `kfree_skb` tracepoint tells of a freed segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FreedSegments {
    /// Its drop reason and the socket that received it (Linux 6.11+).
    WithSocket,
    /// Its drop reason only (5.17 to 6.10).
    WithReason,
    /// Neither.
    Unexplained,
}

impl FreedSegments {
    fn of(format: &EventFormat) -> Self {
        match (format.field("reason").is_some(), format.field("rx_sk").is_some()) {
            (true, true) => FreedSegments::WithSocket,
            (true, false) => FreedSegments::WithReason,
            _ => FreedSegments::Unexplained,
        }
    }
}

/// The drop reasons with which a freed RST is one TCP discarded. Without
/// the receiving socket, NOT_SPECIFIED says nothing (a half-open
/// connection's RST, one at a TIME_WAIT socket, many other drops): left out.
fn discard_reasons(names: &KernelNames, freed: FreedSegments) -> [u64; DISCARD_REASON_WORDS] {
    let mut words = [0u64; DISCARD_REASON_WORDS];
    for (&number, reason) in &names.drop_reasons {
        let needs_socket = *reason == DropReason::NotSpecified && freed != FreedSegments::WithSocket;
        if reason.is_tcp_discard() && !needs_socket && (number as usize) < 64 * DISCARD_REASON_WORDS {
            words[number as usize / 64] |= 1 << (number % 64);
        }
    }
    words
}

/// `tcp_send_reset(sk, skb, reason)` since Linux 6.10, `(sk, skb)` before.
fn send_reset_has_reason(format: &EventFormat) -> bool {
    format.field("reason").is_some()
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_loaded_synproxy_is_found_in_proc_modules() {
        let dir = std::env::temp_dir().join(format!("rsttrace-modules-{}", std::process::id()));
        std::fs::write(&dir, "nf_synproxy_core 20480 1 nft_synproxy, Live 0x0\nveth 40960 0 - Live 0x0\n").unwrap();
        assert!(super::synproxy_loaded(&dir));
        std::fs::write(&dir, "nf_synproxy_core_x 1 0 - Live 0x0\nveth 40960 0 - Live 0x0\n").unwrap();
        assert!(!super::synproxy_loaded(&dir));
        std::fs::remove_file(&dir).unwrap();
        assert!(!super::synproxy_loaded(&dir), "no /proc/modules (a kernel without modules)");
    }

    use super::*;

    #[test]
    fn every_program_a_hook_names_is_in_the_object() {
        let object = aya_obj::Object::parse(PROGRAMS).expect("the compiled eBPF object");
        for hook in Hook::ALL {
            for program in hook.programs() {
                for name in std::iter::once(program.name).chain(program.typed) {
                    assert!(object.programs.contains_key(name), "{hook}: no program {name}");
                }
            }
        }
    }
    use crate::kernel::tracefs::tests::fixture;

    #[test]
    fn load_errors_read_as_one_line() {
        let refused = |what: &str| anyhow!("the kernel refused {what}: EPERM");
        let forced = LoadError::Refused(Strategy::Fexit, refused("fexit/x"));
        assert_eq!(
            crate::error::one_line(&forced),
            "--strategy fexit is not available here: the kernel refused fexit/x: EPERM; try --strategy auto"
        );
        let auto =
            LoadError::NoneLoads(vec![(Strategy::Fexit, refused("fexit/x")), (Strategy::Kprobe, refused("kprobe/x"))]);
        assert_eq!(
            crate::error::one_line(&auto),
            "no hook strategy loads on this kernel: strategy fexit not available: the kernel refused fexit/x: EPERM; strategy kprobe not available: the kernel refused kprobe/x: EPERM"
        );
        let kernel = LoadError::Kernel(anyhow!("no such file").context("cannot read /sys/kernel/btf/vmlinux"));
        assert_eq!(crate::error::one_line(&kernel), "cannot read /sys/kernel/btf/vmlinux: no such file");
    }

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
            let freed = FreedSegments::of(&fixture(kernel, "skb", "kfree_skb"));
            let expected = match (kernel, rx_sk) {
                ("5.10", _) => FreedSegments::Unexplained,
                (_, true) => FreedSegments::WithSocket,
                (_, false) => FreedSegments::WithReason,
            };
            assert_eq!(freed, expected, "{kernel}");
        }
    }

    #[test]
    fn discard_reasons_are_those_of_tcp_receive_path() {
        let mut names = crate::events::decode::tests::names();
        names.drop_reasons.insert(130, DropReason::from_name("NETFILTER_DROP"));
        names.drop_reasons.insert(41, DropReason::from_name("TCP_OLD_SEQUENCE"));
        names.drop_reasons.insert(300, DropReason::from_name("TCP_BEYOND_THE_BITMAP"));
        let without_socket = ResetConfig {
            send_reset_has_reason: 0,
            keeps_every_connection: 0,
            discard_reasons: discard_reasons(&names, FreedSegments::WithReason),
        };
        assert!(!without_socket.discards(2), "NOT_SPECIFIED needs the socket");
        assert!(without_socket.discards(3) && without_socket.discards(45));
        let words = discard_reasons(&names, FreedSegments::WithSocket);
        let config = ResetConfig { send_reset_has_reason: 1, keeps_every_connection: 0, discard_reasons: words };
        // NOT_SPECIFIED, NO_SOCKET, TCP_RESET, TCP_RFC7323_TW_PAWS, TCP_OLD_SEQUENCE.
        for reason in [2, 3, 45, 90, 41] {
            assert!(config.discards(reason), "{reason}");
        }
        for reason in [0, 1, 130, 255, 256, 300, u32::MAX] {
            assert!(!config.discards(reason), "{reason}");
        }
    }

    #[test]
    fn reset_reason_names_from_the_format_file() {
        let names = numeric_symbols(&fixture("6.18", "tcp", "tcp_send_reset"), "reason");
        assert_eq!(names.get(&1).map(String::as_str), Some("NO_SOCKET"));
        assert_eq!(names.get(&11).map(String::as_str), Some("TCP_ABORT_ON_CLOSE"));
        assert!(numeric_symbols(&fixture("6.1", "tcp", "tcp_send_reset"), "reason").is_empty());
    }
}
