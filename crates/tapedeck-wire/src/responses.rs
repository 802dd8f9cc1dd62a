//! OpenAI Responses: the stream events tapedeck reads ([`ResponsesEvent`]) and the stream
//! assembler ([`ResponsesStream`]): the text deltas as they come, and the whole response that
//! `response.completed` (or `incomplete`, `failed`) carries at the end.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::WireError;
use crate::error::{parse_json, shorten};

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
