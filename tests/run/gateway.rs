//! The stop reasons of the tool gateway, each from `tapedeck run` on a scripted model: a tool
//! denied (not allowed, or allowed but not defined), a write's approval denied or given, a tool
//! output that fails validation (stopping the run or fed back), a tool error the policy stops on.

use tapedeck_testkit::on_both_stores;

use crate::{Env, decision};

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
