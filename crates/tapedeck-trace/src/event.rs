//! [`Event`]: one thing that happened in a run, and [`EventData`], its kind and payload.
//!
//! Large content (messages, tool schemas, arguments, outputs) is never inline in an event: it
//! is a blob, referenced by its [`ContentHash`]. Agents resend the whole conversation on every
//! model call, and referencing each message keeps a run's storage linear in its length.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{ContentHash, RunStatus, StopReason, Timestamp, hash_json};

/// One event of a run: its position, when it happened, and what it was.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Event {
    /// Position in the run, from 1, without gaps.
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// Its kind and payload, serialized as `"kind": …, "data": {…}`.
    #[serde(flatten)]
    pub data: EventData,
}

/// What an event was. The tag is the event kind (`run_started`, `tool_call`, …).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventData {
    /// The run began.
    RunStarted(RunStarted),
    /// A request to the model.
    LlmRequest(LlmRequest),
    /// A failed model request that will be retried.
    LlmRetry(LlmRetry),
    /// The model's answer to a request.
    LlmResponse(LlmResponse),
    /// The model asked for a tool call.
    ToolCall(ToolCall),
    /// The gateway decided about a tool call (or the run).
    PolicyDecision(PolicyDecision),
    /// What a tool call returned.
    ToolResult(ToolResult),
    /// An HTTP exchange the proxy passed through without modelling it.
    HttpExchange(HttpExchange),
    /// An MCP JSON-RPC message other than a tool call.
    McpMessage(McpMessage),
    /// A budget ran out.
    BudgetExceeded(BudgetExceeded),
    /// The agent version a proxy run turned out to be (its models, prompts and tools).
    AgentIdentity(AgentIdentity),
    /// The run ended.
    RunFinished(RunFinished),
}

/// All event kinds, in the order of [`EventData`]'s variants.
pub const EVENT_KINDS: [&str; 12] = [
    "run_started",
    "llm_request",
    "llm_retry",
    "llm_response",
    "tool_call",
    "policy_decision",
    "tool_result",
    "http_exchange",
    "mcp_message",
    "budget_exceeded",
    "agent_identity",
    "run_finished",
];

impl EventData {
    /// The event kind, as written in the `kind` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RunStarted(_) => "run_started",
            Self::LlmRequest(_) => "llm_request",
            Self::LlmRetry(_) => "llm_retry",
            Self::LlmResponse(_) => "llm_response",
            Self::ToolCall(_) => "tool_call",
            Self::PolicyDecision(_) => "policy_decision",
            Self::ToolResult(_) => "tool_result",
            Self::HttpExchange(_) => "http_exchange",
            Self::McpMessage(_) => "mcp_message",
            Self::BudgetExceeded(_) => "budget_exceeded",
            Self::AgentIdentity(_) => "agent_identity",
            Self::RunFinished(_) => "run_finished",
        }
    }

    /// Every blob this event refers to, in field order.
    pub fn blob_refs(&self) -> Vec<ContentHash> {
        match self {
            Self::RunStarted(e) => e.agent_config.iter().copied().collect(),
            Self::LlmRequest(e) => e.messages.iter().chain(&e.tools).copied().collect(),
            Self::LlmResponse(e) => vec![e.message],
            Self::ToolCall(e) => vec![e.args],
            Self::ToolResult(e) => e.output.iter().copied().collect(),
            Self::HttpExchange(e) => e.request.iter().chain(&e.response).copied().collect(),
            Self::McpMessage(e) => vec![e.message],
            Self::AgentIdentity(e) => e
                .system_prompts
                .iter()
                .chain(e.tools.values())
                .copied()
                .collect(),
            Self::LlmRetry(_)
            | Self::PolicyDecision(_)
            | Self::BudgetExceeded(_)
            | Self::RunFinished(_) => Vec::new(),
        }
    }

    /// The payload alone (the `data` object), as a JSON value.
    pub fn payload(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => map.remove("data").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// Rebuilds event data from its kind and payload (the form the store keeps).
    pub fn from_parts(kind: &str, payload: Value) -> Result<Self, serde_json::Error> {
        let mut map = serde_json::Map::with_capacity(2);
        map.insert("kind".to_owned(), Value::String(kind.to_owned()));
        map.insert("data".to_owned(), payload);
        serde_json::from_value(Value::Object(map))
    }

    /// Rebuilds event data from its kind and the payload's JSON text, parsed straight into
    /// the kind's struct: the result of [`EventData::from_parts`] on the parsed payload, without
    /// the intermediate `Value` (reading a long run is mostly this). On an error, call
    /// `from_parts` for its message, which this one's may word differently.
    pub fn from_json(kind: &str, payload: &str) -> Result<Self, serde_json::Error> {
        use serde_json::from_str;
        Ok(match kind {
            "run_started" => Self::RunStarted(from_str(payload)?),
            "llm_request" => Self::LlmRequest(from_str(payload)?),
            "llm_retry" => Self::LlmRetry(from_str(payload)?),
            "llm_response" => Self::LlmResponse(from_str(payload)?),
            "tool_call" => Self::ToolCall(from_str(payload)?),
            "policy_decision" => Self::PolicyDecision(from_str(payload)?),
            "tool_result" => Self::ToolResult(from_str(payload)?),
            "http_exchange" => Self::HttpExchange(from_str(payload)?),
            "mcp_message" => Self::McpMessage(from_str(payload)?),
            "budget_exceeded" => Self::BudgetExceeded(from_str(payload)?),
            "agent_identity" => Self::AgentIdentity(from_str(payload)?),
            "run_finished" => Self::RunFinished(from_str(payload)?),
            _ => Self::from_parts(kind, from_str(payload)?)?,
        })
    }
}

/// `run_started`: what the run was asked and under which rules it ran.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStarted {
    /// The task input given to the agent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The effective agent configuration (a blob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_config: Option<ContentHash>,
    /// The budgets in force.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub budgets: Value,
    /// The tool policy in force (allowlist, approvals, kill switch …).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub policy: Value,
}

/// `llm_request`: one call to the model.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmRequest {
    /// The step this request belongs to, from 1.
    pub step: u64,
    /// `openai`, `anthropic`, `scripted`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model name.
    pub model: String,
    /// Sampling parameters (temperature, max tokens, …).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
    /// The `seq` of an earlier `llm_request` of this run whose messages this request resends
    /// first; `messages` then lists only the messages after them. See [`HistoryCompactor`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<u64>,
    /// The messages sent (after those of `extends`, if set), in order, each a blob.
    pub messages: Vec<ContentHash>,
    /// The tool schemas offered to the model (a blob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ContentHash>,
    /// Hash of the request's matching form, used by replay to find it again.
    pub request_hash: ContentHash,
}

/// `llm_retry`: a model request failed and will be tried again.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmRetry {
    /// The step of the failed request.
    pub step: u64,
    /// Which attempt failed, from 1.
    pub attempt: u32,
    /// The HTTP status, where there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the client waits before the next attempt.
    pub wait_ms: u64,
}

/// Token usage reported by the model.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub input_tokens: u64,
    /// Completion (output) tokens.
    pub output_tokens: u64,
}

/// A tool call the model asked for, as listed in its response.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallSummary {
    /// The call id the model gave.
    pub id: String,
    /// The tool name.
    pub name: String,
}

/// `llm_response`: the model's answer.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmResponse {
    /// The step this answers.
    pub step: u64,
    /// The assistant message (a blob).
    pub message: ContentHash,
    /// The tool calls it asks for, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallSummary>,
    /// Why the model stopped (`stop`, `tool_calls`, `length`, `end_turn`, …), as it said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Token usage; absent when the model did not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What the call cost; absent when unknown (never a made-up 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Time from request to complete response.
    pub latency_ms: u64,
    /// Whether the response was streamed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub streamed: bool,
    /// Whether the response was cut off before it completed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
}

/// `tool_call`: the model asked for a tool to run.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The step of the response that asked for it.
    pub step: u64,
    /// The call id, linking the call to its decision and result.
    pub call_id: String,
    /// The tool name.
    pub tool: String,
    /// The arguments (a blob).
    pub args: ContentHash,
    /// Hash of the canonical arguments (equal to `args`; kept separate so matchers need no blob).
    pub args_hash: ContentHash,
    /// The idempotency key for write tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// What the gateway decided.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The call may run.
    Allowed,
    /// The call is not allowed.
    Denied,
    /// The call waits for an approval.
    NeedsApproval,
    /// A person or the approvals file approved it.
    Approved,
    /// A person or the approvals file (or nobody answering) rejected it.
    Rejected,
    /// An identical call's result is reused instead.
    Deduped,
    /// The tool failed too often and is disabled for the rest of the run.
    Degraded,
    /// The kill switch blocked the call or stopped the run.
    KillSwitch,
}

/// `policy_decision`: a gateway decision and the rule that made it.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDecision {
    /// The call decided about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The tool decided about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The decision.
    pub decision: Decision,
    /// The rule that decided, e.g. `tools.allow`, `writes.require_approval`.
    pub rule: String,
    /// A human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Whether a tool's output matched its output schema.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "error")]
pub enum Validation {
    /// No output schema, or no output.
    #[default]
    NotChecked,
    /// The output matched.
    Valid,
    /// The output did not match; the message says where.
    Invalid(String),
}

impl Validation {
    fn is_not_checked(&self) -> bool {
        matches!(self, Self::NotChecked)
    }
}

/// Where a tool result came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The tool ran.
    #[default]
    Live,
    /// Served from a recording.
    Recorded,
    /// Served from a recording, for a call made more often than recorded.
    Reused,
    /// The result of an identical earlier call in this run.
    Dedupe,
}

/// `tool_result`: what a tool call returned.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolResult {
    /// The call this answers.
    pub call_id: String,
    /// The tool name.
    pub tool: String,
    /// The output (a blob), when the tool succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ContentHash>,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the call took.
    pub latency_ms: u64,
    /// Output-schema validation.
    #[serde(default, skip_serializing_if = "Validation::is_not_checked")]
    pub validation: Validation,
    /// Live, recorded, reused or dedupe.
    #[serde(default)]
    pub origin: Origin,
    /// What the call cost (the tool's `cost_usd`); absent means free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// `http_exchange`: one request through the proxy and its response, as replay serves it.
///
/// For a model call (`step` set) the request is the call's [`RequestFrame`]: its matching form
/// without the messages, which are those of the `llm_request` of that step. A pass-through
/// request (and a model call recorded before tape version 3, which has no `step`) is the
/// request whole.
///
/// [`RequestFrame`]: crate::RequestFrame
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExchange {
    /// The HTTP method.
    pub method: String,
    /// The path and query, secrets redacted.
    pub path: String,
    /// The response status, absent when the upstream gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For a model call, the step of its `llm_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// The request (a blob): a model call's frame, or a pass-through request whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ContentHash>,
    /// The response (a blob, a [`RecordedResponse`]).
    ///
    /// [`RecordedResponse`]: crate::RecordedResponse
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ContentHash>,
    /// Time to the complete response.
    pub latency_ms: u64,
}

/// Which way an MCP message went.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the client to the server.
    ClientToServer,
    /// From the server to the client.
    ServerToClient,
}

/// `mcp_message`: an MCP JSON-RPC message other than a tool call.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpMessage {
    /// Which way it went.
    pub direction: Direction,
    /// The JSON-RPC method, absent for responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The whole message (a blob).
    pub message: ContentHash,
    /// The MCP server it was exchanged with, in a session run that talks to several (`tapedeck
    /// mcp --name`); absent in a run of `tapedeck mcp record`, which has one. Since tape
    /// version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// The budgets a run can exceed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// Steps (model calls).
    MaxSteps,
    /// Wall-clock seconds.
    MaxSeconds,
    /// Tool calls.
    MaxToolCalls,
    /// US dollars.
    MaxUsd,
    /// Tokens, input and output together.
    MaxTokens,
}

impl BudgetKind {
    /// Its name, as serialized (`max_steps`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxSteps => "max_steps",
            Self::MaxSeconds => "max_seconds",
            Self::MaxToolCalls => "max_tool_calls",
            Self::MaxUsd => "max_usd",
            Self::MaxTokens => "max_tokens",
        }
    }

    /// The stop reason of a run that exceeded this budget.
    pub fn stop_reason(self) -> StopReason {
        match self {
            Self::MaxSteps => StopReason::MaxSteps,
            Self::MaxSeconds => StopReason::MaxSeconds,
            Self::MaxToolCalls => StopReason::MaxToolCalls,
            Self::MaxUsd => StopReason::MaxUsd,
            Self::MaxTokens => StopReason::MaxTokens,
        }
    }
}

/// `budget_exceeded`: a budget ran out.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetExceeded {
    /// Which budget.
    pub budget: BudgetKind,
    /// Its limit.
    pub limit: f64,
    /// What had been used when it was checked.
    pub used: f64,
    /// The tool whose call hit the limit, if a tool call did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// `agent_identity`: the agent version of a run recorded from outside tapedeck's runtime (by the
/// HTTP proxy), as its requests showed it: the models it asked for, its system prompts, the
/// tools it offered, and the fingerprint over them, which is also the run's
/// `agent.fingerprint`. A proxy appends it once, at the end of the run, just before
/// `run_finished` (what an agent sends is known only once it has sent it). Since tape
/// version 2.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentIdentity {
    /// The models its requests named, in order of first use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Its distinct system prompts (system and developer messages, Anthropic's `system`, the
    /// Responses API's `instructions`), each a blob holding the prompt's text, in order of
    /// first use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_prompts: Vec<ContentHash>,
    /// The tools it offered, by name, each with its definition as first sent (a blob: the
    /// whole entry of the request's `tools`, description and schema included).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ContentHash>,
    /// How many more distinct models, system prompts or tools the run sent than the recorder
    /// keeps (it bounds each list); they are not in the fingerprint.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: u64,
    /// [`AgentIdentity::fingerprint_of`] the fields above.
    pub fingerprint: String,
}

impl AgentIdentity {
    /// An identity of these models, prompts and tools, with its fingerprint.
    pub fn new(
        models: Vec<String>,
        system_prompts: Vec<ContentHash>,
        tools: BTreeMap<String, ContentHash>,
        omitted: u64,
    ) -> Self {
        let mut identity = Self {
            models,
            system_prompts,
            tools,
            omitted,
            fingerprint: String::new(),
        };
        identity.fingerprint = identity.fingerprint_of();
        identity
    }

    /// The fingerprint of the models, system prompts and tools: sha256, in hex, of the
    /// canonical JSON `{"models": […], "system_prompts": […], "tools": {name: hash}}` with the
    /// models and prompt hashes sorted. Sets, not sequences: an agent that uses the same
    /// models and prompts in another order (a retry, a branch taken earlier) is the same
    /// version. The `fingerprint` field itself is not read.
    pub fn fingerprint_of(&self) -> String {
        let mut models = self.models.clone();
        models.sort();
        let mut prompts: Vec<String> = self.system_prompts.iter().map(|h| h.to_string()).collect();
        prompts.sort();
        let tools: BTreeMap<&str, String> = self
            .tools
            .iter()
            .map(|(name, hash)| (name.as_str(), hash.to_string()))
            .collect();
        let value = json!({"models": models, "system_prompts": prompts, "tools": tools});
        match hash_json(&value) {
            // The `sha256:` prefix left out, as in a runtime agent's fingerprint.
            Ok((hash, _)) => hash.to_string().trim_start_matches("sha256:").to_owned(),
            // Strings and maps only: canonical JSON cannot fail on them.
            Err(_) => String::new(),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `run_finished`: how the run ended.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFinished {
    /// The final status.
    pub status: RunStatus,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// The final answer, or the partial output of a stopped run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// What went wrong, for a run that ended in an error (`model_error`, `tool_error:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Keeps a run's `llm_request` events linear in size.
///
/// Agents resend the whole conversation on every model call. Storing each message once as a
/// blob removes the repeated text, but a list of every message's hash in every request would
/// still grow quadratically. So a request whose messages begin with all of the previous
/// request's messages is recorded as `extends: <that request's seq>` plus only the new ones;
/// [`expand_messages`] gives back the full lists.
#[derive(Clone, Debug, Default)]
pub struct HistoryCompactor {
    last: Option<(u64, Vec<ContentHash>)>,
}

impl HistoryCompactor {
    /// Rewrites `request`, about to be recorded as event `seq`, to extend the previous request
    /// when it can. A request that already sets `extends` is kept as it is.
    pub fn compact(&mut self, seq: u64, request: &mut LlmRequest) {
        let full = match (request.extends, &self.last) {
            (None, _) => request.messages.clone(),
            (Some(from), Some((last_seq, last))) if from == *last_seq => {
                let mut full = last.clone();
                full.extend_from_slice(&request.messages);
                full
            }
            (Some(_), _) => {
                // Extends a request this compactor did not see: it cannot know the full list.
                self.last = None;
                return;
            }
        };
        if request.extends.is_none()
            && let Some((last_seq, last)) = &self.last
            && !last.is_empty()
            && full.starts_with(last)
        {
            request.extends = Some(*last_seq);
            request.messages = full[last.len()..].to_vec();
        }
        self.last = Some((seq, full));
    }
}

/// The full message list of every `llm_request` in `events`, by seq.
///
/// A request that extends a seq not among `events` (a truncated list) gets only its own
/// messages.
pub fn expand_messages(events: &[Event]) -> BTreeMap<u64, Vec<ContentHash>> {
    let mut full: BTreeMap<u64, Vec<ContentHash>> = Default::default();
    for event in events {
        if let EventData::LlmRequest(request) = &event.data {
            let mut messages = request
                .extends
                .and_then(|from| full.get(&from).cloned())
                .unwrap_or_default();
            messages.extend_from_slice(&request.messages);
            full.insert(event.seq, messages);
        }
    }
    full
}
