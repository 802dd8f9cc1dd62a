//! The Anthropic backend against a fake Messages server.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_agent::config::Provider;
use tapedeck_agent::model::anthropic::Anthropic;
use tapedeck_agent::{FinishReason, ModelBackend, ModelError};
use tapedeck_trace::Usage;

use crate::server::{FakeServer, Reply, pieces};
use crate::{closed_port_base, config, conversation_request, later, simple_request};

fn backend(server: &FakeServer, stream: bool) -> Anthropic {
    Anthropic::with_key(
        &config(Provider::Anthropic, &server.base, stream),
        "sk-ant-test".into(),
    )
    .expect("the backend")
}

fn message(content: Value, stop: &str) -> Value {
    json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "test-model",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {"input_tokens": 30, "output_tokens": 9}
    })
}

#[test]
fn plain_text_answer() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        &message(
            json!([{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}]),
            "end_turn",
        ),
    )]);
    let response = backend(&server, false)
        .complete(&simple_request(), later())
        .expect("an answer");
    assert_eq!(response.text(), Some("Hello there"));
    assert_eq!(response.finish, FinishReason::Stop);
    assert_eq!(response.raw_finish_reason.as_deref(), Some("end_turn"));
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 30,
            output_tokens: 9
        })
    );
    assert!(!response.streamed && !response.truncated);

    let request = server.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    let body = request.json();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["system"], "You are terse.");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    );
    assert!(body.get("tools").is_none());
    assert!(body.get("stream").is_none());
}

#[test]
fn request_maps_the_conversation_and_merges_tool_results() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        &message(json!([{"type": "text", "text": "Done."}]), "end_turn"),
    )]);
    backend(&server, false)
        .complete(&conversation_request(), later())
        .expect("an answer");
    let body = server.only_request().json();
    assert_eq!(body["system"], "You are a support bot.");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "How do I reset my password?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_a", "name": "kb_read", "input": {"article": "password-reset"}},
                {"type": "tool_use", "id": "call_b", "name": "http_get", "input": {"url": "https://status.example.com"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": "{\"text\":\"Settings > Security\"}", "is_error": false},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "HTTP 503", "is_error": true}
            ]}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([
            {"name": "kb_read", "description": "Read a help article",
             "input_schema": {"type": "object", "properties": {"article": {"type": "string"}}}},
            {"name": "http_get", "description": "GET a URL", "input_schema": {"type": "object"}}
        ])
    );
}

#[test]
fn tool_use_answer() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        &message(
            json!([
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "kb_read", "input": {"article": "password-reset"}}
            ]),
            "tool_use",
        ),
    )]);
    let response = backend(&server, false)
        .complete(&conversation_request(), later())
        .expect("an answer");
    assert_eq!(response.finish, FinishReason::ToolCalls);
    assert_eq!(response.text(), Some("Checking."));
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "toolu_1");
    assert_eq!(calls[0].name, "kb.read");
    assert_eq!(calls[0].arguments, json!({"article": "password-reset"}));
}

#[test]
fn max_tokens_stop_is_length() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        &message(json!([{"type": "text", "text": "It was"}]), "max_tokens"),
    )]);
    let response = backend(&server, false)
        .complete(&simple_request(), later())
        .expect("an answer");
    assert_eq!(response.finish, FinishReason::Length);
    assert_eq!(response.raw_finish_reason.as_deref(), Some("max_tokens"));
}

/// One SSE event the way Anthropic writes them.
fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn stream_events() -> Vec<String> {
    vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "content": [], "model": "test-model", "stop_reason": null,
                "usage": {"input_tokens": 472, "output_tokens": 2}}}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", &json!({"type": "ping"})),
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
        ),
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "look."}}),
        ),
        event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "kb_read", "input": {}}}),
        ),
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"artic"}}),
        ),
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "le\": \"password-"}}),
        ),
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "reset\"}"}}),
        ),
        event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 1}),
        ),
        event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 89}}),
        ),
        event("message_stop", &json!({"type": "message_stop"})),
    ]
}

#[test]
fn streaming_assembles_text_and_tool_use_from_json_pieces() {
    let text: String = stream_events().concat();
    let server = FakeServer::start(vec![Reply::sse(&text, 9)]);
    let response = backend(&server, true)
        .complete(&conversation_request(), later())
        .expect("an answer");
    assert!(response.streamed);
    assert!(!response.truncated);
    assert_eq!(response.text(), Some("Let me look."));
    assert_eq!(response.finish, FinishReason::ToolCalls);
    assert_eq!(response.raw_finish_reason.as_deref(), Some("tool_use"));
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "toolu_9");
    assert_eq!(calls[0].name, "kb.read");
    assert_eq!(calls[0].arguments, json!({"article": "password-reset"}));
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 472,
            output_tokens: 89
        })
    );
    assert_eq!(server.only_request().json()["stream"], true);
}

#[test]
fn streaming_with_crlf_over_chunked_encoding() {
    let text: String = stream_events().concat().replace('\n', "\r\n");
    let server = FakeServer::start(vec![Reply::Stream {
        pieces: pieces(&text, 17),
        chunked: true,
        cut: false,
    }]);
    let response = backend(&server, true)
        .complete(&conversation_request(), later())
        .expect("an answer");
    assert!(!response.truncated);
    assert_eq!(
        response.tool_calls()[0].arguments,
        json!({"article": "password-reset"})
    );
}

#[test]
fn stream_max_tokens_is_length() {
    let text = [
        event(
            "message_start",
            &json!({"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "It was"}}),
        ),
        event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}}),
        ),
        event("message_stop", &json!({"type": "message_stop"})),
    ]
    .concat();
    let server = FakeServer::start(vec![Reply::sse(&text, 6)]);
    let response = backend(&server, true)
        .complete(&simple_request(), later())
        .expect("an answer");
    assert_eq!(response.finish, FinishReason::Length);
    assert!(!response.truncated);
    assert_eq!(response.text(), Some("It was"));
}

#[test]
fn stream_cut_midway_is_truncated_with_what_arrived() {
    let events = stream_events();
    // Through the first piece of the tool input, then half of the next event.
    let mut text: String = events[..9].concat();
    text.push_str(&events[9][..40]);
    for chunked in [false, true] {
        let server = FakeServer::start(vec![Reply::Stream {
            pieces: pieces(&text, 10),
            chunked,
            cut: true,
        }]);
        let response = backend(&server, true)
            .complete(&conversation_request(), later())
            .expect("what arrived");
        assert!(response.truncated, "chunked: {chunked}");
        assert!(response.streamed);
        assert_eq!(response.text(), Some("Let me look."));
        assert_eq!(response.finish, FinishReason::Other);
        let calls = response.tool_calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "kb.read");
        assert_eq!(calls[0].arguments, Value::String("{\"artic".into()));
        assert_eq!(
            response.usage,
            Some(Usage {
                input_tokens: 472,
                output_tokens: 2
            })
        );
    }
}

#[test]
fn stream_error_event() {
    let text = [
        event(
            "message_start",
            &json!({"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ),
        event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    ]
    .concat();
    let server = FakeServer::start(vec![Reply::sse(&text, 8)]);
    let error = backend(&server, true)
        .complete(&simple_request(), later())
        .expect_err("overloaded");
    assert_eq!(
        error,
        ModelError::Status {
            status: 529,
            message: "Overloaded".into(),
            retry_after: None
        }
    );
    assert!(error.is_retryable());

    let text = event(
        "error",
        &json!({"type": "error", "error": {"type": "something_new", "message": "Odd"}}),
    );
    let server = FakeServer::start(vec![Reply::sse(&text, 8)]);
    let error = backend(&server, true)
        .complete(&simple_request(), later())
        .expect_err("unknown error type");
    assert!(
        matches!(&error, ModelError::Malformed(m) if m.contains("Odd")),
        "{error:?}"
    );
}

#[test]
fn rate_limit_with_retry_after_is_retryable() {
    let server = FakeServer::start(vec![
        Reply::json(
            429,
            &json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}}),
        )
        .header("retry-after", "7"),
    ]);
    let error = backend(&server, false)
        .complete(&simple_request(), later())
        .expect_err("a 429");
    assert_eq!(
        error,
        ModelError::Status {
            status: 429,
            message: "Number of requests has exceeded your rate limit".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
    assert!(error.is_retryable());

    let server = FakeServer::start(vec![
        Reply::json(
            429,
            &json!({"type": "error", "error": {"message": "slow down"}}),
        )
        .header("retry-after-ms", "5"),
    ]);
    let error = backend(&server, false)
        .complete(&simple_request(), later())
        .expect_err("a 429");
    assert_eq!(error.retry_after(), Some(Duration::from_millis(5)));
}

#[test]
fn server_errors() {
    let server = FakeServer::start(vec![
        Reply::json(
            529,
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
        Reply::text(500, "text/html", ""),
    ]);
    let mut model = backend(&server, false);
    let error = model
        .complete(&simple_request(), later())
        .expect_err("a 529");
    assert_eq!(error.status(), Some(529));
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), None);
    let error = model
        .complete(&simple_request(), later())
        .expect_err("a 500");
    assert_eq!(
        error,
        ModelError::Status {
            status: 500,
            message: "Internal Server Error".into(),
            retry_after: None
        }
    );
}

#[test]
fn malformed_bodies() {
    let server = FakeServer::start(vec![
        Reply::text(200, "application/json", "<html>oops</html>"),
        Reply::json(200, &json!({"type": "message", "content": "text?"})),
        Reply::json(
            200,
            &message(
                json!([{"type": "tool_use", "id": "t", "input": {}}]),
                "tool_use",
            ),
        ),
    ]);
    let mut model = backend(&server, false);
    let error = model
        .complete(&simple_request(), later())
        .expect_err("not JSON");
    assert!(
        matches!(&error, ModelError::Malformed(m) if m.contains("not JSON") && m.contains("<html>")),
        "{error:?}"
    );
    let error = model
        .complete(&simple_request(), later())
        .expect_err("no list");
    assert_eq!(
        error,
        ModelError::Malformed(
            r#"not a Messages response: `content`: invalid type: string "text?", expected a sequence"#
                .into()
        )
    );
    let error = model
        .complete(&simple_request(), later())
        .expect_err("no name");
    assert!(
        matches!(&error, ModelError::Malformed(m) if m.contains("content[0]") && m.contains("name")),
        "{error:?}"
    );
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let mut model = Anthropic::with_key(
        &config(Provider::Anthropic, &closed_port_base(), false),
        "k".into(),
    )
    .expect("the backend");
    let error = model
        .complete(&simple_request(), later())
        .expect_err("refused");
    assert!(matches!(error, ModelError::Connect(_)), "{error:?}");
}

#[test]
fn silent_server_times_out_at_the_deadline() {
    let server = FakeServer::start(vec![Reply::Silent(Duration::from_secs(5))]);
    let mut model = backend(&server, true);
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
fn missing_key_variable_is_named() {
    let mut model = config(Provider::Anthropic, "http://127.0.0.1:9", false);
    model.api_key_env = Some("TAPEDECK_TEST_KEY_SURELY_UNSET_2".into());
    let error = Anthropic::new(&model).expect_err("no key");
    assert!(
        error
            .to_string()
            .contains("environment variable TAPEDECK_TEST_KEY_SURELY_UNSET_2 is not set"),
        "{error}"
    );
}
