//! Every JSON document tapedeck prints for scripts, pinned whole: `ls`, `show`, `stats`,
//! `config check`, `compare` and `replay` (one run, a folder of tapes) with `--json`, `diff
//! --format json`, and `golden check --json FILE`. Each is one object that opens with its
//! `format` and `version`; a snapshot that changes here means a field changed, and the
//! format's version in `crates/tapedeck-cli/src/json_output.rs` must be bumped with it.

use std::path::{Path, PathBuf};
use tapedeck_testkit::on_both_stores;

use assert_cmd::Command;
use serde_json::Value;
use tapedeck_testkit::snapshot::insta_settings;

use crate::{CLEAN, Env, TOOL_DENIED, stdout};

/// Runs `cmd`, checks that it exited `code` with nothing on stderr and printed one document of
/// `format`, version 1 (every format's so far), opening with those two keys; returns what it
/// printed.
fn document(cmd: &mut Command, code: i32, format: &str) -> String {
    let output = cmd.output().expect("tapedeck runs");
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert_eq!(stderr, "", "expected nothing on stderr");
    check_header(&stdout, format);
    stdout
}

/// Checks that `text` is one JSON object opening with `"format": format, "version": 1`.
fn check_header(text: &str, format: &str) {
    let value: Value = serde_json::from_str(text).expect("one JSON document");
    assert!(value.is_object(), "not an object:\n{text}");
    assert_eq!(value["format"], format, "{text}");
    assert_eq!(value["version"], 1, "{text}");
    let opening = format!("{{\n  \"format\": \"{format}\",\n  \"version\": 1,\n");
    assert!(text.starts_with(&opening), "{text}");
}

/// The fixture agents' folder.
fn agents() -> PathBuf {
    tapedeck_testkit::fixtures_dir().join("agents")
}

/// The project's filters, plus `[LATENCY]` for the wall-clock latencies of runs replayed just
/// now (the baselines' are fixed, but one filter over the document keeps it simple).
fn with_latencies_filtered() -> insta::Settings {
    let mut settings = insta_settings();
    settings.add_filter(r#""latency_ms": \d+"#, r#""latency_ms": "[LATENCY]""#);
    settings.add_filter(
        r#""step_latencies_ms": \[[^\]]*\]"#,
        r#""step_latencies_ms": "[LATENCIES]""#,
    );
    // The diff's latency rows: figures and change, the rest of the row kept.
    settings.add_filter(
        r#"("metric": "latency_p(?:50|95)_ms",\s*"baseline": )"\d+",(\s*"candidate": )"\d+",(\s*"change": )[^,]+,"#,
        r#"${1}"[LATENCY]",${2}"[LATENCY]",${3}"[CHANGE]","#,
    );
    settings
}

on_both_stores! {
    fn ls(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = document(env.tapedeck().args(["ls", "--json"]), 0, "tapedeck-runs");
        insta_settings().bind(|| insta::assert_snapshot!("json_ls", out));
        // No runs is an empty list, in the same document.
        let out = document(
            env.tapedeck().args(["ls", "--json", "--task", "nope"]),
            0,
            "tapedeck-runs",
        );
        insta::assert_snapshot!(out, @r#"
        {
          "format": "tapedeck-runs",
          "version": 1,
          "runs": []
        }
        "#);
    }
}

on_both_stores! {
    fn ls_without_a_store(backend) {
        let env = Env::on(backend);
        let out = document(env.tapedeck().args(["ls", "--json"]), 0, "tapedeck-runs");
        let listing: Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(listing["runs"], Value::Array(Vec::new()));
        assert!(
            !env.store().exists(),
            "`ls --json` must not create the store"
        );
    }
}

on_both_stores! {
    fn show(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = document(
            env.tapedeck().args(["show", CLEAN, "--json"]),
            0,
            "tapedeck-run",
        );
        insta_settings().bind(|| insta::assert_snapshot!("json_show", out));
    }
}

on_both_stores! {
    fn stats(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = document(
            env.tapedeck().args(["stats", "--all", "--json"]),
            0,
            "tapedeck-stats",
        );
        insta_settings().bind(|| insta::assert_snapshot!("json_stats", out));
        // A store with no runs in the window: no agents, in the same document.
        let out = document(
            env.tapedeck()
                .args(["stats", "--since", "2999-01-01", "--json"]),
            0,
            "tapedeck-stats",
        );
        let report: Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(report["agents"], Value::Array(Vec::new()));
    }
}

on_both_stores! {
    fn config_check(backend) {
        let env = Env::on(backend);
        let out = document(
            env.tapedeck()
                .args(["config", "check", "--json"])
                .arg(agents().join("support-bot.yaml")),
            0,
            "tapedeck-config",
        );
        insta_settings().bind(|| insta::assert_snapshot!("json_config", out));
    }
}

on_both_stores! {
    fn diff(backend) {
        let env = Env::with_fixtures_on(backend);
        // Drift (exit 1) prints the same document as none.
        let out = document(
            env.tapedeck()
                .args(["diff", CLEAN, TOOL_DENIED, "--format", "json"]),
            1,
            "tapedeck-diff",
        );
        insta_settings().bind(|| insta::assert_snapshot!("json_diff", out));
        // `-o FILE` writes the same document.
        let written = env
            .tapedeck()
            .args(["diff", CLEAN, TOOL_DENIED, "--format", "json"])
            .args(["-o", "diff.json"])
            .output()
            .expect("tapedeck runs");
        assert_eq!(written.status.code(), Some(1), "{written:?}");
        assert!(written.stdout.is_empty(), "{written:?}");
        let file = std::fs::read_to_string(env.path("diff.json")).expect("diff.json");
        assert_eq!(file, out);
    }
}

/// Records `n` runs of the fixture agent `agent` on the password question, labelled
/// `v=<label>`.
fn record(env: &Env, agent: &str, label: &str, n: usize) {
    for _ in 0..n {
        let out = env
            .tapedeck()
            .arg("run")
            .arg(agents().join(agent))
            .args(["--input", "How do I reset my password?", "--task", "pw"])
            .args(["--label", &format!("v={label}")])
            .output()
            .expect("tapedeck runs");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
}

on_both_stores! {
    fn compare(backend) {
        let env = Env::on(backend);
        record(&env, "support-bot.yaml", "a", 5);
        record(&env, "support-bot-drift.yaml", "b", 5);
        let out = document(
            env.tapedeck().args([
                "compare",
                "--baseline",
                "label:v=a",
                "--candidate",
                "label:v=b",
                "--json",
            ]),
            1,
            "tapedeck-compare",
        );
        insta_settings().bind(|| insta::assert_snapshot!("json_compare", out));
    }
}

/// The shipped `golden/support` suite (its tapes replay: the fixture tapes' hand-written agent
/// configs do not load).
fn support_suite() -> PathBuf {
    tapedeck_testkit::fixtures_dir()
        .parent()
        .expect("fixtures/ is in the workspace root")
        .join("golden/support")
}

/// The baseline tape of a task of `golden/support`.
fn support_tape(task: &str) -> PathBuf {
    support_suite().join("tapes").join(task).join("1.jsonl")
}

on_both_stores! {
    fn replay(backend) {
        let env = Env::on(backend);
        let imported = stdout(
            env.tapedeck()
                .arg("import")
                .arg(support_tape("password-reset")),
        );
        let short = imported
            .strip_prefix("imported ")
            .and_then(|rest| rest.split_whitespace().next())
            .expect("`imported <short id> (…`");
        let out = document(
            env.tapedeck().args(["replay", short, "--json"]),
            0,
            "tapedeck-replay",
        );
        with_latencies_filtered().bind(|| insta::assert_snapshot!("json_replay", out));
    }
}

on_both_stores! {
    fn replay_of_a_folder_of_tapes(backend) {
        let env = Env::on(backend);
        let tapes = env.path("tapes");
        std::fs::create_dir_all(&tapes).expect("the tapes folder");
        for task in ["password-reset", "webhook-test"] {
            std::fs::copy(support_tape(task), tapes.join(format!("{task}.jsonl")))
                .expect("copy a tape");
        }
        // The webhook task ends `tool_denied:http.post`, as recorded: a stop for another reason
        // than `ok` (exit 1), printed in the same document.
        let out = document(
            env.tapedeck()
                .args(["replay", "--tapes", "tapes", "--json", "--agent"])
                .arg(support_suite().join("agent/support-bot.yaml")),
            1,
            "tapedeck-replays",
        );
        let replays: Value = serde_json::from_str(&out).expect("JSON");
        let tasks: Vec<&str> = replays["replays"]
            .as_array()
            .expect("a list under `replays`")
            .iter()
            .map(|r| r["parent"]["task"].as_str().expect("a task"))
            .collect();
        // In the tapes' order.
        assert_eq!(tasks, ["password-reset", "webhook-test"]);
        with_latencies_filtered().bind(|| insta::assert_snapshot!("json_replays", out));
    }
}

/// A one-task suite under `env`: the `password-reset` task of `golden/support`, with its agent,
/// baseline tape and snapshot.
fn one_task_suite(env: &Env) -> PathBuf {
    let shipped = support_suite();
    let suite = env.path("suite");
    let copy = |file: &str| {
        let target = suite.join(file);
        std::fs::create_dir_all(target.parent().unwrap_or(Path::new("."))).expect("a folder");
        std::fs::copy(shipped.join(file), target).expect("copy a suite file");
    };
    for file in [
        "agent/support-bot.yaml",
        "agent/support-bot.script.yaml",
        "agent/approvals.yaml",
        "tapes/password-reset/1.jsonl",
        "snapshots/password-reset.snap",
    ] {
        copy(file);
    }
    std::fs::write(
        suite.join("suite.yaml"),
        "agent: agent/support-bot.yaml\ntasks:\n- id: password-reset\n  input: How do I reset my password?\n",
    )
    .expect("suite.yaml");
    suite
}

on_both_stores! {
    fn golden_check(backend) {
        let env = Env::on(backend);
        one_task_suite(&env);
        stdout(
            env.tapedeck()
                .args(["golden", "check", "suite", "--json", "check.json"]),
        );
        let out = std::fs::read_to_string(env.path("check.json")).expect("check.json");
        check_header(&out, "tapedeck-golden-check");
        with_latencies_filtered().bind(|| insta::assert_snapshot!("json_golden_check", out));
    }
}
