//! tapedeck's own runtime as the proxy's client: `tapedeck record -- tapedeck run AGENT` gives
//! two runs of one conversation, the runtime's and the proxy's, and they must summarize alike.

use serde_json::{Value, json};

use crate::server::{FakeServer, Reply};
use crate::{Env, KEY, contains};

const AGENT: &str = r#"
name: weather-bot
model: { provider: openai, name: gpt-test }
system_prompt: "Answer with the weather."
tools:
  allow: [get_weather]
  defs:
    - name: get_weather
      builtin: mock
      input_schema: {type: object, properties: {city: {type: string}}, required: [city]}
      mock: [{args: {city: Paris}, output: {temp_c: 21}}]
pricing: { gpt-test: { input_per_mtok: 2.0, output_per_mtok: 8.0 } }
"#;

const PRICING: &str = "gpt-test: { input_per_mtok: 2.0, output_per_mtok: 8.0 }\n";

fn completion(message: Value, finish: &str, usage: (u64, u64)) -> Reply {
    Reply::json(
        200,
        &json!({
            "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1},
        }),
    )
}

#[test]
fn a_runtime_run_recorded_through_the_proxy_diffs_clean_against_the_proxy_run() {
    let env = Env::new();
    env.write("agent.yaml", AGENT);
    env.write("pricing.yaml", PRICING);
    let server = FakeServer::start(vec![
        completion(
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
            "tool_calls",
            (20, 5),
        ),
        completion(
            json!({"role": "assistant", "content": "It is 21 °C in Paris."}),
            "stop",
            (40, 9),
        ),
    ]);
    let tapedeck = assert_cmd::cargo::cargo_bin("tapedeck");
    let out = env.exec(
        env.tapedeck()
            .args(["record", "--pricing", "pricing.yaml", "--upstream-openai"])
            .arg(format!("{}/v1", server.base))
            .arg("--")
            .arg(&tapedeck)
            .args([
                "--store",
                "t.db",
                "run",
                "agent.yaml",
                "--task",
                "weather",
                "--input",
                "Weather in Paris?",
            ]),
    );
    out.expect_code(0);
    assert_eq!(
        server.requests().len(),
        2,
        "both model calls crossed the proxy"
    );
    let proxy_run = out.run_id();
    let runs = env
        .exec(env.tapedeck().args(["ls", "--json"]))
        .runs_listed();
    let runtime_run = runs
        .iter()
        .find(|r| r["source"] == "runtime")
        .and_then(|r| r["id"].as_str())
        .expect("the runtime's run")
        .to_owned();

    let proxy = env.show(&proxy_run);
    let runtime = env.show(&runtime_run);
    assert_eq!(proxy["run"]["source"], "proxy");
    for field in ["stop_reason", "answer"] {
        assert_eq!(proxy["run"][field], runtime["run"][field], "{field}");
    }
    for total in ["steps", "tokens_in", "tokens_out", "cost_usd", "tool_calls"] {
        assert_eq!(
            proxy["run"]["totals"][total], runtime["run"]["totals"][total],
            "totals.{total}"
        );
    }
    let diff = env.exec(env.tapedeck().args(["diff", &runtime_run, &proxy_run]));
    diff.expect_code(0);
    assert!(!contains(&env.store_bytes(), KEY.as_bytes()));
}
