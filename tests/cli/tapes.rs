//! Moving runs in and out of a store: `export`, `import`, `merge`, `rm` and `gc`.

use std::process::Stdio;
use tapedeck_testkit::on_both_stores;

use crate::{Backend, CLEAN, Env, FIXTURES, INCIDENT, LONG_RUN, TOOL_DENIED, fixture, stdout};

on_both_stores! {
    fn export_gives_back_each_fixture_byte_for_byte(backend) {
        let env = Env::with_fixtures_on(backend);
        for (name, short, _) in FIXTURES {
            let exported = env
                .tapedeck()
                .args(["export", short])
                .output()
                .expect("tapedeck runs");
            assert!(exported.status.success(), "export {short}");
            assert!(exported.stderr.is_empty());
            let original = std::fs::read(fixture(name)).expect("the fixture");
            assert!(
                exported.stdout == original,
                "`export {short}` differs from fixtures/tapes/{name}"
            );
        }
    }
}

on_both_stores! {
    fn export_to_a_file(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(
            env.tapedeck()
                .args(["export", INCIDENT, "-o", "incident.jsonl"]),
        );
        assert_eq!(out, "");
        let written = std::fs::read(env.path("incident.jsonl")).expect("the exported tape");
        let original = std::fs::read(fixture("browser-retry-incident.jsonl")).expect("the fixture");
        assert!(
            written == original,
            "the exported file differs from the fixture"
        );
        assert!(
            !env.path("incident.jsonl.partial").exists(),
            "the partial file is renamed into place"
        );
    }
}

on_both_stores! {
    fn exported_tape_imports_into_another_store(backend) {
        let env = Env::with_fixtures_on(backend);
        stdout(
            env.tapedeck()
                .args(["export", LONG_RUN, "-o", "long.jsonl"]),
        );
        let other = env.path("other.db");
        let out = stdout(crate::tapedeck(&other).args(["import", "long.jsonl"]));
        assert_eq!(
            out,
            format!("imported {LONG_RUN} (604 events) from long.jsonl\n")
        );
        let again = stdout(crate::tapedeck(&other).args(["export", LONG_RUN]));
        let original = std::fs::read_to_string(fixture("long-run.jsonl")).expect("the fixture");
        assert!(
            again == original,
            "a round trip through two stores changed the tape"
        );
    }
}

#[test]
fn export_to_a_closed_pipe_is_quiet() {
    // `tapedeck export RUN | head -1` used to print "error: Broken pipe (os error 32): Broken
    // pipe (os error 32)" and exit 2. The long run's tape (450 kB) cannot fit in a pipe buffer,
    // so the write fails whenever the reader is gone.
    let env = Env::with_fixtures();
    // assert_cmd waits for the whole output: this needs the reading end in hand.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tapedeck"))
        .current_dir(env.dir.path())
        .env("NO_COLOR", "1")
        .env_remove("TAPEDECK_STORE")
        .args(["--store", crate::STORE, "export", LONG_RUN])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tapedeck starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("tapedeck ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

on_both_stores! {
    fn importing_a_tape_twice_skips_it(backend) {
        let env = Env::on(backend);
        let tape = fixture("clean.jsonl");
        let first = stdout(env.tapedeck().arg("import").arg(&tape));
        assert_eq!(
            first,
            format!("imported {CLEAN} (9 events) from {}\n", tape.display())
        );
        let second = stdout(env.tapedeck().arg("import").arg(&tape));
        assert_eq!(
            second,
            format!(
                "skipped {CLEAN} from {}: already in the store\n",
                tape.display()
            )
        );
        assert_eq!(env.run_count(), 1);
    }
}

on_both_stores! {
    fn import_from_standard_input(backend) {
        let env = Env::on(backend);
        let tape = std::fs::read(fixture("tool-denied.jsonl")).expect("the fixture");
        let out = stdout(
            env.tapedeck()
                .args(["import", "-"])
                .write_stdin(tape.clone()),
        );
        assert_eq!(out, format!("imported {TOOL_DENIED} (6 events) from -\n"));
        assert_eq!(env.ls_ids(&[]), [TOOL_DENIED]);
        let exported = env
            .tapedeck()
            .args(["export", TOOL_DENIED])
            .output()
            .expect("tapedeck runs");
        assert!(exported.stdout == tape, "stdin import changed the tape");
    }
}

on_both_stores! {
    fn import_several_files_at_once(backend) {
        let env = Env::with_fixtures_on(backend);
        assert_eq!(env.ls_ids(&[]), [LONG_RUN, INCIDENT, TOOL_DENIED, CLEAN]);
    }
}

on_both_stores! {
    fn merge_copies_runs_once(backend) {
        let env = Env::with_fixtures_on(backend);
        let other = env.path("other.db");
        // The other store holds the clean run and one of its own.
        stdout(
            crate::tapedeck(&other)
                .arg("import")
                .arg(fixture("clean.jsonl")),
        );
        let extra = env.path("extra.jsonl");
        std::fs::write(&extra, crate::tiny_tape(EXTRA_ID)).expect("write the tape");
        stdout(crate::tapedeck(&other).arg("import").arg(&extra));

        let first = stdout(env.tapedeck().args(["merge", "other.db"]));
        assert_eq!(first, "merged 1 run from other.db (1 already present)\n");
        assert_eq!(env.run_count(), 5);
        let second = stdout(env.tapedeck().args(["merge", "other.db"]));
        assert_eq!(second, "merged 0 runs from other.db (2 already present)\n");
        assert_eq!(env.run_count(), 5);
        // The merged run is whole: it exports as it was imported.
        let exported = stdout(env.tapedeck().args(["export", "ee000001"]));
        assert_eq!(exported, crate::tiny_tape(EXTRA_ID));
    }
}

/// A run only `merge_copies_runs_once`'s other store has (short id `ee000001`).
const EXTRA_ID: &str = "01a1a0b0-be20-73b0-8668-0000ee000001";

on_both_stores! {
    fn merge_refuses_the_store_itself(backend) {
        let env = Env::with_fixtures_on(backend);
        let store = env.store_arg();
        let line = crate::input_error(env.tapedeck().args(["merge", &store]));
        assert_eq!(line, format!("error: cannot merge the store `{store}` into itself"));
        if backend == Backend::Sqlite {
            let line = crate::input_error(env.tapedeck().args(["merge", "./t.db"]));
            assert_eq!(line, "error: cannot merge the store `./t.db` into itself");
        }
    }
}

on_both_stores! {
    fn merge_of_a_missing_store(backend) {
        let env = Env::with_fixtures_on(backend);
        let line = crate::input_error(env.tapedeck().args(["merge", "missing.db"]));
        assert_eq!(line, "error: `missing.db` does not exist");
        assert!(!env.path("missing.db").exists());
    }
}

#[test]
fn rm_then_gc_reclaims_the_run_s_blobs() {
    let env = Env::with_fixtures();
    let out = stdout(env.tapedeck().args(["rm", INCIDENT]));
    assert_eq!(
        out,
        "removed 1 run; `tapedeck gc` reclaims the space of blobs no run uses\n"
    );
    assert_eq!(env.ls_ids(&[]), [LONG_RUN, TOOL_DENIED, CLEAN]);
    let gc = stdout(env.tapedeck().arg("gc"));
    let removed: u64 = gc
        .strip_prefix("removed ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected gc output: {gc}"));
    assert!(
        removed > 0,
        "the incident's own blobs are unreferenced now: {gc}"
    );
    assert!(gc.contains(" unreferenced blobs; store "), "{gc}");
    // Nothing left to collect, and the other runs are whole.
    let again = stdout(env.tapedeck().arg("gc"));
    assert!(
        again.starts_with("removed 0 unreferenced blobs; "),
        "{again}"
    );
    for (name, short, _) in FIXTURES.iter().filter(|(_, short, _)| *short != INCIDENT) {
        let exported = env
            .tapedeck()
            .args(["export", short])
            .output()
            .expect("tapedeck runs");
        let original = std::fs::read(fixture(name)).expect("the fixture");
        assert!(exported.stdout == original, "gc damaged {short}");
    }
}

on_both_stores! {
    fn rm_several_runs_by_prefix(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["rm", "5a1c", "c4f2a903"]));
        assert!(out.starts_with("removed 2 runs;"), "{out}");
        assert_eq!(env.ls_ids(&[]), [LONG_RUN, INCIDENT]);
    }
}

on_both_stores! {
    fn rm_older_than_dry_run_lists_and_keeps(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(
            env.tapedeck()
                .args(["rm", "--older-than", "1d", "--dry-run"]),
        );
        // Whether a fixture is more than a day old depends on today's date (they are dated
        // 2026-11-03 to 2026-11-18): the expectation is computed.
        let old: Vec<&str> = FIXTURES
            .iter()
            .filter(|(_, _, started)| crate::started_at(started) < crate::days_ago(1).as_micros())
            .map(|(_, short, _)| *short)
            .collect();
        for short in &old {
            assert!(out.contains(&format!("would remove {short}\n")), "{out}");
        }
        assert_eq!(out.matches("would remove ").count(), old.len(), "{out}");
        let plural = if old.len() == 1 { "" } else { "s" };
        assert!(
            out.ends_with(&format!("{} run{plural} would be removed\n", old.len())),
            "{out}"
        );
        assert_eq!(env.run_count(), 4, "--dry-run removes nothing");
    }
}

on_both_stores! {
    fn rm_older_than_removes(backend) {
        let env = Env::with_fixtures_on(backend);
        // Older than 100 years: nothing. Older than a minute: every fixture.
        let out = stdout(env.tapedeck().args(["rm", "--older-than", "5200w"]));
        assert!(out.starts_with("removed 0 runs;"), "{out}");
        assert_eq!(env.run_count(), 4);
        let out = stdout(env.tapedeck().args(["rm", "--older-than", "1m"]));
        assert!(out.starts_with("removed 4 runs;"), "{out}");
        assert_eq!(env.run_count(), 0);
    }
}

on_both_stores! {
    fn rm_needs_runs_or_an_age(backend) {
        let env = Env::with_fixtures_on(backend);
        env.tapedeck().arg("rm").assert().code(2);
        env.tapedeck()
            .args(["rm", CLEAN, "--older-than", "1d"])
            .assert()
            .code(2);
        assert_eq!(env.run_count(), 4);
    }
}

#[test]
fn rm_and_gc_need_a_store() {
    let env = Env::new();
    let line = crate::input_error(env.tapedeck().args(["rm", CLEAN]));
    assert_eq!(line, "error: the store `t.db` does not exist");
    let line = crate::input_error(env.tapedeck().arg("gc"));
    assert_eq!(line, "error: the store `t.db` does not exist");
    assert!(!env.store().exists());
}

on_both_stores! {
    fn otel_export_imports_back_as_the_same_run(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args([
            "export",
            INCIDENT,
            "--format",
            "otel",
            "-o",
            "incident.otlp.json",
        ]));
        assert_eq!(out, "");
        assert!(!env.path("incident.otlp.json.partial").exists());
        let text = std::fs::read_to_string(env.path("incident.otlp.json")).expect("the export");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
        let spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .expect("spans");
        assert_eq!(spans[0]["name"], "invoke_agent research-bot");
        assert_eq!(
            spans.len(),
            1 + 16 + 15,
            "a root, one chat span per step, one execute_tool span per call"
        );

        let other = env.path("other.db");
        let out =
            stdout(crate::tapedeck(&other).args(["import", "--format", "otel", "incident.otlp.json"]));
        assert_eq!(
            out,
            format!("imported {INCIDENT} (80 events) from incident.otlp.json\n")
        );
        // The events (and their blobs) are those of the fixture; only the header says `import`.
        let again = stdout(crate::tapedeck(&other).args(["export", INCIDENT]));
        let original =
            std::fs::read_to_string(fixture("browser-retry-incident.jsonl")).expect("the fixture");
        assert_eq!(
            again.lines().skip(1).collect::<Vec<_>>(),
            original.lines().skip(1).collect::<Vec<_>>()
        );
        assert!(
            again
                .lines()
                .next()
                .is_some_and(|h| h.contains(r#""source":"import""#))
        );
        let skipped =
            stdout(crate::tapedeck(&other).args(["import", "--format", "otel", "incident.otlp.json"]));
        assert!(
            skipped.starts_with(&format!("skipped {INCIDENT}")),
            "{skipped}"
        );
    }
}

on_both_stores! {
    fn an_imported_otel_run_diffs_like_any_other(backend) {
        let env = Env::with_fixtures_on(backend);
        stdout(
            env.tapedeck()
                .args(["export", CLEAN, "--format", "otel", "-o", "clean.otlp.json"]),
        );
        let other = env.path("other.db");
        stdout(crate::tapedeck(&other).args(["import", "--format", "otel", "clean.otlp.json"]));
        stdout(
            crate::tapedeck(&other)
                .arg("import")
                .arg(fixture("tool-denied.jsonl")),
        );
        let diff = crate::tapedeck(&other)
            .args(["diff", TOOL_DENIED, CLEAN])
            .output()
            .expect("tapedeck runs");
        let text = String::from_utf8_lossy(&diff.stdout);
        assert!(diff.status.code().is_some_and(|c| c <= 1), "{text}");
        assert!(text.contains("tool_denied:http.post"), "{text}");
    }
}

on_both_stores! {
    /// A tape written at tape version 1 (before `mcp_message.server` and `agent_identity`) imports,
    /// is found by its agent, and exports as the current version.
    fn a_version_1_tape_imports_and_exports_as_the_current_version(backend) {
        let env = Env::on(backend);
        let v1 = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/tapedeck-store/tests/data/tape-v1.jsonl"
        );
        std::fs::copy(v1, env.path("v1.jsonl")).expect("copy the tape");
        let out = stdout(env.tapedeck().args(["import", "v1.jsonl"]));
        assert_eq!(out, format!("imported {CLEAN} (9 events) from v1.jsonl\n"));
        let found = stdout(env.tapedeck().args(["ls", "--agent", "support-bot"]));
        assert!(found.contains(CLEAN), "{found}");
        let exported = stdout(env.tapedeck().args(["export", CLEAN]));
        let header = exported.lines().next().expect("a header");
        assert!(
            header.ends_with(&format!(
                "\"version\":{}}}",
                tapedeck_trace::tape::TAPE_VERSION
            )),
            "{header}"
        );
    }
}
