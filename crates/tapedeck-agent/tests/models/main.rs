//! The model backends against fake servers on 127.0.0.1 (OpenAI, Anthropic: plain, streamed,
//! cut, errors, timeouts, the request they send) and the scripted model.

mod anthropic;
mod bounds;
mod openai;
mod scripted;
use tapedeck_testkit::fake_http as server;

use std::time::{Duration, Instant};

use serde_json::json;
use tapedeck_agent::config::{ModelConfig, Provider};
use tapedeck_agent::{Message, ModelRequest, ToolCallRequest, ToolSpec};

/// A model config for `provider` pointing at `base`.
pub fn config(provider: Provider, base: &str, stream: bool) -> ModelConfig {
    ModelConfig {
        provider,
        name: "test-model".into(),
        base_url: Some(base.to_owned()),
        api_key_env: None,
        temperature: Some(0.0),
        max_output_tokens: 256,
        stream,
        script: None,
    }
}

/// A request with a one-line conversation and no tools.
pub fn simple_request() -> ModelRequest {
    ModelRequest {
        model: "test-model".into(),
        messages: vec![
            Message::System {
                content: "You are terse.".into(),
            },
            Message::User {
                content: "Hi".into(),
            },
        ],
        tools: vec![],
        temperature: Some(0.0),
        max_output_tokens: 256,
        step: 1,
    }
}

/// A request further into a run: a system prompt, the user's question, an assistant turn of
/// two tool calls without text, their two results (the second an error), and two tools.
pub fn conversation_request() -> ModelRequest {
    ModelRequest {
        model: "test-model".into(),
        messages: vec![
            Message::System {
                content: "You are a support bot.".into(),
            },
            Message::User {
                content: "How do I reset my password?".into(),
            },
            Message::Assistant {
                content: None,
                tool_calls: vec![
                    ToolCallRequest {
                        id: "call_a".into(),
                        name: "kb.read".into(),
                        arguments: json!({"article": "password-reset"}),
                    },
                    ToolCallRequest {
                        id: "call_b".into(),
                        name: "http.get".into(),
                        arguments: json!({"url": "https://status.example.com"}),
                    },
                ],
            },
            Message::Tool {
                tool_call_id: "call_a".into(),
                name: "kb.read".into(),
                content: "{\"text\":\"Settings > Security\"}".into(),
                is_error: false,
            },
            Message::Tool {
                tool_call_id: "call_b".into(),
                name: "http.get".into(),
                content: "HTTP 503".into(),
                is_error: true,
            },
        ],
        tools: vec![
            ToolSpec {
                name: "kb.read".into(),
                description: "Read a help article".into(),
                input_schema: json!({"type": "object", "properties": {"article": {"type": "string"}}}),
            },
            ToolSpec {
                name: "http.get".into(),
                description: "GET a URL".into(),
                input_schema: json!({"type": "object"}),
            },
        ],
        temperature: Some(0.0),
        max_output_tokens: 256,
        step: 2,
    }
}

/// A deadline far enough away for any test.
pub fn later() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

/// An address on 127.0.0.1 nothing listens on (bound, then released).
pub fn closed_port_base() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the address");
    drop(listener);
    format!("http://{addr}")
}
