//! OpenAI Chat Completions: the stream chunks as typed events ([`ChatChunk`]), the bounded
//! stream assembler ([`ChatStream`]) that puts them back into the body the API would have sent
//! unstreamed, and the reader of such a body ([`read_completion`]).
//!
//! Streaming (with `stream_options.include_usage`) sends content and tool-call deltas keyed
//! by index, the usage in a last chunk whose `choices` is empty, and ends at `data: [DONE]`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{parse_json, shorten};
use crate::limits::check_index;
use crate::reply::{check_calls, usage};
use crate::{MAX_TOOL_CALLS, OverLimit, Reply, ToolCall, Usage, WireError, parse_arguments};

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
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
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
    pub fn push(&mut self, data: &str) -> Result<(), WireError> {
        if self.over.is_some() {
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
    let choice = value
        .pointer("/choices/0")
        .ok_or_else(|| WireError::Malformed("the response has no `choices[0]`".into()))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| {
            WireError::Malformed("`choices[0].message` is missing or not an object".into())
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
            return Err(WireError::Malformed(
                "`choices[0].message.content` is neither text nor null".into(),
            ));
        }
    };
    if text.is_empty()
        && let Some(refusal) = message.get("refusal").and_then(Value::as_str)
    {
        text = refusal.to_owned();
    }
    let tool_calls = match message.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => {
            check_calls(calls.len())?;
            calls
                .iter()
                .enumerate()
                .map(|(i, call)| read_call(i, call))
                .collect::<Result<_, _>>()?
        }
        Some(_) => {
            return Err(WireError::Malformed(
                "`choices[0].message.tool_calls` is not a list".into(),
            ));
        }
    };
    Ok(Reply {
        text,
        tool_calls,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: usage(value.get("usage"), "prompt_tokens", "completion_tokens"),
    })
}

/// One entry of `message.tool_calls`.
fn read_call(i: usize, call: &Value) -> Result<ToolCall, WireError> {
    let name = call
        .pointer("/function/name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            WireError::Malformed(format!(
                "`choices[0].message.tool_calls[{i}]` has no `function.name`"
            ))
        })?;
    let arguments = match call.pointer("/function/arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(text)) => parse_arguments(text),
        Some(other) => other.clone(),
    };
    Ok(ToolCall {
        id: call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("call_{i}"), str::to_owned),
        name: name.to_owned(),
        arguments,
    })
}
