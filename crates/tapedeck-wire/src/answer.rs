//! What the proxy records of a model response ([`Answer`]), read from a whole body
//! ([`answer`]) or from the body a stream amounts to ([`Assembler`], over the one assembler of
//! each API).

use serde_json::{Value, json};

use crate::anthropic::MessagesStream;
use crate::openai::ChatStream;
use crate::responses::ResponsesStream;
use crate::sse::SseEvent;
use crate::{MAX_TOOL_CALLS, OverLimit, Provider, Usage};

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
    pub usage: Option<Usage>,
    /// The text of the message.
    pub text: String,
}

/// `usage.input_tokens` and `usage.output_tokens`, as the Responses and Messages APIs name them.
fn input_output_tokens(body: &Value) -> Option<Usage> {
    crate::anthropic::body_usage(body)
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
            let usage =
                crate::reply::usage(body.get("usage"), "prompt_tokens", "completion_tokens");
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

/// Assembles a streamed response into the body the API would have sent unstreamed, with the
/// assembler of its API ([`ChatStream`], [`MessagesStream`], [`ResponsesStream`]).
///
/// Past a bound ([`OverLimit`]) the rest of the stream is ignored, so its memory stays bounded
/// whatever the upstream sends. An event that is not understood is left out: the proxy records
/// what it can of a response its client got whole.
#[derive(Debug)]
pub struct Assembler {
    stream: Stream,
    /// Whether the stream said it was complete (`[DONE]`, `message_stop`,
    /// `response.completed`).
    pub done: bool,
    /// Whether any event was not understood (not JSON).
    pub malformed: bool,
}

#[derive(Debug)]
enum Stream {
    Chat(ChatStream),
    Messages(MessagesStream),
    Responses(ResponsesStream),
}

impl Assembler {
    /// An assembler for a provider's stream.
    pub fn new(provider: Provider) -> Self {
        let stream = match provider {
            Provider::OpenAi => Stream::Chat(ChatStream::default()),
            Provider::Anthropic => Stream::Messages(MessagesStream::default()),
            Provider::Responses => Stream::Responses(ResponsesStream::default()),
        };
        Self {
            stream,
            done: false,
            malformed: false,
        }
    }

    /// The bound the stream broke, if it did; the events after it were ignored.
    pub fn over_limit(&self) -> Option<&OverLimit> {
        match &self.stream {
            Stream::Chat(s) => s.over_limit(),
            Stream::Messages(s) => s.over_limit(),
            Stream::Responses(_) => None,
        }
    }

    /// Takes in one event.
    pub fn event(&mut self, event: &SseEvent) {
        // An event not understood is left out (see the type's documentation); a bound broken
        // is kept by the stream and seen through `over_limit`.
        let (_, done, malformed) = match &mut self.stream {
            Stream::Chat(s) => (s.push(&event.data), s.is_done(), s.is_malformed()),
            Stream::Messages(s) => (
                s.push(event.event.as_deref(), &event.data),
                s.is_done(),
                s.is_malformed(),
            ),
            Stream::Responses(s) => (s.push(&event.data), s.is_done(), s.is_malformed()),
        };
        self.done = done;
        self.malformed = malformed;
    }

    /// The response body the stream amounts to so far.
    pub fn body(&self) -> Value {
        match &self.stream {
            Stream::Chat(s) => s.body(),
            Stream::Messages(s) => s.body(),
            Stream::Responses(s) => s.body(),
        }
    }
}
