//! The OpenAI-compatible backend against a fake Chat Completions server.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_agent::config::Provider;
use tapedeck_agent::model::openai::OpenAi;
use tapedeck_agent::{FinishReason, Message, ModelBackend, ModelError};
use tapedeck_trace::Usage;

use crate::server::{FakeServer, Reply, pieces};
use crate::{closed_port_base, config, conversation_request, later, simple_request};

fn backend(server: &FakeServer, stream: bool) -> OpenAi {
    let base = format!("{}/v1", server.base);
    OpenAi::with_key(&config(Provider::Openai, &base, stream), "sk-test".into())
        .expect("the backend")
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    })
}

#[test]
fn plain_text_answer() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        &completion(json!({"role": "assistant", "content": "Hello!"}), "stop"),
    )]);
    let response = backend(&server, false)
        .complete(&simple_request(), later())
        .expect("an answer");
    assert_eq!(response.text(), Some("Hello!"));
    assert!(response.tool_calls().is_empty());
    assert_eq!(response.finish, FinishReason::Stop);
    assert_eq!(response.raw_finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 12,
            output_tokens: 5
        })
    );
    assert!(!response.streamed && !response.truncated);

    let request = server.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"}
        ])
    );
    assert!(body.get("tools").is_none(), "no tools, no `tools`");
    assert!(body.get("stream").is_none());
}

#[test]
fn request_maps_the_conversation() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        &completion(json!({"role": "assistant", "content": "Done."}), "stop"),
    )]);
    backend(&server, false)
        .complete(&conversation_request(), later())
        .expect("an answer");
    let body = server.only_request().json();
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are a support bot."},
            {"role": "user", "content": "How do I reset my password?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "kb_read", "arguments": "{\"article\":\"password-reset\"}"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "http_get", "arguments": "{\"url\":\"https://status.example.com\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "{\"text\":\"Settings > Security\"}"},
            {"role": "tool", "tool_call_id": "call_b", "content": "HTTP 503"}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([
            {"type": "function", "function": {
                "name": "kb_read", "description": "Read a help article",
                "parameters": {"type": "object", "properties": {"article": {"type": "string"}}}}},
            {"type": "function", "function": {
                "name": "http_get", "description": "GET a URL", "parameters": {"type": "object"}}}
        ])
    );
}

#[test]
fn tool_call_answer_parses_arguments_and_maps_names_back() {
    let message = json!({
        "role": "assistant",
        "content": null,
        "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "kb_read", "arguments": "{\"article\": \"password-reset\"}"}},
            {"id": "call_2", "type": "function",
             "function": {"name": "http_get", "arguments": "{not json"}}
        ]
    });
    let server = FakeServer::start(vec![Reply::json(200, &completion(message, "tool_calls"))]);
    let response = backend(&server, false)
        .complete(&conversation_request(), later())
        .expect("an answer");
    assert_eq!(response.finish, FinishReason::ToolCalls);
    assert_eq!(response.text(), None);
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "call_1");
    assert_eq!(calls[0].name, "kb.read");
    assert_eq!(calls[0].arguments, json!({"article": "password-reset"}));
    assert_eq!(calls[1].name, "http.get");
    assert_eq!(calls[1].arguments, Value::String("{not json".into()));
}

#[test]
fn length_finish_is_length() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        &completion(
            json!({"role": "assistant", "content": "It was a dark and"}),
            "length",
        ),
    )]);
    let response = backend(&server, false)
        .complete(&simple_request(), later())
        .expect("an answer");
    assert_eq!(response.finish, FinishReason::Length);
    assert_eq!(response.raw_finish_reason.as_deref(), Some("length"));

    let server = FakeServer::start(vec![Reply::json(
        200,
        &completion(
            json!({"role": "assistant", "content": ""}),
            "content_filter",
        ),
    )]);
    let response = backend(&server, false)
        .complete(&simple_request(), later())
        .expect("an answer");
    assert_eq!(response.finish, FinishReason::Other);
}

const STREAM: &str = concat!(
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Let me \"},\"finish_reason\":null}],\"usage\":null}\n\n",
    ": keep-alive comment\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"check.\"},\"finish_reason\":null}],\"usage\":null}\r\n\r\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_x\",\"type\":\"function\",\"function\":{\"name\":\"kb_read\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"arti\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_y\",\"type\":\"function\",\"function\":{\"name\":\"http_get\",\"arguments\":\"{\\\"url\\\":\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"cle\\\": \\\"password-reset\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\" \\\"https://status.example.com\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":22,\"total_tokens\":62}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn streaming_assembles_text_tool_call_deltas_and_usage() {
    let server = FakeServer::start(vec![Reply::sse(STREAM, 7)]);
    let response = backend(&server, true)
        .complete(&conversation_request(), later())
        .expect("an answer");
    assert!(response.streamed);
    assert!(!response.truncated);
    assert_eq!(response.text(), Some("Let me check."));
    assert_eq!(response.finish, FinishReason::ToolCalls);
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].name.as_str()),
        ("call_x", "kb.read")
    );
    assert_eq!(calls[0].arguments, json!({"article": "password-reset"}));
    assert_eq!(
        (calls[1].id.as_str(), calls[1].name.as_str()),
        ("call_y", "http.get")
    );
    assert_eq!(
        calls[1].arguments,
        json!({"url": "https://status.example.com"})
    );
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 40,
            output_tokens: 22
        })
    );
    let body = server.only_request().json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[test]
fn streaming_over_chunked_encoding() {
    let server = FakeServer::start(vec![Reply::Stream {
        pieces: pieces(STREAM, 13),
        chunked: true,
        cut: false,
    }]);
    let response = backend(&server, true)
        .complete(&conversation_request(), later())
        .expect("an answer");
    assert!(!response.truncated);
    assert_eq!(response.tool_calls().len(), 2);
}

#[test]
fn stream_cut_midway_is_truncated_with_what_arrived() {
    // In the middle of the line that starts the second tool call: the first call's arguments
    // have only their first piece.
    let second = STREAM.find("[{\"index\":1,").expect("the second call");
    let line = STREAM[..second].rfind("data:").expect("its line");
    let partial = &STREAM[..line + 30];
    for chunked in [false, true] {
        let server = FakeServer::start(vec![Reply::Stream {
            pieces: pieces(partial, 11),
            chunked,
            cut: true,
        }]);
        let response = backend(&server, true)
            .complete(&conversation_request(), later())
            .expect("what arrived");
        assert!(response.truncated, "chunked: {chunked}");
        assert!(response.streamed);
        assert_eq!(response.text(), Some("Let me check."));
        assert_eq!(response.finish, FinishReason::Other);
        assert_eq!(response.raw_finish_reason, None);
        assert_eq!(response.usage, None);
        let calls = response.tool_calls();
        assert_eq!(calls.len(), 1, "chunked: {chunked}");
        assert_eq!(calls[0].name, "kb.read");
        assert_eq!(calls[0].arguments, Value::String("{\"arti".into()));
    }
}

#[test]
fn stream_with_finish_reason_but_no_done_is_complete() {
    let text = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    );
    let server = FakeServer::start(vec![Reply::sse(text, 5)]);
    let response = backend(&server, true)
        .complete(&simple_request(), later())
        .expect("an answer");
    assert!(!response.truncated);
    assert_eq!(response.text(), Some("Hi"));
    assert_eq!(response.finish, FinishReason::Stop);
}

#[test]
fn stream_error_chunk_fails_the_attempt() {
    let text = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
        "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n",
    );
    let server = FakeServer::start(vec![Reply::sse(text, 9)]);
    let error = backend(&server, true)
        .complete(&simple_request(), later())
        .expect_err("an error");
    assert_eq!(error.status(), Some(500));
    assert!(error.is_retryable());
}

#[test]
fn rate_limit_with_retry_after_ms_is_retryable() {
    let server = FakeServer::start(vec![
        Reply::json(
            429,
            &json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        )
        .header("retry-after-ms", "1500")
        .header("retry-after", "2"),
    ]);
    let error = backend(&server, false)
        .complete(&simple_request(), later())
        .expect_err("a 429");
    assert_eq!(
        error,
        ModelError::Status {
            status: 429,
            message: "Rate limit reached".into(),
            retry_after: Some(Duration::from_millis(1500)),
        }
    );
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_millis(1500)));
}

#[test]
fn server_error_with_a_plain_body() {
    let server = FakeServer::start(vec![
        Reply::text(500, "text/plain", "upstream exploded").header("retry-after", "3"),
    ]);
    let error = backend(&server, true)
        .complete(&simple_request(), later())
        .expect_err("a 500");
    assert_eq!(
        error,
        ModelError::Status {
            status: 500,
            message: "upstream exploded".into(),
            retry_after: Some(Duration::from_secs(3)),
        }
    );
    assert!(error.is_retryable());

    let server = FakeServer::start(vec![Reply::json(
        401,
        &json!({"error": {"message": "Incorrect API key provided"}}),
    )]);
    let error = backend(&server, false)
        .complete(&simple_request(), later())
        .expect_err("a 401");
    assert_eq!(error.status(), Some(401));
    assert!(!error.is_retryable());
}

#[test]
fn malformed_bodies() {
    let server = FakeServer::start(vec![
        Reply::text(200, "application/json", "{\"choices\": [tru"),
        Reply::json(200, &json!({"choices": []})),
        Reply::json(
            200,
            &completion(
                json!({"role": "assistant", "tool_calls": [{"id": "x", "function": {}}]}),
                "tool_calls",
            ),
        ),
    ]);
    let mut model = backend(&server, false);
    let error = model
        .complete(&simple_request(), later())
        .expect_err("bad JSON");
    let ModelError::Malformed(message) = &error else {
        panic!("expected Malformed, got {error:?}");
    };
    assert!(message.contains("not JSON"), "{message}");
    assert!(!error.is_retryable());

    let error = model
        .complete(&simple_request(), later())
        .expect_err("no choices");
    assert_eq!(
        error,
        ModelError::Malformed("the response has no `choices[0]`".into())
    );

    let error = model
        .complete(&simple_request(), later())
        .expect_err("no name");
    assert!(
        matches!(&error, ModelError::Malformed(m) if m.contains("tool_calls[0]") && m.contains("function.name")),
        "{error:?}"
    );
}

#[test]
fn malformed_stream_chunk() {
    let server = FakeServer::start(vec![Reply::sse("data: {\"choices\": nope}\n\n", 4)]);
    let error = backend(&server, true)
        .complete(&simple_request(), later())
        .expect_err("bad chunk");
    assert!(
        matches!(&error, ModelError::Malformed(m) if m.contains("stream chunk")),
        "{error:?}"
    );
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let base = format!("{}/v1", closed_port_base());
    let mut model =
        OpenAi::with_key(&config(Provider::Openai, &base, false), "k".into()).expect("the backend");
    let error = model
        .complete(&simple_request(), later())
        .expect_err("refused");
    assert!(matches!(error, ModelError::Connect(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[test]
fn silent_server_times_out_at_the_deadline() {
    let server = FakeServer::start(vec![Reply::Silent(Duration::from_secs(5))]);
    let mut model = backend(&server, false);
    let started = Instant::now();
    let error = model
        .complete(&simple_request(), started + Duration::from_millis(300))
        .expect_err("a timeout");
    let took = started.elapsed();
    assert_eq!(error, ModelError::Timeout);
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(took < Duration::from_millis(1300), "{took:?}");
}

#[test]
fn stalled_stream_times_out_at_the_deadline() {
    let server = FakeServer::start(vec![Reply::StallStream {
        pieces: pieces(&STREAM[..200], 50),
        pause: Duration::from_secs(5),
    }]);
    let mut model = backend(&server, true);
    let started = Instant::now();
    let error = model
        .complete(&simple_request(), started + Duration::from_millis(300))
        .expect_err("a timeout");
    let took = started.elapsed();
    assert_eq!(error, ModelError::Timeout);
    assert!(took < Duration::from_millis(1300), "{took:?}");
}

#[test]
fn a_past_deadline_fails_at_once() {
    let server = FakeServer::start(vec![]);
    let error = backend(&server, false)
        .complete(&simple_request(), Instant::now())
        .expect_err("no time");
    assert_eq!(error, ModelError::Timeout);
}

#[test]
fn missing_key_variable_is_named() {
    let mut model = config(Provider::Openai, "http://127.0.0.1:9", false);
    model.api_key_env = Some("TAPEDECK_TEST_KEY_SURELY_UNSET_1".into());
    let error = OpenAi::new(&model).expect_err("no key");
    let text = error.to_string();
    assert!(
        text.contains("environment variable TAPEDECK_TEST_KEY_SURELY_UNSET_1 is not set"),
        "{text}"
    );
}

#[test]
fn request_body_is_inspectable() {
    let server = FakeServer::start(vec![]);
    let body = serde_json::to_value(backend(&server, false).request_body(&conversation_request()))
        .expect("a request is JSON");
    assert_eq!(body["messages"][2]["content"], Value::Null);
    assert!(matches!(
        &conversation_request().messages[2],
        Message::Assistant { content: None, .. }
    ));
}
