//! The first slice of the PostgreSQL backend: a run recorded through the same `Writer` and
//! `Recorder` as on SQLite reads back, with `runs`, `events` and `blobs`, exactly as the same
//! run recorded into a SQLite file does.

use std::collections::HashMap;

use tapedeck_store::{RunFilter, Store, StoreError, WriterOptions};
use tapedeck_testkit::postgres;
use tapedeck_trace::{EventData, Run, RunStatus, StopReason};

use crate::sample::{TempStore, at, fixed_id, record_sample, run_with};
use crate::support::migrated;

/// Records the same runs into `store`: two finished (sharing a blob, with labels), one left
/// running; returns them.
fn record_runs(store: &Store) -> Vec<Run> {
    let writer = store.writer().unwrap();
    let mut runs = Vec::new();
    for (n, (task, label)) in [("vendor-health", "nightly"), ("refund", "canary")]
        .into_iter()
        .enumerate()
    {
        let mut run = run_with(&fixed_id(n as u32 + 1), n as i64 * 60);
        run.task = Some(task.to_owned());
        run.labels.insert("ci".to_owned(), label.to_owned());
        let mut rec = writer.start_run(run).unwrap();
        record_sample(&mut rec, "You are a research bot.", task);
        runs.push(
            rec.finish_at(
                StopReason::Ok,
                Some(format!("{task}: done")),
                at(n as i64 * 60 + 5),
            )
            .unwrap(),
        );
    }
    let mut rec = writer.start_run(run_with(&fixed_id(3), 600)).unwrap();
    record_sample(&mut rec, "You are a research bot.", "still going");
    rec.flush().unwrap();
    runs.push(rec.run());
    // Dropped unfinished: committed, left `running`.
    drop(rec);
    runs
}

/// Every event and blob of every run of `store`.
fn contents(store: &Store) -> Vec<(Run, Vec<tapedeck_trace::Event>, HashMap<String, String>)> {
    store
        .runs(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|run| {
            let events = store.events(&run.id).unwrap();
            let hashes = events.iter().flat_map(|e| e.data.blob_refs());
            let blobs = store
                .blobs(hashes, &run.id)
                .unwrap()
                .into_iter()
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            (run, events, blobs)
        })
        .collect()
}

#[test]
fn a_run_recorded_through_the_writer_reads_back_as_on_sqlite() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let file = TempStore::new();
    let sqlite = file.open();
    let recorded = record_runs(&pg);
    record_runs(&sqlite);

    let on_pg = contents(&pg);
    assert_eq!(on_pg.len(), 3);
    assert_eq!(on_pg, contents(&sqlite));
    // Newest first, as `ls` lists them.
    assert_eq!(on_pg[0].0.id, recorded[2].id);
    assert_eq!(on_pg[0].0.status, RunStatus::Running);
    assert_eq!(on_pg[1].0.answer.as_deref(), Some("refund: done"));
    let events = &on_pg[2].1;
    assert!(matches!(events[0].data, EventData::RunStarted(_)));
    assert!(matches!(
        events.last().unwrap().data,
        EventData::RunFinished(_)
    ));
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=events.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        pg.events_of_kinds(&recorded[0].id, &["tool_call"]).unwrap(),
        sqlite
            .events_of_kinds(&recorded[0].id, &["tool_call"])
            .unwrap()
    );
    assert_eq!(pg.last_seq(&recorded[0].id).unwrap(), events.len() as u64);

    // Content-addressed across runs: the shared system prompt is stored once.
    assert_eq!(
        db.psql("SELECT count(*) FROM blobs"),
        file.count("SELECT count(*) FROM blobs").to_string()
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM run_blobs"),
        file.count("SELECT count(*) FROM run_blobs").to_string()
    );
    // Payloads are stored as on SQLite: compressed when that is smaller.
    assert_ne!(db.psql("SELECT count(*) FROM events WHERE codec = 2"), "0");
    assert_ne!(db.psql("SELECT count(*) FROM events WHERE codec = 0"), "0");
}

#[test]
fn runs_filters_and_ids_resolve_as_on_sqlite() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let file = TempStore::new();
    let sqlite = file.open();
    let recorded = record_runs(&pg);
    record_runs(&sqlite);
    let ids = |store: &Store, filter: RunFilter| -> Vec<String> {
        store
            .runs(&filter)
            .unwrap()
            .into_iter()
            .map(|r| r.id.to_string())
            .collect()
    };
    let filters = [
        RunFilter {
            task: Some("refund".into()),
            ..Default::default()
        },
        RunFilter {
            labels: vec![("ci".into(), "nightly".into())],
            ..Default::default()
        },
        RunFilter {
            status: Some(RunStatus::Running),
            ..Default::default()
        },
        RunFilter {
            stop_reason: Some("ok".into()),
            since: Some(at(30)),
            ..Default::default()
        },
        RunFilter {
            limit: Some(2),
            ..Default::default()
        },
    ];
    for filter in filters {
        let expected = ids(&sqlite, filter.clone());
        assert!(!expected.is_empty(), "{filter:?} selects nothing");
        assert_eq!(ids(&pg, filter.clone()), expected, "{filter:?}");
    }
    let first = recorded[0].id;
    assert_eq!(pg.resolve_run(&first.short()).unwrap(), first);
    assert_eq!(pg.resolve_run(&first.to_string()).unwrap(), first);
    let tail = &first.to_string()[24..];
    assert_eq!(pg.resolve_run(tail).unwrap(), first);
    assert_eq!(sqlite.resolve_run(tail).unwrap(), first);
    // The fixed ids share their first 30 hex digits: a prefix of them is ambiguous.
    assert!(matches!(
        pg.resolve_run("019ac1f2"),
        Err(StoreError::AmbiguousRun { candidates, .. }) if candidates.len() == 3
    ));
    assert!(matches!(
        pg.resolve_run("ffffffff"),
        Err(StoreError::RunNotFound(_))
    ));
}

#[test]
fn a_run_id_already_in_the_store_is_refused_alone() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let options = WriterOptions {
        batch_size: 64,
        ..WriterOptions::default()
    };
    let writer = pg.writer_with(options).unwrap();
    let mut first = writer.start_run(run_with(&fixed_id(7), 0)).unwrap();
    record_sample(&mut first, "shared", "first");
    let error = writer
        .start_run(run_with(&fixed_id(7), 10))
        .err()
        .expect("a duplicate id is refused");
    assert!(matches!(error, StoreError::DuplicateRun(_)), "{error:?}");
    // The other recorder goes on.
    let run = first.finish(StopReason::Ok, None).unwrap();
    assert_eq!(
        pg.events(&run.id).unwrap().len() as u64,
        run_events(&pg, &run)
    );
}

fn run_events(store: &Store, run: &Run) -> u64 {
    store.last_seq(&run.id).unwrap()
}

#[test]
fn a_run_exports_the_same_tape_and_otel_as_on_sqlite() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let file = TempStore::new();
    let sqlite = file.open();
    let runs = record_runs(&pg);
    record_runs(&sqlite);
    for run in &runs {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        pg.export_tape(&run.id, &mut a).unwrap();
        sqlite.export_tape(&run.id, &mut b).unwrap();
        assert!(a.len() > 1000, "a real tape");
        assert_eq!(String::from_utf8(a), String::from_utf8(b));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        pg.export_otel(&run.id, &mut a).unwrap();
        sqlite.export_otel(&run.id, &mut b).unwrap();
        assert_eq!(String::from_utf8(a), String::from_utf8(b));
    }
    // The snapshot ended: the connection reads and writes on.
    assert_eq!(pg.runs(&RunFilter::default()).unwrap().len(), 3);
}

#[test]
fn removed_runs_take_their_rows_with_them() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let runs = record_runs(&pg);
    let unknown = run_with(&fixed_id(99), 0).id;
    assert_eq!(pg.remove_runs(&[runs[0].id, unknown]).unwrap(), 1);
    assert!(matches!(
        pg.events(&runs[0].id),
        Err(StoreError::RunNotFound(_))
    ));
    assert_eq!(pg.runs(&RunFilter::default()).unwrap().len(), 2);
    let key_rows = |table: &str| db.psql(&format!("SELECT count(DISTINCT run) FROM {table}"));
    assert_eq!(key_rows("events"), "2");
    assert_eq!(key_rows("run_blobs"), "2");
    assert_eq!(key_rows("run_labels"), "1");
}

/// `gc` deletes only blobs that no run references and that are older than an hour: a younger
/// one may be about to be referenced by a run being recorded. A blob a recorder sends again is
/// made young again, whoever sent it first.
#[test]
fn gc_removes_old_unreferenced_blobs_only() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let runs = record_runs(&pg);
    let count = |sql: &str| db.psql(sql).parse::<u64>().unwrap();
    let unreferenced = "SELECT count(*) FROM blobs b
                        WHERE NOT EXISTS (SELECT 1 FROM run_blobs rb WHERE rb.hash = b.hash)";
    let total = count("SELECT count(*) FROM blobs");
    // The first run's own blobs (its question, its tool arguments, its answer) lose their
    // last reference; young, they stay.
    pg.remove_runs(&[runs[0].id]).unwrap();
    assert_eq!(count(unreferenced), 3);
    let report = pg.gc().unwrap();
    assert_eq!(report.blobs_removed, 0);
    assert!(
        report.bytes_before > 0 && report.bytes_after > 0,
        "{report:?}"
    );
    assert_eq!(count("SELECT count(*) FROM blobs"), total);

    // Two hours pass for every blob; then a new run sends the shared blobs again, and its own.
    db.psql("UPDATE blobs SET created_at = created_at - 7200000000");
    let writer = pg.writer().unwrap();
    let mut rec = writer.start_run(run_with(&fixed_id(4), 900)).unwrap();
    record_sample(&mut rec, "You are a research bot.", "fresh");
    let fresh = rec.finish(StopReason::Ok, None).unwrap();
    let young = "SELECT count(*) FROM blobs
                 WHERE created_at > (extract(epoch FROM now()) * 1000000)::bigint - 600000000";
    assert_eq!(
        count(young),
        8,
        "the new run's 3 blobs, and the 5 it shares, made young"
    );
    // Its own blobs lose their reference, young.
    pg.remove_runs(&[fresh.id]).unwrap();
    assert_eq!(count(unreferenced), 6);

    let report = pg.gc().unwrap();
    assert_eq!(
        report.blobs_removed, 3,
        "the removed first run's, old and unreferenced"
    );
    assert_eq!(count(unreferenced), 3, "the young ones stay");
    assert_eq!(count("SELECT count(*) FROM blobs"), total);
    // Every remaining run reads back whole: its blobs, old or young, are all there.
    for (run, events, blobs) in contents(&pg) {
        assert!(!events.is_empty() && !blobs.is_empty(), "{}", run.id);
    }
}

/// The fixture tapes' paths.
fn fixture_tapes() -> Vec<std::path::PathBuf> {
    let mut tapes: Vec<_> = std::fs::read_dir(tapedeck_testkit::fixtures_dir().join("tapes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    tapes.sort();
    assert!(tapes.len() >= 4, "{tapes:?}");
    tapes
}

fn export(store: &Store, run: &Run) -> String {
    let mut tape = Vec::new();
    store.export_tape(&run.id, &mut tape).unwrap();
    String::from_utf8(tape).unwrap()
}

#[test]
fn fixture_tapes_import_and_export_byte_for_byte() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    for path in fixture_tapes() {
        let text = std::fs::read_to_string(&path).unwrap();
        let outcome = pg.import_tape(&mut text.as_bytes()).unwrap();
        let tapedeck_store::ImportOutcome::Imported { id, .. } = outcome else {
            panic!("{} was not imported: {outcome:?}", path.display());
        };
        assert_eq!(
            export(&pg, &pg.run(&id).unwrap()),
            text,
            "{}",
            path.display()
        );
        assert_eq!(
            pg.import_tape(&mut text.as_bytes()).unwrap(),
            tapedeck_store::ImportOutcome::AlreadyPresent(id)
        );
    }
}

#[test]
fn a_bad_tape_imports_nothing() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let text = std::fs::read_to_string(&fixture_tapes()[0]).unwrap();
    // Its second event dropped: the first is checked (and its rows gathered), the third is
    // out of sequence.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    let gapped = lines.join("\n") + "\n";
    let error = pg
        .import_tape(&mut gapped.as_bytes())
        .expect_err("a gap in the events");
    assert!(error.to_string().contains("expected event 2"), "{error}");
    assert_eq!(db.psql("SELECT count(*) FROM runs"), "0");
    assert_eq!(db.psql("SELECT count(*) FROM blobs"), "0");
}

#[test]
fn merge_works_both_ways_and_gives_identical_exports() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let laptop = TempStore::new();
    let laptop = laptop.open();
    for path in fixture_tapes() {
        let text = std::fs::read_to_string(&path).unwrap();
        laptop.import_tape(&mut text.as_bytes()).unwrap();
    }
    let runs = record_runs(&laptop);

    let report = pg.merge_from(&laptop).unwrap();
    let total = laptop.runs(&RunFilter::default()).unwrap().len();
    assert_eq!((report.added.len(), report.skipped), (total, 0));
    let again = pg.merge_from(&laptop).unwrap();
    assert_eq!((again.added.len(), again.skipped), (0, total), "idempotent");

    let back = TempStore::new();
    let back = back.open();
    assert_eq!(back.merge_from(&pg).unwrap().added.len(), total);
    for run in laptop.runs(&RunFilter::default()).unwrap() {
        let on_pg = export(&pg, &run);
        assert_eq!(export(&back, &run), on_pg, "{}", run.id);
        if run.status != RunStatus::Running {
            assert_eq!(export(&laptop, &run), on_pg, "{}", run.id);
        }
    }
    // The run left recording on the laptop is `incomplete` once merged (nobody records it
    // there), as a merge into a SQLite file does.
    assert_eq!(pg.run(&runs[2].id).unwrap().status, RunStatus::Incomplete);
    assert_eq!(
        pg.events(&runs[2].id).unwrap(),
        laptop.events(&runs[2].id).unwrap()
    );
}

#[test]
fn stats_and_otel_import_agree_with_sqlite() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let file = TempStore::new();
    let sqlite = file.open();
    for store in [&pg, &sqlite] {
        for path in fixture_tapes() {
            let text = std::fs::read_to_string(&path).unwrap();
            store.import_tape(&mut text.as_bytes()).unwrap();
        }
        record_runs(store);
    }
    let all = RunFilter::default();
    let report = pg.monitor(&all).unwrap();
    assert!(!report.agents.is_empty());
    assert_eq!(report, sqlite.monitor(&all).unwrap());

    // A run's OTLP export imports back into another PostgreSQL store as it does into SQLite.
    let run = sqlite.runs(&all).unwrap().remove(1);
    let mut otlp = Vec::new();
    sqlite.export_otel(&run.id, &mut otlp).unwrap();
    let Some(other) = postgres::database() else {
        return;
    };
    let pg2 = Store::open_postgres(migrated(&other)).unwrap();
    let back = TempStore::new();
    let back = back.open();
    assert_eq!(
        pg2.import_otel(&mut otlp.as_slice()).unwrap(),
        back.import_otel(&mut otlp.as_slice()).unwrap()
    );
    assert_eq!(export(&pg2, &run), export(&back, &run));
}
