//! The OpenAI Responses API through the proxy with the `openai` Python SDK: a function call
//! answered with `function_call_output`, then a streamed final answer; recorded and replayed.

use serde_json::{Value, json};

use crate::server::{FakeServer, Reply};
use crate::{Env, TOOL_CONVERSATION, kinds, require_openai_sdk};

const CLIENT: &str = r#"
import json
import openai
client = openai.OpenAI(max_retries=0)
tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
r = client.responses.create(model="gpt-test", instructions="Be brief.", input="Weather in Paris?", tools=tools)
calls = [o for o in r.output if o.type == "function_call"]
print(json.dumps([[c.call_id, c.name, c.arguments] for c in calls]))
items = [{"role": "user", "content": "Weather in Paris?"}] + [o.model_dump(exclude_none=True) for o in r.output]
items += [{"type": "function_call_output", "call_id": c.call_id, "output": json.dumps({"temp_c": 21})} for c in calls]
final = None
for event in client.responses.create(model="gpt-test", instructions="Be brief.", input=items, tools=tools, stream=True):
    if event.type == "response.completed":
        final = event.response
print(final.output_text)
"#;

fn response(id: &str, output: Value, usage: (u64, u64)) -> Value {
    json!({
        "id": id, "object": "response", "created_at": 1, "status": "completed", "model": "gpt-test",
        "output": output, "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": usage.0, "output_tokens": usage.1, "total_tokens": usage.0 + usage.1,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
    })
}

fn call_output() -> Value {
    json!([{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"}])
}

fn message_output(text: &str) -> Value {
    json!([{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}])
}

fn stream() -> Vec<String> {
    let done = response("resp_2", message_output("21 °C in Paris."), (30, 6));
    let mut created = done.clone();
    created["status"] = json!("in_progress");
    created["output"] = json!([]);
    [
        json!({"type": "response.created", "sequence_number": 0, "response": created}),
        json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "21 °C ", "logprobs": []}),
        json!({"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "in Paris.", "logprobs": []}),
        json!({"type": "response.completed", "sequence_number": 3, "response": done}),
    ]
    .iter()
    .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("x")))
    .collect()
}

#[test]
fn proxy_records_and_replays_a_responses_api_conversation() {
    if !require_openai_sdk() {
        return;
    }
    let env = Env::new();
    env.write("client.py", CLIENT);
    let server = FakeServer::start(vec![
        Reply::json(200, &response("resp_1", call_output(), (20, 5))),
        Reply::Sse(stream()),
    ]);
    let rec = env.record(
        &["--upstream-openai", &format!("{}/v1", server.base)],
        &["python3", "client.py"],
    );
    rec.expect_code(0);
    assert_eq!(
        rec.stdout,
        "[[\"call_1\", \"get_weather\", \"{\\\"city\\\":\\\"Paris\\\"}\"]]\n21 °C in Paris.\n"
    );
    assert_eq!(server.requests()[0].path, "/v1/responses");
    let id = rec.run_id();
    let show = env.show(&id);
    assert_eq!(show["run"]["stop_reason"], "ok");
    assert_eq!(show["run"]["answer"], "21 °C in Paris.");
    assert_eq!(kinds(&show), TOOL_CONVERSATION.map(str::to_owned));
    let events = show["events"].as_array().expect("events");
    assert_eq!(events[1]["data"]["finish_reason"], "tool_calls");
    assert_eq!(events[4]["data"]["call_id"], "call_1");
    assert_eq!(events[6]["data"]["streamed"], true);
    assert_eq!(events[6]["data"]["usage"]["input_tokens"], 30);

    drop(server);
    env.replay_same(&id, &["python3", "client.py"], &rec);
}

/// The Responses API can send only the new items with `previous_response_id`: the recorded
/// response ids are served again on replay, so the client's follow-up request (which names
/// that id) matches the recorded one, and its tool output still links to the call.
const CLIENT_CHAINED: &str = r#"
import json
import openai
client = openai.OpenAI(max_retries=0)
tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
r = client.responses.create(model="gpt-test", input="Weather in Paris?", tools=tools)
calls = [o for o in r.output if o.type == "function_call"]
items = [{"type": "function_call_output", "call_id": c.call_id, "output": json.dumps({"temp_c": 21})} for c in calls]
final = client.responses.create(model="gpt-test", previous_response_id=r.id, input=items, tools=tools)
print(r.id, final.output_text)
"#;

#[test]
fn previous_response_id_chains_record_and_replay() {
    if !require_openai_sdk() {
        return;
    }
    let env = Env::new();
    env.write("client.py", CLIENT_CHAINED);
    let server = FakeServer::start(vec![
        Reply::json(200, &response("resp_1", call_output(), (20, 5))),
        Reply::json(
            200,
            &response("resp_2", message_output("21 °C in Paris."), (30, 6)),
        ),
    ]);
    let rec = env.record(
        &["--upstream-openai", &format!("{}/v1", server.base)],
        &["python3", "client.py"],
    );
    rec.expect_code(0);
    assert_eq!(rec.stdout, "resp_1 21 °C in Paris.\n");
    assert_eq!(
        server.requests()[1].json()["previous_response_id"],
        "resp_1",
        "the follow-up sends only new items"
    );
    let id = rec.run_id();
    let show = env.show(&id);
    let results: Vec<&Value> = show["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 1, "{show:#}");
    assert_eq!(results[0]["data"]["call_id"], "call_1");

    drop(server);
    env.replay_same(&id, &["python3", "client.py"], &rec);
}
