//! Reading the store: finding runs by id or filter, their events and their blobs.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params, params_from_iter, types::Value as SqlValue};
use serde_json::Value;
use tapedeck_trace::{ContentHash, Event, EventData, Run, RunId, RunStatus, Timestamp};

use crate::{RunCandidate, Store, StoreError, codec, owner};

/// Hashes per query of [`Store::blobs`] (SQLite allows 32,766 parameters; the statement for a
/// full batch is prepared once and cached).
const BLOB_BATCH: usize = 500;

/// Which runs `ls`, `stats` and `rm` look at. Every field set must match.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// The golden suite.
    pub suite: Option<String>,
    /// The task id.
    pub task: Option<String>,
    /// The agent name, or a prefix of its fingerprint.
    pub agent: Option<String>,
    /// The stop reason: exact (`tool_denied:http.get`) or its kind (`tool_denied`).
    pub stop_reason: Option<String>,
    /// The status.
    pub status: Option<RunStatus>,
    /// The source (`runtime`, `proxy`, `mcp`, `import`).
    pub source: Option<String>,
    /// Labels, each `key=value`.
    pub labels: Vec<(String, String)>,
    /// Runs started at or after this time.
    pub since: Option<Timestamp>,
    /// Runs started before this time.
    pub before: Option<Timestamp>,
    /// At most this many runs (the newest).
    pub limit: Option<usize>,
}

/// An event as stored, with the run-local position and time.
pub type StoredEvent = Event;

impl Store {
    /// Finds a run by full id, short id, or a unique prefix of either; or by the last 12 hex
    /// digits of its id (the tail `ls` shows when 8 are not unique), matched exactly.
    pub fn resolve_run(&self, query: &str) -> Result<RunId, StoreError> {
        let q = query.trim().to_ascii_lowercase();
        if let Ok(id) = q.parse::<RunId>() {
            if self.run_key(&id)?.is_some() {
                return Ok(id);
            }
            return Err(StoreError::RunNotFound(query.to_owned()));
        }
        if q.is_empty() || !q.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(StoreError::RunNotFound(query.to_owned()));
        }
        let prefix = q.replace('%', "");
        // Only a query of exactly 12 hex digits can be a tail (an empty one matches none).
        let tail = if q.len() == 12 && !q.contains('-') {
            q.clone()
        } else {
            String::new()
        };
        let ids: Vec<String> = match self.pg() {
            Some(pg) => pg.ids_with_prefix(&prefix, &tail, 6)?,
            None => {
                let pattern = format!("{prefix}%");
                let mut stmt = self
                    .conn()?
                    .prepare_cached(
                        "SELECT id FROM runs WHERE short_id LIKE ?1 OR id LIKE ?1 OR tail = ?2
                         ORDER BY started_at DESC LIMIT 6",
                    )
                    .map_err(|e| self.err(e))?;
                stmt.query_map([&pattern, &tail], |r| r.get(0))
                    .and_then(Iterator::collect)
                    .map_err(|e| self.err(e))?
            }
        };
        match ids.as_slice() {
            [] => Err(StoreError::RunNotFound(query.to_owned())),
            [one] => one.parse().map_err(StoreError::Tape),
            many => {
                let candidates = many
                    .iter()
                    .take(5)
                    .map(|id| {
                        let run = self.run(&id.parse().map_err(StoreError::Tape)?)?;
                        Ok(RunCandidate {
                            id: id.clone(),
                            started_at: run.started_at,
                            task: run.task,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?;
                Err(StoreError::AmbiguousRun {
                    prefix: query.to_owned(),
                    candidates,
                })
            }
        }
    }

    /// Which of these runs share their short id with another run of the store: at team scale
    /// 8 hex digits collide (even odds at about 77,000 runs), and `ls` then shows tails
    /// ([`RunId::tail`]) so that every id it prints resolves.
    pub fn shared_short_ids(
        &self,
        ids: &[RunId],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut short_ids: Vec<String> = ids.iter().map(RunId::short).collect();
        short_ids.sort();
        short_ids.dedup();
        let shared: Vec<String> = match self.pg() {
            Some(pg) => pg.shared_short_ids(&short_ids)?,
            None => {
                let mut found = Vec::new();
                // SQLite caps bound parameters (32,766): `ls -n` can ask for more runs.
                for chunk in short_ids.chunks(10_000) {
                    let marks = vec!["?"; chunk.len()].join(", ");
                    let sql = format!(
                        "SELECT short_id FROM runs WHERE short_id IN ({marks})
                         GROUP BY short_id HAVING count(*) > 1"
                    );
                    let mut stmt = self.conn()?.prepare(&sql).map_err(|e| self.err(e))?;
                    let rows: Vec<String> = stmt
                        .query_map(params_from_iter(chunk), |r| r.get(0))
                        .and_then(Iterator::collect)
                        .map_err(|e| self.err(e))?;
                    found.extend(rows);
                }
                found
            }
        };
        Ok(shared.into_iter().collect())
    }

    pub(crate) fn run_key(&self, id: &RunId) -> Result<Option<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.run_key(&id.to_string());
        }
        // Cached: it runs once per run read (events, monitor, stats over many runs).
        self.conn()?
            .prepare_cached("SELECT key FROM runs WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row([id.to_string()], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// One run.
    pub fn run(&self, id: &RunId) -> Result<Run, StoreError> {
        let record: Option<String> = match self.pg() {
            Some(pg) => pg.run_record(&id.to_string())?,
            None => self
                .conn()?
                .prepare_cached("SELECT record FROM runs WHERE id = ?1")
                .and_then(|mut stmt| stmt.query_row([id.to_string()], |r| r.get(0)).optional())
                .map_err(|e| self.err(e))?,
        };
        let record = record.ok_or_else(|| StoreError::RunNotFound(id.to_string()))?;
        parse_record(&record, id)
    }

    /// Runs matching `filter`, newest first. Runs whose recorder is gone are marked
    /// `incomplete` first ([`expire_leases`](Store::expire_leases)), so a listing never shows
    /// one `running` after its lease lapsed.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError> {
        self.expire_leases()?;
        let mut sql = String::from("SELECT id, record FROM runs r WHERE 1 = 1");
        let mut args: Vec<SqlValue> = Vec::new();
        // Pushes a parameter and returns its placeholder.
        // SQLite's placeholders are `?N`, PostgreSQL's `$N`; the SQL is otherwise the same.
        let sigil = if self.pg().is_some() { '$' } else { '?' };
        let mut arg = |value: SqlValue| {
            args.push(value);
            format!("{sigil}{}", args.len())
        };
        if let Some(suite) = &filter.suite {
            sql += &format!(" AND r.suite = {}", arg(suite.clone().into()));
        }
        if let Some(task) = &filter.task {
            sql += &format!(" AND r.task = {}", arg(task.clone().into()));
        }
        if let Some(agent) = &filter.agent {
            let p = arg(agent.clone().into());
            // Prefixes are compared with substr, not LIKE: `_` and `%` in a value are data.
            sql += &format!(
                " AND (r.agent_name = {p} OR substr(r.agent_fingerprint, 1, length({p})) = {p})"
            );
        }
        if let Some(reason) = &filter.stop_reason {
            let p = arg(reason.clone().into());
            sql += &format!(
                " AND (r.stop_reason = {p} OR substr(r.stop_reason, 1, length({p}) + 1) = {p} || ':')"
            );
        }
        if let Some(status) = filter.status {
            sql += &format!(" AND r.status = {}", arg(status.as_str().to_owned().into()));
        }
        if let Some(source) = &filter.source {
            sql += &format!(" AND r.source = {}", arg(source.clone().into()));
        }
        for (k, v) in &filter.labels {
            let (pk, pv) = (arg(k.clone().into()), arg(v.clone().into()));
            sql += &format!(
                " AND EXISTS (SELECT 1 FROM run_labels l WHERE l.run = r.key AND l.key = {pk} AND l.value = {pv})"
            );
        }
        if let Some(since) = filter.since {
            sql += &format!(" AND r.started_at >= {}", arg(since.as_micros().into()));
        }
        if let Some(before) = filter.before {
            sql += &format!(" AND r.started_at < {}", arg(before.as_micros().into()));
        }
        sql.push_str(" ORDER BY r.started_at DESC, r.id DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let rows: Vec<(String, String)> = match self.pg() {
            Some(pg) => {
                let params: Vec<crate::pg::PgParam> = args
                    .into_iter()
                    .map(|value| -> crate::pg::PgParam {
                        match value {
                            SqlValue::Integer(i) => Box::new(i),
                            SqlValue::Text(t) => Box::new(t),
                            other => Box::new(format!("{other:?}")),
                        }
                    })
                    .collect();
                pg.id_records(&sql, &params)?
            }
            None => {
                let mut stmt = self.conn()?.prepare(&sql).map_err(|e| self.err(e))?;
                stmt.query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(Iterator::collect)
                    .map_err(|e| self.err(e))?
            }
        };
        rows.into_iter()
            .map(|(id, record)| {
                let id: RunId = id.parse()?;
                parse_record(&record, &id)
            })
            .collect()
    }

    /// Every event of a run, in order.
    pub fn events(&self, id: &RunId) -> Result<Vec<Event>, StoreError> {
        self.read_events(id, None)
    }

    /// The events of a run of the given kinds (`tool_call`, …), in order: only those are read
    /// and parsed, as a summary of a long run needs a few kinds of many.
    pub fn events_of_kinds(&self, id: &RunId, kinds: &[&str]) -> Result<Vec<Event>, StoreError> {
        self.read_events(id, Some(kinds))
    }

    fn read_events(&self, id: &RunId, kinds: Option<&[&str]>) -> Result<Vec<Event>, StoreError> {
        let key = self
            .run_key(id)?
            .ok_or_else(|| StoreError::RunNotFound(id.to_string()))?;
        let rows: Vec<(i64, i64, String, Result<String, String>)> = match self.pg() {
            Some(pg) => pg
                .event_rows(key, kinds)?
                .into_iter()
                .map(|(seq, at, kind, codec, data)| {
                    (seq, at, kind, codec::decode_payload_parts(codec, &data))
                })
                .collect(),
            None => self.sqlite_event_rows(key, kinds)?,
        };
        let mut events = Vec::with_capacity(rows.len());
        for (seq, at, kind, data) in rows {
            let invalid = |detail: String| StoreError::InvalidData {
                run: id.to_string(),
                detail: format!("event {seq}: {detail}"),
            };
            let data = data.map_err(invalid)?;
            // Straight into the kind's struct; on an error, the slower path words it.
            let data = match EventData::from_json(&kind, &data) {
                Ok(data) => data,
                Err(_) => {
                    let payload: Value =
                        serde_json::from_str(&data).map_err(|e| invalid(e.to_string()))?;
                    EventData::from_parts(&kind, payload).map_err(|e| invalid(e.to_string()))?
                }
            };
            events.push(Event {
                seq: seq as u64,
                at: Timestamp::from_micros(at),
                data,
            });
        }
        Ok(events)
    }

    /// A run's event rows from SQLite, their payloads decoded to text.
    #[expect(
        clippy::type_complexity,
        reason = "one row's columns, read in one place"
    )]
    fn sqlite_event_rows(
        &self,
        key: i64,
        kinds: Option<&[&str]>,
    ) -> Result<Vec<(i64, i64, String, Result<String, String>)>, StoreError> {
        let sql = match kinds {
            None => "SELECT seq, at, kind, data FROM events WHERE run = ?1 ORDER BY seq".to_owned(),
            Some(kinds) => format!(
                "SELECT seq, at, kind, data FROM events WHERE run = ?1 AND kind IN ({}) \
                 ORDER BY seq",
                (0..kinds.len())
                    .map(|i| format!("?{}", i + 2))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        let mut stmt = self.conn()?.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let params: Vec<SqlValue> = std::iter::once(SqlValue::Integer(key))
            .chain(
                kinds
                    .unwrap_or_default()
                    .iter()
                    .map(|k| SqlValue::Text((*k).to_owned())),
            )
            .collect();
        stmt.query_map(params_from_iter(params), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                codec::decode_payload(r.get_ref(3)?),
            ))
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.err(e))
    }

    /// A blob's content; `run` names the run asking, for the error message.
    pub fn blob(&self, hash: &ContentHash, run: &RunId) -> Result<Value, StoreError> {
        if self.pg().is_some() {
            let mut found = self.blobs([*hash], run)?;
            return Ok(found.remove(hash).unwrap_or_default());
        }
        let row: Option<(i64, i64, Vec<u8>)> = self
            .conn()?
            .prepare_cached("SELECT codec, size, data FROM blobs WHERE hash = ?1")
            .and_then(|mut s| {
                s.query_row([hash.as_bytes().as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(|e| self.err(e))?;
        let (codec, size, data) = row.ok_or(StoreError::MissingBlob {
            run: run.to_string(),
            hash: *hash,
        })?;
        codec::decode_blob(codec, size, &data).map_err(|detail| StoreError::InvalidData {
            run: run.to_string(),
            detail: format!("blob {hash}: {detail}"),
        })
    }

    /// The contents of many blobs, read in batches of 500 hashes a query (each
    /// distinct hash once); `run` names the run asking, for the error message. Every hash must
    /// be stored.
    pub fn blobs(
        &self,
        hashes: impl IntoIterator<Item = ContentHash>,
        run: &RunId,
    ) -> Result<HashMap<ContentHash, Value>, StoreError> {
        let wanted: Vec<ContentHash> = hashes
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut found = HashMap::with_capacity(wanted.len());
        if let Some(pg) = self.pg() {
            for chunk in wanted.chunks(BLOB_BATCH) {
                let hashes: Vec<&[u8]> = chunk.iter().map(|h| h.as_bytes().as_slice()).collect();
                for (hash, codec, size, data) in pg.blob_rows(&hashes)? {
                    let invalid = |detail: String| StoreError::InvalidData {
                        run: run.to_string(),
                        detail,
                    };
                    let hash =
                        ContentHash::from_bytes(hash.as_slice().try_into().map_err(|_| {
                            invalid(format!("a blob hash of {} bytes", hash.len()))
                        })?);
                    let value = codec::decode_blob(i64::from(codec), size, &data)
                        .map_err(|detail| invalid(format!("blob {hash}: {detail}")))?;
                    found.insert(hash, value);
                }
            }
        }
        for chunk in wanted.chunks(BLOB_BATCH).filter(|_| self.pg().is_none()) {
            let sql = format!(
                "SELECT hash, codec, size, data FROM blobs WHERE hash IN ({})",
                vec!["?"; chunk.len()].join(",")
            );
            let mut stmt = self.conn()?.prepare_cached(&sql).map_err(|e| self.err(e))?;
            let mut rows = stmt
                .query(params_from_iter(
                    chunk.iter().map(|h| h.as_bytes().as_slice()),
                ))
                .map_err(|e| self.err(e))?;
            while let Some(row) = rows.next().map_err(|e| self.err(e))? {
                let (hash, codec, size, data) = (|| -> rusqlite::Result<_> {
                    Ok((
                        row.get_ref(0)?.as_blob()?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get_ref(3)?.as_blob()?,
                    ))
                })()
                .map_err(|e| self.err(e))?;
                let invalid = |detail: String| StoreError::InvalidData {
                    run: run.to_string(),
                    detail,
                };
                let hash = ContentHash::from_bytes(
                    hash.try_into()
                        .map_err(|_| invalid(format!("a blob hash of {} bytes", hash.len())))?,
                );
                let value = codec::decode_blob(codec, size, data)
                    .map_err(|detail| invalid(format!("blob {hash}: {detail}")))?;
                found.insert(hash, value);
            }
        }
        if let Some(missing) = wanted.iter().find(|h| !found.contains_key(*h)) {
            return Err(StoreError::MissingBlob {
                run: run.to_string(),
                hash: *missing,
            });
        }
        Ok(found)
    }

    /// The highest sequence number stored for a run (0 when it has no events).
    pub fn last_seq(&self, id: &RunId) -> Result<u64, StoreError> {
        let key = self
            .run_key(id)?
            .ok_or_else(|| StoreError::RunNotFound(id.to_string()))?;
        if let Some(pg) = self.pg() {
            return pg.last_seq(key).map(|n| n as u64);
        }
        self.conn()?
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM events WHERE run = ?1",
                [key],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Marks `incomplete` every run still `running` whose recorder is gone: its lease lapsed
    /// (on PostgreSQL by the server's clock) or, on SQLite, its process is dead on this host
    /// (seen at once, without waiting out the lease). Each run is changed by a conditional
    /// update, so a lease renewed meanwhile wins; its canonical `record` is rewritten here, as
    /// the database cannot (jsonb would reorder its keys).
    pub(crate) fn expire_leases(&self) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            for (id, record) in pg.lapsed_runs()? {
                let record = incomplete_record(&id, &record)?;
                pg.mark_incomplete(&id, &record)?;
            }
            return Ok(());
        }
        let now = Timestamp::now().as_micros();
        let running: Vec<(String, String, Option<String>, Option<i64>)> = self
            .conn()?
            .prepare_cached(
                "SELECT id, record, owner, lease_until FROM runs WHERE status = 'running'",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .and_then(Iterator::collect)
            })
            .map_err(|e| self.err(e))?;
        for (id, record, owner, lease_until) in running {
            let dead = owner.as_deref().is_some_and(owner::is_dead);
            if !dead && lease_until.is_none_or(|until| until >= now) {
                continue;
            }
            let record = incomplete_record(&id, &record)?;
            let conn = self.conn()?;
            crate::writer::retry_busy(|| {
                conn.execute(
                    "UPDATE runs SET status = 'incomplete', record = ?2, owner = NULL,
                         lease_until = NULL
                     WHERE id = ?1 AND status = 'running' AND (?3 OR lease_until < ?4)",
                    params![id, record, dead, now],
                )
            })
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

/// The canonical `record` of the run `record` holds, marked `incomplete`.
fn incomplete_record(id: &str, record: &str) -> Result<String, StoreError> {
    let id: RunId = id.parse()?;
    let mut run = parse_record(record, &id)?;
    run.status = RunStatus::Incomplete;
    Ok(tapedeck_trace::canonical_json(&run)?)
}

fn parse_record(record: &str, id: &RunId) -> Result<Run, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::InvalidData {
        run: id.to_string(),
        detail: e.to_string(),
    })
}
