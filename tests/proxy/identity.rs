//! The identity of a code agent's runs: `record` names the agent (`--name`, else the script the
//! command runs) and gives the run its input (`--input`, else the command line quoted as a
//! shell would); each run records the models, system prompt and tools its client sent, with a
//! fingerprint over them, by which `ls --agent` and `stats` tell versions apart and `diff` says
//! what changed between two.

use serde_json::{Value, json};
use tapedeck_testkit::snapshot::insta_settings;

use crate::server::{FakeServer, Reply};
use crate::{Env, Outcome, kinds};

/// `weather_agent.py CONFIG [QUESTION]`: one chat completion (standard library only) with the
/// model, system prompt and tools of the JSON file CONFIG; prints the answer.
const AGENT: &str = r#"
import json, os, sys, urllib.request
config = json.load(open(sys.argv[1]))
question = sys.argv[2] if len(sys.argv) > 2 else "Weather in Paris?"
tools = [{"type": "function", "function": {"name": name, "description": description,
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
         for name, description in config["tools"]]
body = {"model": config["model"], "tools": tools, "messages": [
    {"role": "system", "content": config["system"]},
    {"role": "user", "content": question}]}
request = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions",
    data=json.dumps(body).encode(), headers={"content-type": "application/json",
    "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
print(json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"])
"#;

/// The first version: a weather assistant with a city lookup.
fn version_1() -> Value {
    json!({
        "model": "gpt-4.1-mini",
        "system": "You are a weather assistant.\nAnswer in one sentence.\nNever guess a temperature.",
        "tools": [["get_weather", "Current weather for a city."], ["lookup_city", "Find a city by name."]],
    })
}

/// The second: another model, a reworded first line, `get_weather` redescribed, `lookup_city`
/// gone and `create_ticket` new.
fn version_2() -> Value {
    json!({
        "model": "gpt-4.1",
        "system": "You are a terse weather assistant.\nAnswer in one sentence.\nNever guess a temperature.",
        "tools": [["get_weather", "Current weather for a city, in °C."], ["create_ticket", "Open a support ticket."]],
    })
}

fn answer() -> Reply {
    Reply::json(
        200,
        &json!({
            "id": "c1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Sunny, 21 °C."}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35},
        }),
    )
}

/// A folder with `weather_agent.py`, `v1.json` and `v2.json`.
fn agent_env() -> Env {
    let env = Env::new();
    env.write("weather_agent.py", AGENT);
    env.write("v1.json", &version_1().to_string());
    env.write("v2.json", &version_2().to_string());
    env
}

/// `record FLAGS… -- python3 weather_agent.py ARGS…` against a fresh fake upstream; it must
/// exit 0.
fn record(env: &Env, flags: &[&str], args: &[&str]) -> Outcome {
    let server = FakeServer::start(vec![answer()]);
    let upstream = format!("{}/v1", server.base);
    let mut all = vec!["--upstream-openai", upstream.as_str()];
    all.extend_from_slice(flags);
    let mut command = vec!["python3", "weather_agent.py"];
    command.extend_from_slice(args);
    let out = env.record(&all, &command);
    out.expect_code(0);
    assert_eq!(out.stdout, "Sunny, 21 °C.\n");
    out
}

fn json_of(env: &Env, args: &[&str]) -> Value {
    let out = env.exec(env.tapedeck().args(args));
    out.expect_code(0);
    out.json()
}

/// The runs `ls ARGS` lists (`args` with `--json`).
fn runs_of(env: &Env, args: &[&str]) -> Vec<Value> {
    let out = env.exec(env.tapedeck().args(args));
    out.expect_code(0);
    out.runs_listed()
}

#[test]
fn two_versions_of_an_agent_are_told_apart_and_diffed() {
    let env = agent_env();
    let first = record(&env, &[], &["v1.json"]).run_id();
    let second = record(&env, &[], &["v2.json"]).run_id();
    let again = record(&env, &[], &["v1.json"]).run_id();

    // The run's agent is named after the script, with the fingerprint its identity records.
    let show = env.show(&first);
    let agent = show["run"]["agent"].clone();
    assert_eq!(agent["name"], "weather_agent", "{show:#}");
    let fingerprint = agent["fingerprint"]
        .as_str()
        .expect("a fingerprint")
        .to_owned();
    let events = kinds(&show);
    assert_eq!(
        events[events.len() - 2..],
        ["agent_identity", "run_finished"]
    );
    let identity = &show["events"][events.len() - 2]["data"];
    assert_eq!(identity["fingerprint"], fingerprint.as_str());
    assert_eq!(identity["models"], json!(["gpt-4.1-mini"]));
    let prompt = identity["system_prompts"][0]
        .as_str()
        .expect("a prompt hash");
    assert_eq!(show["blobs"][prompt], version_1()["system"]);
    let tools: Vec<&String> = identity["tools"]
        .as_object()
        .expect("tools")
        .keys()
        .collect();
    assert_eq!(tools, ["get_weather", "lookup_city"]);
    assert_eq!(env.show(&again)["run"]["agent"], agent, "the same version");
    assert_ne!(
        env.show(&second)["run"]["agent"]["fingerprint"],
        agent["fingerprint"]
    );

    let timeline = env.exec(env.tapedeck().args(["show", &first]));
    timeline.expect_code(0);
    assert!(
        timeline.stdout.contains(&format!(
            "agent_identity  gpt-4.1-mini · 1 system prompt · tools get_weather, lookup_city · fingerprint {}",
            &fingerprint[..8]
        )),
        "{}",
        timeline.stdout
    );

    // `ls --agent` finds them by name or by a prefix of the fingerprint.
    assert_eq!(
        runs_of(&env, &["ls", "--agent", "weather_agent", "--json"]).len(),
        3
    );
    let by_version = runs_of(&env, &["ls", "--agent", &fingerprint[..10], "--json"]);
    let id_of = |run: &Value| run["id"].as_str().unwrap_or_default().to_owned();
    let mut ids: Vec<String> = by_version.iter().map(id_of).collect();
    ids.sort_unstable();
    let mut expected = vec![id_of(&show["run"]), id_of(&env.show(&again)["run"])];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    // `stats` has one entry per version.
    let stats = json_of(&env, &["stats", "--json"]);
    let mut versions: Vec<(String, String, u64)> = stats["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["agent"].as_str().unwrap_or_default().to_owned(),
                a["fingerprint"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(8)
                    .collect(),
                a["runs"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.2));
    assert_eq!(versions.len(), 2, "{stats:#}");
    assert_eq!(
        versions[0],
        ("weather_agent".to_owned(), fingerprint[..8].to_owned(), 2)
    );
    assert_eq!(
        (versions[1].0.as_str(), versions[1].2),
        ("weather_agent", 1)
    );
    let text = env.exec(env.tapedeck().args(["stats"]));
    assert!(
        text.stdout.contains(&format!(
            "weather_agent (fingerprint {}) · 2 runs",
            &fingerprint[..8]
        )),
        "{}",
        text.stdout
    );

    // `diff` says what changed between the versions: information, not drift.
    let diff = env.exec(env.tapedeck().args(["diff", &first, &second]));
    diff.expect_code(0);
    let section: String = diff
        .stdout
        .split("\n\n")
        .find(|s| s.starts_with("agent "))
        .unwrap_or_else(|| panic!("no agent section:\n{}", diff.stdout))
        .to_owned();
    insta_settings().bind(|| insta::assert_snapshot!("diff_of_two_versions", section));

    let json = json_of(&env, &["diff", &first, &second, "--format", "json"]);
    let agent_diff = &json["agent"];
    assert_eq!(agent_diff["same_version"], false);
    assert_eq!(agent_diff["models"]["baseline"], json!(["gpt-4.1-mini"]));
    assert_eq!(agent_diff["models"]["candidate"], json!(["gpt-4.1"]));
    assert_eq!(agent_diff["tools_added"], json!(["create_ticket"]));
    assert_eq!(agent_diff["tools_removed"], json!(["lookup_city"]));
    assert_eq!(agent_diff["tools_changed"], json!(["get_weather"]));
    let prompt_diff = agent_diff["system_prompt_diff"]
        .as_str()
        .expect("a prompt diff");
    assert!(
        prompt_diff.contains("\n+You are a terse weather assistant.\n"),
        "{prompt_diff}"
    );

    let same = env.exec(env.tapedeck().args(["diff", &first, &again]));
    same.expect_code(0);
    assert!(
        same.stdout.contains(&format!(
            "\nagent weather_agent: the same version (fingerprint {})\n\nMETRIC",
            &fingerprint[..8]
        )),
        "{}",
        same.stdout
    );

    let md = env.exec(
        env.tapedeck()
            .args(["diff", &first, &second, "--format", "md"]),
    );
    assert!(
        md.stdout.contains("- tools added: create_ticket\n"),
        "{}",
        md.stdout
    );
    assert!(md.stdout.contains("```diff\n@@ "), "{}", md.stdout);
}

#[test]
fn the_input_is_the_quoted_command_line_and_the_agent_the_script() {
    let env = agent_env();
    let run = record(&env, &[], &["v1.json", "Is it sunny? It's June."]).run_id();
    let show = env.show(&run);
    assert_eq!(
        show["run"]["input"],
        r"python3 weather_agent.py v1.json 'Is it sunny? It'\''s June.'"
    );
    assert_eq!(show["run"]["agent"]["name"], "weather_agent");

    let run = record(
        &env,
        &["--name", "weather-bot", "--input", "Weather in Paris?"],
        &["v1.json"],
    )
    .run_id();
    let show = env.show(&run);
    assert_eq!(show["run"]["input"], "Weather in Paris?");
    assert_eq!(show["run"]["agent"]["name"], "weather-bot");
    let found = runs_of(&env, &["ls", "--agent", "weather-bot", "--json"]);
    assert_eq!(found.len(), 1);

    let empty = env.record(&["--name", ""], &["python3", "weather_agent.py", "v1.json"]);
    empty.expect_code(2);
    assert!(empty.stderr.contains("--name"), "{}", empty.stderr);
}
