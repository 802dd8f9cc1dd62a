//! [`WireError`]: why a response could not be read.

use serde_json::Value;

use crate::OverLimit;

/// Why a response (whole, or one stream event) could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The response is not what the API documents (the message says what and where).
    #[error("{0}")]
    Malformed(String),
    /// The API reported an error inside a successful answer (an `error` object in the body or
    /// in a stream chunk or event).
    #[error("the API reported an error: {message}")]
    Reported {
        /// The HTTP status the error's type or code stands for, if known.
        status: Option<u16>,
        /// The error's message (or the error itself, shortened).
        message: String,
    },
    /// The response broke a bound on what an upstream may send.
    #[error(transparent)]
    OverLimit(#[from] OverLimit),
}

impl WireError {
    /// The error an `error` object reports: its `message`, and the status its numeric
    /// `status`/`code` or its `type` stands for (so overload and rate limits stay retryable).
    pub fn reported(error: &Value) -> Self {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| shorten(&error.to_string(), 300), str::to_owned);
        let numeric = ["status", "code"]
            .iter()
            .filter_map(|k| error.get(*k).and_then(Value::as_u64))
            .find(|s| (100..600).contains(s));
        let by_type = || {
            let kind = error
                .get("type")
                .or_else(|| error.get("code"))
                .and_then(Value::as_str)?;
            Some(match kind {
                "invalid_request_error" => 400,
                "authentication_error" => 401,
                "permission_error" => 403,
                "not_found_error" => 404,
                "request_too_large" => 413,
                "rate_limit_error" | "rate_limit_exceeded" => 429,
                "api_error" | "server_error" => 500,
                "overloaded_error" => 529,
                _ => return None,
            })
        };
        Self::Reported {
            status: numeric
                .or_else(by_type)
                .map(|s| u16::try_from(s).unwrap_or(500)),
            message,
        }
    }
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A JSON text, or [`WireError::Malformed`] saying what it was instead.
pub(crate) fn parse_json(text: &str, what: &str) -> Result<Value, WireError> {
    serde_json::from_str(text).map_err(|e| {
        WireError::Malformed(format!("{what} is not JSON ({e}): {}", shorten(text, 200)))
    })
}
