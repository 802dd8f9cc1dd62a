//! Import and export of portable JSONL tapes (format: `tapedeck_trace::tape`).

use std::collections::HashSet;
use std::io::{BufRead, Write};

use rusqlite::{OptionalExtension, params};
use tapedeck_trace::tape::{self, TapeEvent, TapeHeader};
use tapedeck_trace::{ContentHash, RunId, RunStatus, Timestamp, Totals, TraceError, hash_value};

use crate::codec::{self, EncodedBlob, StoredPayload};
use crate::writer::{commit_or_rollback, insert_run, retry_busy, update_run};
use crate::{Store, StoreError};

/// What importing one tape did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The run was added, with this many events.
    Imported {
        /// The run.
        id: RunId,
        /// How many events it has.
        events: u64,
    },
    /// A run with this id was already in the store; nothing changed.
    AlreadyPresent(RunId),
}

impl Store {
    /// Writes a run as a tape. The run and its events are read in one transaction, so a run
    /// still being recorded is exported as one consistent snapshot.
    pub fn export_tape(&self, id: &RunId, out: &mut dyn Write) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.snapshot(|| self.export_snapshot(id, out));
        }
        self.conn()?
            .execute_batch("BEGIN")
            .map_err(|e| self.err(e))?;
        let result = self.export_snapshot(id, out);
        let _ = self.conn()?.execute_batch("COMMIT");
        result
    }

    fn export_snapshot(&self, id: &RunId, out: &mut dyn Write) -> Result<(), StoreError> {
        let run = self.run(id)?;
        out.write_all(tape::to_line(&TapeHeader::new(run))?.as_bytes())?;
        let mut written: HashSet<ContentHash> = HashSet::new();
        for event in self.events(id)? {
            let mut line = TapeEvent {
                blobs: Default::default(),
                event,
            };
            for hash in line.event.data.blob_refs() {
                if written.insert(hash) {
                    line.blobs.insert(hash, self.blob(&hash, id)?);
                }
            }
            out.write_all(tape::to_line(&line)?.as_bytes())?;
        }
        out.flush()?;
        Ok(())
    }

    /// Reads a tape into the store, all or nothing. A run already present is left as it is.
    pub fn import_tape(&self, input: &mut dyn BufRead) -> Result<ImportOutcome, StoreError> {
        let mut lines = input.lines();
        let first = match lines.next() {
            Some(line) => line?,
            None => {
                return Err(TraceError::TapeLine {
                    line: 1,
                    message: "the tape is empty".to_owned(),
                }
                .into());
            }
        };
        let TapeHeader { mut run, .. } = tape::parse_header(&first)?;
        if self.run_key(&run.id)?.is_some() {
            return Ok(ImportOutcome::AlreadyPresent(run.id));
        }
        if run.status == RunStatus::Running {
            // Nobody is recording it here: it ended, somewhere, without finishing.
            run.status = RunStatus::Incomplete;
        }
        if let Some(pg) = self.pg() {
            // Checked whole before one transaction writes it (a tape is bounded by what a run
            // holds); the same checks as SQLite's, through the same `import_events`.
            let mut rows = PgImport::default();
            let events = self.import_events(&mut lines, &mut rows, &run)?;
            return Ok(if pg.import_run(&run, rows.blobs, rows.events)? {
                ImportOutcome::Imported { id: run.id, events }
            } else {
                ImportOutcome::AlreadyPresent(run.id)
            });
        }
        let conn = self.conn()?;
        retry_busy(|| conn.execute_batch("BEGIN IMMEDIATE")).map_err(|e| self.err(e))?;
        let result = (|| {
            let key = insert_run(conn, &run, None, None).map_err(|e| self.err(e))?;
            let mut sink = self.sqlite_import(conn, key)?;
            self.import_events(&mut lines, &mut sink, &run)
        })();
        let events = commit_or_rollback(conn, result, |e| self.err(e))?;
        Ok(ImportOutcome::Imported { id: run.id, events })
    }

    /// Appends `events` (encoded, their sequence numbers following the run's last) and the
    /// `blobs` they refer to to the run `run.id` of this store, and rewrites its row from `run`,
    /// all in one transaction. `false`, with nothing written, when the run is no longer
    /// `running` or `incomplete` here (it ended meanwhile): an ended run takes no more events.
    /// An event already stored fails the whole append (the run is being recorded here too).
    pub(crate) fn append_to_run(
        &self,
        run: &tapedeck_trace::Run,
        blobs: Vec<EncodedBlob>,
        events: Vec<(i64, i64, &'static str, StoredPayload)>,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.append_run(run, blobs, events);
        }
        let conn = self.conn()?;
        retry_busy(|| conn.execute_batch("BEGIN IMMEDIATE")).map_err(|e| self.err(e))?;
        let result = (|| {
            let row: Option<(i64, String)> = conn
                .query_row(
                    "SELECT key, status FROM runs WHERE id = ?1",
                    [run.id.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            let Some((key, status)) = row else {
                return Ok(false);
            };
            if !matches!(status.as_str(), "running" | "incomplete") {
                return Ok(false);
            }
            let mut sink = self.sqlite_import(conn, key)?;
            for blob in blobs {
                sink.blob(blob)?;
            }
            for (seq, at, kind, payload) in events {
                sink.event(seq, at, kind, payload)?;
            }
            update_run(conn, run, None).map_err(|e| self.err(e))?;
            Ok(true)
        })();
        commit_or_rollback(conn, result, |e| self.err(e))
    }

    /// The statements that insert a run's rows into SQLite, for the run `key`.
    fn sqlite_import<'c>(
        &'c self,
        conn: &'c rusqlite::Connection,
        key: i64,
    ) -> Result<SqliteImport<'c>, StoreError> {
        Ok(SqliteImport {
            store: self,
            key,
            insert_event: conn
                .prepare_cached(
                    "INSERT INTO events (run, seq, at, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(|e| self.err(e))?,
            insert_blob: conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO blobs (hash, codec, size, data, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(|e| self.err(e))?,
            insert_run_blob: conn
                .prepare_cached("INSERT OR IGNORE INTO run_blobs (run, hash) VALUES (?1, ?2)")
                .map_err(|e| self.err(e))?,
        })
    }

    /// Checks a tape's event lines and hands their rows to `sink`; the number of events.
    fn import_events(
        &self,
        lines: &mut dyn Iterator<Item = std::io::Result<String>>,
        sink: &mut dyn ImportSink,
        run: &tapedeck_trace::Run,
    ) -> Result<u64, StoreError> {
        let mut known: HashSet<ContentHash> = HashSet::new();
        let mut totals = Totals::default();
        let mut expected_seq = 1u64;
        for (i, line) in lines.enumerate() {
            let line_no = i + 2;
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| TraceError::TapeLine {
                line: line_no,
                message,
            };
            let TapeEvent { event, blobs } = tape::parse_event(&line, line_no)?;
            if event.seq != expected_seq {
                return Err(bad(format!(
                    "expected event {expected_seq}, found event {}",
                    event.seq
                ))
                .into());
            }
            expected_seq += 1;
            for (hash, value) in blobs {
                let (actual, canonical) = hash_value(&value)?;
                if actual != hash {
                    return Err(bad(format!(
                        "blob {hash} does not match its content (its hash is {actual})"
                    ))
                    .into());
                }
                sink.blob(codec::encode_blob(hash, canonical))?;
                known.insert(hash);
            }
            for hash in event.data.blob_refs() {
                if !known.contains(&hash) {
                    return Err(bad(format!(
                        "event {} refers to blob {hash}, which no line up to here contains",
                        event.seq
                    ))
                    .into());
                }
            }
            totals.observe(&event.data);
            let payload = StoredPayload::encode(crate::writer::payload_json(&event.data)?);
            sink.event(
                event.seq as i64,
                event.at.as_micros(),
                event.data.kind(),
                payload,
            )?;
        }
        check_totals(&run.totals, &totals)?;
        Ok(expected_seq - 1)
    }
}

/// Where [`Store::import_events`] puts a checked tape's rows.
trait ImportSink {
    fn blob(&mut self, blob: EncodedBlob) -> Result<(), StoreError>;
    fn event(
        &mut self,
        seq: i64,
        at: i64,
        kind: &'static str,
        payload: StoredPayload,
    ) -> Result<(), StoreError>;
}

/// SQLite: each row inserted at once, in the caller's transaction.
struct SqliteImport<'c> {
    store: &'c Store,
    key: i64,
    insert_event: rusqlite::CachedStatement<'c>,
    insert_blob: rusqlite::CachedStatement<'c>,
    insert_run_blob: rusqlite::CachedStatement<'c>,
}

impl ImportSink for SqliteImport<'_> {
    fn blob(&mut self, blob: EncodedBlob) -> Result<(), StoreError> {
        let hash = blob.hash.as_bytes().as_slice();
        self.insert_blob
            .execute(params![
                hash,
                blob.codec,
                blob.size,
                blob.data,
                Timestamp::now().as_micros()
            ])
            .map_err(|e| self.store.err(e))?;
        self.insert_run_blob
            .execute(params![self.key, hash])
            .map_err(|e| self.store.err(e))?;
        Ok(())
    }

    fn event(
        &mut self,
        seq: i64,
        at: i64,
        kind: &'static str,
        payload: StoredPayload,
    ) -> Result<(), StoreError> {
        self.insert_event
            .execute(params![self.key, seq, at, kind, payload])
            .map_err(|e| self.store.err(e))?;
        Ok(())
    }
}

/// PostgreSQL: the rows gathered, for one transaction once the whole tape is checked.
#[derive(Default)]
struct PgImport {
    blobs: Vec<EncodedBlob>,
    events: Vec<(i64, i64, &'static str, StoredPayload)>,
}

impl ImportSink for PgImport {
    fn blob(&mut self, blob: EncodedBlob) -> Result<(), StoreError> {
        self.blobs.push(blob);
        Ok(())
    }

    fn event(
        &mut self,
        seq: i64,
        at: i64,
        kind: &'static str,
        payload: StoredPayload,
    ) -> Result<(), StoreError> {
        self.events.push((seq, at, kind, payload));
        Ok(())
    }
}

/// The header's totals must be those of its events: `ls`, `stats` and the diff read the
/// header, replay reads the events, and both must tell the same story.
fn check_totals(header: &Totals, events: &Totals) -> Result<(), StoreError> {
    let same_cost = match (header.cost_usd, events.cost_usd) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        (a, b) => a.is_none() && b.is_none(),
    };
    let agree = header.steps == events.steps
        && header.tool_calls == events.tool_calls
        && header.tokens_in == events.tokens_in
        && header.tokens_out == events.tokens_out
        && same_cost;
    if agree {
        return Ok(());
    }
    let show = |t: &Totals| {
        format!(
            "steps {}, tool calls {:?}, tokens {:?}/{:?}, cost {:?}",
            t.steps, t.tool_calls, t.tokens_in, t.tokens_out, t.cost_usd
        )
    };
    Err(TraceError::TapeLine {
        line: 1,
        message: format!(
            "the header's totals ({}) disagree with its events ({})",
            show(header),
            show(events)
        ),
    }
    .into())
}
