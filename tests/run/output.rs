//! What `tapedeck run` prints, snapshotted: the answer, the status line with the stop reason
//! and totals, the reason of a stopped run, and the run id to `show` (the short id is fresh on
//! every run: it becomes `[ID]`).

use tapedeck_testkit::on_both_stores;
use tapedeck_testkit::snapshot::insta_settings;

use crate::stop_reasons::KB;
use crate::{Env, Outcome};

/// `out`'s stdout with the run's short id filtered, snapshotted as `name`.
fn snapshot(env: &Env, name: &str, out: &Outcome) {
    let id = env.last_id();
    let mut settings = insta_settings();
    settings.add_filter(&format!(r"\b{id}\b"), "[ID]");
    settings.bind(|| insta::assert_snapshot!(name, out.stdout));
}

on_both_stores! {
    fn ok_run(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - tool_calls: [{name: kb.read, arguments: {article: password-reset}}]
                usage: {input_tokens: 120, output_tokens: 14}
              - content: "Open Settings > Security and choose Reset password."
                usage: {input_tokens: 180, output_tokens: 12}
            "#,
            &[
                KB,
                "pricing: {test-model: {input_per_mtok: 0.40, output_per_mtok: 1.60}}\n",
            ],
        );
        let out = env.run("How do I reset my password?");
        out.expect_code(0);
        assert_eq!(out.stderr, "");
        snapshot(&env, "run_ok", &out);
    }
}

on_both_stores! {
    fn stopped_run(backend) {
        let env = Env::on(backend);
        env.scripted(
            r#"
            responses:
              - content: "Checking the status page."
                tool_calls: [{name: browser.open, arguments: {url: "https://status.acme.example"}}]
                usage: {input_tokens: 200, output_tokens: 20}
            repeat_last: true
            "#,
            &[r#"
                tools:
                  allow: [browser.open]
                  defs:
                    - name: browser.open
                      kind: expensive
                      cost_usd: 0.72
                      builtin: mock
                      mock: [{error: "HTTP 503 Service Unavailable"}]
                budgets: {max_tool_calls: 15}
                degrade: {after_errors: 0}
                pricing: {test-model: {input_per_mtok: 0.40, output_per_mtok: 1.60}}
                "#],
        );
        let out = env.run("Is the Acme payments API healthy right now?");
        out.expect_code(1);
        snapshot(&env, "run_stopped", &out);
    }
}

on_both_stores! {
    fn stopped_run_with_a_reason(backend) {
        let env = Env::on(backend);
        env.scripted(
            "[{tool_calls: [{name: http.post, arguments: {url: \"https://hooks.example.com\"}}]}]",
            &[KB],
        );
        let out = env.run("Send a test event to our webhook.");
        out.expect_code(1);
        snapshot(&env, "run_tool_denied", &out);
    }
}
