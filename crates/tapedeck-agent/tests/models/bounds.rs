//! The bounds on what a model API may send, in both HTTP backends: a tool-call or
//! content-block index below 1,024, at most 256 tool calls, an answer of at most 32 MiB. Past
//! one the call fails with [`ModelError::OverLimit`] naming it (not retried), and a run stops
//! `model_error`.

use serde_json::{Value, json};
use tapedeck_agent::config::Provider;
use tapedeck_agent::model::anthropic::Anthropic;
use tapedeck_agent::model::openai::OpenAi;
use tapedeck_agent::model::{MAX_TOOL_CALLS, OverLimit};
use tapedeck_agent::tool::ToolSet;
use tapedeck_agent::{Agent, LoadedConfig, ModelBackend, ModelError};
use tapedeck_trace::NullSink;
use tapedeck_trace::StopReason;

use crate::server::{FakeServer, Reply};
use crate::{config, later, simple_request};

fn openai(server: &FakeServer, stream: bool) -> OpenAi {
    let base = format!("{}/v1", server.base);
    OpenAi::with_key(&config(Provider::Openai, &base, stream), "sk-test".into())
        .expect("the backend")
}

fn anthropic(server: &FakeServer, stream: bool) -> Anthropic {
    Anthropic::with_key(
        &config(Provider::Anthropic, &server.base, stream),
        "sk-test".into(),
    )
    .expect("the backend")
}

/// The error of one call to `model`, which must be the bound `over`, named in its message and
/// not retried.
fn assert_over(model: &mut dyn ModelBackend, over: OverLimit, message: &str) {
    let error = model
        .complete(&simple_request(), later())
        .expect_err("past a bound");
    assert_eq!(error, ModelError::OverLimit(over));
    assert!(error.to_string().contains(message), "{error}");
    assert!(!error.is_retryable());
}

/// `data:` lines of chat-completions chunks, then `[DONE]`.
fn chunks(values: &[Value]) -> String {
    let mut text: String = values.iter().map(|v| format!("data: {v}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    text
}

/// A chunk with one tool-call delta at `index`.
fn call_chunk(index: u64) -> Value {
    json!({"model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": index, "id": format!("call_{index}"), "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]}}]})
}

fn finish_chunk() -> Value {
    json!({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
}

/// Named Anthropic stream events.
fn events(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| {
            format!(
                "event: {}\ndata: {v}\n\n",
                v["type"].as_str().unwrap_or("x")
            )
        })
        .collect()
}

fn tool_use_start(index: u64) -> Value {
    json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{index}"), "name": "f", "input": {}}})
}

// Regression: a delta with `"index": 10000000000` was trusted (a map keyed by index kept the
// memory small, but nothing bounded the index or the number of calls).
#[test]
fn openai_stream_with_a_tool_call_index_in_the_billions_fails() {
    let stream = chunks(&[call_chunk(10_000_000_000), finish_chunk()]);
    let server = FakeServer::start(vec![Reply::sse(&stream, 64)]);
    assert_over(
        &mut openai(&server, true),
        OverLimit::ToolCallIndex(10_000_000_000),
        "tool-call index 10000000000 is over the limit of 1023",
    );
}

#[test]
fn openai_answers_with_more_than_256_tool_calls_fail() {
    let mut many: Vec<Value> = (0..=MAX_TOOL_CALLS as u64).map(call_chunk).collect();
    many.push(finish_chunk());
    let calls: Vec<Value> = (0..=MAX_TOOL_CALLS)
        .map(|i| json!({"id": format!("c{i}"), "type": "function", "function": {"name": "f", "arguments": "{}"}}))
        .collect();
    let whole = json!({"model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": calls}}]});
    let mut enough: Vec<Value> = (0..MAX_TOOL_CALLS as u64).map(call_chunk).collect();
    enough.push(finish_chunk());
    let server = FakeServer::start(vec![
        Reply::sse(&chunks(&many), 4096),
        Reply::json(200, &whole),
        Reply::sse(&chunks(&enough), 4096),
    ]);
    let message = "more than the limit of 256 tool calls";
    assert_over(&mut openai(&server, true), OverLimit::ToolCalls, message);
    assert_over(&mut openai(&server, false), OverLimit::ToolCalls, message);
    let response = openai(&server, true)
        .complete(&simple_request(), later())
        .expect("256 calls are fine");
    assert_eq!(response.tool_calls().len(), MAX_TOOL_CALLS);
}

#[test]
fn openai_answers_over_32_mib_fail() {
    let text = "x".repeat(1 << 20);
    let piece = json!({"model": "m", "choices": [{"index": 0, "delta": {"content": text}}]});
    let stream = chunks(&vec![piece; 33]);
    let body = json!({"model": "m", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "x".repeat(33 << 20)}}]});
    let server = FakeServer::start(vec![Reply::sse(&stream, 1 << 16), Reply::json(200, &body)]);
    let message = "over the limit of 33554432 bytes";
    assert_over(&mut openai(&server, true), OverLimit::Size, message);
    assert_over(&mut openai(&server, false), OverLimit::Size, message);
}

// Regression: an Anthropic `content_block_start` with `"index": 100000` (or in the billions)
// was kept by index without a bound.
#[test]
fn anthropic_stream_with_a_content_block_index_past_the_limit_fails() {
    for index in [100_000u64, 10_000_000_000] {
        let stream = events(&[
            json!({"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 1, "output_tokens": 1}}}),
            tool_use_start(index),
            json!({"type": "content_block_stop", "index": index}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}}),
            json!({"type": "message_stop"}),
        ]);
        let server = FakeServer::start(vec![Reply::sse(&stream, 64)]);
        assert_over(
            &mut anthropic(&server, true),
            OverLimit::BlockIndex(index),
            &format!("content-block index {index} is over the limit of 1023"),
        );
    }
}

#[test]
fn anthropic_answers_with_more_than_256_tool_calls_fail() {
    let mut stream = vec![
        json!({"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 1, "output_tokens": 1}}}),
    ];
    for i in 0..=MAX_TOOL_CALLS as u64 {
        stream.push(tool_use_start(i));
        stream.push(json!({"type": "content_block_stop", "index": i}));
    }
    stream.push(json!({"type": "message_stop"}));
    let blocks: Vec<Value> = (0..=MAX_TOOL_CALLS)
        .map(|i| json!({"type": "tool_use", "id": format!("t{i}"), "name": "f", "input": {}}))
        .collect();
    let whole = json!({"type": "message", "role": "assistant", "content": blocks, "stop_reason": "tool_use"});
    let server = FakeServer::start(vec![
        Reply::sse(&events(&stream), 4096),
        Reply::json(200, &whole),
    ]);
    let message = "more than the limit of 256 tool calls";
    assert_over(&mut anthropic(&server, true), OverLimit::ToolCalls, message);
    assert_over(
        &mut anthropic(&server, false),
        OverLimit::ToolCalls,
        message,
    );
}

#[test]
fn a_run_whose_model_answers_past_a_bound_stops_model_error() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("agent.yaml");
    std::fs::write(
        &path,
        "name: bounded\nmodel:\n  provider: openai\n  name: m\n  stream: true\nsystem_prompt: Be brief.\n",
    )
    .expect("write the config");
    let loaded = LoadedConfig::load(&path).expect("the config loads");
    let stream = chunks(&[call_chunk(10_000_000_000), finish_chunk()]);
    let server = FakeServer::start(vec![Reply::sse(&stream, 64)]);
    let model = Box::new(openai(&server, true));
    let tools = ToolSet::from_config(&loaded).expect("no tools");
    let approver = tapedeck_agent::approvals_for(&loaded, tapedeck_agent::approvals::nobody)
        .expect("an approver");
    let mut agent = Agent::new(loaded, model, tools, approver);
    let outcome = agent
        .run("hi", &mut NullSink::default())
        .expect("the run ends");
    assert_eq!(outcome.stop_reason, StopReason::ModelError);
    let error = outcome.error.expect("an error");
    assert!(
        error.contains("tool-call index 10000000000 is over the limit of 1023"),
        "{error}"
    );
    assert_eq!(server.requests().len(), 1, "not retried");
}
