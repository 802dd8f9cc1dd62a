//! The first divergence between a recorded trajectory and its replay ([`first_divergence`]).
//!
//! Trajectories are compared move by move: what the model answered (its tool calls or its
//! text), each tool call, each gateway decision, each tool result, budget stops and the stop
//! reason. Ids, times, latencies and the requests themselves (which follow from the moves) are
//! left out.

use serde::Serialize;
use serde_json::Value;
use tapedeck_trace::{ContentHash, Event, EventData};

use crate::ReplayError;

/// One comparable move of a trajectory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Move {
    /// The event's seq in its run.
    pub seq: u64,
    /// The step it belongs to.
    pub step: u64,
    /// The event kind.
    pub kind: String,
    /// What happened, as compared (e.g. `kb.read {"article":"x"}`).
    pub summary: String,
    /// The tool arguments, for an argument diff.
    #[serde(skip)]
    pub args: Option<Value>,
}

/// Where a replay first left the recorded trajectory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Divergence {
    /// The step where it happened.
    pub step: u64,
    /// The event kind expected (or found, when the recording had ended).
    pub kind: String,
    /// The recorded move, if the recording went on.
    pub expected: Option<Move>,
    /// The replayed move, if the replay went on.
    pub actual: Option<Move>,
    /// A line diff of the arguments, when both moves are calls of the same tool.
    pub argument_diff: Option<String>,
    /// The last move both agree on, for context.
    pub before: Option<Move>,
}

/// The moves of a run, its blobs from `blob` (a replay has most of them in memory already).
pub fn moves_with(
    events: &[Event],
    mut blob: impl FnMut(&ContentHash) -> Result<Value, ReplayError>,
) -> Result<Vec<Move>, ReplayError> {
    let mut out = Vec::new();
    let mut step = 0;
    for event in events {
        let (kind, summary, args) = match &event.data {
            EventData::LlmRequest(e) => {
                step = e.step;
                continue;
            }
            EventData::LlmResponse(e) => {
                let summary = if e.tool_calls.is_empty() {
                    let message = blob(&e.message)?;
                    let text = message
                        .get("content")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    format!("answer {text:?}")
                } else {
                    let names: Vec<&str> = e.tool_calls.iter().map(|c| c.name.as_str()).collect();
                    format!("calls {}", names.join(", "))
                };
                ("llm_response", summary, None)
            }
            EventData::ToolCall(e) => {
                let args = blob(&e.args)?;
                let summary = format!(
                    "{} {}",
                    e.tool,
                    serde_json::to_string(&args).unwrap_or_default()
                );
                ("tool_call", summary, Some(args))
            }
            EventData::PolicyDecision(e) => {
                let decision = serde_json::to_value(e.decision)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                // Approvals replayed from a recording carry a `replay:` rule of their own.
                let rule = e.rule.trim_start_matches("replay: recorded ").to_owned();
                let rule = if rule.starts_with("replay:") {
                    String::new()
                } else {
                    rule
                };
                (
                    "policy_decision",
                    format!("{} {decision} {rule}", e.tool.as_deref().unwrap_or("-")),
                    None,
                )
            }
            EventData::ToolResult(e) => {
                let summary = match (&e.error, &e.output) {
                    (Some(err), _) => format!("{} error {err:?}", e.tool),
                    (None, Some(out)) => format!("{} output {}", e.tool, out.short(12)),
                    (None, None) => format!("{} no output", e.tool),
                };
                ("tool_result", summary, None)
            }
            EventData::BudgetExceeded(e) => ("budget_exceeded", e.budget.as_str().to_owned(), None),
            EventData::RunFinished(e) => ("run_finished", e.stop_reason.to_string(), None),
            _ => continue,
        };
        out.push(Move {
            seq: event.seq,
            step,
            kind: kind.to_owned(),
            summary,
            args,
        });
    }
    Ok(out)
}

/// The first place `actual` leaves `expected`, or `None` when they agree move for move.
pub fn first_divergence(expected: &[Move], actual: &[Move]) -> Option<Divergence> {
    let same = |a: &Move, b: &Move| a.kind == b.kind && a.summary == b.summary;
    let at = expected
        .iter()
        .zip(actual)
        .position(|(e, a)| !same(e, a))
        .or_else(|| (expected.len() != actual.len()).then(|| expected.len().min(actual.len())))?;
    let e = expected.get(at).cloned();
    let a = actual.get(at).cloned();
    let argument_diff = match (&e, &a) {
        (Some(e), Some(a)) if e.kind == "tool_call" && a.kind == "tool_call" => {
            match (&e.args, &a.args) {
                (Some(ea), Some(aa)) => Some(argument_diff(ea, aa)),
                _ => None,
            }
        }
        _ => None,
    };
    let kind = e
        .as_ref()
        .or(a.as_ref())
        .map(|m| m.kind.clone())
        .unwrap_or_default();
    let step = e.as_ref().or(a.as_ref()).map_or(0, |m| m.step);
    Some(Divergence {
        step,
        kind,
        expected: e,
        actual: a,
        argument_diff,
        before: at.checked_sub(1).and_then(|i| expected.get(i).cloned()),
    })
}

/// A unified line diff of two argument values, pretty-printed.
fn argument_diff(expected: &Value, actual: &Value) -> String {
    let e = serde_json::to_string_pretty(expected).unwrap_or_default();
    let a = serde_json::to_string_pretty(actual).unwrap_or_default();
    let diff = similar::TextDiff::from_lines(&e, &a);
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        out.push(sign);
        out.push_str(change.value());
        if !change.value().ends_with('\n') {
            out.push('\n');
        }
    }
    out
}
