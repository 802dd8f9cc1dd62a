//! The MCP stdio record/replay proxy.
//!
//! MCP's stdio transport is newline-delimited JSON-RPC: one message per line, no embedded
//! newlines, logging on stderr. [`record`] sits between a client (its own stdin/stdout) and a
//! spawned server: every line passes through unchanged in both directions and is recorded as a
//! run (source `mcp`): a `tools/call` request and its response become `tool_call` and
//! `tool_result`, every other message an `mcp_message`. [`replay`] answers a client from such a
//! run without starting the server: whatever request methods were recorded (`initialize` of
//! the handshake era, `server/discover` of the 2026-07-28 era, `tools/list`, `tools/call`, …),
//! matched by method and canonical params without the volatile `_meta` and ids, answered with
//! the client's own ids; a handshake-era client replaying a recording of the discovery era
//! gets an `initialize` answer built from the recorded discovery. Messages the server sent on its own (notifications, and requests to
//! the client such as `sampling/createMessage`) are sent again where they came: before the
//! client's first message, while a request was open, or after an answer or a notification; a
//! server request holds back what follows it until the client has answered. The replay is
//! itself recorded (parent and mode `mcp`).
//!
//! `tapedeck mcp -- SERVER…` in a session (`TAPEDECK_SESSION`) does either for the session's run
//! instead of a run of its own: [`record_in_session`] and [`replay_in_session`], talking to the
//! session through a [`SessionClient`].
//!
//! `session` records what crosses in either direction, `record` is the pass-through to a real
//! server, `replay` answers from a recording, `joined` takes part in a session and
//! `session_client` speaks the session protocol.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_store::{Ending, Recorder, Store, StoreError, Writer};
use tapedeck_trace::{
    ContentHash, Direction, EventData, McpMessage, Origin, Run, RunId, Source, StopReason,
    ToolCall, ToolResult, Validation, canonical_json,
};

mod joined;
mod live;
mod record;
mod replay;
mod session;
mod session_client;

pub use joined::{
    JoinOptions, JoinedOutcome, default_server_name, record_in_session, replay_in_session,
};
pub use record::record;
pub use replay::{replay, serve_messages};
use session::{Session, rpc_error};
pub use session_client::{SessionClient, SessionError};

/// The mode a replayed MCP run records for itself.
pub const REPLAY_MODE: &str = "mcp";

/// What went wrong in the MCP proxy.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// No server command was given.
    #[error("no MCP server command: pass it after `--`")]
    NoCommand,
    /// The server could not be started.
    #[error("cannot start the MCP server `{command}`: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing a stream failed.
    #[error("MCP stdio: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Talking to the session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The run to replay was not recorded by the MCP proxy.
    #[error("run {run} was recorded by the {origin}, not `tapedeck mcp record`")]
    NotMcp {
        /// The run's short id.
        run: String,
        /// Where it came from.
        origin: Source,
    },
}

/// Run metadata for a recording.
#[derive(Clone, Debug, Default)]
pub struct RecordOptions {
    /// The task the run belongs to.
    pub task: Option<String>,
    /// `key=value` labels.
    pub labels: BTreeMap<String, String>,
}

/// How a recording ended.
#[derive(Debug)]
pub struct RecordOutcome {
    /// The recorded run.
    pub run: Run,
    /// The server's exit code (`None` when a signal killed it).
    pub exit_code: Option<i32>,
}

/// How a replay ended.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// The replay's own run.
    pub run: Run,
    /// The requests the recording had no answer for (method, and tool for `tools/call`).
    pub misses: Vec<String>,
}

/// A JSON-RPC id as text: a string as itself, a number in its JSON form.
fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads one line (its newline included); `None` at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line)? {
        0 => Ok(None),
        _ => Ok(Some(line)),
    }
}

/// A line of the stdio transport as the JSON-RPC message it holds, if it holds one (blank
/// lines, text that is not JSON and JSON that is not an object do not): every line either
/// proxy reads, from a client or a server, goes through it.
pub fn parse_line(line: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
}

/// Writes `message` as one line and flushes it.
fn write_json_line(out: &mut impl Write, message: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// Locks a mutex the two directions of a session share. A thread that panicked holding it
/// left nothing half-done that matters more than passing the next message on.
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new MCP run. The client's model calls never cross this proxy, so its tokens and cost are
/// unknown — not 0.
fn mcp_run() -> Run {
    let mut run = Run::new(Source::Mcp);
    run.totals.tokens_in = None;
    run.totals.tokens_out = None;
    run.totals.cost_usd = None;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_as_text() {
        assert_eq!(id_text(&json!(7)), "7");
        assert_eq!(id_text(&json!("a-1")), "a-1");
    }
}
