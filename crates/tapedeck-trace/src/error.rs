//! The one error type of the trace model, [`TraceError`], and [`one_line`], how every crate
//! writes an error with its causes into a message.

/// What can be wrong with a value of the trace model read from text.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A stop reason string that is not one of the documented forms.
    #[error(
        "unknown stop reason `{0}` (expected e.g. `ok`, `max_tool_calls`, `tool_denied:<tool>`)"
    )]
    StopReason(String),
    /// A run status string that is not one of the documented forms.
    #[error("unknown run status `{0}` (expected ok, stopped, error, incomplete or running)")]
    RunStatus(String),
    /// A timestamp that is not RFC 3339.
    #[error("invalid timestamp `{0}` (expected RFC 3339, e.g. 2026-11-26T02:54:18.000000Z)")]
    Timestamp(String),
    /// A content hash that is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid content hash `{0}` (expected `sha256:` and 64 lowercase hex digits)")]
    ContentHash(String),
    /// A run id that is not a UUID.
    #[error("invalid run id `{0}` (expected a UUID)")]
    RunId(String),
    /// A value that could not be written as canonical JSON.
    #[error("cannot write canonical JSON: {0}")]
    Canonical(#[source] serde_json::Error),
    /// A line of a tape that is not valid.
    #[error("line {line}: {message}")]
    TapeLine {
        /// 1-based line number in the tape.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A tape written by a newer (or unknown) version of the tape format.
    #[error(
        "tape format version {found} is not supported (this build reads version {supported}); upgrade tapedeck"
    )]
    TapeVersion {
        /// The version the tape declares.
        found: u64,
        /// The version this build reads and writes.
        supported: u32,
    },
}

/// An error and its causes on one line, `: `-separated. A cause whose text the line already
/// holds is left out: errors that write their source into their own message (`{source}`,
/// `#[from]` with `"{0}"`) would otherwise print it twice.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}
