//! What watches the loads: rsttrace (the real binary), and what a user would
//! run instead: a bpftrace script on the same tracepoints, tcpdump's RST
//! filter. Each runs as a child process with its output in a file.

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::Value;

use super::{load::Load, netns::Netns};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Tool {
    /// Nothing watching: the baseline.
    #[value(skip)]
    None,
    Rsttrace,
    Bpftrace,
    Tcpdump,
}

impl Tool {
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::None => "none",
            Tool::Rsttrace => "rsttrace",
            Tool::Bpftrace => "bpftrace",
            Tool::Tcpdump => "tcpdump",
        }
    }
}

/// What a user would write with bpftrace: one line per hit of each of the
/// tracepoints rsttrace uses.
pub const BPFTRACE_SCRIPT: &str = r#"tracepoint:tcp:tcp_send_reset { printf("rst_sent state=%d reason=%d\n", args->state, args->reason); }
tracepoint:tcp:tcp_receive_reset { printf("rst_received %d -> %d\n", args->sport, args->dport); }
tracepoint:sock:inet_sock_set_state { printf("set_state %d -> %d %d -> %d\n", args->sport, args->dport, args->oldstate, args->newstate); }
tracepoint:skb:kfree_skb { printf("kfree_skb reason=%d\n", args->reason); }
"#;

/// Every segment with RST set.
pub const TCPDUMP_FILTER: &str = "tcp[tcpflags] & (tcp-rst) != 0";

/// A watcher that runs.
pub struct Running {
    pub tool: Tool,
    child: Child,
    pub pid: i32,
    out: PathBuf,
    err: PathBuf,
    /// From spawn until it watched (rsttrace: its ready record), to the
    /// poll's 10 ms.
    pub ready_after: Duration,
}

/// Where its output goes and what it needs.
pub struct Context<'a> {
    pub rsttrace: &'a Path,
    pub bpftrace_script: &'a Path,
    pub dir: &'a Path,
}

impl Running {
    /// Starts `tool` and waits until it watches. `Err` says why it cannot
    /// run here (reported in the table, not fatal).
    pub fn start(tool: Tool, ctx: &Context, netns: &Netns, load: Load, tag: &str) -> Result<Running, String> {
        let out = ctx.dir.join(format!("{tag}.out"));
        let err = ctx.dir.join(format!("{tag}.err"));
        let mut cmd = match tool {
            Tool::None => unreachable!("nothing to start"),
            Tool::Rsttrace => {
                let mut cmd = Command::new(ctx.rsttrace);
                cmd.args(["--format", "json", "--port", &load.port().to_string()]);
                cmd
            }
            Tool::Bpftrace => {
                let mut cmd = Command::new("bpftrace");
                cmd.arg(ctx.bpftrace_script);
                cmd
            }
            Tool::Tcpdump => {
                let mut cmd = Command::new("ip");
                // -Z root: write the file as root (tcpdump drops to its own
                // user by default); -n: no name look-ups.
                cmd.args(["netns", "exec", &netns.name, "tcpdump", "-i", "lo", "-n", "-Z", "root", "-w"])
                    .arg(ctx.dir.join(format!("{tag}.pcap")))
                    .arg(TCPDUMP_FILTER);
                cmd
            }
        };
        let files = File::create(&out).and_then(|o| Ok((o, File::create(&err)?)));
        let (stdout, stderr) = files.map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", tool.as_str()))?;
        let started = Instant::now();
        let mut running = Running { tool, pid: child.id() as i32, child, out, err, ready_after: Duration::ZERO };
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                return Err(format!("{} exited at start ({status}): {}", tool.as_str(), running.first_error_line()));
            }
            if running.is_watching() {
                running.ready_after = started.elapsed();
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = running.child.kill();
                let _ = running.child.wait();
                return Err(format!("{} not ready after 60 s: {}", tool.as_str(), running.first_error_line()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if tool == Tool::Bpftrace {
            // Programs loaded; give it time to attach the last one.
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(running)
    }

    fn is_watching(&self) -> bool {
        match self.tool {
            Tool::None => true,
            Tool::Rsttrace => read_lossy(&self.out).contains("\"kind\":\"ready\""),
            Tool::Bpftrace => self.bpf_ids("prog_id").len() >= 4,
            Tool::Tcpdump => read_lossy(&self.err).contains("listening on"),
        }
    }

    fn first_error_line(&self) -> String {
        let text = read_lossy(&self.err);
        let line = text.lines().find(|l| !l.contains("RLIMIT_MEMLOCK") && !l.trim().is_empty()).unwrap_or("");
        line.chars().take(200).collect()
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to it.
    pub fn signal(&self, signal: i32) {
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(self.pid, signal) };
    }

    /// utime + stime, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid).unwrap_or(0.0)
    }

    /// Voluntary context switches of all its threads: how often it went
    /// to sleep waiting (for the ring buffer, the perf buffer, the socket).
    pub fn sleeps(&self) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else { return 0 };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
            .filter_map(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:").and_then(|v| v.trim().parse::<u64>().ok()))
            })
            .sum()
    }

    /// VmRSS or VmHWM in KiB.
    pub fn status_kib(&self, key: &str) -> u64 {
        status_kib(self.pid, key).unwrap_or(0)
    }

    /// The ids of the BPF programs (`prog_id`) or maps (`map_id`) the
    /// process holds, from /proc/PID/fdinfo.
    pub fn bpf_ids(&self, key: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fdinfo", self.pid)) else { return ids };
        for entry in dir.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
            for line in text.lines() {
                if let Some(id) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':'))
                    && let Ok(id) = id.trim().parse()
                {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Stops it (rsttrace: SIGTERM, the others SIGINT, as Ctrl-C; SIGKILL
    /// after 60 s) and collects what it said.
    pub fn stop(mut self, netns_inode: u64) -> Stopped {
        let signal = if self.tool == Tool::Rsttrace { libc::SIGTERM } else { libc::SIGINT };
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(self.pid, signal) };
        let started = Instant::now();
        let mut status = 0;
        // VmHWM until it exits: the drain after the signal counts too. (Not
        // the exit rusage: its maxrss includes the forking parent's.)
        let mut peak_kib = 0;
        loop {
            peak_kib = peak_kib.max(self.status_kib("VmHWM"));
            // SAFETY: our own child; status is ours to fill.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid || r < 0 {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut stopped = Stopped {
            peak_rss_kib: peak_kib,
            exit: if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) },
            ..Default::default()
        };
        match self.tool {
            Tool::Rsttrace => stopped.parse_rsttrace(&self.out, netns_inode),
            Tool::Bpftrace => stopped.parse_bpftrace(&self.out),
            Tool::Tcpdump => stopped.parse_tcpdump(&read_lossy(&self.err)),
            Tool::None => {}
        }
        if stopped.summary.is_none() && self.tool == Tool::Rsttrace {
            stopped.problem = Some(format!("no summary record (exit {}): {}", stopped.exit, self.first_error_line()));
        }
        stopped
    }

    /// Output files, to remove once read.
    pub fn files(&self) -> Vec<PathBuf> {
        vec![self.out.clone(), self.err.clone(), self.out.with_extension("pcap")]
    }
}

/// What a watcher delivered.
#[derive(Debug, Default)]
pub struct Stopped {
    /// VmHWM, last read before it exited.
    pub peak_rss_kib: u64,
    pub exit: i32,
    /// rsttrace's summary record.
    pub summary: Option<Value>,
    /// Records per kind (rsttrace: of the bench's namespace, aggregated
    /// harmless reuse counted by its `count`; bpftrace: lines per probe).
    pub delivered: BTreeMap<String, u64>,
    /// rsttrace: summary `lost`; bpftrace: "Lost N events"; tcpdump:
    /// "dropped by kernel".
    pub lost: u64,
    pub read_errors: u64,
    pub problem: Option<String>,
}

impl Stopped {
    fn parse_rsttrace(&mut self, out: &Path, netns_inode: u64) {
        let text = read_lossy(out);
        for line in text.lines() {
            let Ok(record) = serde_json::from_str::<Value>(line) else { continue };
            let kind = record["kind"].as_str().unwrap_or("").to_string();
            match kind.as_str() {
                "ready" => {}
                "summary" => {
                    self.lost = record["lost"].as_u64().unwrap_or(0);
                    self.read_errors = record["read_errors"].as_u64().unwrap_or(0);
                    self.summary = Some(record);
                }
                _ if record["netns"].as_u64() == Some(netns_inode) => {
                    let count = record["count"].as_u64().unwrap_or(1);
                    *self.delivered.entry(kind).or_default() += count;
                }
                _ => {}
            }
        }
    }

    fn parse_bpftrace(&mut self, out: &Path) {
        let text = read_lossy(out);
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("Lost ").and_then(|r| r.split_whitespace().next()) {
                self.lost += n.parse::<u64>().unwrap_or(0);
            } else if let Some(probe) = line.split_whitespace().next()
                && ["rst_sent", "rst_received", "set_state", "kfree_skb"].contains(&probe)
            {
                *self.delivered.entry(probe.to_string()).or_default() += 1;
            }
        }
    }

    fn parse_tcpdump(&mut self, stderr: &str) {
        for line in stderr.lines() {
            let mut words = line.split_whitespace();
            let Some(n) = words.next().and_then(|n| n.parse::<u64>().ok()) else { continue };
            let rest: Vec<&str> = words.collect();
            match rest.as_slice() {
                ["packets", "captured"] => {
                    self.delivered.insert("rst_packets".into(), n);
                }
                ["packets", "dropped", "by", "kernel"] => self.lost = n,
                _ => {}
            }
        }
    }

    /// Summary `counts`, all kinds, every namespace.
    pub fn summary_counts(&self) -> u64 {
        self.summary
            .as_ref()
            .and_then(|s| s["counts"].as_object())
            .map(|c| c.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    }

    pub fn delivered_total(&self) -> u64 {
        self.delivered.values().sum()
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

pub fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces): state is field 3,
    // utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

pub fn status_kib(pid: i32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Where a process's resident memory is (/proc/PID/smaps), KiB per kind
/// of mapping, largest first.
pub fn memory_map(pid: i32) -> Vec<(String, u64)> {
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else { return Vec::new() };
    let exe =
        std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut kind = String::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let name = line.split_whitespace().nth(5).unwrap_or("");
            kind = match name {
                "" => "anonymous (thread stacks, mmap'd allocations)".into(),
                "[heap]" => "heap (malloc)".into(),
                "[stack]" => "main stack".into(),
                n if n == exe => "the binary".into(),
                n if n.starts_with("anon_inode:bpf") => "BPF map mappings (ring buffer)".into(),
                n if n.contains(".so") => "shared libraries".into(),
                n => n.to_string(),
            };
        } else if first == "Rss:" {
            *kinds.entry(kind.clone()).or_default() += words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    let mut kinds: Vec<(String, u64)> = kinds.into_iter().filter(|(_, kib)| *kib > 0).collect();
    kinds.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    kinds
}

/// One BPF program's run statistics (bpftool prog show -j).
#[derive(Clone, Debug)]
pub struct ProgStats {
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// One BPF map's size (bpftool map show -j).
#[derive(Clone, Debug)]
pub struct MapInfo {
    pub name: String,
    pub kind: String,
    pub max_entries: u64,
    pub bytes_memlock: u64,
}

fn bpftool_json(what: &str) -> anyhow::Result<Vec<Value>> {
    let output = Command::new("bpftool").args([what, "show", "-j"]).output().context("cannot run bpftool")?;
    anyhow::ensure!(output.status.success(), "bpftool {what} show failed");
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Run statistics of the programs `ids` (needs BPF stats enabled while
/// they ran).
pub fn prog_stats(ids: &[u64]) -> anyhow::Result<Vec<ProgStats>> {
    Ok(bpftool_json("prog")?
        .into_iter()
        .filter(|p| p["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .map(|p| ProgStats {
            name: p["name"].as_str().unwrap_or("?").to_string(),
            run_cnt: p["run_cnt"].as_u64().unwrap_or(0),
            run_time_ns: p["run_time_ns"].as_u64().unwrap_or(0),
        })
        .collect())
}

pub fn map_info(ids: &[u64]) -> anyhow::Result<Vec<MapInfo>> {
    Ok(bpftool_json("map")?
        .into_iter()
        .filter(|m| m["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .map(|m| MapInfo {
            name: m["name"].as_str().unwrap_or("?").to_string(),
            kind: m["type"].as_str().unwrap_or("?").to_string(),
            max_entries: m["max_entries"].as_u64().unwrap_or(0),
            bytes_memlock: m["bytes_memlock"].as_u64().unwrap_or(0),
        })
        .collect())
}

/// BPF run-time statistics (`kernel.bpf_stats_enabled`) for as long as this
/// lives: BPF_ENABLE_STATS takes the same switch as the sysctl and the
/// kernel releases it when the descriptor closes, even if the bench dies,
/// so nothing is left to restore.
pub struct BpfStats(#[allow(dead_code)] std::os::fd::OwnedFd);

impl BpfStats {
    pub fn enable() -> anyhow::Result<BpfStats> {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        const BPF_STATS_RUN_TIME: u32 = 0;
        let attr = [BPF_STATS_RUN_TIME, 0];
        // SAFETY: bpf(2) with an attribute of the size passed.
        let fd = unsafe {
            libc::syscall(libc::SYS_bpf, BPF_ENABLE_STATS, attr.as_ptr(), std::mem::size_of_val(&attr) as u32)
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("cannot enable BPF run-time statistics");
        }
        // SAFETY: a new descriptor that nothing else owns.
        Ok(BpfStats(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) }))
    }
}

/// The first line of `PROGRAM --version`, or why there is none.
pub fn version(program: &str) -> String {
    match Command::new(program).arg("--version").output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string()
        }
        Err(e) => format!("not available ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdump_statistics() {
        let mut s = Stopped::default();
        s.parse_tcpdump(
            "listening on lo\n1200 packets captured\n1300 packets received by filter\n100 packets dropped by kernel\n",
        );
        assert_eq!(s.delivered["rst_packets"], 1200);
        assert_eq!(s.lost, 100);
    }

    #[test]
    fn cpu_and_memory_of_this_process() {
        let pid = std::process::id() as i32;
        assert!(cpu_seconds(pid).is_some());
        assert!(status_kib(pid, "VmRSS").unwrap() > 0);
        assert!(status_kib(pid, "VmHWM").unwrap() > 0);
    }
}
