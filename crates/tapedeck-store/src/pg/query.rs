//! The read primitives of a PostgreSQL store: rows as the engine holds them. Decoding and
//! parsing stay in `query.rs`, shared with SQLite (POSTGRES.md, "The seam").

use postgres::types::ToSql;

use super::PgStore;
use super::schema::pg_error;
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

    /// The ids of up to `limit` runs whose short id or id starts with `prefix`, newest first.
    pub(crate) fn ids_with_prefix(
        &self,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{prefix}%");
        let rows = self.query(
            "SELECT id FROM runs WHERE short_id LIKE $1 OR id LIKE $1
             ORDER BY started_at DESC LIMIT $2",
            &[&pattern, &limit],
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

    pub(crate) fn last_seq(&self, key: i64) -> Result<i64, StoreError> {
        let rows = self.query(
            "SELECT coalesce(max(seq), 0) FROM events WHERE run = $1",
            &[&key],
        )?;
        Ok(rows.first().map_or(0, |r| r.get(0)))
    }
}
