//! OpenTelemetry: a run as OTLP/JSON trace spans that follow the GenAI semantic conventions,
//! and such spans (ours or another producer's) back into runs.
//!
//! Export writes one trace per run. Its id is the run's UUID; span ids are event seqs. The root
//! span `invoke_agent <agent>` covers the run; each model call is a `chat <model>` span (request
//! to response), each tool call an `execute_tool <tool>` span (call to result). Everything else
//! (policy decisions, budgets, retries, the start and end of the run) is a span event named
//! `tapedeck.<kind>`. The `gen_ai.*` attributes carry what the conventions define (model,
//! usage, finish reasons, messages, tool arguments and results); `tapedeck.*` attributes carry
//! the rest (stop reason, cost, seqs, payloads), so a trace we wrote imports back to the same
//! events and blobs.
//!
//! Import groups spans by trace id, one run a trace. A trace of ours is rebuilt exactly; spans
//! of another producer become a best-effort run: chat spans are steps, tool spans tool calls,
//! and what the spans do not say (cost, usage) stays unknown. Each run then goes through
//! [`Store::import_tape`], so it is inserted all or nothing, and a run already present (same
//! id: ours keep theirs, others get one derived from the trace id) is skipped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};

use serde_json::{Map, Value, json};
use tapedeck_trace::tape::{self, TapeEvent, TapeHeader};
use tapedeck_trace::{
    AgentInfo, ContentHash, Event, EventData, HistoryCompactor, LlmRequest, LlmResponse, Origin,
    Run, RunFinished, RunId, RunStarted, RunStatus, Source, StopReason, Timestamp, ToolCall,
    ToolCallSummary, ToolResult, Totals, Usage, Validation, expand_messages, hash_json,
};

use crate::{ImportOutcome, Store, StoreError};

/// Span kind `INTERNAL` in OTLP.
const KIND_INTERNAL: u64 = 1;
/// Span kind `CLIENT` in OTLP.
const KIND_CLIENT: u64 = 3;
/// Status code `ERROR` in OTLP.
const STATUS_ERROR: u64 = 2;

impl Store {
    /// Writes a run as OTLP/JSON (one `TracesData` object on one line). Read in one
    /// transaction, like [`Store::export_tape`].
    pub fn export_otel(&self, id: &RunId, out: &mut dyn Write) -> Result<(), StoreError> {
        self.conn()
            .execute_batch("BEGIN")
            .map_err(|e| self.err(e))?;
        let result = self.otel_snapshot(id);
        let _ = self.conn().execute_batch("COMMIT");
        let doc = result?;
        serde_json::to_writer(&mut *out, &doc).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(())
    }

    fn otel_snapshot(&self, id: &RunId) -> Result<Value, StoreError> {
        let run = self.run(id)?;
        let events = self.events(id)?;
        let mut blobs = HashMap::new();
        for event in &events {
            for hash in event.data.blob_refs() {
                if let std::collections::hash_map::Entry::Vacant(slot) = blobs.entry(hash) {
                    slot.insert(self.blob(&hash, id)?);
                }
            }
        }
        Ok(to_otlp(&run, &events, &blobs))
    }

    /// Reads OTLP/JSON traces (one document, or several one after another as an OTLP file
    /// exporter writes them) into the store: one run per trace, each all or nothing. Every
    /// trace is converted before any is inserted, so a malformed file imports nothing.
    pub fn import_otel(&self, input: &mut dyn Read) -> Result<Vec<ImportOutcome>, StoreError> {
        let tapes = otlp_to_tapes(input)?;
        let mut outcomes = Vec::with_capacity(tapes.len());
        for text in tapes {
            outcomes.push(self.import_tape(&mut text.as_bytes())?);
        }
        Ok(outcomes)
    }
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("not importable OTLP/JSON: {}", message.into()),
    ))
}

// ----- export -----

/// Attributes of one span or span event, in OTLP/JSON form.
#[derive(Default)]
struct Attrs(Vec<Value>);

impl Attrs {
    fn put(&mut self, key: &str, value: Value) {
        self.0.push(json!({ "key": key, "value": value }));
    }
    fn str(&mut self, key: &str, v: &str) {
        self.put(key, json!({ "stringValue": v }));
    }
    fn opt_str(&mut self, key: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(key, v);
        }
    }
    fn int(&mut self, key: &str, v: u64) {
        self.put(key, json!({ "intValue": v.to_string() }));
    }
    fn double(&mut self, key: &str, v: f64) {
        if v.is_finite() {
            self.put(key, json!({ "doubleValue": v }));
        }
    }
    fn bool(&mut self, key: &str, v: bool) {
        self.put(key, json!({ "boolValue": v }));
    }
    fn strs(&mut self, key: &str, v: &[&str]) {
        let values: Vec<Value> = v.iter().map(|s| json!({ "stringValue": s })).collect();
        self.put(key, json!({ "arrayValue": { "values": values } }));
    }
    /// A JSON value as a string attribute (how the conventions carry messages and arguments).
    fn json(&mut self, key: &str, v: &Value) {
        self.str(key, &v.to_string());
    }
}

struct SpanOut {
    id: u64,
    root: bool,
    name: String,
    kind: u64,
    start: Timestamp,
    end: Timestamp,
    attrs: Attrs,
    events: Vec<Value>,
    error: Option<(String, String)>,
    blocked: Option<String>,
}

impl SpanOut {
    fn new(id: u64, name: String, kind: u64, at: Timestamp) -> Self {
        Self {
            id,
            root: false,
            name,
            kind,
            start: at,
            end: at,
            attrs: Attrs::default(),
            events: Vec::new(),
            error: None,
            blocked: None,
        }
    }
}

fn nanos(at: Timestamp) -> String {
    (i128::from(at.as_micros()) * 1000).max(0).to_string()
}

fn hex_id(id: u64) -> String {
    format!("{id:016x}")
}

fn snake<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A span event `tapedeck.<kind>` carrying the event's payload (and any blob it refers to), so
/// that import rebuilds it exactly, plus readable attributes for people.
fn span_event(event: &Event, blobs: &HashMap<ContentHash, Value>) -> Value {
    let mut attrs = Attrs::default();
    attrs.int("tapedeck.seq", event.seq);
    match &event.data {
        EventData::PolicyDecision(d) => {
            attrs.str("tapedeck.decision", &snake(&d.decision));
            attrs.str("tapedeck.rule", &d.rule);
            attrs.opt_str("gen_ai.tool.name", d.tool.as_deref());
            attrs.opt_str("gen_ai.tool.call.id", d.call_id.as_deref());
            attrs.opt_str("tapedeck.detail", d.detail.as_deref());
        }
        EventData::BudgetExceeded(b) => {
            attrs.str("tapedeck.budget", &snake(&b.budget));
            attrs.double("tapedeck.limit", b.limit);
            attrs.double("tapedeck.used", b.used);
            attrs.opt_str("gen_ai.tool.name", b.tool.as_deref());
        }
        EventData::RunFinished(f) => {
            attrs.str("tapedeck.stop_reason", &f.stop_reason.to_string());
        }
        _ => {}
    }
    attrs.json("tapedeck.event.data", &event.data.payload());
    let refs = event.data.blob_refs();
    if !refs.is_empty() {
        let map: Map<String, Value> = refs
            .iter()
            .map(|h| (h.to_string(), blobs.get(h).cloned().unwrap_or(Value::Null)))
            .collect();
        attrs.json("tapedeck.blobs", &Value::Object(map));
    }
    json!({
        "timeUnixNano": nanos(event.at),
        "name": format!("tapedeck.{}", event.data.kind()),
        "attributes": attrs.0,
    })
}

/// The OTLP/JSON `TracesData` of one run.
fn to_otlp(run: &Run, events: &[Event], blobs: &HashMap<ContentHash, Value>) -> Value {
    let blob = |h: &ContentHash| blobs.get(h).cloned().unwrap_or(Value::Null);
    let full = expand_messages(events);
    let root_id = events
        .iter()
        .find(|e| matches!(e.data, EventData::RunStarted(_)))
        .map_or(u64::MAX, |e| e.seq);
    let agent_name = run.agent.as_ref().map(|a| a.name.as_str());
    let mut root = SpanOut::new(
        root_id,
        agent_name.map_or("invoke_agent".to_owned(), |n| format!("invoke_agent {n}")),
        KIND_INTERNAL,
        run.started_at,
    );
    root.root = true;
    root.end = run
        .ended_at
        .or_else(|| events.last().map(|e| e.at))
        .unwrap_or(run.started_at)
        .max(run.started_at);

    let mut spans: Vec<SpanOut> = Vec::new();
    let mut chat_by_step: HashMap<u64, usize> = HashMap::new();
    let mut tool_by_call: HashMap<String, usize> = HashMap::new();
    let mut provider: Option<String> = None;
    for event in events {
        match &event.data {
            EventData::LlmRequest(r) => {
                let mut span = SpanOut::new(
                    event.seq,
                    format!("chat {}", r.model),
                    KIND_CLIENT,
                    event.at,
                );
                let a = &mut span.attrs;
                a.str("gen_ai.operation.name", "chat");
                if let Some(p) = &r.provider {
                    a.str("gen_ai.provider.name", p);
                    provider.get_or_insert_with(|| p.clone());
                }
                a.str("gen_ai.request.model", &r.model);
                if let Some(t) = r.params.get("temperature").and_then(Value::as_f64) {
                    a.double("gen_ai.request.temperature", t);
                }
                if let Some(m) = ["max_tokens", "max_output_tokens"]
                    .iter()
                    .find_map(|k| r.params.get(*k).and_then(Value::as_u64))
                {
                    a.int("gen_ai.request.max_tokens", m);
                }
                if !r.params.is_null() {
                    a.json("tapedeck.request.params", &r.params);
                }
                let messages: Vec<Value> = full
                    .get(&event.seq)
                    .map(|m| m.iter().map(blob).collect())
                    .unwrap_or_default();
                a.json("gen_ai.input.messages", &Value::Array(messages));
                if let Some(t) = &r.tools {
                    a.json("gen_ai.tool.definitions", &blob(t));
                }
                a.int("tapedeck.step", r.step);
                a.str("tapedeck.request_hash", &r.request_hash.to_string());
                a.int("tapedeck.seq.request", event.seq);
                chat_by_step.insert(r.step, spans.len());
                spans.push(span);
            }
            EventData::LlmResponse(r) if chat_by_step.contains_key(&r.step) => {
                let span = &mut spans[chat_by_step.remove(&r.step).unwrap_or_default()];
                span.end = event.at;
                let a = &mut span.attrs;
                a.json("gen_ai.output.messages", &json!([blob(&r.message)]));
                if let Some(f) = &r.finish_reason {
                    a.strs("gen_ai.response.finish_reasons", &[f]);
                }
                if let Some(u) = r.usage {
                    a.int("gen_ai.usage.input_tokens", u.input_tokens);
                    a.int("gen_ai.usage.output_tokens", u.output_tokens);
                }
                if let Some(c) = r.cost_usd {
                    a.double("tapedeck.cost_usd", c);
                }
                if !r.tool_calls.is_empty() {
                    let calls = serde_json::to_value(&r.tool_calls).unwrap_or_default();
                    a.json("tapedeck.tool_calls", &calls);
                }
                a.int("tapedeck.latency_ms", r.latency_ms);
                a.bool("tapedeck.streamed", r.streamed);
                a.bool("tapedeck.truncated", r.truncated);
                a.int("tapedeck.seq.response", event.seq);
            }
            EventData::ToolCall(c) => {
                let mut span = SpanOut::new(
                    event.seq,
                    format!("execute_tool {}", c.tool),
                    KIND_INTERNAL,
                    event.at,
                );
                let a = &mut span.attrs;
                a.str("gen_ai.operation.name", "execute_tool");
                a.str("gen_ai.tool.name", &c.tool);
                a.str("gen_ai.tool.call.id", &c.call_id);
                a.json("gen_ai.tool.call.arguments", &blob(&c.args));
                a.int("tapedeck.step", c.step);
                a.opt_str("tapedeck.idempotency_key", c.idempotency_key.as_deref());
                a.int("tapedeck.seq.call", event.seq);
                tool_by_call.insert(c.call_id.clone(), spans.len());
                spans.push(span);
            }
            EventData::ToolResult(r) if tool_by_call.contains_key(&r.call_id) => {
                let span = &mut spans[tool_by_call.remove(&r.call_id).unwrap_or_default()];
                span.end = event.at;
                let a = &mut span.attrs;
                if let Some(o) = &r.output {
                    a.json("gen_ai.tool.call.result", &blob(o));
                }
                if let Some(e) = &r.error {
                    a.str("tapedeck.tool.error", e);
                    span.error = Some(("tool_error".to_owned(), e.clone()));
                }
                a.int("tapedeck.latency_ms", r.latency_ms);
                if r.validation != Validation::NotChecked {
                    let v = serde_json::to_value(&r.validation).unwrap_or_default();
                    a.json("tapedeck.validation", &v);
                }
                a.str("tapedeck.origin", &snake(&r.origin));
                if let Some(c) = r.cost_usd {
                    a.double("tapedeck.cost_usd", c);
                }
                a.int("tapedeck.seq.result", event.seq);
            }
            EventData::PolicyDecision(d) => {
                let on = d.call_id.as_ref().and_then(|c| {
                    tool_by_call.get(c).copied().or_else(|| {
                        spans.iter().rposition(|s| {
                            s.name.starts_with("execute_tool ")
                                && s.attrs.0.iter().any(|a| {
                                    a["key"] == "gen_ai.tool.call.id"
                                        && a["value"]["stringValue"] == c.as_str()
                                })
                        })
                    })
                });
                let item = span_event(event, blobs);
                match on {
                    Some(i) => {
                        use tapedeck_trace::Decision::*;
                        if matches!(d.decision, Denied | Rejected | KillSwitch | Degraded) {
                            spans[i].blocked = Some(snake(&d.decision));
                        }
                        spans[i].events.push(item);
                    }
                    None => root.events.push(item),
                }
            }
            _ => root.events.push(span_event(event, blobs)),
        }
    }

    let a = &mut root.attrs;
    a.str("gen_ai.operation.name", "invoke_agent");
    a.opt_str("gen_ai.agent.name", agent_name);
    a.opt_str("gen_ai.provider.name", provider.as_deref());
    a.str("tapedeck.run.id", &run.id.to_string());
    a.str("tapedeck.source", run.source.as_str());
    a.str("tapedeck.status", &run.status.to_string());
    if let Some(r) = &run.stop_reason {
        a.str("tapedeck.stop_reason", &r.to_string());
    }
    if let Some(c) = run.totals.cost_usd {
        a.double("tapedeck.cost_usd", c);
    }
    if let Some(l) = run.totals.latency_ms {
        a.int("tapedeck.latency_ms", l);
    }
    if let Some(agent) = &run.agent {
        a.str("tapedeck.agent.fingerprint", &agent.fingerprint);
    }
    a.opt_str("tapedeck.suite", run.suite.as_deref());
    a.opt_str("tapedeck.task", run.task.as_deref());
    a.opt_str("tapedeck.input", run.input.as_deref());
    a.opt_str("tapedeck.answer", run.answer.as_deref());
    a.opt_str("tapedeck.error", run.error.as_deref());
    a.opt_str("tapedeck.mode", run.mode.as_deref());
    if let Some(p) = &run.parent {
        a.str("tapedeck.parent", &p.to_string());
    }
    a.str("tapedeck.started_at", &run.started_at.to_string());
    if let Some(e) = &run.ended_at {
        a.str("tapedeck.ended_at", &e.to_string());
    }
    for (k, v) in &run.labels {
        a.str(&format!("tapedeck.label.{k}"), v);
    }
    if run.status == RunStatus::Error {
        let kind = run
            .stop_reason
            .as_ref()
            .map_or("error".to_owned(), ToString::to_string);
        root.error = Some((kind, run.error.clone().unwrap_or_default()));
    }

    let trace_id = run.id.to_string().replace('-', "");
    let root_hex = hex_id(root.id);
    let all: Vec<Value> = std::iter::once(root)
        .chain(spans)
        .map(|mut s| {
            if s.error.is_none()
                && let Some(b) = s.blocked.take()
            {
                s.attrs.str("error.type", &b);
            }
            let mut span = json!({
                "traceId": trace_id,
                "spanId": hex_id(s.id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
            });
            if !s.root {
                span["parentSpanId"] = json!(root_hex);
            }
            if let Some((kind, message)) = s.error {
                s.attrs.str("error.type", &kind);
                span["status"] = json!({ "code": STATUS_ERROR, "message": message });
            }
            span["attributes"] = Value::Array(s.attrs.0);
            if !s.events.is_empty() {
                span["events"] = Value::Array(s.events);
            }
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": "tapedeck" } },
            ] },
            "scopeSpans": [{
                "scope": { "name": "tapedeck", "version": env!("CARGO_PKG_VERSION") },
                "spans": all,
            }],
        }],
    })
}

// ----- import -----

struct EventIn {
    name: String,
    at: Timestamp,
    attrs: HashMap<String, Value>,
}

struct SpanIn {
    id: String,
    parent: Option<String>,
    name: String,
    start: Timestamp,
    end: Timestamp,
    attrs: HashMap<String, Value>,
    events: Vec<EventIn>,
    error: Option<String>,
}

fn field<'a>(obj: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel).or_else(|| obj.get(snake))
}

fn list<'a>(obj: &'a Value, camel: &str, snake: &str) -> &'a [Value] {
    field(obj, camel, snake)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// An OTLP `AnyValue` as plain JSON.
fn any_value(v: &Value) -> Value {
    if let Some(s) = field(v, "stringValue", "string_value") {
        return s.clone();
    }
    if let Some(i) = field(v, "intValue", "int_value") {
        return match i {
            Value::String(s) => s.parse::<i64>().map_or(i.clone(), Value::from),
            other => other.clone(),
        };
    }
    if let Some(d) = field(v, "doubleValue", "double_value") {
        return d.clone();
    }
    if let Some(b) = field(v, "boolValue", "bool_value") {
        return b.clone();
    }
    if let Some(a) = field(v, "arrayValue", "array_value") {
        return Value::Array(list(a, "values", "values").iter().map(any_value).collect());
    }
    if let Some(kv) = field(v, "kvlistValue", "kvlist_value") {
        return Value::Object(
            attributes(list(kv, "values", "values"))
                .into_iter()
                .collect(),
        );
    }
    if let Some(b) = field(v, "bytesValue", "bytes_value") {
        return b.clone();
    }
    Value::Null
}

fn attributes(items: &[Value]) -> HashMap<String, Value> {
    items
        .iter()
        .filter_map(|kv| {
            let key = kv.get("key")?.as_str()?.to_owned();
            Some((key, kv.get("value").map(any_value).unwrap_or(Value::Null)))
        })
        .collect()
}

fn time(obj: &Value, camel: &str, snake: &str) -> Timestamp {
    let nanos = match field(obj, camel, snake) {
        Some(Value::String(s)) => s.parse::<i128>().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().map_or(0, i128::from),
        _ => 0,
    };
    Timestamp::from_micros(i64::try_from(nanos / 1000).unwrap_or(0))
}

fn get_str<'a>(attrs: &'a HashMap<String, Value>, key: &str) -> Option<&'a str> {
    attrs.get(key).and_then(Value::as_str)
}

fn get_u64(attrs: &HashMap<String, Value>, key: &str) -> Option<u64> {
    match attrs.get(key)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn get_f64(attrs: &HashMap<String, Value>, key: &str) -> Option<f64> {
    match attrs.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn get_bool(attrs: &HashMap<String, Value>, key: &str) -> bool {
    matches!(attrs.get(key), Some(Value::Bool(true)))
}

/// A JSON-valued attribute: a string holding JSON is parsed (a string that is not JSON stays
/// a string); anything else is taken as it is.
fn get_json(attrs: &HashMap<String, Value>, key: &str) -> Option<Value> {
    match attrs.get(key)? {
        Value::String(s) => {
            Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())))
        }
        Value::Null => None,
        other => Some(other.clone()),
    }
}

fn parse_span(span: &Value) -> SpanIn {
    let text = |c: &str, s: &str| {
        field(span, c, s)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let status = field(span, "status", "status");
    let code = status
        .and_then(|s| s.get("code"))
        .map(|c| match c {
            Value::Number(n) => n.as_u64() == Some(STATUS_ERROR),
            Value::String(s) => s == "STATUS_CODE_ERROR" || s == "2",
            _ => false,
        })
        .unwrap_or(false);
    let attrs = attributes(list(span, "attributes", "attributes"));
    let error = if code {
        Some(
            status
                .and_then(|s| s.get("message"))
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .or_else(|| get_str(&attrs, "error.type"))
                .unwrap_or("error")
                .to_owned(),
        )
    } else {
        None
    };
    SpanIn {
        id: text("spanId", "span_id"),
        parent: Some(text("parentSpanId", "parent_span_id")).filter(|p| !p.is_empty()),
        name: text("name", "name"),
        start: time(span, "startTimeUnixNano", "start_time_unix_nano"),
        end: time(span, "endTimeUnixNano", "end_time_unix_nano"),
        events: list(span, "events", "events")
            .iter()
            .map(|e| EventIn {
                name: e
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                at: time(e, "timeUnixNano", "time_unix_nano"),
                attrs: attributes(list(e, "attributes", "attributes")),
            })
            .collect(),
        attrs,
        error,
    }
}

impl SpanIn {
    fn operation(&self) -> &str {
        get_str(&self.attrs, "gen_ai.operation.name")
            .unwrap_or_else(|| self.name.split(' ').next().unwrap_or_default())
    }
    fn subject(&self) -> Option<&str> {
        self.name
            .split_once(' ')
            .map(|(_, s)| s)
            .filter(|s| !s.is_empty())
    }
    fn is_chat(&self) -> bool {
        matches!(
            self.operation(),
            "chat" | "text_completion" | "generate_content"
        )
    }
    fn is_tool(&self) -> bool {
        self.operation() == "execute_tool"
    }
    fn is_agent(&self) -> bool {
        self.operation() == "invoke_agent"
    }
}

/// Reads every OTLP/JSON document in `input` and converts each trace to a tape (its text).
fn otlp_to_tapes(input: &mut dyn Read) -> Result<Vec<String>, StoreError> {
    let mut traces: Vec<(String, Vec<SpanIn>)> = Vec::new();
    let mut documents = 0;
    for doc in serde_json::Deserializer::from_reader(input).into_iter::<Value>() {
        let doc = doc.map_err(|e| invalid(format!("not JSON: {e}")))?;
        let resource_spans = field(&doc, "resourceSpans", "resource_spans")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("a document has no `resourceSpans` array"))?;
        documents += 1;
        for rs in resource_spans {
            for ss in list(rs, "scopeSpans", "scope_spans") {
                for span in list(ss, "spans", "spans") {
                    let trace_id = field(span, "traceId", "trace_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    let parsed = parse_span(span);
                    match traces.iter_mut().find(|(t, _)| *t == trace_id) {
                        Some((_, spans)) => spans.push(parsed),
                        None => traces.push((trace_id, vec![parsed])),
                    }
                }
            }
        }
    }
    if documents == 0 {
        return Err(invalid("the input is empty"));
    }
    let mut tapes = Vec::new();
    for (trace_id, spans) in traces {
        if let Some(tape) = trace_to_tape(&trace_id, spans)? {
            tapes.push(tape);
        }
    }
    if tapes.is_empty() {
        return Err(invalid(
            "no GenAI spans (invoke_agent, chat or execute_tool) found",
        ));
    }
    Ok(tapes)
}

/// An event to be, before seqs are assigned.
struct Pending {
    seq: Option<u64>,
    at: Timestamp,
    data: EventData,
}

/// Blob contents by hash, for the events of one run.
#[derive(Default)]
struct Blobs(HashMap<ContentHash, Value>);

impl Blobs {
    fn add(&mut self, value: Value) -> Result<ContentHash, StoreError> {
        let (hash, _) = hash_json(&value)?;
        self.0.entry(hash).or_insert(value);
        Ok(hash)
    }
    /// The `tapedeck.blobs` attribute of a span event of ours.
    fn add_map(&mut self, attrs: &HashMap<String, Value>) -> Result<(), StoreError> {
        if let Some(Value::Object(map)) = get_json(attrs, "tapedeck.blobs") {
            for (_, value) in map {
                self.add(value)?;
            }
        }
        Ok(())
    }
}

/// A run id for a trace of another producer: a UUIDv7 whose time is the run's start and whose
/// random bits come from the trace id, so that importing the same trace twice gives one run.
fn derived_id(trace_id: &str, started: Timestamp) -> Result<RunId, StoreError> {
    let mut digits: Vec<u8> = trace_id
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| (b as char).to_digit(16).unwrap_or(0) as u8)
        .collect();
    if digits.len() < 20 {
        let hash = tapedeck_trace::hash_bytes(trace_id.as_bytes()).to_string();
        digits = hash
            .bytes()
            .skip("sha256:".len())
            .map(|b| (b as char).to_digit(16).unwrap_or(0) as u8)
            .collect();
    }
    let ms = u64::try_from(started.as_micros() / 1000).unwrap_or(0) & 0xffff_ffff_ffff;
    let mut hex = format!("{ms:012x}7");
    let tail = &digits[digits.len() - 19..];
    for (i, d) in tail.iter().enumerate() {
        let d = if i == 3 { 0x8 | (d & 0x3) } else { *d };
        hex.push(char::from_digit(u32::from(d), 16).unwrap_or('0'));
    }
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    Ok(uuid.parse()?)
}

/// One trace as the text of a tape; `None` for a trace with no GenAI span.
fn trace_to_tape(trace_id: &str, mut spans: Vec<SpanIn>) -> Result<Option<String>, StoreError> {
    spans.sort_by_key(|s| s.start);
    let ids: HashSet<String> = spans.iter().map(|s| s.id.clone()).collect();
    let root_at = spans
        .iter()
        .position(|s| s.attrs.contains_key("tapedeck.run.id"))
        .or_else(|| {
            spans
                .iter()
                .position(|s| s.is_agent() && s.parent.as_ref().is_none_or(|p| !ids.contains(p)))
        })
        .or_else(|| spans.iter().position(SpanIn::is_agent));
    let root = root_at.map(|i| spans.remove(i));
    let ours = root
        .as_ref()
        .is_some_and(|r| r.attrs.contains_key("tapedeck.run.id"));
    if root.is_none() && !spans.iter().any(|s| s.is_chat() || s.is_tool()) {
        return Ok(None);
    }
    let no_attrs = HashMap::new();
    let root_attrs = root.as_ref().map_or(&no_attrs, |r| &r.attrs);
    let started = root
        .as_ref()
        .map(|r| r.start)
        .into_iter()
        .chain(spans.iter().map(|s| s.start))
        .min()
        .unwrap_or(Timestamp::from_micros(0));
    let started = get_str(root_attrs, "tapedeck.started_at")
        .and_then(|s| s.parse().ok())
        .unwrap_or(started);
    let ended = root
        .as_ref()
        .map(|r| r.end)
        .into_iter()
        .chain(spans.iter().map(|s| s.end))
        .max()
        .unwrap_or(started)
        .max(started);

    let mut blobs = Blobs::default();
    let mut pending: Vec<Pending> = Vec::new();
    // Span events of ours: everything that is not a model or tool call.
    for span in root.iter().chain(&spans) {
        for e in &span.events {
            let Some(kind) = e.name.strip_prefix("tapedeck.") else {
                continue;
            };
            let Some(payload) = get_json(&e.attrs, "tapedeck.event.data") else {
                continue;
            };
            let data = EventData::from_parts(kind, payload)
                .map_err(|err| invalid(format!("span event `{}`: {err}", e.name)))?;
            blobs.add_map(&e.attrs)?;
            pending.push(Pending {
                seq: get_u64(&e.attrs, "tapedeck.seq"),
                at: e.at,
                data,
            });
        }
    }
    if !ours {
        pending.push(Pending {
            seq: None,
            at: started,
            data: EventData::RunStarted(RunStarted::default()),
        });
    }

    let mut step = 0u64;
    let mut last_answer: Option<String> = None;
    for span in &spans {
        let a = &span.attrs;
        if span.is_chat() {
            step += 1;
            let step = get_u64(a, "tapedeck.step").unwrap_or(step);
            let model = get_str(a, "gen_ai.request.model")
                .or_else(|| get_str(a, "gen_ai.response.model"))
                .or_else(|| span.subject())
                .unwrap_or("unknown")
                .to_owned();
            if !ours || a.contains_key("tapedeck.seq.request") {
                let messages = match get_json(a, "gen_ai.input.messages") {
                    Some(Value::Array(items)) => items,
                    Some(other) => vec![other],
                    None => Vec::new(),
                };
                let request_hash = match get_str(a, "tapedeck.request_hash")
                    .and_then(|h| h.parse::<ContentHash>().ok())
                {
                    Some(h) => h,
                    None => hash_json(&json!({ "model": model, "messages": messages }))?.0,
                };
                let messages = messages
                    .into_iter()
                    .map(|m| blobs.add(m))
                    .collect::<Result<Vec<_>, _>>()?;
                let tools = get_json(a, "gen_ai.tool.definitions")
                    .map(|t| blobs.add(t))
                    .transpose()?;
                let params = get_json(a, "tapedeck.request.params").unwrap_or_else(|| {
                    let mut p = Map::new();
                    for (key, name) in [
                        ("gen_ai.request.temperature", "temperature"),
                        ("gen_ai.request.max_tokens", "max_tokens"),
                        ("gen_ai.request.top_p", "top_p"),
                    ] {
                        if let Some(v) = a.get(key) {
                            p.insert(name.to_owned(), v.clone());
                        }
                    }
                    if p.is_empty() {
                        Value::Null
                    } else {
                        Value::Object(p)
                    }
                });
                pending.push(Pending {
                    seq: get_u64(a, "tapedeck.seq.request"),
                    at: span.start,
                    data: EventData::LlmRequest(LlmRequest {
                        step,
                        provider: get_str(a, "gen_ai.provider.name")
                            .or_else(|| get_str(a, "gen_ai.system"))
                            .map(str::to_owned),
                        model: model.clone(),
                        params,
                        extends: None,
                        messages,
                        tools,
                        request_hash,
                    }),
                });
            }
            if !ours || a.contains_key("tapedeck.seq.response") {
                let message = match get_json(a, "gen_ai.output.messages") {
                    Some(Value::Array(mut items)) if items.len() == 1 => items.remove(0),
                    Some(other) => other,
                    None => json!({ "role": "assistant" }),
                };
                if let Some(text) = message_text(&message) {
                    last_answer = Some(text);
                }
                let tool_calls = match get_json(a, "tapedeck.tool_calls") {
                    Some(v) => serde_json::from_value(v)
                        .map_err(|e| invalid(format!("tapedeck.tool_calls: {e}")))?,
                    None => tool_calls_of(&message),
                };
                let finish_reason = match a.get("gen_ai.response.finish_reasons") {
                    Some(Value::Array(items)) => items.first().and_then(Value::as_str),
                    Some(Value::String(s)) => Some(s.as_str()),
                    _ => None,
                }
                .map(str::to_owned);
                let usage = match (
                    get_u64(a, "gen_ai.usage.input_tokens"),
                    get_u64(a, "gen_ai.usage.output_tokens"),
                ) {
                    (Some(input_tokens), Some(output_tokens)) => Some(Usage {
                        input_tokens,
                        output_tokens,
                    }),
                    _ => None,
                };
                pending.push(Pending {
                    seq: get_u64(a, "tapedeck.seq.response"),
                    at: span.end,
                    data: EventData::LlmResponse(LlmResponse {
                        step,
                        message: blobs.add(message)?,
                        tool_calls,
                        finish_reason,
                        usage,
                        cost_usd: get_f64(a, "tapedeck.cost_usd"),
                        latency_ms: get_u64(a, "tapedeck.latency_ms")
                            .unwrap_or_else(|| span.start.millis_until(span.end)),
                        streamed: get_bool(a, "tapedeck.streamed"),
                        truncated: get_bool(a, "tapedeck.truncated"),
                    }),
                });
            }
        } else if span.is_tool() {
            let tool = get_str(a, "gen_ai.tool.name")
                .or_else(|| span.subject())
                .unwrap_or("unknown")
                .to_owned();
            let call_id =
                get_str(a, "gen_ai.tool.call.id").map_or_else(|| span.id.clone(), str::to_owned);
            let args = blobs.add(get_json(a, "gen_ai.tool.call.arguments").unwrap_or(json!({})))?;
            pending.push(Pending {
                seq: get_u64(a, "tapedeck.seq.call"),
                at: span.start,
                data: EventData::ToolCall(ToolCall {
                    step: get_u64(a, "tapedeck.step").unwrap_or(step.max(1)),
                    call_id: call_id.clone(),
                    tool: tool.clone(),
                    args,
                    args_hash: args,
                    idempotency_key: get_str(a, "tapedeck.idempotency_key").map(str::to_owned),
                }),
            });
            if !ours || a.contains_key("tapedeck.seq.result") {
                let error = match get_str(a, "tapedeck.tool.error") {
                    Some(e) => Some(e.to_owned()),
                    None if ours => None,
                    None => span.error.clone(),
                };
                let output = get_json(a, "gen_ai.tool.call.result")
                    .map(|o| blobs.add(o))
                    .transpose()?;
                let validation = match get_json(a, "tapedeck.validation") {
                    Some(v) => serde_json::from_value(v)
                        .map_err(|e| invalid(format!("tapedeck.validation: {e}")))?,
                    None => Validation::NotChecked,
                };
                let origin: Origin = get_str(a, "tapedeck.origin")
                    .and_then(|o| serde_json::from_value(Value::String(o.to_owned())).ok())
                    .unwrap_or_default();
                pending.push(Pending {
                    seq: get_u64(a, "tapedeck.seq.result"),
                    at: span.end,
                    data: EventData::ToolResult(ToolResult {
                        call_id,
                        tool,
                        output,
                        error,
                        latency_ms: get_u64(a, "tapedeck.latency_ms")
                            .unwrap_or_else(|| span.start.millis_until(span.end)),
                        validation,
                        origin,
                        cost_usd: get_f64(a, "tapedeck.cost_usd"),
                    }),
                });
            }
        }
    }

    let id = match get_str(root_attrs, "tapedeck.run.id") {
        Some(id) => id.parse()?,
        None => derived_id(trace_id, started)?,
    };
    let (status, stop_reason, answer, error) = if ours {
        let status = match get_str(root_attrs, "tapedeck.status") {
            Some(s) => s.parse()?,
            None => RunStatus::Incomplete,
        };
        let stop: Option<StopReason> = get_str(root_attrs, "tapedeck.stop_reason")
            .map(str::parse)
            .transpose()?;
        (
            status,
            stop,
            get_str(root_attrs, "tapedeck.answer").map(str::to_owned),
            get_str(root_attrs, "tapedeck.error").map(str::to_owned),
        )
    } else {
        let failed = match &root {
            Some(r) => r.error.clone(),
            None => spans
                .iter()
                .max_by_key(|s| s.end)
                .and_then(|s| s.error.clone()),
        };
        let stop = if failed.is_some() {
            StopReason::ModelError
        } else {
            StopReason::Ok
        };
        let status = RunStatus::for_stop_reason(&stop);
        let answer = if failed.is_none() { last_answer } else { None };
        pending.push(Pending {
            seq: None,
            at: ended,
            data: EventData::RunFinished(RunFinished {
                status,
                stop_reason: stop.clone(),
                answer: answer.clone(),
                error: failed.clone(),
            }),
        });
        (status, Some(stop), answer, failed)
    };

    // Order: by the seqs we wrote when every event has one, else by time (stable, so a
    // request comes before its response and a call before its result at equal times).
    if pending.iter().all(|p| p.seq.is_some()) {
        pending.sort_by_key(|p| p.seq);
    } else {
        pending.sort_by_key(|p| p.at);
    }

    let mut totals = Totals::default();
    let mut compactor = HistoryCompactor::default();
    let mut events = Vec::with_capacity(pending.len());
    for (i, p) in pending.into_iter().enumerate() {
        let seq = i as u64 + 1;
        let mut data = p.data;
        if let EventData::LlmRequest(request) = &mut data {
            compactor.compact(seq, request);
        }
        totals.observe(&data);
        events.push(Event {
            seq,
            at: p.at,
            data,
        });
    }
    totals.latency_ms = match get_u64(root_attrs, "tapedeck.latency_ms") {
        Some(l) if ours => Some(l),
        _ if ours && get_str(root_attrs, "tapedeck.ended_at").is_none() => None,
        _ => Some(started.millis_until(ended)),
    };

    let mut labels = BTreeMap::new();
    for (key, value) in root_attrs {
        if let (Some(k), Some(v)) = (key.strip_prefix("tapedeck.label."), value.as_str()) {
            labels.insert(k.to_owned(), v.to_owned());
        }
    }
    let agent = get_str(root_attrs, "gen_ai.agent.name")
        .or_else(|| root.as_ref().and_then(SpanIn::subject))
        .map(|name| AgentInfo {
            name: name.to_owned(),
            fingerprint: get_str(root_attrs, "tapedeck.agent.fingerprint")
                .or_else(|| get_str(root_attrs, "gen_ai.agent.id"))
                .unwrap_or("unknown")
                .to_owned(),
        });
    let ended_at = if ours {
        get_str(root_attrs, "tapedeck.ended_at")
            .map(str::parse)
            .transpose()?
    } else {
        Some(ended)
    };
    let text = |key: &str| get_str(root_attrs, key).map(str::to_owned);
    let run = Run {
        id,
        source: Source::Import,
        suite: text("tapedeck.suite"),
        task: text("tapedeck.task"),
        input: text("tapedeck.input"),
        agent,
        parent: get_str(root_attrs, "tapedeck.parent")
            .map(str::parse)
            .transpose()?,
        mode: text("tapedeck.mode"),
        started_at: started,
        ended_at,
        status,
        stop_reason,
        answer,
        error,
        totals,
        labels,
    };

    let mut out = tape::to_line(&TapeHeader::new(run))?;
    let mut written: HashSet<ContentHash> = HashSet::new();
    for event in events {
        let mut line = TapeEvent {
            blobs: Default::default(),
            event,
        };
        for hash in line.event.data.blob_refs() {
            if written.insert(hash) {
                let value = blobs.0.get(&hash).cloned().ok_or_else(|| {
                    invalid(format!(
                        "event {} refers to blob {hash}, which the spans do not carry",
                        line.event.seq
                    ))
                })?;
                line.blobs.insert(hash, value);
            }
        }
        out.push_str(&tape::to_line(&line)?);
    }
    Ok(Some(out))
}

/// The tool calls an output message asks for, in the OpenAI shape (`tool_calls`) or the
/// GenAI conventions' (`parts` of type `tool_call`).
fn tool_calls_of(message: &Value) -> Vec<ToolCallSummary> {
    let openai = message.get("tool_calls").and_then(Value::as_array);
    let parts = message.get("parts").and_then(Value::as_array);
    openai
        .into_iter()
        .flatten()
        .chain(
            parts
                .into_iter()
                .flatten()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("tool_call")),
        )
        .filter_map(|c| {
            let id = c.get("id")?.as_str()?.to_owned();
            let name = c
                .get("name")
                .or_else(|| c.get("function").and_then(|f| f.get("name")))?
                .as_str()?
                .to_owned();
            Some(ToolCallSummary { id, name })
        })
        .collect()
}

/// The text of a message: its `content` string, or its text `parts` (the GenAI conventions'
/// shape) joined.
fn message_text(message: &Value) -> Option<String> {
    if let Some(text) = message.get("content").and_then(Value::as_str) {
        return Some(text.to_owned());
    }
    let parts: Vec<&str> = message
        .get("parts")?
        .as_array()?
        .iter()
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|p| p.get("content").and_then(Value::as_str))
        .collect();
    (!parts.is_empty()).then(|| parts.concat())
}
