//! The one error type of the agent crate, [`AgentError`]: problems found before a run starts
//! (a bad config, a missing tool command) and failures to record. Everything that goes wrong
//! *during* a run ends it with a stop reason instead.

use std::path::PathBuf;

/// What stops an agent from running at all.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config file could not be read.
    #[error("cannot read the agent config `{path}`: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid YAML/JSON for an agent version.
    #[error("{}:{line}:{column}: {message}", path.display())]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The config parses but says something impossible.
    #[error("{}: {message}", path.display())]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model backend could not be set up (missing API key, bad script).
    #[error("model: {0}")]
    Model(String),
    /// A tool backend could not be set up (missing command).
    #[error("tool `{tool}`: {message}")]
    Tool {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// Recording failed (the sink's error inside); what was committed is kept.
    #[error(transparent)]
    Record(#[from] tapedeck_trace::SinkError),
}
