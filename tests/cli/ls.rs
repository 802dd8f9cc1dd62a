//! `tapedeck ls`: the runs table, every filter, `-n`, `--json`, and the empty-store message.

use tapedeck_testkit::on_both_stores;
use tapedeck_testkit::snapshot::insta_settings;

use crate::{CLEAN, Env, INCIDENT, LONG_RUN, TOOL_DENIED, runs_listed, stdout};

on_both_stores! {
    fn table_lists_the_fixture_runs_newest_first(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().arg("ls"));
        insta_settings().bind(|| insta::assert_snapshot!("ls_fixtures", out));
        let ids: Vec<&str> = out
            .lines()
            .skip(1)
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        assert_eq!(ids, [LONG_RUN, INCIDENT, TOOL_DENIED, CLEAN]);
    }
}

on_both_stores! {
    fn stop_reason_filter_finds_the_incident(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(env.ls_ids(&["--stop-reason", "max_tool_calls"]), [INCIDENT]);
        let out = stdout(
            env.tapedeck()
                .args(["ls", "--stop-reason", "max_tool_calls"]),
        );
        insta_settings().bind(|| insta::assert_snapshot!("ls_stop_reason_max_tool_calls", out));
    }
}

on_both_stores! {
    fn stop_reason_kind_matches_any_tool(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(env.ls_ids(&["--stop-reason", "tool_denied"]), [TOOL_DENIED]);
        assert_eq!(
            env.ls_ids(&["--stop-reason", "tool_denied:http.post"]),
            [TOOL_DENIED]
        );
        assert!(
            env.ls_ids(&["--stop-reason", "tool_denied:kb.read"])
                .is_empty()
        );
        assert_eq!(env.ls_ids(&["--stop-reason", "ok"]), [LONG_RUN, CLEAN]);
    }
}

on_both_stores! {
    fn task_filter(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(env.ls_ids(&["--task", "password-reset"]), [CLEAN]);
        assert_eq!(env.ls_ids(&["--task", "vendor-health"]), [INCIDENT]);
        assert!(env.ls_ids(&["--task", "no-such-task"]).is_empty());
    }
}

on_both_stores! {
    fn agent_filter_by_name_or_fingerprint_prefix(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(
            env.ls_ids(&["--agent", "research-bot"]),
            [LONG_RUN, INCIDENT]
        );
        assert_eq!(
            env.ls_ids(&["--agent", "support-bot"]),
            [TOOL_DENIED, CLEAN]
        );
        // The incident's agent version, by a prefix of its fingerprint.
        assert_eq!(env.ls_ids(&["--agent", "f974df71"]), [INCIDENT]);
    }
}

on_both_stores! {
    fn label_filter(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(env.ls_ids(&["--label", "model=gpt-4.1-mini"]).len(), 4);
        assert!(env.ls_ids(&["--label", "model=gpt-4.1"]).is_empty());
        assert!(env.ls_ids(&["--label", "team=search"]).is_empty());
    }
}

on_both_stores! {
    fn status_filter(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(env.ls_ids(&["--status", "ok"]), [LONG_RUN, CLEAN]);
        assert_eq!(
            env.ls_ids(&["--status", "stopped"]),
            [INCIDENT, TOOL_DENIED]
        );
        assert!(env.ls_ids(&["--status", "error"]).is_empty());
    }
}

on_both_stores! {
    fn source_filter(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(env.ls_ids(&["--source", "runtime"]).len(), 4);
        assert!(env.ls_ids(&["--source", "proxy"]).is_empty());
    }
}

on_both_stores! {
    fn since_filter_by_date(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(env.ls_ids(&["--since", "2000-01-01"]).len(), 4);
        // The incident started 2026-11-12T03:14:07Z: a day boundary and an exact instant.
        assert_eq!(env.ls_ids(&["--since", "2026-11-12"]), [LONG_RUN, INCIDENT]);
        assert_eq!(
            env.ls_ids(&["--since", "2026-11-12T03:14:07Z"]),
            [LONG_RUN, INCIDENT]
        );
        assert_eq!(env.ls_ids(&["--since", "2026-11-12T03:14:08Z"]), [LONG_RUN]);
        assert!(env.ls_ids(&["--since", "2999-01-01"]).is_empty());
    }
}

on_both_stores! {
    fn since_filter_by_age_counts_back_from_now(backend) {
        let env = Env::with_fixtures_on(backend);
        // Which fixtures an age selects depends on today's date: compute it, don't assume it.
        for days in [1, 7, 30, 3650] {
            let expected = crate::fixtures_since(crate::days_ago(days));
            let age = format!("{days}d");
            assert_eq!(
                env.ls_ids(&["--since", &age]).len(),
                expected,
                "--since {age}"
            );
        }
    }
}

on_both_stores! {
    fn filters_combine(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(
            env.ls_ids(&["--agent", "support-bot", "--status", "ok"]),
            [CLEAN]
        );
        assert!(
            env.ls_ids(&["--agent", "research-bot", "--task", "password-reset"])
                .is_empty()
        );
    }
}

on_both_stores! {
    fn limit_keeps_the_newest(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(env.ls_ids(&["-n", "1"]), [LONG_RUN]);
        assert_eq!(env.ls_ids(&["--limit", "2"]), [LONG_RUN, INCIDENT]);
        let out = stdout(env.tapedeck().args(["ls", "-n", "1"]));
        assert_eq!(out.lines().count(), 2, "a header and one run:\n{out}");
    }
}

on_both_stores! {
    fn json_has_short_ids_and_the_run_fields(backend) {
        let env = Env::with_fixtures_on(backend);
        let runs = env.ls_json(&[]);
        assert_eq!(runs.len(), 4);
        let incident = &runs[1];
        assert_eq!(incident["short_id"], INCIDENT);
        assert_eq!(incident["id"], tapedeck_testkit::scenarios::INCIDENT_RUN_ID);
        assert_eq!(incident["status"], "stopped");
        assert_eq!(incident["stop_reason"], "max_tool_calls");
        assert_eq!(incident["task"], "vendor-health");
        assert_eq!(incident["agent"]["name"], "research-bot");
        assert_eq!(incident["totals"]["tool_calls"]["browser.open"], 15);
        assert_eq!(incident["totals"]["steps"], 16);
        assert_eq!(incident["labels"]["model"], "gpt-4.1-mini");
        for run in &runs {
            let short = run["short_id"].as_str().expect("a short id");
            let id = run["id"].as_str().expect("a full id");
            assert_eq!(short.len(), 8);
            assert!(
                id.replace('-', "").ends_with(short),
                "{short} is not the end of {id}"
            );
        }
    }
}

on_both_stores! {
    fn empty_store_says_how_to_record_runs(backend) {
        let env = Env::on(backend);
        let out = stdout(env.tapedeck().arg("ls"));
        assert_eq!(
            out,
            format!(
                "no runs in {} (record some with `tapedeck demo`)\n",
                env.store_arg()
            )
        );
        assert!(!env.store().exists(), "`ls` must not create the store");
        let out = stdout(env.tapedeck().args(["ls", "--json"]));
        assert!(runs_listed(&out).is_empty(), "{out}");
    }
}

on_both_stores! {
    fn no_match_says_the_filters_excluded_every_run(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["ls", "--since", "2999-01-01"]));
        assert_eq!(
            out,
            format!("no runs in {} match these filters\n", env.store_arg())
        );
        let out = stdout(env.tapedeck().args(["ls", "--json", "--task", "nope"]));
        assert!(runs_listed(&out).is_empty(), "{out}");
    }
}

on_both_stores! {
    fn store_from_the_environment(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(
            crate::tapedeck_in(env.dir.path())
                .env("TAPEDECK_STORE", env.store_arg())
                .args(["ls", "--json"]),
        );
        assert_eq!(runs_listed(&out).len(), 4);
        // `--store` wins over the environment.
        let out = stdout(
            crate::tapedeck_in(env.dir.path())
                .env("TAPEDECK_STORE", env.store_arg())
                .args(["--store", "other.db", "ls"]),
        );
        assert!(out.starts_with("no runs in other.db"), "{out}");
    }
}

on_both_stores! {
    /// Two runs whose short ids collide (at team scale 8 hex digits do): `ls` shows every id
    /// with 12 hex digits, the short id is refused naming both runs, and the tail resolves.
    fn colliding_short_ids_widen_and_are_refused_with_the_candidates(backend) {
        let env = Env::on(backend);
        let clean = std::fs::read_to_string(crate::fixture("clean.jsonl")).expect("the fixture");
        // Another run, a minute older, whose id ends the same way.
        let twin = clean
            .replacen(
                "01a1a0b0-be20-73b0-8668-04f65a1c3e01",
                "01a1a0b0-be20-73b0-8668-aaaa5a1c3e01",
                1,
            )
            .replacen(
                r#""started_at":"2026-11-03T09:15:00.000000Z""#,
                r#""started_at":"2026-11-03T09:14:00.000000Z""#,
                1,
            );
        assert_ne!(twin, clean);
        env.write("twin.jsonl", &twin);
        stdout(
            env.tapedeck()
                .arg("import")
                .arg(crate::fixture("clean.jsonl"))
                .arg(crate::fixture("tool-denied.jsonl"))
                .arg("twin.jsonl"),
        );

        let out = stdout(env.tapedeck().arg("ls"));
        let ids: Vec<&str> = out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(ids, ["3300c4f2a903", "04f65a1c3e01", "aaaa5a1c3e01"], "{out}");

        let line = crate::input_error(env.tapedeck().args(["show", CLEAN]));
        assert_eq!(
            line,
            "error: `5a1c3e01` matches several runs: \
             01a1a0b0-be20-73b0-8668-04f65a1c3e01 (started 2026-11-03 09:15:00 UTC, task password-reset), \
             01a1a0b0-be20-73b0-8668-aaaa5a1c3e01 (started 2026-11-03 09:14:00 UTC, task password-reset); \
             type more of the id, or its last 12 hex digits"
        );
        for tail in ["aaaa5a1c3e01", "04f65a1c3e01"] {
            let shown = env.show(tail);
            assert!(
                shown["run"]["id"].as_str().expect("an id").ends_with(tail),
                "{shown}"
            );
        }
    }
}
