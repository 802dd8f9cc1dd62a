//! `tapedeck demo`: runs the demo agents of `fixtures/agents/` through the runtime (four fresh
//! runs: password reset, an approved refund, a denied webhook post, and the browser-retry
//! incident), shows the incident, and prints commands that work on the store it wrote.

use serde_json::Value;
use tapedeck_testkit::snapshot::insta_settings;

use crate::{Env, runs_listed, stdout, tapedeck_in};

/// The runs the demo's agents made, without the replays of its closing drift check (those
/// carry a `mode`).
fn agent_runs(runs: Vec<Value>) -> Vec<Value> {
    runs.into_iter()
        .filter(|run| run.get("mode").is_none())
        .collect()
}

/// The demo's incident run among `runs` (`ls --json` rows): the one run stopped by
/// `max_tool_calls`.
fn the_incident(runs: &[Value]) -> &Value {
    let stopped: Vec<&Value> = runs
        .iter()
        .filter(|run| run["stop_reason"] == "max_tool_calls")
        .collect();
    assert_eq!(stopped.len(), 1, "one run stopped by max_tool_calls");
    stopped[0]
}

#[test]
fn records_four_runs_and_shows_the_incident() {
    let env = Env::new();
    let out = stdout(env.tapedeck().arg("demo"));
    let all = env.ls_json(&[]);
    // Four agent runs, and the drift check's three tools-only replays of the support bot's.
    assert_eq!(all.len(), 7);
    let runs = agent_runs(all);
    assert_eq!(runs.len(), 4);
    let incident = the_incident(&runs);
    assert_eq!(incident["totals"]["tool_calls"]["browser.open"], 15);
    assert_eq!(incident["agent"]["name"], "research-bot");
    let short = incident["short_id"].as_str().expect("a short id");

    assert!(out.starts_with("recorded 4 demo runs into t.db\n"), "{out}");
    assert!(
        out.contains("the browser-retry incident, with budgets"),
        "{out}"
    );
    assert!(
        out.contains("top tool   browser.open — 15 of 15 tool calls"),
        "{out}"
    );
    // The explore commands name the incident and the store the demo wrote.
    for cmd in [
        format!("tapedeck --store t.db show {short} "),
        format!("tapedeck --store t.db show {short} --audit "),
        "tapedeck --store t.db ls --stop-reason max_tool_calls ".to_owned(),
        "tapedeck --store t.db stats ".to_owned(),
        format!("tapedeck --store t.db export {short} > incident.jsonl "),
    ] {
        assert!(out.contains(&format!("  {cmd}")), "no `{cmd}` in:\n{out}");
    }
}

#[test]
fn runs_the_demo_agents() {
    let env = Env::new();
    stdout(env.tapedeck().arg("demo"));
    let runs = agent_runs(env.ls_json(&[]));
    let by_task = |task: &str| -> &Value {
        runs.iter()
            .find(|run| run["task"] == task)
            .unwrap_or_else(|| panic!("no demo run of task {task}"))
    };
    for (task, agent, stop_reason, status) in [
        ("password-reset", "support-bot", "ok", "ok"),
        ("refund", "support-bot", "ok", "ok"),
        ("webhook", "support-bot", "tool_denied:http.post", "stopped"),
        ("vendor-health", "research-bot", "max_tool_calls", "stopped"),
    ] {
        let run = by_task(task);
        assert_eq!(run["source"], "runtime", "{run}");
        assert_eq!(run["agent"]["name"], agent, "{run}");
        assert_eq!(run["stop_reason"], stop_reason, "{run}");
        assert_eq!(run["status"], status, "{run}");
        assert_eq!(run["labels"]["demo"], "1", "{run}");
    }
    // The refund is a write: approved by alice through the demo's approvals file.
    let refund = by_task("refund")["short_id"].as_str().expect("a short id");
    let audit = stdout(env.tapedeck().args(["show", refund, "--audit"]));
    assert!(
        audit.contains("needs approval  writes.require_approval"),
        "{audit}"
    );
    assert!(
        audit.contains("approved        approvals_file:1         by alice"),
        "{audit}"
    );
    // The incident: 15 browser.open calls at $0.72, the tool cost the budget stopped at.
    let incident = by_task("vendor-health")["short_id"]
        .as_str()
        .expect("a short id");
    let show: Value =
        serde_json::from_str(&stdout(env.tapedeck().args(["show", incident, "--json"])))
            .expect("JSON");
    let top = &show["tool_spend"][0];
    assert_eq!(top["tool"], "browser.open");
    assert_eq!(top["calls"], 15);
    assert_eq!(top["errors"], 15);
    let tool_cost = top["cost_usd"].as_f64().expect("a cost");
    assert!((tool_cost - 10.80).abs() < 1e-9, "{tool_cost}");
    // The agent files are written beside the store, to be run again.
    for file in ["support-bot.yaml", "research-bot.yaml", "approvals.yaml"] {
        assert!(env.path("demo").join(file).is_file(), "{file}");
    }
}

#[test]
fn explore_commands_work() {
    let env = Env::new();
    stdout(env.tapedeck().arg("demo"));
    let runs = env.ls_json(&[]);
    let short = the_incident(&runs)["short_id"]
        .as_str()
        .expect("a short id")
        .to_owned();
    let show = stdout(env.tapedeck().args(["show", &short]));
    assert!(show.contains("stopped — max_tool_calls"), "{show}");
    let audit = stdout(env.tapedeck().args(["show", &short, "--audit"]));
    assert_eq!(
        audit.matches("allowed   tools.allow").count(),
        15,
        "{audit}"
    );
    assert_eq!(
        env.ls_ids(&["--stop-reason", "max_tool_calls"]),
        [short.as_str()]
    );
    let tape = stdout(env.tapedeck().args(["export", &short]));
    // The demo's incident is the fixture's, rebased: same events, another id and other times.
    assert_eq!(tape.lines().count(), 1 + 80);
}

#[test]
fn twice_records_eight_runs() {
    let env = Env::new();
    stdout(env.tapedeck().arg("demo"));
    stdout(env.tapedeck().arg("demo"));
    let runs = agent_runs(env.ls_json(&[]));
    assert_eq!(runs.len(), 8);
    let mut ids: Vec<&str> = runs
        .iter()
        .map(|r| r["short_id"].as_str().expect("a short id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8, "every demo run has its own short id");
    assert_eq!(env.ls_ids(&["--stop-reason", "max_tool_calls"]).len(), 2);
}

#[test]
fn works_from_any_directory_with_the_default_store() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = stdout(tapedeck_in(dir.path()).arg("demo"));
    assert!(
        dir.path().join(".tapedeck").join("tapedeck.db").is_file(),
        "the default store is .tapedeck/tapedeck.db in the working directory"
    );
    assert!(
        out.starts_with("recorded 4 demo runs into .tapedeck/tapedeck.db\n"),
        "{out}"
    );
    // With the default store, the explore commands need no --store.
    assert!(!out.contains("--store"), "{out}");
    assert!(
        out.contains("  tapedeck ls --stop-reason max_tool_calls "),
        "{out}"
    );
    let listed = stdout(tapedeck_in(dir.path()).args(["ls", "--json"]));
    assert_eq!(agent_runs(runs_listed(&listed)).len(), 4);
}

#[test]
fn output() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = stdout(tapedeck_in(dir.path()).arg("demo"));
    let runs = runs_listed(&stdout(tapedeck_in(dir.path()).args(["ls", "--json"])));
    // The demo's ids are fresh: each becomes `[ID:<task>]`; times and durations are filtered
    // by the project's settings.
    let mut settings = insta_settings();
    for run in &runs {
        let short = run["short_id"].as_str().expect("a short id");
        let task = run["task"].as_str().expect("a task");
        let what = if run.get("mode").is_some() {
            "REPLAY"
        } else {
            "ID"
        };
        settings.add_filter(&format!(r"\b{short}\b"), format!("[{what}:{task}]"));
    }
    settings.bind(|| insta::assert_snapshot!("demo_output", out));
}

#[test]
fn runs_are_dated_now() {
    let env = Env::new();
    stdout(env.tapedeck().arg("demo"));
    // Every demo run (four agent runs, three replays) falls in the last hour: they ran just now.
    assert_eq!(env.ls_ids(&["--since", "1h"]).len(), 7);
    let dry = stdout(
        env.tapedeck()
            .args(["rm", "--older-than", "1h", "--dry-run"]),
    );
    assert_eq!(dry, "0 runs would be removed\n");
}
