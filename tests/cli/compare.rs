//! `tapedeck compare`: groups of stored runs compared as distributions — no drift between two
//! samples of one agent version, drift when a version calls one more tool per task, and the
//! refusal of a sample too small ever to reach the significance level.

use std::path::Path;
use tapedeck_testkit::on_both_stores;

use serde_json::Value;

use crate::{Env, input_error, stdout};

/// Records `n` runs of `agent` (a file of `fixtures/agents/`) on `input`, labelled `v=<label>`.
fn record(env: &Env, agent: &Path, input: &str, task: &str, label: &str, n: usize) {
    for _ in 0..n {
        let out = env
            .tapedeck()
            .args(["run"])
            .arg(agent)
            .args([
                "--input",
                input,
                "--task",
                task,
                "--label",
                &format!("v={label}"),
            ])
            .output()
            .expect("tapedeck runs");
        assert!(out.status.code().is_some_and(|c| c <= 1), "{out:?}");
    }
}

fn agents() -> (std::path::PathBuf, std::path::PathBuf) {
    (
        tapedeck_testkit::fixtures_dir().join("agents/support-bot.yaml"),
        tapedeck_testkit::fixtures_dir().join("agents/support-bot-drift.yaml"),
    )
}

on_both_stores! {
    fn the_same_version_twice_shows_no_drift(backend) {
        let env = Env::on(backend);
        let (agent, _) = agents();
        record(&env, &agent, "How do I reset my password?", "pw", "a", 5);
        record(&env, &agent, "How do I reset my password?", "pw", "b", 5);
        let out = stdout(env.tapedeck().args([
            "compare",
            "--baseline",
            "label:v=a",
            "--candidate",
            "label:v=b",
        ]));
        assert!(
            out.starts_with("no drift: 5 baseline runs against 5 candidate runs, paired by task"),
            "{out}"
        );
    }
}

on_both_stores! {
    fn one_more_tool_call_per_run_is_drift(backend) {
        let env = Env::on(backend);
        let (agent, drift) = agents();
        record(&env, &agent, "How do I reset my password?", "pw", "a", 5);
        record(&env, &drift, "How do I reset my password?", "pw", "b", 5);
        let out = env
            .tapedeck()
            .args([
                "compare",
                "--baseline",
                "label:v=a",
                "--candidate",
                "label:v=b",
                "--json",
            ])
            .output()
            .expect("tapedeck runs");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let result: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(result["drift"], true);
        assert_eq!(result["paired_by_task"], true);
        let tool_calls = result["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .find(|t| t["metric"] == "tool_calls")
            .expect("a tool_calls test");
        assert_eq!(tool_calls["verdict"], "drift");
        assert_eq!(tool_calls["baseline_mean"], 2.0);
        assert_eq!(tool_calls["candidate_mean"], 3.0);
        // Two fully separated groups of five: the exact two-sided p is 2/252.
        let p = tool_calls["p"].as_f64().expect("p");
        assert!((p - 2.0 / 252.0).abs() < 1e-12, "{p}");
        assert_eq!(tool_calls["effect"], 1.0);
    }
}

on_both_stores! {
    fn a_sample_too_small_is_refused_with_the_smallest_n(backend) {
        let env = Env::on(backend);
        let (agent, drift) = agents();
        record(&env, &agent, "How do I reset my password?", "pw", "a", 3);
        record(&env, &drift, "How do I reset my password?", "pw", "b", 3);
        let err = input_error(env.tapedeck().args([
            "compare",
            "--baseline",
            "label:v=a",
            "--candidate",
            "label:v=b",
        ]));
        assert!(
            err.contains("3 runs per side can never reach significance level 0.05"),
            "{err}"
        );
        assert!(err.contains("the smallest N that can is 5"), "{err}");
        // Regression: the advice was "rerun with --repeat 5", a flag `compare` does not have.
        assert!(!err.contains("--repeat"), "{err}");
        assert!(
            err.ends_with(
                ": select at least 5 runs on each side (widen --baseline/--candidate, or record more runs)"
            ),
            "{err}"
        );
    }
}

on_both_stores! {
    fn bad_selectors_are_input_errors(backend) {
        let env = Env::on(backend);
        let (agent, _) = agents();
        record(&env, &agent, "How do I reset my password?", "pw", "a", 1);
        let err = input_error(env.tapedeck().args([
            "compare",
            "--baseline",
            "lable:v=a",
            "--candidate",
            "label:v=a",
        ]));
        assert!(err.contains("unknown key `lable`"), "{err}");
        let err = input_error(env.tapedeck().args([
            "compare",
            "--baseline",
            "label:v=a",
            "--candidate",
            "label:v=zzz",
        ]));
        assert!(err.contains("nothing to compare"), "{err}");
    }
}
