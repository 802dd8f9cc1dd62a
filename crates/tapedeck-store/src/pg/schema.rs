//! The schema of a store on PostgreSQL: the same tables and the same [`SCHEMA_VERSION`] as the
//! SQLite file, in PostgreSQL's dialect.
//!
//! [`PG_MIGRATIONS`] has one entry per entry of SQLite's migrations (the array's length is the
//! schema version, so a migration added to one dialect and not the other does not compile).
//! The version is the one row of `tapedeck_schema`.
//!
//! Unlike a SQLite file, a shared database is never created or upgraded as a side effect of
//! opening it: one upgraded CI runner must not lock out a fleet of older proxies. [`migrate`]
//! (what `tapedeck store migrate` runs) creates or upgrades it; [`check`] (what every open
//! runs) refuses a database at another version, naming the command that fixes it.

use postgres::Client;

use super::PgTarget;
use super::connect::describe;
use crate::StoreError;
use crate::schema::SCHEMA_VERSION;

/// The lock `migrate` holds for its transaction, so that two runners migrating at once apply
/// each migration once (the key is arbitrary: "tapedeck" in ASCII).
const MIGRATION_LOCK: i64 = 0x7461_7065_6465_636b;

/// PostgreSQL's DDL, migration by migration, mirroring `schema::MIGRATIONS` for SQLite.
///
/// Differences from SQLite, each for a reason:
/// - `runs.key` is an identity column (SQLite's rowid);
/// - `events.data` is `bytea` with a `codec` (0: the canonical text as UTF-8, 2: zstd with the
///   dictionary): SQLite tells the two apart by the value's type (`TEXT` or `BLOB`), PostgreSQL
///   columns have one type;
/// - the compressed columns are `STORAGE EXTERNAL`: already zstd, PostgreSQL's own compression
///   would only cost time;
/// - `runs_short_id` and `runs_tail` use `text_pattern_ops`, so resolving a prefix
///   (`LIKE 'ab12%'`) uses the index whatever the database's collation;
/// - times the store sets itself (leases, `blobs.created_at`) are the server's clock.
pub(crate) const PG_MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: runs, events, blobs.
    r#"
    CREATE TABLE runs (
        key               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id                text NOT NULL UNIQUE,
        short_id          text NOT NULL,
        source            text NOT NULL,
        suite             text,
        task              text,
        agent_name        text,
        agent_fingerprint text,
        parent_id         text,
        started_at        bigint NOT NULL,
        ended_at          bigint,
        status            text NOT NULL,
        stop_reason       text,
        steps             bigint NOT NULL,
        tool_calls        bigint NOT NULL,
        tokens_in         bigint,
        tokens_out        bigint,
        cost_usd          double precision,
        record            text NOT NULL,
        owner             text
    );
    CREATE INDEX runs_started_at ON runs (started_at);
    CREATE INDEX runs_short_id ON runs (short_id text_pattern_ops);
    CREATE TABLE run_labels (
        run   bigint NOT NULL REFERENCES runs (key) ON DELETE CASCADE,
        key   text NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (run, key)
    );
    CREATE INDEX run_labels_kv ON run_labels (key, value);
    CREATE TABLE events (
        run   bigint NOT NULL REFERENCES runs (key) ON DELETE CASCADE,
        seq   bigint NOT NULL,
        at    bigint NOT NULL,
        kind  text NOT NULL,
        codec smallint NOT NULL,
        data  bytea NOT NULL,
        PRIMARY KEY (run, seq)
    );
    ALTER TABLE events ALTER COLUMN data SET STORAGE EXTERNAL;
    CREATE TABLE blobs (
        hash  bytea PRIMARY KEY,
        codec smallint NOT NULL,
        size  bigint NOT NULL,
        data  bytea NOT NULL
    );
    ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
    CREATE TABLE run_blobs (
        run  bigint NOT NULL REFERENCES runs (key) ON DELETE CASCADE,
        hash bytea NOT NULL,
        PRIMARY KEY (run, hash)
    );
    CREATE INDEX run_blobs_hash ON run_blobs (hash);
    "#,
    // 2: on SQLite, content compressed with the dictionary. Version 1 here already has
    // `events.codec`, which says how each payload is stored, so nothing changes.
    "SELECT 1",
    // 3: leases, run id tails, blob ages, as on SQLite. Here times are the server's clock
    // (`now()`), so that hosts' clocks need not agree. `blobs.created_at` defaults to the time
    // of the insert: a non-volatile default is evaluated once for the rows already there
    // (without rewriting the table), which gives them the migration time.
    r#"
    ALTER TABLE runs ADD COLUMN lease_until bigint;
    ALTER TABLE runs ADD COLUMN tail text;
    UPDATE runs SET tail = right(id, 12);
    UPDATE runs SET lease_until = (extract(epoch FROM now()) * 1000000)::bigint + 3600000000
        WHERE status = 'running';
    ALTER TABLE runs ALTER COLUMN tail SET NOT NULL;
    CREATE INDEX runs_tail ON runs (tail text_pattern_ops);
    CREATE INDEX runs_running_lease ON runs (lease_until) WHERE status = 'running';
    ALTER TABLE blobs ADD COLUMN created_at bigint NOT NULL
        DEFAULT (extract(epoch FROM now()) * 1000000)::bigint;
    "#,
];

/// What [`migrate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrateReport {
    /// The schema version before (0: the database had no store).
    pub from: i64,
    /// The schema version now ([`SCHEMA_VERSION`]).
    pub to: i64,
}

/// Creates the store's tables in the database `target` names, or upgrades them to
/// [`SCHEMA_VERSION`], in one transaction; several runners may run it at once. A database
/// holding other tables named like ours (`runs`, …) without a version, or a newer schema, is
/// refused and left as it was.
pub fn migrate(target: &PgTarget) -> Result<MigrateReport, StoreError> {
    let mut client = target.connect()?;
    let err = |e: postgres::Error| pg_error(target, &e);
    let mut tx = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(err)?;
    let from = match read_version(&mut tx, target)? {
        Some(version) => version,
        None => {
            if has_table(&mut tx, "runs").map_err(err)? {
                return Err(StoreError::PgForeign {
                    url: target.url().to_owned(),
                });
            }
            tx.batch_execute(
                "CREATE TABLE tapedeck_schema (
                     only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                     version  bigint NOT NULL
                 );
                 INSERT INTO tapedeck_schema (version) VALUES (0);",
            )
            .map_err(err)?;
            0
        }
    };
    if from > SCHEMA_VERSION {
        return Err(newer(target, from));
    }
    for (i, sql) in PG_MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
        tx.batch_execute(sql).map_err(err)?;
        tx.execute(
            "UPDATE tapedeck_schema SET version = $1",
            &[&(i as i64 + 1)],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(MigrateReport {
        from,
        to: SCHEMA_VERSION,
    })
}

/// Fails unless the database holds a store at exactly [`SCHEMA_VERSION`]; writes nothing.
pub fn check(client: &mut Client, target: &PgTarget) -> Result<(), StoreError> {
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(|e| pg_error(target, &e))?;
    let version = read_version(&mut tx, target)?;
    tx.commit().map_err(|e| pg_error(target, &e))?;
    match version {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(found) if found > SCHEMA_VERSION => Err(newer(target, found)),
        found => Err(StoreError::PgNeedsMigration {
            url: target.url().to_owned(),
            found: found.unwrap_or(0),
            supported: SCHEMA_VERSION,
        }),
    }
}

/// The schema version, `None` when the database has no `tapedeck_schema` table.
fn read_version(
    tx: &mut postgres::Transaction<'_>,
    target: &PgTarget,
) -> Result<Option<i64>, StoreError> {
    let err = |e: postgres::Error| pg_error(target, &e);
    if !has_table(tx, "tapedeck_schema").map_err(err)? {
        return Ok(None);
    }
    let row = tx
        .query_one("SELECT version FROM tapedeck_schema", &[])
        .map_err(err)?;
    Ok(Some(row.get(0)))
}

/// Whether the connection's search path reaches a table named `name`.
fn has_table(tx: &mut postgres::Transaction<'_>, name: &str) -> Result<bool, postgres::Error> {
    tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .map(|row| row.get(0))
}

fn newer(target: &PgTarget, found: i64) -> StoreError {
    StoreError::PgNewerSchema {
        url: target.url().to_owned(),
        found,
        supported: SCHEMA_VERSION,
    }
}

pub(crate) fn pg_error(target: &PgTarget, error: &postgres::Error) -> StoreError {
    StoreError::Postgres {
        url: target.url().to_owned(),
        detail: describe(error),
    }
}
