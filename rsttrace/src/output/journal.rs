//! Native journal entries: one per report, with every JSON key as an
//! upper-cased field, and the program's own log lines at their priority.

use std::path::Path;

use libsystemd::logging::{Priority, journal_send};
use serde::Serialize;
use serde_json::Value;

/// Where journald listens for native entries.
const SOCKET: &str = "/run/systemd/journal/socket";

pub const IDENTIFIER: &str = "rsttrace";

/// Whether journald's socket is there to send entries to.
pub fn available() -> bool {
    Path::new(SOCKET).exists()
}

/// stdout/stderr lead to the journal (JOURNAL_STREAM matches, as when
/// systemd runs rsttrace as a service).
pub fn connected() -> bool {
    libsystemd::logging::connected_to_journal()
}

/// Journal fields for a record: its JSON keys upper-cased, null values left
/// out (the journal has no null), arrays and objects as JSON text.
pub fn fields(record: &impl Serialize) -> Vec<(String, String)> {
    let Ok(Value::Object(record)) = serde_json::to_value(record) else {
        unreachable!("records serialize as objects");
    };
    let mut fields: Vec<(String, String)> = record
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.to_ascii_uppercase(), value)
        })
        .collect();
    fields.push(("SYSLOG_IDENTIFIER".into(), IDENTIFIER.into()));
    fields
}

/// Sends one entry: `message` as MESSAGE, `record`'s keys as fields.
pub fn send(priority: Priority, message: &str, record: &impl Serialize) -> std::io::Result<()> {
    journal_send(priority, message, fields(record).into_iter()).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Writes one entry to `out` in the journal's export format (`KEY=value`
/// lines, a blank line after the entry): what journald would store, for a
/// sink that does not send to journald (the golden test).
pub fn export(
    out: &mut dyn std::io::Write,
    priority: Priority,
    message: &str,
    record: &impl Serialize,
) -> std::io::Result<()> {
    writeln!(out, "PRIORITY={}", priority as u8)?;
    writeln!(out, "MESSAGE={message}")?;
    for (key, value) in fields(record) {
        writeln!(out, "{key}={value}")?;
    }
    writeln!(out)
}

/// The program's own log lines, as journal entries with their priority.
pub struct JournalLogger {
    pub level: log::LevelFilter,
}

impl log::Log for JournalLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let priority = match record.level() {
            log::Level::Error => Priority::Error,
            log::Level::Warn => Priority::Warning,
            log::Level::Info => Priority::Info,
            log::Level::Debug | log::Level::Trace => Priority::Debug,
        };
        let fields = [("SYSLOG_IDENTIFIER", IDENTIFIER), ("TARGET", record.target())];
        // Nowhere else to report a failure to log.
        let _ = journal_send(priority, &record.args().to_string(), fields.into_iter());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_key_becomes_an_upper_case_field() {
        let record = json!({
            "kind": "tw_collision", "verdict": "stale_ack", "netns": 4026532001u32, "syn_timestamps": false,
            "retry_delay_ms": null, "hooks": ["a", "b"], "counts": {"rst_sent": 1}
        });
        let fields = fields(&record);
        let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KIND"), Some("tw_collision"));
        assert_eq!(get("VERDICT"), Some("stale_ack"));
        assert_eq!(get("NETNS"), Some("4026532001"));
        assert_eq!(get("SYN_TIMESTAMPS"), Some("false"));
        assert_eq!(get("RETRY_DELAY_MS"), None, "null is left out");
        assert_eq!(get("HOOKS"), Some(r#"["a","b"]"#));
        assert_eq!(get("COUNTS"), Some(r#"{"rst_sent":1}"#));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("rsttrace"));
    }
}
