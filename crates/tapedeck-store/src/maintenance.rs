//! Keeping a store tidy: removing runs, dropping unreferenced blobs, merging another store.

use tapedeck_trace::RunId;

use crate::tape::ImportOutcome;
use crate::writer::{commit_or_rollback, retry_busy};
use crate::{Store, StoreError};

/// What `gc` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs no run referenced, now deleted.
    pub blobs_removed: u64,
    /// File size before.
    pub bytes_before: u64,
    /// File size after.
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
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let bytes_before = self.file_size();
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

    /// The size of the store on disk: the file and its write-ahead log.
    pub fn file_size(&self) -> u64 {
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path().as_os_str().to_owned();
        wal.push("-wal");
        size(self.path()) + size(std::path::Path::new(&wal))
    }
}
