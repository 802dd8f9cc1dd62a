//! [`Run`]: one agent run, its identity, outcome and [`Totals`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{EventData, RunId, RunStatus, StopReason, Timestamp};

/// Where a run's events were born.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// tapedeck's own agent runtime.
    Runtime,
    /// The HTTP record/replay proxy.
    Proxy,
    /// The MCP stdio proxy.
    Mcp,
    /// An importer (OpenTelemetry spans, hand-written tapes).
    Import,
}

impl Source {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runtime => "runtime",
            Self::Proxy => "proxy",
            Self::Mcp => "mcp",
            Self::Import => "import",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "runtime" => Self::Runtime,
            "proxy" => Self::Proxy,
            "mcp" => Self::Mcp,
            "import" => Self::Import,
            _ => return Err(format!("unknown run source `{s}`")),
        })
    }
}

/// Which agent version made a run.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// The agent's name.
    pub name: String,
    /// The hash of its configuration with prompt files and tool schemas inlined.
    pub fingerprint: String,
}

/// A run's counters, kept up to date as events are recorded.
///
/// A figure that is unknown (a model that reported no usage, a model with no price) is `None`,
/// never a made-up 0.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Model calls made.
    pub steps: u64,
    /// Tool calls asked for, per tool.
    pub tool_calls: BTreeMap<String, u64>,
    /// Input tokens over all model calls.
    pub tokens_in: Option<u64>,
    /// Output tokens over all model calls.
    pub tokens_out: Option<u64>,
    /// Model and tool cost in US dollars.
    pub cost_usd: Option<f64>,
    /// Wall-clock time from start to end.
    pub latency_ms: Option<u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            steps: 0,
            tool_calls: BTreeMap::new(),
            tokens_in: Some(0),
            tokens_out: Some(0),
            cost_usd: Some(0.0),
            latency_ms: None,
        }
    }
}

impl Totals {
    /// Counts one event; returns whether it is of a kind that counts (and so may have changed
    /// the totals).
    pub fn observe(&mut self, data: &EventData) -> bool {
        match data {
            EventData::LlmRequest(_) => self.steps = self.steps.saturating_add(1),
            EventData::LlmResponse(r) => {
                match r.usage {
                    Some(u) => {
                        self.tokens_in = self.tokens_in.map(|t| t.saturating_add(u.input_tokens));
                        self.tokens_out =
                            self.tokens_out.map(|t| t.saturating_add(u.output_tokens));
                    }
                    None => {
                        self.tokens_in = None;
                        self.tokens_out = None;
                    }
                }
                self.cost_usd = match (self.cost_usd, r.cost_usd) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
            }
            EventData::ToolCall(c) => {
                let n = self.tool_calls.entry(c.tool.clone()).or_insert(0);
                *n = n.saturating_add(1);
            }
            EventData::ToolResult(r) => {
                if let (Some(total), Some(c)) = (self.cost_usd, r.cost_usd) {
                    self.cost_usd = Some(total + c);
                }
            }
            _ => return false,
        }
        true
    }

    /// All tool calls, over every tool.
    pub fn tool_calls_total(&self) -> u64 {
        self.tool_calls
            .values()
            .fold(0, |a, b| a.saturating_add(*b))
    }

    /// Input and output tokens together, if both are known.
    pub fn tokens_total(&self) -> Option<u64> {
        self.tokens_in?.checked_add(self.tokens_out?)
    }
}

/// One agent run: what ran, on what, how it ended and what it used.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// Where its events were born.
    pub source: Source,
    /// The golden suite it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// The task it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The input it was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The agent version that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// The run it replays or forks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<RunId>,
    /// How it relates to its parent (`exact`, `tools-only`, `fork@3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Its state.
    pub status: RunStatus,
    /// Why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// Its final answer or partial output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// What went wrong, for a run that ended in an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its counters.
    pub totals: Totals,
    /// Free-form `key=value` labels (`model=gpt-4.1`, `pr=123`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Run {
    /// A new, running run from `source`, starting now.
    pub fn new(source: Source) -> Self {
        Self {
            id: RunId::new(),
            source,
            suite: None,
            task: None,
            input: None,
            agent: None,
            parent: None,
            mode: None,
            started_at: Timestamp::now(),
            ended_at: None,
            status: RunStatus::Running,
            stop_reason: None,
            answer: None,
            error: None,
            totals: Totals::default(),
            labels: BTreeMap::new(),
        }
    }
}
