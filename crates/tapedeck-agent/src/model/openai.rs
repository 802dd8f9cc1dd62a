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
//! The request is `tapedeck-wire`'s typed [`ChatRequest`]. Streaming asks for
//! `stream_options.include_usage`; the answer, whole or streamed, is read by
//! `tapedeck-wire` ([`ChatStream`] puts the deltas back together, `read_completion` reads the
//! body). A stream that ends with neither `[DONE]` nor a finish reason is returned as it
//! arrived, marked `truncated`.

use std::time::Instant;

use reqwest::header::AUTHORIZATION;
use serde_json::Value;
use tapedeck_wire::openai::{
    ChatRequest, ChatRequestMessage, ChatRequestToolCall, ChatStream, ChatTool, FunctionCallText,
    FunctionKind, FunctionSpec, StreamOptions,
};

use crate::config::ModelConfig;
use crate::model::http::{self, Endpoint, ToolNames};
use crate::model::{ModelBackend, ModelError};
use crate::{AgentError, FinishReason, Message, ModelRequest, ModelResponse};

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

    /// The body this backend sends for `request`.
    pub fn request_body(&self, request: &ModelRequest) -> ChatRequest {
        self.body(request, &ToolNames::of(request))
    }

    fn body(&self, request: &ModelRequest, names: &ToolNames) -> ChatRequest {
        let stream = self.endpoint.stream;
        ChatRequest {
            model: self.endpoint.model_for(request).to_owned(),
            messages: request
                .messages
                .iter()
                .map(|m| chat_message(m, names))
                .collect(),
            tools: request
                .tools
                .iter()
                .map(|t| ChatTool {
                    kind: FunctionKind::Function,
                    function: FunctionSpec {
                        name: names.wire(&t.name),
                        description: t.description.clone(),
                        parameters: t.input_schema.clone(),
                    },
                })
                .collect(),
            temperature: request.temperature,
            max_tokens: request.max_output_tokens,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        }
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
        self.endpoint
            .complete::<ChatStream>(&body, deadline, &names, finish_reason)
    }
}

/// One message in Chat Completions form.
fn chat_message(message: &Message, names: &ToolNames) -> ChatRequestMessage {
    match message {
        Message::System { content } => ChatRequestMessage::System {
            content: content.clone(),
        },
        Message::User { content } => ChatRequestMessage::User {
            content: content.clone(),
        },
        Message::Assistant {
            content,
            tool_calls,
        } => ChatRequestMessage::Assistant {
            // An answer of neither text nor calls still says something: the empty text.
            content: match content {
                None if tool_calls.is_empty() => Some(String::new()),
                other => other.clone(),
            },
            tool_calls: tool_calls
                .iter()
                .map(|c| ChatRequestToolCall {
                    id: c.id.clone(),
                    kind: FunctionKind::Function,
                    function: FunctionCallText {
                        name: names.wire(&c.name),
                        arguments: arguments_text(&c.arguments),
                    },
                })
                .collect(),
        },
        Message::Tool {
            tool_call_id,
            content,
            ..
        } => ChatRequestMessage::Tool {
            tool_call_id: tool_call_id.clone(),
            content: content.clone(),
        },
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
