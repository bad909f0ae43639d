//! The guest's root file system: one uncompressed newc cpio archive (TCG is
//! slow at gunzip) holding a static busybox, the init below, the test
//! binaries and rsttrace at their host paths with their shared libraries,
//! `ip`, `setpriv` and `tcpdump`, and the modules of every kernel of the run
//! (under their `uname -r`, so one archive boots them all).

use std::{
    collections::HashSet,
    fs::{self, File},
    io::{self, BufWriter, Write},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Component, Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::kernels::Module;

/// PID 1. Prints `rsttrace-vm: init`, one `rsttrace-vm: running NAME` per
/// test binary, then exactly one verdict line, and powers off.
const INIT: &str = r#"#!/busybox/busybox sh
/busybox/busybox --install -s /busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/busybox
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# ip netns bind-mounts namespaces under /run/netns (/var/run links here).
mount -t tmpfs -o mode=0755 tmpfs /run
# /tmp stays the initramfs's own directory: the test binaries may live
# under it (a checkout in /tmp), at the paths they were built with.
mkdir -p /tmp && chmod 1777 /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
echo "rsttrace-vm: init $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime) s"
modules=/rsttrace-vm/modules/$(uname -r)
for m in $(cat "$modules/order"); do
  insmod "$modules/$m.ko" || echo "rsttrace-vm: insmod $m failed"
done
ip link set lo up
strategy=auto
for word in $(cat /proc/cmdline); do
  case $word in rsttrace.strategy=*) strategy=${word#*=} ;; esac
done
export RSTTRACE_TEST_STRATEGY=$strategy
set --
while IFS= read -r arg; do set -- "$@" "$arg"; done < /rsttrace-vm/args
cd "$(cat /rsttrace-vm/cwd)"
failed=
while read -r name path <&3; do
  echo "rsttrace-vm: running $name (RSTTRACE_TEST_STRATEGY=$strategy)"
  # The guest is root: the tests ignored for want of root run too.
  "$path" --test-threads=1 --nocapture --include-ignored "$@" || failed="$failed $name"
done 3< /rsttrace-vm/tests
if [ -z "$failed" ]; then
  echo "rsttrace-vm: success"
else
  echo "rsttrace-vm: failure$failed"
fi
poweroff -f
"#;

/// What goes into the archive besides the fixed layout.
pub struct Contents<'a> {
    pub busybox: &'a Path,
    /// (name, path) of each test binary.
    pub tests: &'a [(String, PathBuf)],
    /// Further host programs needed at their own paths (rsttrace, ip,
    /// setpriv, tcpdump).
    pub programs: &'a [PathBuf],
    /// Working directory of the tests (cargo runs them in the package's).
    pub cwd: &'a Path,
    pub args: &'a [String],
    /// (uname -r, modules to load in order).
    pub modules: &'a [(String, Vec<Module>)],
}

/// Writes the archive to `path` through a temporary file and a rename, so a
/// QEMU that another vm-test run is starting never reads half an archive.
pub fn write(path: &Path, contents: &Contents) -> anyhow::Result<()> {
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let written = write_archive(&partial, contents);
    if written.is_ok() {
        fs::rename(&partial, path).with_context(|| format!("rename to {}", path.display()))?;
    } else {
        let _ = fs::remove_file(&partial);
    }
    written
}

fn write_archive(path: &Path, contents: &Contents) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut archive = Archive { out: BufWriter::new(file), next_ino: 1, seen: HashSet::new() };
    for dir in ["dev", "proc", "sys", "run", "tmp", "root", "var", "busybox"] {
        archive.dir(Path::new(dir), 0o755)?;
    }
    archive.symlink(Path::new("var/run"), Path::new("/run"))?;
    // The kernel opens it as PID 1's stdio before devtmpfs is mounted.
    archive.char_device(Path::new("dev/console"), 0o600, 5, 1)?;
    archive.host_file_as(Path::new("busybox/busybox"), contents.busybox)?;
    archive.bytes(Path::new("init"), INIT.as_bytes(), 0o755)?;
    // tcpdump -Z root looks the user up before it captures.
    archive.dir(Path::new("etc"), 0o755)?;
    archive.bytes(Path::new("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n", 0o644)?;
    archive.bytes(Path::new("etc/group"), b"root:x:0:\n", 0o644)?;

    let mut tests = String::new();
    let mut programs: Vec<PathBuf> = contents.programs.to_vec();
    for (name, path) in contents.tests {
        tests.push_str(&format!("{name} {}\n", path.display()));
        programs.push(path.clone());
    }
    archive.dir(Path::new("rsttrace-vm"), 0o755)?;
    archive.bytes(Path::new("rsttrace-vm/tests"), tests.as_bytes(), 0o644)?;
    let args: String = contents.args.iter().map(|a| format!("{a}\n")).collect();
    archive.bytes(Path::new("rsttrace-vm/args"), args.as_bytes(), 0o644)?;
    let cwd = format!("{}\n", contents.cwd.display());
    archive.bytes(Path::new("rsttrace-vm/cwd"), cwd.as_bytes(), 0o644)?;
    archive.host_path(contents.cwd)?;

    let mut libraries = Vec::new();
    for program in &programs {
        archive.host_path(program)?;
        for library in shared_libraries(program)? {
            if !libraries.contains(&library) {
                libraries.push(library);
            }
        }
    }
    for library in &libraries {
        archive.host_path(library)?;
    }
    // The loader finds libraries through its cache, which names these paths.
    if Path::new("/etc/ld.so.cache").exists() {
        archive.host_path(Path::new("/etc/ld.so.cache"))?;
    }

    archive.dir(Path::new("rsttrace-vm/modules"), 0o755)?;
    for (uname, modules) in contents.modules {
        let dir = Path::new("rsttrace-vm/modules").join(uname);
        archive.dir(&dir, 0o755)?;
        let mut order = String::new();
        for module in modules {
            let name = &module.name;
            archive.bytes(&dir.join(format!("{name}.ko")), &module.ko, 0o644)?;
            order.push_str(&format!("{name}\n"));
        }
        archive.bytes(&dir.join("order"), order.as_bytes(), 0o644)?;
    }
    archive.finish()
}

/// The absolute paths `ldd` lists for `program` (libraries and the loader).
fn shared_libraries(program: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(program).output().context("cannot start ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {}: {}", program.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let mut found = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x…)"; the vDSO has no path.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line.trim(),
        };
        let path = path.split(" (").next().unwrap_or("").trim();
        if path == "not found" {
            bail!("ldd {}: {line}", program.display());
        }
        if path.starts_with('/') {
            found.push(PathBuf::from(path));
        }
    }
    Ok(found)
}

/// A newc (SVR4, no CRC) cpio writer.
struct Archive {
    out: BufWriter<File>,
    next_ino: u32,
    /// Paths already written, so shared parents and libraries appear once.
    seen: HashSet<PathBuf>,
}

impl Archive {
    fn header(&mut self, path: &Path, mode: u32, size: u64, rdev: (u32, u32)) -> io::Result<()> {
        let name = path.to_str().expect("UTF-8 path").trim_start_matches('/');
        let size = u32::try_from(size).map_err(|_| io::Error::other("file over 4 GiB"))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let header = format!(
            "070701{ino:08X}{mode:08X}{:08X}{:08X}{:08X}{:08X}{size:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            0, // uid
            0, // gid
            1, // nlink: no hard links
            0, // mtime
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0, // check
        );
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(header.len() + name.len() + 1)
    }

    fn pad(&mut self, written: usize) -> io::Result<()> {
        let zeros = [0u8; 3];
        self.out.write_all(&zeros[..(4 - written % 4) % 4])
    }

    /// Marks `path` written; false when it already was.
    fn first_time(&mut self, path: &Path) -> bool {
        self.seen.insert(path.strip_prefix("/").unwrap_or(path).to_path_buf())
    }

    fn dir(&mut self, path: &Path, permissions: u32) -> io::Result<()> {
        if self.first_time(path) {
            self.header(path, libc::S_IFDIR | permissions, 0, (0, 0))?;
        }
        Ok(())
    }

    fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        if self.first_time(path) {
            let target = target.to_str().expect("UTF-8 link").as_bytes();
            self.header(path, libc::S_IFLNK | 0o777, target.len() as u64, (0, 0))?;
            self.out.write_all(target)?;
            self.pad(target.len())?;
        }
        Ok(())
    }

    fn char_device(&mut self, path: &Path, permissions: u32, major: u32, minor: u32) -> io::Result<()> {
        if self.first_time(path) {
            self.header(path, libc::S_IFCHR | permissions, 0, (major, minor))?;
        }
        Ok(())
    }

    fn bytes(&mut self, path: &Path, data: &[u8], permissions: u32) -> io::Result<()> {
        if self.first_time(path) {
            self.header(path, libc::S_IFREG | permissions, data.len() as u64, (0, 0))?;
            self.out.write_all(data)?;
            self.pad(data.len())?;
        }
        Ok(())
    }

    /// The contents of host file `host` at `path` in the archive.
    fn host_file_as(&mut self, path: &Path, host: &Path) -> anyhow::Result<()> {
        if !self.first_time(path) {
            return Ok(());
        }
        let mut file = File::open(host).with_context(|| format!("open {}", host.display()))?;
        let meta = file.metadata()?;
        let permissions = meta.permissions().mode() & 0o7777;
        self.header(path, libc::S_IFREG | permissions, meta.len(), (0, 0))?;
        let copied = io::copy(&mut file, &mut self.out)?;
        if copied != meta.len() {
            bail!("{} changed while being copied", host.display());
        }
        self.pad(copied as usize)?;
        Ok(())
    }

    /// Host path `path` at the same place, with its parent directories;
    /// symbolic links on the way (/lib -> usr/lib on merged-/usr systems)
    /// are reproduced as links, and their targets added.
    fn host_path(&mut self, path: &Path) -> anyhow::Result<()> {
        let components: Vec<Component> = path.components().collect();
        let mut physical = PathBuf::from("/");
        for (i, component) in components.iter().enumerate() {
            let Component::Normal(name) = component else {
                continue;
            };
            let here = physical.join(name);
            let meta = fs::symlink_metadata(&here).with_context(|| format!("{}", here.display()))?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&here)?;
                self.symlink(&here, &target)?;
                let mut rest = normalize(&physical.join(&target));
                for c in &components[i + 1..] {
                    rest.push(c);
                }
                return self.host_path(&rest);
            }
            if meta.is_dir() {
                self.dir(&here, meta.mode() & 0o7777)?;
            } else {
                self.host_file_as(&here, &here)?;
            }
            physical = here;
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.header(Path::new("TRAILER!!!"), 0, 0, (0, 0))?;
        self.out.flush()?;
        Ok(())
    }
}

/// Resolves `.` and `..` lexically (`path` has no symbolic links before them).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}
