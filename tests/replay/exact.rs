//! Exact replays (`tapedeck replay RUN`): the recorded version, model responses and tool
//! outputs, offline; the replay must be the recording again, event for event, and is itself a
//! run with its parent and mode.

use serde_json::{Value, json};
use tapedeck_testkit::on_both_stores;

use crate::{
    Backend, Env, PASSWORD, REFUND, WEBHOOK, blob, data_of, kinds, normalized_events, results,
    short,
};

/// Records `input` with the support bot, replays it exactly and checks the two runs are the
/// same event for event; returns (recording, replay) as `show --json` prints them.
fn record_and_replay(env: &Env, agent: &str, input: &str, code: i32) -> (Value, Value) {
    let id = env.record(agent, input, code);
    let report = env.replay_json(&[&id], code);
    assert_eq!(report["mode"], "exact");
    assert_eq!(report["divergence"], Value::Null, "{report:#}");
    assert_eq!(report["stale"], json!([]));
    assert_eq!(short(&report["parent"]["id"]), id);
    let replay = short(&report["run"]["id"]);
    assert_ne!(replay, id);
    let (original, replayed) = (env.show(&id), env.show(&replay));
    assert_same_run(&original, &replayed);
    (original, replayed)
}

/// The replay is the recording again: every event (kind, payload, blob hashes) in the same
/// order with ids and times aside, the same blobs, the same outcome and totals.
fn assert_same_run(original: &Value, replayed: &Value) {
    let (expected, actual) = (normalized_events(original), normalized_events(replayed));
    assert_eq!(
        expected.len(),
        actual.len(),
        "{:?}\n{:?}",
        kinds(original),
        kinds(replayed)
    );
    for (e, a) in expected.iter().zip(&actual) {
        assert_eq!(
            e, a,
            "the replay differs from the recording at seq {}",
            e["seq"]
        );
    }
    assert_eq!(original["blobs"], replayed["blobs"]);
    let (o, r) = (&original["run"], &replayed["run"]);
    for field in [
        "input",
        "agent",
        "status",
        "stop_reason",
        "answer",
        "error",
        "task",
    ] {
        assert_eq!(o[field], r[field], "run.{field}");
    }
    let mut totals = (o["totals"].clone(), r["totals"].clone());
    for t in [&mut totals.0, &mut totals.1] {
        t.as_object_mut().expect("totals").remove("latency_ms");
    }
    assert_eq!(totals.0, totals.1);
    assert_eq!(r["parent"], o["id"]);
    assert_eq!(r["mode"], "exact");
    // The model was the recording and every tool result came from it.
    for request in data_of(replayed, "llm_request") {
        assert_eq!(request["provider"], "replay");
    }
    for (origin, _) in results(replayed) {
        assert_eq!(origin, "recorded");
    }
}

on_both_stores! {
    fn a_recorded_run_replays_event_for_event(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let (original, replayed) = record_and_replay(&env, "support-bot.yaml", PASSWORD, 0);
        assert_eq!(
            kinds(&replayed),
            [
                "run_started",
                "llm_request",
                "llm_response",
                "tool_call",
                "policy_decision",
                "tool_result",
                "llm_request",
                "llm_response",
                "tool_call",
                "policy_decision",
                "tool_result",
                "llm_request",
                "llm_response",
                "run_finished",
            ]
        );
        // The recording's tools answered live; the replay's answers are theirs, recorded.
        let live: Vec<String> = results(&original).into_iter().map(|(o, _)| o).collect();
        assert_eq!(live, ["live", "live"]);
        assert_eq!(results(&original), {
            let mut r = results(&replayed);
            for (origin, _) in &mut r {
                *origin = "live".to_owned();
            }
            r
        });
    }
}

on_both_stores! {
    fn a_run_that_stopped_replays_to_the_same_stop_and_exits_1(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let (_, replayed) = record_and_replay(&env, "support-bot.yaml", WEBHOOK, 1);
        assert_eq!(replayed["run"]["stop_reason"], "tool_denied:http.post");
    }
}

on_both_stores! {
    fn the_replay_text_says_it_matches(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let out = env.exec(&["replay", &id]);
        out.expect_code(0);
        assert_eq!(out.stderr, "");
        let replay = env.ls()[0]["short_id"]
            .as_str()
            .expect("a short id")
            .to_owned();
        let text = out
            .stdout
            .replace(&id, "[PARENT]")
            .replace(&replay, "[REPLAY]");
        insta::assert_snapshot!(text, @r"
        replayed [PARENT] (exact) as [REPLAY]: ok — ok · 3 steps · 2 tool calls · $0.0002
          the trajectory matches the recording
          compare: tapedeck show [PARENT]  ·  tapedeck show [REPLAY]
        ");
    }
}

on_both_stores! {
    /// The research bot of the incident: its browser answers 503 on every call and the model
    /// keeps retrying until `max_tool_calls` (15) stops it. The replay needs neither the agent's
    /// files nor its tools, and stops the same way.
    fn the_browser_retry_incident_replays_offline_and_stops_at_max_tool_calls_again(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let id = env.record(
            "research-bot.yaml",
            "Is the Acme payments API healthy right now?",
            1,
        );
        // Offline: the agent version and its script are gone; only the store is left.
        for file in ["research-bot.yaml", "research-bot.script.yaml"] {
            env.remove(file);
        }
        let out = env.exec(&["replay", &id]);
        out.expect_code(1);
        assert!(
            out.stdout.contains("stopped — max_tool_calls"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("the trajectory matches the recording"));
        let replay = env.ls()[0]["short_id"]
            .as_str()
            .expect("a short id")
            .to_owned();
        let (original, replayed) = (env.show(&id), env.show(&replay));
        assert_same_run(&original, &replayed);
        assert_eq!(replayed["run"]["stop_reason"], "max_tool_calls");
        assert_eq!(
            replayed["run"]["totals"]["tool_calls"],
            json!({"browser.open": 15})
        );
        let budget = data_of(&replayed, "budget_exceeded");
        assert_eq!(budget.len(), 1);
        assert_eq!(budget[0]["budget"], "max_tool_calls");
        assert_eq!(budget[0]["tool"], "browser.open");
        let served = data_of(&replayed, "tool_result");
        assert_eq!(served.len(), 15);
        for result in served {
            assert_eq!(result["error"], "HTTP 503 Service Unavailable");
            assert_eq!(result["origin"], "recorded");
            // Served from the store: none of the browser's 20 ms.
            assert_eq!(result["latency_ms"], 0);
        }
        // The replay's spend is the incident's: 15 × $0.72 of browser plus the model.
        assert_eq!(
            replayed["run"]["totals"]["cost_usd"],
            original["run"]["totals"]["cost_usd"]
        );
    }
}

on_both_stores! {
    /// The model fails and is retried, then fails for good: the replay serves the recorded
    /// failures (at once, without the backoff) and ends as the recording did.
    fn model_retries_and_failures_replay_event_for_event(backend) {
        let env = Env::on(backend);
        let agent = |name: &str, script: &str| {
            env.write(&format!("{name}.script.yaml"), script);
            env.write(
                &format!("{name}.yaml"),
                &format!(
                    "name: {name}\nmodel: {{ provider: scripted, name: m, script: {name}.script.yaml }}\n\
                     tools:\n  allow: [kb.read]\n  defs:\n    - name: kb.read\n      builtin: mock\n      \
                     mock: [{{ output: {{ ok: true }} }}]\n"
                ),
            );
        };
        agent(
            "flaky",
            r#"responses:
      - error: { status: 429, message: "slow down", retry_after_ms: 30 }
        times: 2
        then: { tool_calls: [{ name: kb.read, arguments: { article: a } }] }
      - content: "done"
    "#,
        );
        agent(
            "down",
            r#"responses:
      - error: { status: 503, message: "overloaded", retry_after_ms: 10 }
    "#,
        );
        agent("broken", "responses:\n  - malformed: \"not JSON\"\n");
        for (name, code, stop, retries) in [
            ("flaky", 0, "ok", 2),
            ("down", 1, "model_error", 3),
            ("broken", 1, "model_error", 0),
        ] {
            let (_, replayed) = record_and_replay(&env, &format!("{name}.yaml"), "hi", code);
            assert_eq!(replayed["run"]["stop_reason"], stop, "{name}");
            let served = data_of(&replayed, "llm_retry");
            assert_eq!(served.len(), retries, "{name}");
            for retry in served {
                assert_eq!(retry["wait_ms"], 0, "{name}");
            }
        }
    }
}

on_both_stores! {
    /// A tool that counts its calls: three identical calls get 1, 2 and 3. A replay serves the
    /// first recorded answer to the first call, the second to the second…: by occurrence.
    fn repeated_identical_tool_calls_replay_by_occurrence(backend) {
        let env = counter_env(backend);
        let id = env.record("counter.yaml", "count to three", 0);
        let original = env.show(&id);
        let counted = |shown: &Value| -> Vec<Value> {
            results(shown)
                .into_iter()
                .map(|(_, output)| output)
                .collect()
        };
        assert_eq!(
            counted(&original),
            [json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
        );
        // The tool is gone: a replay cannot run it, only serve what it answered.
        env.remove("counter.sh");
        let report = env.replay_json(&[&id], 0);
        assert_eq!(report["divergence"], Value::Null);
        let replayed = env.show(&short(&report["run"]["id"]));
        assert_same_run(&original, &replayed);
        assert_eq!(counted(&replayed), counted(&original));
    }
}

/// An agent calling `counter.next {}` three times (dedupe off), then answering; the tool is a
/// shell script counting in the file `count`.
pub fn counter_env(backend: Backend) -> Env {
    let env = Env::on(backend);
    env.write(
        "counter.sh",
        "n=$(cat count 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > count\necho \"{\\\"n\\\": $n}\"\n",
    );
    env.write(
        "counter.script.yaml",
        r#"responses:
  - tool_calls: [{ name: counter.next, arguments: {} }]
  - tool_calls: [{ name: counter.next, arguments: {} }]
  - tool_calls: [{ name: counter.next, arguments: {} }]
  - content: "Counted to three."
"#,
    );
    env.write(
        "counter.yaml",
        r#"name: counter-bot
model: { provider: scripted, name: test-model, script: counter.script.yaml }
tools:
  allow: [counter.next]
  defs:
    - name: counter.next
      description: The next number.
      command: [sh, counter.sh]
dedupe: { read_window_s: 0 }
"#,
    );
    env
}

on_both_stores! {
    fn replays_are_runs_with_their_parent_and_mode(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let report = env.replay_json(&[&id], 0);
        let replay = short(&report["run"]["id"]);
        // `ls` lists it, newest first, as a runtime run of the same agent.
        let runs = env.ls();
        let ids: Vec<&str> = runs
            .iter()
            .map(|r| r["short_id"].as_str().expect("a short id"))
            .collect();
        assert_eq!(ids, [replay.as_str(), id.as_str()]);
        assert_eq!(runs[0]["agent"], runs[1]["agent"]);
        assert_eq!(runs[0]["stop_reason"], "ok");
        // Replaying the replay works too: it is a run like any other.
        let again = env.replay_json(&[&replay], 0);
        assert_eq!(short(&again["parent"]["id"]), replay);
        // `show` says what it replays, and marks the tool results served from the recording.
        let shown = env.stdout(&["show", &replay]);
        assert!(
            shown.contains(&format!("source     runtime · exact of {id}")),
            "{shown}"
        );
        let results: Vec<&str> = shown
            .lines()
            .filter(|l| l.contains("tool_result"))
            .collect();
        assert_eq!(results.len(), 2, "{shown}");
        for line in results {
            assert!(line.ends_with(" · recorded"), "{line}");
        }
        let original = env.stdout(&["show", &id]);
        assert!(!original.contains("exact of"), "{original}");
    }
}

on_both_stores! {
    fn the_json_report_parses(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let id = env.record("support-bot.yaml", REFUND, 0);
        let report = env.replay_json(&[&id], 0);
        let object = report.as_object().expect("the report is an object");
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "divergence",
                "format",
                "mode",
                "parent",
                "run",
                "stale",
                "version"
            ]
        );
        assert_eq!(report["format"], "tapedeck-replay");
        assert_eq!(report["version"], 1);
        assert_eq!(report["parent"]["source"], "runtime");
        assert_eq!(report["run"]["parent"], report["parent"]["id"]);
        assert_eq!(report["run"]["mode"], "exact");
        assert_eq!(report["run"]["status"], "ok");
        assert_eq!(report["run"]["answer"], report["parent"]["answer"]);
        assert_eq!(report["run"]["totals"]["steps"], 3);
    }
}

on_both_stores! {
    /// The refund needs approval; the approvals file gave it. The file is gone when the run is
    /// replayed, and nobody is there to ask: the recorded answer is replayed, with who gave it.
    fn a_recorded_approval_is_replayed(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let id = env.record("support-bot.yaml", REFUND, 0);
        env.remove("approvals.yaml");
        let report = env.replay_json(&[&id], 0);
        assert_eq!(report["divergence"], Value::Null);
        let replay = short(&report["run"]["id"]);
        let (original, replayed) = (env.show(&id), env.show(&replay));
        let decisions = |shown: &Value| -> Vec<(String, String, Value)> {
            data_of(shown, "policy_decision")
                .into_iter()
                .filter(|d| d["tool"] == "orders.refund")
                .map(|d| {
                    (
                        d["decision"].as_str().expect("a decision").to_owned(),
                        d["rule"].as_str().expect("a rule").to_owned(),
                        d["detail"].clone(),
                    )
                })
                .collect()
        };
        let by_alice = json!("by alice");
        assert_eq!(
            decisions(&original),
            [
                (
                    "needs_approval".into(),
                    "writes.require_approval".into(),
                    Value::Null
                ),
                (
                    "approved".into(),
                    "approvals_file:1".into(),
                    by_alice.clone()
                ),
                ("allowed".into(), "tools.allow".into(), Value::Null),
            ]
        );
        assert_eq!(
            decisions(&replayed),
            [
                (
                    "needs_approval".into(),
                    "writes.require_approval".into(),
                    Value::Null
                ),
                (
                    "approved".into(),
                    "replay: recorded approvals_file:1".into(),
                    by_alice
                ),
                ("allowed".into(), "tools.allow".into(), Value::Null),
            ]
        );
        // The refund itself was served from the recording: nothing was refunded again.
        let refund = data_of(&replayed, "tool_result")
            .into_iter()
            .find(|r| r["tool"] == "orders.refund")
            .expect("the refund's result");
        assert_eq!(refund["origin"], "recorded");
        assert_eq!(
            blob(&replayed, &refund["output"]),
            &json!({"refunded": true})
        );
        assert_eq!(replayed["run"]["answer"], original["run"]["answer"]);
    }
}
