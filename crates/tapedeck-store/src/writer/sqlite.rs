//! A batch applied to a SQLite store, and the run rows both engines' imports share.

use super::*;

/// Sets the leases of the runs `keys` to end `lease` microseconds from now (this host's clock:
/// a SQLite file is shared by the processes of one machine). Runs no longer `running` (ended,
/// or marked `incomplete` by another process after a stall) are left as they are.
pub(super) fn renew_sqlite(
    conn: &Connection,
    keys: &[i64],
    lease: i64,
) -> Result<(), rusqlite::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let keys = Value::from(keys.to_vec()).to_string();
    conn.prepare_cached(
        "UPDATE runs SET lease_until = ?1
         WHERE key IN (SELECT value FROM json_each(?2)) AND status = 'running'",
    )?
    .execute(params![
        Timestamp::now().as_micros().saturating_add(lease),
        keys
    ])?;
    Ok(())
}

/// Applies a batch to a SQLite store; the caller holds the transaction. Runs started get a
/// lease of `lease` microseconds.
pub(super) fn apply_sqlite(
    conn: &Connection,
    owner: &str,
    active: &HashMap<RunId, ActiveRun>,
    batch: &[Op],
    lease: i64,
) -> Result<BatchEffects, rusqlite::Error> {
    let mut effects = BatchEffects::default();
    let mut new_keys: HashMap<RunId, i64> = HashMap::new();
    let key_of = |id: &RunId, new_keys: &HashMap<RunId, i64>| {
        new_keys
            .get(id)
            .copied()
            .or_else(|| active.get(id).map(|a| a.key))
    };
    let mut insert_event = conn.prepare_cached(
        "INSERT INTO events (run, seq, at, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut insert_blob = conn.prepare_cached(
        "INSERT OR IGNORE INTO blobs (hash, codec, size, data, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let now = Timestamp::now().as_micros();
    let mut insert_run_blob =
        conn.prepare_cached("INSERT OR IGNORE INTO run_blobs (run, hash) VALUES (?1, ?2)")?;
    for op in batch {
        match op {
            Op::Start { run, committed, .. } => {
                // A duplicate id is refused alone: failing the batch would lose the other
                // recorders' events and stop this process's writer for good.
                let exists = conn
                    .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")?
                    .exists([run.id.to_string()])?;
                if exists {
                    effects.duplicates.push(run.id);
                    continue;
                }
                let key = insert_run(conn, run, Some(owner), Some(now.saturating_add(lease)))?;
                new_keys.insert(run.id, key);
                effects
                    .started
                    .push((run.id, key, (**run).clone(), Arc::clone(committed)));
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
                insert_event.execute(params![key, *seq as i64, at, kind, payload])?;
                effects.max_seq.insert(*run, *seq);
                if let Some(totals) = totals {
                    effects.totals.insert(*run, (**totals).clone());
                }
            }
            Op::Blob { run, blob } => {
                let Some(key) = key_of(run, &new_keys) else {
                    continue;
                };
                let hash = blob.hash.as_bytes().as_slice();
                insert_blob.execute(params![hash, blob.codec, blob.size, blob.data, now])?;
                insert_run_blob.execute(params![key, hash])?;
            }
            Op::Finish { run, .. } => {
                update_run(conn, run, None)?;
                effects.finished.push(run.id);
                effects.totals.remove(&run.id);
            }
            Op::Flush { .. } | Op::Shutdown => {}
        }
    }
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
            update_run(conn, &run, Some(owner))?;
        }
    }
    Ok(effects)
}

/// Inserts a run row (and its labels); returns its key. Callers hold a transaction. A run being
/// recorded has an owner and a lease (until `lease_until`, microseconds); an imported one
/// neither.
pub(crate) fn insert_run(
    conn: &Connection,
    run: &Run,
    owner: Option<&str>,
    lease_until: Option<i64>,
) -> Result<i64, rusqlite::Error> {
    // The identity columns here; the outcome columns (which change as the run goes on) and the
    // agent (which a proxy run learns only at its end) are written by `update_run`, the one
    // place that knows them.
    conn.prepare_cached(
        "INSERT INTO runs (id, short_id, source, suite, task, parent_id, started_at, status,
             steps, tool_calls, record, tail, lease_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', 0, 0, '', ?8, ?9)",
    )?
    .execute(params![
        run.id.to_string(),
        run.id.short(),
        run.source.as_str(),
        run.suite,
        run.task,
        run.parent.map(|p| p.to_string()),
        run.started_at.as_micros(),
        run.id.tail(),
        lease_until,
    ])?;
    let key = conn.last_insert_rowid();
    update_run(conn, run, owner)?;
    let mut label =
        conn.prepare_cached("INSERT INTO run_labels (run, key, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in &run.labels {
        label.execute(params![key, k, v])?;
    }
    Ok(key)
}

/// Rewrites a run row's outcome, totals and agent from `run`; a run no longer `running` loses
/// its lease.
pub(crate) fn update_run(
    conn: &Connection,
    run: &Run,
    owner: Option<&str>,
) -> Result<(), rusqlite::Error> {
    let record =
        canonical_json(run).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    conn.prepare_cached(
        "UPDATE runs SET ended_at = ?2, status = ?3, stop_reason = ?4, steps = ?5, tool_calls = ?6,
             tokens_in = ?7, tokens_out = ?8, cost_usd = ?9, record = ?10, owner = ?11,
             agent_name = ?12, agent_fingerprint = ?13,
             lease_until = CASE WHEN ?3 = 'running' THEN lease_until END
         WHERE id = ?1",
    )?
    .execute(params![
        run.id.to_string(),
        run.ended_at.map(Timestamp::as_micros),
        run.status.as_str(),
        run.stop_reason.as_ref().map(ToString::to_string),
        run.totals.steps as i64,
        run.totals.tool_calls_total() as i64,
        run.totals.tokens_in.map(|t| t as i64),
        run.totals.tokens_out.map(|t| t as i64),
        run.totals.cost_usd,
        record,
        owner,
        run.agent.as_ref().map(|a| &a.name),
        run.agent.as_ref().map(|a| &a.fingerprint),
    ])?;
    Ok(())
}

/// Runs `f` again while SQLite reports the database busy or locked, for up to two minutes.
///
/// `busy_timeout` already waits inside SQLite, but some cases (a lock upgrade in WAL mode,
/// a checkpoint) report busy at once; callers never see it.
/// Ends the transaction `result` was computed in: commits it if `result` is `Ok`; rolls it
/// back if not, or if the commit fails, so that nothing is left open and a retry (see
/// [`retry_busy`]) starts clean. `sql_err` turns a failed commit into `E`.
pub(crate) fn commit_or_rollback<T, E>(
    conn: &Connection,
    result: Result<T, E>,
    sql_err: impl FnOnce(rusqlite::Error) -> E,
) -> Result<T, E> {
    let result = result.and_then(|value| match conn.execute_batch("COMMIT") {
        Ok(()) => Ok(value),
        Err(e) => Err(sql_err(e)),
    });
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

pub(crate) fn retry_busy<T>(
    mut f: impl FnMut() -> Result<T, rusqlite::Error>,
) -> Result<T, rusqlite::Error> {
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut wait = Duration::from_millis(1);
    loop {
        match f() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && Instant::now() < give_up =>
            {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
