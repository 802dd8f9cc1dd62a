//! Agents on the official SDKs — the Python agent of `golden/weather-py`, the Node agent of
//! `tests/session/node`, an OpenAI Agents SDK agent in `tests/session/fixtures` —, each
//! with a read tool (`get_weather`), a write tool that appends to a file (`create_ticket`) and
//! mcp-server-time through `tapedeck mcp`: recorded against a fake upstream, replayed exactly
//! with the upstream gone and the read tool's data changed, replayed against a new model that
//! makes one more call, and forked after the first model call.

use serde_json::{Value, json};
use tapedeck_testkit::on_both_stores;

use crate::server::{FakeServer, Reply};
use crate::{Env, arg, events_of, repo, tool_events};

/// A chat completion asking for these tool calls (`(id, name, arguments)`).
fn asks(model: &str, calls: &[(&str, &str, Value)]) -> Reply {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    Reply::json(
        200,
        &json!({
            "id": "chatcmpl-t", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "tool_calls": calls}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
        }),
    )
}

/// A chat completion answering `text`.
fn answers(model: &str, text: &str) -> Reply {
    Reply::json(
        200,
        &json!({
            "id": "chatcmpl-a", "object": "chat.completion", "created": 2, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 90, "completion_tokens": 12, "total_tokens": 102}
        }),
    )
}

/// The recorded conversation: weather and time at once, then a ticket, then the answer.
fn conversation(model: &str) -> Vec<Reply> {
    vec![
        asks(
            model,
            &[
                ("call_w", "get_weather", json!({"city": "Paris"})),
                (
                    "call_t",
                    "get_current_time",
                    json!({"timezone": "Europe/Paris"}),
                ),
            ],
        ),
        asks(
            model,
            &[(
                "call_k",
                "create_ticket",
                json!({"title": "Paris weather service degraded"}),
            )],
        ),
        answers(model, "Paris: SERVICE DEGRADED; ticket T-1 opened."),
    ]
}

/// A fixture agent.
#[derive(Clone, Copy)]
enum Agent {
    Python,
    Node,
}

impl Agent {
    fn command(self) -> Vec<String> {
        let (program, script) = match self {
            Self::Python => ("python3", "golden/weather-py/agent.py"),
            Self::Node => ("node", "tests/session/node/weather_node.mjs"),
        };
        vec![
            program.to_owned(),
            arg(&repo().join(script)),
            "What is the weather in Paris?".to_owned(),
        ]
    }

    /// Its weather data file saying `report` for Paris: the Python agent reads a line per city,
    /// the Node one the whole file.
    fn weather(self, report: &str) -> String {
        match self {
            Self::Python => format!("Paris: {report}\n"),
            Self::Node => report.to_owned(),
        }
    }

    fn available(self) -> bool {
        match self {
            Self::Python => tapedeck_testkit::clients::require(
                "the `openai` and `mcp` Python SDKs and mcp-server-time",
                tapedeck_testkit::clients::python_imports("openai, mcp, mcp_server_time"),
                "python3 -m pip install openai mcp mcp-server-time",
            ),
            Self::Node => crate::require_node_packages(),
        }
    }
}

/// `tapedeck FLAGS… -- AGENT` with the weather data and tickets file of `env`.
fn run_agent(env: &Env, agent: Agent, tapedeck_args: &[&str]) -> tapedeck_testkit::cli::Outcome {
    let mut cmd = env.tapedeck();
    cmd.args(tapedeck_args)
        .arg("--")
        .args(agent.command())
        .env("WEATHER_DATA", env.path("weather.txt"))
        .env("TICKETS_FILE", env.path("tickets.txt"));
    env.exec(&mut cmd)
}

fn weather_agent(agent: Agent) {
    if !agent.available() {
        return;
    }
    let env = Env::new();
    env.write("weather.txt", &agent.weather("SERVICE DEGRADED"));

    // Record: the model, both function tools and the MCP server in one run.
    let upstream = FakeServer::start(conversation("gpt-4o-mini"));
    let url = format!("{}/v1", upstream.base);
    let rec = run_agent(&env, agent, &["record", "--upstream-openai", &url]);
    rec.expect_code(0);
    assert_eq!(
        rec.stdout.trim(),
        "Paris: SERVICE DEGRADED; ticket T-1 opened."
    );
    assert_eq!(env.read("tickets.txt"), "Paris weather service degraded\n");
    drop(upstream);
    let run = rec.run_id();
    let show = env.show(&run);
    let tools = tool_events(&show);
    for tool in ["get_weather", "get_current_time", "create_ticket"] {
        let calls = tools
            .iter()
            .filter(|(k, t)| k == "tool_call" && t == tool)
            .count();
        let results = tools
            .iter()
            .filter(|(k, t)| k == "tool_result" && t == tool)
            .count();
        assert_eq!((calls, results), (1, 1), "{tool} counted once: {tools:?}");
    }
    let weather = events_of(&show, "tool_result")
        .into_iter()
        .find(|r| r["tool"] == "get_weather")
        .expect("the weather result");
    let output = &show["blobs"][weather["output"].as_str().expect("an output")];
    assert_eq!(output, &json!("SERVICE DEGRADED"));
    assert!(
        !events_of(&show, "mcp_message").is_empty(),
        "the MCP handshake is in the same run"
    );

    // Exact replay: no upstream, the live weather changed, the write tool does not run.
    env.write("weather.txt", &agent.weather("sunny"));
    let exact = run_agent(&env, agent, &["replay", &run]);
    exact.expect_code(0);
    assert_eq!(exact.stdout, rec.stdout, "the same answer");
    assert!(
        exact
            .stderr
            .contains("the trajectory matches the recording"),
        "{}",
        exact.stderr
    );
    assert_eq!(env.read("tickets.txt"), "Paris weather service degraded\n");

    // The replay diffed against the recording: the same counts.
    let diff = env.exec(env.tapedeck().args(["diff", &run, &exact.run_id()]));
    diff.expect_code(0);
    assert!(diff.stdout.contains("no drift"), "{}", diff.stdout);
    assert!(
        diff.stdout.contains("the same 3 calls in the same order"),
        "{}",
        diff.stdout
    );

    // A new model that looks at the weather once more: drift, and where it began.
    let mut replies = vec![asks(
        "gpt-5-mini",
        &[
            ("n_w", "get_weather", json!({"city": "Paris"})),
            (
                "n_t",
                "get_current_time",
                json!({"timezone": "Europe/Paris"}),
            ),
        ],
    )];
    replies.push(asks(
        "gpt-5-mini",
        &[("n_w2", "get_weather", json!({"city": "Paris"}))],
    ));
    replies.extend(conversation("gpt-5-mini").into_iter().skip(1));
    let candidate = FakeServer::start(replies);
    let url = format!("{}/v1", candidate.base);
    let live = run_agent(
        &env,
        agent,
        &["replay", &run, "--live-model", "--upstream-openai", &url],
    );
    live.expect_code(1);
    assert!(live.stderr.contains("first divergence"), "{}", live.stderr);
    assert!(live.stderr.contains("3 → 4 model calls"), "{}", live.stderr);
    assert_eq!(
        candidate.requests().len(),
        4,
        "every model call went upstream"
    );
    assert_eq!(env.read("tickets.txt"), "Paris weather service degraded\n");
    let replay = env.show(&live.run_id());
    assert_eq!(replay["run"]["mode"], "live-model");
    let weather_calls = tool_events(&replay)
        .iter()
        .filter(|(k, t)| k == "tool_call" && t == "get_weather")
        .count();
    assert_eq!(weather_calls, 2);
    let reused = events_of(&replay, "tool_result")
        .into_iter()
        .filter(|r| r["tool"] == "get_weather")
        .map(|r| r["origin"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(reused, ["recorded", "reused"]);

    // Forked after the first model call: that one from the recording, the rest upstream.
    let rest = FakeServer::start(conversation("gpt-4o-mini").into_iter().skip(1).collect());
    let url = format!("{}/v1", rest.base);
    let fork = run_agent(
        &env,
        agent,
        &[
            "replay",
            &run,
            "--live-model",
            "--from-step",
            "1",
            "--upstream-openai",
            &url,
        ],
    );
    fork.expect_code(0);
    assert_eq!(fork.stdout, rec.stdout);
    assert_eq!(
        rest.requests().len(),
        2,
        "model calls 2 and 3 went upstream"
    );
    assert_eq!(env.read("tickets.txt"), "Paris weather service degraded\n");
}

on_both_stores! {
    fn python_agent_on_the_openai_sdk(backend) {
        weather_agent(Agent::Python);
    }
}

on_both_stores! {
    fn node_agent_on_the_openai_and_mcp_packages(backend) {
        weather_agent(Agent::Node);
    }
}

// The decorator under a framework's own: the OpenAI Agents SDK's `@function_tool` over
// `@tapedeck.tool`, a sync read tool and an async write tool.
#[test]
fn agents_sdk_function_tools_over_tapedeck_tools() {
    if !tapedeck_testkit::clients::require(
        "the OpenAI Agents SDK",
        tapedeck_testkit::clients::python_imports("agents"),
        "python3 -m pip install openai-agents",
    ) {
        return;
    }
    let env = Env::new();
    env.write("weather.txt", "SERVICE DEGRADED");
    let script = arg(&repo().join("tests/session/fixtures/agents_sdk.py"));
    let run_it = |args: &[&str]| {
        let mut cmd = env.tapedeck();
        cmd.args(args)
            .args(["--", "python3", &script, "What is the weather in Paris?"])
            .env("WEATHER_DATA", env.path("weather.txt"))
            .env("TICKETS_FILE", env.path("tickets.txt"));
        env.exec(&mut cmd)
    };
    let upstream = FakeServer::start(vec![
        asks(
            "gpt-4o-mini",
            &[("call_w", "get_weather", json!({"city": "Paris"}))],
        ),
        asks(
            "gpt-4o-mini",
            &[(
                "call_k",
                "create_ticket",
                json!({"title": "Paris weather service degraded"}),
            )],
        ),
        answers("gpt-4o-mini", "Paris: SERVICE DEGRADED; ticket T-1 opened."),
    ]);
    let url = format!("{}/v1", upstream.base);
    let rec = run_it(&["record", "--upstream-openai", &url]);
    rec.expect_code(0);
    assert!(rec.stdout.contains("ticket T-1"), "{}", rec.stdout);
    assert_eq!(env.read("tickets.txt"), "Paris weather service degraded\n");
    drop(upstream);
    let run = rec.run_id();
    let show = env.show(&run);
    let weather = events_of(&show, "tool_result")
        .into_iter()
        .find(|r| r["tool"] == "get_weather")
        .expect("the weather result");
    assert_eq!(
        &show["blobs"][weather["output"].as_str().expect("an output")],
        &json!("SERVICE DEGRADED")
    );
    assert_eq!(tool_events(&show).len(), 4, "two calls, each counted once");

    env.write("weather.txt", "sunny");
    let exact = run_it(&["replay", &run]);
    exact.expect_code(0);
    assert_eq!(exact.stdout, rec.stdout);
    assert_eq!(env.read("tickets.txt"), "Paris weather service degraded\n");
}
