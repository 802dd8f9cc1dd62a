//! Keeping a store tidy: removing runs, dropping unreferenced blobs, merging another store.

use tapedeck_trace::RunId;

use crate::tape::ImportOutcome;
use crate::writer::{commit_or_rollback, retry_busy};
use crate::{Store, StoreError};

/// How old an unreferenced blob must be for `gc` to delete it from a PostgreSQL store: a
/// recorder inserts a blob and the rows that reference it in one transaction, but gc's own
/// transactions overlap them; an hour is far beyond any batch.
const GC_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Blobs deleted per transaction by `gc` on PostgreSQL.
const GC_BATCH: i64 = 2000;

/// What `gc` did.
///
/// The sizes are [`Store::file_size`]'s: on SQLite the file and its write-ahead log; on
/// PostgreSQL the whole database as `pg_database_size` counts it. PostgreSQL's plain `VACUUM`
/// keeps the space of deleted rows in the tables for their next rows rather than giving it back
/// to the operating system, so there `bytes_after` seldom falls much below `bytes_before`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs no run referenced, now deleted.
    pub blobs_removed: u64,
    /// The store's size before.
    pub bytes_before: u64,
    /// The store's size after.
    pub bytes_after: u64,
}

/// What `merge` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Runs copied in.
    pub added: Vec<RunId>,
    /// Runs that were already here.
    pub skipped: usize,
}

impl Store {
    /// Removes runs and their events. Their blobs stay until [`Store::gc`].
    pub fn remove_runs(&self, ids: &[RunId]) -> Result<usize, StoreError> {
        if let Some(pg) = self.pg() {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            return pg.remove_runs(&ids);
        }
        let conn = self.conn()?;
        retry_busy(|| {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let removed = ids.iter().try_fold(0, |removed, id| {
                Ok(removed + conn.execute("DELETE FROM runs WHERE id = ?1", [id.to_string()])?)
            });
            commit_or_rollback(conn, removed, std::convert::identity)
        })
        .map_err(|e| self.err(e))
    }

    /// Deletes blobs no run references, then compacts the file.
    ///
    /// On PostgreSQL, where many hosts record at once, only blobs older than an hour are
    /// deleted (a younger one may be about to be referenced by a run being recorded), a few
    /// thousand per transaction so that recorders are never held up for long, then the tables
    /// are vacuumed with a plain `VACUUM (ANALYZE)`, which, unlike `VACUUM FULL`, lets them be
    /// written meanwhile.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let bytes_before = self.file_size();
        if let Some(pg) = self.pg() {
            let blobs_removed = pg.collect_garbage(GC_MIN_AGE, GC_BATCH)?;
            return Ok(GcReport {
                blobs_removed,
                bytes_before,
                bytes_after: self.file_size(),
            });
        }
        let conn = self.conn()?;
        let blobs_removed = retry_busy(|| {
            conn.execute(
                "DELETE FROM blobs WHERE NOT EXISTS
                   (SELECT 1 FROM run_blobs rb WHERE rb.hash = blobs.hash)",
                [],
            )
        })
        .map_err(|e| self.err(e))? as u64;
        retry_busy(|| conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);"))
            .map_err(|e| self.err(e))?;
        Ok(GcReport {
            blobs_removed,
            bytes_before,
            bytes_after: self.file_size(),
        })
    }

    /// Copies in every run of `other` that this store does not have.
    pub fn merge_from(&self, other: &Store) -> Result<MergeReport, StoreError> {
        let mut report = MergeReport::default();
        for run in other.runs(&Default::default())?.into_iter().rev() {
            if self.run_key(&run.id)?.is_some() {
                report.skipped += 1;
                continue;
            }
            let mut tape = Vec::new();
            other.export_tape(&run.id, &mut tape)?;
            match self.import_tape(&mut tape.as_slice())? {
                ImportOutcome::Imported { id, .. } => report.added.push(id),
                ImportOutcome::AlreadyPresent(_) => report.skipped += 1,
            }
        }
        Ok(report)
    }

    /// The size of the store on disk: the file and its write-ahead log; for a PostgreSQL store,
    /// its database's (`pg_database_size`). 0 when it cannot be read.
    pub fn file_size(&self) -> u64 {
        if let Some(pg) = self.pg() {
            return pg.size().unwrap_or(0);
        }
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path().as_os_str().to_owned();
        wal.push("-wal");
        size(self.path()) + size(std::path::Path::new(&wal))
    }
}
