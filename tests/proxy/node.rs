//! The official `openai` npm package as a real client: a tool-calling conversation,
//! non-streamed and streamed, recorded through `tapedeck record -- node client.mjs` against the
//! fake upstream, then replayed with the upstream gone.
//!
//! The package is installed in `tests/proxy/node` (`npm ci` there; CI does it). Without its
//! `node_modules` the tests fail, unless `TAPEDECK_SKIP_REAL_CLIENTS=1` says to skip them.

use std::path::PathBuf;

use serde_json::Value;

use crate::server::{FakeServer, Reply};
use crate::weather;
use crate::{Env, KEY, TOOL_CONVERSATION, contains, kinds};

/// The folder holding `client.mjs`, `package.json` and `node_modules`.
fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/proxy/node")
}

/// The client script, or `None` when the tests are to be skipped.
fn client() -> Option<PathBuf> {
    let dir = node_dir();
    tapedeck_testkit::clients::require(
        "the openai npm package",
        dir.join("node_modules/openai/package.json").is_file(),
        "(cd tests/proxy/node && npm ci)",
    )
    .then(|| dir.join("client.mjs"))
}

/// Records the conversation with the npm client (`mode` is `plain` or `stream`), checks the
/// run, replays it with the upstream gone and checks the client printed the same.
fn record_and_replay(mode: &str, replies: Vec<Reply>) {
    let Some(script) = client() else { return };
    let script = script.to_string_lossy().into_owned();
    let env = Env::new();
    let server = FakeServer::start(replies);
    let rec = env.record(
        &["--upstream-openai", &format!("{}/v1", server.base)],
        &["node", &script, mode],
    );
    rec.expect_code(0);
    let lines: Vec<Value> = rec
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("the client prints JSON lines"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", rec.stdout);
    assert_eq!(lines[0]["calls"][0]["id"], "call_1");
    assert_eq!(lines[0]["calls"][0]["name"], "get_weather");
    assert_eq!(lines[0]["calls"][0]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(lines[0]["finish"], "tool_calls");
    assert_eq!(lines[1]["content"], "It is 21 °C in Paris.");
    assert_eq!(lines[1]["finish"], "stop");

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
    assert_eq!(second["messages"][2]["tool_call_id"], "call_1");

    let id = rec.run_id();
    let show = env.show(&id);
    assert_eq!(show["run"]["source"], "proxy");
    assert_eq!(show["run"]["status"], "ok");
    assert_eq!(show["run"]["answer"], "It is 21 °C in Paris.");
    assert_eq!(
        kinds(&show),
        TOOL_CONVERSATION.map(str::to_owned),
        "{show:#}"
    );
    let events = show["events"].as_array().expect("events");
    assert_eq!(
        events[1]["data"]["streamed"].as_bool().unwrap_or(false),
        mode == "stream"
    );
    assert_eq!(events[2]["data"]["call_id"], "call_1");
    assert_eq!(events[2]["data"]["tool"], "get_weather");
    assert_eq!(events[4]["data"]["call_id"], "call_1");
    assert_eq!(events[4]["data"]["tool"], "get_weather");
    assert!(
        !contains(&env.store_bytes(), KEY.as_bytes()),
        "the API key is in the store"
    );

    // Replay with the upstream gone: the client prints the same.
    drop(server);
    let rep = env.replay_same(&id, &["node", &script, mode], &rec);
    let replay = env.show(&rep.run_id());
    assert_eq!(replay["run"]["parent"], show["run"]["id"]);
    assert_eq!(replay["run"]["stop_reason"], "ok");
    assert_eq!(kinds(&replay), kinds(&show));
}

#[test]
fn openai_npm_client_records_and_replays_a_tool_conversation() {
    record_and_replay("plain", weather::replies("plain"));
}

#[test]
fn openai_npm_client_records_and_replays_a_streamed_tool_conversation() {
    record_and_replay("stream", weather::replies("stream"));
}
