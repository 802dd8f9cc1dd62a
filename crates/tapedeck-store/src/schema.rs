//! The schema and its migrations, versioned by `PRAGMA user_version`.
//!
//! Each entry of [`MIGRATIONS`] takes the schema from version `i` to `i + 1`; migrations are
//! only ever appended. A store whose version is above [`SCHEMA_VERSION`] was written by a newer
//! tapedeck and is refused rather than misread.

use std::path::Path;

use rusqlite::Connection;

use crate::StoreError;
use crate::writer::{commit_or_rollback, retry_busy};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const MIGRATIONS: &[&str] = &[
    // 1: runs, events, blobs.
    r#"
    CREATE TABLE runs (
        key               INTEGER PRIMARY KEY,
        id                TEXT NOT NULL UNIQUE,
        short_id          TEXT NOT NULL,
        source            TEXT NOT NULL,
        suite             TEXT,
        task              TEXT,
        agent_name        TEXT,
        agent_fingerprint TEXT,
        parent_id         TEXT,
        started_at        INTEGER NOT NULL,
        ended_at          INTEGER,
        status            TEXT NOT NULL,
        stop_reason       TEXT,
        steps             INTEGER NOT NULL,
        tool_calls        INTEGER NOT NULL,
        tokens_in         INTEGER,
        tokens_out        INTEGER,
        cost_usd          REAL,
        -- The canonical JSON of the run: the authoritative record. The columns above repeat
        -- parts of it so that `ls` can filter in SQL.
        record            TEXT NOT NULL,
        -- host/pid/start-time of the process recording the run, while it is `running`.
        owner             TEXT
    );
    CREATE INDEX runs_started_at ON runs(started_at);
    CREATE INDEX runs_short_id ON runs(short_id);
    CREATE TABLE run_labels (
        run   INTEGER NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run, key)
    ) WITHOUT ROWID;
    CREATE INDEX run_labels_kv ON run_labels(key, value);
    CREATE TABLE events (
        run  INTEGER NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
        seq  INTEGER NOT NULL,
        at   INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (run, seq)
    ) WITHOUT ROWID;
    CREATE TABLE blobs (
        hash  BLOB PRIMARY KEY,
        codec INTEGER NOT NULL,
        size  INTEGER NOT NULL,
        data  BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE run_blobs (
        run  INTEGER NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
        hash BLOB NOT NULL,
        PRIMARY KEY (run, hash)
    ) WITHOUT ROWID;
    CREATE INDEX run_blobs_hash ON run_blobs(hash);
    "#,
    // 2: content compressed with the store's dictionary (`codec.rs`): `events.data` may be a
    // BLOB and `blobs.codec` may be 2. The tables do not change; the version is what keeps an
    // older build, which reads `events.data` as text, from misreading the store.
    "-- no change to the tables",
    // 3: leases, run id tails, blob ages (POSTGRES.md, "Leases instead of pids").
    // - `runs.lease_until` (microseconds since the epoch): the writer recording a `running` run
    //   renews it; once it lapses, the run is marked `incomplete` (`Store::expire_leases`).
    //   A run left `running` by a tapedeck older than this schema is given an hour from the
    //   migration to finish: its writer cannot renew a lease it does not know of.
    // - `runs.tail`: the last 12 hex digits of the id, so that a run is found by the end of its
    //   id through an index.
    // - `blobs.created_at` (microseconds): a blob no run references yet may be one a recorder is
    //   about to reference, so garbage collection on a shared store keeps young ones. Existing
    //   blobs get the migration time. (SQLite's `ALTER TABLE` takes only constant defaults, so
    //   both new columns get a placeholder first.)
    r#"
    ALTER TABLE runs ADD COLUMN lease_until INTEGER;
    ALTER TABLE runs ADD COLUMN tail TEXT NOT NULL DEFAULT '';
    UPDATE runs SET tail = substr(id, -12);
    UPDATE runs SET lease_until = CAST(strftime('%s', 'now') AS INTEGER) * 1000000 + 3600000000
        WHERE status = 'running';
    CREATE INDEX runs_tail ON runs(tail);
    CREATE INDEX runs_running_lease ON runs(lease_until) WHERE status = 'running';
    ALTER TABLE blobs ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
    UPDATE blobs SET created_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000;
    "#,
];

/// Fails unless the file can be read as a SQLite database.
pub(crate) fn check_readable(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    retry_busy(|| conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
        .map_err(|e| StoreError::from_sqlite(path, e))
}

/// Fails unless the file is a store this build can use (or an empty database that can become
/// one); returns its schema version. Nothing is written, so a file that is not ours is left as
/// it was.
pub(crate) fn check_ours(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let err = |e| StoreError::from_sqlite(path, e);
    // Both in one statement, so from one snapshot: read one after the other, another process
    // can commit the first migration in between, and a store being created looks like a
    // foreign database (version 0, yet tables).
    let (version, tables): (i64, i64) = retry_busy(|| {
        conn.query_row(
            "SELECT (SELECT user_version FROM pragma_user_version),
                    (SELECT count(*) FROM sqlite_schema WHERE type = 'table')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    })
    .map_err(err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 && tables > 0 {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
        });
    }
    Ok(version)
}

/// Brings the schema up to [`SCHEMA_VERSION`] from `version`, as [`check_ours`] found it (the
/// migration itself reads the version again, in its own transaction).
pub(crate) fn migrate(conn: &Connection, path: &Path, version: i64) -> Result<(), StoreError> {
    let err = |e| StoreError::from_sqlite(path, e);
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    retry_busy(|| {
        // IMMEDIATE: two processes opening a new store at once must not both migrate it.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
                conn.execute_batch(sql)?;
                conn.pragma_update(None, "user_version", i as i64 + 1)?;
            }
            Ok(())
        })();
        commit_or_rollback(conn, result, std::convert::identity)
    })
    .map_err(err)
}
