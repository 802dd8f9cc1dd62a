//! The read primitives of a PostgreSQL store: rows as the engine holds them. Decoding and
//! parsing stay in `query.rs`, shared with SQLite (POSTGRES.md, "The seam").

use postgres::types::ToSql;

use super::schema::pg_error;
use super::{NOW_MICROS, PgStore};
use crate::StoreError;

/// A parameter of a statement built at run time (`runs`' filter).
pub(crate) type PgParam = Box<dyn ToSql + Sync>;

/// An `events` row: sequence number, time, kind, codec, stored bytes.
pub(crate) type EventRow = (i64, i64, String, i16, Vec<u8>);

/// A `blobs` row: hash, codec, size, stored bytes.
pub(crate) type BlobRow = (Vec<u8>, i16, i64, Vec<u8>);

impl PgStore {
    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .query(sql, params)
            .map_err(|e| pg_error(&self.target, &e))
    }

    /// Runs `f` in one read-only repeatable-read transaction, so that the statements it makes
    /// through this store see one snapshot (a run still being recorded is read consistently).
    pub(crate) fn snapshot<T>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let batch = |sql: &str| {
            self.client
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .batch_execute(sql)
                .map_err(|e| pg_error(&self.target, &e))
        };
        batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let result = f();
        let end = batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let value = result?;
        end.map(|()| value)
    }

    pub(crate) fn run_key(&self, id: &str) -> Result<Option<i64>, StoreError> {
        let rows = self.query("SELECT key FROM runs WHERE id = $1", &[&id])?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    pub(crate) fn run_record(&self, id: &str) -> Result<Option<String>, StoreError> {
        let rows = self.query("SELECT record FROM runs WHERE id = $1", &[&id])?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// The ids of up to `limit` runs whose short id or id starts with `prefix`, or whose tail
    /// is `tail`, newest first.
    pub(crate) fn ids_with_prefix(
        &self,
        prefix: &str,
        tail: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{prefix}%");
        let rows = self.query(
            "SELECT id FROM runs WHERE short_id LIKE $1 OR id LIKE $1 OR tail = $2
             ORDER BY started_at DESC LIMIT $3",
            &[&pattern, &tail, &limit],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Which of `short_ids` more than one run has.
    pub(crate) fn shared_short_ids(&self, short_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let rows = self.query(
            "SELECT short_id FROM runs WHERE short_id = ANY($1)
             GROUP BY short_id HAVING count(*) > 1",
            &[&short_ids],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// `(id, record)` of the runs `sql` selects.
    pub(crate) fn id_records(
        &self,
        sql: &str,
        params: &[PgParam],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        let rows = self.query(sql, &params)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(crate) fn event_rows(
        &self,
        key: i64,
        kinds: Option<&[&str]>,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = match kinds {
            None => self.query(
                "SELECT seq, at, kind, codec, data FROM events WHERE run = $1 ORDER BY seq",
                &[&key],
            )?,
            Some(kinds) => self.query(
                "SELECT seq, at, kind, codec, data FROM events
                 WHERE run = $1 AND kind = ANY($2) ORDER BY seq",
                &[&key, &kinds],
            )?,
        };
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect())
    }

    /// `(hash, codec, size, data)` of the stored blobs among `hashes`.
    pub(crate) fn blob_rows(&self, hashes: &[&[u8]]) -> Result<Vec<BlobRow>, StoreError> {
        let rows = self.query(
            "SELECT hash, codec, size, data FROM blobs WHERE hash = ANY($1)",
            &[&hashes],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    /// Deletes the runs with these ids (their events, labels and blob references with them,
    /// by `ON DELETE CASCADE`); how many there were.
    pub(crate) fn remove_runs(&self, ids: &[String]) -> Result<usize, StoreError> {
        let removed = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .execute("DELETE FROM runs WHERE id = ANY($1)", &[&ids])
            .map_err(|e| pg_error(&self.target, &e))?;
        Ok(removed as usize)
    }

    /// `(id, record)` of the `running` runs whose lease lapsed by the server's clock.
    pub(crate) fn lapsed_runs(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.query(
            &format!(
                "SELECT id, record FROM runs
                 WHERE status = 'running' AND lease_until < {NOW_MICROS}"
            ),
            &[],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Marks the run `id` `incomplete` with `record` (its canonical JSON, so marked), unless
    /// its lease was renewed (or it ended) since [`lapsed_runs`](PgStore::lapsed_runs) saw it.
    pub(crate) fn mark_incomplete(&self, id: &str, record: &str) -> Result<(), StoreError> {
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .execute(
                &format!(
                    "UPDATE runs SET status = 'incomplete', record = $2, owner = NULL,
                         lease_until = NULL
                     WHERE id = $1 AND status = 'running' AND lease_until < {NOW_MICROS}"
                ),
                &[&id, &record],
            )
            .map_err(|e| pg_error(&self.target, &e))?;
        Ok(())
    }

    /// Deletes the blobs no run references that are older than `min_age` (by the server's
    /// clock), `batch` per transaction, then vacuums the tables runs' removal leaves dead rows
    /// in; how many blobs went.
    ///
    /// A blob locked by a recorder (`ON CONFLICT … DO UPDATE` in `pg/writer.rs` locks and, if
    /// old, rejuvenates the blob it is about to reference) is skipped, never waited for.
    pub(crate) fn collect_garbage(
        &self,
        min_age: std::time::Duration,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let min_age = i64::try_from(min_age.as_micros()).unwrap_or(i64::MAX);
        let mut client = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let err = |e: postgres::Error| pg_error(&self.target, &e);
        let delete = format!(
            "DELETE FROM blobs WHERE hash IN (
                 SELECT b.hash FROM blobs b
                 WHERE b.created_at < {NOW_MICROS} - $1
                   AND NOT EXISTS (SELECT 1 FROM run_blobs rb WHERE rb.hash = b.hash)
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             AND created_at < {NOW_MICROS} - $1
             AND NOT EXISTS (SELECT 1 FROM run_blobs rb WHERE rb.hash = blobs.hash)"
        );
        let mut removed = 0;
        loop {
            // Each statement is its own transaction: short, so recorders inserting the same
            // blobs wait for at most one batch.
            let n = client.execute(&delete, &[&min_age, &batch]).map_err(err)?;
            removed += n;
            if n < batch as u64 {
                break;
            }
        }
        // Not in a transaction (VACUUM cannot be): `batch_execute` of one statement sends it
        // alone.
        client
            .batch_execute("VACUUM (ANALYZE) blobs, events, run_blobs")
            .map_err(err)?;
        Ok(removed)
    }

    /// The database's size in bytes (`pg_database_size`: every table, index and TOAST table in
    /// it, this store's and any other's).
    pub(crate) fn size(&self) -> Result<u64, StoreError> {
        let rows = self.query("SELECT pg_database_size(current_database())", &[])?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)).max(0) as u64)
    }

    pub(crate) fn last_seq(&self, key: i64) -> Result<i64, StoreError> {
        let rows = self.query(
            "SELECT coalesce(max(seq), 0) FROM events WHERE run = $1",
            &[&key],
        )?;
        Ok(rows.first().map_or(0, |r| r.get(0)))
    }
}
