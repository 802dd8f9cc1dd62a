//! A run as OTLP/JSON: the root span, one span per model and tool call, span events for the
//! rest ([`to_otlp`]).

use super::*;

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
        EventData::AgentIdentity(a) => {
            attrs.str("tapedeck.agent.fingerprint", &a.fingerprint);
            let models: Vec<&str> = a.models.iter().map(String::as_str).collect();
            attrs.strs("tapedeck.agent.models", &models);
            let tools: Vec<&str> = a.tools.keys().map(String::as_str).collect();
            attrs.strs("tapedeck.agent.tools", &tools);
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
pub(super) fn to_otlp(run: &Run, events: &[Event], blobs: &HashMap<ContentHash, Value>) -> Value {
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
