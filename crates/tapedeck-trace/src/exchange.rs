//! What an `http_exchange` refers to: the [`RecordedResponse`] replay serves again, and the
//! [`RequestFrame`] that keeps a model call's recorded request linear in size.
//!
//! Both are blobs, so both are public formats under the tape rules: a field added, removed or
//! retyped bumps `TAPE_VERSION`. A response recorded by any earlier version reads as a
//! `RecordedResponse` as it is (its form has not changed since version 1).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A response as the proxy recorded it: status, content type, and the body whole or as the SSE
/// pieces as they arrived, secrets removed. Replay serves it back byte for byte.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(try_from = "ResponseForm", into = "ResponseForm")]
pub struct RecordedResponse {
    /// The HTTP status the client got (the proxy's own when it answered itself).
    pub status: u16,
    /// The response's content type, when it had one.
    pub content_type: Option<String>,
    /// What the response carried.
    pub body: ResponseBody,
    /// The body was cut: the upstream failed before its end, or it went over `over_limit`.
    pub truncated: bool,
    /// The bound the body went over: the rest reached the client but was not kept.
    pub over_limit: Option<String>,
}

/// The content of a [`RecordedResponse`].
#[derive(Clone, PartialEq, Debug)]
pub enum ResponseBody {
    /// A whole body, as text.
    Whole(String),
    /// An event stream: its pieces as they arrived, so replay keeps their chunking.
    Sse(Vec<String>),
    /// No body: the proxy could not reach the upstream, and says why.
    Failed(String),
}

impl RecordedResponse {
    /// The pieces replay sends: the body as one piece, the stream's pieces as they came, or for
    /// a call the proxy failed, the error it answered with.
    pub fn into_pieces(self) -> Vec<String> {
        match self.body {
            ResponseBody::Whole(body) => vec![body],
            ResponseBody::Sse(pieces) => pieces,
            ResponseBody::Failed(message) => vec![
                serde_json::json!({"error": {"type": "upstream_unreachable", "message": message}})
                    .to_string(),
            ],
        }
    }

    /// Whether the response was an event stream.
    pub fn is_sse(&self) -> bool {
        matches!(self.body, ResponseBody::Sse(_))
    }
}

/// The serialized form: exactly one of `body`, `sse` and `error`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseForm {
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sse: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    over_limit: Option<String>,
}

impl TryFrom<ResponseForm> for RecordedResponse {
    type Error = String;

    fn try_from(form: ResponseForm) -> Result<Self, String> {
        let body = match (form.body, form.sse, form.error) {
            (Some(body), None, None) => ResponseBody::Whole(body),
            (None, Some(pieces), None) => ResponseBody::Sse(pieces),
            (None, None, Some(error)) => ResponseBody::Failed(error),
            _ => {
                return Err(
                    "a recorded response has exactly one of `body`, `sse` and `error`".to_owned(),
                );
            }
        };
        Ok(Self {
            status: form.status,
            content_type: form.content_type,
            body,
            truncated: form.truncated,
            over_limit: form.over_limit,
        })
    }
}

impl From<RecordedResponse> for ResponseForm {
    fn from(response: RecordedResponse) -> Self {
        let (body, sse, error) = match response.body {
            ResponseBody::Whole(body) => (Some(body), None, None),
            ResponseBody::Sse(pieces) => (None, Some(pieces), None),
            ResponseBody::Failed(error) => (None, None, Some(error)),
        };
        Self {
            status: response.status,
            content_type: response.content_type,
            body,
            sse,
            error,
            truncated: response.truncated,
            over_limit: response.over_limit,
        }
    }
}

/// A model call's matching form (`{"endpoint", "body"}`) without its messages.
///
/// Agents resend the whole conversation on every call, so storing each request's matching form
/// whole grows a run quadratically. The messages are already stored once each, in the call's
/// `llm_request` (which extends the previous one); the frame keeps the rest, and where in the
/// body the messages came from, so that [`RequestFrame::join`] rebuilds the form exactly. Frames
/// of one conversation are usually identical, so the store keeps one.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFrame {
    /// The endpoint's path.
    pub endpoint: String,
    /// The body without the fields the messages came from.
    pub body: Map<String, Value>,
    /// The field the first message's `content` came from (`system`, `instructions`): the
    /// message is `{"role": "system", "content": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The field holding the other messages as an array (`messages`, `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// The field holding the one other message's `content` as a string (`input`): the message
    /// is `{"role": "user", "content": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl RequestFrame {
    /// Splits a matching form into its frame and its messages: `system` names the field whose
    /// value is a system message, `list` the field whose array holds the messages and whose
    /// string (if it is one) is a user message. `None` when the form is not an object with an
    /// object `body`.
    pub fn split(
        matching: &Value,
        system: Option<&str>,
        list: Option<&str>,
    ) -> Option<(Self, Vec<Value>)> {
        let endpoint = matching.get("endpoint")?.as_str()?.to_owned();
        let mut body = matching.get("body")?.as_object()?.clone();
        let mut frame = Self {
            endpoint,
            body: Map::new(),
            system: None,
            list: None,
            text: None,
        };
        let mut messages = Vec::new();
        if let Some(field) = system
            && let Some(content) = body.remove(field)
        {
            messages.push(serde_json::json!({"role": "system", "content": content}));
            frame.system = Some(field.to_owned());
        }
        if let Some(field) = list {
            match body.remove(field) {
                Some(Value::Array(items)) => {
                    messages.extend(items);
                    frame.list = Some(field.to_owned());
                }
                Some(Value::String(content)) => {
                    messages.push(serde_json::json!({"role": "user", "content": content}));
                    frame.text = Some(field.to_owned());
                }
                Some(other) => {
                    body.insert(field.to_owned(), other);
                }
                None => {}
            }
        }
        frame.body = body;
        Some((frame, messages))
    }

    /// The matching form again, from the frame and the messages [`split`](Self::split) took
    /// out; `None` when the messages do not fit the frame (too few for its fields, or a
    /// system or text message without its `content`).
    pub fn join(&self, messages: &[Value]) -> Option<Value> {
        let mut body = self.body.clone();
        let mut rest = messages;
        if let Some(field) = &self.system {
            let (first, others) = rest.split_first()?;
            body.insert(field.clone(), first.get("content")?.clone());
            rest = others;
        }
        if let Some(field) = &self.list {
            body.insert(field.clone(), Value::Array(rest.to_vec()));
        } else if let Some(field) = &self.text {
            let [only] = rest else { return None };
            body.insert(field.clone(), only.get("content")?.clone());
        } else if !rest.is_empty() {
            return None;
        }
        Some(serde_json::json!({"endpoint": self.endpoint, "body": body}))
    }
}
