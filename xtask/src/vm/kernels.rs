//! The Debian kernels the tests boot, and getting them: apt by package name
//! (a private apt configuration per Debian release, the host's sources are
//! never touched), one download and one `dpkg -x` per package version.
//! Since 6.19 Debian splits a kernel into `linux-binary-*` (vmlinuz),
//! `linux-modules-*` and `linux-base-*`, which the `linux-image-*` package
//! only depends on: those pieces are fetched and unpacked with it.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::{Strategy, command_output, run_quiet};

/// One kernel of the matrix.
pub struct Kernel {
    /// What `--kernel` accepts.
    pub name: &'static str,
    /// Debian release whose archive carries the package.
    pub release: Release,
    /// Package name; `*` matches anything, the newest candidate wins, so a
    /// new Debian point release (a new ABI number) is picked up.
    pub package: &'static str,
    /// What `--strategy all` runs on this kernel.
    pub strategies: &'static [Strategy],
    /// Modules the tests need (their dependencies are added). The guest has
    /// no modprobe, so nothing loads on demand; everything else the tests
    /// use is built into Debian's cloud kernels (IPv6, netns, BPF).
    pub modules: &'static [&'static str],
}

/// veth for the namespace pairs, tcp_diag for sock_diag dumps (`rsttrace
/// doctor`), nftables with connection tracking and reject for the router
/// that forges RSTs (tests/origin.rs).
const TEST_MODULES: &[&str] = &["veth", "tcp_diag", "nf_tables", "nft_ct", "nft_reject_inet"];

pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "5.10",
        release: Release::Bullseye,
        package: "linux-image-5.10.0-*-cloud-amd64",
        strategies: &[Strategy::Fexit, Strategy::Kprobe, Strategy::Tracepoint],
        modules: TEST_MODULES,
    },
    Kernel {
        name: "6.1",
        release: Release::Bookworm,
        package: "linux-image-6.1.0-*-cloud-amd64",
        strategies: &[Strategy::Fexit, Strategy::Kprobe, Strategy::Tracepoint],
        modules: TEST_MODULES,
    },
    Kernel {
        name: "6.12",
        release: Release::Bookworm,
        package: "linux-image-6.12.*+deb12-cloud-amd64",
        strategies: &[Strategy::Fexit, Strategy::Kprobe, Strategy::Tracepoint],
        modules: TEST_MODULES,
    },
    // The newest 6.16-6.19 Debian carries whole: trixie-backports has 6.19
    // images too, but not their linux-modules-6.19.* (veth), as of 2026-12.
    Kernel {
        name: "6.18",
        release: Release::TrixieBackports,
        package: "linux-image-6.18.*+deb13-cloud-amd64",
        strategies: &[Strategy::Fexit, Strategy::Kprobe, Strategy::Tracepoint],
        modules: TEST_MODULES,
    },
    // Whatever 7.x is newest: where new servers go first.
    Kernel {
        name: "7.x",
        release: Release::TrixieBackports,
        package: "linux-image-7.*+deb13-cloud-amd64",
        strategies: &[Strategy::Fexit, Strategy::Kprobe, Strategy::Tracepoint],
        modules: TEST_MODULES,
    },
];

#[derive(Clone, Copy)]
pub enum Release {
    Bookworm,
    Bullseye,
    TrixieBackports,
}

impl Release {
    fn name(self) -> &'static str {
        match self {
            Release::Bookworm => "bookworm",
            Release::Bullseye => "bullseye",
            Release::TrixieBackports => "trixie-backports",
        }
    }

    /// (archive, suite) pairs apt reads.
    fn suites(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Release::Bookworm => {
                &[("debian", "bookworm"), ("debian", "bookworm-updates"), ("debian-security", "bookworm-security")]
            }
            Release::Bullseye => {
                &[("debian", "bullseye"), ("debian", "bullseye-updates"), ("debian-security", "bullseye-security")]
            }
            // Only downloads by exact version: trixie itself is not needed.
            Release::TrixieBackports => &[("debian", "trixie-backports")],
        }
    }
}

/// A kernel package unpacked in the cache.
pub struct Image {
    pub package: String,
    pub version: String,
    /// `uname -r` of the kernel.
    pub uname: String,
    pub vmlinuz: PathBuf,
    pub modules_dir: PathBuf,
}

/// Finds, downloads (once) and unpacks (once) the newest package for `kernel`.
pub fn fetch(kernel: &Kernel, cache: &Path, refresh: bool) -> anyhow::Result<Image> {
    let apt = Apt::new(cache, kernel.release)?;
    let mut refreshed = false;
    if refresh || !apt.has_lists() {
        apt.update()?;
        refreshed = true;
    }
    let debs = cache.join("debs");
    fs::create_dir_all(&debs)?;
    let (package, version, deb) = loop {
        let (package, version) = match apt.newest(kernel.package)? {
            Some(found) => found,
            None if !refreshed => {
                apt.update()?;
                refreshed = true;
                continue;
            }
            None => bail!("no package matches {} in Debian {}", kernel.package, kernel.release.name()),
        };
        if let Some(deb) = cached_deb(&debs, &package, &version)? {
            break (package, version, deb);
        }
        match download(&apt, &package, &version, &debs) {
            Ok(deb) => break (package, version, deb),
            // The mirror moved on since the lists were fetched.
            Err(_) if !refreshed => {
                apt.update()?;
                refreshed = true;
            }
            Err(e) => return Err(e),
        }
    };

    let unpacked = cache.join("unpacked").join(format!("{package}_{version}"));
    if !unpacked.join(".complete").exists() {
        let partial = unpacked.with_extension("partial");
        let _ = fs::remove_dir_all(&partial);
        fs::create_dir_all(&partial)?;
        unpack(&deb, &partial)?;
        if kernel_files(&partial).is_err() {
            let depends = command_output(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"))?;
            for piece in pieces(&depends, &version) {
                let piece_deb = match cached_deb(&debs, &piece, &version)? {
                    Some(deb) => deb,
                    None => download(&apt, &piece, &version, &debs).with_context(|| {
                        format!("{package} needs {piece}, which Debian {} does not offer", kernel.release.name())
                    })?,
                };
                unpack(&piece_deb, &partial)?;
            }
        }
        fs::write(partial.join(".complete"), format!("{package} {version}\n"))?;
        let _ = fs::remove_dir_all(&unpacked);
        fs::rename(&partial, &unpacked)?;
    }
    let (vmlinuz, uname, modules_dir) =
        kernel_files(&unpacked).with_context(|| format!("{package} {version} in {}", unpacked.display()))?;
    Ok(Image { package, version, uname, vmlinuz, modules_dir })
}

/// Downloads `package` at `version` into `debs`; returns the .deb.
fn download(apt: &Apt, package: &str, version: &str, debs: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("vm-test: downloading {package} {version}");
    apt.download(package, version, debs)?;
    cached_deb(debs, package, version)?
        .with_context(|| format!("apt-get download left no .deb for {package} in {}", debs.display()))
}

fn unpack(deb: &Path, into: &Path) -> anyhow::Result<()> {
    eprintln!("vm-test: unpacking {}", deb.display());
    run_quiet(Command::new("dpkg").arg("-x").arg(deb).arg(into))
}

/// (vmlinuz, `uname -r`, modules directory) of an unpacked kernel: vmlinuz
/// in `boot/`, or in `usr/lib/modules/UNAME/` in Debian's 7.x packages; the
/// modules in `lib/modules` before Debian 13's merged /usr, `usr/lib/modules`
/// since.
fn kernel_files(root: &Path) -> anyhow::Result<(PathBuf, String, PathBuf)> {
    let (vmlinuz, uname) = if root.join("boot").is_dir() {
        let vmlinuz = single_entry(&root.join("boot"), "vmlinuz-")?;
        let uname = vmlinuz
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("vmlinuz-"))
            .context("kernel file name")?
            .to_string();
        (vmlinuz, uname)
    } else {
        let modules = root.join("usr/lib/modules");
        let mut found = Vec::new();
        for entry in fs::read_dir(&modules).with_context(|| format!("no boot/ and no {}", modules.display()))? {
            let dir = entry?.path();
            if dir.join("vmlinuz").is_file() {
                found.push(dir);
            }
        }
        let [dir] = &found[..] else {
            bail!("expected one vmlinuz in {}/*/, found {}", modules.display(), found.len())
        };
        let uname = dir.file_name().and_then(|n| n.to_str()).context("kernel directory name")?.to_string();
        (dir.join("vmlinuz"), uname)
    };
    let modules_dir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|dir| root.join(dir).join(&uname))
        .find(|dir| dir.join("kernel").is_dir())
        .with_context(|| format!("no modules of {uname} in {}", root.display()))?;
    Ok((vmlinuz, uname, modules_dir))
}

/// The packages a split kernel image depends on at exactly its own
/// `version` (linux-binary-*, linux-modules-*, linux-base-*).
fn pieces(depends: &str, version: &str) -> Vec<String> {
    let exact = format!("(= {version})");
    depends
        .split([',', '|'])
        .filter_map(|d| d.trim().split_once(' '))
        .filter(|(_, constraint)| constraint.trim() == exact)
        .map(|(name, _)| name.to_string())
        .collect()
}

fn cached_deb(debs: &Path, package: &str, version: &str) -> anyhow::Result<Option<PathBuf>> {
    // apt writes an epoch's colon as %3a.
    let prefix = format!("{package}_{}_", version.replace(':', "%3a"));
    for entry in fs::read_dir(debs)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn single_entry(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)) {
            found.push(path);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => bail!("expected one {prefix}* in {}, found {n}", dir.display()),
    }
}

/// apt with its own sources and lists under the cache.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new(cache: &Path, release: Release) -> anyhow::Result<Self> {
        let dir = cache.join(format!("apt-{}", release.name()));
        fs::create_dir_all(dir.join("lists/partial"))?;
        fs::create_dir_all(dir.join("cache/archives/partial"))?;
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        if !Path::new(keyring).exists() {
            bail!("{keyring} is missing (apt-get install debian-archive-keyring)");
        }
        let options = format!("[arch=amd64 signed-by={keyring}]");
        let sources: String = release
            .suites()
            .iter()
            .map(|(archive, suite)| format!("deb {options} http://deb.debian.org/{archive} {suite} main\n"))
            .collect();
        let path = dir.join("sources.list");
        if fs::read_to_string(&path).ok().as_deref() != Some(sources.as_str()) {
            fs::write(&path, sources)?;
            // Lists of other sources would be stale.
            fs::remove_file(dir.join("lists/.complete")).ok();
        }
        Ok(Apt { dir })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let d = self.dir.display();
        for option in [
            format!("Dir::Etc::SourceList={d}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".into(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::Cache={d}/cache"),
            "Dir::Etc::Preferences=/dev/null".into(),
            "Dir::Etc::PreferencesParts=/dev/null".into(),
            "Acquire::Languages=none".into(),
            // Only package lists: no AppStream metadata.
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
        ] {
            cmd.arg("-o").arg(option);
        }
        cmd
    }

    fn has_lists(&self) -> bool {
        self.dir.join("lists/.complete").exists()
    }

    fn update(&self) -> anyhow::Result<()> {
        eprintln!("vm-test: apt-get update ({})", self.dir.display());
        let mut cmd = self.command("apt-get");
        cmd.args(["update", "-qq"]);
        run_quiet(&mut cmd)?;
        fs::write(self.dir.join("lists/.complete"), "")?;
        Ok(())
    }

    /// The package matching `pattern` with the highest candidate version.
    fn newest(&self, pattern: &str) -> anyhow::Result<Option<(String, String)>> {
        let prefix = pattern.split('*').next().unwrap_or(pattern);
        let mut cmd = self.command("apt-cache");
        cmd.args(["pkgnames", prefix]);
        let names: Vec<String> =
            command_output(&mut cmd)?.lines().filter(|n| glob_match(pattern, n)).map(String::from).collect();
        if names.is_empty() {
            return Ok(None);
        }
        let mut cmd = self.command("apt-cache");
        cmd.arg("policy").args(&names);
        let candidates = parse_policy(&command_output(&mut cmd)?);
        let mut best: Option<(String, String)> = None;
        for (name, version) in candidates {
            let newer = match &best {
                None => true,
                Some((_, best_version)) => Command::new("dpkg")
                    .args(["--compare-versions", &version, "gt", best_version])
                    .status()
                    .context("dpkg --compare-versions")?
                    .success(),
            };
            if newer {
                best = Some((name, version));
            }
        }
        Ok(best)
    }

    fn download(&self, package: &str, version: &str, into: &Path) -> anyhow::Result<()> {
        let mut cmd = self.command("apt-get");
        cmd.args(["download", "-qq", &format!("{package}={version}")]).current_dir(into);
        run_quiet(&mut cmd)
    }
}

/// `apt-cache policy` output: package name to candidate version.
fn parse_policy(text: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut package = None;
    for line in text.lines() {
        if !line.starts_with(' ') {
            package = line.strip_suffix(':').map(String::from);
        } else if let (Some(p), Some(v)) = (&package, line.trim().strip_prefix("Candidate: "))
            && v != "(none)"
        {
            found.insert(p.clone(), v.to_string());
        }
    }
    found
}

/// `*` matches any run of characters; everything else literally.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == name;
    }
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// A kernel module for busybox `insmod`.
#[derive(Clone)]
pub struct Module {
    pub name: String,
    /// The uncompressed `.ko`.
    pub ko: Vec<u8>,
}

/// The modules to load, dependencies first.
pub fn modules(image: &Image, wanted: &[&str]) -> anyhow::Result<Vec<Module>> {
    let mut files = BTreeMap::new();
    index_modules(&image.modules_dir.join("kernel"), &mut files)?;
    let builtin = fs::read_to_string(image.modules_dir.join("modules.builtin")).unwrap_or_default();
    let builtin: Vec<String> = builtin
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .filter_map(|f| f.strip_suffix(".ko"))
        .map(|m| m.replace('-', "_"))
        .collect();
    let mut order = Vec::new();
    for module in wanted {
        resolve(module, &files, &builtin, &mut order)?;
    }
    order
        .into_iter()
        .map(|name| {
            let path = &files[&name];
            let ko = decompress(path)?;
            Ok(Module { name, ko })
        })
        .collect()
}

fn resolve(
    module: &str,
    files: &BTreeMap<String, PathBuf>,
    builtin: &[String],
    order: &mut Vec<String>,
) -> anyhow::Result<()> {
    let name = module.replace('-', "_");
    if order.contains(&name) || builtin.contains(&name) {
        return Ok(());
    }
    let path =
        files.get(&name).with_context(|| format!("kernel module {name} is neither in the package nor built in"))?;
    let depends = command_output(Command::new("modinfo").args(["-F", "depends"]).arg(path))?;
    for dep in depends.trim().split(',').filter(|d| !d.is_empty()) {
        resolve(dep, files, builtin, order)?;
    }
    order.push(name);
    Ok(())
}

fn index_modules(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            index_modules(&path, files)?;
            continue;
        }
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(stem) = [".ko", ".ko.xz", ".ko.zst"].iter().find_map(|ext| file.strip_suffix(ext)) {
            files.insert(stem.replace('-', "_"), path.clone());
        }
    }
    Ok(())
}

/// busybox insmod takes plain ELF; Debian compresses modules since 6.x.
fn decompress(path: &Path) -> anyhow::Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else {
        return fs::read(path).with_context(|| format!("read {name}"));
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("cannot start {tool} (apt-get install xz-utils zstd)"))?;
    if !out.status.success() {
        bail!("{tool} -dc {name}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_patterns() {
        let p = "linux-image-6.1.0-*-cloud-amd64";
        assert!(glob_match(p, "linux-image-6.1.0-56-cloud-amd64"));
        assert!(!glob_match(p, "linux-image-6.1.0-56-cloud-amd64-dbg"));
        assert!(!glob_match(p, "linux-image-6.1.0-56-amd64"));
        let p = "linux-image-6.12.*+deb12-cloud-amd64";
        assert!(glob_match(p, "linux-image-6.12.117+deb12-cloud-amd64"));
        assert!(!glob_match(p, "linux-image-6.12-cloud-amd64"));
        let p = "linux-image-7.*+deb13-cloud-amd64";
        assert!(glob_match(p, "linux-image-7.3.4+deb13-cloud-amd64"));
        assert!(!glob_match(p, "linux-image-7.3.4+deb13-cloud-amd64-dbg"));
        assert!(!glob_match(p, "linux-image-7.2.13+deb14-cloud-amd64"));
    }

    #[test]
    fn split_image_pieces() {
        // linux-image-7.3.4+deb13-cloud-amd64 7.3.4-1~bpo13+1, as dpkg-deb -f prints it.
        let depends = "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)";
        assert_eq!(
            pieces(depends, "7.3.4-1~bpo13+1"),
            [
                "linux-base-7.3.4+deb13-cloud-amd64",
                "linux-binary-7.3.4+deb13-cloud-amd64",
                "linux-modules-7.3.4+deb13-cloud-amd64"
            ]
        );
        assert!(pieces("kmod, initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool", "6.12.117-1").is_empty());
    }

    #[test]
    fn policy_candidates() {
        let text = "a:\n  Installed: (none)\n  Candidate: 1.2-3\n  Version table:\n     1.2-3 500\nb:\n  Installed: (none)\n  Candidate: (none)\n";
        let found = parse_policy(text);
        assert_eq!(found.get("a").map(String::as_str), Some("1.2-3"));
        assert!(!found.contains_key("b"));
    }
}
