//! tracefs: where it is, and the `format` files that describe each
//! tracepoint's raw record on the running kernel.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow, bail};

/// Usual mount points, newest first.
const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Finds tracefs, mounting it on /sys/kernel/tracing when nothing is mounted
/// (systemd mounts it on most distributions; minimal systems do not).
pub fn locate(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        if dir.join("events").is_dir() {
            return Ok(dir.to_path_buf());
        }
        bail!(
            "{} is not a tracefs mount (no events/ in it): mount one with `mount -t tracefs nodev {}`",
            dir.display(),
            dir.display()
        );
    }
    if let Some(dir) = CANDIDATES.iter().map(Path::new).find(|d| d.join("events").is_dir()) {
        return Ok(dir.to_path_buf());
    }
    let target = Path::new(CANDIDATES[0]);
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev"])
        .arg(target)
        .status()
        .is_ok_and(|s| s.success());
    if mounted && target.join("events").is_dir() {
        log::info!("mounted tracefs on {}", target.display());
        return Ok(target.to_path_buf());
    }
    bail!("tracefs is not mounted and mounting it failed: run `mount -t tracefs nodev /sys/kernel/tracing` as root")
}

/// One field of a tracepoint's raw record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The C declaration as the kernel prints it (`const void * skaddr`).
    pub declaration: String,
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

/// A parsed `events/<system>/<event>/format` file.
#[derive(Clone, Debug)]
pub struct EventFormat {
    pub fields: Vec<Field>,
    pub print_fmt: String,
}

impl EventFormat {
    /// Reads `events/<system>/<event>/format` under `tracefs`.
    pub fn read(tracefs: &Path, system: &str, event: &str) -> anyhow::Result<Self> {
        let path = tracefs.join("events").join(system).join(event).join("format");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "this kernel has no tracepoint {system}:{event} ({} is missing): rsttrace needs Linux 5.8 or newer with CONFIG_TRACEPOINTS",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Self::parse(&text).with_context(|| format!("cannot parse {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut named = false;
        let mut fields = Vec::new();
        let mut print_fmt = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("name:") {
                named = true;
            } else if let Some(rest) = line.strip_prefix("field:") {
                fields.push(parse_field(rest).with_context(|| format!("bad field line `{line}`"))?);
            } else if let Some(rest) = line.strip_prefix("print fmt:") {
                print_fmt = rest.trim().to_string();
            }
        }
        if !named {
            bail!("no `name:` line");
        }
        Ok(Self { fields, print_fmt })
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The `{ value, "NAME" }` pairs of `__print_symbolic(REC->field, ...)` in
    /// the print format. Values are as printed: numbers where the kernel
    /// resolved its enums at boot, C identifiers where it did not.
    pub fn symbolic_names(&self, field: &str) -> Vec<(String, String)> {
        let marker = format!("__print_symbolic(REC->{field},");
        let Some(start) = self.print_fmt.find(&marker) else {
            return Vec::new();
        };
        let mut pairs = Vec::new();
        let mut rest = &self.print_fmt[start + marker.len()..];
        loop {
            rest = rest.trim_start();
            let Some(body) = rest.strip_prefix('{') else {
                break;
            };
            let Some(end) = body.find('}') else { break };
            let entry = &body[..end];
            if let Some((value, label)) = entry.split_once(',') {
                pairs.push((value.trim().to_string(), label.trim().trim_matches('"').to_string()));
            }
            rest = body[end + 1..].trim_start();
            match rest.strip_prefix(',') {
                Some(next) => rest = next,
                None => break,
            }
        }
        pairs
    }
}

/// Parses `<declaration>;\toffset:N;\tsize:N;\tsigned:N;`.
fn parse_field(rest: &str) -> anyhow::Result<Field> {
    let mut parts = rest.split(';').map(str::trim);
    let declaration = parts.next().unwrap_or_default().to_string();
    let mut offset = None;
    let mut size = None;
    for part in parts {
        if let Some(v) = part.strip_prefix("offset:") {
            offset = Some(v.parse()?);
        } else if let Some(v) = part.strip_prefix("size:") {
            size = Some(v.parse()?);
        }
    }
    // The name is the last identifier, before any array brackets.
    let without_array = declaration.split('[').next().unwrap_or_default();
    let name = without_array
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("no field name"))?
        .to_string();
    Ok(Field {
        declaration,
        name,
        offset: offset.ok_or_else(|| anyhow!("no offset"))?,
        size: size.ok_or_else(|| anyhow!("no size"))?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn fixture(kernel: &str, system: &str, event: &str) -> EventFormat {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/kernels")
            .join(kernel)
            .join(system)
            .join(event)
            .join("format");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        EventFormat::parse(&text).unwrap()
    }

    #[test]
    fn parses_fields_of_the_6_18_send_reset() {
        let f = fixture("6.18", "tcp", "tcp_send_reset");
        let skaddr = f.field("skaddr").unwrap();
        assert_eq!((skaddr.offset, skaddr.size), (16, 8));
        assert_eq!(skaddr.declaration, "const void * skaddr");
        let saddr = f.field("saddr").unwrap();
        assert_eq!((saddr.offset, saddr.size), (32, 28));
        assert_eq!(f.field("reason").unwrap().declaration, "enum sk_rst_reason reason");
        assert!(f.field("common_pid").is_some());
        assert!(f.field("nonexistent").is_none());
    }

    #[test]
    fn reads_numeric_symbolic_names_of_reset_reasons() {
        let f = fixture("6.18", "tcp", "tcp_send_reset");
        let reasons = f.symbolic_names("reason");
        assert!(reasons.contains(&("1".to_string(), "NO_SOCKET".to_string())));
        assert!(reasons.contains(&("12".to_string(), "TCP_ABORT_ON_LINGER".to_string())));
        // States are printed with unresolved identifiers: not numbers.
        let states = f.symbolic_names("state");
        assert!(states.contains(&("TCP_ESTABLISHED".to_string(), "TCP_ESTABLISHED".to_string())));
    }

    #[test]
    fn rejects_a_file_without_a_name() {
        assert!(EventFormat::parse("format:\n").is_err());
    }

    #[test]
    fn field_without_offset_is_an_error() {
        let text = "name: x\nformat:\n\tfield:int a;\tsize:4;\tsigned:1;\n";
        assert!(EventFormat::parse(text).is_err());
    }
}
