//! `tapedeck mcp -- SERVER…` in a session (`TAPEDECK_SESSION`), against the fake session of
//! `fake_session`: what it sends in a recording (hello, every message as `mcp`, each
//! `tools/call` as `call` and `outcome`), how it answers in a replay (from `mcp/recording` and
//! the `call` answers, the server never started), and outside a session or with one that cannot
//! be reached (a run of its own).

use std::process::Stdio;
use tapedeck_testkit::on_both_stores;

use serde_json::{Value, json};

use super::fake_session::{FakeSession, RUN};
use super::*;

fn client_version() -> String {
    format!("tapedeck-mcp/{}", env!("CARGO_PKG_VERSION"))
}

/// The method of an `mcp` body's message, or `response` for a response.
fn method_of(body: &Value) -> String {
    body["message"]["method"]
        .as_str()
        .unwrap_or("response")
        .to_owned()
}

#[test]
fn the_official_client_records_mcp_server_time_into_the_session_and_replays_it_from_there() {
    if !require_mcp_server_time() {
        return;
    }
    let env = Env::new();
    std::fs::write(env.path("client.py"), TIME_CLIENT).expect("the client script");

    // Recording: the server runs; the session gets every message, the tool call as a call.
    let recording = FakeSession::start("record");
    let (live, stderr) = env.python_client_with(
        &[
            "mcp",
            "--name",
            "time",
            "--",
            "python3",
            "-m",
            "mcp_server_time",
        ],
        &[("TAPEDECK_SESSION", &recording.url)],
    );
    assert_eq!(live["tools"], json!(["convert_time", "get_current_time"]));
    assert!(
        stderr.contains(&format!(
            "tapedeck: MCP server `time` recorded in session run {RUN} (1 tool call)"
        )),
        "{stderr}"
    );
    let received = recording.received();
    assert_eq!(
        received[0],
        (
            "hello".to_owned(),
            json!({ "protocol": 1, "client": client_version() })
        ),
        "hello comes first"
    );
    let flow: Vec<String> = received[1..]
        .iter()
        .map(|(endpoint, body)| match endpoint.as_str() {
            "mcp" => format!(
                "mcp {} {}",
                body["direction"].as_str().unwrap_or("?"),
                method_of(body)
            ),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(
        flow,
        [
            "mcp client_to_server initialize",
            "mcp server_to_client response",
            "mcp client_to_server notifications/initialized",
            "mcp client_to_server tools/list",
            "mcp server_to_client response",
            "call",
            "outcome",
        ],
        "{received:#?}"
    );
    assert!(
        recording
            .bodies("mcp")
            .iter()
            .all(|b| b["server"] == json!("time")),
        "{received:#?}"
    );
    assert_eq!(
        recording.bodies("call"),
        [json!({ "tool": "get_current_time", "kind": "read", "args": { "timezone": "UTC" } })]
    );
    let outcome = &recording.bodies("outcome")[0];
    assert_eq!(outcome["call"], json!("c1"));
    assert_eq!(outcome["result"]["isError"], json!(false), "{outcome}");
    assert_eq!(
        outcome["result"]["content"][0]["text"].as_str(),
        live["time"][0].as_str()
    );
    assert!(
        outcome["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{outcome}"
    );
    assert!(
        !env.path("t.db").exists(),
        "in a session, nothing is recorded outside it"
    );

    // Replay: the session's recording answers; the server is never started (the command would
    // leave a file behind).
    let messages: Vec<Value> = recording
        .bodies("mcp")
        .into_iter()
        .map(|b| json!({ "direction": b["direction"], "message": b["message"] }))
        .collect();
    let replaying = FakeSession::start("replay")
        .with_recording("time", Value::Array(messages))
        .with_call_answers(vec![json!({
            "action": "return", "result": outcome["result"], "origin": "recorded",
        })]);
    let (replayed, stderr) = env.python_client_with(
        &[
            "mcp",
            "--name",
            "time",
            "--",
            "sh",
            "-c",
            "touch started && exec python3 -m mcp_server_time",
        ],
        &[("TAPEDECK_SESSION", &replaying.url)],
    );
    assert_eq!(replayed, live);
    assert!(!env.path("started").exists(), "the server was started");
    assert!(
        stderr.contains(&format!(
            "tapedeck: MCP server `time` replayed in session run {RUN} without starting it"
        )),
        "{stderr}"
    );
    let received = replaying.received();
    let endpoints: Vec<&str> = received.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(&endpoints[..2], ["hello", "mcp/recording"], "{received:#?}");
    assert_eq!(received[1].1, json!({ "server": "time" }));
    assert_eq!(
        replaying.bodies("call"),
        [json!({ "tool": "get_current_time", "kind": "read", "args": { "timezone": "UTC" } })]
    );
    assert!(replaying.bodies("outcome").is_empty(), "{received:#?}");
    // The replay's own messages are the session's to record, tool calls aside.
    let methods: Vec<String> = replaying.bodies("mcp").iter().map(method_of).collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "response",
            "notifications/initialized",
            "tools/list",
            "response",
        ]
    );
}

#[test]
fn in_a_recording_session_write_tools_and_failed_calls_are_sent_as_they_are() {
    let env = Env::new();
    let session = FakeSession::start("record");
    let mut requests = legacy_requests([json!(1), json!(2), json!(3), json!(4)]);
    requests.push(call(json!(5), "rpc_error", json!({}), None));
    let out = env.session_with(
        &["mcp", "--write", "echo", "--", "python3", "server.py"],
        &requests,
        &[("TAPEDECK_SESSION", &session.url)],
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    // Every line passed through unchanged.
    assert_eq!(
        out.responses[2]["result"]["content"][0]["text"],
        json!("hello")
    );
    assert_eq!(out.responses[4]["error"]["code"], json!(-32602));
    // The default name of `python3 server.py` is its script's.
    assert!(
        session
            .bodies("mcp")
            .iter()
            .all(|b| b["server"] == json!("server")),
        "{:#?}",
        session.received()
    );
    assert_eq!(
        session.bodies("call"),
        [
            json!({ "tool": "echo", "kind": "write", "args": { "text": "hello" } }),
            json!({ "tool": "nope", "kind": "read", "args": {} }),
            json!({ "tool": "rpc_error", "kind": "read", "args": {} }),
        ]
    );
    let outcomes = session.bodies("outcome");
    assert_eq!(outcomes[0]["result"]["content"][0]["text"], json!("hello"));
    // A tool's `isError` result is its answer, sent as it is; a JSON-RPC error is an error.
    assert_eq!(
        outcomes[1]["result"],
        json!({ "content": [{ "type": "text", "text": "unknown tool nope" }], "isError": true })
    );
    assert!(outcomes[1].get("error").is_none());
    assert_eq!(
        outcomes[2]["error"],
        json!({ "type": "mcp_error", "message": "bad arguments" })
    );
    assert!(outcomes[2].get("result").is_none());
    let calls: Vec<&Value> = outcomes.iter().map(|o| &o["call"]).collect();
    assert_eq!(calls, [&json!("c1"), &json!("c2"), &json!("c3")]);
    // No tools/call went as an `mcp` message, either way.
    assert!(
        session.bodies("mcp").iter().all(|b| {
            b["message"]["method"] != json!("tools/call")
                && b["message"]["result"]["content"].is_null()
        }),
        "{:#?}",
        session.received()
    );
}

#[test]
fn in_a_replay_session_each_tool_call_is_answered_by_the_session() {
    let env = Env::new();
    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let handshake = json!([
        { "direction": "client_to_server", "message": legacy_requests([json!(0), json!(0), json!(0), json!(0)])[0] },
        { "direction": "server_to_client", "message": {
            "jsonrpc": "2.0", "id": 0, "result": {
                "protocolVersion": "2025-06-18", "capabilities": { "tools": {} },
                "serverInfo": { "name": "fake", "version": "1.0" } } } },
        { "direction": "client_to_server", "message": notification("notifications/initialized") },
    ]);
    let session = FakeSession::start("replay")
        .with_recording("fake", handshake)
        .with_call_answers(vec![
            json!({ "action": "return", "origin": "recorded",
                    "result": { "content": [{ "type": "text", "text": "recorded" }], "isError": false } }),
            json!({ "action": "raise", "error": { "type": "ValueError", "message": "no such city" } }),
            json!({ "action": "raise", "error": { "type": "mcp_error", "message": "bad arguments" } }),
            json!({ "action": "run", "call": "c9" }),
        ]);
    let requests = vec![
        legacy_requests([json!(1), json!(0), json!(0), json!(0)])[0].clone(),
        notification("notifications/initialized"),
        call(json!(2), "echo", json!({ "text": "hello" }), None),
        call(json!(3), "weather", json!({ "city": "Atlantis" }), None),
        call(json!(4), "rpc_error", json!({}), None),
        call(json!(5), "echo", json!({ "text": "live" }), None),
        call(json!(6), "create_ticket", json!({ "title": "t" }), None),
    ];
    let out = env.session_with(
        &[
            "mcp",
            "--name",
            "fake",
            "--write",
            "create_ticket",
            "--",
            "python3",
            "server.py",
        ],
        &requests,
        &[("TAPEDECK_SESSION", &session.url)],
    );
    // A miss is a finding.
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert_eq!(
        out.responses[0]["result"]["serverInfo"]["name"],
        json!("fake")
    );
    assert_eq!(
        out.responses[1],
        json!({ "jsonrpc": "2.0", "id": 2, "result": {
            "content": [{ "type": "text", "text": "recorded" }], "isError": false } })
    );
    assert_eq!(
        out.responses[2]["error"],
        json!({ "code": -32603, "message": "ValueError: no such city" })
    );
    assert_eq!(
        out.responses[3]["error"],
        json!({ "code": -32603, "message": "bad arguments" })
    );
    // A live call starts the server, here gone: the client and the session hear why.
    let live = out.responses[4]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        live.contains("cannot start the server for `echo`"),
        "{}",
        out.responses[4]
    );
    assert_eq!(
        session.bodies("outcome"),
        [json!({ "call": "c9", "latency_ms": 0.0,
                 "error": { "type": "mcp_error", "message": live } })]
    );
    assert_eq!(
        out.responses[5]["error"],
        json!({ "code": -32602,
                "message": "tapedeck replay: no recorded call of `create_ticket`",
                "data": { "tool": "create_ticket" } })
    );
    assert!(
        out.stderr
            .contains("tapedeck: no recorded answer for: tools/call create_ticket"),
        "{}",
        out.stderr
    );
    let kinds: Vec<Value> = session
        .bodies("call")
        .iter()
        .map(|c| c["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("read"),
            json!("read"),
            json!("read"),
            json!("read"),
            json!("write")
        ]
    );
    let methods: Vec<String> = session.bodies("mcp").iter().map(method_of).collect();
    assert_eq!(
        methods,
        ["initialize", "response", "notifications/initialized"]
    );
}

#[test]
fn a_session_that_cannot_be_reached_gives_one_warning_and_a_run_of_its_own() {
    for url in ["http://127.0.0.1:1/tapedeck/session/v1", "not a session"] {
        let env = Env::new();
        let out = env.session_with(
            &["mcp", "--", "python3", "server.py"],
            &legacy_requests([json!(1), json!(2), json!(3), json!(4)]),
            &[("TAPEDECK_SESSION", url)],
        );
        assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
        let warnings: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", out.stderr);
        assert!(
            warnings[0].ends_with("recording a run of its own, as outside a session"),
            "{}",
            warnings[0]
        );
        let run = run_id_of(&out.stderr, "recorded MCP run ");
        let show = env.show(&run);
        assert_eq!(show["run"]["source"], json!("mcp"));
        assert_eq!(
            event_list(&show)
                .iter()
                .filter(|(k, _)| k == "tool_call")
                .count(),
            2
        );
    }
}

#[test]
fn outside_a_session_it_records_a_run_of_its_own() {
    let env = Env::new();
    let out = env.session(
        &["mcp", "--", "python3", "server.py"],
        &legacy_requests([json!(1), json!(2), json!(3), json!(4)]),
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let show = env.show(&run_id_of(&out.stderr, "recorded MCP run "));
    assert_eq!(show["run"]["status"], json!("ok"));
}

#[test]
fn a_session_that_refuses_hello_is_an_error_before_anything_runs() {
    let env = Env::new();
    let session = FakeSession::start("record").refusing_hello();
    let output = env
        .tapedeck()
        .args(["mcp", "--", "python3", "server.py"])
        .env("TAPEDECK_SESSION", &session.url)
        .stdin(Stdio::null())
        .output()
        .expect("tapedeck runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: the session refused `hello` (400 protocol): this session speaks protocol 7\n"
    );
    assert_eq!(session.bodies("hello").len(), 1);
    assert!(!env.path("t.db").exists(), "nothing is written on exit 2");
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    for args in [
        &["mcp"][..],
        &["mcp", "--name", "time"],
        &["mcp", "--name", " ", "--", "python3", "server.py"],
        &["mcp", "--", "./no-such-server"],
    ] {
        let output = env
            .tapedeck()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tapedeck runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
    assert!(!env.path("t.db").exists(), "nothing is written on exit 2");
}

#[test]
fn help() {
    let output = Command::new(env!("CARGO_BIN_EXE_tapedeck"))
        .args(["mcp", "--help"])
        .env("COLUMNS", "100")
        .env_remove("TAPEDECK_STORE")
        .output()
        .expect("help runs");
    let out = String::from_utf8_lossy(&output.stdout);
    tapedeck_testkit::snapshot::insta_settings().bind(|| insta::assert_snapshot!("mcp_help", out));
}

/// The run id of a `run ID …` line of `tapedeck record`/`replay`.
fn run_line(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `run ID` line:\n{stderr}"))
        .to_owned()
}

on_both_stores! {
    /// Regression of the whole chain: `tapedeck record -- python3 client.py` hands the client a
    /// session; the client starts `tapedeck mcp -- python3 -m mcp_server_time`, whose calls are
    /// events of the recorded run; `tapedeck replay RUN -- python3 client.py` answers the client's
    /// MCP server from that run without starting it.
    fn under_tapedeck_record_and_replay_the_mcp_server_is_part_of_the_run(backend) {
        if !require_mcp_server_time() {
            return;
        }
        let env = Env::new();
        std::fs::write(env.path("client.py"), TIME_CLIENT).expect("the client script");
        let client = |server: &[&str]| -> Vec<String> {
            let mut command = vec![
                "python3".to_owned(),
                "client.py".to_owned(),
                env!("CARGO_BIN_EXE_tapedeck").to_owned(),
                "mcp".to_owned(),
                "--name".to_owned(),
                "time".to_owned(),
                "--".to_owned(),
            ];
            command.extend(server.iter().map(|s| (*s).to_owned()));
            command
        };
        let run_with = |args: &[&str], command: &[String]| {
            let output = env
                .tapedeck()
                .args(args)
                .arg("--")
                .args(command)
                .output()
                .expect("tapedeck runs");
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(output.status.code(), Some(0), "{stderr}");
            let out: Value = serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|e| panic!("the client prints JSON ({e}): {output:?}"));
            (out, stderr)
        };

        let (live, stderr) = run_with(&["record"], &client(&["python3", "-m", "mcp_server_time"]));
        assert_eq!(live["tools"], json!(["convert_time", "get_current_time"]));
        let run = run_line(&stderr);
        assert!(
            stderr.contains(&format!("MCP server `time` recorded in session run {run}")),
            "{stderr}"
        );
        let show = env.show(&run);
        let events = event_list(&show);
        let mcp: Vec<(&str, &str)> = events
            .iter()
            .filter(|(k, _)| k == "mcp_message")
            .map(|(_, d)| {
                (
                    d["server"].as_str().unwrap_or_default(),
                    d["method"].as_str().unwrap_or("response"),
                )
            })
            .collect();
        assert_eq!(
            mcp,
            [
                ("time", "initialize"),
                ("time", "response"),
                ("time", "notifications/initialized"),
                ("time", "tools/list"),
                ("time", "response"),
            ],
            "{events:#?}"
        );
        let tools: Vec<(&str, &str)> = events
            .iter()
            .filter(|(k, _)| k == "tool_call" || k == "tool_result")
            .map(|(k, d)| (k.as_str(), d["tool"].as_str().unwrap_or_default()))
            .collect();
        assert_eq!(
            tools,
            [
                ("tool_call", "get_current_time"),
                ("tool_result", "get_current_time")
            ]
        );

        // The replay does not start the server (the command would leave a file behind) and
        // answers with the recorded time.
        let (replayed, stderr) = run_with(
            &["replay", &run],
            &client(&[
                "sh",
                "-c",
                "touch started && exec python3 -m mcp_server_time",
            ]),
        );
        assert_eq!(replayed, live);
        assert!(!env.path("started").exists(), "the server was started");
        let replay = run_line(&stderr);
        assert!(
            stderr.contains(&format!(
                "MCP server `time` replayed in session run {replay} without starting it"
            )),
            "{stderr}"
        );
        let origins: Vec<Value> = event_list(&env.show(&replay))
            .into_iter()
            .filter(|(k, _)| k == "tool_result")
            .map(|(_, d)| d["origin"].clone())
            .collect();
        assert_eq!(origins, [json!("recorded")]);
    }
}

#[test]
fn a_replay_without_messages_of_the_server_says_which_name_it_looked_for() {
    let env = Env::new();
    let session = FakeSession::start("replay");
    let out = env.session_with(
        &["mcp", "--name", "clock", "--", "python3", "server.py"],
        &legacy_requests([json!(1), json!(2), json!(3), json!(4)])[..1],
        &[("TAPEDECK_SESSION", &session.url)],
    );
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "warning: the recording session run {RUN} replays has no messages of an MCP server `clock`: was it recorded under another --name?"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        session.bodies("mcp/recording"),
        [json!({ "server": "clock" })]
    );
}
