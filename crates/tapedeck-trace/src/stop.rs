//! Why a run ended ([`StopReason`]) and in what state it is ([`RunStatus`]).
//!
//! The string forms are part of tapedeck's public contract: CI gates and dashboards match on
//! them, so a form never changes once released.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::TraceError;

/// Why a run ended. Written as a stable string such as `max_tool_calls` or
/// `tool_denied:http.get`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum StopReason {
    /// The agent gave a final answer.
    Ok,
    /// The step budget ran out.
    MaxSteps,
    /// The wall-clock budget ran out.
    MaxSeconds,
    /// The tool-call budget ran out.
    MaxToolCalls,
    /// The spending budget ran out.
    MaxUsd,
    /// The token budget (ours, across the run) ran out.
    MaxTokens,
    /// The model hit its own output limit (OpenAI `length`, Anthropic `max_tokens`).
    ModelLength,
    /// The gateway denied a tool that is not allowed.
    ToolDenied(String),
    /// A write tool's approval was refused, or nobody could give it.
    ApprovalDenied(String),
    /// A tool's output failed its output schema and the policy says stop.
    InvalidToolOutput(String),
    /// A tool failed and the policy says a tool error stops the run.
    ToolError(String),
    /// The kill switch stopped the run.
    KillSwitch,
    /// A replay met a tool call it has no recording for.
    ReplayMissTool(String),
    /// A replay met a model request it has no recording for.
    ReplayMissLlm,
    /// The model backend failed (after retries) or answered something unusable.
    ModelError,
    /// The run was cancelled from outside.
    Cancelled,
}

impl StopReason {
    /// The tool this reason names, if any.
    pub fn tool(&self) -> Option<&str> {
        match self {
            Self::ToolDenied(t)
            | Self::ApprovalDenied(t)
            | Self::InvalidToolOutput(t)
            | Self::ToolError(t)
            | Self::ReplayMissTool(t) => Some(t),
            _ => None,
        }
    }

    /// Whether this is the reason of a run that ended normally.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::MaxSteps => f.write_str("max_steps"),
            Self::MaxSeconds => f.write_str("max_seconds"),
            Self::MaxToolCalls => f.write_str("max_tool_calls"),
            Self::MaxUsd => f.write_str("max_usd"),
            Self::MaxTokens => f.write_str("max_tokens"),
            Self::ModelLength => f.write_str("model_length"),
            Self::ToolDenied(t) => write!(f, "tool_denied:{t}"),
            Self::ApprovalDenied(t) => write!(f, "approval_denied:{t}"),
            Self::InvalidToolOutput(t) => write!(f, "invalid_tool_output:{t}"),
            Self::ToolError(t) => write!(f, "tool_error:{t}"),
            Self::KillSwitch => f.write_str("kill_switch"),
            Self::ReplayMissTool(t) => write!(f, "replay_miss:{t}"),
            Self::ReplayMissLlm => f.write_str("replay_miss:llm"),
            Self::ModelError => f.write_str("model_error"),
            Self::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl FromStr for StopReason {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TraceError::StopReason(s.to_owned());
        if let Some((prefix, tool)) = s.split_once(':') {
            if tool.is_empty() {
                return Err(err());
            }
            let tool = tool.to_owned();
            return Ok(match prefix {
                "tool_denied" => Self::ToolDenied(tool),
                "approval_denied" => Self::ApprovalDenied(tool),
                "invalid_tool_output" => Self::InvalidToolOutput(tool),
                "tool_error" => Self::ToolError(tool),
                "replay_miss" if tool == "llm" => Self::ReplayMissLlm,
                "replay_miss" => Self::ReplayMissTool(tool),
                _ => return Err(err()),
            });
        }
        Ok(match s {
            "ok" => Self::Ok,
            "max_steps" => Self::MaxSteps,
            "max_seconds" => Self::MaxSeconds,
            "max_tool_calls" => Self::MaxToolCalls,
            "max_usd" => Self::MaxUsd,
            "max_tokens" => Self::MaxTokens,
            "model_length" => Self::ModelLength,
            "kill_switch" => Self::KillSwitch,
            "model_error" => Self::ModelError,
            "cancelled" => Self::Cancelled,
            _ => return Err(err()),
        })
    }
}

serde_via_str!(StopReason);

/// The state of a run.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still being recorded by a live process.
    Running,
    /// Ended with a final answer.
    Ok,
    /// Ended by a guardrail (a budget, a denial, the kill switch, a replay miss).
    Stopped,
    /// Ended by an error (the model failed, a tool failed and the policy stops).
    Error,
    /// Its process died before it finished; every committed event is kept.
    Incomplete,
}

impl RunStatus {
    /// The status a run ending for `reason` has.
    pub fn for_stop_reason(reason: &StopReason) -> Self {
        match reason {
            StopReason::Ok => Self::Ok,
            StopReason::ModelError | StopReason::ToolError(_) => Self::Error,
            _ => Self::Stopped,
        }
    }

    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Stopped => "stopped",
            Self::Error => "error",
            Self::Incomplete => "incomplete",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "running" => Self::Running,
            "ok" => Self::Ok,
            "stopped" => Self::Stopped,
            "error" => Self::Error,
            "incomplete" => Self::Incomplete,
            _ => return Err(TraceError::RunStatus(s.to_owned())),
        })
    }
}
