//! `tapedeck stats`: the monitoring figures per agent version, over every run, a given window,
//! and the default window of 7 days.

use serde_json::Value;
use tapedeck_testkit::on_both_stores;
use tapedeck_testkit::scenarios;
use tapedeck_testkit::snapshot::insta_settings;

use crate::{Env, stdout};

on_both_stores! {
    fn all_runs(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["stats", "--all"]));
        insta_settings().bind(|| insta::assert_snapshot!("stats_all", out));
    }
}

on_both_stores! {
    fn all_runs_json(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["stats", "--all", "--json"]));
        let report: Value = serde_json::from_str(&out).expect("`stats --json` prints JSON");
        insta_settings().bind(|| insta::assert_json_snapshot!("stats_all_json", report));
        let agents = report["agents"].as_array().expect("agents");
        // Three agent versions: support-bot, and research-bot with two sets of budgets.
        assert_eq!(agents.len(), 3);
        let incident = agents
            .iter()
            .find(|a| a["fingerprint"] == scenarios::RESEARCH_BOT_FINGERPRINT)
            .expect("the incident's agent version");
        assert_eq!(incident["agent"], "research-bot");
        assert_eq!(incident["runs"], 1);
        assert_eq!(incident["stop_reasons"]["max_tool_calls"], 1);
        assert_eq!(incident["top_tool"]["tool"], "browser.open");
        assert_eq!(incident["top_tool"]["share"], 1.0);
        assert_eq!(incident["tool_calls_per_run"]["max"], 15.0);
        let support = agents
            .iter()
            .find(|a| a["fingerprint"] == scenarios::SUPPORT_BOT_FINGERPRINT)
            .expect("support-bot");
        assert_eq!(support["runs"], 2);
        assert_eq!(support["stop_reasons"]["ok"], 1);
        assert_eq!(support["stop_reasons"]["tool_denied:http.post"], 1);
        assert_eq!(support["runs_cost_unknown"], 0);
    }
}

on_both_stores! {
    fn since_a_date_covers_the_fixtures(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["stats", "--since", "2026-01-01"]));
        let all = stdout(env.tapedeck().args(["stats", "--all"]));
        assert!(
            out.starts_with("runs since 2026-01-01 00:00:00 UTC\n"),
            "{out}"
        );
        // The same figures as `--all`: only the window line differs.
        assert_eq!(
            out.lines().skip(1).collect::<Vec<_>>(),
            all.lines().skip(1).collect::<Vec<_>>()
        );
    }
}

on_both_stores! {
    fn since_a_later_date_narrows_the_window(backend) {
        let env = Env::with_fixtures_on(backend);
        // Only the long run (2026-11-18) is that recent.
        let out = stdout(
            env.tapedeck()
                .args(["stats", "--since", "2026-11-15", "--json"]),
        );
        let report: Value = serde_json::from_str(&out).expect("JSON");
        let agents = report["agents"].as_array().expect("agents");
        assert_eq!(agents.len(), 1);
        assert_eq!(
            agents[0]["fingerprint"],
            scenarios::LONG_RESEARCH_BOT_FINGERPRINT
        );
        assert_eq!(agents[0]["runs"], 1);
    }
}

on_both_stores! {
    fn default_window_is_the_last_7_days(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().arg("stats"));
        // The fixtures are dated 2026-11-03 to 2026-11-18: whether any is in the window depends on
        // today's date, so the expectation is computed, not assumed.
        let in_window = crate::fixtures_since(crate::days_ago(7));
        if in_window == 0 {
            assert_eq!(
                out,
                format!("no runs of the last 7 days in {}\n", env.store_arg())
            );
        } else {
            assert!(out.starts_with("runs of the last 7 days\n"), "{out}");
            let report: Value =
                serde_json::from_str(&stdout(env.tapedeck().args(["stats", "--json"]))).expect("JSON");
            let runs: u64 = report["agents"]
                .as_array()
                .expect("agents")
                .iter()
                .map(|a| a["runs"].as_u64().expect("a count"))
                .sum();
            assert_eq!(runs, in_window as u64);
        }
    }
}

on_both_stores! {
    fn default_window_covers_fresh_demo_runs(backend) {
        let env = Env::on(backend);
        stdout(env.tapedeck().arg("demo"));
        let out = stdout(env.tapedeck().arg("stats"));
        assert!(out.starts_with("runs of the last 7 days\n"), "{out}");
        // The support bot's three runs, their three replays by its next version (the demo's drift
        // check: another fingerprint, so another row), and the incident.
        assert_eq!(out.matches("research-bot").count(), 1, "{out}");
        assert_eq!(out.matches("support-bot").count(), 2, "{out}");
        assert!(out.contains(") · 3 runs\n"), "{out}");
        assert!(out.contains("ok 2 · tool_denied:http.post 1"), "{out}");
        assert!(out.contains("browser.open (100% of tool calls)"), "{out}");
        assert!(out.contains("max_tool_calls 1"), "{out}");
    }
}

on_both_stores! {
    fn agent_filter(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(
            env.tapedeck()
                .args(["stats", "--all", "--agent", "support-bot"]),
        );
        assert!(
            out.contains("support-bot (fingerprint 2878ccc8) · 2 runs"),
            "{out}"
        );
        assert!(!out.contains("research-bot"), "{out}");
    }
}

on_both_stores! {
    fn empty_store(backend) {
        let env = Env::on(backend);
        assert_eq!(
            stdout(env.tapedeck().args(["stats", "--all"])),
            format!("no runs in {}\n", env.store_arg())
        );
        let report: Value =
            serde_json::from_str(&stdout(env.tapedeck().args(["stats", "--json"]))).expect("JSON");
        assert_eq!(report["agents"], Value::Array(Vec::new()));
        assert!(!env.store().exists(), "`stats` must not create the store");
    }
}

on_both_stores! {
    fn all_conflicts_with_since(backend) {
        let env = Env::with_fixtures_on(backend);
        env.tapedeck()
            .args(["stats", "--all", "--since", "7d"])
            .assert()
            .code(2)
            .stderr(predicates::str::contains("cannot be used with"));
    }
}

#[test]
fn non_ascii_fingerprint_does_not_panic() {
    // `stats` cut the fingerprint to 8 bytes, not 8 characters, and panicked on a tape whose
    // agent fingerprint has a multi-byte character across byte 8 ("aéééé": `é` at bytes 7..9).
    let env = Env::new();
    let tape = crate::tiny_tape("01a1a0b0-be20-73b0-8668-0000ff000001").replacen(
        "\"fingerprint\":\"00ff00ff\"",
        "\"fingerprint\":\"aéééé\"",
        1,
    );
    assert!(tape.contains("aéééé"));
    std::fs::write(env.path("odd.jsonl"), tape).expect("write the tape");
    stdout(env.tapedeck().args(["import", "odd.jsonl"]));
    let out = stdout(env.tapedeck().args(["stats", "--all"]));
    assert!(
        out.contains("ping-bot (fingerprint aéééé) · 1 run"),
        "{out}"
    );
    let show = stdout(env.tapedeck().args(["show", "ff000001"]));
    assert!(show.contains("ping-bot (fingerprint aéééé)"), "{show}");
}

/// A `ping-bot` run (the agent of [`crate::tiny_tape`]) priced at $2 / $8 per million tokens,
/// with 100,000 tokens in and 10,000 out: $0.28.
fn priced_tape(run_id: &str) -> String {
    use tapedeck_testkit::{TapeBuilder, message};
    use tapedeck_trace::{StopReason, Usage};
    let mut tape = TapeBuilder::new(run_id, "2026-11-20T09:00:00Z")
        .task("ping")
        .input("ping")
        .agent("ping-bot", "00ff00ff")
        .pricing(2.0, 8.0);
    let usage = Usage {
        input_tokens: 100_000,
        output_tokens: 10_000,
    };
    tape.llm_step(
        &[message::user("ping")],
        &message::assistant("pong"),
        usage,
        10,
    );
    tape.finish(StopReason::Ok, Some("pong"))
}

on_both_stores! {
    /// Regression: runs none of whose costs were known made `stats` say `cost $0.00 (2 runs of
    /// unknown cost not counted)`: a total of unknown costs is unknown, `?` (and `null` in JSON).
    fn unknown_cost_is_a_question_mark_not_zero(backend) {
        let env = Env::on(backend);
        for (name, id) in [
            ("a.jsonl", "01a1a0b0-be20-73b0-8668-0000bb000001"),
            ("b.jsonl", "01a1a0b0-be20-73b0-8668-0000bb000002"),
        ] {
            std::fs::write(env.path(name), crate::tiny_tape(id)).expect("write a tape");
        }
        stdout(env.tapedeck().args(["import", "a.jsonl", "b.jsonl"]));
        let cost_line = |out: &str| {
            out.lines()
                .find(|l| l.trim_start().starts_with("cost"))
                .unwrap_or_else(|| panic!("no cost line:\n{out}"))
                .trim()
                .to_owned()
        };
        let out = stdout(env.tapedeck().args(["stats", "--all"]));
        assert_eq!(
            cost_line(&out),
            "cost                 ? (2 of 2 runs of unknown cost)"
        );
        let report: Value =
            serde_json::from_str(&stdout(env.tapedeck().args(["stats", "--all", "--json"])))
                .expect("JSON");
        assert_eq!(report["agents"][0]["cost_usd"], Value::Null);
        assert_eq!(report["agents"][0]["runs_cost_unknown"], 2);
        // `ls` says `?` for each of them too.
        let ls = stdout(env.tapedeck().arg("ls"));
        assert_eq!(ls.lines().filter(|l| l.ends_with(" ?")).count(), 2, "{ls}");

        // With one run of known cost: its total, over how many runs, and the others left out.
        std::fs::write(
            env.path("c.jsonl"),
            priced_tape("01a1a0b0-be20-73b0-8668-0000bb000003"),
        )
        .expect("write a tape");
        stdout(env.tapedeck().args(["import", "c.jsonl"]));
        let out = stdout(env.tapedeck().args(["stats", "--all"]));
        assert_eq!(
            cost_line(&out),
            "cost                 $0.28 over 1 run; 2 runs of unknown cost not counted"
        );
    }
}
