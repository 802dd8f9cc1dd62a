//! The portable tape: one run as canonical JSONL, the format of golden baselines.
//!
//! The first line is a [`TapeHeader`] (`format`, `version`, `run`); each further line is one
//! [`TapeEvent`]: the event, plus the content of every blob it is the first to reference. A
//! tape is therefore self-contained and still linear in the run's length. Every line is
//! canonical JSON (RFC 8785), so writing a tape that was read gives back the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ContentHash, Event, EventData, Run, Timestamp, TraceError, canonical_json};

/// The `format` field of a tape's first line.
pub const TAPE_FORMAT: &str = "tapedeck-tape";

/// The tape format version this build reads and writes.
///
/// Any change to a serialized field (added, removed, renamed, retyped) bumps it: readers reject
/// unknown fields and newer versions, so an old build never misreads a new tape. Every older
/// version is still read, converted on reading ([`OLDEST_TAPE_VERSION`]).
///
/// - 2: `mcp_message` has `server`; the `agent_identity` event (a proxy run's models, system
///   prompts, tools and fingerprint).
/// - 3: `http_exchange` has `step`: a model call's request is its `RequestFrame` (the matching
///   form without the messages its `llm_request` holds), so proxy runs grow linearly; its
///   response blob is a `RecordedResponse`.
pub const TAPE_VERSION: u32 = 3;

/// The oldest tape version this build reads. Versions 1 and 2 are version 3 without its
/// additions (every added field is optional), so they convert as they are: an exchange without
/// `step` holds its request whole, and its response has the `RecordedResponse` form already.
pub const OLDEST_TAPE_VERSION: u32 = 1;

/// A tape's first line.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapeHeader {
    /// Always [`TAPE_FORMAT`].
    pub format: String,
    /// The format version.
    pub version: u32,
    /// The run.
    pub run: Run,
}

impl TapeHeader {
    /// The header of a tape of `run` in this build's format.
    pub fn new(run: Run) -> Self {
        Self {
            format: TAPE_FORMAT.to_owned(),
            version: TAPE_VERSION,
            run,
        }
    }
}

/// One event line of a tape.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(try_from = "RawTapeEvent")]
pub struct TapeEvent {
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// The content of the blobs this event is the first in the tape to reference.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub blobs: BTreeMap<ContentHash, Value>,
}

/// An event line as read, every field named so that an unknown one is refused:
/// `deny_unknown_fields` has no effect through `#[serde(flatten)]`, so [`TapeEvent`] cannot
/// use it directly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTapeEvent {
    seq: u64,
    at: Timestamp,
    kind: String,
    data: Value,
    #[serde(default)]
    blobs: BTreeMap<ContentHash, Value>,
}

impl TryFrom<RawTapeEvent> for TapeEvent {
    type Error = serde_json::Error;

    fn try_from(raw: RawTapeEvent) -> Result<Self, Self::Error> {
        Ok(Self {
            event: Event {
                seq: raw.seq,
                at: raw.at,
                data: EventData::from_parts(&raw.kind, raw.data)?,
            },
            blobs: raw.blobs,
        })
    }
}

/// Writes a header or event as one canonical line (with its newline).
pub fn to_line<T: Serialize>(value: &T) -> Result<String, TraceError> {
    let mut line = canonical_json(value)?;
    line.push('\n');
    Ok(line)
}

/// Reads a tape's first line, checking its format and version before anything else so that a
/// tape from a newer tapedeck is refused with a clear message rather than a field error.
pub fn parse_header(line: &str) -> Result<TapeHeader, TraceError> {
    let bad = |message: String| TraceError::TapeLine { line: 1, message };
    let value: Value = serde_json::from_str(line)
        .map_err(|e| bad(format!("not valid JSON: {}", json_error(&e))))?;
    let format = value.get("format").and_then(Value::as_str);
    if format != Some(TAPE_FORMAT) {
        return Err(bad(format!(
            "not a tapedeck tape (expected a first line with \"format\":\"{TAPE_FORMAT}\")"
        )));
    }
    match value.get("version").and_then(Value::as_u64) {
        Some(v) if (u64::from(OLDEST_TAPE_VERSION)..=u64::from(TAPE_VERSION)).contains(&v) => {}
        Some(v) => {
            return Err(TraceError::TapeVersion {
                found: v,
                supported: TAPE_VERSION,
            });
        }
        None => return Err(bad("the header has no numeric `version`".to_owned())),
    }
    let mut header: TapeHeader = serde_json::from_value(value)
        .map_err(|e| bad(format!("invalid header: {}", json_error(&e))))?;
    // Converted on reading: what is read is a tape of this build's version.
    header.version = TAPE_VERSION;
    Ok(header)
}

/// Reads one event line (`line_no` is 1-based, for the error message).
pub fn parse_event(line: &str, line_no: usize) -> Result<TapeEvent, TraceError> {
    serde_json::from_str(line).map_err(|e| TraceError::TapeLine {
        line: line_no,
        message: format!("invalid event: {}", json_error(&e)),
    })
}

/// A serde_json error without its "at line 1 column N": a tape line is one line, and the
/// caller names the tape's own line number.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    if e.column() > 0 {
        format!("{message} (column {})", e.column())
    } else {
        message.to_owned()
    }
}
