//! What the proxy records of a model response ([`Answer`]), read from a whole body
//! ([`answer`]) or from the body a stream amounts to ([`Assembler`], over the one assembler of
//! each API).

use serde_json::{Value, json};

use crate::anthropic::{MessagesStream, read_message};
use crate::openai::{ChatStream, read_completion};
use crate::responses::{ResponsesStream, read_response};
use crate::sse::SseEvent;
use crate::{OverLimit, Provider, Usage, WireError};

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

/// Reads a whole (non-streamed, or assembled) response body with its API's reader: `None`
/// when it is not one, an [`OverLimit`] when it holds more than
/// [`MAX_TOOL_CALLS`](crate::MAX_TOOL_CALLS) tool calls. The message is recorded as the API
/// sent it.
pub fn answer(provider: Provider, body: &Value) -> Option<Result<Answer, OverLimit>> {
    let read = match provider {
        Provider::OpenAi => read_completion(body),
        Provider::Anthropic => read_message(body),
        Provider::Responses => read_response(body),
    };
    let reply = match read {
        Ok(reply) => reply,
        Err(WireError::OverLimit(over)) => return Some(Err(over)),
        Err(WireError::Malformed(_) | WireError::Reported { .. }) => return None,
    };
    let message = match provider {
        Provider::OpenAi => body.pointer("/choices/0/message")?.clone(),
        Provider::Anthropic => json!({"role": "assistant", "content": body.get("content")?}),
        Provider::Responses => json!({"role": "assistant", "output": body.get("output")?}),
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(Ok(Answer {
        id: text("id"),
        model: text("model"),
        message,
        tool_calls: reply
            .tool_calls
            .into_iter()
            .map(|c| (c.id, c.name, c.arguments))
            .collect(),
        finish_reason: reply.finish_reason,
        usage: reply.usage,
        text: reply.text,
    }))
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
