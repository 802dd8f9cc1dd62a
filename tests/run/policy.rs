//! The gateway's guardrails in whole runs that go on: degrade mode, read dedupe, idempotent
//! writes, arguments that fail their schema, model retries — each recorded as policy decisions
//! (and listed by `show RUN --audit`) while the run still ends `ok`.

use crate::stop_reasons::KB;
use crate::{Env, decision};
use tapedeck_testkit::on_both_stores;

on_both_stores! {
    fn degrade_disables_a_tool_after_its_errors(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            rules:
              - when: {last_result_contains: "(it failed 2 times)"}
                respond: {content: "The status tool is disabled; I cannot check."}
              - respond: {tool_calls: [{name: status.read, arguments: {host: acme}}]}
            "#,
            &[r#"
                tools:
                  allow: [status.read]
                  defs:
                    - name: status.read
                      builtin: mock
                      mock: [{error: "HTTP 503 Service Unavailable"}]
                degrade: {after_errors: 2}
                "#],
        );
        let run = env.run_expecting("Is acme up?", 0, "ok", "ok");
        assert_eq!(
            run.decisions(),
            [
                decision("status.read", "allowed", "tools.allow"),
                decision("status.read", "allowed", "tools.allow"),
                // The second failure disables the tool ...
                decision("status.read", "degraded", "degrade.after_errors"),
                // ... so the third call is refused without running.
                decision("status.read", "degraded", "degrade.after_errors"),
            ]
        );
        let results = run.data("tool_result");
        assert_eq!(results.len(), 3);
        assert_eq!(results[2]["latency_ms"], 0);
        // The model is told, both when the tool is disabled and when it calls it again.
        let told = run.tool_messages();
        assert_eq!(told.len(), 3);
        assert_eq!(told[0], "error: HTTP 503 Service Unavailable");
        assert_eq!(
            told[1],
            "error: HTTP 503 Service Unavailable (`status.read` failed 2 times and is now disabled \
             for the rest of this run)"
        );
        assert_eq!(
            told[2],
            "error: tool `status.read` is disabled for the rest of this run (it failed 2 times)"
        );
        assert_eq!(
            run.run()["answer"],
            "The status tool is disabled; I cannot check."
        );
    }
}

on_both_stores! {
    fn identical_read_calls_are_deduped(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: kb.read, arguments: {article: password-reset}}]
              - tool_calls: [{name: kb.read, arguments: {article: password-reset}}]
              - content: "done"
            "#,
            &[KB],
        );
        let run = env.run_expecting("read twice", 0, "ok", "ok");
        assert_eq!(
            run.decisions(),
            [
                decision("kb.read", "allowed", "tools.allow"),
                decision("kb.read", "deduped", "dedupe.read_window_s"),
            ]
        );
        let results = run.data("tool_result");
        assert_eq!(results[0]["origin"], "live");
        assert_eq!(results[1]["origin"], "dedupe");
        assert_eq!(results[0]["output"], results[1]["output"]);
        let told = run.tool_messages();
        assert_eq!(told[0], told[1], "the same answer both times");
    }
}

on_both_stores! {
    fn dedupe_window_zero_runs_every_read(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: kb.read, arguments: {article: a}}]
              - tool_calls: [{name: kb.read, arguments: {article: a}}]
              - content: "done"
            "#,
            &[KB, "dedupe: {read_window_s: 0}\n"],
        );
        env.run("read twice").expect_code(0);
        let run = env.last_run();
        let origins: Vec<_> = run
            .data("tool_result")
            .iter()
            .map(|r| r["origin"].clone())
            .collect();
        assert_eq!(origins, ["live", "live"]);
    }
}

on_both_stores! {
    fn a_write_with_the_same_key_runs_once(backend) {
        let env = Env::on(backend);
        // The tool appends every call it gets to a log: the log shows how often it really ran.
        env.write(
            "refund.py",
            r#"
            import json, sys
            args = json.load(sys.stdin)
            with open("refunds.log", "a") as log:
                log.write(json.dumps(args) + "\n")
            print(json.dumps({"refunded": args["order"]}))
            "#,
        );
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: orders.refund, arguments: {order: A-1, idempotency_key: refund-A-1}}]
              - tool_calls: [{name: orders.refund, arguments: {order: A-1, idempotency_key: refund-A-1}}]
              - content: "Refunded once."
            "#,
            &[r#"
                tools:
                  allow: [orders.refund]
                  defs:
                    - name: orders.refund
                      kind: write
                      command: [python3, refund.py]
                writes: {require_approval: false}
                "#],
        );
        env.run("refund A-1, twice").expect_code(0);
        let log = std::fs::read_to_string(env.path("refunds.log")).expect("the tool ran");
        assert_eq!(log.lines().count(), 1, "{log}");
        let run = env.last_run();
        run.expect_stop("ok", "ok");
        assert_eq!(
            run.decisions(),
            [
                decision("orders.refund", "allowed", "tools.allow"),
                decision("orders.refund", "deduped", "idempotency_key"),
            ]
        );
        for call in run.data("tool_call") {
            assert_eq!(call["idempotency_key"], "refund-A-1");
        }
        let results = run.data("tool_result");
        assert_eq!(results[1]["origin"], "dedupe");
        assert_eq!(results[0]["output"], results[1]["output"]);
        let told = run.tool_messages();
        assert_eq!(told, [r#"{"refunded":"A-1"}"#, r#"{"refunded":"A-1"}"#]);
    }
}

on_both_stores! {
    fn arguments_that_fail_the_input_schema_are_fed_back(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: kb.read, arguments: {page: 3}}]
              - tool_calls: [{name: kb.read, arguments: {article: password-reset}}]
              - content: "done"
            "#,
            &[KB],
        );
        let run = env.run_expecting("read", 0, "ok", "ok");
        assert_eq!(
            run.decisions(),
            [
                decision("kb.read", "denied", "input_schema"),
                decision("kb.read", "allowed", "tools.allow"),
            ]
        );
        let told = run.tool_messages();
        assert!(
            told[0].starts_with("error: invalid arguments for `kb.read`: "),
            "{}",
            told[0]
        );
        assert!(told[0].contains("article"), "{}", told[0]);
        assert_eq!(run.data("tool_result")[0]["latency_ms"], 0);
    }
}

on_both_stores! {
    fn model_retries_are_recorded_and_the_run_goes_on(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - error: {status: 429, message: "rate limited", retry_after_ms: 10}
                times: 2
                then: {content: "Hello after waiting."}
            "#,
            &[],
        );
        let run = env.run_expecting("hi", 0, "ok", "ok");
        assert_eq!(
            run.kinds(),
            [
                "run_started",
                "llm_request",
                "llm_retry",
                "llm_retry",
                "llm_response",
                "run_finished"
            ]
        );
        let retries = run.data("llm_retry");
        assert_eq!(retries[0]["attempt"], 1);
        assert_eq!(retries[1]["attempt"], 2);
        for retry in retries {
            assert_eq!(retry["status"], 429);
            assert_eq!(retry["wait_ms"], 10);
            assert_eq!(retry["error"], "HTTP 429: rate limited");
        }
        assert_eq!(run.run()["answer"], "Hello after waiting.");
        assert_eq!(run.run()["totals"]["steps"], 1);
    }
}

on_both_stores! {
    fn audit_lists_every_decision(backend) {
        let env = Env::on(backend);
        env.write(
            "approvals.yaml",
            "approvals: [{tool: orders.refund, decision: approve, by: alice}]\n",
        );
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: kb.read, arguments: {article: a}}]
              - tool_calls: [{name: kb.read, arguments: {article: a}}]
              - tool_calls: [{name: orders.refund, arguments: {order: A-1}}]
              - tool_calls: [{name: http.post}]
            "#,
            &[r#"
                tools:
                  allow: [kb.read, orders.refund]
                  defs:
                    - name: kb.read
                      builtin: mock
                      mock: [{output: {body: "an article"}}]
                    - name: orders.refund
                      kind: write
                      builtin: mock
                      mock: [{output: {refunded: true}}]
                writes: {approvals_file: approvals.yaml}
                "#],
        );
        env.run("go").expect_code(1);
        let id = env.last_id();
        let audit = env.stdout(&["show", &id, "--audit"]);
        let rows: Vec<Vec<&str>> = audit
            .lines()
            .skip_while(|l| !l.starts_with("audit log"))
            .skip(2)
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        let decided: Vec<(&str, &str, &str, &str)> =
            rows.iter().map(|r| (r[2], r[3], r[4], r[5])).collect();
        assert_eq!(
            decided,
            [
                ("call_1_1", "kb.read", "allowed", "tools.allow"),
                ("call_2_1", "kb.read", "deduped", "dedupe.read_window_s"),
                (
                    "call_3_1",
                    "orders.refund",
                    "needs approval",
                    "writes.require_approval"
                ),
                ("call_3_1", "orders.refund", "approved", "approvals_file:1"),
                ("call_3_1", "orders.refund", "allowed", "tools.allow"),
                ("call_4_1", "http.post", "denied", "tools.allow"),
            ],
            "{audit}"
        );
        assert!(audit.contains("by alice"), "{audit}");
        assert!(
            audit.contains("`http.post` is not in tools.allow"),
            "{audit}"
        );
        assert!(
            audit.contains("status     stopped — tool_denied:http.post"),
            "{audit}"
        );
    }
}

on_both_stores! {
    fn kill_switch_disable_expensive_refuses_only_expensive_tools(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: browser.open, arguments: {url: "https://status.acme.example"}}]
              - tool_calls: [{name: kb.read, arguments: {article: a}}]
              - content: "done"
            "#,
            &[r#"
                tools:
                  allow: [browser.open, kb.read]
                  defs:
                    - name: browser.open
                      kind: expensive
                      cost_usd: 0.72
                      builtin: mock
                      mock: [{output: {status: 200}}]
                    - name: kb.read
                      builtin: mock
                      mock: [{output: {body: "an article"}}]
                kill_switch: {enabled: true, mode_when_enabled: disable_expensive}
                "#],
        );
        let run = env.run_expecting("go", 0, "ok", "ok");
        assert_eq!(
            run.decisions(),
            [
                decision("browser.open", "kill_switch", "kill_switch.enabled"),
                decision("kb.read", "allowed", "tools.allow"),
            ]
        );
        // The refused call cost nothing.
        assert!(run.data("tool_result")[0]["cost_usd"].is_null());
        assert_eq!(run.0["tool_spend"][0]["cost_usd"], 0.0);
    }
}

on_both_stores! {
    fn degrade_disable_lists_tools_off_from_the_start(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: kb.read, arguments: {article: a}}]
              - content: "done"
            "#,
            &[KB, "degrade: {disable: [kb.read]}\n"],
        );
        env.run("go").expect_code(0);
        let run = env.last_run();
        assert_eq!(
            run.decisions(),
            [decision("kb.read", "degraded", "degrade.disable")]
        );
        assert_eq!(
            run.tool_messages(),
            [
                "error: tool `kb.read` is disabled for the rest of this run (listed under degrade.disable)"
            ]
        );
    }
}
