//! The trace model shared by every part of tapedeck: a [`Run`] and its [`Event`]s, stop reasons,
//! canonical JSON (RFC 8785) with sha256 content hashes, and the portable JSONL tape format.
//!
//! Where a run's events go as they happen is an [`EventSink`] (a store's recorder implements
//! it). This crate does no I/O. Everything that is serialized here (events, runs, tapes) is a public
//! format: see "Changing a serialized format" in `crates/README.md` before touching a field.
//!
//! ```
//! use serde_json::json;
//! use tapedeck_trace::{StopReason, canonical_json, hash_json};
//!
//! // Canonical JSON sorts keys and drops whitespace, so equal values have one hash.
//! let call = json!({"query": "refund", "limit": 3});
//! assert_eq!(canonical_json(&call)?, r#"{"limit":3,"query":"refund"}"#);
//! let (hash, _) = hash_json(&json!({"limit": 3, "query": "refund"}))?;
//! assert_eq!(hash, hash_json(&call)?.0);
//!
//! // Stop reasons are stable strings.
//! let stop: StopReason = "tool_denied:http.post".parse()?;
//! assert_eq!(stop, StopReason::ToolDenied("http.post".into()));
//! assert_eq!(stop.to_string(), "tool_denied:http.post");
//! # Ok::<(), tapedeck_trace::TraceError>(())
//! ```

#![warn(missing_docs)]

#[macro_use]
mod serde_str;
mod canonical;
mod error;
mod event;
mod exchange;
mod ids;
mod run;
mod sink;
mod stop;
pub mod tape;
mod time;

pub use canonical::{
    ContentHash, canonical_json, canonical_value, hash_bytes, hash_json, hash_value,
    write_canonical,
};
pub use error::{TraceError, one_line};
pub use event::{
    AgentIdentity, BudgetExceeded, BudgetKind, Decision, Direction, EVENT_KINDS, Event, EventData,
    HistoryCompactor, HttpExchange, LlmRequest, LlmResponse, LlmRetry, McpMessage, Origin,
    PolicyDecision, RunFinished, RunStarted, ToolCall, ToolCallSummary, ToolResult, Usage,
    Validation, expand_messages,
};
pub use exchange::{RecordedResponse, RequestFrame, ResponseBody};
pub use ids::RunId;
pub use run::{AgentInfo, Run, Source, Totals};
pub use sink::{Ending, EventSink, NullSink, RunRecorder, RunWriter, SinkError};
pub use stop::{RunStatus, StopReason};
pub use time::Timestamp;
