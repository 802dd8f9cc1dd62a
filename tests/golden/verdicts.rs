//! Verdicts follow the tolerances, and a check that fails never looks green: a snapshot change
//! within every tolerance passes as "changed within tolerance" (failing only with
//! `--strict-snapshots`), a task that cannot replay is an error in every report (exit 1), and
//! a suite with an unreadable tape is refused (exit 2) before anything is written.

use crate::{Env, assert_exit, assert_input_error, runs_listed, task_results};

/// The suite's agent with one sentence added to its system prompt: every task's input grows
/// by about five tokens per step, within the +15 % token tolerance, but `out-of-scope` moves
/// from 60 to 65 tokens, across its snapshot's bucket edge (`32-63` → `64-127`).
const POLITE: &str = "golden/support/agent/polite.yaml";

/// An [`Env`] with the polite candidate next to the suite's own agent (its script and
/// approvals resolve there).
fn env() -> Env {
    let env = Env::new();
    let text = std::fs::read_to_string(env.path("golden/support/agent/support-bot.yaml"))
        .expect("read the agent");
    let from = "article you used. Never change";
    assert!(text.contains(from), "the system prompt moved");
    std::fs::write(
        env.path(POLITE),
        text.replace(from, "article you used. Be brief and polite. Never change"),
    )
    .expect("write the candidate");
    env
}

fn read(env: &Env, name: &str) -> String {
    std::fs::read_to_string(env.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// Regression: one sentence added to the system prompt moved `out-of-scope` from 60 to 65
/// tokens (+8 %, tolerance +15 %) and it was reported DRIFT because the snapshot's token bucket
/// moved.
#[test]
fn change_within_tolerance_across_a_bucket_edge_passes_with_a_pending_snapshot() {
    let env = env();
    let result = env.golden(&[
        "check",
        "golden/support",
        "--agent",
        POLITE,
        "--json",
        "r.json",
        "--junit",
        "junit.xml",
        "--markdown",
        "r.md",
        "--html",
        "r.html",
    ]);
    assert_exit(&result, 0);
    assert_eq!(env.pending("support"), ["out-of-scope"]);
    let out = &result.1;
    assert!(
        out.contains("out-of-scope: changed within tolerance")
            && out
                .contains("no drift: 12 tasks of suite `support` pass, 1 changed within tolerance"),
        "{out}"
    );
    let pending = read(&env, "golden/support/snapshots/out-of-scope.snap.new");
    assert!(pending.contains("tokens: 64-127"), "{pending}");

    let results = task_results(&read(&env, "r.json"));
    let verdict = |task: &str| {
        results
            .iter()
            .find(|r| r["task"] == task)
            .map(|r| r["verdict"].clone())
    };
    assert_eq!(verdict("out-of-scope"), Some("changed".into()));
    assert_eq!(verdict("refund-policy"), Some("pass".into()));

    let junit = read(&env, "junit.xml");
    let doc = roxmltree::Document::parse(&junit).expect("the JUnit report is XML");
    let root = doc.root_element();
    assert_eq!(
        (root.attribute("failures"), root.attribute("errors")),
        (Some("0"), Some("0"))
    );
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some("out-of-scope"))
        .expect("the task's testcase");
    let out = case
        .children()
        .find(|n| n.has_tag_name("system-out"))
        .and_then(|n| n.text())
        .expect("its system-out");
    assert!(
        out.contains("changed within tolerance") && out.contains("+tokens: 64-127"),
        "{out}"
    );
    let markdown = read(&env, "r.md");
    assert!(
        markdown.contains("| `out-of-scope` | changed within tolerance |"),
        "{markdown}"
    );
    let html = read(&env, "r.html");
    assert!(
        html.contains("<span class=\"changed\">changed within tolerance</span>"),
        "{html}"
    );
}

#[test]
fn strict_snapshots_fail_on_a_change_within_tolerance() {
    let env = env();
    let result = env.golden(&[
        "check",
        "golden/support",
        "--agent",
        POLITE,
        "--strict-snapshots",
    ]);
    assert_exit(&result, 1);
    assert_eq!(env.pending("support"), ["out-of-scope"]);
    assert!(
        result
            .1
            .contains("the behaviour snapshot differs (--strict-snapshots)")
            && result.1.contains("drift in 1 of 12 tasks"),
        "{}",
        result.1
    );
}

#[test]
fn the_same_change_beyond_a_tighter_tolerance_drifts() {
    let env = env();
    let suite = env.path("golden/support/suite.yaml");
    let text = std::fs::read_to_string(&suite).expect("read suite.yaml");
    let from = "- id: out-of-scope\n";
    assert!(text.contains(from));
    std::fs::write(
        &suite,
        text.replace(from, &format!("{from}  tolerances: {{tokens: +5%}}\n")),
    )
    .expect("write suite.yaml");
    let result = env.golden(&["check", "golden/support", "--agent", POLITE]);
    assert_exit(&result, 1);
    assert!(
        result.1.contains("tokens: 60 → 65 (+8%, tolerance +5%)")
            && result.1.contains("drift in 1 of 12 tasks"),
        "{}",
        result.1
    );
}

/// Regression: a truncated tape in the middle of a suite was found only when its task's turn
/// came, after the tapes before it had been imported and replayed (runs in the store), and the
/// check then exited 2.
#[test]
fn truncated_tape_is_refused_before_anything_is_written() {
    let env = env();
    let tape = env.path("golden/support/tapes/refund-policy/1.jsonl");
    let text = std::fs::read_to_string(&tape).expect("read the tape");
    std::fs::write(&tape, &text[..text.len() * 2 / 3]).expect("truncate the tape");
    let result = env.golden(&[
        "check",
        "golden/support",
        "--junit",
        "junit.xml",
        "--markdown",
        "r.md",
        "--json",
        "r.json",
    ]);
    assert_input_error(
        &result,
        &[
            "golden/support/tapes/refund-policy/1.jsonl",
            "task `refund-policy`",
        ],
    );
    for report in ["junit.xml", "r.md", "r.json"] {
        assert!(!env.path(report).exists(), "{report} was written");
    }
    let ls = env
        .tapedeck()
        .args(["ls", "--json"])
        .output()
        .expect("tapedeck ls runs");
    let runs = runs_listed(&ls.stdout);
    assert!(runs.is_empty(), "runs were recorded: {runs:?}");
}

/// Regression: a suite holding a task it could not replay exited 2 and wrote JUnit
/// `tests="0" failures="0" errors="0"` and Markdown "✅ no drift: 0 tasks pass".
#[test]
fn task_that_cannot_replay_is_an_error_in_every_report() {
    let env = env();
    // A run recorded by the HTTP proxy parses as a tape, but only its client can replay it.
    let tape = env.path("golden/support/tapes/refund-policy/1.jsonl");
    let text = std::fs::read_to_string(&tape).expect("read the tape");
    assert!(text.contains("\"source\":\"runtime\""));
    std::fs::write(
        &tape,
        text.replacen("\"source\":\"runtime\"", "\"source\":\"proxy\"", 1),
    )
    .expect("write the tape");
    let result = env.golden(&[
        "check",
        "golden/support",
        "--junit",
        "junit.xml",
        "--markdown",
        "r.md",
        "--json",
        "r.json",
        "--html",
        "r.html",
    ]);
    assert_exit(&result, 1);
    let message = "recorded by the HTTP proxy";
    assert!(
        result.1.contains("refund-policy: error")
            && result.1.contains(message)
            && result
                .1
                .contains("error in 1 of 12 tasks of suite `support`"),
        "{}",
        result.1
    );

    let junit = read(&env, "junit.xml");
    let doc = roxmltree::Document::parse(&junit).expect("the JUnit report is XML");
    let root = doc.root_element();
    assert_eq!(
        (
            root.attribute("tests"),
            root.attribute("failures"),
            root.attribute("errors")
        ),
        (Some("12"), Some("0"), Some("1"))
    );
    let errors: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("error"))
        .collect();
    assert_eq!(errors.len(), 1);
    let case = errors[0].parent().expect("its testcase");
    assert_eq!(case.attribute("name"), Some("refund-policy"));
    let error_message = errors[0].attribute("message").expect("a message");
    assert!(error_message.contains(message), "{error_message}");

    let markdown = read(&env, "r.md");
    assert!(
        markdown.starts_with("## ❌ tapedeck golden: error in 1 of 12 tasks")
            && markdown.contains("| `refund-policy` | **error** |")
            && markdown.contains(message),
        "{markdown}"
    );
    let results = task_results(&read(&env, "r.json"));
    let failed = results
        .iter()
        .find(|r| r["task"] == "refund-policy")
        .expect("the task's result");
    assert_eq!(failed["verdict"], "error");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains(message)),
        "{failed}"
    );
    let html = read(&env, "r.html");
    assert!(
        html.contains("<span class=\"error\">error</span>") && html.contains(message),
        "{html}"
    );
}

/// Regression: a report that could not be written after the runs left the summary line green
/// ("no drift: … pass") next to the error, with exit 1.
#[test]
fn a_report_that_cannot_be_written_is_not_summarised_green() {
    let env = env();
    std::fs::create_dir_all(env.path("taken.xml")).expect("a folder where the report goes");
    let result = env.golden(&["check", "golden/support", "--junit", "taken.xml"]);
    assert_exit(&result, 1);
    assert!(
        result
            .1
            .contains("but not every file could be written (see above)"),
        "{}",
        result.1
    );
}
