//! Tools-only replays (`tapedeck replay RUN --agent NEW.yaml`): a new version runs with its own
//! (scripted) model and every tool call is answered from the recording — by arguments and
//! occurrence, `reused` past the recorded occurrences, by position when asked — and a call
//! never recorded follows the miss policy. Also staleness and the first-divergence report.

use serde_json::{Value, json};
use tapedeck_testkit::on_both_stores;

use crate::exact::counter_env;
use crate::{Backend, Env, PASSWORD, REFUND, data_of, results, short};

/// The support bot and a v2 (`v2.yaml`, its script `v2.script.yaml`) with `edits` made to the
/// script and `config_edits` to the config.
fn support_v2(
    backend: Backend,
    script_edits: &[(&str, &str)],
    config_edits: &[(&str, &str)],
) -> Env {
    let env = Env::with_fixture_agents_on(backend);
    env.edit("support-bot.script.yaml", "v2.script.yaml", script_edits);
    let mut edits = vec![("script: support-bot.script.yaml", "script: v2.script.yaml")];
    edits.extend_from_slice(config_edits);
    env.edit("support-bot.yaml", "v2.yaml", &edits);
    env
}

/// v2 reads the article `password-recovery` where v1 read `password-reset`.
const NEW_ARTICLE: (&str, &str) = (
    "arguments: { article: password-reset }",
    "arguments: { article: password-recovery }",
);

on_both_stores! {
    fn the_same_version_against_its_recorded_tools_matches(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let report = env.replay_json(&[&id, "--agent", "support-bot.yaml"], 0);
        assert_eq!(report["mode"], "tools-only");
        assert_eq!(report["divergence"], Value::Null);
        let replayed = env.show(&short(&report["run"]["id"]));
        // Its own model (the script again), the recording's tools.
        for request in data_of(&replayed, "llm_request") {
            assert_eq!(request["provider"], "scripted");
        }
        let origins: Vec<String> = results(&replayed).into_iter().map(|(o, _)| o).collect();
        assert_eq!(origins, ["recorded", "recorded"]);
    }
}

on_both_stores! {
    fn a_call_with_new_arguments_is_a_replay_miss(backend) {
        let env = support_v2(backend, &[NEW_ARTICLE], &[]);
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let report = env.replay_json(&[&id, "--agent", "v2.yaml"], 1);
        let run = &report["run"];
        assert_eq!(run["stop_reason"], "replay_miss:kb.read");
        assert_eq!(run["status"], "stopped", "{run:#}");
        let error = run["error"].as_str().expect("the miss is explained");
        assert!(
            error.contains(
                r#"no recorded call of `kb.read` with arguments {"article":"password-recovery"}"#
            ),
            "{error}"
        );
        assert!(
            error.contains(r#"closest recorded: {"article":"password-reset"}"#),
            "{error}"
        );
        assert!(error.contains("which differs in `article`"), "{error}");
        // Step 1 (kb.search) was served; step 2's call is where it left the recording.
        let divergence = &report["divergence"];
        assert_eq!(divergence["step"], 2);
        assert_eq!(divergence["kind"], "tool_call");
        assert_eq!(
            divergence["expected"]["summary"],
            r#"kb.read {"article":"password-reset"}"#
        );
        assert_eq!(
            divergence["actual"]["summary"],
            r#"kb.read {"article":"password-recovery"}"#
        );
        let diff = divergence["argument_diff"]
            .as_str()
            .expect("an argument diff");
        assert!(
            diff.contains("-  \"article\": \"password-reset\"\n"),
            "{diff}"
        );
        assert!(
            diff.contains("+  \"article\": \"password-recovery\"\n"),
            "{diff}"
        );
        let replayed = env.show(&short(&run["id"]));
        let served = results(&replayed);
        assert_eq!(served[0].0, "recorded");
        assert_eq!(served[1].1, Value::Null, "a miss has no output");
    }
}

on_both_stores! {
    /// The text report of the first divergence, with the argument diff.
    fn the_first_divergence_report(backend) {
        let env = support_v2(backend, &[NEW_ARTICLE], &[]);
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let out = env.exec(&["replay", &id, "--agent", "v2.yaml"]);
        out.expect_code(1);
        assert_eq!(out.stderr, "");
        let replay = env.ls()[0]["short_id"]
            .as_str()
            .expect("a short id")
            .to_owned();
        let text = out
            .stdout
            .replace(&id, "[PARENT]")
            .replace(&replay, "[REPLAY]");
        insta::assert_snapshot!(text, @r#"
        replayed [PARENT] (tools-only) as [REPLAY]: stopped — replay_miss:kb.read · 2 steps · 2 tool calls · $0.0001
          reason no recorded call of `kb.read` with arguments {"article":"password-recovery"}; closest recorded: {"article":"password-reset"} (similarity 0.88), which differs in `article`
          first divergence at step 2 (tool_call):
            expected  tool_call kb.read {"article":"password-reset"}
            actual    tool_call kb.read {"article":"password-recovery"}
            arguments
               {
              -  "article": "password-reset"
              +  "article": "password-recovery"
               }
            before it step 2: llm_response calls kb.read
          compare: tapedeck show [PARENT]  ·  tapedeck show [REPLAY]
        "#);
    }
}

on_both_stores! {
    /// v2 reads the article a second time before answering: the recording has one answer to that
    /// call, and the extra call reuses it (marked `reused`, so it still counts as a call).
    fn a_call_repeated_more_often_than_recorded_is_reused(backend) {
        let env = support_v2(backend,
            &[(
                "  - when: { last_tool: kb.read, input_contains: \"password\" }\n    respond:\n      content:",
                "  - when: { step: 3, input_contains: \"password\" }\n    respond: { tool_calls: [{ name: kb.read, arguments: { article: password-reset } }] }\n  - when: { last_tool: kb.read, input_contains: \"password\" }\n    respond:\n      content:",
            )],
            &[("pricing:", "dedupe: { read_window_s: 0 }\npricing:")],
        );
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let report = env.replay_json(&[&id, "--agent", "v2.yaml"], 1);
        assert_eq!(report["run"]["stop_reason"], "ok");
        assert_eq!(
            report["run"]["totals"]["tool_calls"],
            json!({"kb.read": 2, "kb.search": 1})
        );
        // It ended ok, but not as recorded: step 3 called kb.read where the recording answered.
        assert_eq!(report["divergence"]["step"], 3);
        assert_eq!(report["divergence"]["kind"], "llm_response");
        let replayed = env.show(&short(&report["run"]["id"]));
        let served = results(&replayed);
        let origins: Vec<&str> = served.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(origins, ["recorded", "recorded", "reused"]);
        assert_eq!(served[2].1, served[1].1);
        let shown = env.stdout(&["show", &short(&report["run"]["id"])]);
        assert_eq!(shown.matches(" · reused").count(), 1, "{shown}");
    }
}

on_both_stores! {
    /// Three identical calls recorded (1, 2, 3); a version making four gets them by occurrence,
    /// then the last answer again, reused.
    fn identical_calls_are_served_by_occurrence_then_reused(backend) {
        let env = counter_env(backend);
        let id = env.record("counter.yaml", "count to three", 0);
        env.edit(
            "counter.script.yaml",
            "counter4.script.yaml",
            &[(
                "  - content: \"Counted to three.\"",
                "  - tool_calls: [{ name: counter.next, arguments: {} }]\n  - content: \"Counted to four.\"",
            )],
        );
        env.edit(
            "counter.yaml",
            "counter4.yaml",
            &[("counter.script.yaml", "counter4.script.yaml")],
        );
        env.remove("counter.sh");
        let report = env.replay_json(&[&id, "--agent", "counter4.yaml"], 1);
        assert_eq!(report["run"]["stop_reason"], "ok");
        assert_eq!(report["run"]["answer"], "Counted to four.");
        let served = results(&env.show(&short(&report["run"]["id"])));
        assert_eq!(
            served,
            [
                ("recorded".to_owned(), json!({"n": 1})),
                ("recorded".to_owned(), json!({"n": 2})),
                ("recorded".to_owned(), json!({"n": 3})),
                ("reused".to_owned(), json!({"n": 3})),
            ]
        );
    }
}

on_both_stores! {
    fn matching_by_position_is_opt_in(backend) {
        let env = support_v2(backend, &[NEW_ARTICLE], &[]);
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let without = env.replay_json(&[&id, "--agent", "v2.yaml"], 1);
        assert_eq!(without["run"]["stop_reason"], "replay_miss:kb.read");
        // The first kb.read call gets the recording's first kb.read answer, whatever its arguments.
        let with = env.replay_json(&[&id, "--agent", "v2.yaml", "--match-position"], 1);
        assert_eq!(with["run"]["stop_reason"], "ok");
        assert_eq!(with["run"]["answer"], with["parent"]["answer"]);
        assert_eq!(with["divergence"]["kind"], "tool_call");
        let served = results(&env.show(&short(&with["run"]["id"])));
        assert_eq!(served[1].0, "recorded");
        assert_eq!(served[1].1["article"], "password-reset");
    }
}

on_both_stores! {
    fn on_miss_closest_serves_the_closest_recorded_call(backend) {
        let env = support_v2(backend, &[NEW_ARTICLE], &[]);
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let report = env.replay_json(&[&id, "--agent", "v2.yaml", "--on-miss", "closest"], 1);
        assert_eq!(report["run"]["stop_reason"], "ok");
        let served = results(&env.show(&short(&report["run"]["id"])));
        // Not what was asked for: marked `reused`, not `recorded`.
        assert_eq!(served[1].0, "reused");
        assert_eq!(served[1].1["article"], "password-reset");
    }
}

on_both_stores! {
    fn on_miss_live_runs_only_listed_read_tools(backend) {
        let env = support_v2(backend,
            &[(
                "arguments: { article: password-reset }",
                "arguments: { article: account-locked }",
            )],
            &[],
        );
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        // Not listed: a miss, saying why it did not run.
        let report = env.replay_json(&[&id, "--agent", "v2.yaml", "--on-miss", "live"], 1);
        assert_eq!(report["run"]["stop_reason"], "replay_miss:kb.read");
        let error = report["run"]["error"].as_str().expect("an error");
        assert!(
            error.contains("(`kb.read` is not in --live-allow)"),
            "{error}"
        );
        // Listed: the mock runs for real (it has no such article: its 404 is the live answer).
        let report = env.replay_json(
            &[
                &id,
                "--agent",
                "v2.yaml",
                "--on-miss",
                "live",
                "--live-allow",
                "kb.read",
            ],
            1,
        );
        assert_eq!(report["run"]["stop_reason"], "ok");
        let replayed = env.show(&short(&report["run"]["id"]));
        let served: Vec<(&str, &Value)> = data_of(&replayed, "tool_result")
            .into_iter()
            .map(|r| (r["origin"].as_str().expect("an origin"), &r["error"]))
            .collect();
        assert_eq!(
            served,
            [
                ("recorded", &Value::Null),
                ("live", &json!("404: no such article"))
            ]
        );
    }
}

on_both_stores! {
    fn on_miss_live_refuses_a_write_tool(backend) {
        let env = support_v2(backend,
            &[(
                "order: \"A-1234\", idempotency_key: \"refund-A-1234\"",
                "order: \"B-5678\"",
            )],
            &[("require_approval: true", "require_approval: false")],
        );
        let id = env.record("support-bot.yaml", REFUND, 0);
        // Asking for it is an input error, in every mode: nothing runs.
        let runs = env.ls().len();
        for mode in [
            &["--agent", "v2.yaml"][..],
            &[][..],
            &["--from-step", "1"][..],
        ] {
            let mut args = vec![id.as_str()];
            args.extend_from_slice(mode);
            args.extend_from_slice(&["--on-miss", "live", "--live-allow", "orders.refund"]);
            let mut all = vec!["replay"];
            all.extend_from_slice(&args);
            let line = env.exec(&all).expect_input_error().to_owned();
            assert_eq!(
                line,
                "error: --live-allow orders.refund: `orders.refund` is a write tool; only read tools may run live in a replay",
                "{mode:?}"
            );
        }
        assert_eq!(env.ls().len(), runs, "no replay was recorded");
        // A write the recording has no answer for never runs live, whatever is allowed.
        let report = env.replay_json(
            &[
                &id,
                "--agent",
                "v2.yaml",
                "--on-miss",
                "live",
                "--live-allow",
                "kb.read",
            ],
            1,
        );
        assert_eq!(report["run"]["stop_reason"], "replay_miss:orders.refund");
        let error = report["run"]["error"].as_str().expect("an error");
        assert!(
            error.contains("(`--on-miss live` never runs a write tool)"),
            "{error}"
        );
    }
}

on_both_stores! {
    /// The recorded approval answers the same call again; it never approves another one.
    fn a_recorded_approval_answers_only_the_same_call(backend) {
        let env = support_v2(backend,
            &[(
                "order: \"A-1234\", idempotency_key: \"refund-A-1234\"",
                "order: \"B-5678\"",
            )],
            &[],
        );
        let id = env.record("support-bot.yaml", REFUND, 0);
        env.remove("approvals.yaml");
        // The same version: approved from the recording, with nobody to ask.
        let same = env.replay_json(&[&id, "--agent", "support-bot.yaml"], 0);
        assert_eq!(same["run"]["stop_reason"], "ok");
        // A refund of another order: nobody approved that one.
        let other = env.replay_json(&[&id, "--agent", "v2.yaml"], 1);
        assert_eq!(other["run"]["stop_reason"], "approval_denied:orders.refund");
        let replayed = env.show(&short(&other["run"]["id"]));
        let rejected = data_of(&replayed, "policy_decision")
            .into_iter()
            .find(|d| d["decision"] == "rejected")
            .expect("a rejection");
        assert_eq!(
            rejected["rule"],
            "replay: no recorded approval for this call"
        );
    }
}

on_both_stores! {
    /// v2 adds a property to `kb.read`'s input schema: the recorded calls may no longer be what
    /// v2 would send. A warning; with `--strict`, an input error naming the tool.
    fn a_tool_whose_schema_changed_makes_the_recording_stale(backend) {
        let env = support_v2(backend,
            &[],
            &[(
                "properties: { article: { type: string } }",
                "properties: { article: { type: string }, lang: { type: string } }",
            )],
        );
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let out = env.exec(&["replay", &id, "--agent", "v2.yaml", "--json"]);
        out.expect_code(0);
        assert_eq!(
            out.stderr,
            "warning: tool `kb.read` changed its schema since the recording: the tape may need recording again\n"
        );
        let report = out.json();
        assert_eq!(
            report["stale"],
            json!(["tool `kb.read` changed its schema since the recording"])
        );
        let runs = env.ls().len();
        let line = env
            .exec(&["replay", &id, "--agent", "v2.yaml", "--strict"])
            .expect_input_error()
            .to_owned();
        assert!(line.contains("tool `kb.read` changed its schema"), "{line}");
        assert!(line.contains("stale"), "{line}");
        assert_eq!(env.ls().len(), runs, "a refused replay records nothing");
        // A tool the recording never called may change freely.
        let env = support_v2(backend,
            &[],
            &[(
                "properties: { order: { type: string }, idempotency_key: { type: string } }",
                "properties: { order: { type: string }, idempotency_key: { type: string }, reason: { type: string } }",
            )],
        );
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let out = env.exec(&["replay", &id, "--agent", "v2.yaml", "--strict"]);
        out.expect_code(0);
        assert_eq!(out.stderr, "");
    }
}
