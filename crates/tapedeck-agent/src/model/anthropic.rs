//! The Anthropic Messages backend: one `POST {base_url}/v1/messages` per attempt, plain or
//! streamed (server-sent events), mapped to and from the provider-neutral [`Message`]s.
//!
//! Mapping: system messages become the top-level `system` (several are joined by a blank
//! line); user and assistant messages carry content blocks, an assistant's tool calls as
//! `tool_use` blocks `{id, name, input}`; consecutive tool observations become ONE user message
//! of `tool_result` blocks `{tool_use_id, content, is_error}`; tools are `{name, description,
//! input_schema}`; `max_tokens` is always sent (the API requires it). Tool names outside
//! `[a-zA-Z0-9_-]` (`kb.read`) are sent as `kb_read` and mapped back. `end_turn` and
//! `stop_sequence` → [`FinishReason::Stop`], `tool_use` → `ToolCalls`, `max_tokens` →
//! `Length`, anything else → `Other`.
//!
//! Streaming follows the event sequence `message_start` (input tokens), `content_block_start`
//! (a text block, or a `tool_use` block with its id and name), `content_block_delta`
//! (`text_delta`, or `input_json_delta` pieces joined and parsed at `content_block_stop`),
//! `message_delta` (stop reason, output tokens) and `message_stop`. An `error` event fails the
//! attempt (overload and rate limits as retryable statuses). A stream that ends with neither
//! `message_stop` nor a stop reason is returned as it arrived, marked `truncated`.

use std::collections::BTreeMap;
use std::time::Instant;

use reqwest::blocking::Response;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::config::ModelConfig;
use crate::model::http::{self, Answer, Endpoint, Parts, ToolNames};
use crate::model::{MAX_INDEX, MAX_TOOL_CALLS, ModelBackend, ModelError, OverLimit};
use crate::{AgentError, FinishReason, Message, ModelRequest, ModelResponse, ToolCallRequest};

/// The API version this backend speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// An Anthropic Messages API.
pub struct Anthropic {
    endpoint: Endpoint,
}

impl std::fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.endpoint.debug("Anthropic", f)
    }
}

impl Anthropic {
    /// The backend of `model`, its API key read from the environment variable
    /// `model.api_key_env` names (default `ANTHROPIC_API_KEY`).
    pub fn new(model: &ModelConfig) -> Result<Self, AgentError> {
        let key = http::api_key(model)?;
        Self::with_key(model, key)
    }

    /// The backend of `model` with the API key given.
    pub fn with_key(model: &ModelConfig, key: String) -> Result<Self, AgentError> {
        let headers = vec![
            (
                HeaderName::from_static("x-api-key"),
                http::header_value("x-api-key", &key)?,
            ),
            (
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            ),
        ];
        Ok(Self {
            endpoint: Endpoint::new(model, "/v1/messages", headers)?,
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
        body.insert("max_tokens".into(), json!(request.max_output_tokens));
        let (system, messages) = messages_json(&request.messages, names);
        if let Some(system) = system {
            body.insert("system".into(), json!(system));
        }
        body.insert("messages".into(), Value::Array(messages));
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "name": names.wire(&t.name),
                        "description": t.description,
                        "input_schema": t.input_schema,
                    })
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        if let Some(t) = request.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if self.endpoint.stream {
            body.insert("stream".into(), json!(true));
        }
        Value::Object(body)
    }
}

impl ModelBackend for Anthropic {
    fn provider(&self) -> &'static str {
        "anthropic"
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
            Answer::Json(value) => parse_message(&value, &names),
        }
    }
}

/// The `system` text and the `messages` list.
fn messages_json(messages: &[Message], names: &ToolNames) -> (Option<String>, Vec<Value>) {
    let mut system: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let mut results: Vec<Value> = Vec::new();
    for message in messages {
        if let Message::Tool {
            tool_call_id,
            content,
            is_error,
            ..
        } = message
        {
            results.push(json!({
                "type": "tool_result",
                "tool_use_id": tool_call_id,
                "content": content,
                "is_error": is_error,
            }));
            continue;
        }
        if !results.is_empty() {
            out.push(json!({"role": "user", "content": std::mem::take(&mut results)}));
        }
        match message {
            Message::System { content } => system.push(content),
            Message::User { content } => out.push(json!({
                "role": "user",
                "content": [{"type": "text", "text": content}],
            })),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut blocks = Vec::new();
                if let Some(text) = content.as_deref().filter(|t| !t.is_empty()) {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": names.wire(&call.name),
                        "input": call.arguments,
                    }));
                }
                if blocks.is_empty() {
                    blocks.push(json!({"type": "text", "text": content.as_deref().unwrap_or("")}));
                }
                out.push(json!({"role": "assistant", "content": blocks}));
            }
            Message::Tool { .. } => {}
        }
    }
    if !results.is_empty() {
        out.push(json!({"role": "user", "content": results}));
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    (system, out)
}

/// `stop_reason` in tapedeck's words.
fn finish_reason(raw: &str) -> FinishReason {
    match raw {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "tool_use" => FinishReason::ToolCalls,
        "max_tokens" => FinishReason::Length,
        _ => FinishReason::Other,
    }
}

/// A whole (not streamed) message.
fn parse_message(value: &Value, names: &ToolNames) -> Result<ModelResponse, ModelError> {
    if value.get("type").and_then(Value::as_str) == Some("error") {
        let error = value.get("error").unwrap_or(value);
        return Err(http::reported_error(error));
    }
    let blocks = value
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| ModelError::Malformed("the response has no `content` list".into()))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let piece = block.get("text").and_then(Value::as_str).ok_or_else(|| {
                    ModelError::Malformed(format!("`content[{i}]` is a text block without `text`"))
                })?;
                text.push_str(piece);
            }
            Some("tool_use") => {
                let name = block.get("name").and_then(Value::as_str).ok_or_else(|| {
                    ModelError::Malformed(format!(
                        "`content[{i}]` is a tool_use block without `name`"
                    ))
                })?;
                calls.push(ToolCallRequest {
                    id: block
                        .get("id")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("toolu_{i}"), str::to_owned),
                    name: names.local(name),
                    arguments: block
                        .get("input")
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new())),
                });
            }
            Some(_) => {}
            None => {
                return Err(ModelError::Malformed(format!(
                    "`content[{i}]` has no `type`"
                )));
            }
        }
    }
    let parts = Parts {
        text,
        calls,
        raw_finish: value
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: http::usage(value.get("usage"), "input_tokens", "output_tokens"),
        streamed: false,
        truncated: false,
    };
    parts.into_response(finish_reason)
}

/// A content block being put together from stream events.
enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        /// The input `content_block_start` gave (`{}` in practice).
        start: Value,
        /// The `input_json_delta` pieces so far.
        json: String,
        /// The parsed input, once the block stopped.
        input: Option<Value>,
    },
    Other,
}

impl Block {
    fn tool_input(start: &Value, json: &str) -> Value {
        if json.trim().is_empty() {
            start.clone()
        } else {
            http::parse_arguments(json)
        }
    }
}

/// What a stream has delivered so far.
#[derive(Default)]
struct Stream {
    blocks: BTreeMap<u64, Block>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    stop_reason: Option<String>,
    stopped: bool,
}

impl Stream {
    /// Applies one event.
    fn event(&mut self, name: Option<&str>, data: &str) -> Result<(), ModelError> {
        let value = http::parse_json(data.as_bytes(), "a stream event")?;
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(name)
            .unwrap_or_default();
        // Indexes are trusted up to MAX_INDEX: the blocks are kept by index.
        let index = || match value.get("index").and_then(Value::as_u64) {
            Some(index) if index > MAX_INDEX => Err(OverLimit::BlockIndex(index).into()),
            Some(index) => Ok(index),
            None => Err(ModelError::Malformed(format!(
                "a `{kind}` event without `index`"
            ))),
        };
        match kind {
            "message_start" => {
                let usage = value.pointer("/message/usage");
                self.take_usage(usage);
            }
            "content_block_start" => {
                let index = index()?;
                let block = value.get("content_block").ok_or_else(|| {
                    ModelError::Malformed(
                        "a `content_block_start` event without `content_block`".into(),
                    )
                })?;
                let new = match block.get("type").and_then(Value::as_str) {
                    Some("text") => Block::Text(
                        block
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    Some("tool_use") => Block::ToolUse {
                        id: block
                            .get("id")
                            .and_then(Value::as_str)
                            .map_or_else(|| format!("toolu_{index}"), str::to_owned),
                        name: block
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                ModelError::Malformed(format!(
                                    "tool_use block {index} starts without `name`"
                                ))
                            })?
                            .to_owned(),
                        start: block
                            .get("input")
                            .cloned()
                            .unwrap_or_else(|| Value::Object(Map::new())),
                        json: String::new(),
                        input: None,
                    },
                    _ => Block::Other,
                };
                if matches!(new, Block::ToolUse { .. }) {
                    let calls = self
                        .blocks
                        .iter()
                        .filter(|(i, b)| **i != index && matches!(b, Block::ToolUse { .. }))
                        .count();
                    if calls >= MAX_TOOL_CALLS {
                        return Err(OverLimit::ToolCalls.into());
                    }
                }
                self.blocks.insert(index, new);
            }
            "content_block_delta" => {
                let index = index()?;
                let delta = value.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let piece = delta
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        match self
                            .blocks
                            .entry(index)
                            .or_insert_with(|| Block::Text(String::new()))
                        {
                            Block::Text(text) => text.push_str(piece),
                            _ => {
                                return Err(ModelError::Malformed(format!(
                                    "a text_delta for block {index}, which is not a text block"
                                )));
                            }
                        }
                    }
                    Some("input_json_delta") => {
                        let piece = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        match self.blocks.get_mut(&index) {
                            Some(Block::ToolUse { json, .. }) => json.push_str(piece),
                            _ => {
                                return Err(ModelError::Malformed(format!(
                                    "an input_json_delta for block {index}, which is not a \
                                     tool_use block"
                                )));
                            }
                        }
                    }
                    // thinking, signatures, citations: not part of the neutral message.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(Block::ToolUse {
                    start, json, input, ..
                }) = self.blocks.get_mut(&index()?)
                {
                    *input = Some(Block::tool_input(start, json));
                }
            }
            "message_delta" => {
                if let Some(reason) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                self.take_usage(value.get("usage"));
            }
            "message_stop" => self.stopped = true,
            "error" => {
                let error = value.get("error").unwrap_or(&value);
                return Err(http::reported_error(error));
            }
            // `ping` and event types added later.
            _ => {}
        }
        Ok(())
    }

    fn take_usage(&mut self, usage: Option<&Value>) {
        let Some(usage) = usage else { return };
        if let Some(n) = usage.get("input_tokens").and_then(Value::as_u64) {
            self.input_tokens = Some(n);
        }
        if let Some(n) = usage.get("output_tokens").and_then(Value::as_u64) {
            self.output_tokens = Some(n);
        }
    }

    fn into_response(self, names: &ToolNames) -> Result<ModelResponse, ModelError> {
        let truncated = !self.stopped && self.stop_reason.is_none();
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in self.blocks.into_values() {
            match block {
                Block::Text(piece) => text.push_str(&piece),
                Block::ToolUse {
                    id,
                    name,
                    start,
                    json,
                    input,
                } => calls.push(ToolCallRequest {
                    id,
                    name: names.local(&name),
                    arguments: input.unwrap_or_else(|| Block::tool_input(&start, &json)),
                }),
                Block::Other => {}
            }
        }
        let usage = match (self.input_tokens, self.output_tokens) {
            (Some(input_tokens), Some(output_tokens)) => Some(tapedeck_trace::Usage {
                input_tokens,
                output_tokens,
            }),
            _ => None,
        };
        Parts {
            text,
            calls,
            raw_finish: self.stop_reason,
            usage,
            streamed: true,
            truncated,
        }
        .into_response(finish_reason)
    }
}

/// Reads a streamed message to its end (or its cut).
fn read_stream(
    response: Response,
    deadline: Instant,
    names: &ToolNames,
) -> Result<ModelResponse, ModelError> {
    let mut stream = Stream::default();
    http::read_events(response, deadline, |event| {
        stream.event(event.event.as_deref(), &event.data)?;
        Ok(stream.stopped)
    })?;
    stream.into_response(names)
}
