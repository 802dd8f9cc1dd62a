//! The request side, as the proxy reads it: which endpoint a request is ([`Provider`]), its
//! matching form ([`normalize`]), the messages, sampling parameters and tool results it
//! carries, and [`similarity`], the closeness score a replay miss is explained with.

use serde_json::{Map, Value, json};

/// The API an endpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI Chat Completions.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    Responses,
}

impl Provider {
    /// The modelled endpoint a path is, if any.
    pub fn of_path(path: &str) -> Option<Self> {
        match path.trim_end_matches('/') {
            "/v1/chat/completions" | "/chat/completions" => Some(Self::OpenAi),
            "/v1/messages" => Some(Self::Anthropic),
            "/v1/responses" | "/responses" => Some(Self::Responses),
            _ => None,
        }
    }

    /// `openai` or `anthropic`.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Responses => "openai",
        }
    }

    /// The body fields [`request_messages`] takes a request's messages from: the system
    /// prompt's field, if the API has one, and the list's (whose string, for the Responses
    /// API, is one user message).
    pub fn message_fields(self) -> (Option<&'static str>, &'static str) {
        match self {
            Self::OpenAi => (None, "messages"),
            Self::Anthropic => (Some("system"), "messages"),
            Self::Responses => (Some("instructions"), "input"),
        }
    }
}

/// Request fields that change between otherwise identical requests, left out of the
/// matching form.
pub const VOLATILE_FIELDS: [&str; 4] = ["stream_options", "user", "metadata", "service_tier"];

/// The matching form of a request: the path and the body without volatile fields.
pub fn normalize(path: &str, body: &Value) -> Value {
    let mut body = body.clone();
    if let Value::Object(map) = &mut body {
        for field in VOLATILE_FIELDS {
            map.remove(field);
        }
    }
    json!({ "endpoint": path.trim_end_matches('/'), "body": body })
}

/// The messages of a request, each its own value (Anthropic's `system` first, as a message).
pub fn request_messages(provider: Provider, body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    if provider == Provider::Anthropic
        && let Some(system) = body.get("system")
    {
        out.push(json!({"role": "system", "content": system}));
    }
    if provider == Provider::Responses {
        if let Some(system) = body.get("instructions") {
            out.push(json!({"role": "system", "content": system}));
        }
        match body.get("input") {
            Some(Value::String(text)) => out.push(json!({"role": "user", "content": text})),
            Some(Value::Array(items)) => out.extend(items.iter().cloned()),
            _ => {}
        }
        return out;
    }
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        out.extend(messages.iter().cloned());
    }
    out
}

/// The sampling parameters of a request: the body without model, messages, system, tools.
pub fn request_params(body: &Value) -> Value {
    let mut params = Map::new();
    if let Some(map) = body.as_object() {
        for (k, v) in map {
            if !matches!(
                k.as_str(),
                "model" | "messages" | "system" | "tools" | "input" | "instructions"
            ) {
                params.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(params)
}

/// A tool result a request carries: the call id, its content, whether it is an error.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutput {
    /// The call it answers.
    pub call_id: String,
    /// What the tool returned.
    pub content: Value,
    /// Anthropic's `is_error`.
    pub is_error: bool,
}

/// The tool results of a request (OpenAI `role: tool` messages, Anthropic `tool_result`
/// blocks), in order.
pub fn tool_outputs(provider: Provider, body: &Value) -> Vec<ToolOutput> {
    let mut out = Vec::new();
    if provider == Provider::Responses {
        let items = body.get("input").and_then(Value::as_array);
        for item in items.into_iter().flatten() {
            if item.get("type").and_then(Value::as_str) == Some("function_call_output")
                && let Some(id) = item.get("call_id").and_then(Value::as_str)
            {
                out.push(ToolOutput {
                    call_id: id.to_owned(),
                    content: item.get("output").cloned().unwrap_or(Value::Null),
                    is_error: false,
                });
            }
        }
        return out;
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return out;
    };
    for message in messages {
        match provider {
            Provider::OpenAi => {
                if message.get("role").and_then(Value::as_str) == Some("tool")
                    && let Some(id) = message.get("tool_call_id").and_then(Value::as_str)
                {
                    out.push(ToolOutput {
                        call_id: id.to_owned(),
                        content: message.get("content").cloned().unwrap_or(Value::Null),
                        is_error: false,
                    });
                }
            }
            Provider::Responses => {}
            Provider::Anthropic => {
                let blocks = message.get("content").and_then(Value::as_array);
                for block in blocks.into_iter().flatten() {
                    if block.get("type").and_then(Value::as_str) == Some("tool_result")
                        && let Some(id) = block.get("tool_use_id").and_then(Value::as_str)
                    {
                        out.push(ToolOutput {
                            call_id: id.to_owned(),
                            content: block.get("content").cloned().unwrap_or(Value::Null),
                            is_error: block.get("is_error").and_then(Value::as_bool) == Some(true),
                        });
                    }
                }
            }
        }
    }
    out
}

/// How many leaf values two JSON values share, a crude closeness score.
pub fn similarity(a: &Value, b: &Value) -> usize {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .filter_map(|(k, v)| y.get(k).map(|w| similarity(v, w)))
            .sum(),
        (Value::Array(x), Value::Array(y)) => x.iter().zip(y).map(|(p, q)| similarity(p, q)).sum(),
        _ => usize::from(a == b),
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

    use tapedeck_trace::RequestFrame;

    use super::*;

    /// The proxy records a request's messages as `RequestFrame::split` takes them out with
    /// the provider's fields, and rebuilds it with them: they are `request_messages`.
    #[test]
    fn a_frame_split_by_the_message_fields_takes_out_the_request_messages() {
        let user = json!({"role": "user", "content": "Weather in Paris?"});
        for (provider, path, body) in [
            (
                Provider::OpenAi,
                "/v1/chat/completions",
                json!({"model": "m", "messages": [user]}),
            ),
            (
                Provider::Anthropic,
                "/v1/messages",
                json!({"model": "m", "system": "Be brief.", "messages": [user]}),
            ),
            (
                Provider::Anthropic,
                "/v1/messages",
                json!({"model": "m", "messages": [user]}),
            ),
            (
                Provider::Responses,
                "/v1/responses",
                json!({"model": "m", "instructions": "Be brief.", "input": "Hi"}),
            ),
            (
                Provider::Responses,
                "/v1/responses",
                json!({"model": "m", "input": [user]}),
            ),
            (
                Provider::Responses,
                "/v1/responses",
                json!({"model": "m", "previous_response_id": "r"}),
            ),
        ] {
            let matching = normalize(path, &body);
            let (system, list) = provider.message_fields();
            let (frame, messages) = RequestFrame::split(&matching, system, Some(list)).unwrap();
            assert_eq!(messages, request_messages(provider, &body), "{body}");
            assert_eq!(frame.join(&messages), Some(matching), "{body}");
        }
    }
}
