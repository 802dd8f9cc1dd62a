//! `tapedeck bench ingest --postgres URL` against a real server (tapedeck-testkit's
//! `postgres`): the report's lines (their numbers filtered: timings are the benchmark's
//! business, not a test's), and what it leaves in the database, which is nothing.

use tapedeck_store::Store;
use tapedeck_testkit::postgres::{self, TestDb};
use tapedeck_testkit::snapshot::insta_settings;
use tapedeck_trace::{Run, Source, StopReason};

use crate::{input_error, stdout, tapedeck_in};

/// Few events: the test checks the report, not the rates.
const EVENTS: &str = "300";

/// `tapedeck bench ingest --events 300 --postgres URL` in a temporary folder.
fn bench_ingest(dir: &std::path::Path, db: &TestDb) -> assert_cmd::Command {
    let mut cmd = tapedeck_in(dir);
    cmd.args([
        "bench",
        "ingest",
        "--events",
        EVENTS,
        "--postgres",
        &db.url(),
    ]);
    cmd
}

/// Records a finished run with `labels` into the (migrated) store at `url`.
fn record_run(url: &str, labels: &[(&str, &str)]) {
    let store = Store::open_url(url).expect("open the store");
    let writer = store.writer().expect("a writer");
    let mut run = Run::new(Source::Runtime);
    for (key, value) in labels {
        run.labels.insert((*key).to_owned(), (*value).to_owned());
    }
    let recorder = writer.start_run(run).expect("start a run");
    recorder.finish(StopReason::Ok, None).expect("finish it");
}

fn run_count(db: &TestDb) -> String {
    db.psql("SELECT count(*) FROM runs")
}

#[test]
fn bench_ingest_postgres_reports_beside_sqlite_and_leaves_nothing() {
    let Some(db) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a folder");
    let out = stdout(&mut bench_ingest(dir.path(), &db));
    let mut settings = insta_settings();
    // Rates are right-aligned: their padding goes with them.
    settings.add_filter(r" +\d+ events/s", "  [RATE] events/s");
    settings.add_filter(r"(baseline:|SQLite|COPY) \d+\.\d\d\b", "$1 [RATIO]");
    settings.add_filter(r"\(\d+ events/s\)", "([RATE] events/s)");
    settings.add_filter(r"\b\d+\.\d MB", "[SIZE] MB");
    settings.add_filter(r"\btest_\d+_\d+\b", "[DB]");
    settings.bind(|| insta::assert_snapshot!("bench_ingest_postgres", out));
    // Both runs deleted, their events with them; the schema stays.
    assert_eq!(run_count(&db), "0");
    assert_eq!(db.psql("SELECT count(*) FROM events"), "0");
    assert_eq!(
        db.psql("SELECT version FROM tapedeck_schema"),
        tapedeck_store::SCHEMA_VERSION.to_string()
    );

    // A second time, the store is there already.
    let out = stdout(&mut bench_ingest(dir.path(), &db));
    let current = format!("(schema version {}):\n", tapedeck_store::SCHEMA_VERSION);
    assert!(out.contains(&current), "{out}");
    assert_eq!(run_count(&db), "0");
}

#[test]
fn bench_ingest_postgres_refuses_a_store_holding_other_runs() {
    let Some(db) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a folder");
    stdout(tapedeck_in(dir.path()).args(["--store", &db.url(), "store", "migrate"]));
    record_run(&db.url(), &[("team", "support")]);
    // What an interrupted benchmark would leave behind.
    record_run(&db.url(), &[("tapedeck-bench", "ingest")]);

    let line = input_error(&mut bench_ingest(dir.path(), &db));
    assert!(
        line.contains("holds 1 run not recorded by `bench ingest`"),
        "{line}"
    );
    assert!(line.contains("give it a database of its own"), "{line}");
    assert_eq!(
        db.psql("SELECT count(*) FROM events"),
        "2",
        "the refused benchmark wrote nothing"
    );

    // With only the leftover of an earlier benchmark in it, the store is the benchmark's: it
    // deletes the leftover and runs.
    db.psql("DELETE FROM runs WHERE key IN (SELECT run FROM run_labels WHERE key = 'team')");
    assert_eq!(run_count(&db), "1");
    stdout(&mut bench_ingest(dir.path(), &db));
    assert_eq!(run_count(&db), "0");
}

#[test]
fn bench_ingest_postgres_refuses_a_store_at_another_schema_version() {
    let Some(db) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a folder");
    stdout(tapedeck_in(dir.path()).args(["--store", &db.url(), "store", "migrate"]));
    db.psql("UPDATE tapedeck_schema SET version = 1");

    let line = input_error(&mut bench_ingest(dir.path(), &db));
    assert!(
        line.contains("migrates only a database without a store"),
        "{line}"
    );
    assert!(line.contains("store migrate"), "{line}");
    assert_eq!(db.psql("SELECT version FROM tapedeck_schema"), "1");
}
