//! The writer thread's batches into PostgreSQL ([`PgSink`]): one transaction a batch, the
//! events and blobs of the batch as one multi-row insert each, the leases of the writer's runs
//! renewed by one statement when due.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use postgres::{Client, Transaction};
use tapedeck_trace::{Run, RunId, Timestamp, canonical_json};

use super::connect::describe;
use super::{NOW_MICROS, PgTarget};
use crate::StoreError;
use crate::writer::{ActiveRun, BatchEffects, Failure, Op};

/// How long a failed batch's connection is given to answer a ping, which tells a lost
/// connection from a statement the server refused.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// A writer thread's connection to a PostgreSQL store.
pub(crate) struct PgSink {
    target: PgTarget,
    client: Client,
}

impl PgSink {
    /// Connects, and checks the schema as every open does.
    pub(crate) fn connect(target: &PgTarget) -> Result<Self, StoreError> {
        let mut client = target.connect()?;
        super::check(&mut client, target)?;
        Ok(Self {
            target: target.clone(),
            client,
        })
    }

    /// Replaces a lost connection with a new one (the schema checked again: the store may
    /// have been restored or upgraded meanwhile).
    pub(crate) fn reconnect(&mut self) -> Result<(), StoreError> {
        *self = Self::connect(&self.target)?;
        Ok(())
    }

    /// Applies a batch in one transaction, runs started in it getting a lease of `lease`
    /// microseconds, and renews the leases of the runs `renew` (keys) in it; the server's words
    /// on failure, and whether the connection was lost (then the batch may be applied again).
    ///
    /// `again`: the batch is applied a second time, after its connection was lost. Its first
    /// transaction may have committed with only the reply lost, so a run it starts that is
    /// already there under this writer's `owner` is taken as started, and events already there
    /// are left as they are, instead of refusing the run as a duplicate or failing the batch.
    pub(crate) fn apply(
        &mut self,
        batch: &[Op],
        owner: &str,
        active: &HashMap<RunId, ActiveRun>,
        lease: i64,
        renew: &[i64],
        again: bool,
    ) -> Result<BatchEffects, Failure> {
        let result = self.apply_once(batch, owner, active, lease, renew, again);
        result.map_err(|detail| Failure {
            detail,
            connection_lost: self.client.is_closed() || self.client.is_valid(PING_TIMEOUT).is_err(),
        })
    }

    fn apply_once(
        &mut self,
        batch: &[Op],
        owner: &str,
        active: &HashMap<RunId, ActiveRun>,
        lease: i64,
        renew: &[i64],
        again: bool,
    ) -> Result<BatchEffects, String> {
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| describe(&e))
            .described()?;
        let effects = apply_in(&mut tx, batch, owner, active, lease, again)?;
        if !renew.is_empty() {
            // The server's clock, as every lease: hosts' clocks need not agree. Runs no longer
            // `running` (ended, or marked `incomplete` by another host after a stall) stay so.
            tx.execute(
                &format!(
                    "UPDATE runs SET lease_until = {NOW_MICROS} + $2
                     WHERE key = ANY($1) AND status = 'running'"
                ),
                &[&renew, &lease],
            )
            .described()?;
        }
        tx.commit().map_err(|e| describe(&e))?;
        Ok(effects)
    }
}

/// The rows of a batch, gathered to be inserted with one statement a table.
#[derive(Default)]
struct Rows {
    event_runs: Vec<i64>,
    event_seqs: Vec<i64>,
    event_ats: Vec<i64>,
    event_kinds: Vec<&'static str>,
    event_codecs: Vec<i16>,
    event_data: Vec<Vec<u8>>,
    /// By hash, so that two hosts inserting the same blobs take their locks in the same order
    /// and cannot deadlock; `(codec, size, data)`.
    blobs: BTreeMap<Vec<u8>, (i16, i64, Vec<u8>)>,
    run_blobs: BTreeMap<(i64, Vec<u8>), ()>,
    /// Events already stored are left as they are (a batch applied again: `PgSink::apply`).
    again: bool,
}

/// The key of `run` when this writer (`owner`) already inserted it: the first try of a batch
/// applied again committed.
fn own_run_key(tx: &mut Transaction<'_>, run: &Run, owner: &str) -> Result<Option<i64>, String> {
    let row = tx
        .query_opt(
            "SELECT key FROM runs WHERE id = $1 AND owner = $2",
            &[&run.id.to_string(), &owner],
        )
        .described()?;
    Ok(row.map(|r| r.get(0)))
}

fn apply_in(
    tx: &mut Transaction<'_>,
    batch: &[Op],
    owner: &str,
    active: &HashMap<RunId, ActiveRun>,
    lease: i64,
    again: bool,
) -> Result<BatchEffects, String> {
    let mut effects = BatchEffects::default();
    let mut new_keys: HashMap<RunId, i64> = HashMap::new();
    let key_of = |id: &RunId, new_keys: &HashMap<RunId, i64>| {
        new_keys
            .get(id)
            .copied()
            .or_else(|| active.get(id).map(|a| a.key))
    };
    let mut rows = Rows::default();
    for op in batch {
        match op {
            Op::Start { run, committed, .. } => {
                let key = match insert_run(tx, run, Some(owner), Some(lease))? {
                    None if again => own_run_key(tx, run, owner)?,
                    key => key,
                };
                match key {
                    // A duplicate id is refused alone, as on SQLite.
                    None => effects.duplicates.push(run.id),
                    Some(key) => {
                        new_keys.insert(run.id, key);
                        effects
                            .started
                            .push((run.id, key, (**run).clone(), Arc::clone(committed)));
                    }
                }
            }
            Op::Event {
                run,
                seq,
                at,
                kind,
                payload,
                totals,
            } => {
                let Some(key) = key_of(run, &new_keys) else {
                    continue;
                };
                let (codec, data) = payload.to_parts();
                rows.event_runs.push(key);
                rows.event_seqs.push(*seq as i64);
                rows.event_ats.push(*at);
                rows.event_kinds.push(kind);
                rows.event_codecs.push(codec);
                rows.event_data.push(data.to_vec());
                effects.max_seq.insert(*run, *seq);
                if let Some(totals) = totals {
                    effects.totals.insert(*run, (**totals).clone());
                }
            }
            Op::Blob { run, blob } => {
                let Some(key) = key_of(run, &new_keys) else {
                    continue;
                };
                let hash = blob.hash.as_bytes().to_vec();
                rows.run_blobs.insert((key, hash.clone()), ());
                rows.blobs
                    .entry(hash)
                    .or_insert_with(|| (blob.codec as i16, blob.size, blob.data.clone()));
            }
            Op::Finish { run, .. } => {
                update_run(tx, run, None).described()?;
                effects.finished.push(run.id);
                effects.totals.remove(&run.id);
            }
            Op::Flush { .. } | Op::Shutdown => {}
        }
    }
    rows.again = again;
    insert_rows(tx, rows).described()?;
    for (id, totals) in &effects.totals {
        let base = effects
            .started
            .iter()
            .find(|(sid, ..)| sid == id)
            .map(|(_, _, run, _)| run)
            .or_else(|| active.get(id).map(|a| &a.run));
        if let Some(base) = base {
            let mut run = base.clone();
            run.totals = totals.clone();
            update_run(tx, &run, Some(owner)).described()?;
        }
    }
    Ok(effects)
}

fn insert_rows(tx: &mut Transaction<'_>, rows: Rows) -> Result<(), String> {
    if !rows.blobs.is_empty() {
        let mut hashes = Vec::with_capacity(rows.blobs.len());
        let (mut codecs, mut sizes, mut data) = (Vec::new(), Vec::new(), Vec::new());
        for (hash, (codec, size, bytes)) in rows.blobs {
            hashes.push(hash);
            codecs.push(codec);
            sizes.push(size);
            data.push(bytes);
        }
        // `created_at` is the server's time of the insert (the column's default). A blob
        // already there is locked by the conflict, and one older than half an hour is made
        // young again: `gc` may be deleting it as no run referenced it, and this batch is
        // about to; the lock makes `gc` wait for this transaction and the new age makes it
        // pass the blob over.
        tx.execute(
            "INSERT INTO blobs (hash, codec, size, data)
             SELECT * FROM unnest($1::bytea[], $2::smallint[], $3::bigint[], $4::bytea[])
             ON CONFLICT (hash) DO UPDATE SET created_at = excluded.created_at
             WHERE blobs.created_at < excluded.created_at - 1800000000",
            &[&hashes, &codecs, &sizes, &data],
        )
        .described()?;
    }
    if !rows.run_blobs.is_empty() {
        let (runs, hashes): (Vec<i64>, Vec<Vec<u8>>) = rows.run_blobs.into_keys().unzip();
        tx.execute(
            "INSERT INTO run_blobs (run, hash)
             SELECT * FROM unnest($1::bigint[], $2::bytea[])
             ON CONFLICT DO NOTHING",
            &[&runs, &hashes],
        )
        .described()?;
    }
    if !rows.event_runs.is_empty() {
        // A recorder's sequence numbers are new, so a conflict is an error, but for a batch
        // applied again.
        let on_conflict = if rows.again {
            "ON CONFLICT DO NOTHING"
        } else {
            ""
        };
        tx.execute(
            &format!(
                "INSERT INTO events (run, seq, at, kind, codec, data)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[],
                                      $5::smallint[], $6::bytea[])
                 {on_conflict}"
            ),
            &[
                &rows.event_runs,
                &rows.event_seqs,
                &rows.event_ats,
                &rows.event_kinds,
                &rows.event_codecs,
                &rows.event_data,
            ],
        )
        .described()?;
    }
    Ok(())
}

/// Inserts a run row and its labels; its key, or `None` when a run with its id is already in
/// the store (nothing is written then). A run being recorded has an owner and a lease of
/// `lease` microseconds from now (the server's clock); an imported one neither.
pub(crate) fn insert_run(
    tx: &mut Transaction<'_>,
    run: &Run,
    owner: Option<&str>,
    lease: Option<i64>,
) -> Result<Option<i64>, String> {
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO runs (id, short_id, source, suite, task, parent_id, started_at,
                     status, steps, tool_calls, record, tail, lease_until)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', 0, 0, '', $8,
                     {NOW_MICROS} + $9::bigint)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING key"
            ),
            &[
                &run.id.to_string(),
                &run.id.short(),
                &run.source.as_str(),
                &run.suite,
                &run.task,
                &run.parent.map(|p| p.to_string()),
                &run.started_at.as_micros(),
                &run.id.tail(),
                &lease,
            ],
        )
        .described()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let key: i64 = row.get(0);
    update_run(tx, run, owner).described()?;
    for (k, v) in &run.labels {
        tx.execute(
            "INSERT INTO run_labels (run, key, value) VALUES ($1, $2, $3)",
            &[&key, k, v],
        )
        .described()?;
    }
    Ok(Some(key))
}

/// Rewrites a run row's outcome, totals and agent from `run` (as `writer::update_run` does on
/// SQLite); a run no longer `running` loses its lease.
pub(crate) fn update_run(
    tx: &mut Transaction<'_>,
    run: &Run,
    owner: Option<&str>,
) -> Result<(), String> {
    let record = canonical_json(run).map_err(|e| format!("run {}: {e}", run.id))?;
    tx.execute(
        "UPDATE runs SET ended_at = $2, status = $3, stop_reason = $4, steps = $5,
             tool_calls = $6, tokens_in = $7, tokens_out = $8, cost_usd = $9, record = $10,
             owner = $11, agent_name = $12, agent_fingerprint = $13,
             lease_until = CASE WHEN $3 = 'running' THEN lease_until END
         WHERE id = $1",
        &[
            &run.id.to_string(),
            &run.ended_at.map(Timestamp::as_micros),
            &run.status.as_str(),
            &run.stop_reason.as_ref().map(ToString::to_string),
            &(run.totals.steps as i64),
            &(run.totals.tool_calls_total() as i64),
            &run.totals.tokens_in.map(|t| t as i64),
            &run.totals.tokens_out.map(|t| t as i64),
            &run.totals.cost_usd,
            &record,
            &owner,
            &run.agent.as_ref().map(|a| a.name.as_str()),
            &run.agent.as_ref().map(|a| a.fingerprint.as_str()),
        ],
    )
    .described()?;
    Ok(())
}

/// The server's words for a failed statement, as the writer reports them.
trait Described<T> {
    fn described(self) -> Result<T, String>;
}

impl<T> Described<T> for Result<T, postgres::Error> {
    fn described(self) -> Result<T, String> {
        self.map_err(|e| describe(&e))
    }
}

impl<T> Described<T> for Result<T, String> {
    fn described(self) -> Result<T, String> {
        self
    }
}

impl super::PgStore {
    /// Inserts a checked run (an imported tape's) with its blobs and events in one
    /// transaction; `false`, with nothing written, when a run with its id is already there.
    pub(crate) fn import_run(
        &self,
        run: &Run,
        blobs: Vec<crate::codec::EncodedBlob>,
        events: Vec<(i64, i64, &'static str, crate::codec::StoredPayload)>,
    ) -> Result<bool, StoreError> {
        self.write_transaction(|tx| {
            let Some(key) = insert_run(tx, run, None, None)? else {
                return Ok(false);
            };
            insert_rows(tx, Rows::of_run(key, blobs, events))?;
            Ok(true)
        })
    }

    /// `Store::append_to_run` on PostgreSQL: the rows appended and the run's row rewritten in
    /// one transaction, the run's row locked first; `false`, with nothing written, when the run
    /// is gone or no longer `running` or `incomplete`.
    pub(crate) fn append_run(
        &self,
        run: &Run,
        blobs: Vec<crate::codec::EncodedBlob>,
        events: Vec<(i64, i64, &'static str, crate::codec::StoredPayload)>,
    ) -> Result<bool, StoreError> {
        self.write_transaction(|tx| {
            let row = tx
                .query_opt(
                    "SELECT key, status FROM runs WHERE id = $1 FOR UPDATE",
                    &[&run.id.to_string()],
                )
                .described()?;
            let Some(row) = row else {
                return Ok(false);
            };
            let (key, status): (i64, String) = (row.get(0), row.get(1));
            if !matches!(status.as_str(), "running" | "incomplete") {
                return Ok(false);
            }
            insert_rows(tx, Rows::of_run(key, blobs, events))?;
            update_run(tx, run, None)?;
            Ok(true)
        })
    }

    /// Runs `write` in one transaction of this store's connection, committed when it returns
    /// `Ok(true)` and rolled back otherwise; a failure names the store.
    fn write_transaction(
        &self,
        write: impl FnOnce(&mut Transaction<'_>) -> Result<bool, String>,
    ) -> Result<bool, StoreError> {
        let err = |detail: String| StoreError::Postgres {
            url: self.target().url().to_owned(),
            detail,
        };
        let mut client = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut tx = client.transaction().described().map_err(err)?;
        if !write(&mut tx).map_err(err)? {
            return Ok(false);
        }
        tx.commit().described().map_err(err)?;
        Ok(true)
    }
}

impl Rows {
    /// The rows of one run (`key`) that is not being recorded: an import's, a merge's.
    fn of_run(
        key: i64,
        blobs: Vec<crate::codec::EncodedBlob>,
        events: Vec<(i64, i64, &'static str, crate::codec::StoredPayload)>,
    ) -> Self {
        let mut rows = Rows::default();
        for blob in blobs {
            let hash = blob.hash.as_bytes().to_vec();
            rows.run_blobs.insert((key, hash.clone()), ());
            rows.blobs
                .entry(hash)
                .or_insert((blob.codec as i16, blob.size, blob.data));
        }
        for (seq, at, kind, payload) in events {
            let (codec, data) = payload.to_parts();
            rows.event_runs.push(key);
            rows.event_seqs.push(seq);
            rows.event_ats.push(at);
            rows.event_kinds.push(kind);
            rows.event_codecs.push(codec);
            rows.event_data.push(data.to_vec());
        }
        rows
    }
}
