//! The production monitoring set, per agent version: tool calls per run, tokens per request,
//! the stop-reason mix, run latency and cost ([`MonitorReport`]).

use std::collections::BTreeMap;

use serde::Serialize;
use tapedeck_trace::{EventData, Run};

use crate::{RunFilter, Store, StoreError};

/// Summary statistics of a set of numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Distribution {
    /// How many values.
    pub count: usize,
    /// Their mean.
    pub mean: f64,
    /// The median (nearest rank).
    pub p50: f64,
    /// The 95th percentile (nearest rank).
    pub p95: f64,
    /// The largest.
    pub max: f64,
}

impl Distribution {
    /// Statistics of `values`; `None` when there are none.
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let idx = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values[idx]
        };
        Some(Self {
            count: values.len(),
            mean: values.iter().sum::<f64>() / values.len() as f64,
            p50: rank(0.50),
            p95: rank(0.95),
            max: values[values.len() - 1],
        })
    }
}

/// The monitoring figures of one agent version.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentStats {
    /// The agent name (or the run source, for runs with no agent, such as proxy runs).
    pub agent: String,
    /// The agent fingerprint, where known.
    pub fingerprint: Option<String>,
    /// How many runs.
    pub runs: usize,
    /// Tool calls per run.
    pub tool_calls_per_run: Option<Distribution>,
    /// Input plus output tokens per model request, over requests that reported usage.
    pub tokens_per_request: Option<Distribution>,
    /// How many runs ended for each stop reason (`running`/`incomplete` for runs without one).
    pub stop_reasons: BTreeMap<String, usize>,
    /// Run wall-clock latency in milliseconds.
    pub latency_ms: Option<Distribution>,
    /// Total cost over the runs whose cost is known; `null` when no run's cost is (a total of
    /// unknown costs is unknown, not 0).
    pub cost_usd: Option<f64>,
    /// Runs whose cost is unknown (not counted in `cost_usd`).
    pub runs_cost_unknown: usize,
    /// The tool that was called most, with its share of all tool calls.
    pub top_tool: Option<ToolShare>,
}

/// A tool and its share of an agent version's tool calls (named fields, not a pair: `stats
/// --json` prints them).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolShare {
    /// The tool.
    pub tool: String,
    /// Its calls over all tool calls, 0 to 1.
    pub share: f64,
}

/// Monitoring figures for every agent version among the selected runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonitorReport {
    /// One entry per agent version, most runs first.
    pub agents: Vec<AgentStats>,
}

impl Store {
    /// Computes the monitoring set over the runs `filter` selects.
    pub fn monitor(&self, filter: &RunFilter) -> Result<MonitorReport, StoreError> {
        let mut groups: BTreeMap<(String, Option<String>), Vec<Run>> = BTreeMap::new();
        for run in self.runs(filter)? {
            let key = match &run.agent {
                Some(a) => (a.name.clone(), Some(a.fingerprint.clone())),
                None => (format!("({})", run.source), None),
            };
            groups.entry(key).or_default().push(run);
        }
        let mut agents = Vec::new();
        for ((agent, fingerprint), runs) in groups {
            let mut tokens = Vec::new();
            for run in &runs {
                for event in self.events_of_kinds(&run.id, &["llm_response"])? {
                    if let EventData::LlmResponse(r) = event.data
                        && let Some(u) = r.usage
                    {
                        tokens.push(u.input_tokens.saturating_add(u.output_tokens) as f64);
                    }
                }
            }
            let mut stop_reasons = BTreeMap::new();
            let mut tools: BTreeMap<&str, u64> = BTreeMap::new();
            for run in &runs {
                let reason = run
                    .stop_reason
                    .as_ref()
                    .map_or_else(|| run.status.to_string(), ToString::to_string);
                *stop_reasons.entry(reason).or_insert(0) += 1;
                for (tool, n) in &run.totals.tool_calls {
                    *tools.entry(tool).or_insert(0) += n;
                }
            }
            let all_calls: u64 = tools.values().sum();
            let top_tool = tools
                .iter()
                .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
                .map(|(name, n)| ToolShare {
                    tool: (*name).to_owned(),
                    share: *n as f64 / all_calls as f64,
                });
            agents.push(AgentStats {
                agent,
                fingerprint,
                runs: runs.len(),
                tool_calls_per_run: Distribution::of(
                    runs.iter()
                        .map(|r| r.totals.tool_calls_total() as f64)
                        .collect(),
                ),
                tokens_per_request: Distribution::of(tokens),
                stop_reasons,
                latency_ms: Distribution::of(
                    runs.iter()
                        .filter_map(|r| r.totals.latency_ms.map(|l| l as f64))
                        .collect(),
                ),
                cost_usd: runs
                    .iter()
                    .filter_map(|r| r.totals.cost_usd)
                    .reduce(|a, b| a + b),
                runs_cost_unknown: runs.iter().filter(|r| r.totals.cost_usd.is_none()).count(),
                top_tool,
            });
        }
        agents.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.agent.cmp(&b.agent)));
        Ok(MonitorReport { agents })
    }
}
