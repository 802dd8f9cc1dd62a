//! [`Reply`]: what the agent's backends take from a response, whole or assembled from a
//! stream, in the API's own words (names and finish reasons as sent).

use serde_json::Value;

use crate::{MAX_TOOL_CALLS, OverLimit, Usage, WireError};

/// One tool call of a response.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// The call's id (`call_N` / `toolu_N` by its position when the API sent none).
    pub id: String,
    /// The tool's name as the API sent it.
    pub name: String,
    /// The arguments: parsed JSON, or the text when it is not JSON.
    pub arguments: Value,
}

/// A response's text, tool calls, finish reason and usage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    /// The text (empty: none).
    pub text: String,
    /// The tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// The finish (stop) reason as the API said it.
    pub finish_reason: Option<String>,
    /// The token usage, when reported.
    pub usage: Option<Usage>,
}

/// Tool arguments sent as JSON text: parsed, kept as a string when they do not parse, `{}` when
/// empty.
pub fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(serde_json::Map::new());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// [`OverLimit::ToolCalls`] when `n` calls are too many.
pub(crate) fn check_calls(n: usize) -> Result<(), WireError> {
    if n > MAX_TOOL_CALLS {
        return Err(OverLimit::ToolCalls.into());
    }
    Ok(())
}

/// Token usage from its two counts, when both were sent.
pub(crate) fn usage(input: Option<u64>, output: Option<u64>) -> Option<Usage> {
    Some(Usage {
        input_tokens: input?,
        output_tokens: output?,
    })
}

/// A token count: read when it is a whole number; anything else a compatible server sends (a
/// float, a string) leaves the usage unknown instead of failing the whole response.
pub(crate) fn lenient_count<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize as _;
    Ok(Value::deserialize(deserializer)?.as_u64())
}

/// Reads a whole body into its typed form; a body that does not fit is [`WireError::Malformed`],
/// naming the field that does not.
pub(crate) fn typed<'a, T: serde::Deserialize<'a>>(
    value: &'a Value,
    api: &str,
) -> Result<T, WireError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        WireError::Malformed(format!(
            "not a {api} response: `{}`: {}",
            e.path(),
            e.inner()
        ))
    })
}
