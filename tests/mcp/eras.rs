//! `tapedeck mcp record` and `replay` driven by the test as the client: both protocol eras (the
//! `initialize` handshake and the 2026-07-28 era's `server/discover` with per-request `_meta`),
//! replayed within and across eras, messages the server sends on its own, and the errors a
//! replay answers with.

use serde_json::json;
use tapedeck_testkit::on_both_stores;

use super::*;

on_both_stores! {
    fn records_the_handshake_era_and_replays_it_without_the_server(backend) {
        let env = Env::on(backend);
        let (run, recorded) = env.record(&legacy_requests([
            json!(1),
            json!(2),
            json!("c-3"),
            json!(4),
        ]));

        // Pass-through: the server's answers, with its ids, one per line.
        assert_eq!(recorded.responses.len(), 4);
        assert_eq!(recorded.responses[0]["id"], json!(1));
        assert_eq!(
            recorded.responses[0]["result"]["serverInfo"]["name"],
            json!("fake")
        );
        assert_eq!(
            recorded.responses[1]["result"]["tools"][0]["name"],
            json!("echo")
        );
        assert_eq!(recorded.responses[2]["id"], json!("c-3"));
        assert_eq!(
            recorded.responses[2]["result"]["content"][0]["text"],
            json!("hello")
        );
        assert_eq!(recorded.responses[3]["result"]["isError"], json!(true));
        // The server's stderr passes through; lines are the server's own bytes.
        assert!(
            recorded.stderr.contains("fake server up"),
            "{}",
            recorded.stderr
        );
        assert!(
            recorded.lines[0].starts_with("{\"jsonrpc\": \"2.0\", \"id\": 1,"),
            "{:?}",
            recorded.lines
        );

        let show = env.show(&run);
        assert_eq!(show["run"]["source"], json!("mcp"));
        assert_eq!(show["run"]["task"], json!("echo"));
        assert_eq!(show["run"]["labels"]["era"], json!("test"));
        assert_eq!(show["run"]["status"], json!("ok"));
        let events = event_list(&show);
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "tool_call").count(),
            2,
            "{kinds:?}"
        );
        assert_eq!(kinds.iter().filter(|k| **k == "tool_result").count(), 2);
        assert_eq!(kinds.last(), Some(&"run_finished"));
        let methods: Vec<&str> = events
            .iter()
            .filter(|(k, d)| k == "mcp_message" && d["direction"] == json!("client_to_server"))
            .filter_map(|(_, d)| d["method"].as_str())
            .collect();
        assert_eq!(
            methods,
            ["initialize", "notifications/initialized", "tools/list"]
        );
        let (_, echo) = events
            .iter()
            .find(|(k, d)| k == "tool_call" && d["tool"] == json!("echo"))
            .expect("the echo call");
        assert_eq!(echo["call_id"], json!("c-3"));
        let args = &show["blobs"][echo["args"].as_str().expect("an args ref")];
        assert_eq!(args, &json!({ "text": "hello" }), "{}", show["blobs"]);
        let (_, result) = events
            .iter()
            .find(|(k, d)| k == "tool_result" && d["call_id"] == json!("c-3"))
            .expect("the echo result");
        assert!(
            result["output"].is_string() && result.get("error").is_none(),
            "{result}"
        );
        let (_, failed) = events
            .iter()
            .find(|(k, d)| k == "tool_result" && d["tool"] == json!("nope"))
            .expect("the failed call's result");
        assert_eq!(failed["error"], json!("unknown tool nope"));
        assert_eq!(failed["call_id"], json!("4"));

        // Replay with the server gone and other ids (and another client version).
        std::fs::remove_file(env.path("server.py")).expect("the server is removed");
        let mut requests = legacy_requests([json!(10), json!("list"), json!(12), json!(13)]);
        requests[0]["params"]["clientInfo"]["version"] = json!("2.0");
        requests.push(request(json!(14), "ping", Value::Null));
        let replayed = env.session(&["mcp", "replay", &run], &requests);
        assert_eq!(replayed.code, Some(0), "stderr: {}", replayed.stderr);
        let ids: Vec<&Value> = replayed.responses.iter().map(|r| &r["id"]).collect();
        assert_eq!(
            ids,
            [
                &json!(10),
                &json!("list"),
                &json!(12),
                &json!(13),
                &json!(14)
            ]
        );
        for (live, replay) in recorded.responses.iter().zip(&replayed.responses) {
            assert_eq!(without_id(live.clone()), without_id(replay.clone()));
        }
        assert_eq!(replayed.responses[4]["result"], json!({}));

        let replay_run = run_id_of(&replayed.stderr, " as ");
        let show = env.show(&replay_run);
        assert_eq!(show["run"]["source"], json!("mcp"));
        assert_eq!(show["run"]["mode"], json!("mcp"));
        assert!(
            show["run"]["parent"]
                .as_str()
                .is_some_and(|p| p.ends_with(&run)),
            "{}",
            show["run"]
        );
        let origins: Vec<Value> = event_list(&show)
            .into_iter()
            .filter(|(k, _)| k == "tool_result")
            .map(|(_, d)| d["origin"].clone())
            .collect();
        assert_eq!(origins, [json!("recorded"), json!("recorded")]);
        // The replay diffs clean against its recording.
        let diff = env
            .tapedeck()
            .args(["diff", &run, &replay_run])
            .output()
            .expect("diff runs");
        assert_eq!(diff.status.code(), Some(0), "{diff:?}");
    }
}

#[test]
fn messages_the_server_sends_on_its_own_are_replayed_where_they_came() {
    let env = Env::new();
    let mut requests = legacy_requests([json!(1), json!(2), json!(3), json!(4)]);
    requests[3] = call(
        json!(3),
        "summarize",
        json!({ "text": "a long text" }),
        None,
    );
    requests[4] = call(json!(5), "echo", json!({ "text": "after" }), None);
    requests.push(call(json!(6), "rpc_error", json!({}), None));
    let recorded = env.session_with(
        &["mcp", "record", "--", "python3", "server.py"],
        &requests,
        &[("FAKE_CHATTY", "1")],
    );
    assert_eq!(recorded.code, Some(0), "stderr: {}", recorded.stderr);
    let messages = |session: &Session| -> Vec<Value> {
        session
            .lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect()
    };
    let live = messages(&recorded);
    let methods: Vec<&str> = live.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(
        methods,
        [
            "notifications/message",
            "roots/list",
            "notifications/message",
            "notifications/message",
            "notifications/progress",
            "sampling/createMessage",
            "notifications/tools/list_changed",
        ],
        "{live:#?}"
    );
    // The server got the client's answers: the roots, and the sampled text.
    assert!(
        live.iter()
            .any(|m| m["params"]["data"] == json!("roots: file:///work"))
    );
    assert_eq!(
        recorded.responses[2]["result"]["content"][0]["text"],
        json!("summary: it is short")
    );
    assert_eq!(recorded.responses[4]["error"]["code"], json!(-32602));
    let run = run_id_of(&recorded.stderr, "recorded MCP run ");
    let events = event_list(&env.show(&run));
    let sampling_answered = events.iter().any(|(k, d)| {
        k == "mcp_message" && d["direction"] == json!("client_to_server") && d["method"].is_null()
    });
    assert!(sampling_answered, "{events:#?}");

    // Without the server, the client gets the same messages in the same order, and each
    // request of the server's own waits for the client's answer as it did.
    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let replayed = env.session(&["mcp", "replay", &run], &requests);
    assert_eq!(replayed.code, Some(0), "stderr: {}", replayed.stderr);
    assert_eq!(messages(&replayed), live);
    let replay_run = run_id_of(&replayed.stderr, " as ");
    let events = event_list(&env.show(&replay_run));
    let answers_from_client = events
        .iter()
        .filter(|(k, d)| {
            k == "mcp_message"
                && d["direction"] == json!("client_to_server")
                && d["method"].is_null()
        })
        .count();
    assert_eq!(answers_from_client, 2, "{events:#?}");
}

#[test]
fn records_the_stateless_era_and_replays_it_with_other_meta() {
    let env = Env::new();
    let requests = |version: &str, ids: [Value; 3]| {
        let [a, b, c] = ids;
        vec![
            request(a, "server/discover", json!({ "_meta": meta(version) })),
            request(b, "tools/list", json!({ "_meta": meta(version) })),
            call(
                c,
                "echo",
                json!({ "text": "stateless" }),
                Some(meta(version)),
            ),
        ]
    };
    let (run, recorded) = env.record(&requests("1.0", [json!(1), json!(2), json!(3)]));
    assert_eq!(
        recorded.responses[0]["result"]["supportedVersions"],
        json!(["2026-07-28"])
    );
    let events = event_list(&env.show(&run));
    let methods: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["method"].as_str())
        .collect();
    assert_eq!(methods, ["server/discover", "tools/list"]);
    assert!(events.iter().any(|(k, d)| k == "tool_call"
        && d["tool"] == json!("echo")
        && d["call_id"] == json!("3")));

    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let replayed = env.session(
        &["mcp", "replay", &run],
        &requests("9.9", [json!("a"), json!("b"), json!("c")]),
    );
    assert_eq!(replayed.code, Some(0), "stderr: {}", replayed.stderr);
    assert_eq!(replayed.responses.len(), 3);
    for ((live, replay), id) in recorded
        .responses
        .iter()
        .zip(&replayed.responses)
        .zip(["a", "b", "c"])
    {
        assert_eq!(replay["id"], json!(id));
        assert_eq!(without_id(live.clone()), without_id(replay.clone()));
    }
}

/// A discovery-era recording (`server/discover`, `tools/list`, one `echo` call with `_meta`).
fn record_discovery_era(env: &Env) -> String {
    let meta = meta("1.0");
    let (run, recorded) = env.record(&[
        request(json!(1), "server/discover", json!({ "_meta": meta })),
        request(json!(2), "tools/list", json!({ "_meta": meta })),
        call(json!(3), "echo", json!({ "text": "hello" }), Some(meta)),
    ]);
    assert_eq!(recorded.responses.len(), 3);
    run
}

#[test]
fn a_handshake_client_replays_a_discovery_era_recording() {
    let env = Env::new();
    let run = record_discovery_era(&env);
    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let requests = legacy_requests([json!(1), json!(2), json!(3), json!(4)]);
    // Without the unrecorded `nope` call: every request has an answer.
    let replayed = env.session(&["mcp", "replay", &run], &requests[..4]);
    assert_eq!(replayed.code, Some(0), "stderr: {}", replayed.stderr);
    // The handshake is built from the discovery, in the version the client asked for (the
    // fake's discovery lists only 2026-07-28, which a handshake-era client cannot speak).
    assert_eq!(
        replayed.responses[0],
        json!({
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "protocolVersion": "2025-06-18",
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "fake", "version": "1.0" },
            },
        })
    );
    // `notifications/initialized` has no recorded counterpart and needs none; the rest is
    // answered from the recording.
    assert_eq!(
        replayed.responses[1]["result"]["tools"][0]["name"],
        json!("echo")
    );
    assert_eq!(
        replayed.responses[2]["result"]["content"][0]["text"],
        json!("hello")
    );
    let show = env.show(&run_id_of(&replayed.stderr, " as "));
    assert_eq!(show["run"]["stop_reason"], json!("ok"), "{show}");
}

#[test]
fn a_recording_without_a_handshake_or_a_discovery_answers_initialize_with_an_error() {
    let env = Env::new();
    let (run, _) = env.record(&[request(json!(1), "tools/list", Value::Null)]);
    let replayed = env.session(
        &["mcp", "replay", &run],
        &legacy_requests([json!(1), json!(2), json!(3), json!(4)])[..1],
    );
    assert_eq!(replayed.code, Some(1), "stderr: {}", replayed.stderr);
    assert_eq!(
        replayed.responses[0]["error"],
        json!({
            "code": -32601,
            "message": "tapedeck replay: the recording has no `initialize` request and no `server/discover` answer",
        })
    );
}

#[test]
fn an_unrecorded_call_gets_an_error_naming_the_closest_recorded_call() {
    let env = Env::new();
    let (run, _) = env.record(&legacy_requests([json!(1), json!(2), json!(3), json!(4)]));
    let replayed = env.session(
        &["mcp", "replay", &run],
        &[
            call(json!(7), "echo", json!({ "text": "goodbye" }), None),
            request(json!(8), "resources/list", Value::Null),
        ],
    );
    assert_eq!(replayed.code, Some(1), "stderr: {}", replayed.stderr);
    let error = &replayed.responses[0]["error"];
    assert_eq!(replayed.responses[0]["id"], json!(7));
    let message = error["message"].as_str().expect("an error message");
    assert!(
        message.contains("echo({\"text\":\"goodbye\"})"),
        "{message}"
    );
    assert!(
        message.contains("closest recorded call is echo({\"text\":\"hello\"})"),
        "{message}"
    );
    assert_eq!(replayed.responses[1]["error"]["code"], json!(-32601));
    let show = env.show(&run_id_of(&replayed.stderr, " as "));
    assert_eq!(show["run"]["stop_reason"], json!("replay_miss:echo"));
}
