//! The OpenAI-compatible Chat Completions backend: one `POST {base_url}/chat/completions` per
//! attempt, plain or streamed (server-sent events), mapped to and from the provider-neutral
//! [`Message`]s.
//!
//! Mapping: system, user and assistant messages keep their role (an assistant turn with only
//! tool calls has `content: null`; its calls are `{"id", "type": "function", "function":
//! {"name", "arguments": <JSON text>}}`); a tool observation is `{"role": "tool",
//! "tool_call_id", "content"}`; tools are `{"type": "function", "function": {"name",
//! "description", "parameters"}}`. Tool names outside `[a-zA-Z0-9_-]` (`kb.read`) are sent as
//! `kb_read` and mapped back. The answer's `arguments` text is parsed; text that is not JSON is
//! kept as a string. `stop` → [`FinishReason::Stop`], `tool_calls` → `ToolCalls`, `length` →
//! `Length`, anything else → `Other`.
//!
//! Streaming asks for `stream_options.include_usage`, puts content and tool-call deltas back
//! together by index, takes the usage from the last chunk (whose `choices` is empty), and ends
//! at `data: [DONE]`. A stream that ends with neither `[DONE]` nor a finish reason is returned
//! as it arrived, marked `truncated`.

use std::collections::BTreeMap;
use std::time::Instant;

use reqwest::blocking::Response;
use reqwest::header::AUTHORIZATION;
use serde_json::{Map, Value, json};

use crate::config::ModelConfig;
use crate::model::http::{self, Answer, Endpoint, Parts, ToolNames};
use crate::model::{MAX_INDEX, MAX_TOOL_CALLS, ModelBackend, ModelError, OverLimit};
use crate::{AgentError, FinishReason, Message, ModelRequest, ModelResponse, ToolCallRequest};

/// An OpenAI-compatible Chat Completions API.
pub struct OpenAi {
    endpoint: Endpoint,
}

impl std::fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.endpoint.debug("OpenAi", f)
    }
}

impl OpenAi {
    /// The backend of `model`, its API key read from the environment variable
    /// `model.api_key_env` names (default `OPENAI_API_KEY`).
    pub fn new(model: &ModelConfig) -> Result<Self, AgentError> {
        let key = http::api_key(model)?;
        Self::with_key(model, key)
    }

    /// The backend of `model` with the API key given.
    pub fn with_key(model: &ModelConfig, key: String) -> Result<Self, AgentError> {
        let auth = http::header_value("authorization", &format!("Bearer {key}"))?;
        Ok(Self {
            endpoint: Endpoint::new(model, "/chat/completions", vec![(AUTHORIZATION, auth)])?,
        })
    }

    /// The JSON body this backend sends for `request`.
    pub fn request_body(&self, request: &ModelRequest) -> Value {
        self.body(request, &ToolNames::of(request))
    }

    fn body(&self, request: &ModelRequest, names: &ToolNames) -> Value {
        let model = self.endpoint.model_for(request);
        let mut body = Map::new();
        body.insert("model".into(), json!(model));
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| message_json(m, names))
            .collect();
        body.insert("messages".into(), Value::Array(messages));
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": names.wire(&t.name),
                            "description": t.description,
                            "parameters": t.input_schema,
                        }
                    })
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        if let Some(t) = request.temperature {
            body.insert("temperature".into(), json!(t));
        }
        body.insert("max_tokens".into(), json!(request.max_output_tokens));
        if self.endpoint.stream {
            body.insert("stream".into(), json!(true));
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Value::Object(body)
    }
}

impl ModelBackend for OpenAi {
    fn provider(&self) -> &'static str {
        "openai"
    }

    fn complete(
        &mut self,
        request: &ModelRequest,
        deadline: Instant,
    ) -> Result<ModelResponse, ModelError> {
        let names = ToolNames::of(request);
        let body = self.body(request, &names);
        match self.endpoint.post(&body, deadline)? {
            Answer::Stream(response) => read_stream(response, deadline, &names),
            Answer::Json(value) => parse_completion(&value, &names),
        }
    }
}

/// One message in Chat Completions form.
fn message_json(message: &Message, names: &ToolNames) -> Value {
    match message {
        Message::System { content } => json!({"role": "system", "content": content}),
        Message::User { content } => json!({"role": "user", "content": content}),
        Message::Assistant {
            content,
            tool_calls,
        } => {
            let mut m = Map::new();
            m.insert("role".into(), json!("assistant"));
            let content = match content {
                Some(text) => json!(text),
                None if tool_calls.is_empty() => json!(""),
                None => Value::Null,
            };
            m.insert("content".into(), content);
            if !tool_calls.is_empty() {
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|c| {
                        json!({
                            "id": c.id,
                            "type": "function",
                            "function": {
                                "name": names.wire(&c.name),
                                "arguments": arguments_text(&c.arguments),
                            }
                        })
                    })
                    .collect();
                m.insert("tool_calls".into(), Value::Array(calls));
            }
            Value::Object(m)
        }
        Message::Tool {
            tool_call_id,
            content,
            ..
        } => json!({"role": "tool", "tool_call_id": tool_call_id, "content": content}),
    }
}

/// Arguments as the JSON text the API carries; arguments kept as a string (because the model
/// sent text that is not JSON) go back as that text.
fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `finish_reason` in tapedeck's words.
fn finish_reason(raw: &str) -> FinishReason {
    match raw {
        "stop" => FinishReason::Stop,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "length" => FinishReason::Length,
        _ => FinishReason::Other,
    }
}

/// A whole (not streamed) completion.
fn parse_completion(value: &Value, names: &ToolNames) -> Result<ModelResponse, ModelError> {
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(http::reported_error(error));
    }
    let choice = value
        .pointer("/choices/0")
        .ok_or_else(|| ModelError::Malformed("the response has no `choices[0]`".into()))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| {
            ModelError::Malformed("`choices[0].message` is missing or not an object".into())
        })?;
    let mut text = match message.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // Some compatible servers send content parts.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        Some(_) => {
            return Err(ModelError::Malformed(
                "`choices[0].message.content` is neither text nor null".into(),
            ));
        }
    };
    if text.is_empty()
        && let Some(refusal) = message.get("refusal").and_then(Value::as_str)
    {
        text = refusal.to_owned();
    }
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) if calls.len() > MAX_TOOL_CALLS => {
            return Err(OverLimit::ToolCalls.into());
        }
        Some(Value::Array(calls)) => calls
            .iter()
            .enumerate()
            .map(|(i, call)| parse_call(i, call, names))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ModelError::Malformed(
                "`choices[0].message.tool_calls` is not a list".into(),
            ));
        }
    };
    let parts = Parts {
        text,
        calls,
        raw_finish: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: http::usage(value.get("usage"), "prompt_tokens", "completion_tokens"),
        streamed: false,
        truncated: false,
    };
    parts.into_response(finish_reason)
}

/// One entry of `message.tool_calls`.
fn parse_call(i: usize, call: &Value, names: &ToolNames) -> Result<ToolCallRequest, ModelError> {
    let name = call
        .pointer("/function/name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ModelError::Malformed(format!(
                "`choices[0].message.tool_calls[{i}]` has no `function.name`"
            ))
        })?;
    let arguments = match call.pointer("/function/arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(text)) => http::parse_arguments(text),
        Some(other) => other.clone(),
    };
    Ok(ToolCallRequest {
        id: call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("call_{i}"), str::to_owned),
        name: names.local(name),
        arguments,
    })
}

/// A tool call being put together from stream deltas.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// What a stream has delivered so far.
#[derive(Default)]
struct Stream {
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    finish: Option<String>,
    usage: Option<tapedeck_trace::Usage>,
    done: bool,
}

impl Stream {
    /// Applies one `data:` payload.
    fn chunk(&mut self, data: &str) -> Result<(), ModelError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let value = http::parse_json(data.as_bytes(), "a stream chunk")?;
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            return Err(http::reported_error(error));
        }
        if let Some(usage) = value.get("usage").filter(|u| !u.is_null()) {
            self.usage = http::usage(Some(usage), "prompt_tokens", "completion_tokens");
        }
        let choices = match value.get("choices") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Array(choices)) => choices,
            Some(_) => {
                return Err(ModelError::Malformed(format!(
                    "a stream chunk's `choices` is not a list: {}",
                    http::shorten(data, 200)
                )));
            }
        };
        for choice in choices {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.get("delta") {
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    self.text.push_str(text);
                }
                if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                    for (position, call) in calls.iter().enumerate() {
                        self.call_delta(position, call)?;
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(reason.to_owned());
            }
        }
        Ok(())
    }

    /// One tool-call delta: the id and name arrive first, the arguments in pieces. The index
    /// is trusted up to [`MAX_INDEX`], and at most [`MAX_TOOL_CALLS`] calls are put together.
    fn call_delta(&mut self, position: usize, call: &Value) -> Result<(), OverLimit> {
        let index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        if index > MAX_INDEX {
            return Err(OverLimit::ToolCallIndex(index));
        }
        if !self.calls.contains_key(&index) && self.calls.len() >= MAX_TOOL_CALLS {
            return Err(OverLimit::ToolCalls);
        }
        let entry = self.calls.entry(index).or_default();
        if let Some(id) = call.get("id").and_then(Value::as_str)
            && !id.is_empty()
        {
            id.clone_into(&mut entry.id);
        }
        if let Some(name) = call.pointer("/function/name").and_then(Value::as_str)
            && entry.name.is_empty()
        {
            name.clone_into(&mut entry.name);
        }
        if let Some(piece) = call.pointer("/function/arguments").and_then(Value::as_str) {
            entry.arguments.push_str(piece);
        }
        Ok(())
    }

    fn into_response(self, names: &ToolNames) -> Result<ModelResponse, ModelError> {
        let truncated = !self.done && self.finish.is_none();
        let calls = self
            .calls
            .into_iter()
            .map(|(index, call)| ToolCallRequest {
                id: if call.id.is_empty() {
                    format!("call_{index}")
                } else {
                    call.id
                },
                name: names.local(&call.name),
                arguments: http::parse_arguments(&call.arguments),
            })
            .collect();
        Parts {
            text: self.text,
            calls,
            raw_finish: self.finish,
            usage: self.usage,
            streamed: true,
            truncated,
        }
        .into_response(finish_reason)
    }
}

/// Reads a streamed completion to its end (or its cut).
fn read_stream(
    response: Response,
    deadline: Instant,
    names: &ToolNames,
) -> Result<ModelResponse, ModelError> {
    let mut stream = Stream::default();
    http::read_events(response, deadline, |event| {
        stream.chunk(&event.data)?;
        Ok(stream.done)
    })?;
    stream.into_response(names)
}
