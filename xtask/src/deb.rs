//! `cargo xtask deb`: the Debian package, built with cargo-deb from
//! `[package.metadata.deb]` in rsttrace/Cargo.toml, then checked.
//!
//! The man pages and shell completions come from the CLI definition itself
//! (`rsttrace generate`, a hidden subcommand), written into
//! `target/release/deb-assets/` where the package metadata expects them.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{cargo, run};

/// What the package must hold (paths as `dpkg -c` prints them).
const REQUIRED: [&str; 13] = [
    "./usr/bin/rsttrace",
    "./usr/lib/systemd/system/rsttrace.service",
    "./etc/rsttrace/rsttrace.toml",
    "./usr/share/man/man1/rsttrace.1.gz",
    "./usr/share/man/man1/rsttrace-doctor.1.gz",
    "./usr/share/bash-completion/completions/rsttrace",
    "./usr/share/zsh/vendor-completions/_rsttrace",
    "./usr/share/fish/vendor_completions.d/rsttrace.fish",
    "./usr/share/doc/rsttrace/copyright",
    // docs/output.md: the output contract users and other tools rely on.
    "./usr/share/doc/rsttrace/output.md",
    // For --metrics (xtask/src/fleet.rs checks them).
    "./usr/share/rsttrace/prometheus/rsttrace.rules.yml",
    "./usr/share/rsttrace/prometheus/rsttrace.rules.test.yml",
    "./usr/share/rsttrace/grafana/rsttrace.json",
];

pub fn run_task() -> anyhow::Result<()> {
    cargo(&["build", "--release", "--package", "rsttrace"])?;
    let release = crate::target_dir()?.join("release");
    let assets = release.join("deb-assets");
    let _ = std::fs::remove_dir_all(&assets);
    let binary = release.join("rsttrace");
    let generate = |args: &[&str]| {
        let mut cmd = Command::new(&binary);
        cmd.arg("generate").args(args).arg("--out");
        cmd
    };
    let mut man = generate(&["man"]);
    man.arg(assets.join("man"));
    run(man)?;
    // Debian wants man pages compressed; cargo-deb leaves files under
    // target/ alone.
    let mut gzip = Command::new("gzip");
    gzip.args(["-9", "-n", "-f"]).arg(assets.join("man/rsttrace.1")).arg(assets.join("man/rsttrace-doctor.1"));
    run(gzip)?;
    for shell in ["bash", "zsh", "fish"] {
        let mut completions = generate(&["completions", shell]);
        completions.arg(assets.join("completions"));
        run(completions)?;
    }

    let out = Command::new("cargo")
        .args(["deb", "--package", "rsttrace", "--no-build"])
        .output()
        .context("cannot run cargo deb (xtask/bootstrap.sh installs cargo-deb)")?;
    if !out.status.success() {
        bail!("cargo deb failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // cargo deb prints the package's path last.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    check(&deb).with_context(|| format!("{} is not right", deb.display()))?;
    println!("{}", deb.display());
    Ok(())
}

/// Every required file is in the package, the configuration is a conffile,
/// and no maintainer script enables or starts the unit.
fn check(deb: &Path) -> anyhow::Result<()> {
    let listing = output(Command::new("dpkg").arg("-c").arg(deb))?;
    let missing = missing_paths(&listing);
    if !missing.is_empty() {
        bail!("the package lacks {}", missing.join(", "));
    }
    let control = std::env::temp_dir().join(format!("rsttrace-deb-control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&control);
    output(Command::new("dpkg-deb").arg("--control").arg(deb).arg(&control))?;
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap_or_default();
    if !conffiles.lines().any(|l| l.trim() == "/etc/rsttrace/rsttrace.toml") {
        bail!("/etc/rsttrace/rsttrace.toml is not a conffile (conffiles: {conffiles:?})");
    }
    for script in ["preinst", "postinst"] {
        if let Ok(text) = std::fs::read_to_string(control.join(script))
            && enables_or_starts(&text)
        {
            bail!("its {script} enables or starts the unit:\n{text}");
        }
    }
    let _ = std::fs::remove_dir_all(&control);
    Ok(())
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Required paths absent from `dpkg -c` output (the path is its last column).
fn missing_paths(listing: &str) -> Vec<&'static str> {
    let paths: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().last()).collect();
    REQUIRED.iter().copied().filter(|p| !paths.contains(p)).collect()
}

/// Whether a maintainer script would enable or start a unit (systemctl,
/// deb-systemd-helper, deb-systemd-invoke, invoke-rc.d).
fn enables_or_starts(script: &str) -> bool {
    script.lines().map(|l| l.split('#').next().unwrap_or_default()).any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let tool = words.iter().any(|w| {
            ["systemctl", "deb-systemd-helper", "deb-systemd-invoke", "invoke-rc.d"]
                .iter()
                .any(|t| w.trim_start_matches('/').rsplit('/').next() == Some(*t))
        });
        tool && words.iter().any(|w| matches!(*w, "enable" | "start" | "restart" | "reenable"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_paths_in_a_listing() {
        let listing = "\
drwxr-xr-x 0/0               0 2026-11-21 00:00 ./usr/bin/
-rwxr-xr-x 0/0         5094432 2026-11-21 00:00 ./usr/bin/rsttrace
-rw-r--r-- 0/0            1451 2026-11-21 00:00 ./etc/rsttrace/rsttrace.toml
";
        let missing = missing_paths(listing);
        assert!(!missing.contains(&"./usr/bin/rsttrace") && !missing.contains(&"./etc/rsttrace/rsttrace.toml"));
        assert!(missing.contains(&"./usr/lib/systemd/system/rsttrace.service"));
        assert_eq!(missing.len(), REQUIRED.len() - 2);
    }

    /// Checked without building the package: the contract is an asset, and
    /// the file it names exists (include_str! fails to compile otherwise).
    #[test]
    fn the_package_installs_the_output_contract() {
        let manifest = include_str!("../../rsttrace/Cargo.toml");
        assert!(
            manifest.contains(r#"["../docs/output.md", "usr/share/doc/rsttrace/output.md", "644"]"#),
            "rsttrace/Cargo.toml [package.metadata.deb] assets lack docs/output.md"
        );
        assert!(include_str!("../../docs/output.md").starts_with("# rsttrace output contract"));
        assert!(REQUIRED.contains(&"./usr/share/doc/rsttrace/output.md"));
    }

    #[test]
    fn spots_scripts_that_enable_or_start_units() {
        // What debhelper writes for an enabled, started unit.
        let enabling = "#!/bin/sh\nset -e\nif [ \"$1\" = \"configure\" ]; then\n\tdeb-systemd-helper enable 'rsttrace.service' >/dev/null || true\nfi\n";
        assert!(enables_or_starts(enabling));
        assert!(enables_or_starts("/usr/bin/deb-systemd-invoke start 'rsttrace.service' >/dev/null || true\n"));
        assert!(enables_or_starts("systemctl --system enable rsttrace\n"));
        // Reloading, or recording state without enabling, is fine.
        assert!(!enables_or_starts("systemctl --system daemon-reload >/dev/null || true\n"));
        assert!(!enables_or_starts("deb-systemd-helper update-state 'rsttrace.service' >/dev/null || true\n"));
        assert!(!enables_or_starts("# deb-systemd-helper enable would go here\n"));
    }
}
