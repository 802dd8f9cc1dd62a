//! [`TapeBuilder`]: writes a complete, valid tape of a made-up run, deterministically.
//!
//! The builder plays the part of the store's `Recorder` followed by `Store::export_tape`: it
//! numbers events from 1, counts [`Totals`] with [`Totals::observe`] on every event, inlines each
//! blob on the first event that refers to it, and writes canonical lines with [`tape::to_line`].
//! Its output is therefore the exact bytes the store would export for the same run. Time is
//! made up too: the run starts at a fixed instant and every event is placed a given number of
//! milliseconds after the one before, so two builds of one scenario are byte-identical.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};
use tapedeck_trace::tape::{self, TapeEvent, TapeHeader};
use tapedeck_trace::{
    BudgetExceeded, BudgetKind, ContentHash, Decision, Event, EventData, HistoryCompactor,
    LlmRequest, LlmResponse, Origin, PolicyDecision, Run, RunFinished, RunId, RunStarted,
    RunStatus, Source, StopReason, Timestamp, ToolCall, ToolCallSummary, ToolResult, Totals, Usage,
    Validation, hash_json, hash_value,
};

/// A tool call the model asks for: its call id, the tool, and the arguments.
///
/// One `Call` is used for the assistant message that asks for it
/// ([`message::assistant_calls`](crate::message::assistant_calls)), its `tool_call` event, the
/// gateway's decision and the result, so the four always agree.
#[derive(Clone, PartialEq, Debug)]
pub struct Call {
    /// The call id the model gave (`call_1`, …).
    pub id: String,
    /// The tool name.
    pub tool: String,
    /// The arguments.
    pub args: Value,
}

impl Call {
    /// A call of `tool` with `args`, known as `id`.
    pub fn new(id: impl Into<String>, tool: impl Into<String>, args: Value) -> Self {
        Self {
            id: id.into(),
            tool: tool.into(),
            args,
        }
    }
}

/// Builds one run's tape, event by event.
///
/// Configure the run with the consuming setters, then append events with the `&mut self`
/// methods, then [`finish`](Self::finish):
///
/// ```
/// use serde_json::json;
/// use tapedeck_testkit::{Call, TapeBuilder, message};
/// use tapedeck_trace::{Decision, StopReason, Usage};
///
/// let mut tape = TapeBuilder::new("01a1a0b0-be20-73b0-8668-000000000001", "2026-11-03T09:15:00Z")
///     .input("What is 2 + 2?")
///     .model("scripted", "calc");
/// tape.run_started(None, json!({ "max_steps": 30 }), json!({ "tools": { "allow": ["calc"] } }));
/// let mut history = vec![message::user("What is 2 + 2?")];
/// let call = Call::new("call_1", "calc", json!({ "expr": "2 + 2" }));
/// let reply = message::assistant_calls(&[&call]);
/// let usage = Usage { input_tokens: 20, output_tokens: 8 };
/// tape.llm_step(&history, &reply, usage, 300)
///     .tool_call(&call)
///     .policy_decision(&call, Decision::Allowed, "tools.allow", None)
///     .tool_result(&call, &Ok(json!(4)), 5, None);
/// history.push(reply);
/// history.push(message::tool(&call, &Ok(json!(4))));
/// let usage = Usage { input_tokens: 40, output_tokens: 3 };
/// tape.llm_step(&history, &message::assistant("4"), usage, 200);
/// let text = tape.finish(StopReason::Ok, Some("4"));
/// assert_eq!(text.lines().count(), 1 + 9); // the header, then 9 events
/// ```
pub struct TapeBuilder {
    run: Run,
    /// When the last event happened (the start, before the first event).
    now: Timestamp,
    tick_ms: u64,
    /// Extra time to let pass before the next event.
    waiting_ms: u64,
    provider: Option<String>,
    model: String,
    params: Value,
    tools: Option<Value>,
    /// US dollars per million input and output tokens.
    pricing: Option<(f64, f64)>,
    step: u64,
    seq: u64,
    /// Every blob's content, by hash.
    contents: HashMap<ContentHash, Value>,
    /// The blobs some earlier line already carries.
    written: HashSet<ContentHash>,
    lines: String,
    history: HistoryCompactor,
}

/// The model name a builder uses until [`TapeBuilder::model`] says otherwise.
const DEFAULT_MODEL: &str = "gpt-4.1-mini";

impl TapeBuilder {
    /// A run with a fixed id (a UUID) starting at a fixed RFC 3339 instant, from the `runtime`
    /// source. Events are 1 ms apart unless said otherwise.
    ///
    /// # Panics
    ///
    /// If `run_id` is not a UUID or `started_at` not an RFC 3339 timestamp: both are literals
    /// in a test.
    pub fn new(run_id: &str, started_at: &str) -> Self {
        let id: RunId = run_id.parse().expect("the run id is a UUID");
        let started_at: Timestamp = started_at
            .parse()
            .expect("the start time is an RFC 3339 timestamp");
        let mut run = Run::new(Source::Runtime);
        run.id = id;
        run.started_at = started_at;
        Self {
            run,
            now: started_at,
            tick_ms: 1,
            waiting_ms: 0,
            provider: Some("openai".to_owned()),
            model: DEFAULT_MODEL.to_owned(),
            params: Value::Null,
            tools: None,
            pricing: None,
            step: 0,
            seq: 0,
            contents: HashMap::new(),
            written: HashSet::new(),
            lines: String::new(),
            history: HistoryCompactor::default(),
        }
    }

    /// Where the run's events were born (default `runtime`).
    pub fn source(mut self, source: Source) -> Self {
        self.run.source = source;
        self
    }

    /// The golden suite the run belongs to.
    pub fn suite(mut self, suite: &str) -> Self {
        self.run.suite = Some(suite.to_owned());
        self
    }

    /// The task the run ran.
    pub fn task(mut self, task: &str) -> Self {
        self.run.task = Some(task.to_owned());
        self
    }

    /// The run's input (also written in `run_started`).
    pub fn input(mut self, input: &str) -> Self {
        self.run.input = Some(input.to_owned());
        self
    }

    /// The agent version: its name and fingerprint.
    pub fn agent(mut self, name: &str, fingerprint: &str) -> Self {
        self.run.agent = Some(tapedeck_trace::AgentInfo {
            name: name.to_owned(),
            fingerprint: fingerprint.to_owned(),
        });
        self
    }

    /// Adds a `key=value` label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.run.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The model every step calls (default `openai` / `gpt-4.1-mini`).
    pub fn model(mut self, provider: &str, name: &str) -> Self {
        self.provider = Some(provider.to_owned());
        self.model = name.to_owned();
        self
    }

    /// The sampling parameters every request carries.
    pub fn params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }

    /// The tool schemas offered to the model on every step (one blob).
    pub fn tools(mut self, tools: Value) -> Self {
        self.tools = Some(tools);
        self
    }

    /// Prices the model in US dollars per million input and output tokens, so every step with
    /// usage gets a cost. Without it, costs are unknown (absent), as for an unpriced model.
    pub fn pricing(mut self, input_per_mtok: f64, output_per_mtok: f64) -> Self {
        self.pricing = Some((input_per_mtok, output_per_mtok));
        self
    }

    /// The default time between two events, in milliseconds (default 1).
    pub fn tick_ms(mut self, ms: u64) -> Self {
        self.tick_ms = ms;
        self
    }

    /// Lets `ms` more milliseconds pass before the next event (thinking, a slow gateway).
    pub fn wait_ms(&mut self, ms: u64) -> &mut Self {
        self.waiting_ms += ms;
        self
    }

    /// The current step: how many model requests have been made.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The totals over the events so far.
    pub fn totals(&self) -> &Totals {
        &self.run.totals
    }

    /// Registers a JSON value as a blob and returns its hash. Its content is written on the
    /// first event that refers to it; registering it again changes nothing.
    ///
    /// # Panics
    ///
    /// If the value has no canonical form (a number RFC 8785 cannot write).
    pub fn blob(&mut self, value: &Value) -> ContentHash {
        let (hash, _) = hash_value(value).expect("a JSON value has a canonical form");
        self.contents.entry(hash).or_insert_with(|| value.clone());
        hash
    }

    /// `run_started`, at the run's start: the input, the effective agent config (a blob), the
    /// budgets and the tool policy in force.
    pub fn run_started(
        &mut self,
        agent_config: Option<&Value>,
        budgets: Value,
        policy: Value,
    ) -> &mut Self {
        let agent_config = agent_config.map(|c| self.blob(c));
        let data = EventData::RunStarted(RunStarted {
            input: self.run.input.clone(),
            agent_config,
            budgets,
            policy,
        });
        self.event(data, 0)
    }

    /// One model call: `llm_request` sending `messages` (each message its own blob, so history
    /// resent on a later step refers to the blobs already written), then, `latency_ms` later,
    /// `llm_response` with `reply`.
    ///
    /// The request hash is the hash of the canonical `{model, messages, tools}` (messages and
    /// tool schemas as values, `tools` absent when none are offered). The response's tool calls
    /// are read from `reply`'s `tool_calls` (`id`, `name`); its finish reason is `tool_calls`
    /// when there are any, else `stop`; its cost comes from [`pricing`](Self::pricing), rounded to
    /// 1e-12 USD.
    pub fn llm_step(
        &mut self,
        messages: &[Value],
        reply: &Value,
        usage: impl Into<Option<Usage>>,
        latency_ms: u64,
    ) -> &mut Self {
        self.step += 1;
        let refs: Vec<ContentHash> = messages.iter().map(|m| self.blob(m)).collect();
        let tools = self.tools.clone();
        let tools_ref = tools.as_ref().map(|t| self.blob(t));
        let mut request = json!({ "model": self.model, "messages": messages });
        if let Some(tools) = tools {
            request["tools"] = tools;
        }
        let (request_hash, _) = hash_json(&request).expect("a request has a canonical form");
        let data = EventData::LlmRequest(LlmRequest {
            step: self.step,
            provider: self.provider.clone(),
            model: self.model.clone(),
            params: self.params.clone(),
            extends: None,
            messages: refs,
            tools: tools_ref,
            request_hash,
        });
        self.event(data, self.tick_ms);

        let tool_calls: Vec<ToolCallSummary> = reply
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| ToolCallSummary {
                id: text_field(c, "id"),
                name: text_field(c, "name"),
            })
            .collect();
        let finish_reason = if tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        let usage = usage.into();
        let cost_usd = match (self.pricing, usage) {
            (Some((input, output)), Some(u)) => {
                let micro_usd = u.input_tokens as f64 * input + u.output_tokens as f64 * output;
                // Rounded to 1e-12 USD, so the tape says 0.0002096 and not 0.00020960000000000003.
                Some((micro_usd * 1e6).round() / 1e12)
            }
            _ => None,
        };
        let message = self.blob(reply);
        let data = EventData::LlmResponse(LlmResponse {
            step: self.step,
            message,
            tool_calls,
            finish_reason: Some(finish_reason.to_owned()),
            usage,
            cost_usd,
            latency_ms,
            streamed: false,
            truncated: false,
        });
        self.event(data, latency_ms)
    }

    /// `tool_call` for `call`, in the current step (args as a blob; `args_hash` is its hash).
    pub fn tool_call(&mut self, call: &Call) -> &mut Self {
        let args = self.blob(&call.args);
        let data = EventData::ToolCall(ToolCall {
            step: self.step,
            call_id: call.id.clone(),
            tool: call.tool.clone(),
            args,
            args_hash: args,
            idempotency_key: None,
        });
        self.event(data, self.tick_ms)
    }

    /// `policy_decision` about `call`, made by `rule`.
    pub fn policy_decision(
        &mut self,
        call: &Call,
        decision: Decision,
        rule: &str,
        detail: Option<&str>,
    ) -> &mut Self {
        let data = EventData::PolicyDecision(PolicyDecision {
            call_id: Some(call.id.clone()),
            tool: Some(call.tool.clone()),
            decision,
            rule: rule.to_owned(),
            detail: detail.map(str::to_owned),
        });
        self.event(data, self.tick_ms)
    }

    /// `tool_result` for `call`, `latency_ms` after the event before: its output (a blob) or
    /// its error, origin `live`, and what the call cost (`None`: free).
    pub fn tool_result(
        &mut self,
        call: &Call,
        outcome: &Result<Value, String>,
        latency_ms: u64,
        cost_usd: Option<f64>,
    ) -> &mut Self {
        let (output, error) = match outcome {
            Ok(value) => (Some(self.blob(value)), None),
            Err(error) => (None, Some(error.clone())),
        };
        let data = EventData::ToolResult(ToolResult {
            call_id: call.id.clone(),
            tool: call.tool.clone(),
            output,
            error,
            latency_ms,
            validation: Validation::NotChecked,
            origin: Origin::Live,
            cost_usd,
        });
        self.event(data, latency_ms)
    }

    /// `budget_exceeded`: `budget` (limit `limit`) was found used up at `used`, by a call of
    /// `tool` if one hit it.
    pub fn budget_exceeded(
        &mut self,
        budget: BudgetKind,
        limit: f64,
        used: f64,
        tool: Option<&str>,
    ) -> &mut Self {
        let data = EventData::BudgetExceeded(BudgetExceeded {
            budget,
            limit,
            used,
            tool: tool.map(str::to_owned),
        });
        self.event(data, self.tick_ms)
    }

    /// Appends any event, `after_ms` after the event before (the first event is at the run's
    /// start). For kinds without a helper; blobs it refers to must be [registered](Self::blob).
    ///
    /// # Panics
    ///
    /// If the event refers to a blob that was never registered.
    pub fn event(&mut self, mut data: EventData, after_ms: u64) -> &mut Self {
        if let EventData::LlmRequest(request) = &mut data {
            // As the store's Recorder does: a request that resends the previous one's
            // messages lists only the new ones.
            self.history.compact(self.seq + 1, request);
        }
        let gap = if self.seq == 0 { 0 } else { after_ms };
        let gap = gap + std::mem::take(&mut self.waiting_ms);
        self.now = Timestamp::from_micros(self.now.as_micros() + micros(gap));
        self.seq += 1;
        self.run.totals.observe(&data);
        let mut blobs = BTreeMap::new();
        for hash in data.blob_refs() {
            if self.written.insert(hash) {
                let content = self.contents.get(&hash).unwrap_or_else(|| {
                    panic!("event {} refers to unregistered blob {hash}", self.seq)
                });
                blobs.insert(hash, content.clone());
            }
        }
        let line = TapeEvent {
            event: Event {
                seq: self.seq,
                at: self.now,
                data,
            },
            blobs,
        };
        self.lines
            .push_str(&tape::to_line(&line).expect("an event has a canonical form"));
        self
    }

    /// Ends the run: appends `run_finished` and returns the whole tape, its header carrying the
    /// run's outcome (status from the stop reason, answer, end time) and totals (latency from
    /// start to end).
    pub fn finish(mut self, stop_reason: StopReason, answer: Option<&str>) -> String {
        let status = RunStatus::for_stop_reason(&stop_reason);
        let answer = answer.map(str::to_owned);
        let data = EventData::RunFinished(RunFinished {
            status,
            stop_reason: stop_reason.clone(),
            answer: answer.clone(),
            error: None,
        });
        self.event(data, self.tick_ms);
        let mut run = self.run;
        run.status = status;
        run.stop_reason = Some(stop_reason);
        run.answer = answer;
        run.ended_at = Some(self.now);
        run.totals.latency_ms = Some(run.started_at.millis_until(self.now));
        let mut text = tape::to_line(&TapeHeader::new(run)).expect("a run has a canonical form");
        text.push_str(&self.lines);
        text
    }
}

fn micros(ms: u64) -> i64 {
    i64::try_from(ms).map_or(i64::MAX, |ms| ms.saturating_mul(1000))
}

/// A string field of a tool call in an assistant message (empty when missing, as a model that
/// sent a malformed call would leave it).
fn text_field(call: &Value, key: &str) -> String {
    call.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
