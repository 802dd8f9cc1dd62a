//! The provider-neutral conversation: [`Message`], [`ModelRequest`], [`ModelResponse`].
//!
//! Backends translate these to and from OpenAI Chat Completions and Anthropic Messages. Each
//! message is recorded as its own blob in this shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tapedeck_trace::Usage;

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// The system prompt.
    System {
        /// Its text.
        content: String,
    },
    /// The user's input.
    User {
        /// Its text.
        content: String,
    },
    /// The model's turn: text, tool calls, or both.
    Assistant {
        /// Its text, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        /// The tool calls it asks for.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCallRequest>,
    },
    /// A tool call's observation.
    Tool {
        /// The call it answers.
        tool_call_id: String,
        /// The tool.
        name: String,
        /// The observation: the output as JSON text, or an error message.
        content: String,
        /// Whether the observation is an error.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

/// A tool call the model asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRequest {
    /// The call id the model gave (or one made up where the API gives none).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments. A model that sends arguments that are not JSON gets them as a string.
    pub arguments: Value,
}

/// A tool as offered to the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
}

/// One request to the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelRequest {
    /// The model name.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// The tools it may call.
    pub tools: Vec<ToolSpec>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The most tokens the answer may have.
    pub max_output_tokens: u64,
    /// The step (1 for the first call of a run): a scripted model keys responses on it.
    #[serde(skip)]
    pub step: u64,
}

/// Why the model stopped, mapped from each provider's own words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// It finished its turn.
    Stop,
    /// It wants tool calls run.
    ToolCalls,
    /// It hit its output limit (OpenAI `length`, Anthropic `max_tokens`).
    Length,
    /// Something else (content filter, refusal …).
    Other,
}

/// The model's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelResponse {
    /// The assistant message.
    pub message: Message,
    /// Why it stopped.
    pub finish: FinishReason,
    /// The provider's own finish reason (`stop`, `end_turn`, …), as recorded.
    pub raw_finish_reason: Option<String>,
    /// Token usage, when reported.
    pub usage: Option<Usage>,
    /// Whether it arrived as a stream.
    pub streamed: bool,
    /// Whether the stream was cut before it completed.
    pub truncated: bool,
}

impl ModelResponse {
    /// The tool calls the response asks for.
    pub fn tool_calls(&self) -> &[ToolCallRequest] {
        match &self.message {
            Message::Assistant { tool_calls, .. } => tool_calls,
            _ => &[],
        }
    }

    /// The response's text.
    pub fn text(&self) -> Option<&str> {
        match &self.message {
            Message::Assistant { content, .. } => content.as_deref(),
            _ => None,
        }
    }
}

impl ModelRequest {
    /// The request's matching form — `{model, messages, tools}` with every message and tool
    /// schema as JSON, `tools` left out when none are offered — and its hash: the
    /// `request_hash` of `llm_request`, by which a replay finds the request again.
    pub fn matching_form(&self) -> (Value, Vec<Value>, tapedeck_trace::ContentHash) {
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
            .collect();
        let mut form = serde_json::json!({"model": self.model, "messages": messages});
        if !self.tools.is_empty() {
            form["tools"] = serde_json::to_value(&self.tools).unwrap_or(Value::Null);
        }
        // `write_canonical` on the form itself: `hash_json` would copy it first.
        let mut text = String::new();
        let hash = match tapedeck_trace::write_canonical(&form, &mut text) {
            Ok(()) => tapedeck_trace::hash_bytes(text.as_bytes()),
            Err(_) => tapedeck_trace::hash_bytes(b""),
        };
        (form, messages, hash)
    }
}

/// [`ModelRequest::matching_form`]'s hash and message JSON, kept up to date from one request
/// of a run to the next.
///
/// A run's conversation only grows, and every request resends all of it: hashing each request
/// from scratch serializes the whole history again at every step. This keeps each message's
/// JSON and canonical text (and the tools'), serializes only messages that are new or changed,
/// and hashes the same canonical text as `matching_form`: `{"messages":[…],"model":…,
/// "tools":…}` (keys in canonical order, `tools` left out when none are offered).
#[derive(Debug, Default)]
pub struct MatchingForm {
    messages: Vec<FormMessage>,
    tools: Option<(Vec<ToolSpec>, String)>,
}

#[derive(Debug)]
struct FormMessage {
    message: Message,
    value: Value,
    text: String,
    /// Its blob, once stored.
    blob: Option<tapedeck_trace::ContentHash>,
}

impl MatchingForm {
    /// Brings the form up to `request`; returns the request's hash (its `request_hash`).
    pub fn update(&mut self, request: &ModelRequest) -> tapedeck_trace::ContentHash {
        self.messages.truncate(request.messages.len());
        for (i, message) in request.messages.iter().enumerate() {
            if self.messages.get(i).is_some_and(|m| m.message == *message) {
                continue;
            }
            let value = serde_json::to_value(message).unwrap_or(Value::Null);
            let entry = FormMessage {
                message: message.clone(),
                text: canonical(&value),
                value,
                blob: None,
            };
            match self.messages.get_mut(i) {
                Some(slot) => *slot = entry,
                None => self.messages.push(entry),
            }
        }
        let size: usize = self.messages.iter().map(|m| m.text.len() + 1).sum();
        let mut form = String::with_capacity(size + request.model.len() + 32);
        form.push_str("{\"messages\":[");
        for (i, m) in self.messages.iter().enumerate() {
            if i > 0 {
                form.push(',');
            }
            form.push_str(&m.text);
        }
        form.push_str("],\"model\":");
        form.push_str(&canonical(&Value::String(request.model.clone())));
        if !request.tools.is_empty() {
            if self
                .tools
                .as_ref()
                .is_none_or(|(tools, _)| *tools != request.tools)
            {
                let value = serde_json::to_value(&request.tools).unwrap_or(Value::Null);
                self.tools = Some((request.tools.clone(), canonical(&value)));
            }
            form.push_str(",\"tools\":");
            form.push_str(
                self.tools
                    .as_ref()
                    .map_or("null", |(_, text)| text.as_str()),
            );
        }
        form.push('}');
        tapedeck_trace::hash_bytes(form.as_bytes())
    }

    /// The blob of every message of the last request, in order; `store` stores those not
    /// stored yet (a message's JSON, as `matching_form` gives it) and returns its hash.
    pub fn message_blobs<E>(
        &mut self,
        mut store: impl FnMut(&Value) -> Result<tapedeck_trace::ContentHash, E>,
    ) -> Result<Vec<tapedeck_trace::ContentHash>, E> {
        self.messages
            .iter_mut()
            .map(|m| match m.blob {
                Some(hash) => Ok(hash),
                None => {
                    let hash = store(&m.value)?;
                    m.blob = Some(hash);
                    Ok(hash)
                }
            })
            .collect()
    }
}

/// The canonical text of a value (`null` in the impossible case it has none).
fn canonical(value: &Value) -> String {
    let mut text = String::new();
    if tapedeck_trace::write_canonical(value, &mut text).is_err() {
        text = "null".to_owned();
    }
    text
}
