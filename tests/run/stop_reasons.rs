//! Every stop reason a real run can end with, each produced by `tapedeck run` on a scripted
//! model: the exit code (0 for `ok`, 1 for any other), and the recorded run — stop reason,
//! status, the events in order, the policy decisions with their rules, `budget_exceeded`.

use std::time::Duration;
use tapedeck_testkit::on_both_stores;

use serde_json::json;

use crate::{Env, decision, process_alive};

/// A read tool with a canned answer.
pub const KB: &str = r#"
    tools:
      allow: [kb.read]
      defs:
        - name: kb.read
          description: Read a help article.
          input_schema:
            type: object
            properties: {article: {type: string}}
            required: [article]
          builtin: mock
          mock:
            - output: {article: password-reset, body: "Open Settings > Security."}
    "#;

/// A script that calls `tool` (with no arguments) on every step.
fn calls_forever(tool: &str) -> String {
    format!("responses:\n  - tool_calls: [{{name: {tool}}}]\nrepeat_last: true\n")
}

/// An expensive tool that always fails, as the incident's browser does, costing `cost` a call.
fn browser(cost: f64) -> String {
    format!(
        r#"
        tools:
          allow: [browser.open]
          defs:
            - name: browser.open
              kind: expensive
              cost_usd: {cost}
              builtin: mock
              mock:
                - error: "HTTP 503 Service Unavailable"
        degrade: {{after_errors: 0}}
        "#
    )
}

/// Prices of the scripted model: free, so a run's cost is known.
const FREE_MODEL: &str = "pricing: {test-model: {input_per_mtok: 0, output_per_mtok: 0}}\n";

on_both_stores! {
    fn ok(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: kb.read, arguments: {article: password-reset}}]
              - content: "Open Settings > Security and choose Reset password."
            "#,
            &[KB],
        );
        let out = env.run("How do I reset my password?");
        out.expect_code(0);
        assert!(
            out.stdout
                .starts_with("Open Settings > Security and choose Reset password.\n"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("ok — ok"), "{}", out.stdout);
        let run = env.last_run();
        run.expect_stop("ok", "ok");
        assert_eq!(
            run.kinds(),
            [
                "run_started",
                "llm_request",
                "llm_response",
                "tool_call",
                "policy_decision",
                "tool_result",
                "llm_request",
                "llm_response",
                "run_finished"
            ]
        );
        assert_eq!(
            run.decisions(),
            [decision("kb.read", "allowed", "tools.allow")]
        );
        assert_eq!(
            run.run()["answer"],
            "Open Settings > Security and choose Reset password."
        );
        assert_eq!(run.run()["input"], "How do I reset my password?");
        assert_eq!(run.run()["source"], "runtime");
        assert_eq!(run.run()["agent"]["name"], "test-bot");
        assert_eq!(run.run()["totals"]["steps"], 2);
        assert_eq!(run.run()["totals"]["tool_calls"], json!({"kb.read": 1}));
        // The model saw the tool's output.
        assert_eq!(
            run.tool_messages(),
            [r#"{"article":"password-reset","body":"Open Settings > Security."}"#]
        );
    }
}

on_both_stores! {
    fn task_and_labels_are_recorded(backend) {
        let env = Env::on(backend);
        env.scripted("[{content: hi}]", &[]);
        env.run_with(
            &[
                "agent.yaml",
                "--input",
                "hello",
                "--task",
                "greet",
                "--label",
                "model=test",
                "--label",
                "team=support",
            ],
            &[],
        )
        .expect_code(0);
        let runs = env.ls();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0]["task"], "greet");
        assert_eq!(
            runs[0]["labels"],
            json!({"model": "test", "team": "support"})
        );
        let listed = env.stdout(&["ls", "--json", "--task", "greet", "--label", "team=support"]);
        assert!(listed.contains(runs[0]["short_id"].as_str().expect("an id")));
    }
}

on_both_stores! {
    fn max_steps(backend) {
        let env = Env::on(backend);
        env.scripted(
            &calls_forever("kb.read"),
            &[KB, "budgets: {max_steps: 3}\n"],
        );
        // kb.read needs an `article`: the refusals are fed back and the model keeps going.
        let out = env.run("loop");
        out.expect_code(1);
        assert!(out.stdout.contains("stopped — max_steps"), "{}", out.stdout);
        let run = env.last_run();
        run.expect_stop("max_steps", "stopped");
        assert_eq!(run.data("llm_request").len(), 3);
        let exceeded = run.budget_exceeded();
        assert_eq!(exceeded["budget"], "max_steps");
        assert_eq!(exceeded["limit"], 3.0);
        assert_eq!(exceeded["used"], 3.0);
        assert!(exceeded.get("tool").is_none(), "{exceeded}");
        assert_eq!(
            &run.kinds()[run.kinds().len() - 3..],
            ["tool_result", "budget_exceeded", "run_finished"]
        );
    }
}

on_both_stores! {
    fn max_seconds_with_a_slow_mock_tool(backend) {
        let env = Env::on(backend);
        env.scripted(
            &calls_forever("slow.read"),
            &[r#"
                tools:
                  allow: [slow.read]
                  defs:
                    - name: slow.read
                      timeout_s: 30
                      builtin: mock
                      mock:
                        - output: {done: true}
                          latency_ms: 20000
                budgets: {max_seconds: 1}
                "#],
        );
        let out = env.run("wait");
        out.expect_code(1);
        // The run ends at its budget, not when the tool would have answered (20 s).
        assert!(out.elapsed < Duration::from_secs(6), "{:?}", out.elapsed);
        let run = env.last_run();
        run.expect_stop("max_seconds", "stopped");
        let exceeded = run.budget_exceeded();
        assert_eq!(exceeded["budget"], "max_seconds");
        assert_eq!(exceeded["limit"], 1.0);
        assert_eq!(exceeded["tool"], "slow.read");
        let used = exceeded["used"].as_f64().expect("used");
        assert!((1.0..4.0).contains(&used), "{used}");
        let results = run.data("tool_result");
        assert_eq!(results.len(), 1);
        assert!(
            results[0]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("timed out after")),
            "{}",
            results[0]
        );
    }
}

on_both_stores! {
    fn max_seconds_kills_a_hung_subprocess_tool(backend) {
        let env = Env::on(backend);
        // The tool writes its pid, then hangs for a minute.
        env.write(
            "hang.py",
            r#"
            import os, time
            with open("hang.pid", "w") as f:
                f.write(str(os.getpid()))
            time.sleep(60)
            "#,
        );
        env.scripted(
            &calls_forever("hang.read"),
            &[r#"
                tools:
                  allow: [hang.read]
                  defs:
                    - name: hang.read
                      command: [python3, hang.py]
                      timeout_s: 30
                budgets: {max_seconds: 2}
                "#],
        );
        let out = env.run("wait");
        out.expect_code(1);
        assert!(out.elapsed < Duration::from_secs(8), "{:?}", out.elapsed);
        let run = env.last_run();
        run.expect_stop("max_seconds", "stopped");
        assert_eq!(run.budget_exceeded()["tool"], "hang.read");
        let pid: u32 = std::fs::read_to_string(env.path("hang.pid"))
            .expect("the tool started and wrote its pid")
            .trim()
            .parse()
            .expect("a pid");
        assert!(
            !process_alive(pid),
            "the hung tool (pid {pid}) outlived the run"
        );
    }
}

on_both_stores! {
    fn max_tool_calls(backend) {
        let env = Env::on(backend);
        env.scripted(
            &calls_forever("browser.open"),
            &[&browser(0.72), "budgets: {max_tool_calls: 4}\n", FREE_MODEL],
        );
        let out = env.run("Is the API healthy?");
        out.expect_code(1);
        let run = env.last_run();
        run.expect_stop("max_tool_calls", "stopped");
        let exceeded = run.budget_exceeded();
        assert_eq!(exceeded["budget"], "max_tool_calls");
        assert_eq!(exceeded["limit"], 4.0);
        assert_eq!(exceeded["used"], 4.0);
        assert_eq!(exceeded["tool"], "browser.open");
        // The fifth call is stopped before it is made: four calls, four results.
        assert_eq!(run.data("tool_call").len(), 4);
        assert_eq!(run.data("tool_result").len(), 4);
        assert_eq!(run.0["tool_spend"][0]["tool"], "browser.open");
        assert_eq!(run.0["tool_spend"][0]["errors"], 4);
        let cost = run.run()["totals"]["cost_usd"]
            .as_f64()
            .expect("a known cost");
        assert!((cost - 4.0 * 0.72).abs() < 1e-9, "{cost}");
        let show = env.stdout(&["show", &env.last_id()]);
        assert!(
            show.contains(
                "budget     max_tool_calls exceeded: 4 used of 4, hit by a browser.open call"
            ),
            "{show}"
        );
    }
}

on_both_stores! {
    fn max_usd_from_tool_costs(backend) {
        let env = Env::on(backend);
        env.scripted(
            &calls_forever("browser.open"),
            &[&browser(0.5), "budgets: {max_usd: 1.2}\n", FREE_MODEL],
        );
        let run = env.run_expecting("Is the API healthy?", 1, "max_usd", "stopped");
        let exceeded = run.budget_exceeded();
        assert_eq!(exceeded["budget"], "max_usd");
        assert_eq!(exceeded["limit"], 1.2);
        assert_eq!(exceeded["used"], 1.0);
        assert_eq!(exceeded["tool"], "browser.open");
        // A third call would pass the limit: it is not made.
        assert_eq!(run.data("tool_result").len(), 2);
        assert_eq!(run.run()["totals"]["cost_usd"], 1.0);
    }
}

on_both_stores! {
    fn max_usd_from_model_pricing(backend) {
        let env = Env::on(backend);
        // $0.10 an input token: every step costs $1.
        env.scripted(
            r#"
            responses:
              - content: "thinking"
                tool_calls: [{name: kb.read, arguments: {article: a}}]
                usage: {input_tokens: 10, output_tokens: 0}
            repeat_last: true
            "#,
            &[
                KB,
                "budgets: {max_usd: 1.5}\n",
                "pricing: {test-model: {input_per_mtok: 100000, output_per_mtok: 0}}\n",
            ],
        );
        let run = env.run_expecting("spend", 1, "max_usd", "stopped");
        let exceeded = run.budget_exceeded();
        assert_eq!(exceeded["budget"], "max_usd");
        assert!(
            exceeded["used"].as_f64().expect("used") >= 1.5,
            "{exceeded}"
        );
        for response in run.data("llm_response") {
            assert_eq!(response["cost_usd"], 1.0);
        }
    }
}

on_both_stores! {
    fn max_tokens(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: kb.read, arguments: {article: a}}]
                usage: {input_tokens: 40, output_tokens: 20}
            repeat_last: true
            "#,
            &[KB, "budgets: {max_tokens: 100}\n"],
        );
        let run = env.run_expecting("talk", 1, "max_tokens", "stopped");
        let exceeded = run.budget_exceeded();
        assert_eq!(exceeded["budget"], "max_tokens");
        assert_eq!(exceeded["limit"], 100.0);
        assert_eq!(exceeded["used"], 120.0);
        assert_eq!(run.data("llm_response").len(), 2);
        assert_eq!(run.run()["totals"]["tokens_in"], 80);
        assert_eq!(run.run()["totals"]["tokens_out"], 40);
    }
}

on_both_stores! {
    fn model_length(backend) {
        let env = Env::on(backend);
        env.scripted(
            "[{content: \"It was a dark and\", finish_reason: length}]",
            &[],
        );
        let out = env.run("Tell me a story.");
        out.expect_code(1);
        let run = env.last_run();
        run.expect_stop("model_length", "stopped");
        assert_eq!(
            run.kinds(),
            ["run_started", "llm_request", "llm_response", "run_finished"]
        );
        assert_eq!(run.data("llm_response")[0]["finish_reason"], "length");
        // What the model wrote before it was cut is kept.
        assert_eq!(run.run()["answer"], "It was a dark and");
    }
}

on_both_stores! {
    fn tool_denied_when_not_allowed(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: http.post, arguments: {url: "https://hooks.example.com"}}]
              - content: never
            "#,
            &[r#"
                tools:
                  allow: [kb.read]
                  defs:
                    - name: kb.read
                      builtin: mock
                      mock: [{output: {body: "an article"}}]
                    # Defined, but not in tools.allow.
                    - name: http.post
                      kind: write
                      builtin: mock
                      mock: [{output: {status: 200}}]
                "#],
        );
        let out = env.run("post it");
        out.expect_code(1);
        assert!(
            out.stdout.contains("stopped — tool_denied:http.post"),
            "{}",
            out.stdout
        );
        let run = env.last_run();
        run.expect_stop("tool_denied:http.post", "stopped");
        assert_eq!(
            run.decisions(),
            [decision("http.post", "denied", "tools.allow")]
        );
        assert_eq!(run.error(), "`http.post` is not in tools.allow");
        assert!(
            run.data("tool_result").is_empty(),
            "a denied call never runs"
        );
        assert_eq!(
            &run.kinds()[3..],
            ["tool_call", "policy_decision", "run_finished"]
        );
    }
}

on_both_stores! {
    fn tool_denied_when_allowed_but_not_defined(backend) {
        let env = Env::on(backend);
        env.scripted(
            "[{tool_calls: [{name: search.read, arguments: {q: x}}]}]",
            &[r#"
                tools:
                  allow: [search.read]
                "#],
        );
        let out = env.run("search");
        out.expect_code(1);
        assert!(
            out.stderr
                .contains("tool `search.read` is allowed but not defined under tools.defs"),
            "{}",
            out.stderr
        );
        let run = env.last_run();
        run.expect_stop("tool_denied:search.read", "stopped");
        assert_eq!(
            run.decisions(),
            [decision("search.read", "denied", "tools.defs")]
        );
    }
}

/// A write tool that refunds orders.
const REFUND: &str = r#"
    tools:
      allow: [orders.refund]
      defs:
        - name: orders.refund
          kind: write
          input_schema:
            type: object
            properties: {order: {type: string}}
            required: [order]
          builtin: mock
          mock:
            - output: {refunded: true}
    "#;

const REFUND_SCRIPT: &str = r#"
    responses:
      - tool_calls: [{name: orders.refund, arguments: {order: A-1}}]
      - content: "Refunded."
    "#;

on_both_stores! {
    fn approval_denied_with_nobody_to_ask(backend) {
        let env = Env::on(backend);
        env.scripted(REFUND_SCRIPT, &[REFUND]);
        // No approvals file, and no terminal: nobody can approve the write.
        let run = env.run_expecting("refund A-1", 1, "approval_denied:orders.refund", "stopped");
        assert_eq!(
            run.decisions(),
            [
                decision("orders.refund", "needs_approval", "writes.require_approval"),
                decision(
                    "orders.refund",
                    "rejected",
                    "writes.require_approval: nobody to approve"
                ),
            ]
        );
        assert!(run.data("tool_result").is_empty(), "the write never ran");
    }
}

on_both_stores! {
    fn approval_denied_by_the_approvals_file(backend) {
        let env = Env::on(backend);
        env.write(
            "approvals.yaml",
            r#"
            approvals:
              - tool: orders.refund
                args: {order: B-2}
                decision: approve
              - tool: orders.refund
                decision: reject
                by: bob
            "#,
        );
        env.scripted(
            REFUND_SCRIPT,
            &[REFUND, "writes: {approvals_file: approvals.yaml}\n"],
        );
        let run = env.run_expecting("refund A-1", 1, "approval_denied:orders.refund", "stopped");
        assert_eq!(
            run.decisions(),
            [
                decision("orders.refund", "needs_approval", "writes.require_approval"),
                decision("orders.refund", "rejected", "approvals_file:2"),
            ]
        );
        assert_eq!(run.data("policy_decision")[1]["detail"], "by bob");
        let audit = env.stdout(&["show", &env.last_id(), "--audit"]);
        assert!(audit.contains("rejected"), "{audit}");
        assert!(audit.contains("approvals_file:2"), "{audit}");
        assert!(audit.contains("by bob"), "{audit}");

        // A file with no entry for the call rejects it too.
        env.write(
            "approvals.yaml",
            "approvals: [{tool: orders.cancel, decision: approve}]\n",
        );
        let run = env.run_expecting("refund A-1", 1, "approval_denied:orders.refund", "stopped");
        assert_eq!(
            run.decisions()[1],
            decision("orders.refund", "rejected", "approvals_file: no entry")
        );
    }
}

on_both_stores! {
    fn approved_by_the_approvals_file(backend) {
        let env = Env::on(backend);
        env.write(
            "approvals.yaml",
            "approvals: [{tool: orders.refund, args: {order: A-1}, decision: approve, by: alice}]\n",
        );
        env.scripted(
            REFUND_SCRIPT,
            &[REFUND, "writes: {approvals_file: approvals.yaml}\n"],
        );
        let run = env.run_expecting("refund A-1", 0, "ok", "ok");
        assert_eq!(
            run.decisions(),
            [
                decision("orders.refund", "needs_approval", "writes.require_approval"),
                decision("orders.refund", "approved", "approvals_file:1"),
                decision("orders.refund", "allowed", "tools.allow"),
            ]
        );
        // A write carries an idempotency key (derived from its arguments when it has none).
        let call = run.data("tool_call")[0];
        assert!(
            call["idempotency_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("orders.refund:")),
            "{call}"
        );
    }
}

/// A read tool whose output does not match its output schema.
const BAD_OUTPUT: &str = r#"
    tools:
      allow: [kb.read]
      defs:
        - name: kb.read
          output_schema:
            type: object
            properties: {body: {type: string}}
            required: [body]
          builtin: mock
          mock:
            - output: {text: "no body here"}
    "#;

const BAD_OUTPUT_SCRIPT: &str = r#"
    rules:
      - when: {last_result_error: true}
        respond: {content: "The article could not be read."}
      - when: {step: 1}
        respond: {tool_calls: [{name: kb.read, arguments: {article: a}}]}
    "#;

on_both_stores! {
    fn invalid_tool_output_stops_the_run(backend) {
        let env = Env::on(backend);
        env.scripted(BAD_OUTPUT_SCRIPT, &[BAD_OUTPUT]);
        let run = env.run_expecting("read", 1, "invalid_tool_output:kb.read", "stopped");
        let result = run.data("tool_result")[0];
        assert_eq!(result["validation"]["outcome"], "invalid", "{result}");
        assert!(
            run.error()
                .contains("the output of `kb.read` does not match its output_schema"),
            "{}",
            run.error()
        );
        assert!(run.error().contains("body"), "{}", run.error());
        assert_eq!(run.data("llm_request").len(), 1);
    }
}

on_both_stores! {
    fn invalid_tool_output_fed_back_continues(backend) {
        let env = Env::on(backend);
        env.scripted(
            BAD_OUTPUT_SCRIPT,
            &[BAD_OUTPUT, "on_invalid_output: feed_back\n"],
        );
        let run = env.run_expecting("read", 0, "ok", "ok");
        assert_eq!(run.run()["answer"], "The article could not be read.");
        let told = run.tool_messages();
        assert_eq!(told.len(), 1);
        assert!(
            told[0].starts_with("error: the output of `kb.read` does not match its output_schema"),
            "{}",
            told[0]
        );
    }
}

on_both_stores! {
    fn tool_error_stops_when_the_policy_says_so(backend) {
        let env = Env::on(backend);
        env.scripted(
            "[{tool_calls: [{name: flaky.read}]}, {content: never}]",
            &[r#"
                tools:
                  allow: [flaky.read]
                  defs:
                    - name: flaky.read
                      builtin: mock
                      mock: [{error: "HTTP 500 Internal Server Error"}]
                on_tool_error: stop
                "#],
        );
        let run = env.run_expecting("go", 1, "tool_error:flaky.read", "error");
        assert_eq!(run.error(), "flaky.read: HTTP 500 Internal Server Error");
        assert_eq!(
            run.data("tool_result")[0]["error"],
            "HTTP 500 Internal Server Error"
        );
    }
}

on_both_stores! {
    fn kill_switch_enabled_with_mode_stop(backend) {
        let env = Env::on(backend);
        env.scripted(
            "[{tool_calls: [{name: kb.read, arguments: {article: a}}]}, {content: never}]",
            &[
                KB,
                "kill_switch: {enabled: true, mode_when_enabled: stop}\n",
            ],
        );
        let run = env.run_expecting("read", 1, "kill_switch", "stopped");
        assert_eq!(
            run.decisions(),
            [decision("kb.read", "kill_switch", "kill_switch.enabled")]
        );
        assert!(run.data("tool_result").is_empty());
    }
}

/// Tools for the kill-switch file tests: `ops.panic` creates the file `KILL` (as an operator
/// would while the agent runs), `kb.read` reads, `orders.refund` writes.
fn kill_switch_tools(mode: &str) -> String {
    format!(
        r#"
        tools:
          allow: [ops.panic, kb.read, orders.refund]
          defs:
            - name: ops.panic
              command: [python3, panic.py]
            - name: kb.read
              builtin: mock
              mock: [{{output: {{body: "an article"}}}}]
            - name: orders.refund
              kind: write
              builtin: mock
              mock: [{{output: {{refunded: true}}}}]
        writes: {{require_approval: false}}
        kill_switch: {{file: KILL, mode_when_enabled: {mode}}}
        "#
    )
}

const PANIC_PY: &str = r#"
    import json
    open("KILL", "w").close()
    print(json.dumps({"switched": "on"}))
    "#;

on_both_stores! {
    fn kill_switch_file_created_mid_run_stops_the_next_call(backend) {
        let env = Env::on(backend);
        env.write("panic.py", PANIC_PY);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: ops.panic}]
              - tool_calls: [{name: kb.read, arguments: {article: a}}]
              - content: never
            "#,
            &[&kill_switch_tools("stop")],
        );
        assert!(!env.path("KILL").exists());
        env.run("go").expect_code(1);
        assert!(env.path("KILL").exists(), "the tool created the file");
        let run = env.last_run();
        run.expect_stop("kill_switch", "stopped");
        assert_eq!(
            run.decisions(),
            [
                decision("ops.panic", "allowed", "tools.allow"),
                decision("kb.read", "kill_switch", "kill_switch.file"),
            ]
        );
        assert_eq!(run.data("tool_result").len(), 1);
    }
}

on_both_stores! {
    fn kill_switch_file_with_disable_writes_refuses_a_later_write(backend) {
        let env = Env::on(backend);
        env.write("panic.py", PANIC_PY);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: ops.panic}]
              - tool_calls: [{name: kb.read, arguments: {article: a}}]
              - tool_calls: [{name: orders.refund, arguments: {order: A-1}}]
              - content: "The refund is blocked for now."
            "#,
            &[&kill_switch_tools("disable_writes")],
        );
        env.run("go").expect_code(0);
        let run = env.last_run();
        // Reads go on; the write is refused, the model is told, and the run ends normally.
        run.expect_stop("ok", "ok");
        assert_eq!(
            run.decisions(),
            [
                decision("ops.panic", "allowed", "tools.allow"),
                decision("kb.read", "allowed", "tools.allow"),
                decision("orders.refund", "kill_switch", "kill_switch.file"),
            ]
        );
        let told = run.tool_messages();
        assert_eq!(told.len(), 3);
        assert_eq!(
            told[2],
            "error: tool `orders.refund` is disabled: the kill switch is on for write tools"
        );
        let results = run.data("tool_result");
        assert!(results[2]["error"].is_string(), "{}", results[2]);
    }
}

on_both_stores! {
    fn model_error_on_a_malformed_response(backend) {
        let env = Env::on(backend);
        env.scripted("[{malformed: \"the body is not JSON\"}]", &[]);
        let run = env.run_expecting("hi", 1, "model_error", "error");
        assert_eq!(run.error(), "malformed response: the body is not JSON");
        // A malformed answer is not retried.
        assert!(run.data("llm_retry").is_empty());
        assert_eq!(run.kinds(), ["run_started", "llm_request", "run_finished"]);
    }
}

on_both_stores! {
    fn model_error_after_the_retries_run_out(backend) {
        let env = Env::on(backend);
        env.scripted(
            "[{error: {status: 503, message: overloaded, retry_after_ms: 5}}]",
            &[],
        );
        let run = env.run_expecting("hi", 1, "model_error", "error");
        assert_eq!(run.error(), "HTTP 503: overloaded");
        let retries = run.data("llm_retry");
        assert_eq!(retries.len(), 3, "three retries after the first attempt");
        for (i, retry) in retries.iter().enumerate() {
            assert_eq!(retry["attempt"], i + 1);
            assert_eq!(retry["status"], 503);
            assert_eq!(retry["wait_ms"], 5);
        }
        let show = env.stdout(&["show", &env.last_id()]);
        assert!(show.contains("error      HTTP 503: overloaded"), "{show}");
    }
}

on_both_stores! {
    fn model_error_on_a_status_that_is_not_retried(backend) {
        let env = Env::on(backend);
        env.scripted(
            "[{error: {status: 400, message: \"unknown parameter\"}}]",
            &[],
        );
        let run = env.run_expecting("hi", 1, "model_error", "error");
        assert_eq!(run.error(), "HTTP 400: unknown parameter");
        assert!(run.data("llm_retry").is_empty());
    }
}

on_both_stores! {
    fn paths_are_relative_to_the_config_folder(backend) {
        let env = Env::on(backend);
        // Run from the test's folder an agent that lives in `agents/`: its script, prompt file,
        // tool command (and the tool's working directory) and approvals file are all found there.
        env.write(
            "agents/script.yaml",
            "[{tool_calls: [{name: data.read}]}, {content: done}]\n",
        );
        env.write("agents/prompt.md", "You read data.\n");
        env.write("agents/data.json", "{\"rows\": 3}\n");
        env.write(
            "agents/tools/read.py",
            "import sys\nprint(open('data.json').read())\n",
        );
        env.write("agents/approvals.yaml", "approvals: []\n");
        env.write(
            "agents/agent.yaml",
            r#"
            name: folder-bot
            model: {provider: scripted, name: test-model, script: script.yaml}
            system_prompt_file: prompt.md
            tools:
              allow: [data.read]
              defs:
                - {name: data.read, command: [python3, tools/read.py]}
            writes: {approvals_file: approvals.yaml}
            "#,
        );
        env.run_with(&["agents/agent.yaml", "--input", "read"], &[])
            .expect_code(0);
        let run = env.last_run();
        run.expect_stop("ok", "ok");
        assert_eq!(run.tool_messages(), [r#"{"rows":3}"#]);
        let first = run.data("llm_request")[0]["messages"][0].clone();
        assert_eq!(run.blob(&first)["content"], "You read data.\n");
    }
}

/// Runs an agent whose tool says it started (the file `started`) and takes a second, calling it
/// forever; sends `signal` to `tapedeck run` once the tool has started; returns the exit code.
fn run_interrupted(env: &Env, signal: tapedeck_testkit::cli::Interrupt) -> Option<i32> {
    use tapedeck_testkit::cli::{interrupt, process_in, wait_for_file};
    env.write(
        "slow.py",
        r#"
        import time
        open("started", "w").close()
        time.sleep(1)
        print("{}")
        "#,
    );
    env.scripted(
        &calls_forever("slow.read"),
        &[r#"
            tools:
              allow: [slow.read]
              defs:
                - name: slow.read
                  command: [python3, slow.py]
            "#],
    );
    let child = process_in(env.dir.path())
        .arg("--store")
        .arg(env.store_arg())
        .args(["run", "agent.yaml", "--input", "go"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tapedeck run");
    wait_for_file(&env.path("started"), Duration::from_secs(30));
    interrupt(&child, signal);
    let output = child.wait_with_output().expect("tapedeck ends");
    output.status.code()
}

// SIGTERM during `run` left the run `incomplete` (killed, exit 143 from the shell); it now ends
// `cancelled` after the tool call under way, with that call's result recorded.
on_both_stores! {
    fn sigterm_ends_the_run_cancelled(backend) {
        let env = Env::on(backend);
        let code = run_interrupted(&env, tapedeck_testkit::cli::Interrupt::Term);
        assert_eq!(code, Some(143));
        let run = env.last_run();
        run.expect_stop("cancelled", "stopped");
        assert_eq!(
            run.data("tool_result").len(),
            1,
            "the call under way finished"
        );
        assert!(run.kinds().ends_with(&["run_finished"]));
    }
}

// The same for SIGINT (Ctrl-C): exit 130.
on_both_stores! {
    fn sigint_ends_the_run_cancelled(backend) {
        let env = Env::on(backend);
        let code = run_interrupted(&env, tapedeck_testkit::cli::Interrupt::Int);
        assert_eq!(code, Some(130));
        env.last_run().expect_stop("cancelled", "stopped");
    }
}
