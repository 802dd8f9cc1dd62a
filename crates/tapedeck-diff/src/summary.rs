//! [`RunSummary`]: the unit of comparison — what a run did, reduced to the figures a drift
//! check looks at; and [`tool_spend`], what each tool of a run used.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use tapedeck_store::Store;
use tapedeck_trace::{ContentHash, Event, EventData, Run, RunId};

use crate::DiffError;
use crate::agent::AgentVersion;

/// One tool call of a trajectory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct CallKey {
    /// The tool.
    pub tool: String,
    /// Its canonical arguments, as text.
    pub args: String,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run's id.
    pub id: RunId,
    /// The task it ran, if any.
    pub task: Option<String>,
    /// Why it ended (`incomplete` / `running` for runs without one).
    pub stop_reason: String,
    /// Model calls.
    pub steps: u64,
    /// Tool calls per tool.
    pub tool_calls: BTreeMap<String, u64>,
    /// Every tool call, in order.
    pub sequence: Vec<CallKey>,
    /// Input tokens (unknown: `None`).
    pub tokens_in: Option<u64>,
    /// Output tokens.
    pub tokens_out: Option<u64>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// Wall-clock time of the run.
    pub latency_ms: Option<u64>,
    /// Latency of each model call, in order.
    pub step_latencies_ms: Vec<u64>,
    /// The final answer.
    pub answer: String,
    /// The agent version its `agent_identity` event records (a proxy run's); compared in
    /// [`RunDiff::agent`](crate::RunDiff::agent), not repeated here.
    #[serde(skip)]
    pub agent: Option<AgentVersion>,
}

impl RunSummary {
    /// The summary of a stored run.
    pub fn load(store: &Store, id: &RunId) -> Result<Self, DiffError> {
        let run = store.run(id)?;
        // Only the kinds `of` looks at: the rest of a long run need not be parsed.
        let events = store.events_of_kinds(id, &["tool_call", "llm_response", "agent_identity"])?;
        Self::of(store, &run, &events)
    }

    /// The summary of `run` from its events (tool arguments read from `store`).
    pub fn of(store: &Store, run: &Run, events: &[Event]) -> Result<Self, DiffError> {
        // Every distinct argument blob read in batches and made canonical once: a long run
        // repeats arguments, and one query per call would dominate the load.
        let mut args: HashMap<ContentHash, String> = HashMap::new();
        let hashes = events.iter().filter_map(|e| match &e.data {
            EventData::ToolCall(c) => Some(c.args),
            _ => None,
        });
        for (hash, value) in store.blobs(hashes, &run.id)? {
            args.insert(hash, tapedeck_trace::canonical_value(&value)?);
        }
        let mut sequence = Vec::new();
        let mut step_latencies_ms = Vec::new();
        let mut agent = None;
        for event in events {
            match &event.data {
                EventData::ToolCall(c) => {
                    sequence.push(CallKey {
                        tool: c.tool.clone(),
                        args: args.get(&c.args).cloned().unwrap_or_default(),
                    });
                }
                EventData::LlmResponse(r) => step_latencies_ms.push(r.latency_ms),
                EventData::AgentIdentity(identity) => {
                    agent = Some(AgentVersion::load(store, run, identity)?);
                }
                _ => {}
            }
        }
        Ok(Self {
            id: run.id,
            task: run.task.clone(),
            stop_reason: run
                .stop_reason
                .as_ref()
                .map_or_else(|| run.status.to_string(), ToString::to_string),
            steps: run.totals.steps,
            tool_calls: run.totals.tool_calls.clone(),
            sequence,
            tokens_in: run.totals.tokens_in,
            tokens_out: run.totals.tokens_out,
            cost_usd: run.totals.cost_usd,
            latency_ms: run.totals.latency_ms,
            step_latencies_ms,
            answer: run.answer.clone().unwrap_or_default(),
            agent,
        })
    }

    /// All tool calls.
    pub fn tool_calls_total(&self) -> u64 {
        self.tool_calls.values().sum()
    }

    /// Input plus output tokens, when both are known.
    pub fn tokens_total(&self) -> Option<u64> {
        self.tokens_in?.checked_add(self.tokens_out?)
    }

    /// The `p`-th percentile (nearest rank) of the step latencies.
    pub fn step_latency_percentile(&self, p: f64) -> Option<u64> {
        let mut sorted = self.step_latencies_ms.clone();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_unstable();
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }
}

/// How much of the run one tool used.
#[derive(Clone, Debug, Serialize)]
pub struct ToolSpend {
    /// The tool.
    pub tool: String,
    /// Calls asked for.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// What its calls cost.
    pub cost_usd: f64,
}

/// Per-tool spend, biggest spender first (by cost, then calls).
pub fn tool_spend(events: &[Event]) -> Vec<ToolSpend> {
    fn entry<'a>(spend: &'a mut BTreeMap<String, ToolSpend>, tool: &str) -> &'a mut ToolSpend {
        spend.entry(tool.to_owned()).or_insert_with(|| ToolSpend {
            tool: tool.to_owned(),
            calls: 0,
            errors: 0,
            cost_usd: 0.0,
        })
    }
    let mut spend: BTreeMap<String, ToolSpend> = BTreeMap::new();
    for event in events {
        match &event.data {
            EventData::ToolCall(c) => entry(&mut spend, &c.tool).calls += 1,
            EventData::ToolResult(r) => {
                let s = entry(&mut spend, &r.tool);
                s.cost_usd += r.cost_usd.unwrap_or(0.0);
                s.errors += u64::from(r.error.is_some());
            }
            _ => {}
        }
    }
    let mut list: Vec<ToolSpend> = spend.into_values().collect();
    list.sort_by(|a, b| {
        b.cost_usd
            .total_cmp(&a.cost_usd)
            .then(b.calls.cmp(&a.calls))
            .then(a.tool.cmp(&b.tool))
    });
    list
}
