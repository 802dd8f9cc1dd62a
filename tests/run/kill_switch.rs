//! The kill switch: a run stopped by `kill_switch` at its start, or by a kill-switch file created
//! mid-run, which stops the next tool call or, with `disable_writes`, refuses a later write.

use tapedeck_testkit::on_both_stores;

use crate::stop_reasons::KB;
use crate::{Env, decision};

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
