//! `golden check --repeat N`: the shipped `golden/noisy` suite (three tasks whose scripted
//! answers are a seeded `one_of` of two phrasings, five baseline runs each) compared as
//! distributions. A no-op change raises no drift despite the noise; one extra tool call per
//! task (served `reused` by the replay) does; an N too small to reach alpha and missing
//! repetition tapes are refused with exit 2.

use serde_json::Value;

use crate::{Env, assert_exit, assert_input_error, copy_dir, root, runs_listed, task_results};

/// The candidate that repeats each task's search once (relative to a test's folder).
const EXTRA_CALL: &str = "candidates/noisy-bot-extra-call.yaml";

/// The noisy suite's tasks, in file order.
const TASKS: [&str; 3] = ["password-reset", "account-locked", "shipping-times"];

/// An [`Env`] that also holds `golden/noisy` and the extra-call candidate.
fn env() -> Env {
    let env = Env::new();
    copy_dir(
        &root().join("golden").join("noisy"),
        &env.path("golden/noisy"),
    );
    let candidates = env.path("candidates");
    std::fs::create_dir_all(&candidates).expect("create candidates/");
    for file in [
        "noisy-bot-extra-call.yaml",
        "noisy-bot-extra-call.script.yaml",
    ] {
        std::fs::copy(
            tapedeck_testkit::fixtures_dir().join("agents").join(file),
            candidates.join(file),
        )
        .expect("copy the candidate");
    }
    env
}

fn settings() -> insta::Settings {
    let mut settings = tapedeck_testkit::snapshot::insta_settings();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    settings
}

#[test]
fn shipped_noisy_suite_holds_five_varied_repetitions() {
    let env = env();
    for task in TASKS {
        let dir = env.path(&format!("golden/noisy/tapes/{task}"));
        for n in 1..=5 {
            assert!(dir.join(format!("{n}.jsonl")).is_file(), "{task}/{n}.jsonl");
        }
    }
    // The seeded noise is real: the answers differ between the repetitions of some task.
    let varied = TASKS.iter().any(|task| {
        let answers: std::collections::BTreeSet<String> = (1..=5)
            .map(|n| {
                let text = std::fs::read_to_string(
                    env.path(&format!("golden/noisy/tapes/{task}/{n}.jsonl")),
                )
                .expect("a tape");
                let head: Value =
                    serde_json::from_str(text.lines().next().expect("a header")).expect("JSON");
                head["run"]["answer"]
                    .as_str()
                    .expect("an answer")
                    .to_owned()
            })
            .collect();
        answers.len() > 1
    });
    assert!(varied, "the noisy suite's repetitions do not vary");
}

#[test]
fn no_op_change_with_seeded_noise_raises_no_drift_at_n5() {
    let env = env();
    let result = env.golden(&["check", "golden/noisy", "--repeat", "5", "--json", "r.json"]);
    assert_exit(&result, 0);
    assert!(
        result
            .1
            .contains("no drift: 3 tasks of suite `noisy` pass, 5 runs per task and side"),
        "{}",
        result.1
    );
    assert!(
        result.1.contains("α = 0.1, Holm correction over 12 tests"),
        "{}",
        result.1
    );
    assert!(env.pending("noisy").is_empty());
    let results = task_results(&std::fs::read_to_string(env.path("r.json")).expect("JSON"));
    assert_eq!(results.len(), 3);
    for r in &results {
        assert_eq!(r["verdict"], "pass");
        assert_eq!(r["repeat"], 5);
        let tests = r["tests"].as_array().expect("tests");
        assert_eq!(tests.len(), 4, "{r}");
        assert!(tests.iter().all(|t| t["n"] == serde_json::json!([5, 5])));
    }
}

#[test]
fn one_extra_tool_call_per_task_is_flagged_at_n5() {
    let env = env();
    let result = env.golden(&[
        "check",
        "golden/noisy",
        "--repeat",
        "5",
        "--agent",
        EXTRA_CALL,
        "--json",
        "r.json",
        "--markdown",
        "r.md",
        "--junit",
        "junit.xml",
        "--html",
        "r.html",
    ]);
    assert_exit(&result, 1);
    let mut tasks = TASKS.map(str::to_owned).to_vec();
    tasks.sort();
    assert_eq!(env.pending("noisy"), tasks);
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!("repeat_drift_text", result.1);

    let results = task_results(&std::fs::read_to_string(env.path("r.json")).expect("JSON"));
    for r in &results {
        assert_eq!(r["verdict"], "drift", "{r}");
        let tool_calls = r["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .find(|t| t["metric"] == "tool_calls")
            .expect("a tool_calls test");
        assert_eq!(tool_calls["verdict"], "drift");
        assert_eq!(tool_calls["baseline_mean"], 2.0);
        assert_eq!(tool_calls["candidate_mean"], 3.0);
        assert!(tool_calls["p"].as_f64().expect("p") < 0.008);
        assert!(tool_calls["p_adjusted"].as_f64().expect("p adjusted") <= 0.1);
    }
    // The repeated search was answered from the tape: `reused`.
    let candidate = results[0]["diff"]["candidate"]["id"]
        .as_str()
        .expect("the candidate run's id");
    let shown = env
        .tapedeck()
        .args(["show", candidate])
        .output()
        .expect("tapedeck show runs");
    let shown = String::from_utf8(shown.stdout).expect("UTF-8");
    assert!(shown.contains("reused"), "{shown}");

    let markdown = std::fs::read_to_string(env.path("r.md")).expect("the Markdown report");
    assert!(
        markdown.contains("| tool_calls | 2 | 3 | +50% | +1.00 | 0.0952 | 0.0079 | **drift** |"),
        "{markdown}"
    );
    let junit = std::fs::read_to_string(env.path("junit.xml")).expect("the JUnit report");
    assert_eq!(junit.matches("<failure type=\"drift\"").count(), 3);
    assert!(junit.contains("p 0.0952 adjusted (0.0079 raw)"), "{junit}");
    let html = std::fs::read_to_string(env.path("r.html")).expect("the HTML report");
    assert_eq!(html.matches("<h2>Statistics</h2>").count(), 3);
    assert!(html.contains("<td>0.0952</td><td>0.0079</td>"), "{html}");
}

#[test]
fn an_n_too_small_to_reach_alpha_is_refused_with_the_smallest_n() {
    let env = env();
    let result = env.golden(&["check", "golden/noisy", "--repeat", "2"]);
    assert_input_error(
        &result,
        &[
            "2 runs per side can never reach significance level 0.1 over 12 tests",
            "the smallest N that can is 5",
        ],
    );
    assert!(env.pending("noisy").is_empty());
}

#[test]
fn missing_repetition_tapes_are_refused() {
    let env = env();
    std::fs::remove_file(env.path("golden/noisy/tapes/account-locked/4.jsonl"))
        .expect("remove a tape");
    let result = env.golden(&["check", "golden/noisy"]);
    assert_input_error(
        &result,
        &[
            "task `account-locked` has 3 baseline runs but the check needs 5",
            "golden record golden/noisy --repeat 5",
        ],
    );
    // A suite recorded once, checked with --repeat: the same refusal.
    let result = env.golden(&["check", "golden/support", "--repeat", "3"]);
    assert_input_error(
        &result,
        &["task `password-reset` has 1 baseline run but the check needs 3"],
    );
}

#[test]
fn record_with_repeat_writes_n_tapes_and_one_snapshot() {
    let env = env();
    let result = env.golden(&["record", "golden/research", "capabilities", "--repeat", "3"]);
    assert_exit(&result, 0);
    assert!(
        result
            .1
            .contains("recorded 1 task × 3 runs of suite `research`"),
        "{}",
        result.1
    );
    let dir = env.path("golden/research/tapes/capabilities");
    for n in 1..=3 {
        assert!(dir.join(format!("{n}.jsonl")).is_file(), "{n}.jsonl");
    }
    // Recording fewer runs again drops the tapes of the longer recording.
    assert_exit(
        &env.golden(&["record", "golden/research", "capabilities"]),
        0,
    );
    assert!(dir.join("1.jsonl").is_file() && !dir.join("2.jsonl").exists());
}

/// Regression: `golden record --repeat 5` wrote each run's seed into its recorded agent
/// config, so one agent version showed as five fingerprints in `stats`.
#[test]
fn record_with_repeat_is_one_agent_version() {
    let env = env();
    assert_exit(&env.golden(&["record", "golden/noisy", "--repeat", "5"]), 0);
    let fingerprints = || {
        let out = env
            .tapedeck()
            .args(["stats", "--all", "--json"])
            .output()
            .expect("tapedeck stats runs");
        let report: Value = serde_json::from_slice(&out.stdout).expect("stats --json");
        report["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|a| a["fingerprint"].as_str().expect("a fingerprint").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(fingerprints().len(), 1, "{:?}", fingerprints());
    // The repetition is a label of the run, and its seed still varies the answers.
    let head = |n: usize| -> Value {
        let text = std::fs::read_to_string(
            env.path(&format!("golden/noisy/tapes/password-reset/{n}.jsonl")),
        )
        .expect("a tape");
        serde_json::from_str(text.lines().next().expect("a header")).expect("JSON")
    };
    assert_eq!(head(3)["run"]["labels"]["repeat"], "3");
    // The replays of the check get each baseline's seed back: no drift, and still one version.
    let result = env.golden(&["check", "golden/noisy"]);
    assert_exit(&result, 0);
    assert_eq!(fingerprints().len(), 1, "{:?}", fingerprints());
}

/// A replay of repetition N with the agent version (`tapedeck replay RUN --agent`) gives the
/// scripted model the seed run N was recorded with, read from its `repeat=N` label: its answer
/// is the recorded one, not that of repetition 1.
#[test]
fn replay_of_a_repetition_gets_its_recorded_seed() {
    let env = env();
    let tapes: Vec<String> = (1..=5)
        .map(|n| format!("golden/noisy/tapes/password-reset/{n}.jsonl"))
        .collect();
    let import = env
        .tapedeck()
        .arg("import")
        .args(&tapes)
        .output()
        .expect("tapedeck import runs");
    assert!(import.status.success());
    let runs = || -> Vec<Value> {
        let out = env
            .tapedeck()
            .args(["ls", "--json"])
            .output()
            .expect("tapedeck ls runs");
        runs_listed(&out.stdout)
    };
    let recorded = runs();
    let answer_of = |n: &str| {
        recorded
            .iter()
            .find(|r| r["labels"]["repeat"] == n)
            .map(|r| (r["id"].clone(), r["answer"].clone()))
            .expect("the repetition")
    };
    let (_, first) = answer_of("1");
    // A repetition whose seeded choice differs from the first one's.
    let (id, answer) = (2..=5)
        .map(|n| answer_of(&n.to_string()))
        .find(|(_, a)| *a != first)
        .expect("a repetition answers differently");
    let id = id.as_str().expect("an id");
    let replay = env
        .tapedeck()
        .args(["replay", id, "--agent", "golden/noisy/agent/noisy-bot.yaml"])
        .output()
        .expect("tapedeck replay runs");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replayed = runs()
        .into_iter()
        .find(|r| r["parent"] == id)
        .expect("the replay run");
    assert_eq!(replayed["answer"], answer);
}
