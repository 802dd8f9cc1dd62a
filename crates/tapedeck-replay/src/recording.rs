//! [`Recording`]: a recorded run read back into what a replay serves — the model's responses
//! by step, the tool calls with their results, the approvals given — and the agent version it
//! ran, rebuilt from its `run_started` event.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;
use tapedeck_agent::config::{AgentConfig, LoadedConfig};
use tapedeck_agent::{FinishReason, Message, ModelError, ModelResponse};
use tapedeck_store::Store;
use tapedeck_trace::{ContentHash, Decision, Event, EventData, Run, RunId, Source, StopReason};

use crate::ReplayError;

/// One recorded model step.
#[derive(Clone, Debug)]
pub struct RecordedStep {
    /// The step.
    pub step: u64,
    /// The hash of the request's matching form.
    pub request_hash: ContentHash,
    /// The failed attempts before the answer (replayed so retries show again).
    pub retries: Vec<ModelError>,
    /// The answer, when one was recorded.
    pub response: Option<ModelResponse>,
    /// The failure that ended the run at this step instead (`model_error`), when recorded.
    pub error: Option<ModelError>,
}

/// One recorded tool call and its result.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    /// The `tool_call` event's seq.
    pub seq: u64,
    /// The step it was made in.
    pub step: u64,
    /// Its call id.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// Its arguments.
    pub args: Value,
    /// The hash of its canonical arguments.
    pub args_hash: ContentHash,
    /// What it returned, if it ran: the output, or the error.
    pub result: Option<Result<Value, String>>,
}

/// One recorded approval answer.
#[derive(Clone, Debug)]
pub struct RecordedApproval {
    /// The tool.
    pub tool: String,
    /// The call's argument hash.
    pub args_hash: Option<ContentHash>,
    /// Approved or rejected.
    pub approved: bool,
    /// The rule that answered.
    pub rule: String,
    /// Who answered, when recorded.
    pub by: Option<String>,
    /// The step of the call it answered.
    pub step: u64,
}

/// A recorded run, ready to be served.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The run.
    pub run: Run,
    /// Its events.
    pub events: Vec<Event>,
    /// Model steps, by step.
    pub steps: BTreeMap<u64, RecordedStep>,
    /// Tool calls, in order.
    pub calls: Vec<RecordedCall>,
    /// Approval answers, in order.
    pub approvals: Vec<RecordedApproval>,
    /// The effective agent config it ran with, when recorded.
    pub agent_config: Option<Value>,
    /// Every blob read to serve it (messages, arguments, outputs, the config), by hash.
    pub blobs: HashMap<ContentHash, Value>,
}

impl Recording {
    /// Reads run `id` from `store`, blobs included.
    pub fn load(store: &Store, id: &RunId) -> Result<Self, ReplayError> {
        let run = store.run(id)?;
        let events = store.events(id)?;
        // The blobs a replay serves, read in batches: the config, assistant messages, tool
        // arguments and outputs.
        let served = events.iter().filter(|e| {
            matches!(
                e.data,
                EventData::RunStarted(_)
                    | EventData::LlmResponse(_)
                    | EventData::ToolCall(_)
                    | EventData::ToolResult(_)
            )
        });
        let blobs = store.blobs(served.flat_map(|e| e.data.blob_refs()), id)?;
        let blob = |hash: &ContentHash| -> Result<Value, ReplayError> {
            match blobs.get(hash) {
                Some(value) => Ok(value.clone()),
                None => Ok(store.blob(hash, id)?),
            }
        };
        let mut steps: BTreeMap<u64, RecordedStep> = BTreeMap::new();
        let mut calls: Vec<RecordedCall> = Vec::new();
        let mut approvals = Vec::new();
        let mut agent_config = None;
        let mut args_by_call: BTreeMap<String, (ContentHash, u64)> = BTreeMap::new();
        for event in &events {
            match &event.data {
                EventData::RunStarted(e) => {
                    if let Some(hash) = &e.agent_config {
                        agent_config = Some(blob(hash)?);
                    }
                }
                EventData::LlmRequest(e) => {
                    steps.insert(
                        e.step,
                        RecordedStep {
                            step: e.step,
                            request_hash: e.request_hash,
                            retries: Vec::new(),
                            response: None,
                            error: None,
                        },
                    );
                }
                EventData::LlmRetry(e) => {
                    if let Some(step) = steps.get_mut(&e.step) {
                        let text = e.error.as_deref().unwrap_or_default();
                        step.retries.push(match model_error(text, e.status) {
                            // Served at once: a replay does not wait out the recorded backoff.
                            ModelError::Status {
                                status, message, ..
                            } => ModelError::Status {
                                status,
                                message,
                                retry_after: Some(std::time::Duration::ZERO),
                            },
                            other => other,
                        });
                    }
                }
                // A proxy run's messages are the vendors' wire format, replayed by its client
                // itself: only its tool calls are served from here.
                EventData::LlmResponse(_) if matches!(run.source, Source::Proxy | Source::Mcp) => {}
                EventData::LlmResponse(e) => {
                    let message: Message = serde_json::from_value(blob(&e.message)?)
                        .map_err(|err| ReplayError::Unreplayable {
                            run: id.short(),
                            reason: format!(
                                "event {}: the recorded assistant message is not in the runtime's shape: {err}",
                                event.seq
                            ),
                        })?;
                    let response = ModelResponse {
                        finish: finish_reason(e.finish_reason.as_deref(), !e.tool_calls.is_empty()),
                        raw_finish_reason: e.finish_reason.clone(),
                        usage: e.usage,
                        streamed: e.streamed,
                        truncated: e.truncated,
                        message,
                    };
                    if let Some(step) = steps.get_mut(&e.step) {
                        step.response = Some(response);
                    }
                }
                EventData::ToolCall(e) => {
                    args_by_call.insert(e.call_id.clone(), (e.args_hash, e.step));
                    calls.push(RecordedCall {
                        seq: event.seq,
                        step: e.step,
                        call_id: e.call_id.clone(),
                        tool: e.tool.clone(),
                        args: blob(&e.args)?,
                        args_hash: e.args_hash,
                        result: None,
                    });
                }
                EventData::ToolResult(e) => {
                    let result = match (&e.output, &e.error) {
                        (_, Some(error)) => Err(error.clone()),
                        (Some(output), None) => Ok(blob(output)?),
                        (None, None) => Ok(Value::Null),
                    };
                    if let Some(call) = calls.iter_mut().rev().find(|c| c.call_id == e.call_id) {
                        call.result = Some(result);
                    }
                }
                EventData::RunFinished(e) if e.stop_reason == StopReason::ModelError => {
                    // The model failed for good at the last step asked: serve that failure.
                    if let Some(step) = steps
                        .values_mut()
                        .next_back()
                        .filter(|s| s.response.is_none())
                    {
                        step.error =
                            Some(model_error(e.error.as_deref().unwrap_or_default(), None));
                    }
                }
                EventData::PolicyDecision(e) => {
                    let approved = match e.decision {
                        Decision::Approved => true,
                        Decision::Rejected => false,
                        _ => continue,
                    };
                    let call = e.call_id.as_ref().and_then(|c| args_by_call.get(c));
                    approvals.push(RecordedApproval {
                        tool: e.tool.clone().unwrap_or_default(),
                        args_hash: call.map(|(hash, _)| *hash),
                        approved,
                        rule: e.rule.clone(),
                        // The gateway records who answered as the detail `by NAME`.
                        by: e
                            .detail
                            .as_deref()
                            .and_then(|d| d.strip_prefix("by "))
                            .map(str::to_owned),
                        step: call.map_or(0, |(_, step)| *step),
                    });
                }
                _ => {}
            }
        }
        Ok(Self {
            run,
            events,
            steps,
            calls,
            approvals,
            agent_config,
            blobs,
        })
    }

    /// Whether the run came from the HTTP or MCP proxy (replayed by rerunning its client).
    pub fn is_proxy_run(&self) -> bool {
        matches!(self.run.source, Source::Proxy | Source::Mcp)
    }

    /// The agent version the run was recorded with, rebuilt from its recorded config (prompt
    /// and script inlined). Relative paths in it resolve against `base`.
    pub fn agent(&self, base: PathBuf) -> Result<LoadedConfig, ReplayError> {
        let unreplayable = |reason: String| ReplayError::Unreplayable {
            run: self.run.id.short(),
            reason,
        };
        let mut value = self.agent_config.clone().ok_or_else(|| {
            unreplayable("it has no recorded agent config (was it recorded by the runtime?)".into())
        })?;
        let script = value
            .get_mut("model")
            .and_then(|m| m.as_object_mut())
            .and_then(|m| m.remove("script"));
        let config = AgentConfig::from_recorded(value)
            .map_err(|e| unreplayable(format!("its recorded agent config does not load: {e}")))?;
        let system_prompt = config.system_prompt.clone();
        Ok(LoadedConfig {
            config,
            path: base.join("recorded-agent.yaml"),
            system_prompt,
            script,
            warnings: Vec::new(),
        })
    }
}

/// The model failure whose message is `text` (as the runtime records it: the error's
/// `Display`), so that serving it again records the same text. The status, when recorded, or
/// the text's own prefix tells which failure it was; text of no known shape becomes a
/// connection failure carrying it.
fn model_error(text: &str, status: Option<u16>) -> ModelError {
    let status = status.or_else(|| {
        let rest = text.strip_prefix("HTTP ")?;
        rest.split_once(": ")?.0.parse().ok()
    });
    let strip = |empty: ModelError| {
        let prefix = empty.to_string();
        text.strip_prefix(prefix.as_str()).map(str::to_owned)
    };
    if let Some(status) = status {
        let empty = ModelError::Status {
            status,
            message: String::new(),
            retry_after: None,
        };
        return ModelError::Status {
            status,
            message: strip(empty).unwrap_or_else(|| text.to_owned()),
            retry_after: None,
        };
    }
    if text == ModelError::Timeout.to_string() {
        return ModelError::Timeout;
    }
    if let Some(message) = strip(ModelError::Malformed(String::new())) {
        return ModelError::Malformed(message);
    }
    if let Some(message) = strip(ModelError::Script(String::new())) {
        return ModelError::Script(message);
    }
    ModelError::Connect(
        strip(ModelError::Connect(String::new())).unwrap_or_else(|| text.to_owned()),
    )
}

/// The neutral finish reason of a provider's own word.
fn finish_reason(raw: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match raw {
        Some("stop" | "end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("tool_calls" | "tool_use") => FinishReason::ToolCalls,
        Some("length" | "max_tokens") => FinishReason::Length,
        Some(_) => FinishReason::Other,
        None if has_tool_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    }
}
