//! The weather conversation the SDK clients hold through the proxy: the model asks for
//! `get_weather(city: Paris)` (id `call_1`), then answers "It is 21 °C in Paris.".

use serde_json::{Value, json};

use crate::server::Reply;

/// The fake upstream's two answers, whole (`plain`) or streamed (`stream`).
pub fn replies(mode: &str) -> Vec<Reply> {
    if mode == "stream" {
        vec![
            Reply::Sse(streamed_tool_call()),
            Reply::Sse(streamed_answer()),
        ]
    } else {
        vec![
            Reply::json(200, &tool_call_body()),
            Reply::json(200, &answer_body()),
        ]
    }
}

/// The model asking for `get_weather(city: Paris)`.
pub fn tool_call_body() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
        }}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    })
}

/// The model answering with the weather.
pub fn answer_body() -> Value {
    json!({
        "id": "chatcmpl-2", "object": "chat.completion", "created": 2, "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "It is 21 °C in Paris."}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}
    })
}

fn sse(chunks: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    out.push("data: [DONE]\n\n".to_owned());
    out
}

fn chunk(choices: Value, usage: Value) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test", "choices": choices, "usage": usage})
}

fn streamed_tool_call() -> Vec<String> {
    sse(&[
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
            Value::Null,
        ),
        chunk(
            json!([]),
            json!({"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}),
        ),
    ])
}

fn streamed_answer() -> Vec<String> {
    sse(&[
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": "It is "}, "finish_reason": null}]),
            Value::Null,
        ),
        chunk(
            json!([{"index": 0, "delta": {"content": "21 °C in Paris."}, "finish_reason": null}]),
            Value::Null,
        ),
        chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
            Value::Null,
        ),
        chunk(
            json!([]),
            json!({"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}),
        ),
    ])
}
