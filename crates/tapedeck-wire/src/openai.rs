//! OpenAI Chat Completions: the request ([`ChatRequest`]), the whole response
//! ([`ChatCompletion`]), the stream chunks as typed
//! events ([`ChatChunk`]), the bounded stream assembler ([`ChatStream`]) that puts them back
//! into the body the API would have sent unstreamed, and the reader of such a body
//! ([`read_completion`]).
//!
//! Streaming (with `stream_options.include_usage`) sends content and tool-call deltas keyed
//! by index, the usage in a last chunk whose `choices` is empty, and ends at `data: [DONE]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{parse_json, shorten};
use crate::limits::check_index;
use crate::reply::{check_calls, lenient_count, typed, usage};
use crate::{MAX_TOOL_CALLS, OverLimit, Reply, ToolCall, Usage, WireError, parse_arguments};

/// A request, as tapedeck's agent sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model asked.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatRequestMessage>,
    /// The tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ChatTool>,
    /// The sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The most tokens the answer may have.
    pub max_tokens: u64,
    /// Whether the answer is streamed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// With `stream`: asks for the usage in a last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

/// The `stream_options` of a [`ChatRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Whether the stream ends with a usage-only chunk.
    pub include_usage: bool,
}

/// One message of a [`ChatRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatRequestMessage {
    /// Instructions.
    System {
        /// The text.
        content: String,
    },
    /// The user's turn.
    User {
        /// The text.
        content: String,
    },
    /// An earlier answer of the model.
    Assistant {
        /// The text: `null` when the answer was only tool calls.
        content: Option<String>,
        /// The tool calls it made.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ChatRequestToolCall>,
    },
    /// A tool's result.
    Tool {
        /// The call it answers.
        tool_call_id: String,
        /// The result, as text.
        content: String,
    },
}

/// A tool call of an assistant [`ChatRequestMessage`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequestToolCall {
    /// The call's id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionKind,
    /// The function and its arguments.
    pub function: FunctionCallText,
}

/// The function of a [`ChatRequestToolCall`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallText {
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

/// A tool of a [`ChatRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatTool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionKind,
    /// The function.
    pub function: FunctionSpec,
}

/// The function of a [`ChatTool`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// The tool's name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON Schema of its arguments.
    pub parameters: Value,
}

/// The one kind of tool and tool call Chat Completions has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionKind {
    /// `function`.
    #[default]
    Function,
}

/// A whole (unstreamed) response, as far as tapedeck reads it (vendors add fields: the others
/// are ignored).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChatCompletion {
    /// The choices (tapedeck reads the first).
    pub choices: Option<Vec<Choice>>,
    /// The usage.
    pub usage: Option<ChatUsage>,
}

/// One choice of a [`ChatCompletion`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Choice {
    /// The assistant's message.
    pub message: Option<ChatMessage>,
    /// Why the model stopped: `stop`, `tool_calls`, `length`, …
    pub finish_reason: Option<String>,
}

/// The assistant's message of a [`Choice`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChatMessage {
    /// The text: a string, or parts from some compatible servers.
    pub content: Option<ChatContent>,
    /// The text of a refusal, sent instead of `content`.
    pub refusal: Option<String>,
    /// The tool calls.
    pub tool_calls: Option<Vec<ChatToolCall>>,
}

/// The `content` of a [`ChatMessage`].
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    /// The text.
    Text(String),
    /// Content parts; their `text` is read.
    Parts(Vec<ContentPart>),
}

/// One part of [`ChatContent::Parts`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContentPart {
    /// The part's text (other kinds of part have none).
    pub text: Option<String>,
}

/// One tool call of a [`ChatMessage`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChatToolCall {
    /// The call's id.
    pub id: Option<String>,
    /// The function called.
    pub function: Option<FunctionCall>,
}

/// The function of a [`ChatToolCall`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FunctionCall {
    /// The tool's name.
    pub name: Option<String>,
    /// The arguments: JSON text (some compatible servers send the object itself).
    pub arguments: Option<Value>,
}

/// One `data:` chunk of a stream, as far as tapedeck reads it (vendors add fields: the others
/// are ignored).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChatChunk {
    /// The model that answers.
    pub model: Option<String>,
    /// The choices' deltas (empty in the usage-only last chunk).
    pub choices: Option<Vec<ChunkChoice>>,
    /// The usage, in the last chunk.
    pub usage: Option<ChatUsage>,
    /// An error reported mid-stream.
    pub error: Option<Value>,
}

/// One choice of a [`ChatChunk`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChunkChoice {
    /// Which choice (tapedeck reads choice 0).
    pub index: Option<u64>,
    /// What this chunk adds.
    pub delta: Option<ChunkDelta>,
    /// Set in the choice's last chunk.
    pub finish_reason: Option<String>,
}

/// The content and tool-call pieces of a [`ChunkChoice`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChunkDelta {
    /// A piece of the text.
    pub content: Option<String>,
    /// Pieces of tool calls.
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of one tool call: its id and name come first, the arguments in pieces.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ToolCallDelta {
    /// Which call (a position, bounded by [`crate::MAX_INDEX`]).
    pub index: Option<u64>,
    /// The call's id.
    pub id: Option<String>,
    /// Its name and a piece of its arguments.
    pub function: Option<FunctionDelta>,
}

/// The function part of a [`ToolCallDelta`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FunctionDelta {
    /// The tool's name.
    pub name: Option<String>,
    /// A piece of the arguments' JSON text.
    pub arguments: Option<String>,
}

/// Chat Completions usage.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct ChatUsage {
    /// Input tokens.
    #[serde(default, deserialize_with = "lenient_count")]
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default, deserialize_with = "lenient_count")]
    pub completion_tokens: Option<u64>,
}

/// A tool call being put together from deltas.
#[derive(Clone, Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Assembles a Chat Completions stream into the body the API would have sent unstreamed.
///
/// Indexes are trusted only up to [`crate::MAX_INDEX`] and tool calls counted up to
/// [`MAX_TOOL_CALLS`]: past a bound the assembler keeps the [`OverLimit`] and ignores the
/// rest of the stream, so its memory stays bounded whatever the upstream sends.
#[derive(Clone, Debug, Default)]
pub struct ChatStream {
    model: Option<String>,
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    finish: Option<String>,
    usage: Option<Usage>,
    done: bool,
    malformed: bool,
    over: Option<OverLimit>,
}

impl ChatStream {
    /// Takes in one `data:` payload. An error says the chunk was not understood (the state is
    /// then as it was before it, but for an [`OverLimit`], after which nothing more is read).
    /// Nothing after `[DONE]` is read either: a client stops reading there, and so does
    /// [`crate::read_stream`].
    pub fn push(&mut self, data: &str) -> Result<(), WireError> {
        if self.over.is_some() || self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let value = parse_json(data, "a stream chunk").inspect_err(|_| {
            if !data.trim().is_empty() {
                self.malformed = true;
            }
        })?;
        let chunk = ChatChunk::deserialize(&value).map_err(|e| {
            WireError::Malformed(format!(
                "a stream chunk is not a Chat Completions chunk ({e}): {}",
                shorten(data, 200)
            ))
        })?;
        if let Some(error) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            return Err(WireError::reported(error));
        }
        self.apply(chunk).map_err(|over| {
            self.over = Some(over.clone());
            over.into()
        })
    }

    fn apply(&mut self, chunk: ChatChunk) -> Result<(), OverLimit> {
        if let Some(model) = chunk.model {
            self.model = Some(model);
        }
        if let Some(u) = chunk.usage {
            self.usage =
                u.prompt_tokens
                    .zip(u.completion_tokens)
                    .map(|(input_tokens, output_tokens)| Usage {
                        input_tokens,
                        output_tokens,
                    });
        }
        for choice in chunk.choices.into_iter().flatten() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content {
                    self.text.push_str(&text);
                }
                for (position, call) in delta.tool_calls.into_iter().flatten().enumerate() {
                    self.call_delta(position, call)?;
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(reason);
            }
        }
        Ok(())
    }

    /// One tool-call delta. A delta without an index goes on the last call (the first one on
    /// its position).
    fn call_delta(&mut self, position: usize, call: ToolCallDelta) -> Result<(), OverLimit> {
        let index = match call.index {
            Some(index) => index,
            None => match self.calls.keys().next_back() {
                Some(last) => *last,
                None => position as u64,
            },
        };
        let index = check_index(index, OverLimit::ToolCallIndex)?;
        if !self.calls.contains_key(&index) && self.calls.len() >= MAX_TOOL_CALLS {
            return Err(OverLimit::ToolCalls);
        }
        let entry = self.calls.entry(index).or_default();
        if let Some(id) = call.id.filter(|id| !id.is_empty()) {
            entry.id = id;
        }
        if let Some(function) = call.function {
            if let Some(name) = function.name.filter(|_| entry.name.is_empty()) {
                entry.name = name;
            }
            if let Some(piece) = function.arguments {
                entry.arguments.push_str(&piece);
            }
        }
        Ok(())
    }

    /// Whether the stream said it was complete (`[DONE]`).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the stream ended with neither `[DONE]` nor a finish reason.
    pub fn is_truncated(&self) -> bool {
        !self.done && self.finish.is_none()
    }

    /// Whether any chunk was not JSON.
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    /// The bound the stream broke, if it did.
    pub fn over_limit(&self) -> Option<&OverLimit> {
        self.over.as_ref()
    }

    /// The response body the stream amounts to so far.
    pub fn body(&self) -> Value {
        let content = if self.text.is_empty() && !self.calls.is_empty() {
            Value::Null
        } else {
            Value::String(self.text.clone())
        };
        let mut message = json!({"role": "assistant", "content": content});
        if !self.calls.is_empty() {
            message["tool_calls"] = self
                .calls
                .values()
                .map(|c| {
                    json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
        }
        let mut body = json!({
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish}],
        });
        if let Some(u) = self.usage {
            body["usage"] =
                json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens});
        }
        body
    }

    /// The reply the stream amounts to so far.
    pub fn reply(&self) -> Result<Reply, WireError> {
        read_completion(&self.body())
    }
}

/// Reads a whole Chat Completions body (or one a [`ChatStream`] assembled).
pub fn read_completion(value: &Value) -> Result<Reply, WireError> {
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(WireError::reported(error));
    }
    let completion: ChatCompletion = typed(value, "Chat Completions")?;
    let choice = completion
        .choices
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| WireError::Malformed("the response has no `choices[0]`".into()))?;
    let message = choice.message.ok_or_else(|| {
        WireError::Malformed("`choices[0].message` is missing or not an object".into())
    })?;
    let mut text = match message.content {
        None => String::new(),
        Some(ChatContent::Text(text)) => text,
        Some(ChatContent::Parts(parts)) => parts.into_iter().filter_map(|p| p.text).collect(),
    };
    if text.is_empty()
        && let Some(refusal) = message.refusal
    {
        text = refusal;
    }
    let calls = message.tool_calls.unwrap_or_default();
    check_calls(calls.len())?;
    let tool_calls = calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| read_call(i, call))
        .collect::<Result<_, _>>()?;
    let usage = completion
        .usage
        .and_then(|u| usage(u.prompt_tokens, u.completion_tokens));
    Ok(Reply {
        text,
        tool_calls,
        finish_reason: choice.finish_reason,
        usage,
    })
}

/// One entry of `message.tool_calls`.
fn read_call(i: usize, call: ChatToolCall) -> Result<ToolCall, WireError> {
    let function = call.function.unwrap_or_default();
    let name = function.name.ok_or_else(|| {
        WireError::Malformed(format!(
            "`choices[0].message.tool_calls[{i}]` has no `function.name`"
        ))
    })?;
    let arguments = match function.arguments {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(text)) => parse_arguments(&text),
        Some(other) => other,
    };
    Ok(ToolCall {
        id: call
            .id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("call_{i}")),
        name,
        arguments,
    })
}
