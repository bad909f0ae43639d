//! Says which capability is missing before the kernel refuses with EPERM.
//!
//! rsttrace runs as root, or as any user with exactly these capabilities
//! (measured on Linux 6.18, see packaging/systemd/rsttrace.service):
//! - CAP_BPF: creating the maps (without it: EPERM creating the first map);
//! - CAP_PERFMON: loading tracing, tracepoint and kprobe programs, which read
//!   kernel memory, and kprobe perf events (without it: EPERM at
//!   BPF_PROG_LOAD); CAP_SYS_ADMIN also covers both;
//! - CAP_DAC_READ_SEARCH, unless the user owns tracefs: the `format` files
//!   are mode 0440 and root's (so is the tracefs root, 0700, on most kernels).
//!
//! Debian's and Ubuntu's kernels add kernel.perf_event_paranoid levels above
//! 2 (their default is 3), at which perf_event_open needs CAP_SYS_ADMIN:
//! CAP_PERFMON is not enough there (seen on Debian 11's 5.10 and Debian 12's
//! 6.1 under QEMU: EACCES). Only kprobes attach through it: rsttrace's
//! tracepoints are raw tracepoints and fexit uses a BPF link, so the
//! restriction only takes the kprobe strategy away.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
};

use caps::{CapSet, Capability};

/// What this process can do, as far as rsttrace cares.
#[derive(Clone, Debug)]
pub struct Privileges {
    pub uid: u32,
    /// Each capability rsttrace may use (`CAPABILITIES`), and whether it is
    /// effective.
    pub capabilities: Vec<(Capability, bool)>,
    /// Mounted tracefs instances this process cannot look into.
    pub unreadable_tracefs: Vec<PathBuf>,
    /// kernel.perf_event_paranoid, when readable.
    pub perf_event_paranoid: Option<i32>,
    /// perf_event_open refuses this process even a user-space count of
    /// itself: the Debian/Ubuntu restriction (paranoid above 2, no
    /// CAP_SYS_ADMIN), which mainline kernels do not have.
    pub perf_events_refused: bool,
}

/// The capabilities rsttrace can use, in the order they are reported (by
/// their kernel names, `CAP_BPF` …).
pub const CAPABILITIES: [Capability; 4] =
    [Capability::CAP_BPF, Capability::CAP_PERFMON, Capability::CAP_DAC_READ_SEARCH, Capability::CAP_SYS_ADMIN];

impl Privileges {
    /// This process's effective capabilities and its access to tracefs.
    pub fn inspect() -> Self {
        let capabilities = CAPABILITIES
            .iter()
            .map(|&cap| (cap, caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false)))
            .collect();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let unreadable_tracefs = tracefs_mounts(&mounts)
            .into_iter()
            // Whatever lets this process in (ownership, CAP_DAC_READ_SEARCH,
            // CAP_DAC_OVERRIDE, a gid= mount option) is good enough. A format
            // file, not a directory: Debian's 6.18 leaves the root open (0755).
            .filter(|dir| {
                std::fs::File::open(dir.join("events/tcp/tcp_send_reset/format"))
                    .is_err_and(|e| e.kind() == ErrorKind::PermissionDenied)
            })
            .collect();
        let perf_event_paranoid =
            std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").ok().and_then(|v| v.trim().parse().ok());
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let mut privileges =
            Privileges { uid, capabilities, unreadable_tracefs, perf_event_paranoid, perf_events_refused: false };
        if perf_event_paranoid.is_some_and(|l| l > 2) && !privileges.has(Capability::CAP_SYS_ADMIN) {
            privileges.perf_events_refused = !can_open_perf_events();
        }
        privileges
    }

    fn has(&self, capability: Capability) -> bool {
        self.capabilities.iter().any(|&(c, on)| c == capability && on)
    }

    /// The capabilities that are missing, each with what it is for.
    pub fn missing(&self) -> Vec<(Capability, String)> {
        let mut missing = Vec::new();
        if !self.has(Capability::CAP_SYS_ADMIN) {
            if !self.has(Capability::CAP_BPF) {
                missing.push((Capability::CAP_BPF, "to create eBPF maps".to_string()));
            }
            if !self.has(Capability::CAP_PERFMON) {
                missing.push((Capability::CAP_PERFMON, "to load eBPF tracing programs".to_string()));
            }
        }
        if let Some(dir) = self.unreadable_tracefs.first() {
            missing
                .push((Capability::CAP_DAC_READ_SEARCH, format!("to read tracefs at {} (root's only)", dir.display())));
        }
        missing
    }

    /// Why kprobes cannot be attached here, when perf events are refused.
    pub fn kprobe_hint(&self) -> Option<String> {
        let level =
            self.perf_event_paranoid.filter(|_| self.perf_events_refused && !self.has(Capability::CAP_SYS_ADMIN))?;
        Some(format!(
            "kprobes attach through perf events, which kernel.perf_event_paranoid={level} (Debian's and Ubuntu's kernels) reserves to CAP_SYS_ADMIN; set it to 2 with sysctl"
        ))
    }

    /// Ok, or one line naming every missing capability and how to fix it.
    pub fn result(&self) -> anyhow::Result<()> {
        let missing = self.missing();
        if missing.is_empty() {
            return Ok(());
        }
        let what: Vec<String> = missing.iter().map(|(cap, why)| format!("{cap} {why}")).collect();
        let bpf_only = missing.iter().all(|(cap, _)| matches!(cap, Capability::CAP_BPF | Capability::CAP_PERFMON));
        anyhow::bail!(
            "missing privilege {}{}: run rsttrace as root (sudo rsttrace), or grant {} (AmbientCapabilities= in its systemd unit)",
            what.join(", "),
            if bpf_only { " (or CAP_SYS_ADMIN)" } else { "" },
            if missing.len() == 1 { "it" } else { "them" },
        )
    }
}

/// Fails with one line naming what is missing.
pub fn check() -> anyhow::Result<()> {
    Privileges::inspect().result()
}

/// Whether perf_event_open lets this process count its own user-space CPU
/// time, which every kernel allows every process unless a distribution
/// patch restricts perf events further.
fn can_open_perf_events() -> bool {
    const PERF_TYPE_SOFTWARE: u64 = 1;
    const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
    const ATTR_SIZE: u64 = 64; // PERF_ATTR_SIZE_VER0
    const DISABLED: u64 = 1;
    const EXCLUDE_KERNEL: u64 = 1 << 5;
    const EXCLUDE_HV: u64 = 1 << 6;
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
    // struct perf_event_attr, first version: type, size, config, sample
    // period, sample type, read format, the flag bits, then zeroes.
    let attr: [u64; 8] = [
        PERF_TYPE_SOFTWARE | (ATTR_SIZE << 32),
        PERF_COUNT_SW_CPU_CLOCK,
        0,
        0,
        0,
        DISABLED | EXCLUDE_KERNEL | EXCLUDE_HV,
        0,
        0,
    ];
    // SAFETY: attr is a valid, live perf_event_attr of the size it states;
    // the fd returned is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, PERF_FLAG_FD_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    // SAFETY: fd was just opened here and is not used elsewhere.
    unsafe { libc::close(fd as i32) };
    true
}

/// Mount points of type tracefs in `/proc/self/mountinfo` text.
fn tracefs_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER`
            let (head, tail) = line.split_once(" - ")?;
            (tail.split_whitespace().next()? == "tracefs").then(|| unescape(head.split_whitespace().nth(4)?))?
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> Option<PathBuf> {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).ok()?;
            out.push(u8::from_str_radix(octal, 8).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt as _;
    Some(Path::new(&std::ffi::OsString::from_vec(out)).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn privileges(on: &[Capability], unreadable: &[&str]) -> Privileges {
        Privileges {
            uid: 65534,
            capabilities: CAPABILITIES.iter().map(|c| (*c, on.contains(c))).collect(),
            unreadable_tracefs: unreadable.iter().map(PathBuf::from).collect(),
            perf_event_paranoid: Some(2),
            perf_events_refused: false,
        }
    }

    #[test]
    fn names_exactly_the_missing_capability() {
        let p = privileges(&[Capability::CAP_BPF, Capability::CAP_DAC_READ_SEARCH], &[]);
        let e = p.result().unwrap_err().to_string();
        assert!(
            e.starts_with("missing privilege CAP_PERFMON to load eBPF tracing programs (or CAP_SYS_ADMIN): "),
            "{e}"
        );
        assert!(!e.contains("CAP_BPF ") && !e.contains("DAC"), "{e}");

        let p = privileges(&[Capability::CAP_BPF, Capability::CAP_PERFMON], &["/sys/kernel/tracing"]);
        let e = p.result().unwrap_err().to_string();
        assert!(e.starts_with("missing privilege CAP_DAC_READ_SEARCH to read tracefs at /sys/kernel/tracing"), "{e}");
        assert!(e.contains("grant it (AmbientCapabilities="), "{e}");

        let e = privileges(&[], &["/sys/kernel/tracing"]).result().unwrap_err().to_string();
        assert!(e.contains("CAP_BPF") && e.contains("CAP_PERFMON") && e.contains("CAP_DAC_READ_SEARCH"), "{e}");
        assert!(e.contains("as root"), "{e}");
    }

    #[test]
    fn debian_perf_event_paranoid_only_takes_kprobes_away() {
        let mut p = privileges(&[Capability::CAP_BPF, Capability::CAP_PERFMON, Capability::CAP_DAC_READ_SEARCH], &[]);
        p.perf_event_paranoid = Some(3);
        // A mainline kernel at 3 behaves as at 2.
        assert!(p.result().is_ok());
        assert_eq!(p.kprobe_hint(), None);
        // Debian's 3: raw tracepoints and fexit still attach.
        p.perf_events_refused = true;
        assert!(p.result().is_ok());
        let hint = p.kprobe_hint().unwrap();
        assert!(hint.contains("kernel.perf_event_paranoid=3") && hint.contains("set it to 2"), "{hint}");
        let mut admin = privileges(&[Capability::CAP_SYS_ADMIN], &[]);
        admin.perf_event_paranoid = Some(4);
        admin.perf_events_refused = true;
        assert_eq!(admin.kprobe_hint(), None);
    }

    #[test]
    fn this_kernel_lets_a_process_count_itself() {
        // Mainline at any paranoid level, and distributions at 2 and below.
        let level = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
            .ok()
            .and_then(|l| l.trim().parse::<i32>().ok());
        if level.is_some_and(|l| l <= 2) {
            assert!(can_open_perf_events());
        }
    }

    #[test]
    fn enough_capabilities_pass() {
        assert!(privileges(&[Capability::CAP_BPF, Capability::CAP_PERFMON], &[]).result().is_ok());
        assert!(privileges(&[Capability::CAP_SYS_ADMIN], &[]).result().is_ok());
        assert!(privileges(&[Capability::CAP_SYS_ADMIN], &["/t"]).result().is_err());
    }

    #[test]
    fn finds_tracefs_mounts() {
        let mountinfo = "\
22 27 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:12 - tracefs tracefs rw
31 22 0:7 / /sys/kernel/debug rw,nosuid,nodev,noexec,relatime shared:13 - debugfs debugfs rw
40 31 0:12 / /my\\040tracing rw,relatime - tracefs nodev rw
";
        assert_eq!(tracefs_mounts(mountinfo), [PathBuf::from("/sys/kernel/tracing"), PathBuf::from("/my tracing")]);
        assert!(tracefs_mounts("garbage\n").is_empty());
    }
}
