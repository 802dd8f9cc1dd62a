//! OpenAI Chat Completions through the proxy: a tool-calling conversation, non-streamed and
//! streamed, recorded and replayed; the key kept out of the store; a 5xx passed through; an
//! unmatched request in replay.

use serde_json::{Value, json};
use tapedeck_testkit::on_both_stores;

use crate::server::{FakeServer, Reply};
use crate::weather;
use crate::{Env, KEY, TOOL_CONVERSATION, contains, kinds, require_openai_sdk};

/// A client that asks about the weather, runs the `get_weather` tool the model asks for, sends
/// the result back, and prints every assistant turn as JSON lines. `argv[1]` is `stream` or
/// `plain`; `argv[2]` (optional) is the city.
const CLIENT: &str = r#"
import json, os, sys
stream = sys.argv[1] == "stream"
city = sys.argv[2] if len(sys.argv) > 2 else "Paris"
messages = [{"role": "user", "content": "Weather in %s?" % city}]
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
import openai
client = openai.OpenAI(max_retries=0)
def call():
    if stream:
        s = client.chat.completions.create(model="gpt-test", messages=messages, tools=tools, stream=True, stream_options={"include_usage": True})
        content, calls, finish = "", {}, None
        for chunk in s:
            if not chunk.choices:
                continue
            d = chunk.choices[0].delta
            content += d.content or ""
            for tc in d.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                c["id"] = tc.id or c["id"]
                if tc.function:
                    c["name"] += tc.function.name or ""
                    c["arguments"] += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        return content, [calls[i] for i in sorted(calls)], finish
    r = client.chat.completions.create(model="gpt-test", messages=messages, tools=tools)
    m = r.choices[0].message
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in (m.tool_calls or [])]
    return m.content or "", calls, r.choices[0].finish_reason
for _ in range(4):
    content, calls, finish = call()
    print(json.dumps({"content": content, "calls": calls, "finish": finish}))
    if not calls:
        break
    messages.append({"role": "assistant", "content": content or None, "tool_calls": [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]})
    for c in calls:
        messages.append({"role": "tool", "tool_call_id": c["id"], "content": json.dumps({"temp_c": 21})})
"#;

/// Records the conversation (`mode` is `plain` or `stream`), checks the run, replays it with
/// the upstream gone and checks the client printed the same.
fn record_and_replay(mode: &str, replies: Vec<Reply>) {
    if !require_openai_sdk() {
        return;
    }
    let env = Env::new();
    env.write("client.py", CLIENT);
    env.write(
        "prices.yaml",
        "gpt-test: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n",
    );
    let server = FakeServer::start(replies);
    let rec = env.record(
        &[
            "--upstream-openai",
            &format!("{}/v1", server.base),
            "--pricing",
            "prices.yaml",
            "--task",
            "weather",
        ],
        &["python3", "client.py", mode],
    );
    rec.expect_code(0);
    let lines: Vec<Value> = rec
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("the client prints JSON lines"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", rec.stdout);
    assert_eq!(lines[0]["calls"][0]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(lines[1]["content"], "It is 21 °C in Paris.");

    // The upstream got the key and both requests, the second with the tool result.
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let second = requests[1].json();
    assert_eq!(second["messages"][2]["role"], "tool");

    let id = rec.run_id();
    let show = env.show(&id);
    assert_eq!(show["run"]["source"], "proxy");
    assert_eq!(show["run"]["status"], "ok");
    assert_eq!(show["run"]["stop_reason"], "ok");
    assert_eq!(show["run"]["answer"], "It is 21 °C in Paris.");
    assert_eq!(show["run"]["task"], "weather");
    assert_eq!(
        kinds(&show),
        TOOL_CONVERSATION.map(str::to_owned),
        "{show:#}"
    );
    let events = show["events"].as_array().expect("events");
    let response = &events[1]["data"];
    assert_eq!(response["finish_reason"], "tool_calls");
    assert_eq!(response["usage"]["input_tokens"], 20);
    assert_eq!(
        response["streamed"].as_bool().unwrap_or(false),
        mode == "stream"
    );
    assert_eq!(events[2]["data"]["call_id"], "call_1");
    assert_eq!(events[2]["data"]["tool"], "get_weather");
    assert_eq!(events[4]["data"]["call_id"], "call_1");
    let cost = show["run"]["totals"]["cost_usd"].as_f64().expect("a cost");
    assert!((cost - (60.0 + 2.0 * 14.0) / 1e6).abs() < 1e-12, "{cost}");
    if mode == "stream" {
        // The chunks are kept as they arrived. How TCP groups the upstream's six events into
        // reads varies (the last two often arrive together), so count the events, not the
        // chunks.
        let raw = &show["blobs"][events[3]["data"]["response"].as_str().expect("a ref")];
        let chunks = raw["sse"].as_array().expect("chunks");
        let events_in_chunks: usize = chunks
            .iter()
            .map(|c| c.as_str().expect("a chunk").matches("data: ").count())
            .sum();
        assert!(chunks.len() >= 2, "the stream arrived in pieces: {raw}");
        assert_eq!(events_in_chunks, 6, "every event is kept: {raw}");
    }

    // The key is nowhere in the store.
    let bytes = env.store_bytes();
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, KEY.as_bytes()),
        "the API key is in the store"
    );
    assert!(!contains(&bytes, b"VERYSECRET"));

    // Replay with the upstream gone: the client prints the same.
    drop(server);
    let rep = env.replay_same(&id, &["python3", "client.py", mode], &rec);
    let replay = env.show(&rep.run_id());
    assert_eq!(replay["run"]["parent"], show["run"]["id"]);
    assert_eq!(replay["run"]["mode"], "proxy");
    assert_eq!(replay["run"]["stop_reason"], "ok");
    assert_eq!(
        replay["run"]["totals"]["cost_usd"], show["run"]["totals"]["cost_usd"],
        "the recorded costs come back"
    );
    assert_eq!(kinds(&replay), kinds(&show));

    // Proxy runs show and diff like runtime runs.
    let text = env.exec(env.tapedeck().args(["show", &id]));
    text.expect_code(0);
    assert!(text.stdout.contains("get_weather"), "{}", text.stdout);
    let diff = env.exec(env.tapedeck().args(["diff", &id, &rep.run_id()]));
    println!("{}", diff.stdout);
    diff.expect_code(0);
}

on_both_stores! {
    fn proxy_records_and_replays_a_tool_conversation(backend) {
        record_and_replay("plain", weather::replies("plain"));
    }
}

on_both_stores! {
    fn proxy_records_and_replays_a_streamed_tool_conversation(backend) {
        record_and_replay("stream", weather::replies("stream"));
    }
}

#[test]
fn proxy_passes_a_5xx_through_and_records_it() {
    let env = Env::new();
    env.write("client.py", CLIENT);
    let server = FakeServer::start(vec![Reply::json(
        503,
        &json!({"error": {"message": "overloaded", "type": "server_error"}}),
    )]);
    let rec = env.record(
        &["--upstream-openai", &format!("{}/v1", server.base)],
        &["python3", "client.py", "plain"],
    );
    assert_ne!(rec.code, Some(0), "the client fails on a 503: {rec:?}");
    assert!(
        rec.stderr.contains("overloaded") || rec.stderr.contains("503"),
        "{}",
        rec.stderr
    );
    let show = env.show(&rec.run_id());
    assert_eq!(show["run"]["stop_reason"], "model_error");
    let events = show["events"].as_array().expect("events");
    let exchange = events
        .iter()
        .find(|e| e["kind"] == "http_exchange")
        .expect("the exchange is recorded");
    assert_eq!(exchange["data"]["status"], 503);
    let raw = &show["blobs"][exchange["data"]["response"].as_str().expect("a ref")];
    assert!(raw["body"].as_str().expect("a body").contains("overloaded"));
    assert!(!contains(&env.store_bytes(), KEY.as_bytes()));
}

#[test]
fn proxy_replay_of_an_unmatched_request_names_the_closest() {
    let env = Env::new();
    env.write("client.py", CLIENT);
    let server = FakeServer::start(vec![
        Reply::json(200, &weather::tool_call_body()),
        Reply::json(200, &weather::answer_body()),
    ]);
    let rec = env.record(
        &["--upstream-openai", &format!("{}/v1", server.base)],
        &["python3", "client.py", "plain"],
    );
    rec.expect_code(0);
    drop(server);
    let id = rec.run_id();
    let rep = env.exec(env.tapedeck().args([
        "replay",
        &id,
        "--",
        "python3",
        "client.py",
        "plain",
        "Lyon",
    ]));
    assert_ne!(rep.code, Some(0));
    assert!(
        rep.stderr.contains("closest is recorded request #1")
            && rep.stderr.contains("body.messages[0].content"),
        "{}",
        rep.stderr
    );
    // The miss shows both values, the differing part marked.
    assert!(
        rep.stderr.contains("recorded: ") && rep.stderr.contains("[-Paris-]"),
        "{}",
        rep.stderr
    );
    assert!(
        rep.stderr.contains("actual:   ") && rep.stderr.contains("[-Lyon-]"),
        "{}",
        rep.stderr
    );
    let replay = env.show(&rep.run_id());
    assert_eq!(replay["run"]["stop_reason"], "replay_miss:llm");
    // With the city ignored, it matches.
    let rep = env.exec(env.tapedeck().args([
        "replay",
        &id,
        "--ignore",
        "Paris|Lyon",
        "--",
        "python3",
        "client.py",
        "plain",
        "Lyon",
    ]));
    rep.expect_code(0);
}
