//! The OpenAI Chat Completions and Anthropic Messages wire formats, as far as the proxy models
//! them: which endpoint a request is, its normalized (matching) form, the messages and tool
//! results it carries, and the assistant message, tool calls, finish reason and usage of a
//! response, whole or assembled from a stream.
//!
//! What an upstream sends is bounded ([`MAX_INDEX`], [`MAX_TOOL_CALLS`],
//! [`MAX_RESPONSE_BYTES`]): a response past a bound is an [`OverLimit`], and the proxy stops
//! reading it into memory (the client still gets every byte).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::sse::SseEvent;

/// The highest tool-call or content-block index a streamed response may use: indexes are
/// positions, so a larger one is an upstream out of bounds, not a longer answer.
pub const MAX_INDEX: u64 = 1023;

/// The most tool calls one response may hold.
pub const MAX_TOOL_CALLS: usize = 256;

/// The largest response the proxy records (32 MiB): past it the bytes go on to the client but
/// are no longer kept.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// A response that broke one of the bounds on what an upstream sends.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverLimit {
    /// A streamed tool call's `index` is over [`MAX_INDEX`].
    #[error("tool-call index {0} is over the limit of {MAX_INDEX}")]
    ToolCallIndex(u64),
    /// A streamed content block's `index` is over [`MAX_INDEX`].
    #[error("content-block index {0} is over the limit of {MAX_INDEX}")]
    BlockIndex(u64),
    /// The response has more than [`MAX_TOOL_CALLS`] tool calls.
    #[error("the response has more than the limit of {MAX_TOOL_CALLS} tool calls")]
    ToolCalls,
    /// The response is over [`MAX_RESPONSE_BYTES`].
    #[error("the response is over the limit of {MAX_RESPONSE_BYTES} bytes")]
    Size,
}

/// The API an endpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI Chat Completions.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    Responses,
}

impl Provider {
    /// The modelled endpoint a path is, if any.
    pub fn of_path(path: &str) -> Option<Self> {
        match path.trim_end_matches('/') {
            "/v1/chat/completions" | "/chat/completions" => Some(Self::OpenAi),
            "/v1/messages" => Some(Self::Anthropic),
            "/v1/responses" | "/responses" => Some(Self::Responses),
            _ => None,
        }
    }

    /// `openai` or `anthropic`.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Responses => "openai",
        }
    }
}

/// Request fields that change between otherwise identical requests, left out of the
/// matching form.
pub const VOLATILE_FIELDS: [&str; 4] = ["stream_options", "user", "metadata", "service_tier"];

/// The matching form of a request: the path and the body without volatile fields.
pub fn normalize(path: &str, body: &Value) -> Value {
    let mut body = body.clone();
    if let Value::Object(map) = &mut body {
        for field in VOLATILE_FIELDS {
            map.remove(field);
        }
    }
    json!({ "endpoint": path.trim_end_matches('/'), "body": body })
}

/// The messages of a request, each its own value (Anthropic's `system` first, as a message).
pub fn request_messages(provider: Provider, body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    if provider == Provider::Anthropic
        && let Some(system) = body.get("system")
    {
        out.push(json!({"role": "system", "content": system}));
    }
    if provider == Provider::Responses {
        if let Some(system) = body.get("instructions") {
            out.push(json!({"role": "system", "content": system}));
        }
        match body.get("input") {
            Some(Value::String(text)) => out.push(json!({"role": "user", "content": text})),
            Some(Value::Array(items)) => out.extend(items.iter().cloned()),
            _ => {}
        }
        return out;
    }
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        out.extend(messages.iter().cloned());
    }
    out
}

/// The sampling parameters of a request: the body without model, messages, system, tools.
pub fn request_params(body: &Value) -> Value {
    let mut params = Map::new();
    if let Some(map) = body.as_object() {
        for (k, v) in map {
            if !matches!(
                k.as_str(),
                "model" | "messages" | "system" | "tools" | "input" | "instructions"
            ) {
                params.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(params)
}

/// A tool result a request carries: the call id, its content, whether it is an error.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutput {
    /// The call it answers.
    pub call_id: String,
    /// What the tool returned.
    pub content: Value,
    /// Anthropic's `is_error`.
    pub is_error: bool,
}

/// The tool results of a request (OpenAI `role: tool` messages, Anthropic `tool_result`
/// blocks), in order.
pub fn tool_outputs(provider: Provider, body: &Value) -> Vec<ToolOutput> {
    let mut out = Vec::new();
    if provider == Provider::Responses {
        let items = body.get("input").and_then(Value::as_array);
        for item in items.into_iter().flatten() {
            if item.get("type").and_then(Value::as_str) == Some("function_call_output")
                && let Some(id) = item.get("call_id").and_then(Value::as_str)
            {
                out.push(ToolOutput {
                    call_id: id.to_owned(),
                    content: item.get("output").cloned().unwrap_or(Value::Null),
                    is_error: false,
                });
            }
        }
        return out;
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return out;
    };
    for message in messages {
        match provider {
            Provider::OpenAi => {
                if message.get("role").and_then(Value::as_str) == Some("tool")
                    && let Some(id) = message.get("tool_call_id").and_then(Value::as_str)
                {
                    out.push(ToolOutput {
                        call_id: id.to_owned(),
                        content: message.get("content").cloned().unwrap_or(Value::Null),
                        is_error: false,
                    });
                }
            }
            Provider::Responses => {}
            Provider::Anthropic => {
                let blocks = message.get("content").and_then(Value::as_array);
                for block in blocks.into_iter().flatten() {
                    if block.get("type").and_then(Value::as_str) == Some("tool_result")
                        && let Some(id) = block.get("tool_use_id").and_then(Value::as_str)
                    {
                        out.push(ToolOutput {
                            call_id: id.to_owned(),
                            content: block.get("content").cloned().unwrap_or(Value::Null),
                            is_error: block.get("is_error").and_then(Value::as_bool) == Some(true),
                        });
                    }
                }
            }
        }
    }
    out
}

/// What the proxy records of a model response.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The response's own id, when it has one (upstream ids are not unique: identical requests
    /// can get identical ids).
    pub id: Option<String>,
    /// The model that answered, when the response says.
    pub model: Option<String>,
    /// The assistant message.
    pub message: Value,
    /// Tool calls: id, name, arguments.
    pub tool_calls: Vec<(String, String, Value)>,
    /// The finish reason as the API said it.
    pub finish_reason: Option<String>,
    /// Input and output tokens, when reported.
    pub usage: Option<(u64, u64)>,
    /// The text of the message.
    pub text: String,
}

/// `usage.input_tokens` and `usage.output_tokens`, as the Responses and Messages APIs name them.
fn input_output_tokens(body: &Value) -> Option<(u64, u64)> {
    let usage = body.get("usage")?;
    Some((
        usage.get("input_tokens")?.as_u64()?,
        usage.get("output_tokens")?.as_u64()?,
    ))
}

/// Reads a whole (non-streamed, or assembled) response body: `None` when it is not one, an
/// [`OverLimit`] when it holds more than [`MAX_TOOL_CALLS`] tool calls.
pub fn answer(provider: Provider, body: &Value) -> Option<Result<Answer, OverLimit>> {
    let answer = read_answer(provider, body)?;
    Some(if answer.tool_calls.len() > MAX_TOOL_CALLS {
        Err(OverLimit::ToolCalls)
    } else {
        Ok(answer)
    })
}

fn read_answer(provider: Provider, body: &Value) -> Option<Answer> {
    let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
    let id = body.get("id").and_then(Value::as_str).map(str::to_owned);
    match provider {
        Provider::Responses => {
            let output = body.get("output")?.as_array()?.clone();
            let mut text = String::new();
            let mut tool_calls = Vec::new();
            for item in &output {
                match item.get("type").and_then(Value::as_str) {
                    Some("message") => {
                        let parts = item.get("content").and_then(Value::as_array);
                        for part in parts.into_iter().flatten() {
                            if let Some(t) = part.get("text").and_then(Value::as_str) {
                                text.push_str(t);
                            }
                        }
                    }
                    Some("function_call") => {
                        let args = str_at(item, "arguments");
                        tool_calls.push((
                            str_at(item, "call_id"),
                            str_at(item, "name"),
                            serde_json::from_str(&args).unwrap_or(Value::String(args)),
                        ));
                    }
                    _ => {}
                }
            }
            // The Responses API has no finish reason: it is derived, in Chat Completions' words.
            let finish = match body.get("status").and_then(Value::as_str) {
                Some("completed") if !tool_calls.is_empty() => Some("tool_calls".to_owned()),
                Some("completed") => Some("stop".to_owned()),
                Some("incomplete") => Some(
                    match body
                        .pointer("/incomplete_details/reason")
                        .and_then(Value::as_str)
                    {
                        Some("max_output_tokens") => "length".to_owned(),
                        Some(other) => other.to_owned(),
                        None => "incomplete".to_owned(),
                    },
                ),
                Some(other) => Some(other.to_owned()),
                None => None,
            };
            let usage = input_output_tokens(body);
            Some(Answer {
                id,
                model,
                message: json!({"role": "assistant", "output": output}),
                tool_calls,
                finish_reason: finish,
                usage,
                text,
            })
        }
        Provider::OpenAi => {
            let choice = body.get("choices")?.as_array()?.first()?;
            let message = choice.get("message")?.clone();
            let text = match message.get("content") {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            let tool_calls = message
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|call| {
                    let f = call.get("function");
                    let args = f
                        .and_then(|f| f.get("arguments"))
                        .and_then(Value::as_str)
                        .map(|s| {
                            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
                        })
                        .unwrap_or(Value::Null);
                    (
                        str_at(call, "id"),
                        f.map(|f| str_at(f, "name")).unwrap_or_default(),
                        args,
                    )
                })
                .collect();
            let usage = body.get("usage").and_then(|u| {
                Some((
                    u.get("prompt_tokens")?.as_u64()?,
                    u.get("completion_tokens")?.as_u64()?,
                ))
            });
            Some(Answer {
                id,
                model,
                message,
                tool_calls,
                finish_reason: choice
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                usage,
                text,
            })
        }
        Provider::Anthropic => {
            let content = body.get("content")?.as_array()?.clone();
            let mut text = String::new();
            let mut tool_calls = Vec::new();
            for block in &content {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => text.push_str(block.get("text").and_then(Value::as_str)?),
                    Some("tool_use") => tool_calls.push((
                        str_at(block, "id"),
                        str_at(block, "name"),
                        block.get("input").cloned().unwrap_or(Value::Null),
                    )),
                    _ => {}
                }
            }
            let usage = input_output_tokens(body);
            Some(Answer {
                id,
                model,
                message: json!({"role": "assistant", "content": content}),
                tool_calls,
                finish_reason: body
                    .get("stop_reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                usage,
                text,
            })
        }
    }
}

fn str_at(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Assembles a streamed response into the body the API would have sent unstreamed.
///
/// Indexes are trusted only up to [`MAX_INDEX`] and tool calls counted up to
/// [`MAX_TOOL_CALLS`]: past a bound the assembler keeps the [`OverLimit`] and ignores the rest
/// of the stream, so its memory stays bounded whatever the upstream sends.
#[derive(Debug)]
pub struct Assembler {
    provider: Provider,
    model: Option<String>,
    text: String,
    // OpenAI: (id, name, arguments) by index. Anthropic: content blocks (and their partial
    // JSON) by index.
    calls: BTreeMap<u64, (String, String, String)>,
    blocks: BTreeMap<u64, (Value, String)>,
    final_body: Option<Value>,
    finish: Option<String>,
    usage_in: Option<u64>,
    usage_out: Option<u64>,
    over: Option<OverLimit>,
    /// Whether the stream said it was complete (`[DONE]` or `message_stop`).
    pub done: bool,
    /// Whether any event was not understood (not JSON).
    pub malformed: bool,
}

impl Assembler {
    /// An assembler for a provider's stream.
    pub fn new(provider: Provider) -> Self {
        Self {
            provider,
            model: None,
            text: String::new(),
            calls: BTreeMap::new(),
            blocks: BTreeMap::new(),
            final_body: None,
            finish: None,
            usage_in: None,
            usage_out: None,
            over: None,
            done: false,
            malformed: false,
        }
    }

    /// The bound the stream broke, if it did; the events after it were ignored.
    pub fn over_limit(&self) -> Option<&OverLimit> {
        self.over.as_ref()
    }

    /// Takes in one event.
    pub fn event(&mut self, event: &SseEvent) {
        if self.over.is_some() {
            return;
        }
        if event.data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
            if !event.data.trim().is_empty() {
                self.malformed = true;
            }
            return;
        };
        if let Some(m) = v.get("model").and_then(Value::as_str) {
            self.model = Some(m.to_owned());
        }
        let result = match self.provider {
            Provider::OpenAi => self.openai(&v),
            Provider::Anthropic => self.anthropic(&v),
            Provider::Responses => {
                self.responses(&v);
                Ok(())
            }
        };
        if let Err(over) = result {
            self.over = Some(over);
        }
    }

    fn openai(&mut self, v: &Value) -> Result<(), OverLimit> {
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage_in = u.get("prompt_tokens").and_then(Value::as_u64);
            self.usage_out = u.get("completion_tokens").and_then(Value::as_u64);
        }
        let choices = v.get("choices").and_then(Value::as_array);
        for choice in choices.into_iter().flatten() {
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(f.to_owned());
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                self.text.push_str(t);
            }
            let calls = delta.get("tool_calls").and_then(Value::as_array);
            for call in calls.into_iter().flatten() {
                // A delta without an index goes on the last call.
                let index = match call.get("index").and_then(Value::as_u64) {
                    Some(i) => i,
                    None => self.calls.keys().next_back().copied().unwrap_or(0),
                };
                if index > MAX_INDEX {
                    return Err(OverLimit::ToolCallIndex(index));
                }
                if !self.calls.contains_key(&index) && self.calls.len() >= MAX_TOOL_CALLS {
                    return Err(OverLimit::ToolCalls);
                }
                let slot = self.calls.entry(index).or_default();
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    slot.0 = id.to_owned();
                }
                if let Some(f) = call.get("function") {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        slot.1.push_str(n);
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        slot.2.push_str(a);
                    }
                }
            }
        }
        Ok(())
    }

    fn responses(&mut self, v: &Value) {
        match v.get("type").and_then(Value::as_str) {
            Some("response.output_text.delta") => {
                if let Some(t) = v.get("delta").and_then(Value::as_str) {
                    self.text.push_str(t);
                }
            }
            Some("response.completed" | "response.incomplete" | "response.failed") => {
                self.final_body = v.get("response").cloned();
                self.done = true;
            }
            _ => {}
        }
    }

    fn anthropic(&mut self, v: &Value) -> Result<(), OverLimit> {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        if index > MAX_INDEX {
            return Err(OverLimit::BlockIndex(index));
        }
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let m = v.get("message");
                if let Some(model) = m.and_then(|m| m.get("model")).and_then(Value::as_str) {
                    self.model = Some(model.to_owned());
                }
                let u = m.and_then(|m| m.get("usage"));
                self.usage_in = u
                    .and_then(|u| u.get("input_tokens"))
                    .and_then(Value::as_u64);
                self.usage_out = u
                    .and_then(|u| u.get("output_tokens"))
                    .and_then(Value::as_u64);
            }
            Some("content_block_start") => {
                // A block that is not an object (a hostile upstream's `5`) is taken as empty:
                // its deltas are then written into it by key.
                let block = v
                    .get("content_block")
                    .filter(|b| b.is_object())
                    .cloned()
                    .unwrap_or(Value::Null);
                let is_call = |b: &Value| b.get("type").and_then(Value::as_str) == Some("tool_use");
                if is_call(&block) {
                    let calls = self
                        .blocks
                        .iter()
                        .filter(|(i, (b, _))| **i != index && is_call(b))
                        .count();
                    if calls >= MAX_TOOL_CALLS {
                        return Err(OverLimit::ToolCalls);
                    }
                }
                self.blocks.insert(index, (block, String::new()));
            }
            Some("content_block_delta") => {
                let (Some((block, partial_json)), Some(delta)) =
                    (self.blocks.get_mut(&index), v.get("delta"))
                else {
                    return Ok(());
                };
                if let Some(t) = delta.get("text").and_then(Value::as_str) {
                    // Appended in place: rebuilding the text at every delta was quadratic in
                    // the length of a stream of many small deltas.
                    match block.get_mut("text") {
                        Some(Value::String(text)) => text.push_str(t),
                        _ => block["text"] = Value::String(t.to_owned()),
                    }
                    self.text.push_str(t);
                }
                if let Some(p) = delta.get("partial_json").and_then(Value::as_str) {
                    partial_json.push_str(p);
                }
            }
            Some("content_block_stop") => {
                if let Some((block, json)) = self.blocks.get_mut(&index)
                    && block.get("type").and_then(Value::as_str) == Some("tool_use")
                {
                    let input = if json.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.clone()))
                    };
                    block["input"] = input;
                }
            }
            Some("message_delta") => {
                if let Some(s) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.finish = Some(s.to_owned());
                }
                if let Some(o) = v
                    .get("usage")
                    .and_then(|u| u.get("output_tokens"))
                    .and_then(Value::as_u64)
                {
                    self.usage_out = Some(o);
                }
            }
            Some("message_stop") => self.done = true,
            _ => {}
        }
        Ok(())
    }

    /// The response body the stream amounts to so far.
    pub fn body(&self) -> Value {
        match self.provider {
            Provider::Responses => self.final_body.clone().unwrap_or_else(|| {
                json!({
                    "model": self.model,
                    "status": "incomplete",
                    "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": self.text}]}],
                })
            }),
            Provider::OpenAi => {
                let mut message = json!({"role": "assistant", "content": if self.text.is_empty() && !self.calls.is_empty() { Value::Null } else { Value::String(self.text.clone()) }});
                if !self.calls.is_empty() {
                    message["tool_calls"] = self
                        .calls
                        .values()
                        .map(|(id, name, args)| {
                            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
                        })
                        .collect();
                }
                let mut body = json!({
                    "model": self.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": self.finish}],
                });
                if let (Some(i), Some(o)) = (self.usage_in, self.usage_out) {
                    body["usage"] = json!({"prompt_tokens": i, "completion_tokens": o});
                }
                body
            }
            Provider::Anthropic => {
                let content: Vec<Value> = self
                    .blocks
                    .values()
                    .map(|(b, _)| b)
                    .filter(|b| !b.is_null())
                    .cloned()
                    .collect();
                let mut body = json!({
                    "model": self.model,
                    "role": "assistant",
                    "content": content,
                    "stop_reason": self.finish,
                });
                if let (Some(i), Some(o)) = (self.usage_in, self.usage_out) {
                    body["usage"] = json!({"input_tokens": i, "output_tokens": o});
                }
                body
            }
        }
    }
}

/// How many leaf values two JSON values share, a crude closeness score.
pub fn similarity(a: &Value, b: &Value) -> usize {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .filter_map(|(k, v)| y.get(k).map(|w| similarity(v, w)))
            .sum(),
        (Value::Array(x), Value::Array(y)) => x.iter().zip(y).map(|(p, q)| similarity(p, q)).sum(),
        _ => usize::from(a == b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_stream_assembles_tool_calls_and_usage() {
        let mut a = Assembler::new(Provider::OpenAi);
        for data in [
            r#"{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"get","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"q\":1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#,
            "[DONE]",
        ] {
            a.event(&SseEvent {
                event: None,
                data: data.to_owned(),
            });
        }
        assert!(a.done);
        let ans = answer(Provider::OpenAi, &a.body())
            .expect("an answer")
            .expect("within the bounds");
        assert_eq!(
            ans.tool_calls,
            vec![("c1".into(), "get".into(), json!({"q": 1}))]
        );
        assert_eq!(ans.usage, Some((5, 7)));
        assert_eq!(ans.finish_reason.as_deref(), Some("tool_calls"));
    }

    fn feed(a: &mut Assembler, data: &str) {
        a.event(&SseEvent {
            event: None,
            data: data.to_owned(),
        });
    }

    #[test]
    fn a_tool_call_index_over_the_limit_stops_the_assembly() {
        // A delta with `"index": 10000000000` once made the assembler push that many calls.
        let mut a = Assembler::new(Provider::OpenAi);
        feed(
            &mut a,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":10000000000,"id":"c","function":{"name":"f","arguments":""}}]}}]}"#,
        );
        assert_eq!(
            a.over_limit(),
            Some(&OverLimit::ToolCallIndex(10_000_000_000))
        );
        assert_eq!(
            a.over_limit().map(ToString::to_string).as_deref(),
            Some("tool-call index 10000000000 is over the limit of 1023")
        );
        feed(&mut a, "[DONE]");
        assert!(!a.done, "nothing is read after the bound");
    }

    #[test]
    fn more_tool_calls_than_the_limit_stop_the_assembly() {
        let mut a = Assembler::new(Provider::OpenAi);
        for i in 0..=MAX_TOOL_CALLS {
            assert_eq!(a.over_limit(), None, "at call {i}");
            feed(
                &mut a,
                &json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                    {"index": i, "id": format!("c{i}"), "function": {"name": "f", "arguments": "{}"}}
                ]}}]})
                .to_string(),
            );
        }
        assert_eq!(a.over_limit(), Some(&OverLimit::ToolCalls));
        // The same in a whole body.
        let calls: Vec<Value> = (0..=MAX_TOOL_CALLS)
            .map(|i| json!({"id": format!("c{i}"), "function": {"name": "f", "arguments": "{}"}}))
            .collect();
        let body = json!({"choices": [{"message": {"role": "assistant", "tool_calls": calls}}]});
        assert_eq!(
            answer(Provider::OpenAi, &body),
            Some(Err(OverLimit::ToolCalls))
        );
    }

    #[test]
    fn a_content_block_index_over_the_limit_stops_the_assembly() {
        let mut a = Assembler::new(Provider::Anthropic);
        feed(
            &mut a,
            r#"{"type":"content_block_start","index":100000,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
        );
        assert_eq!(a.over_limit(), Some(&OverLimit::BlockIndex(100_000)));
        // Sparse indexes under the limit are fine, and no empty blocks fill the gaps.
        let mut a = Assembler::new(Provider::Anthropic);
        feed(
            &mut a,
            r#"{"type":"content_block_start","index":1000,"content_block":{"type":"text","text":"hi"}}"#,
        );
        assert_eq!(a.over_limit(), None);
        assert_eq!(a.body()["content"], json!([{"type": "text", "text": "hi"}]));
    }
}
