//! OpenAI Responses: the whole response ([`ResponseObject`]), the stream events tapedeck reads
//! ([`ResponsesEvent`]) and the stream
//! assembler ([`ResponsesStream`]): the text deltas as they come, and the whole response that
//! `response.completed` (or `incomplete`, `failed`) carries at the end; and the reader of a
//! whole response ([`read_response`]).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{parse_json, shorten};
use crate::reply::{check_calls, typed, usage};
use crate::{Reply, ToolCall, WireError, parse_arguments};

/// A whole response (unstreamed, or the one `response.completed` carries), as far as tapedeck
/// reads it (the other fields are ignored).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResponseObject {
    /// The output items, in order.
    pub output: Option<Vec<OutputItem>>,
    /// `completed`, `incomplete`, `failed`, …
    pub status: Option<String>,
    /// Why an `incomplete` response stopped.
    pub incomplete_details: Option<IncompleteDetails>,
    /// The usage.
    pub usage: Option<ResponsesUsage>,
}

/// One output item of a [`ResponseObject`]: `message` and `function_call` are read; other
/// kinds (reasoning, built-in tools) are passed over.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OutputItem {
    /// The item's kind.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// A message's content parts.
    pub content: Option<Vec<OutputContent>>,
    /// A function call's id.
    pub call_id: Option<String>,
    /// A function call's tool name.
    pub name: Option<String>,
    /// A function call's arguments: JSON text.
    pub arguments: Option<Value>,
}

/// One content part of a `message` [`OutputItem`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OutputContent {
    /// The part's text (refusals and other kinds have none).
    pub text: Option<String>,
}

/// The `incomplete_details` of a [`ResponseObject`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens`, `content_filter`, …
    pub reason: Option<String>,
}

/// Responses usage: the same two counts as Anthropic Messages, under the same names.
pub type ResponsesUsage = crate::anthropic::MessagesUsage;

/// One stream event, as far as tapedeck reads it (the others are ignored).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type")]
pub enum ResponsesEvent {
    /// A piece of the output text.
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        /// The piece.
        #[serde(default)]
        delta: String,
    },
    /// The end of the stream, with the whole response.
    #[serde(
        rename = "response.completed",
        alias = "response.incomplete",
        alias = "response.failed"
    )]
    Finished {
        /// The response, as unstreamed.
        response: Option<Value>,
    },
    /// Every other event.
    #[serde(other)]
    Other,
}

/// Assembles a Responses stream: its final response, or the text so far when it was cut.
#[derive(Clone, Debug, Default)]
pub struct ResponsesStream {
    model: Option<String>,
    text: String,
    final_body: Option<Value>,
    done: bool,
    malformed: bool,
}

impl ResponsesStream {
    /// Takes in one event's data; nothing after the stream said it was complete (a client
    /// stops reading there, and so does [`crate::read_stream`]).
    pub fn push(&mut self, data: &str) -> Result<(), WireError> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let value = parse_json(data, "a stream event").inspect_err(|_| {
            if !data.trim().is_empty() {
                self.malformed = true;
            }
        })?;
        if let Some(model) = value.get("model").and_then(Value::as_str) {
            self.model = Some(model.to_owned());
        }
        let event = ResponsesEvent::deserialize(&value).map_err(|e| {
            WireError::Malformed(format!(
                "a stream event is not a Responses event ({e}): {}",
                shorten(data, 200)
            ))
        })?;
        match event {
            ResponsesEvent::OutputTextDelta { delta } => self.text.push_str(&delta),
            ResponsesEvent::Finished { response } => {
                self.final_body = response;
                self.done = true;
            }
            ResponsesEvent::Other => {}
        }
        Ok(())
    }

    /// Whether the stream said it was complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether any event was not JSON.
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    /// The response body the stream amounts to so far.
    pub fn body(&self) -> Value {
        self.final_body.clone().unwrap_or_else(|| {
            json!({
                "model": self.model,
                "status": "incomplete",
                "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": self.text}]}],
            })
        })
    }
}

/// Reads a whole Responses body (or the one a [`ResponsesStream`] amounts to). The API has no
/// finish reason: it is derived from `status`, in Chat Completions' words.
pub fn read_response(body: &Value) -> Result<Reply, WireError> {
    let response: ResponseObject = typed(body, "Responses")?;
    let output = response
        .output
        .ok_or_else(|| WireError::Malformed("the response has no `output` list".into()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for item in output {
        match item.kind.as_deref() {
            Some("message") => {
                for part in item.content.into_iter().flatten() {
                    text.extend(part.text);
                }
            }
            Some("function_call") => {
                tool_calls.push(ToolCall {
                    id: item.call_id.unwrap_or_default(),
                    name: item.name.unwrap_or_default(),
                    arguments: match item.arguments {
                        Some(Value::String(text)) => parse_arguments(&text),
                        None | Some(Value::Null) => parse_arguments(""),
                        Some(other) => other,
                    },
                });
                check_calls(tool_calls.len())?;
            }
            _ => {}
        }
    }
    let finish_reason = match response.status.as_deref() {
        Some("completed") if !tool_calls.is_empty() => Some("tool_calls".to_owned()),
        Some("completed") => Some("stop".to_owned()),
        Some("incomplete") => Some(
            match response
                .incomplete_details
                .and_then(|d| d.reason)
                .as_deref()
            {
                Some("max_output_tokens") => "length".to_owned(),
                Some(other) => other.to_owned(),
                None => "incomplete".to_owned(),
            },
        ),
        Some(other) => Some(other.to_owned()),
        None => None,
    };
    Ok(Reply {
        text,
        tool_calls,
        finish_reason,
        usage: response
            .usage
            .and_then(|u| usage(u.input_tokens, u.output_tokens)),
    })
}
