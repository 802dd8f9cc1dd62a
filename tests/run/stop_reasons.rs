//! The budget stop reasons, each produced by `tapedeck run` on a scripted model: the exit code
//! (0 for `ok`, 1 for any other), and the recorded run — stop reason, status, the events in
//! order, the policy decisions with their rules, `budget_exceeded`. The gateway's stop reasons
//! are in `gateway.rs`, the kill switch's in `kill_switch.rs`, model errors and interrupts in
//! `interrupted.rs`; the helpers here serve them all.

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
pub fn calls_forever(tool: &str) -> String {
    format!("responses:\n  - tool_calls: [{{name: {tool}}}]\nrepeat_last: true\n")
}

/// An expensive tool that always fails, as the incident's browser does, costing `cost` a call.
pub fn browser(cost: f64) -> String {
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
pub const FREE_MODEL: &str = "pricing: {test-model: {input_per_mtok: 0, output_per_mtok: 0}}\n";

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
