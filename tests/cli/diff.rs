//! `tapedeck diff A B`: metric deltas against tolerances, the aligned tool-call trajectories
//! with their first divergence, the answer diff — as text, JSON, Markdown and HTML — and the
//! exit code that tells drift (1) from none (0).

use serde_json::Value;
use tapedeck_testkit::on_both_stores;
use tapedeck_testkit::snapshot::insta_settings;

use crate::{CLEAN, Env, TOOL_DENIED, input_error, stdout};

on_both_stores! {
    fn a_run_against_itself_has_no_drift(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["diff", CLEAN, CLEAN]));
        assert!(
            out.starts_with(&format!("no drift: baseline {CLEAN} → candidate {CLEAN}")),
            "{out}"
        );
        assert!(out.contains("tool calls\n  the same call\n"), "{out}");
        assert!(out.contains("answer (similarity 1.00)"), "{out}");
    }
}

on_both_stores! {
    fn a_different_stop_reason_and_answer_are_drift(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = env
            .tapedeck()
            .args(["diff", CLEAN, TOOL_DENIED])
            .output()
            .expect("tapedeck runs");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        insta_settings().bind(|| insta::assert_snapshot!("diff_text", text));
    }
}

on_both_stores! {
    fn json_markdown_and_html(backend) {
        let env = Env::with_fixtures_on(backend);
        let json = env
            .tapedeck()
            .args(["diff", CLEAN, TOOL_DENIED, "--format", "json"])
            .output()
            .expect("tapedeck runs");
        assert_eq!(json.status.code(), Some(1));
        let diff: Value = serde_json::from_slice(&json.stdout).expect("JSON");
        assert_eq!(diff["drift"], true);
        let verdict = |metric: &str| {
            diff["metrics"]
                .as_array()
                .expect("metrics")
                .iter()
                .find(|m| m["metric"] == metric)
                .map(|m| m["verdict"].clone())
        };
        assert_eq!(verdict("stop_reason"), Some(Value::from("drift")));
        assert_eq!(verdict("tool_calls[http.post]"), Some(Value::from("drift")));
        assert_eq!(diff["first_divergence"]["expected"]["tool"], "kb.read");
        assert_eq!(diff["first_divergence"]["actual"]["tool"], "http.post");
        insta_settings().bind(|| insta::assert_json_snapshot!("diff_json_metrics", diff["metrics"]));

        let md = stdout_any(
            env.tapedeck()
                .args(["diff", CLEAN, TOOL_DENIED, "--format", "md"]),
        );
        insta_settings().bind(|| insta::assert_snapshot!("diff_markdown", md));

        let page = env.path("diff.html");
        let out = env
            .tapedeck()
            .args(["diff", CLEAN, TOOL_DENIED, "--format", "html", "-o"])
            .arg(&page)
            .output()
            .expect("tapedeck runs");
        assert_eq!(out.status.code(), Some(1));
        let html = std::fs::read_to_string(&page).expect("the page is written");
        assert!(html.starts_with("<!doctype html>"), "{html}");
        assert!(
            html.contains("<tr class=\"drift\"><td>stop_reason</td>"),
            "{html}"
        );
        assert!(
            !html.contains("<script"),
            "self-contained, nothing to load or run"
        );
    }
}

on_both_stores! {
    fn tolerances_can_be_widened_and_misspelled_keys_are_named(backend) {
        let env = Env::with_fixtures_on(backend);
        // The same run with wide tolerances is still no drift; a misspelled key is an input error
        // that names the right one.
        stdout(
            env.tapedeck()
                .args(["diff", CLEAN, CLEAN, "--tolerance", "tool_calls=+50%"]),
        );
        let err =
            input_error(
                env.tapedeck()
                    .args(["diff", CLEAN, CLEAN, "--tolerance", "tool_cals=+50%"]),
            );
        assert!(
            err.contains("unknown tolerance `tool_cals`; did you mean `tool_calls`?"),
            "{err}"
        );
        let err = input_error(
            env.tapedeck()
                .args(["diff", CLEAN, CLEAN, "-t", "answer_similarity=2"]),
        );
        assert!(err.contains("expected a ratio from 0 to 1"), "{err}");
        input_error(env.tapedeck().args(["diff", CLEAN, "ffffffff"]));
    }
}

/// Stdout of a command whatever its exit code (drift exits 1).
fn stdout_any(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().expect("tapedeck runs");
    String::from_utf8(out.stdout).expect("UTF-8")
}
