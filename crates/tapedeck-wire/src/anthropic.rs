//! Anthropic Messages: the request ([`MessagesRequest`]), the whole response
//! ([`MessagesResponse`]), the stream events as typed
//! events ([`MessagesEvent`]), the bounded
//! stream assembler ([`MessagesStream`]) that puts them back into the body the API would have
//! sent unstreamed, and the reader of such a body ([`read_message`]).
//!
//! A stream is `message_start` (model, input tokens), `content_block_start` (a text block, or
//! a `tool_use` block with its id and name), `content_block_delta` (`text_delta`, or
//! `input_json_delta` pieces joined and parsed at `content_block_stop`), `message_delta` (stop
//! reason, output tokens) and `message_stop`; `ping` and `error` may come in between.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{parse_json, shorten};
use crate::limits::check_index;
use crate::reply::{check_calls, lenient_count, typed, usage};
use crate::{MAX_TOOL_CALLS, OverLimit, Reply, ToolCall, WireError, parse_arguments};

/// One stream event, as far as tapedeck reads it (vendors add fields and event types: the
/// others are ignored).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessagesEvent {
    /// The message begins.
    MessageStart {
        /// The message so far (its model and usage).
        message: MessageStart,
    },
    /// A content block begins.
    ContentBlockStart {
        /// Its position.
        index: Option<u64>,
        /// The block (kept as sent: its fields are recorded).
        content_block: Option<Value>,
    },
    /// A piece of a content block.
    ContentBlockDelta {
        /// The block's position.
        index: Option<u64>,
        /// The piece.
        delta: Option<BlockDelta>,
    },
    /// A content block is complete.
    ContentBlockStop {
        /// The block's position.
        index: Option<u64>,
    },
    /// The stop reason and the output tokens.
    MessageDelta {
        /// The stop reason.
        #[serde(default)]
        delta: MessageDeltaBody,
        /// The usage so far.
        usage: Option<MessagesUsage>,
    },
    /// The message is complete.
    MessageStop,
    /// An error reported mid-stream.
    Error {
        /// The error object.
        error: Option<Value>,
    },
    /// `ping` and event types added later.
    #[serde(other)]
    Other,
}

/// The `message` of `message_start`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MessageStart {
    /// The model that answers.
    pub model: Option<String>,
    /// The input tokens (and the output tokens so far).
    pub usage: Option<MessagesUsage>,
}

/// The `delta` of `message_delta`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MessageDeltaBody {
    /// Why the message stopped.
    pub stop_reason: Option<String>,
}

/// The piece a `content_block_delta` carries.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// A piece of a text block.
    TextDelta {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A piece of a `tool_use` block's input, as JSON text.
    InputJsonDelta {
        /// The piece.
        #[serde(default)]
        partial_json: String,
    },
    /// Thinking, signatures, citations: not read.
    #[serde(other)]
    Other,
}

/// Messages usage.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct MessagesUsage {
    /// Input tokens.
    #[serde(default, deserialize_with = "lenient_count")]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default, deserialize_with = "lenient_count")]
    pub output_tokens: Option<u64>,
}

/// A request, as tapedeck's agent sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// The model asked.
    pub model: String,
    /// The most tokens the answer may have.
    pub max_tokens: u64,
    /// The instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The conversation so far.
    pub messages: Vec<RequestMessage>,
    /// The tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<MessagesTool>,
    /// The sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Whether the answer is streamed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// One message of a [`MessagesRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestMessage {
    /// Whose turn.
    pub role: Role,
    /// Its blocks.
    pub content: Vec<RequestBlock>,
}

/// Who a [`RequestMessage`] is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The user (and the tools' results, which come back in the user's turn).
    User,
    /// The model.
    Assistant,
}

/// One content block of a [`RequestMessage`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call the model made.
    ToolUse {
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments.
        input: Value,
    },
    /// A tool's result.
    ToolResult {
        /// The call it answers.
        tool_use_id: String,
        /// The result, as text.
        content: String,
        /// Whether the tool failed.
        is_error: bool,
    },
}

/// A tool of a [`MessagesRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagesTool {
    /// The tool's name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON Schema of its input.
    pub input_schema: Value,
}

/// A whole (unstreamed) response, as far as tapedeck reads it (the other fields are ignored).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MessagesResponse {
    /// The content blocks, in order.
    pub content: Option<Vec<ContentBlock>>,
    /// Why the model stopped: `end_turn`, `tool_use`, `max_tokens`, …
    pub stop_reason: Option<String>,
    /// The usage.
    pub usage: Option<MessagesUsage>,
}

/// One content block of a [`MessagesResponse`]: `text` and `tool_use` are read; other kinds
/// (thinking, citations, server tools) are passed over.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContentBlock {
    /// The block's kind.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// A text block's text.
    pub text: Option<String>,
    /// A `tool_use` block's id.
    pub id: Option<String>,
    /// A `tool_use` block's tool name.
    pub name: Option<String>,
    /// A `tool_use` block's input.
    pub input: Option<Value>,
}

/// A content block being put together.
#[derive(Clone, Debug)]
struct Block {
    /// The block as `content_block_start` gave it (`Null` when that was not an object), its
    /// text appended.
    value: Value,
    /// The `input_json_delta` pieces so far.
    json: String,
}

impl Block {
    fn is_tool_use(&self) -> bool {
        self.value.get("type").and_then(Value::as_str) == Some("tool_use")
    }

    /// The block with its input parsed from the pieces (when there are any).
    fn with_input(&self) -> Value {
        let mut value = self.value.clone();
        if self.is_tool_use() && !self.json.trim().is_empty() {
            value["input"] = parse_arguments(&self.json);
        }
        value
    }
}

/// Assembles a Messages stream into the body the API would have sent unstreamed.
///
/// Indexes are trusted only up to [`crate::MAX_INDEX`] and tool calls counted up to
/// [`MAX_TOOL_CALLS`]: past a bound the assembler keeps the [`OverLimit`] and ignores the
/// rest of the stream; blocks are kept by index, so sparse indexes allocate nothing between.
#[derive(Clone, Debug, Default)]
pub struct MessagesStream {
    model: Option<String>,
    blocks: BTreeMap<u64, Block>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    stop_reason: Option<String>,
    done: bool,
    malformed: bool,
    over: Option<OverLimit>,
}

impl MessagesStream {
    /// Takes in one event (`name` is its SSE `event:` field, used when the data has no
    /// `type`). An error says the event was not understood; after an [`OverLimit`] nothing
    /// more is read, nor after the stream's end (`message_stop`): a client stops reading there,
    /// and so does [`crate::read_stream`].
    pub fn push(&mut self, name: Option<&str>, data: &str) -> Result<(), WireError> {
        if self.over.is_some() || self.done {
            return Ok(());
        }
        // Not Anthropic's own end, but compatible servers send it.
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let mut value = parse_json(data, "a stream event").inspect_err(|_| {
            if !data.trim().is_empty() {
                self.malformed = true;
            }
        })?;
        if let (Value::Object(map), Some(name)) = (&mut value, name)
            && !map.contains_key("type")
        {
            map.insert("type".into(), Value::String(name.to_owned()));
        }
        let event = MessagesEvent::deserialize(&value).map_err(|e| {
            WireError::Malformed(format!(
                "a stream event is not a Messages event ({e}): {}",
                shorten(data, 200)
            ))
        })?;
        self.apply(event).inspect_err(|e| {
            if let WireError::OverLimit(over) = e {
                self.over = Some(over.clone());
            }
        })
    }

    fn apply(&mut self, event: MessagesEvent) -> Result<(), WireError> {
        let index = |kind: &str, index: Option<u64>| match index {
            Some(index) => Ok(check_index(index, OverLimit::BlockIndex)?),
            None => Err(WireError::Malformed(format!(
                "a `{kind}` event without `index`"
            ))),
        };
        match event {
            MessagesEvent::MessageStart { message } => {
                if let Some(model) = message.model {
                    self.model = Some(model);
                }
                self.take_usage(message.usage);
            }
            MessagesEvent::ContentBlockStart {
                index: i,
                content_block,
            } => {
                let index = index("content_block_start", i)?;
                let block = content_block.ok_or_else(|| {
                    WireError::Malformed(
                        "a `content_block_start` event without `content_block`".into(),
                    )
                })?;
                // A block that is not an object (a hostile upstream's `5`) is kept as empty.
                let block = Block {
                    value: if block.is_object() {
                        block
                    } else {
                        Value::Null
                    },
                    json: String::new(),
                };
                if block.is_tool_use() {
                    let calls = self
                        .blocks
                        .iter()
                        .filter(|(i, b)| **i != index && b.is_tool_use())
                        .count();
                    if calls >= MAX_TOOL_CALLS {
                        return Err(OverLimit::ToolCalls.into());
                    }
                }
                let nameless = block.is_tool_use() && !block.value["name"].is_string();
                self.blocks.insert(index, block);
                if nameless {
                    return Err(WireError::Malformed(format!(
                        "tool_use block {index} starts without `name`"
                    )));
                }
            }
            MessagesEvent::ContentBlockDelta { index: i, delta } => {
                let index = index("content_block_delta", i)?;
                match delta.unwrap_or(BlockDelta::Other) {
                    BlockDelta::TextDelta { text } => {
                        let block = self.blocks.entry(index).or_insert_with(|| Block {
                            value: json!({"type": "text", "text": ""}),
                            json: String::new(),
                        });
                        if block.value.get("type").and_then(Value::as_str) != Some("text") {
                            return Err(WireError::Malformed(format!(
                                "a text_delta for block {index}, which is not a text block"
                            )));
                        }
                        // Appended in place: rebuilding the text at every delta was quadratic
                        // in the length of a stream of many small deltas.
                        match block.value.get_mut("text") {
                            Some(Value::String(whole)) => whole.push_str(&text),
                            _ => block.value["text"] = Value::String(text),
                        }
                    }
                    BlockDelta::InputJsonDelta { partial_json } => {
                        match self.blocks.get_mut(&index).filter(|b| b.is_tool_use()) {
                            Some(block) => block.json.push_str(&partial_json),
                            None => {
                                return Err(WireError::Malformed(format!(
                                    "an input_json_delta for block {index}, which is not a \
                                     tool_use block"
                                )));
                            }
                        }
                    }
                    BlockDelta::Other => {}
                }
            }
            MessagesEvent::ContentBlockStop { index: i } => {
                let index = index("content_block_stop", i)?;
                if let Some(block) = self.blocks.get_mut(&index).filter(|b| b.is_tool_use()) {
                    let json = std::mem::take(&mut block.json);
                    if !json.trim().is_empty() || block.value.get("input").is_none() {
                        block.value["input"] = parse_arguments(&json);
                    }
                }
            }
            MessagesEvent::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    self.stop_reason = Some(reason);
                }
                self.take_usage(usage);
            }
            MessagesEvent::MessageStop => self.done = true,
            MessagesEvent::Error { error } => {
                return Err(WireError::reported(&error.unwrap_or(Value::Null)));
            }
            MessagesEvent::Other => {}
        }
        Ok(())
    }

    fn take_usage(&mut self, usage: Option<MessagesUsage>) {
        let Some(usage) = usage else { return };
        if let Some(n) = usage.input_tokens {
            self.input_tokens = Some(n);
        }
        if let Some(n) = usage.output_tokens {
            self.output_tokens = Some(n);
        }
    }

    /// Whether the stream said it was complete (`message_stop`).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the stream ended with neither `message_stop` nor a stop reason.
    pub fn is_truncated(&self) -> bool {
        !self.done && self.stop_reason.is_none()
    }

    /// Whether any event was not JSON.
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    /// The bound the stream broke, if it did.
    pub fn over_limit(&self) -> Option<&OverLimit> {
        self.over.as_ref()
    }

    /// The response body the stream amounts to so far (a `tool_use` block cut before its stop
    /// gets the input that arrived, parsed if it parses).
    pub fn body(&self) -> Value {
        let content: Vec<Value> = self
            .blocks
            .values()
            .filter(|b| !b.value.is_null())
            .map(Block::with_input)
            .collect();
        let mut body = json!({
            "model": self.model,
            "role": "assistant",
            "content": content,
            "stop_reason": self.stop_reason,
        });
        if let (Some(i), Some(o)) = (self.input_tokens, self.output_tokens) {
            body["usage"] = json!({"input_tokens": i, "output_tokens": o});
        }
        body
    }

    /// The reply the stream amounts to so far.
    pub fn reply(&self) -> Result<Reply, WireError> {
        read_message(&self.body())
    }
}

/// Reads a whole Messages body (or one a [`MessagesStream`] assembled).
pub fn read_message(value: &Value) -> Result<Reply, WireError> {
    if value.get("type").and_then(Value::as_str) == Some("error") {
        return Err(WireError::reported(value.get("error").unwrap_or(value)));
    }
    let response: MessagesResponse = typed(value, "Messages")?;
    let blocks = response
        .content
        .ok_or_else(|| WireError::Malformed("the response has no `content` list".into()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for (i, block) in blocks.into_iter().enumerate() {
        match block.kind.as_deref() {
            Some("text") => {
                let piece = block.text.ok_or_else(|| {
                    WireError::Malformed(format!("`content[{i}]` is a text block without `text`"))
                })?;
                text.push_str(&piece);
            }
            Some("tool_use") => {
                let name = block.name.ok_or_else(|| {
                    WireError::Malformed(format!(
                        "`content[{i}]` is a tool_use block without `name`"
                    ))
                })?;
                tool_calls.push(ToolCall {
                    id: block.id.unwrap_or_else(|| format!("toolu_{i}")),
                    name,
                    arguments: block.input.unwrap_or_else(|| Value::Object(Map::new())),
                });
                check_calls(tool_calls.len())?;
            }
            Some(_) => {}
            None => {
                return Err(WireError::Malformed(format!(
                    "`content[{i}]` has no `type`"
                )));
            }
        }
    }
    Ok(Reply {
        text,
        tool_calls,
        finish_reason: response.stop_reason,
        usage: response
            .usage
            .and_then(|u| usage(u.input_tokens, u.output_tokens)),
    })
}
