//! Who a reset's socket belongs to, by name: the systemd unit of the cgroup
//! that owns it (the kernel hands over the cgroup's id, the inode number of
//! its directory in the cgroup v2 hierarchy: /sys/fs/cgroup, or
//! /sys/fs/cgroup/unified on hosts that still mount v1 controllers there)
//! and the `ip netns` name of its network namespace (the inode numbers of the
//! files in /run/netns).
//!
//! Both tables are read again when an id is not in them, at most once a
//! second: a service started after rsttrace is found on its first reset,
//! and a reset storm from an unknown cgroup costs one walk a second.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::events::Reset;

const NETNS_DIR: &str = "/run/netns";

/// How often a table may be read again for an id it lacks.
const RESCAN: Duration = Duration::from_secs(1);

/// cgroup trees nest a few levels (slice, unit, the unit's own groups);
/// deeper directories are not walked.
const MAX_DEPTH: usize = 16;

/// Unit types whose cgroups hold processes (and `.slice`, which only nest
/// them), as systemd names the cgroup directories.
const UNIT_SUFFIXES: [&str; 6] = [".service", ".scope", ".socket", ".mount", ".swap", ".slice"];

pub struct Owners {
    /// Where cgroup v2 is mounted; None: nowhere, no unit is named.
    cgroup_root: Option<PathBuf>,
    netns_dir: PathBuf,
    units: Table<u64>,
    netns_names: Table<u32>,
}

/// An id -> name table read from the file system, and when.
struct Table<K> {
    names: HashMap<K, String>,
    read: Option<Instant>,
}

impl<K: std::hash::Hash + Eq> Table<K> {
    fn new() -> Self {
        Table { names: HashMap::new(), read: None }
    }

    fn get(&mut self, key: K, read: impl FnOnce() -> HashMap<K, String>) -> Option<String> {
        if !self.names.contains_key(&key) && self.read.is_none_or(|at| at.elapsed() >= RESCAN) {
            self.names = read();
            self.read = Some(Instant::now());
        }
        self.names.get(&key).cloned()
    }
}

impl Owners {
    pub fn new() -> Self {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cgroup_root = cgroup2_mount(&mountinfo);
        if cgroup_root.is_none() {
            log::info!("no cgroup v2 hierarchy mounted: resets will name no unit");
        }
        Self::at(cgroup_root.as_deref(), Path::new(NETNS_DIR))
    }

    pub fn at(cgroup_root: Option<&Path>, netns_dir: &Path) -> Self {
        Owners {
            cgroup_root: cgroup_root.map(Path::to_path_buf),
            netns_dir: netns_dir.to_path_buf(),
            units: Table::new(),
            netns_names: Table::new(),
        }
    }

    /// Sets `unit` and `netns_name` where they can be found.
    pub fn name(&mut self, reset: &mut Reset) {
        if let (Some(id), Some(root)) = (reset.cgroup_id, &self.cgroup_root) {
            reset.unit = self.units.get(id, || cgroup_units(root));
        }
        if let Some(inum) = reset.tuple.netns {
            let dir = &self.netns_dir;
            reset.netns_name = self.netns_names.get(inum, || netns_names(dir));
        }
    }
}

/// The mount point of the cgroup v2 hierarchy, from /proc/self/mountinfo.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        if filesystem.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        // Octal escapes for blanks in the path: \040 is a space.
        Some(PathBuf::from(mount.split_whitespace().nth(4)?.replace("\\040", " ")))
    })
}

/// Every cgroup directory under `root` by inode number, with its unit. Only
/// directories of the cgroup v2 file system itself: inode numbers of other
/// file systems (v1 hierarchies mounted inside) mean other things.
fn cgroup_units(root: &Path) -> HashMap<u64, String> {
    let mut units = HashMap::new();
    let Ok(device) = std::fs::metadata(root).map(|m| m.dev()) else { return units };
    let mut pending = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&dir) else { continue };
        if meta.dev() != device {
            continue;
        }
        let relative = dir.strip_prefix(root).unwrap_or(&dir);
        units.insert(meta.ino(), unit_of(relative));
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push((entry.path(), depth + 1));
            }
        }
    }
    units
}

/// The unit a cgroup belongs to: its deepest path component that names a
/// unit (a service's own sub-groups belong to the service); the cgroup's
/// path, from the root, when none does.
fn unit_of(relative: &Path) -> String {
    let components: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    components
        .iter()
        .rev()
        .find(|c| UNIT_SUFFIXES.iter().any(|suffix| c.len() > suffix.len() && c.ends_with(suffix)))
        .cloned()
        .unwrap_or_else(|| format!("/{}", components.join("/")))
}

/// `ip netns` names by namespace inode number.
fn netns_names(dir: &Path) -> HashMap<u32, String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return HashMap::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            // The name's file is a bind mount of the namespace: stat sees
            // the namespace's own inode.
            let inode = std::fs::metadata(entry.path()).ok()?.ino();
            Some((u32::try_from(inode).ok()?, entry.file_name().to_string_lossy().into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Direction;

    fn tempdir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rsttrace-owners-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn reset(cgroup_id: Option<u64>, netns: Option<u32>) -> Reset {
        let mut r = Reset { cgroup_id, ..Reset::example(Direction::Sent) };
        r.tuple.netns = netns;
        r
    }

    fn ino(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn units_from_cgroup_paths() {
        assert_eq!(unit_of(Path::new("system.slice/nginx.service")), "nginx.service");
        assert_eq!(unit_of(Path::new("system.slice/nginx.service/workers")), "nginx.service");
        assert_eq!(unit_of(Path::new("user.slice/user-1000.slice/session-3.scope")), "session-3.scope");
        assert_eq!(unit_of(Path::new("machine.slice")), "machine.slice");
        assert_eq!(unit_of(Path::new("mygroup/sub")), "/mygroup/sub");
        assert_eq!(unit_of(Path::new("")), "/");
        assert_eq!(unit_of(Path::new(".service")), "/.service", "a suffix alone names no unit");
    }

    #[test]
    fn finds_where_cgroup_v2_is_mounted() {
        // A hybrid host (v1 controllers, v2 beside them) and a unified one.
        let hybrid = "35 28 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let unified =
            "27 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_mount(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(cgroup2_mount("22 1 0:21 / /sys rw - sysfs sysfs rw\n"), None);
    }

    #[test]
    fn a_cgroup_id_is_its_directory_inode() {
        let root = tempdir("cgroup");
        let service = root.join("system.slice/nginx.service");
        std::fs::create_dir_all(service.join("workers")).unwrap();
        let mut owners = Owners::at(Some(&root), &root.join("no-netns"));
        let mut r = reset(Some(ino(&service.join("workers"))), None);
        owners.name(&mut r);
        assert_eq!(r.unit.as_deref(), Some("nginx.service"));
        let mut r = reset(Some(ino(&root)), None);
        owners.name(&mut r);
        assert_eq!(r.unit.as_deref(), Some("/"), "the root cgroup");
        // A cgroup made after the last read is found by reading again, once
        // the second is over.
        let later = root.join("system.slice/later.service");
        std::fs::create_dir_all(&later).unwrap();
        let mut r = reset(Some(ino(&later)), None);
        owners.name(&mut r);
        assert_eq!(r.unit, None, "read again at most once a second");
        owners.units.read = Some(Instant::now() - RESCAN);
        owners.name(&mut r);
        assert_eq!(r.unit.as_deref(), Some("later.service"));
        let mut r = reset(None, None);
        owners.name(&mut r);
        assert_eq!((r.unit, r.netns_name), (None, None), "no socket, nothing to name");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn netns_names_from_their_files() {
        let dir = tempdir("netns");
        std::fs::write(dir.join("blue"), "").unwrap();
        let inode = u32::try_from(ino(&dir.join("blue"))).unwrap();
        let mut owners = Owners::at(None, &dir);
        let mut r = reset(None, Some(inode));
        owners.name(&mut r);
        assert_eq!(r.netns_name.as_deref(), Some("blue"));
        let mut r = reset(None, Some(inode.wrapping_add(1)));
        owners.name(&mut r);
        assert_eq!(r.netns_name, None, "a namespace without a name");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
