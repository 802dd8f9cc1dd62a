//! The session protocol (version 1, `clients/PROTOCOL.md`): how an agent's in-process tools and
//! its `tapedeck mcp` servers join the run that `tapedeck record -- CMD` or `tapedeck replay RUN
//! -- CMD` holds open, so one run holds every LLM decision and every tool observation.
//!
//! This module is the protocol's messages and what a replay answers tools from
//! ([`ToolAnswers`]); the HTTP proxy serves the endpoints under [`PATH`] on its own port
//! (`http/session.rs`) and records into its run.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tapedeck_store::StoreError;
use tapedeck_trace::{ContentHash, Direction, Event, EventData};

/// The protocol version this build speaks.
pub const PROTOCOL: u32 = 1;

/// The environment variable that hands a command its session's address.
pub const ENV_VAR: &str = "TAPEDECK_SESSION";

/// Where the protocol is served on the proxy's port (the version is part of the path).
pub const PATH: &str = "/tapedeck/session/v1";

/// The session's base URL on a proxy listening on `port`.
pub fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}{PATH}")
}

/// `hello`: a client announces itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version it speaks.
    pub protocol: u32,
    /// Its name and version (free text).
    #[serde(default)]
    pub client: String,
}

/// Whether the session records or replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Tools run, and what they return is recorded.
    Record,
    /// Tools are answered from the recording.
    Replay,
}

/// The answer to [`Hello`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the session speaks.
    pub protocol: u32,
    /// Record or replay.
    pub mode: Mode,
    /// The session's run (short id).
    pub run: String,
}

/// A tool's kind, as the client declares it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// No side effects.
    #[default]
    Read,
    /// Changes something: never runs in a replay.
    Write,
    /// Costs money or quota.
    Expensive,
}

/// `call`: a tool is called.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Call {
    /// The tool's name.
    pub tool: String,
    /// Its kind.
    #[serde(default)]
    pub kind: Kind,
    /// Its arguments, one JSON object.
    #[serde(default)]
    pub args: Value,
}

/// A recorded (or raised) error: the exception's type and message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolError {
    /// The exception's class name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its message.
    pub message: String,
}

impl ToolError {
    /// The error as a `tool_result` records it: `Type: message`.
    pub fn recorded(&self) -> String {
        if self.kind.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.kind, self.message)
        }
    }

    /// A recorded error read back: `Type: message` when it starts with a name, else the
    /// whole text as the message of an `Error`.
    pub fn from_recorded(text: &str) -> Self {
        if let Some((kind, message)) = text.split_once(": ")
            && !kind.is_empty()
            && kind
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            return Self {
                kind: kind.to_owned(),
                message: message.to_owned(),
            };
        }
        Self {
            kind: "Error".to_owned(),
            message: text.to_owned(),
        }
    }
}

/// What the client does with a [`Call`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Run the tool, then send its [`Outcome`] with this token.
    Run {
        /// The token of the call.
        call: String,
    },
    /// Return this recorded result without running the tool.
    Return {
        /// The result.
        result: Value,
        /// `recorded`, or `reused` for a call made more often than recorded.
        origin: String,
    },
    /// Raise the recorded error without running the tool.
    Raise {
        /// The error.
        error: ToolError,
    },
    /// The recording has no answer and the tool may not run: raise a replay miss.
    Miss {
        /// Why, naming the closest recorded call.
        message: String,
    },
}

/// `outcome`: what a tool that ran returned.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// The token of its call.
    pub call: String,
    /// Its result, when it returned.
    #[serde(default)]
    pub result: Option<Value>,
    /// Its error, when it raised.
    #[serde(default)]
    pub error: Option<ToolError>,
    /// How long it took, as the client measured it.
    #[serde(default)]
    pub latency_ms: f64,
}

/// `mcp`: one message of an MCP session that `tapedeck mcp` passed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct McpNote {
    /// The server's name.
    pub server: String,
    /// Which way it went.
    pub direction: Direction,
    /// The JSON-RPC message.
    pub message: Value,
}

/// `mcp/recording`: the messages recorded for one server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct McpRecordingRequest {
    /// The server's name.
    pub server: String,
}

/// One recorded MCP message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct McpRecorded {
    /// Which way it went.
    pub direction: Direction,
    /// The JSON-RPC message.
    pub message: Value,
}

/// The answer to [`McpRecordingRequest`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct McpRecordingAnswer {
    /// The messages, in order.
    pub messages: Vec<McpRecorded>,
}

/// The MCP messages of a recorded session run, by server.
#[derive(Clone, Debug, Default)]
pub struct McpRecording(HashMap<String, Vec<McpRecorded>>);

impl McpRecording {
    /// Reads them from a run's events; `blob` fetches a blob.
    pub fn from_events(
        events: &[Event],
        mut blob: impl FnMut(&ContentHash) -> Result<Value, StoreError>,
    ) -> Result<Self, StoreError> {
        let mut out: HashMap<String, Vec<McpRecorded>> = HashMap::new();
        for event in events {
            if let EventData::McpMessage(m) = &event.data
                && let Some(server) = &m.server
            {
                out.entry(server.clone()).or_default().push(McpRecorded {
                    direction: m.direction,
                    message: blob(&m.message)?,
                });
            }
        }
        Ok(Self(out))
    }

    /// The messages recorded for `server`.
    pub fn of(&self, server: &str) -> Vec<McpRecorded> {
        self.0.get(server).cloned().unwrap_or_default()
    }
}

/// Answers a replay's tool calls from a recording (the CLI plugs the replayer's matching in).
pub trait ToolAnswers: Send {
    /// The answer to a call of `tool` made during model step `step`. Never [`Action::Run`] for
    /// a `write` tool.
    fn answer(&mut self, step: u64, call: &Call) -> Action;
}

/// What a session does with tool calls.
pub enum Tools {
    /// Tools run; their outcomes are recorded.
    Record,
    /// Tools are answered from a recording.
    Replay {
        /// The answers.
        answers: Box<dyn ToolAnswers>,
        /// The MCP messages recorded, for `tapedeck mcp` to answer its client from.
        mcp: McpRecording,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_errors_keep_their_type() {
        let e = ToolError {
            kind: "ValueError".into(),
            message: "no such city: Atlantis".into(),
        };
        assert_eq!(e.recorded(), "ValueError: no such city: Atlantis");
        assert_eq!(ToolError::from_recorded(&e.recorded()), e);
        assert_eq!(
            ToolError::from_recorded("it broke: badly, twice"),
            ToolError {
                kind: "Error".into(),
                message: "it broke: badly, twice".into()
            }
        );
    }

    #[test]
    fn actions_are_tagged() {
        let run = serde_json::to_value(Action::Run { call: "c1".into() }).expect("serializes");
        assert_eq!(run, serde_json::json!({"action": "run", "call": "c1"}));
        let raise = serde_json::to_value(Action::Raise {
            error: ToolError {
                kind: "E".into(),
                message: "m".into(),
            },
        })
        .expect("serializes");
        assert_eq!(
            raise,
            serde_json::json!({"action": "raise", "error": {"type": "E", "message": "m"}})
        );
    }
}
