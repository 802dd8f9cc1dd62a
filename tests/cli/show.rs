//! `tapedeck show`: summary and timeline, the audit log, `--json`, and the ways to name a run.

use serde_json::Value;
use tapedeck_testkit::scenarios;
use tapedeck_testkit::snapshot::insta_settings;

use crate::{CLEAN, Env, INCIDENT, LONG_RUN, TOOL_DENIED, stdout};

#[test]
fn clean_run_summary_and_timeline() {
    let env = Env::with_fixtures();
    let out = stdout(env.tapedeck().args(["show", CLEAN]));
    insta_settings().bind(|| insta::assert_snapshot!("show_clean", out));
}

#[test]
fn incident_summary_and_timeline() {
    let env = Env::with_fixtures();
    let out = stdout(env.tapedeck().args(["show", INCIDENT]));
    insta_settings().bind(|| insta::assert_snapshot!("show_incident", out));
}

#[test]
fn incident_summary_names_the_tool_that_spent_the_budget() {
    let env = Env::with_fixtures();
    let out = stdout(env.tapedeck().args(["show", INCIDENT]));
    let line = |label: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{out}"))
            .to_owned()
    };
    assert!(line("status").contains("stopped — max_tool_calls"));
    let top = line("top tool");
    assert!(
        top.contains("browser.open — 15 of 15 tool calls"),
        "top tool line: {top}"
    );
    assert!(top.contains("$10.80"), "the tool's spend: {top}");
    assert!(top.contains("15 failed"), "{top}");
    let budget = line("budget");
    assert!(
        budget.contains("max_tool_calls exceeded: 15 used of 15, hit by a browser.open call"),
        "budget line: {budget}"
    );
    // The timeline has the 15 failed calls and the budget stop.
    assert_eq!(out.matches("✗ HTTP 503 Service Unavailable").count(), 15);
    assert!(out.contains("max_tool_calls  15 used of 15 · at a browser.open call"));
    assert!(out.contains("run_finished    stopped — max_tool_calls"));
}

#[test]
fn a_unique_prefix_of_the_full_or_short_id_names_a_run() {
    let env = Env::with_fixtures();
    let by_short = stdout(env.tapedeck().args(["show", INCIDENT]));
    for query in [
        scenarios::INCIDENT_RUN_ID,
        "01a1cdbf",
        "01a1cdbf-9418",
        "b7e5",
        "B7E5D602",
    ] {
        let out = stdout(env.tapedeck().args(["show", query]));
        assert_eq!(out, by_short, "`show {query}` shows another run");
    }
}

#[test]
fn audit_log_of_the_incident() {
    let env = Env::with_fixtures();
    let out = stdout(env.tapedeck().args(["show", INCIDENT, "--audit"]));
    insta_settings().bind(|| insta::assert_snapshot!("show_incident_audit", out));
    assert!(!out.contains("timeline"), "--audit replaces the timeline");
}

#[test]
fn audit_log_of_the_denied_call() {
    let env = Env::with_fixtures();
    let out = stdout(env.tapedeck().args(["show", TOOL_DENIED, "--audit"]));
    insta_settings().bind(|| insta::assert_snapshot!("show_tool_denied_audit", out));
    assert!(out.contains("http.post is not in tools.allow"));
}

#[test]
fn json_has_run_events_blobs_and_tool_spend() {
    let env = Env::with_fixtures();
    let out = stdout(env.tapedeck().args(["show", INCIDENT, "--json"]));
    let show: Value = serde_json::from_str(&out).expect("`show --json` prints JSON");
    assert_eq!(show["short_id"], INCIDENT);
    assert_eq!(show["run"]["id"], scenarios::INCIDENT_RUN_ID);
    assert_eq!(show["run"]["stop_reason"], "max_tool_calls");
    let events = show["events"].as_array().expect("events");
    assert_eq!(events.len(), 80);
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[79]["seq"], 80);
    let spend = show["tool_spend"].as_array().expect("tool_spend");
    assert_eq!(spend.len(), 1);
    assert_eq!(spend[0]["tool"], "browser.open");
    assert_eq!(spend[0]["calls"], 15);
    assert_eq!(spend[0]["errors"], 15);
    let cost = spend[0]["cost_usd"].as_f64().expect("a cost");
    assert!(
        (cost - 15.0 * scenarios::BROWSER_OPEN_COST_USD).abs() < 1e-9,
        "{cost}"
    );
    // Every blob an event refers to is there, keyed by its hash.
    let blobs = show["blobs"].as_object().expect("blobs");
    assert!(!blobs.is_empty());
    for (hash, _) in blobs {
        assert!(hash.starts_with("sha256:"), "{hash}");
        assert!(
            out.matches(hash.as_str()).count() >= 2,
            "{hash} is referred to by no event"
        );
    }
}

#[test]
fn json_of_the_clean_run_lists_its_one_tool() {
    let env = Env::with_fixtures();
    let out = stdout(env.tapedeck().args(["show", CLEAN, "--json"]));
    let show: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(show["events"].as_array().map(Vec::len), Some(9));
    assert_eq!(show["tool_spend"][0]["tool"], "kb.read");
    assert_eq!(show["tool_spend"][0]["calls"], 1);
    assert_eq!(show["tool_spend"][0]["errors"], 0);
}

#[test]
fn long_run_timeline_has_every_event() {
    let env = Env::with_fixtures();
    let out = stdout(env.tapedeck().args(["show", LONG_RUN]));
    assert!(out.contains("steps      121 · tool calls 120 (kb.read 60, search.read 60)"));
    assert!(out.contains("  step 121\n"));
    assert!(out.lines().any(|l| l.trim_start().starts_with("604 ")));
    assert!(out.contains("run_finished    ok — ok"));
}
