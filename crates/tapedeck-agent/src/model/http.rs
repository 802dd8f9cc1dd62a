//! What the two HTTP backends ([`super::openai`], [`super::anthropic`]) share: the blocking
//! client (rustls with the ring provider), one POST within a deadline, the mapping of failures
//! to [`ModelError`], `retry-after` headers, reading a stream into a `tapedeck-wire` assembler,
//! the [`ModelResponse`] of a wire [`Reply`], and tool names made safe for the APIs.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};
use std::sync::Once;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::config::ModelConfig;
use crate::model::{MAX_RESPONSE_BYTES, ModelError, OverLimit};
pub(crate) use tapedeck_wire::shorten;
use tapedeck_wire::{Assemble, ReadError, Reply, ReplyStream};

use crate::{AgentError, FinishReason, Message, ModelRequest, ModelResponse, ToolCallRequest};

/// The API key from the environment variable the config names.
pub(crate) fn api_key(model: &ModelConfig) -> Result<String, AgentError> {
    let provider = model.provider.as_str();
    let var = model.api_key_env().ok_or_else(|| {
        AgentError::Model(format!("the {provider} model needs `model.api_key_env`"))
    })?;
    match std::env::var(&var) {
        Ok(key) if !key.trim().is_empty() => Ok(key.trim().to_owned()),
        Ok(_) => Err(AgentError::Model(format!(
            "environment variable {var} is empty (it should hold the {provider} API key; \
             `model.api_key_env` names another variable)"
        ))),
        Err(std::env::VarError::NotPresent) => Err(AgentError::Model(format!(
            "environment variable {var} is not set (it should hold the {provider} API key; \
             `model.api_key_env` names another variable)"
        ))),
        Err(std::env::VarError::NotUnicode(_)) => Err(AgentError::Model(format!(
            "environment variable {var} is not valid UTF-8"
        ))),
    }
}

/// A blocking HTTP client builder (for models and tools) whose TLS is rustls with the ring
/// provider and the platform's certificate verifier (reqwest's `rustls-no-provider` needs the
/// provider installed first), with tapedeck's user agent.
pub(crate) fn client_builder() -> reqwest::blocking::ClientBuilder {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already installed (by the host program): keep that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Client::builder().user_agent(concat!("tapedeck/", env!("CARGO_PKG_VERSION")))
}

/// The client of the model backends.
pub(crate) fn client() -> Result<Client, AgentError> {
    client_builder().build().map_err(|e| {
        AgentError::Model(format!(
            "cannot set up the HTTP client: {}",
            tapedeck_trace::one_line(&e)
        ))
    })
}

/// A header value, checked when the backend is built rather than at the first request.
pub(crate) fn header_value(name: &str, value: &str) -> Result<HeaderValue, AgentError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        AgentError::Model(format!(
            "the value for header `{name}` (the API key) has characters a header cannot carry"
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The time left before `deadline`, or [`ModelError::Timeout`] when none is.
pub(crate) fn remaining(deadline: Instant) -> Result<Duration, ModelError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ModelError::Timeout)
    } else {
        Ok(left)
    }
}

/// POSTs `body` as JSON and returns the response when its status is 2xx; any other status is
/// read into [`ModelError::Status`]. The whole exchange, body included, ends by `deadline`.
/// Where and how an HTTP backend posts: its client and URL, the headers every call sends (the
/// API key among them: never printed), the configured model and whether to stream.
pub(crate) struct Endpoint {
    client: Client,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    model: String,
    /// Whether to ask for server-sent events.
    pub(crate) stream: bool,
}

/// What an endpoint answered.
pub(crate) enum Answer {
    /// A server-sent-events stream, to read with [`read_stream`].
    Stream(Response),
    /// A whole JSON body.
    Json(Value),
}

impl Endpoint {
    /// The endpoint at `path` under the model's base URL.
    pub(crate) fn new(
        model: &ModelConfig,
        path: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Self, AgentError> {
        Ok(Self {
            client: client()?,
            url: format!("{}{path}", model.base_url()),
            headers,
            model: model.name.clone(),
            stream: model.stream,
        })
    }

    /// The model a request names, else the configured one.
    pub(crate) fn model_for<'a>(&'a self, request: &'a ModelRequest) -> &'a str {
        if request.model.is_empty() {
            &self.model
        } else {
            &request.model
        }
    }

    /// Posts `body`: a stream when one was asked for and came, else the JSON body.
    pub(crate) fn post(
        &self,
        body: &impl Serialize,
        deadline: Instant,
    ) -> Result<Answer, ModelError> {
        let response = post_json(&self.client, &self.url, &self.headers, body, deadline)?;
        if self.stream && is_event_stream(&response) {
            return Ok(Answer::Stream(response));
        }
        let bytes = read_body(response, deadline)?;
        Ok(Answer::Json(parse_json(&bytes, "the response body")?))
    }

    /// One attempt at `body`: the answer read with the API's `S` (a stream assembled by it,
    /// else the whole body), tool names mapped back by `names`, finish reasons by `finish`.
    pub(crate) fn complete<S: ReplyStream>(
        &self,
        body: &impl Serialize,
        deadline: Instant,
        names: &ToolNames,
        finish: fn(&str) -> FinishReason,
    ) -> Result<ModelResponse, ModelError> {
        match self.post(body, deadline)? {
            Answer::Stream(answer) => {
                let mut stream = S::default();
                read_stream(answer, deadline, &mut stream)?;
                let truncated = stream.is_truncated();
                Ok(response(stream.reply()?, names, true, truncated, finish))
            }
            Answer::Json(value) => Ok(response(S::read_body(&value)?, names, false, false, finish)),
        }
    }

    /// Writes `Backend { url, model, stream, .. }` (the key stays out).
    pub(crate) fn debug(&self, backend: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(backend)
            .field("url", &self.url)
            .field("model", &self.model)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

pub(crate) fn post_json(
    client: &Client,
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: &impl Serialize,
    deadline: Instant,
) -> Result<Response, ModelError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ModelError::Malformed(format!("cannot encode the request: {e}")))?;
    let mut builder = client
        .post(url)
        .timeout(remaining(deadline)?)
        .header(CONTENT_TYPE, "application/json")
        .body(bytes);
    for (name, value) in headers {
        builder = builder.header(name.clone(), value.clone());
    }
    let response = builder.send().map_err(|e| transport_error(&e, deadline))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = retry_after(response.headers());
    let body = read_body(response, deadline).unwrap_or_default();
    Err(ModelError::Status {
        status: status.as_u16(),
        message: error_message(&body, status.canonical_reason()),
        retry_after,
    })
}

/// Reads the whole body (at most [`MAX_RESPONSE_BYTES`]), by `deadline`.
pub(crate) fn read_body(mut response: Response, deadline: Instant) -> Result<Vec<u8>, ModelError> {
    let mut body = Vec::new();
    (&mut response)
        .take(MAX_RESPONSE_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| read_error(&e, deadline))?;
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(OverLimit::Size.into());
    }
    Ok(body)
}

/// Whether the response is a server-sent-events stream.
pub(crate) fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// A failure to send or to get the response head.
pub(crate) fn transport_error(error: &reqwest::Error, deadline: Instant) -> ModelError {
    if error.is_timeout() || Instant::now() >= deadline {
        ModelError::Timeout
    } else {
        ModelError::Connect(tapedeck_trace::one_line(error))
    }
}

/// A failure while reading the body.
pub(crate) fn read_error(error: &io::Error, deadline: Instant) -> ModelError {
    if is_timeout(error) || Instant::now() >= deadline {
        ModelError::Timeout
    } else {
        ModelError::Connect(format!(
            "the connection broke while reading the answer: {}",
            tapedeck_trace::one_line(error)
        ))
    }
}

/// Whether an I/O error from a response body is a timeout.
pub(crate) fn is_timeout(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
        || error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

/// The wait an error response asks for: `retry-after-ms` (milliseconds, as OpenAI sends it)
/// first, else `retry-after` in seconds. An HTTP-date `retry-after` is not used.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    number("retry-after").and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// The message of an error body: `error.message` (OpenAI and Anthropic), `error` as a string,
/// a top-level `message`, else the body itself, shortened.
pub(crate) fn error_message(body: &[u8], reason: Option<&str>) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let found = value
            .pointer("/error/message")
            .or_else(|| value.get("error").filter(|e| e.is_string()))
            .or_else(|| value.get("message"))
            .and_then(Value::as_str);
        if let Some(message) = found {
            return message.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        reason.unwrap_or("(empty body)").to_owned()
    } else {
        shorten(text, 300)
    }
}

/// A JSON body, or [`ModelError::Malformed`] saying what it was instead.
pub(crate) fn parse_json(body: &[u8], what: &str) -> Result<Value, ModelError> {
    serde_json::from_slice(body).map_err(|e| {
        ModelError::Malformed(format!(
            "{what} is not JSON ({e}): {}",
            shorten(&String::from_utf8_lossy(body), 200)
        ))
    })
}

/// The response of a reply read from the API: tool names mapped back, the finish reason
/// mapped by `finish`. Without a finish reason, a cut stream is [`FinishReason::Other`],
/// anything else `ToolCalls` or `Stop` by whether there are tool calls.
pub(crate) fn response(
    reply: Reply,
    names: &ToolNames,
    streamed: bool,
    truncated: bool,
    finish: fn(&str) -> FinishReason,
) -> ModelResponse {
    let calls: Vec<ToolCallRequest> = reply
        .tool_calls
        .into_iter()
        .map(|call| ToolCallRequest {
            id: call.id,
            name: names.local(&call.name),
            arguments: call.arguments,
        })
        .collect();
    let finish = match (&reply.finish_reason, truncated) {
        (Some(raw), _) => finish(raw),
        (None, true) => FinishReason::Other,
        (None, false) if calls.is_empty() => FinishReason::Stop,
        (None, false) => FinishReason::ToolCalls,
    };
    ModelResponse {
        message: Message::Assistant {
            content: (!reply.text.is_empty()).then_some(reply.text),
            tool_calls: calls,
        },
        finish,
        raw_finish_reason: reply.finish_reason,
        usage: reply.usage,
        streamed,
        truncated,
    }
}

/// Reads a server-sent-events answer into `stream` (the API's assembler) until it says the
/// answer is complete or the stream ends; a failed read is as [`stream_read_error`] says.
pub(crate) fn read_stream(
    response: Response,
    deadline: Instant,
    stream: &mut impl Assemble,
) -> Result<(), ModelError> {
    match tapedeck_wire::read_stream(response, stream) {
        Ok(()) => Ok(()),
        Err(ReadError::Wire(error)) => Err(error.into()),
        Err(ReadError::Io {
            error,
            anything_arrived,
        }) => stream_read_error(&error, deadline, anything_arrived),
    }
}

/// What a stream reader does with a failed read: a timeout ends the call, a broken connection
/// before anything arrived is [`ModelError::Connect`], after that the answer is cut
/// (`Ok(())`: keep what arrived).
pub(crate) fn stream_read_error(
    error: &io::Error,
    deadline: Instant,
    anything_arrived: bool,
) -> Result<(), ModelError> {
    let from_reqwest = error
        .get_ref()
        .is_some_and(|inner| inner.is::<reqwest::Error>());
    if error.kind() == io::ErrorKind::InvalidData && !from_reqwest {
        return Err(ModelError::Malformed(error.to_string()));
    }
    match read_error(error, deadline) {
        ModelError::Timeout => Err(ModelError::Timeout),
        other if !anything_arrived => Err(other),
        _ => Ok(()),
    }
}

/// Tool names as the APIs accept them (`^[a-zA-Z0-9_-]{1,64}$`): tapedeck's tools have names
/// like `kb.read`, which OpenAI and Anthropic refuse. A name that is already valid is kept;
/// another gets its other characters replaced by `_` (and a suffix if that name is taken), and
/// tool calls in the answer are mapped back.
#[derive(Debug, Default)]
pub(crate) struct ToolNames {
    to_wire: HashMap<String, String>,
    from_wire: HashMap<String, String>,
}

impl ToolNames {
    /// The names of a request: its tools and the tool calls and results in its messages.
    pub(crate) fn of(request: &ModelRequest) -> Self {
        let mut names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
        for message in &request.messages {
            match message {
                Message::Assistant { tool_calls, .. } => {
                    names.extend(tool_calls.iter().map(|c| c.name.as_str()));
                }
                Message::Tool { name, .. } => names.push(name),
                _ => {}
            }
        }
        let mut this = Self::default();
        let mut taken = BTreeSet::new();
        // Valid names first, so they keep themselves.
        for valid in [true, false] {
            for name in &names {
                if is_valid(name) != valid || this.to_wire.contains_key(*name) {
                    continue;
                }
                let base = if valid {
                    (*name).to_owned()
                } else {
                    sanitize(name)
                };
                let mut wire = base.clone();
                let mut n = 2;
                while taken.contains(&wire) {
                    let suffix = format!("_{n}");
                    let keep = 64 - suffix.len();
                    wire = format!("{}{suffix}", base.chars().take(keep).collect::<String>());
                    n += 1;
                }
                taken.insert(wire.clone());
                this.from_wire.insert(wire.clone(), (*name).to_owned());
                this.to_wire.insert((*name).to_owned(), wire);
            }
        }
        this
    }

    /// The name to send.
    pub(crate) fn wire(&self, name: &str) -> String {
        self.to_wire
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    }

    /// The tool a name in the answer stands for.
    pub(crate) fn local(&self, wire: &str) -> String {
        self.from_wire
            .get(wire)
            .cloned()
            .unwrap_or_else(|| wire.to_owned())
    }
}

fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() {
        out.push_str("tool");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToolSpec;

    fn request(tools: &[&str]) -> ModelRequest {
        ModelRequest {
            model: "m".into(),
            messages: vec![],
            tools: tools
                .iter()
                .map(|n| ToolSpec {
                    name: (*n).to_owned(),
                    description: String::new(),
                    input_schema: serde_json::json!({"type": "object"}),
                })
                .collect(),
            temperature: None,
            max_output_tokens: 10,
            step: 1,
        }
    }

    #[test]
    fn tool_names_round_trip() {
        let names = ToolNames::of(&request(&["kb.read", "kb_read", "http.get", "ok-name"]));
        assert_eq!(names.wire("kb_read"), "kb_read");
        assert_eq!(names.wire("kb.read"), "kb_read_2");
        assert_eq!(names.wire("http.get"), "http_get");
        assert_eq!(names.wire("ok-name"), "ok-name");
        assert_eq!(names.local("kb_read_2"), "kb.read");
        assert_eq!(names.local("http_get"), "http.get");
        assert_eq!(names.local("unknown"), "unknown");
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_micros(150_500)));
        h.insert("retry-after-ms", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_messages() {
        let m = error_message(br#"{"error":{"message":"Rate limit","type":"x"}}"#, None);
        assert_eq!(m, "Rate limit");
        assert_eq!(error_message(b"", Some("Bad Gateway")), "Bad Gateway");
        let long = "x".repeat(400);
        let m = error_message(long.as_bytes(), None);
        assert_eq!(m.chars().count(), 301);
        assert!(m.ends_with('…'));
    }
}
