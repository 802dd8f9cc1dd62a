//! Files that are not (or no longer) a usable store: each gives its own one-line error, never a
//! panic, and a file that is not ours is left untouched.

use std::io::{Seek, SeekFrom, Write};

use tapedeck_store::{RunFilter, SCHEMA_VERSION, Store, StoreError};
use tapedeck_trace::{Run, Source, StopReason};

use crate::support::*;

fn assert_one_line(err: &StoreError) {
    let text = err.to_string();
    assert!(!text.contains('\n'), "multi-line error: {text:?}");
    assert!(!text.is_empty());
}

#[test]
fn a_text_file_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let garbage = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(&path).err().unwrap();
    assert!(
        matches!(&err, StoreError::NotADatabase { path: p } if *p == path),
        "{err:?}"
    );
    assert_one_line(&err);
    assert!(err.to_string().contains("notes.db"), "{err}");
    assert!(err.is_input_error());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        garbage,
        "the file was changed"
    );
}

#[test]
fn another_programs_database_is_foreign_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("places.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE bookmarks (url TEXT); INSERT INTO bookmarks VALUES ('x');",
        )
        .unwrap();
    }
    let before = tapedeck_trace::hash_bytes(&std::fs::read(&path).unwrap());
    let err = Store::open(&path).err().unwrap();
    assert!(
        matches!(&err, StoreError::Foreign { path: p } if *p == path),
        "{err:?}"
    );
    assert_one_line(&err);
    assert!(err.to_string().contains("no `runs` table"), "{err}");
    // Not ours: not migrated, not switched to WAL, no -wal / -shm files left next to it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a foreign database was switched to WAL");
    let after = tapedeck_trace::hash_bytes(&std::fs::read(&path).unwrap());
    assert_eq!(after, before, "a foreign database was modified");
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1);
    drop(conn);
    assert!(!dir.path().join("places.sqlite-wal").exists());
}

#[test]
fn a_store_from_a_newer_tapedeck_is_refused() {
    let tmp = TempStore::new();
    drop(tmp.open());
    tmp.sql().pragma_update(None, "user_version", 99).unwrap();
    let err = Store::open(&tmp.path).err().unwrap();
    match &err {
        StoreError::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!(*found, 99);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_one_line(&err);
    assert!(err.to_string().contains("upgrade tapedeck"), "{err}");
    // The writer refuses it too.
    assert!(matches!(
        tapedeck_store::Writer::start(&tmp.path, Default::default()),
        Err(StoreError::NewerSchema { found: 99, .. })
    ));
    let version: i64 = tmp
        .sql()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99);

    // A newer store is left as it is: one still in rollback-journal mode stays so.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE runs (id TEXT); PRAGMA user_version = 99;")
            .unwrap();
    }
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::NewerSchema { found: 99, .. })
    ));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
}

#[test]
fn a_parent_that_is_a_file_cannot_hold_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("occupied");
    std::fs::write(&file, "x").unwrap();
    let err = Store::open(file.join("sub").join("tapedeck.db"))
        .err()
        .unwrap();
    assert!(matches!(&err, StoreError::CreateDir { .. }), "{err:?}");
    assert_one_line(&err);
    assert!(err.to_string().contains("occupied"), "{err}");
}

/// Builds a store with enough runs and events to span many pages, closed and checkpointed.
fn populated_store() -> TempStore {
    let tmp = TempStore::new();
    {
        let store = tmp.open();
        let writer = store.writer().unwrap();
        for i in 0..6 {
            let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
            for _ in 0..20 {
                record_sample(&mut rec, &"system prompt ".repeat(40), &format!("run{i}"));
            }
            rec.finish(StopReason::Ok, None).unwrap();
        }
        drop(writer);
        store.gc().unwrap();
    }
    assert!(
        !std::path::Path::new(&format!("{}-wal", tmp.path.display())).exists()
            || std::fs::metadata(format!("{}-wal", tmp.path.display()))
                .unwrap()
                .len()
                == 0
    );
    tmp
}

/// Opens the store and reads everything in it; the first error, if any.
fn read_everything(path: &std::path::Path) -> Result<usize, StoreError> {
    let store = Store::open(path)?;
    let mut n = 0;
    for run in store.runs(&RunFilter::default())? {
        for event in store.events(&run.id)? {
            for hash in event.data.blob_refs() {
                store.blob(&hash, &run.id)?;
            }
            n += 1;
        }
        let mut tape = Vec::new();
        store.export_tape(&run.id, &mut tape)?;
    }
    Ok(n)
}

fn overwrite(path: &std::path::Path, from: u64, len: u64) {
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(from)).unwrap();
    let junk: Vec<u8> = (0..len).map(|i| (i * 151 % 251) as u8).collect();
    file.write_all(&junk).unwrap();
}

#[test]
fn a_store_damaged_in_the_middle_is_reported_corrupt() {
    let tmp = populated_store();
    assert!(read_everything(&tmp.path).unwrap() > 1000);
    let len = std::fs::metadata(&tmp.path).unwrap().len();
    assert!(len > 16 * 4096, "{len}");
    // Keep the header page, trash everything from the second page to near the end.
    overwrite(&tmp.path, 4096, len - 2 * 4096);
    let err = read_everything(&tmp.path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. }
        ),
        "{err:?}"
    );
    assert_one_line(&err);
    assert!(
        err.to_string().contains(&tmp.path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_store_with_a_damaged_schema_page_is_reported_corrupt() {
    let tmp = populated_store();
    // Past the 100-byte file header: the first page's b-tree (the schema).
    overwrite(&tmp.path, 100, 3996);
    let err = read_everything(&tmp.path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. }
        ),
        "{err:?}"
    );
    assert_one_line(&err);
}

#[test]
fn a_store_with_a_few_damaged_pages_never_panics() {
    let tmp = populated_store();
    let len = std::fs::metadata(&tmp.path).unwrap().len();
    let pages = len / 4096;
    // Damage single pages one at a time across the file: every outcome is Ok or a
    // classified error, never a panic.
    let original = std::fs::read(&tmp.path).unwrap();
    let mut errors = 0;
    // Eight pages spread over the file keep the test quick.
    for page in (1..pages).step_by((pages / 8).max(1) as usize) {
        std::fs::write(&tmp.path, &original).unwrap();
        overwrite(&tmp.path, page * 4096 + 8, 4000);
        match read_everything(&tmp.path) {
            Ok(_) => {}
            Err(err) => {
                errors += 1;
                assert_one_line(&err);
                assert!(
                    matches!(
                        err,
                        StoreError::Corrupt { .. }
                            | StoreError::NotADatabase { .. }
                            | StoreError::InvalidData { .. }
                            | StoreError::MissingBlob { .. }
                    ),
                    "page {page}: {err:?}"
                );
            }
        }
        let _ = std::fs::remove_file(format!("{}-wal", tmp.path.display()));
        let _ = std::fs::remove_file(format!("{}-shm", tmp.path.display()));
    }
    assert!(errors > 0);
}
