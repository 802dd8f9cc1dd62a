//! Keeping a store tidy: removing runs, dropping unreferenced blobs, merging another store
//! (whole runs, and the events a run lacks: [`Store::merge_from`]).

use std::collections::{BTreeSet, HashMap};

use tapedeck_trace::{ContentHash, Run, RunId, RunStatus, hash_value};

use crate::codec::{self, StoredPayload};
use crate::tape::ImportOutcome;
use crate::writer::{commit_or_rollback, payload_json, retry_busy};
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
    /// Runs that were here with fewer events, or unfinished, and got the other store's later
    /// events and ending (a spool's runs, a copy made while a run was recording).
    pub extended: Vec<RunId>,
    /// Runs that were already here, whole.
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

    /// Copies in every run of `other` that this store does not have, and extends each run both
    /// hold where `other`'s copy goes further: the events after this store's last one are
    /// appended (with their blobs), then, if the run is `running` or `incomplete` here, its row
    /// becomes `other`'s (status, stop reason, totals, record; a run `running` there is
    /// `incomplete` here, as nobody records it here). This is what brings a writer's spool back
    /// into its PostgreSQL store. Idempotent: merging again adds nothing.
    ///
    /// A run that ended here while `other` holds more of its events, or whose copy in `other`
    /// lacks events this store needs to continue from, is a [`StoreError::MergeConflict`].
    pub fn merge_from(&self, other: &Store) -> Result<MergeReport, StoreError> {
        let mut report = MergeReport::default();
        for run in other.runs(&Default::default())?.into_iter().rev() {
            if self.run_key(&run.id)?.is_some() {
                let id = run.id;
                if self.extend_from(other, run)? {
                    report.extended.push(id);
                } else {
                    report.skipped += 1;
                }
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

    /// Brings into this store's copy of `theirs` (a run both stores hold, as `other` has it)
    /// what `other` has more of: later events, an ending. `false` when there is nothing to
    /// bring.
    fn extend_from(&self, other: &Store, mut theirs: Run) -> Result<bool, StoreError> {
        let id = theirs.id;
        let open = |status: RunStatus| matches!(status, RunStatus::Running | RunStatus::Incomplete);
        let mine = self.run(&id)?;
        let (my_last, their_last) = (self.last_seq(&id)?, other.last_seq(&id)?);
        let ends_here = open(mine.status) && !open(theirs.status);
        if their_last <= my_last && !ends_here {
            return Ok(false);
        }
        let conflict = |detail: String| StoreError::MergeConflict {
            run: id.to_string(),
            detail,
        };
        if !open(mine.status) {
            return Err(conflict(format!(
                "it is {} here after event {my_last}, but the other store holds events up to \
                 {their_last}",
                mine.status.as_str()
            )));
        }
        if their_last < my_last {
            return Err(conflict(format!(
                "it is {} in the other store after event {their_last}, but this store holds \
                 events up to {my_last}",
                theirs.status.as_str()
            )));
        }
        let events: Vec<_> = other
            .events(&id)?
            .into_iter()
            .filter(|e| e.seq > my_last)
            .collect();
        // A spool holds only the events after those its store committed: it continues this
        // copy only if it starts where this one stops.
        for (expected, event) in (my_last + 1..).zip(&events) {
            if event.seq != expected {
                return Err(conflict(format!(
                    "this store holds events up to {my_last}, and the other store lacks event \
                     {expected} (its next is {})",
                    event.seq
                )));
            }
        }
        let wanted: BTreeSet<ContentHash> =
            events.iter().flat_map(|e| e.data.blob_refs()).collect();
        let values = self.blobs_for_merge(other, &wanted, &id)?;
        let mut blobs = Vec::with_capacity(values.len());
        for (hash, value) in values {
            let (actual, canonical) = hash_value(&value)?;
            if actual != hash {
                return Err(StoreError::InvalidData {
                    run: id.to_string(),
                    detail: format!(
                        "blob {hash} does not match its content (its hash is {actual})"
                    ),
                });
            }
            blobs.push(codec::encode_blob(hash, canonical));
        }
        let mut rows = Vec::with_capacity(events.len());
        for event in &events {
            rows.push((
                event.seq as i64,
                event.at.as_micros(),
                event.data.kind(),
                StoredPayload::encode(payload_json(&event.data)?),
            ));
        }
        if theirs.status == RunStatus::Running {
            // Nobody records it here.
            theirs.status = RunStatus::Incomplete;
        }
        self.append_to_run(&theirs, blobs, rows)
    }

    /// The blobs `wanted` by events merged from `other` into the run `id`: from `other`, or,
    /// for those `other` lacks (a spool lacks the blobs its store had before it), from this
    /// store, read back so that they are stored again with the run (and count as young for
    /// `gc`).
    fn blobs_for_merge(
        &self,
        other: &Store,
        wanted: &BTreeSet<ContentHash>,
        id: &RunId,
    ) -> Result<HashMap<ContentHash, serde_json::Value>, StoreError> {
        match other.blobs(wanted.iter().copied(), id) {
            Err(StoreError::MissingBlob { .. }) => {}
            found => return found,
        }
        let mut found = HashMap::with_capacity(wanted.len());
        for hash in wanted {
            let value = match other.blob(hash, id) {
                Err(StoreError::MissingBlob { .. }) => match self.blob(hash, id) {
                    Err(StoreError::MissingBlob { .. }) => {
                        return Err(StoreError::MergeConflict {
                            run: id.to_string(),
                            detail: format!(
                                "its events refer to blob {hash}, which neither store holds"
                            ),
                        });
                    }
                    value => value?,
                },
                value => value?,
            };
            found.insert(*hash, value);
        }
        Ok(found)
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
