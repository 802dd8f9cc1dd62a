//! The schema on PostgreSQL: created and upgraded only by `migrate`, refused on open when it is
//! missing, older or newer, and the same tables as the SQLite file's.

use std::collections::BTreeMap;

use tapedeck_store::pg::{self, MigrateReport, PgStore};
use tapedeck_store::{RunFilter, SCHEMA_VERSION, Store, StoreError};
use tapedeck_testkit::postgres;
use tapedeck_trace::StopReason;

use crate::sample::{fixed_id, record_sample, run_with};
use crate::support::{migrated, target};

#[test]
fn a_database_without_a_store_is_refused_until_migrated() {
    let Some(db) = postgres::database() else {
        return;
    };
    let target = target(&db);
    let error = PgStore::open_target(target.clone()).err().expect("refused");
    assert!(
        matches!(error, StoreError::PgNeedsMigration { found: 0, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "run `tapedeck --store {} store migrate`",
            db.url()
        )),
        "{text}"
    );
    assert!(text.contains("holds no store yet"), "{text}");
    // Opening wrote nothing.
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );

    assert_eq!(
        pg::migrate(&target).unwrap(),
        MigrateReport {
            from: 0,
            to: SCHEMA_VERSION
        }
    );
    assert_eq!(
        pg::migrate(&target).unwrap(),
        MigrateReport {
            from: SCHEMA_VERSION,
            to: SCHEMA_VERSION
        },
        "migrating again changes nothing"
    );
    PgStore::open_target(target).unwrap();
    assert_eq!(
        db.psql("SELECT version FROM tapedeck_schema"),
        SCHEMA_VERSION.to_string()
    );
}

/// A store of schema 2, as an older tapedeck left it: runs (one still `running`, from another
/// host) and blobs, without schema 3's columns. Open refuses it with the command to run;
/// `migrate` fills the new columns; the runs read back as they were.
#[test]
fn a_schema_2_store_is_refused_then_upgraded_by_migrate() {
    let Some(db) = postgres::database() else {
        return;
    };
    let target = migrated(&db);
    let store = Store::open_postgres(target.clone()).unwrap();
    let writer = store.writer().unwrap();
    let mut finished = writer.start_run(run_with(&fixed_id(1), 0)).unwrap();
    record_sample(&mut finished, "You are a research bot.", "done");
    finished.finish(StopReason::Ok, None).unwrap();
    let mut running = writer.start_run(run_with(&fixed_id(2), 60)).unwrap();
    record_sample(&mut running, "You are a research bot.", "going");
    running.flush().unwrap();
    drop((running, writer));
    let before = store.runs(&RunFilter::default()).unwrap();
    drop(store);
    // Schema 2: the same tables without schema 3's columns and indexes (dropped columns are
    // invisible, so this is what an older tapedeck's database looks like to this one).
    db.psql(
        "UPDATE runs SET owner = 'ci-runner-7/4242/98765' WHERE status = 'running';
         ALTER TABLE runs DROP COLUMN lease_until, DROP COLUMN tail;
         ALTER TABLE blobs DROP COLUMN created_at;
         UPDATE tapedeck_schema SET version = 2;",
    );

    let error = Store::open_postgres(target.clone()).err().expect("refused");
    assert!(
        matches!(error, StoreError::PgNeedsMigration { found: 2, supported, .. } if supported == SCHEMA_VERSION),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&format!(
            "run `tapedeck --store {} store migrate`",
            db.url()
        )),
        "{error}"
    );
    assert_eq!(
        pg::migrate(&target).unwrap(),
        MigrateReport {
            from: 2,
            to: SCHEMA_VERSION
        }
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM runs WHERE tail = right(id, 12)"),
        "2",
        "every run's tail filled"
    );
    assert_eq!(
        db.psql("SELECT tail FROM runs WHERE status = 'ok'"),
        "000000000001"
    );
    // The run still `running` was recorded by a writer that knew no lease: it gets an hour.
    let lease_left =
        "SELECT (lease_until - (extract(epoch FROM now()) * 1000000)::bigint) / 60000000
                      FROM runs WHERE status = 'running'";
    assert!(
        (58..=60).contains(&db.psql(lease_left).parse::<i64>().unwrap()),
        "{}",
        db.psql(lease_left)
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM runs WHERE status = 'ok' AND lease_until IS NULL"),
        "1"
    );
    // Every blob is as old as the migration.
    assert_eq!(
        db.psql(
            "SELECT count(*) FILTER (WHERE abs(created_at - (extract(epoch FROM now()) * 1000000)::bigint) < 600000000) = count(*)
             FROM blobs"
        ),
        "t"
    );
    let store = Store::open_postgres(target).unwrap();
    assert_eq!(store.runs(&RunFilter::default()).unwrap(), before);
    assert_eq!(
        store.events(&before[0].id).unwrap().len(),
        13,
        "the running run's events"
    );
}

#[test]
fn a_newer_schema_is_refused_by_open_and_by_migrate() {
    let Some(db) = postgres::database() else {
        return;
    };
    let target = migrated(&db);
    let newer = SCHEMA_VERSION + 1;
    db.psql(&format!("UPDATE tapedeck_schema SET version = {newer}"));
    for error in [
        PgStore::open_target(target.clone()).err().expect("refused"),
        pg::migrate(&target).expect_err("refused"),
    ] {
        assert!(
            matches!(error, StoreError::PgNewerSchema { found, .. } if found == newer),
            "{error:?}"
        );
        assert!(error.to_string().contains("upgrade tapedeck"), "{error}");
    }
    assert_eq!(
        db.psql("SELECT version FROM tapedeck_schema"),
        newer.to_string()
    );
}

#[test]
fn a_database_with_another_programs_runs_table_is_left_alone() {
    let Some(db) = postgres::database() else {
        return;
    };
    db.psql("CREATE TABLE runs (x int)");
    let error = pg::migrate(&target(&db)).expect_err("refused");
    assert!(matches!(error, StoreError::PgForeign { .. }), "{error:?}");
    assert_eq!(
        db.psql("SELECT to_regclass('tapedeck_schema') IS NULL"),
        "t",
        "the refused migration left nothing behind"
    );
}

#[test]
fn runners_migrating_at_once_apply_each_migration_once() {
    let Some(db) = postgres::database() else {
        return;
    };
    let target = target(&db);
    let reports: Vec<MigrateReport> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| pg::migrate(&target).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        reports.iter().filter(|r| r.from == 0).count(),
        1,
        "{reports:?}"
    );
    assert!(reports.iter().all(|r| r.to == SCHEMA_VERSION));
}

#[test]
fn the_tables_are_those_of_the_sqlite_store() {
    let Some(db) = postgres::database() else {
        return;
    };
    migrated(&db);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tapedeck.db");
    drop(Store::open(&path).unwrap());
    let sqlite = rusqlite_columns(&path);
    let mut postgres: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in db
        .psql(
            "SELECT table_name, column_name FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'tapedeck_schema'
             ORDER BY table_name, ordinal_position",
        )
        .lines()
    {
        let (table, column) = line.split_once('|').unwrap();
        postgres
            .entry(table.to_owned())
            .or_default()
            .push(column.to_owned());
    }
    // The one difference: PostgreSQL's `events.data` has one type, so a column says how it
    // is stored (SQLite tells by the value's type).
    let events = postgres.get_mut("events").unwrap();
    assert_eq!(events.remove(4), "codec");
    assert_eq!(postgres, sqlite);
}

/// Every table's columns, in order, of the SQLite store at `path`.
fn rusqlite_columns(path: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|table| {
            let columns = conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            (table, columns)
        })
        .collect()
}
