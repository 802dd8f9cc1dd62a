//! OpenAI Responses: the stream events tapedeck reads ([`ResponsesEvent`]) and the stream
//! assembler ([`ResponsesStream`]): the text deltas as they come, and the whole response that
//! `response.completed` (or `incomplete`, `failed`) carries at the end; and the reader of a
//! whole response ([`read_response`]).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{parse_json, shorten};
use crate::reply::{check_calls, usage};
use crate::{Reply, ToolCall, WireError, parse_arguments};

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
    /// Takes in one event's data.
    pub fn push(&mut self, data: &str) -> Result<(), WireError> {
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
    let output = body
        .get("output")
        .and_then(Value::as_array)
        .ok_or_else(|| WireError::Malformed("the response has no `output` list".into()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let field = |item: &Value, key: &str| {
        item.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    for item in output {
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
                tool_calls.push(ToolCall {
                    id: field(item, "call_id"),
                    name: field(item, "name"),
                    arguments: parse_arguments(&field(item, "arguments")),
                });
                check_calls(tool_calls.len())?;
            }
            _ => {}
        }
    }
    let finish_reason = match body.get("status").and_then(Value::as_str) {
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
    Ok(Reply {
        text,
        tool_calls,
        finish_reason,
        usage: usage(body.get("usage"), "input_tokens", "output_tokens"),
    })
}
