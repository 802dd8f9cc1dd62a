//! The Anthropic Messages backend: one `POST {base_url}/v1/messages` per attempt, plain or
//! streamed (server-sent events), mapped to and from the provider-neutral [`Message`]s.
//!
//! Mapping: system messages become the top-level `system` (several are joined by a blank
//! line); user and assistant messages carry content blocks, an assistant's tool calls as
//! `tool_use` blocks `{id, name, input}`; consecutive tool observations become ONE user message
//! of `tool_result` blocks `{tool_use_id, content, is_error}`; tools are `{name, description,
//! input_schema}`; `max_tokens` is always sent (the API requires it). Tool names outside
//! `[a-zA-Z0-9_-]` (`kb.read`) are sent as `kb_read` and mapped back; the request is
//! `tapedeck-wire`'s typed [`MessagesRequest`]. `end_turn` and
//! `stop_sequence` → [`FinishReason::Stop`], `tool_use` → `ToolCalls`, `max_tokens` →
//! `Length`, anything else → `Other`.
//!
//! Streaming follows the event sequence `message_start` (input tokens), `content_block_start`
//! (a text block, or a `tool_use` block with its id and name), `content_block_delta`
//! (`text_delta`, or `input_json_delta` pieces joined and parsed at `content_block_stop`),
//! `message_delta` (stop reason, output tokens) and `message_stop`, read by `tapedeck-wire`
//! ([`MessagesStream`]; a whole body by `read_message`). An `error` event fails the attempt
//! (overload and rate limits as retryable statuses). A stream that ends with neither
//! `message_stop` nor a stop reason is returned as it arrived, marked `truncated`.

use std::time::Instant;

use reqwest::header::{HeaderName, HeaderValue};
use tapedeck_wire::anthropic::{
    MessagesRequest, MessagesStream, MessagesTool, RequestBlock, RequestMessage, Role,
};

use crate::config::ModelConfig;
use crate::model::http::{self, Endpoint, ToolNames};
use crate::model::{ModelBackend, ModelError};
use crate::{AgentError, FinishReason, Message, ModelRequest, ModelResponse};

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

    /// The body this backend sends for `request`.
    pub fn request_body(&self, request: &ModelRequest) -> MessagesRequest {
        self.body(request, &ToolNames::of(request))
    }

    fn body(&self, request: &ModelRequest, names: &ToolNames) -> MessagesRequest {
        let (system, messages) = request_messages(&request.messages, names);
        MessagesRequest {
            model: self.endpoint.model_for(request).to_owned(),
            max_tokens: request.max_output_tokens,
            system,
            messages,
            tools: request
                .tools
                .iter()
                .map(|t| MessagesTool {
                    name: names.wire(&t.name),
                    description: t.description.clone(),
                    input_schema: t.input_schema.clone(),
                })
                .collect(),
            temperature: request.temperature,
            stream: self.endpoint.stream,
        }
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
        self.endpoint
            .complete::<MessagesStream>(&body, deadline, &names, finish_reason)
    }
}

/// The `system` text and the `messages` list.
fn request_messages(
    messages: &[Message],
    names: &ToolNames,
) -> (Option<String>, Vec<RequestMessage>) {
    let mut system: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    // Tool results go back in one user turn, however many there are.
    let mut results: Vec<RequestBlock> = Vec::new();
    let user = |content| RequestMessage {
        role: Role::User,
        content,
    };
    for message in messages {
        if let Message::Tool {
            tool_call_id,
            content,
            is_error,
            ..
        } = message
        {
            results.push(RequestBlock::ToolResult {
                tool_use_id: tool_call_id.clone(),
                content: content.clone(),
                is_error: *is_error,
            });
            continue;
        }
        if !results.is_empty() {
            out.push(user(std::mem::take(&mut results)));
        }
        match message {
            Message::System { content } => system.push(content),
            Message::User { content } => out.push(user(vec![RequestBlock::Text {
                text: content.clone(),
            }])),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut blocks = Vec::new();
                if let Some(text) = content.as_deref().filter(|t| !t.is_empty()) {
                    blocks.push(RequestBlock::Text {
                        text: text.to_owned(),
                    });
                }
                for call in tool_calls {
                    blocks.push(RequestBlock::ToolUse {
                        id: call.id.clone(),
                        name: names.wire(&call.name),
                        input: call.arguments.clone(),
                    });
                }
                if blocks.is_empty() {
                    blocks.push(RequestBlock::Text {
                        text: content.clone().unwrap_or_default(),
                    });
                }
                out.push(RequestMessage {
                    role: Role::Assistant,
                    content: blocks,
                });
            }
            Message::Tool { .. } => {}
        }
    }
    if !results.is_empty() {
        out.push(user(results));
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
