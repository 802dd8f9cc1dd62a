//! A writer that loses its PostgreSQL store: it reconnects for a while, then records into a
//! SQLite spool and says so, and `merge_from` brings the spool back into the store, appending to
//! the run the store already had the events it lacks. Merging a run both stores hold works the
//! same way between a SQLite file and PostgreSQL, in both directions.
//!
//! The stopped server is one of the test's own (`PgServer::start`): the test run's is shared
//! with every other test.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use tapedeck_store::{Recorder, Store, WriterOptions, pg};
use tapedeck_testkit::postgres;
use tapedeck_trace::{Run, RunId, RunStatus, StopReason};

use crate::sample::{TempStore, at, fixed_id, record_sample, request, response, run_with};
use crate::support::{migrated, target_with};

/// What the writers of this test process said through `WriterOptions::notify`.
static NOTICES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn remember(message: &str) {
    NOTICES.lock().unwrap().push(message.to_owned());
}

fn export(store: &Store, id: &RunId) -> String {
    let mut tape = Vec::new();
    store.export_tape(id, &mut tape).unwrap();
    String::from_utf8(tape).unwrap()
}

/// The first part of a run: the sample's 13 events, then a flush. Returns the committed seq.
fn record_start(rec: &mut Recorder, unique: &str) -> u64 {
    record_sample(rec, "You are a research bot.", unique);
    rec.flush().unwrap()
}

/// The rest of a run: a third step whose request refers to a blob sent in the first part (so
/// not sent again) and to a new one, its answer, and the ending.
fn record_rest(rec: &mut Recorder, unique: &str) -> Run {
    let system = rec
        .blob(&json!({"role": "system", "content": "You are a research bot."}))
        .unwrap();
    let user = rec
        .blob(&json!({"role": "user", "content": format!("{unique}: and now?")}))
        .unwrap();
    let answer = rec
        .blob(&json!({"role": "assistant", "content": format!("{unique} is back")}))
        .unwrap();
    rec.append_at(request(3, vec![system, user], None), at(20))
        .unwrap();
    rec.append_at(response(3, answer, &[], Some((70, 5)), Some(0.003)), at(21))
        .unwrap();
    rec.finish_at(StopReason::Ok, Some(format!("{unique} is back")), at(22))
        .unwrap()
}

#[test]
fn a_run_goes_on_into_a_spool_while_its_server_is_down_and_merge_brings_it_back() {
    let bindir = postgres::find_bindir();
    if !tapedeck_testkit::clients::require("PostgreSQL", bindir.is_some(), postgres::INSTALL) {
        return;
    }
    let server = postgres::PgServer::start(bindir.unwrap());
    let target = target_with(&server.create_database("spool"), &[]).unwrap();
    pg::migrate(&target).unwrap();
    // What the recorder recorded, recorded the same way into a SQLite file that stays up.
    let reference = TempStore::new();
    let reference = reference.open();
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let options = WriterOptions {
        spool_after: Duration::from_secs(1),
        spool_dir: spool_dir.clone(),
        notify: remember,
        ..WriterOptions::default()
    };
    let (a, b) = (fixed_id(41).parse().unwrap(), fixed_id(42).parse().unwrap());

    let store = Store::open_postgres(target.clone()).unwrap();
    let writer = store.writer_with(options).unwrap();
    let mut rec = writer.start_run(run_with(&fixed_id(41), 0)).unwrap();
    let committed = record_start(&mut rec, "a");
    assert_eq!(committed, 13);
    drop(store);
    server.stop_immediately();

    // The run goes on: its events wait for the writer, which reconnects in vain for a second,
    // then records into a spool. A run started meanwhile goes there whole.
    let ended_a = record_rest(&mut rec, "a");
    let mut rec_b = writer.start_run(run_with(&fixed_id(42), 30)).unwrap();
    record_start(&mut rec_b, "b");
    let ended_b = record_rest(&mut rec_b, "b");
    assert_eq!(rec.committed_seq(), 16, "committed, to the spool");
    assert_eq!(ended_a.status, RunStatus::Ok);

    let spool = writer.spool().expect("the writer says where it spools");
    assert!(spool.is_file(), "{}", spool.display());
    let name = spool.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(spool.starts_with(&spool_dir), "{}", spool.display());
    assert!(
        name.ends_with(".db") && name.contains(&format!("-{}-", std::process::id())),
        "{name}"
    );
    let notices = NOTICES.lock().unwrap().clone();
    assert_eq!(notices.len(), 1, "said once: {notices:?}");
    let notice = &notices[0];
    for part in [
        "unreachable since".to_owned(),
        format!("recording into {}", spool.display()),
        format!(
            "`tapedeck --store {} merge {}`",
            target.url(),
            spool.display()
        ),
    ] {
        assert!(notice.contains(&part), "{part:?} in {notice}");
    }
    drop((rec, rec_b, writer));

    for (n, start, unique) in [(41, 0, "a"), (42, 30, "b")] {
        let writer = reference.writer().unwrap();
        let mut rec = writer.start_run(run_with(&fixed_id(n), start)).unwrap();
        record_start(&mut rec, unique);
        record_rest(&mut rec, unique);
    }

    server.start_again();
    let pg = Store::open_postgres(target).unwrap();
    assert_eq!(pg.last_seq(&a).unwrap(), committed, "before the merge");
    let spooled = Store::open(&spool).unwrap();
    let report = pg.merge_from(&spooled).unwrap();
    assert_eq!(
        (report.added.as_slice(), report.extended.as_slice()),
        ([b].as_slice(), [a].as_slice())
    );
    for (id, ended) in [(&a, &ended_a), (&b, &ended_b)] {
        let events = pg.events(id).unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=16).collect::<Vec<_>>(), "{id}");
        assert_eq!(events, reference.events(id).unwrap(), "{id}");
        let run = pg.run(id).unwrap();
        assert_eq!(run, reference.run(id).unwrap(), "{id}");
        assert_eq!(
            (run.status, &run.answer, run.ended_at, run.totals.steps),
            (
                ended.status,
                &ended.answer,
                ended.ended_at,
                ended.totals.steps
            ),
            "{id}: the recorder's ending"
        );
        assert_eq!(export(&pg, id), export(&reference, id), "{id}");
    }
    let again = pg.merge_from(&spooled).unwrap();
    assert_eq!(
        (again.added.len(), again.extended.len(), again.skipped),
        (0, 0, 2),
        "a second merge adds nothing"
    );
}

#[test]
fn a_server_back_in_time_gets_the_run_without_a_spool() {
    let bindir = postgres::find_bindir();
    if !tapedeck_testkit::clients::require("PostgreSQL", bindir.is_some(), postgres::INSTALL) {
        return;
    }
    let server = postgres::PgServer::start(bindir.unwrap());
    let target = target_with(&server.create_database("back"), &[]).unwrap();
    pg::migrate(&target).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = WriterOptions {
        spool_after: Duration::from_secs(60),
        spool_dir: dir.path().join("spool"),
        ..WriterOptions::default()
    };
    let id: RunId = fixed_id(43).parse().unwrap();
    let store = Store::open_postgres(target.clone()).unwrap();
    let writer = store.writer_with(options).unwrap();
    let mut rec = writer.start_run(run_with(&fixed_id(43), 0)).unwrap();
    record_start(&mut rec, "a");
    drop(store);
    server.stop_immediately();
    // The run goes on while the server is down; its events wait for the writer, which
    // reconnects once the server is back and stores the batch it kept.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            server.start_again();
        });
        record_rest(&mut rec, "a");
    });
    assert_eq!(writer.spool(), None);
    assert!(!dir.path().join("spool").exists());
    let pg = Store::open_postgres(target).unwrap();
    let seqs: Vec<u64> = pg.events(&id).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=16).collect::<Vec<_>>());
    assert_eq!(pg.run(&id).unwrap().status, RunStatus::Ok);
}

#[test]
fn merge_appends_to_a_run_copied_while_it_was_recording_in_both_directions() {
    let Some(db) = postgres::database() else {
        return;
    };
    let pg = Store::open_postgres(migrated(&db)).unwrap();
    let file = TempStore::new();
    let sqlite = file.open();
    for (n, (from, into)) in [(&sqlite, &pg), (&pg, &sqlite)].into_iter().enumerate() {
        let id: RunId = fixed_id(50 + n as u32).parse().unwrap();
        let writer = from.writer().unwrap();
        let mut rec = writer.start_run(run_with(&id.to_string(), 0)).unwrap();
        let unique = format!("copy {n}");
        record_start(&mut rec, &unique);
        // A copy made while the run records: it stops at event 13, `incomplete` there.
        let copy = into.merge_from(from).unwrap();
        assert_eq!(copy.added, vec![id]);
        assert_eq!(into.run(&id).unwrap().status, RunStatus::Incomplete);
        assert_eq!(into.last_seq(&id).unwrap(), 13);

        let ended = record_rest(&mut rec, &unique);
        let report = into.merge_from(from).unwrap();
        assert_eq!((report.added.len(), report.extended), (0, vec![id]));
        let merged = into.run(&id).unwrap();
        assert_eq!(merged, from.run(&id).unwrap());
        assert_eq!(
            (merged.status, &merged.answer, merged.ended_at),
            (ended.status, &ended.answer, ended.ended_at)
        );
        assert_eq!(export(into, &id), export(from, &id));
        let again = into.merge_from(from).unwrap();
        assert!(again.added.is_empty() && again.extended.is_empty());
        assert_eq!(export(into, &id), export(from, &id));
    }
}
