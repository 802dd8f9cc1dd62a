//! `tapedeck replay --tapes DIR --agent NEW.yaml -j N`: every exported tape under a folder
//! imported and replayed against a version, N at a time; one row per tape and a summary.

use serde_json::Value;

use crate::{Env, PASSWORD, REFUND, WEBHOOK, short};

/// Records each input with the support bot and exports each run to `tapes/NAME.jsonl`.
fn export_tapes(env: &Env, runs: &[(&str, &str, i32)]) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, input, code) in runs {
        let id = env.record("support-bot.yaml", input, *code);
        let path = format!("tapes/{name}.jsonl");
        std::fs::create_dir_all(env.path("tapes")).expect("the tapes folder");
        env.stdout(&["export", &id, "-o", &path]);
        ids.push(id);
    }
    ids
}

/// A fresh folder (its own empty store) with the fixture agents and the tapes of `from`.
fn elsewhere(from: &Env) -> Env {
    let env = Env::with_fixture_agents();
    let tapes = env.path("tapes");
    std::fs::create_dir_all(&tapes).expect("the tapes folder");
    for entry in std::fs::read_dir(from.path("tapes")).expect("the tapes") {
        let path = entry.expect("a tape").path();
        std::fs::copy(&path, tapes.join(path.file_name().expect("a name"))).expect("copy a tape");
    }
    env
}

#[test]
fn every_tape_of_a_folder_is_replayed() {
    let recorded = Env::with_fixture_agents();
    let ids = export_tapes(
        &recorded,
        &[("password", PASSWORD, 0), ("refund", REFUND, 0)],
    );
    let env = elsewhere(&recorded);
    let out = env.exec(&[
        "replay",
        "--tapes",
        "tapes",
        "--agent",
        "support-bot.yaml",
        "-j",
        "2",
    ]);
    out.expect_code(0);
    assert_eq!(out.stderr, "");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["TAPE", "RUN", "REPLAY", "STOP", "REASON", "DIVERGED", "AT"]
    );
    for (line, (tape, id)) in lines[1..3]
        .iter()
        .zip(["password.jsonl", "refund.jsonl"].iter().zip(&ids))
    {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.len(), 5, "{line}");
        assert_eq!((cells[0], cells[1]), (*tape, id.as_str()), "{line}");
        assert_eq!((cells[3], cells[4]), ("ok", "-"), "{line}");
    }
    assert_eq!(lines[3], "");
    assert_eq!(
        lines[4],
        "2 tapes replayed: 2 match and ended ok, 0 diverged or stopped, 0 failed"
    );
    // The tapes were imported, and each replay recorded with its tape's run as parent.
    let runs = env.ls();
    assert_eq!(runs.len(), 4);
    for id in &ids {
        let replays: Vec<&Value> = runs
            .iter()
            .filter(|r| {
                r["parent"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(id.as_str()))
            })
            .collect();
        assert_eq!(replays.len(), 1, "one replay of {id}");
        assert_eq!(replays[0]["mode"], "tools-only");
    }
}

#[test]
fn a_tape_that_stops_or_diverges_makes_the_exit_1() {
    let recorded = Env::with_fixture_agents();
    let ids = export_tapes(
        &recorded,
        &[
            ("a-password", PASSWORD, 0),
            ("b-refund", REFUND, 0),
            ("c-webhook", WEBHOOK, 1),
        ],
    );
    let env = elsewhere(&recorded);
    let out = env.exec(&[
        "replay",
        "--tapes",
        "tapes",
        "--agent",
        "support-bot.yaml",
        "-j",
        "2",
    ]);
    out.expect_code(1);
    let summary = out.stdout.lines().last().expect("a summary");
    assert_eq!(
        summary,
        "3 tapes replayed: 2 match and ended ok, 1 diverged or stopped, 0 failed"
    );
    let webhook = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("c-webhook.jsonl"))
        .expect("the webhook's row");
    assert!(webhook.contains(" tool_denied:http.post "), "{webhook}");

    // `--json`: one report per tape, in the tapes' order.
    let out = env.exec(&[
        "replay",
        "--tapes",
        "tapes",
        "--agent",
        "support-bot.yaml",
        "-j",
        "2",
        "--json",
    ]);
    out.expect_code(1);
    let reports = out.json();
    assert_eq!(reports["format"], "tapedeck-replays");
    let reports = reports["replays"]
        .as_array()
        .expect("a list of reports under `replays`");
    let parents: Vec<String> = reports.iter().map(|r| short(&r["parent"]["id"])).collect();
    assert_eq!(parents, ids);
    let stops: Vec<&str> = reports
        .iter()
        .map(|r| r["run"]["stop_reason"].as_str().expect("a stop reason"))
        .collect();
    assert_eq!(stops, ["ok", "ok", "tool_denied:http.post"]);
    for report in reports {
        assert_eq!(report["divergence"], Value::Null);
    }
}

/// A new version that reads another article diverges on the tapes that read one.
#[test]
fn a_new_version_over_the_tapes() {
    let recorded = Env::with_fixture_agents();
    export_tapes(
        &recorded,
        &[("password", PASSWORD, 0), ("refund", REFUND, 0)],
    );
    let env = elsewhere(&recorded);
    env.edit(
        "support-bot.script.yaml",
        "v2.script.yaml",
        &[(
            "arguments: { article: password-reset }",
            "arguments: { article: password-recovery }",
        )],
    );
    env.edit(
        "support-bot.yaml",
        "v2.yaml",
        &[("support-bot.script.yaml", "v2.script.yaml")],
    );
    let out = env.exec(&[
        "replay", "--tapes", "tapes", "--agent", "v2.yaml", "-j", "2",
    ]);
    out.expect_code(1);
    let password = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("password.jsonl"))
        .expect("the password tape's row");
    assert!(
        password.contains(" replay_miss:kb.read ") && password.ends_with(" step 2 (tool_call)"),
        "{password}"
    );
    assert_eq!(
        out.stdout.lines().last(),
        Some("2 tapes replayed: 1 match and ended ok, 1 diverged or stopped, 0 failed")
    );
}
