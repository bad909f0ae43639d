//! The output: what is written (`record`: the contract's records;
//! `sentence`: their text) and where it goes (`sink`: stdout or the
//! journal, `journal`: the journal's protocol); `metrics`: the summary's
//! counts for Prometheus.

pub mod finding;
pub mod journal;
pub mod metrics;
pub mod record;
pub mod sentence;
pub mod sink;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One readable sentence per event.
    Text,
    /// One JSON object per line.
    Json,
    /// One native journal entry per event (the default under systemd).
    Journal,
    /// Text on stderr: the journal's fallback when journald is not there.
    #[value(skip)]
    #[serde(skip)]
    TextOnStderr,
}
