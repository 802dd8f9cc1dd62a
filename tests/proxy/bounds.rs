//! What a hostile upstream cannot do to `tapedeck record`: make the proxy build a huge
//! response (a tool-call or content-block index in the billions, hundreds of tool calls, a
//! body over 32 MiB), or get the API key it echoes into the store in a form the plain scrub
//! misses (split across two stream deltas, JSON-escaped, URL-encoded). The client always gets
//! the upstream's bytes as they were.

use serde_json::{Value, json};

use crate::server::{FakeServer, Reply};
use crate::{Env, KEY, contains, kinds};

/// `call.py openai|anthropic BODY_FILE`: one POST of the body (OpenAI chat completions or
/// Anthropic messages, with the key), its response written to `got.bin`, then a GET of
/// `/v1/models` through the same proxy; prints the status and length of each.
const CALL: &str = r#"
import http.client, os, sys, urllib.parse
base = urllib.parse.urlparse(os.environ["OPENAI_BASE_URL"])
def call(method, path, headers, body=None):
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=60)
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    print(r.status, len(data), flush=True)
    return data
if sys.argv[1] == "anthropic":
    path = "/v1/messages"
    headers = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
else:
    path = "/v1/chat/completions"
    headers = {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
headers["content-type"] = "application/json"
body = open(sys.argv[2], "rb").read()
open("got.bin", "wb").write(call("POST", path, headers, body))
call("GET", "/v1/models", {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
"#;

/// How a bounded call ended.
struct Recorded {
    env: Env,
    show: Value,
    run: String,
}

/// `tapedeck record` of one `provider` call answered with `reply` (then a `/v1/models` call):
/// checks the client got `sent` unchanged (with HTTP 200) and the proxy served the next
/// request.
fn record(provider: &str, reply: Reply, sent: &[u8]) -> Recorded {
    record_status(provider, reply, 200, sent)
}

/// [`record`] of an answer with another status.
fn record_status(provider: &str, reply: Reply, status: u16, sent: &[u8]) -> Recorded {
    let env = Env::new();
    env.write("call.py", CALL);
    let request = match provider {
        "anthropic" => {
            json!({"model": "claude-test", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
        }
        _ => json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    };
    env.write("body.json", &request.to_string());
    let server = FakeServer::start(vec![reply, Reply::json(200, &json!({"data": []}))]);
    let out = env.record(
        &[
            "--upstream-openai",
            &format!("{}/v1", server.base),
            "--upstream-anthropic",
            &server.base,
        ],
        &["python3", "call.py", provider, "body.json"],
    );
    assert_eq!(
        out.stdout,
        format!("{status} {}\n200 11\n", sent.len()),
        "the client got the whole answer, and the proxy served the next request"
    );
    let got = std::fs::read(env.path("got.bin")).expect("the client wrote the answer");
    assert!(got == sent, "the client got the upstream's bytes unchanged");
    let run = out.run_id();
    let show = env.show(&run);
    // The client exits 0: tapedeck's exit says whether the run ended ok.
    out.expect_code(if show["run"]["stop_reason"] == "ok" {
        0
    } else {
        1
    });
    Recorded { env, show, run }
}

/// The run finished `model_error` naming `bound`, with no model response and no tool call
/// recorded, and the upstream's answer kept in its exchange.
fn assert_bounded(recorded: &Recorded, bound: &str) {
    let run = &recorded.show["run"];
    assert_ne!(run["status"], "incomplete", "{run}");
    assert_eq!(run["stop_reason"], "model_error", "{run}");
    let error = run["error"].as_str().expect("an error");
    assert!(error.contains(bound), "{error}");
    assert_eq!(
        kinds(&recorded.show),
        [
            "llm_request",
            "http_exchange",
            "http_exchange",
            "agent_identity",
            "run_finished"
        ]
        .map(str::to_owned)
    );
}

/// Writes `events` as one SSE stream, each event a piece of its own.
fn sse(events: &[Value], named: bool) -> Vec<String> {
    events
        .iter()
        .map(|e| match (named, e["type"].as_str()) {
            (true, Some(kind)) => format!("event: {kind}\ndata: {e}\n\n"),
            _ => format!("data: {e}\n\n"),
        })
        .collect()
}

/// A chat-completions stream whose one tool call has index `index`.
fn openai_call_at(index: u64) -> Vec<String> {
    let mut pieces = sse(
        &[
            json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
                {"index": index, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]}}]}),
            json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ],
        false,
    );
    pieces.push("data: [DONE]\n\n".to_owned());
    pieces
}

// Regression: a chat-completions delta with `"tool_calls":[{"index":10000000000, …}]` made the
// proxy push ten billion tool calls; the kernel killed it and the run stayed `incomplete`.
#[test]
fn a_streamed_tool_call_index_in_the_billions_is_bounded() {
    let pieces = openai_call_at(10_000_000_000);
    let recorded = record(
        "openai",
        Reply::Sse(pieces.clone()),
        pieces.concat().as_bytes(),
    );
    assert_bounded(
        &recorded,
        "tool-call index 10000000000 is over the limit of 1023",
    );
    // What the upstream sent is kept as it came (the pieces as the proxy read them: TCP may
    // join two of the upstream's writes into one read).
    let exchange = &recorded.show["events"][1]["data"];
    let raw = &recorded.show["blobs"][exchange["response"].as_str().expect("a ref")];
    let kept: String = raw["sse"]
        .as_array()
        .expect("the stream's pieces")
        .iter()
        .map(|p| p.as_str().expect("a piece"))
        .collect();
    assert_eq!(kept, pieces.concat());
}

// Regression: an Anthropic `content_block_start` with `"index": 100000` stored 100,001 tool
// calls (and a larger one exhausted memory).
#[test]
fn a_content_block_index_past_the_limit_is_bounded() {
    for index in [100_000u64, 10_000_000_000] {
        let pieces = sse(
            &[
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test", "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}}),
                json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}),
                json!({"type": "content_block_stop", "index": index}),
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}),
                json!({"type": "message_stop"}),
            ],
            true,
        );
        let recorded = record(
            "anthropic",
            Reply::Sse(pieces.clone()),
            pieces.concat().as_bytes(),
        );
        assert_bounded(
            &recorded,
            &format!("content-block index {index} is over the limit of 1023"),
        );
    }
}

#[test]
fn more_than_256_tool_calls_in_one_response_are_bounded() {
    let mut events: Vec<Value> = (0..300)
        .map(|i| {
            json!({"model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": i, "id": format!("call_{i}"), "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]}}]})
        })
        .collect();
    events.push(json!({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}));
    let mut pieces = sse(&events, false);
    pieces.push("data: [DONE]\n\n".to_owned());
    let recorded = record(
        "openai",
        Reply::Sse(pieces.clone()),
        pieces.concat().as_bytes(),
    );
    assert_bounded(
        &recorded,
        "the response has more than the limit of 256 tool calls",
    );
    // At 256 the calls are recorded as usual.
    let mut events: Vec<Value> = events[..256].to_vec();
    events.push(json!({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}));
    let mut pieces = sse(&events, false);
    pieces.push("data: [DONE]\n\n".to_owned());
    let recorded = record(
        "openai",
        Reply::Sse(pieces.clone()),
        pieces.concat().as_bytes(),
    );
    let calls = kinds(&recorded.show)
        .iter()
        .filter(|k| *k == "tool_call")
        .count();
    assert_eq!(calls, 256);
}

#[test]
fn a_response_over_32_mib_reaches_the_client_and_is_kept_only_to_the_limit() {
    // 40 MiB of content deltas, 64 KiB each.
    let text = "x".repeat(64 << 10);
    let event = format!(
        "data: {}\n\n",
        json!({"model": "m", "choices": [{"index": 0, "delta": {"content": text}}]})
    );
    let mut pieces = vec![event; 640];
    pieces.push("data: [DONE]\n\n".to_owned());
    let sent = pieces.concat();
    assert!(sent.len() > 40 << 20);
    let recorded = record("openai", Reply::Sse(pieces), sent.as_bytes());
    assert_bounded(
        &recorded,
        "the response is over the limit of 33554432 bytes",
    );
    let exchange = &recorded.show["events"][1]["data"];
    let raw = &recorded.show["blobs"][exchange["response"].as_str().expect("a ref")];
    assert_eq!(raw["truncated"], true);
    let kept: usize = raw["sse"]
        .as_array()
        .expect("pieces")
        .iter()
        .map(|p| p.as_str().map_or(0, str::len))
        .sum();
    assert!(kept <= 32 << 20, "{kept} bytes kept");

    // A whole body too.
    let body = json!({"model": "m", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "x".repeat(33 << 20)}}]})
    .to_string();
    let recorded = record(
        "openai",
        Reply::text(200, "application/json", &body),
        body.as_bytes(),
    );
    assert_bounded(
        &recorded,
        "the response is over the limit of 33554432 bytes",
    );
}

/// Every form the store and its exports could hold the key in.
fn key_forms() -> Vec<String> {
    vec![
        KEY.to_owned(),
        KEY.replace('-', r"\u002d"),
        KEY.replace('-', r"\\u002d"),
        KEY.replace('-', "%2D"),
        KEY.replace('-', "%2d"),
        // The parts of a split echo.
        KEY[..12].to_owned(),
        KEY[12..].to_owned(),
    ]
}

/// The key is in no form in the store's files, `export`, `export --format otel` or
/// `show --json`.
fn assert_no_key(recorded: &Recorded) {
    let env = &recorded.env;
    let mut outputs = vec![("the store files".to_owned(), env.store_bytes())];
    for args in [
        vec!["export", recorded.run.as_str()],
        vec!["export", recorded.run.as_str(), "--format", "otel"],
        vec!["show", recorded.run.as_str(), "--json"],
    ] {
        let out = env.exec(env.tapedeck().args(&args));
        out.expect_code(0);
        outputs.push((args.join(" "), out.stdout.into_bytes()));
    }
    for (what, bytes) in &outputs {
        for form in key_forms() {
            assert!(!contains(bytes, form.as_bytes()), "{what} holds {form}");
        }
    }
}

// Regression: an upstream that echoed the key split across two deltas got both halves stored
// in the raw chunks (only the assembled answer showed `[REDACTED]`).
#[test]
fn a_key_echoed_across_two_stream_deltas_is_not_stored() {
    let (head, tail) = KEY.split_at(12);
    let mut pieces = sse(
        &[
            json!({"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": format!("your key is {head}")}}]}),
            json!({"model": "m", "choices": [{"index": 0, "delta": {"content": format!("{tail}, right?")}}]}),
            json!({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ],
        false,
    );
    pieces.push("data: [DONE]\n\n".to_owned());
    let recorded = record(
        "openai",
        Reply::Sse(pieces.clone()),
        pieces.concat().as_bytes(),
    );
    assert_eq!(
        recorded.show["run"]["answer"],
        "your key is [REDACTED], right?"
    );
    assert_no_key(&recorded);
    // The recorded stream is still one a client can read: replayed, it says the same.
    let env = &recorded.env;
    let rep = env.exec(env.tapedeck().args([
        "replay",
        &recorded.run,
        "--",
        "python3",
        "call.py",
        "openai",
        "body.json",
    ]));
    rep.expect_code(0);
    let replayed = env.show(&rep.run_id());
    assert_eq!(replayed["run"]["stop_reason"], "ok");
    assert_eq!(replayed["run"]["answer"], "your key is [REDACTED], right?");
}

// Regression: a body echoing the key with `\u002d` escapes was stored as it came.
#[test]
fn a_key_echoed_json_escaped_in_a_body_is_not_stored() {
    let body = format!(
        r#"{{"model": "m", "choices": [{{"index": 0, "finish_reason": "stop", "message": {{"role": "assistant", "content": "your key is {}"}}}}]}}"#,
        KEY.replace('-', r"\u002d")
    );
    let recorded = record(
        "openai",
        Reply::text(200, "application/json", &body),
        body.as_bytes(),
    );
    assert_eq!(recorded.show["run"]["answer"], "your key is [REDACTED]");
    assert_no_key(&recorded);
}

#[test]
fn a_key_echoed_url_encoded_is_not_stored() {
    let body = json!({"error": {"message": format!("no such key; see https://example.invalid/keys?k={}", KEY.replace('-', "%2D"))}});
    let body = body.to_string();
    let recorded = record_status(
        "openai",
        Reply::text(401, "application/json", &body),
        401,
        body.as_bytes(),
    );
    assert_eq!(recorded.show["run"]["stop_reason"], "model_error");
    assert_no_key(&recorded);
}
