//! Bad input: every case exits 2 with one `error:` line on stderr that says what is wrong (no
//! panic, no backtrace), and leaves the store as it was.

use std::path::Path;

use crate::{CLEAN, Env, INCIDENT, fixture, input_error, stdout, tiny_tape};

/// Two made-up runs whose short ids (`abc00001`, `abc00002`) share the prefix `abc`.
const TWIN_A: &str = "01a1a0b0-be20-73b0-8668-0000abc00001";
const TWIN_B: &str = "01a1a0b0-be20-73b0-8668-0000abc00002";
/// A made-up run no fixture shares an id with (short id `dd000001`).
const FRESH: &str = "01a1a0b0-be20-73b0-8668-0000dd000001";

/// Writes `text` to `name` in the test's folder.
fn write(env: &Env, name: &str, text: &str) {
    std::fs::write(env.path(name), text).expect("write a test file");
}

/// The runs table in the store, read with SQLite directly, for stores `tapedeck` refuses.
fn runs_in(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open the store with SQLite");
    conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .expect("count the runs")
}

#[test]
fn store_that_is_a_text_file() {
    let env = Env::new();
    write(&env, "notes.txt", "not a database\n");
    for args in [vec!["ls"], vec!["show", CLEAN], vec!["stats"], vec!["gc"]] {
        let line = input_error(crate::tapedeck(&env.path("notes.txt")).args(&args));
        assert!(
            line.contains("`notes.txt` is not a tapedeck store (not a SQLite database)"),
            "{args:?}: {line}"
        );
    }
    let line = input_error(
        crate::tapedeck(&env.path("notes.txt"))
            .arg("import")
            .arg(fixture("clean.jsonl")),
    );
    assert!(line.contains("is not a tapedeck store"), "{line}");
    let text = std::fs::read_to_string(env.path("notes.txt")).expect("the file");
    assert_eq!(text, "not a database\n", "the file was changed");
}

#[test]
fn store_of_a_newer_schema() {
    let env = Env::with_fixtures();
    {
        let conn = rusqlite::Connection::open(env.store()).expect("open the store");
        conn.pragma_update(None, "user_version", 99)
            .expect("set user_version");
    }
    for args in [vec!["ls"], vec!["show", INCIDENT], vec!["stats", "--all"]] {
        let line = input_error(env.tapedeck().args(&args));
        assert!(
            line.contains("has schema version 99, newer than this tapedeck reads"),
            "{args:?}: {line}"
        );
        assert!(line.ends_with("upgrade tapedeck"), "{line}");
    }
    let line = input_error(env.tapedeck().arg("import").arg(fixture("clean.jsonl")));
    assert!(line.contains("upgrade tapedeck"), "{line}");
    // Refused, not migrated down or written to.
    let conn = rusqlite::Connection::open(env.store()).expect("open the store");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 99);
    assert_eq!(runs_in(&env.store()), 4);
}

#[test]
fn unknown_run_id() {
    let env = Env::with_fixtures();
    for (command, query) in [
        ("show", "deadbeef"),
        ("show", "01a1a0b0-be20-73b0-8668-04f65a1c3e02"),
        ("show", "not-hex"),
        ("export", "deadbeef"),
        ("rm", "deadbeef"),
    ] {
        let line = input_error(env.tapedeck().args([command, query]));
        assert_eq!(
            line,
            format!("error: no run matches `{query}` (see `tapedeck ls`)"),
            "{command}"
        );
    }
    assert_eq!(env.run_count(), 4);
}

#[test]
fn show_and_export_do_not_create_a_missing_store() {
    // `show` and `export` used to open the store for writing: a mistyped --store created an
    // empty store (and its folder) before saying that no run matched.
    let env = Env::new();
    for args in [vec!["show", CLEAN], vec!["export", CLEAN]] {
        let line = input_error(
            crate::tapedeck_in(env.dir.path())
                .args(["--store", "typo/t.db"])
                .args(&args),
        );
        assert!(
            line.starts_with("error: the store `typo/t.db` does not exist"),
            "{args:?}: {line}"
        );
    }
    assert!(!env.path("typo").exists(), "a store was created");
}

#[test]
fn ambiguous_run_id_prefix() {
    let env = Env::with_fixtures();
    write(&env, "a.jsonl", &tiny_tape(TWIN_A));
    write(&env, "b.jsonl", &tiny_tape(TWIN_B));
    stdout(env.tapedeck().args(["import", "a.jsonl", "b.jsonl"]));
    let line = input_error(env.tapedeck().args(["show", "abc"]));
    assert!(
        line.starts_with("error: `abc` matches several runs: "),
        "{line}"
    );
    assert!(line.contains(TWIN_A) && line.contains(TWIN_B), "{line}");
    assert!(
        line.contains("(started 2026-11-20 08:00:00 UTC, task ping)"),
        "{line}"
    );
    assert!(
        line.ends_with("type more of the id, or its last 12 hex digits"),
        "{line}"
    );
    // Each twin by its whole short id; export and rm refuse the prefix as show does.
    assert!(stdout(env.tapedeck().args(["show", "abc00001"])).starts_with("run abc00001 "));
    input_error(env.tapedeck().args(["export", "abc"]));
    input_error(env.tapedeck().args(["rm", "abc"]));
    assert_eq!(env.run_count(), 6);
    // UUIDv7 ids begin with their time: a prefix of the full id is shared by runs of the same
    // period, as the fixtures' `01a1` is.
    let line = input_error(env.tapedeck().args(["show", "01a1"]));
    assert!(line.contains("matches several runs"), "{line}");
}

#[test]
fn malformed_tape_line() {
    let env = Env::with_fixtures();
    let before = env.ls_ids(&[]);
    let tape = tiny_tape(FRESH);
    let mut lines: Vec<&str> = tape.lines().collect();
    lines[2] = "{\"seq\": 2, this is not JSON";
    write(&env, "bad.jsonl", &(lines.join("\n") + "\n"));
    let line = input_error(env.tapedeck().args(["import", "bad.jsonl"]));
    assert!(line.starts_with("error: bad.jsonl: line 3: "), "{line}");
    // All or nothing: the store is as it was.
    assert_eq!(env.ls_ids(&[]), before);
    input_error(env.tapedeck().args(["show", "dd000001"]));
}

#[test]
fn tape_cut_short_mid_line() {
    let env = Env::with_fixtures();
    let tape = tiny_tape(FRESH);
    let cut = &tape[..tape.len() - 20];
    write(&env, "cut.jsonl", cut);
    let last = cut.lines().count();
    let line = input_error(env.tapedeck().args(["import", "cut.jsonl"]));
    assert!(
        line.starts_with(&format!("error: cut.jsonl: line {last}: ")),
        "{line}"
    );
    assert_eq!(env.run_count(), 4);
}

#[test]
fn tape_with_a_missing_event() {
    let env = Env::with_fixtures();
    let tape = tiny_tape(FRESH);
    let mut lines: Vec<&str> = tape.lines().collect();
    lines.remove(2); // event 2
    write(&env, "gap.jsonl", &(lines.join("\n") + "\n"));
    let line = input_error(env.tapedeck().args(["import", "gap.jsonl"]));
    assert_eq!(
        line,
        "error: gap.jsonl: line 3: expected event 2, found event 3"
    );
    assert_eq!(env.run_count(), 4);
}

#[test]
fn empty_tape() {
    let env = Env::new();
    write(&env, "empty.jsonl", "");
    let line = input_error(env.tapedeck().args(["import", "empty.jsonl"]));
    assert_eq!(line, "error: empty.jsonl: line 1: the tape is empty");
    assert_eq!(env.run_count(), 0);
}

#[test]
fn tape_of_a_newer_format_version() {
    let env = Env::new();
    let tape = std::fs::read_to_string(fixture("clean.jsonl")).expect("the fixture");
    let (header, events) = tape.split_once('\n').expect("a header line");
    let current = tapedeck_trace::tape::TAPE_VERSION;
    let newer = current + 1;
    let header = header
        .strip_suffix(&format!("\"version\":{current}}}"))
        .expect("the header ends with its version");
    write(
        &env,
        "newer.jsonl",
        &format!("{header}\"version\":{newer}}}\n{events}"),
    );
    let line = input_error(env.tapedeck().args(["import", "newer.jsonl"]));
    assert!(line.starts_with("error: newer.jsonl: "), "{line}");
    assert!(line.contains(&format!("version {newer}")), "{line}");
    assert!(line.contains("upgrade tapedeck"), "{line}");
    assert_eq!(env.run_count(), 0);
}

#[test]
fn store_whose_parent_is_a_regular_file() {
    let env = Env::new();
    write(&env, "plain", "a file, not a folder\n");
    let store = env.path("plain").join("t.db");
    let line = input_error(
        crate::tapedeck_in(env.dir.path())
            .args(["--store", "plain/t.db", "import"])
            .arg(fixture("clean.jsonl")),
    );
    assert!(
        line.starts_with("error: cannot create the folder `plain` for the store: "),
        "{line}"
    );
    // The cause is said once, not once per error in the chain.
    let cause = line.rsplit(": ").next().expect("a cause");
    assert_eq!(line.matches(cause).count(), 1, "{line}");
    for args in [vec!["demo"], vec!["ls"], vec!["stats"], vec!["show", CLEAN]] {
        let line = input_error(
            crate::tapedeck_in(env.dir.path())
                .args(["--store", "plain/t.db"])
                .args(&args),
        );
        assert!(line.contains("plain"), "{args:?}: {line}");
    }
    assert!(!store.exists());
}

/// Regression: `--store postgres://…` was taken as a path: it created a folder `postgres:` and
/// a SQLite file deep inside it, and recorded there without a word.
#[test]
fn a_bad_store_url_is_refused_before_anything_is_created() {
    let env = Env::new();
    // A password on the command line is refused, and never repeated.
    let url = "postgres://tapedeck:s3cret@db.example:5432/tapedeck";
    let commands = [
        vec!["demo"],
        vec!["ls"],
        vec!["stats"],
        vec!["show", CLEAN],
        vec!["gc"],
    ];
    for args in &commands {
        let line = input_error(
            crate::tapedeck_in(env.dir.path())
                .args(["--store", url])
                .args(args),
        );
        assert_eq!(
            line,
            "error: store `postgres://tapedeck:***@db.example:5432/tapedeck`: the URL holds a password: give it in PGPASSWORD or ~/.pgpass instead, never on the command line",
            "{args:?}"
        );
    }
    // The same from the environment; a server that is not there is named.
    let line = input_error(
        crate::tapedeck_in(env.dir.path())
            .env(
                "TAPEDECK_STORE",
                "postgresql://tapedeck@127.0.0.1:1/tapedeck",
            )
            .arg("import")
            .arg(fixture("clean.jsonl")),
    );
    assert!(
        line.starts_with(
            "error: store `postgresql://tapedeck@127.0.0.1:1/tapedeck`: error connecting to server"
        ),
        "{line}"
    );
    let line = input_error(crate::tapedeck_in(env.dir.path()).args([
        "--store",
        "mysql://root:s3cret@db/x",
        "ls",
    ]));
    assert_eq!(
        line,
        "error: `mysql://` stores are not supported; --store takes a SQLite file path or a postgres:// URL"
    );
    let created: Vec<_> = std::fs::read_dir(env.dir.path())
        .expect("the folder")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert!(created.is_empty(), "created {created:?}");
}

#[test]
fn import_of_a_missing_file() {
    let env = Env::new();
    let line = input_error(env.tapedeck().args(["import", "missing.jsonl"]));
    assert!(
        line.starts_with("error: cannot read `missing.jsonl`: "),
        "{line}"
    );
    // With a good tape before it: an exit 2 writes nothing, so the good one is not imported
    // either (it was, before every input was checked first).
    let line = input_error(
        env.tapedeck()
            .arg("import")
            .arg(fixture("clean.jsonl"))
            .arg("missing.jsonl"),
    );
    assert!(
        line.starts_with("error: cannot read `missing.jsonl`"),
        "{line}"
    );
    assert!(env.ls_ids(&[]).is_empty());
}

// `import good.jsonl bad.jsonl` imported the good tape, then exited 2.
#[test]
fn import_of_several_tapes_with_one_bad_imports_none() {
    let env = Env::new();
    let tape = tiny_tape(FRESH);
    let cut = &tape[..tape.len() - 20];
    write(&env, "cut.jsonl", cut);
    let line = input_error(
        env.tapedeck()
            .arg("import")
            .arg(fixture("clean.jsonl"))
            .arg("cut.jsonl"),
    );
    assert!(line.starts_with("error: cut.jsonl: "), "{line}");
    assert!(env.ls_ids(&[]).is_empty());
}

#[test]
fn export_of_an_unknown_run_writes_no_file() {
    let env = Env::with_fixtures();
    let line = input_error(env.tapedeck().args(["export", "deadbeef", "-o", "x.jsonl"]));
    assert_eq!(line, "error: no run matches `deadbeef` (see `tapedeck ls`)");
    assert!(!env.path("x.jsonl").exists());
    assert!(!env.path("x.jsonl.partial").exists());
}

#[test]
fn merge_of_a_file_that_is_not_a_store() {
    let env = Env::with_fixtures();
    write(&env, "notes.txt", "not a database\n");
    let line = input_error(env.tapedeck().args(["merge", "notes.txt"]));
    assert!(
        line.contains("`notes.txt` is not a tapedeck store"),
        "{line}"
    );
    assert_eq!(env.run_count(), 4);
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::with_fixtures();
    for args in [
        vec!["ls", "--bogus"],
        vec!["frobnicate"],
        vec!["show"],
        vec!["import"],
        vec!["ls", "--status", "fine"],
        vec!["ls", "--since", "yesterday"],
        vec!["ls", "--label", "no-equals-sign"],
        vec!["ls", "-n", "many"],
        vec!["rm", "--older-than", "soon"],
        vec!["export", CLEAN, "--format", "csv"],
    ] {
        let output = env.tapedeck().args(&args).output().expect("tapedeck runs");
        let stderr = String::from_utf8(output.stderr).expect("UTF-8");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // No command at all: the help, on stderr, exit 2.
    let output = env.tapedeck().output().expect("tapedeck runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage: tapedeck"));
    assert_eq!(env.run_count(), 4);
}

#[test]
fn bad_value_messages_say_what_is_expected() {
    let env = Env::new();
    let err = |args: &[&str]| {
        let output = env.tapedeck().args(args).output().expect("tapedeck runs");
        assert_eq!(output.status.code(), Some(2));
        String::from_utf8(output.stderr).expect("UTF-8")
    };
    assert!(
        err(&["ls", "--status", "fine"])
            .contains("expected ok, stopped, error, incomplete or running")
    );
    assert!(err(&["ls", "--since", "yesterday"]).contains("use an age such as 30d"));
    assert!(err(&["ls", "--label", "x"]).contains("use KEY=VALUE"));
    assert!(err(&["rm", "--older-than", "soon"]).contains("`soon` is not an age"));
}
