//! OTLP/JSON spans back into tapes, one a trace ([`otlp_to_tapes`]): ours exactly, another
//! producer's as well as they say.

use super::*;

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

/// A time in OTLP's unsigned nanoseconds (`fixed64`); one that is not, a negative one among
/// them, is the epoch, as export writes a time before it: an imported run exports as it was
/// read.
fn time(obj: &Value, camel: &str, snake: &str) -> Timestamp {
    let nanos = match field(obj, camel, snake) {
        Some(Value::String(s)) => s.parse::<u64>().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    };
    Timestamp::from_micros(i64::try_from(nanos / 1000).unwrap_or(i64::MAX))
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
pub(super) fn otlp_to_tapes(input: &mut dyn Read) -> Result<Vec<String>, StoreError> {
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
        let (hash, _) = hash_value(&value)?;
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
