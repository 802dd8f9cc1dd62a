//! Anthropic Messages through the proxy with the official `anthropic` Python SDK: a streamed
//! tool conversation recorded (tool_use → tool_result linked by id) and replayed offline.

use serde_json::{Value, json};

use crate::server::{FakeServer, Reply};
use crate::{Env, KEY, TOOL_CONVERSATION, contains, kinds};

const CLIENT: &str = r#"
import json, sys
import anthropic
client = anthropic.Anthropic(max_retries=0)
messages = [{"role": "user", "content": "Weather in Paris?"}]
tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
for _ in range(4):
    with client.messages.stream(model="claude-test", max_tokens=100, system="Be brief.", messages=messages, tools=tools) as s:
        m = s.get_final_message()
    blocks = [b.model_dump(exclude_none=True) for b in m.content]
    print(json.dumps({"content": blocks, "stop": m.stop_reason}))
    uses = [b for b in m.content if b.type == "tool_use"]
    if not uses:
        break
    messages.append({"role": "assistant", "content": blocks})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": json.dumps({"temp_c": 21})} for u in uses]})
"#;

fn events(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|e| {
            format!(
                "event: {}\ndata: {e}\n\n",
                e["type"].as_str().unwrap_or("x")
            )
        })
        .collect()
}

fn start(stop: &str, out: u64) -> Value {
    let _ = stop;
    json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 30, "output_tokens": out}}})
}

fn tool_use_stream() -> Vec<String> {
    events(&[
        start("tool_use", 1),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 12}}),
        json!({"type": "message_stop"}),
    ])
}

fn answer_stream() -> Vec<String> {
    events(&[
        start("end_turn", 1),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "21 °C "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "in Paris."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 6}}),
        json!({"type": "message_stop"}),
    ])
}

#[test]
fn proxy_records_and_replays_a_streamed_anthropic_tool_conversation() {
    if !tapedeck_testkit::clients::require(
        "the anthropic Python SDK",
        tapedeck_testkit::clients::python_imports("anthropic"),
        "python3 -m pip install anthropic",
    ) {
        return;
    }
    let env = Env::new();
    env.write("client.py", CLIENT);
    let server = FakeServer::start(vec![
        Reply::Sse(tool_use_stream()),
        Reply::Sse(answer_stream()),
    ]);
    let rec = env.record(
        &["--upstream-anthropic", &server.base],
        &["python3", "client.py"],
    );
    rec.expect_code(0);
    assert_eq!(rec.stdout.lines().count(), 2, "{}", rec.stdout);
    assert!(rec.stdout.contains("in Paris."));
    let requests = server.requests();
    assert_eq!(requests[0].path, "/v1/messages");
    // The SDK sends the key as `x-api-key` or as a bearer token, depending on its version.
    let auth = requests[0]
        .header("x-api-key")
        .or(requests[0].header("authorization"));
    assert!(
        auth.is_some_and(|a| a.ends_with(KEY)),
        "{:?}",
        requests[0].headers
    );

    let id = rec.run_id();
    let show = env.show(&id);
    assert_eq!(show["run"]["stop_reason"], "ok");
    assert_eq!(show["run"]["answer"], "21 °C in Paris.");
    assert_eq!(kinds(&show), TOOL_CONVERSATION.map(str::to_owned));
    let events = show["events"].as_array().expect("events");
    assert_eq!(events[1]["data"]["finish_reason"], "tool_use");
    assert_eq!(events[1]["data"]["usage"]["output_tokens"], 12);
    assert_eq!(events[1]["data"]["streamed"], true);
    assert_eq!(events[2]["data"]["call_id"], "toolu_1");
    let args = &show["blobs"][events[2]["data"]["args"].as_str().expect("a ref")];
    assert_eq!(args, &json!({"city": "Paris"}));
    assert_eq!(events[4]["data"]["call_id"], "toolu_1");
    // The system prompt is the first message.
    let first = &show["blobs"][events[0]["data"]["messages"][0].as_str().expect("a ref")];
    assert_eq!(first["role"], "system");
    assert!(!contains(&env.store_bytes(), KEY.as_bytes()));

    drop(server);
    env.replay_same(&id, &["python3", "client.py"], &rec);
}
