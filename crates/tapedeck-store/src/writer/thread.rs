//! The writer thread: batches, leases, reconnecting, and the spool a lost PostgreSQL store leaves.

use super::*;

pub(crate) struct ActiveRun {
    pub(crate) key: i64,
    pub(crate) run: Run,
    committed: Arc<AtomicU64>,
}

/// Where a writer thread writes.
pub(crate) enum Sink {
    /// A SQLite file.
    Sqlite(Connection),
    /// A PostgreSQL database.
    Postgres(Box<crate::pg::PgSink>),
}

pub(super) struct WriterThread {
    sink: Sink,
    /// The store written to, for errors: the file, the URL, or the spool once there is one.
    path: PathBuf,
    options: WriterOptions,
    failure: Arc<Mutex<Option<String>>>,
    owner: String,
    active: HashMap<RunId, ActiveRun>,
    /// Shared with [`WriterInner::queued`]: lowered as batches are committed.
    queued: Arc<AtomicUsize>,
    /// Shared with [`WriterInner::spool`]: set when recording moves into a spool.
    spool: Arc<Mutex<Option<PathBuf>>>,
    /// When the leases of the active runs are next renewed.
    next_renewal: Instant,
}

/// What the writer thread shares with its [`Writer`]s.
pub(super) struct Shared {
    pub(super) failure: Arc<Mutex<Option<String>>>,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) spool: Arc<Mutex<Option<PathBuf>>>,
}

/// A batch that could not be applied: the engine's words, and whether the connection to the
/// store was lost (PostgreSQL only), which the writer survives by reconnecting or spooling,
/// unlike a statement the store refused.
pub(crate) struct Failure {
    pub(crate) detail: String,
    pub(crate) connection_lost: bool,
}

impl Failure {
    /// A failure with the connection still up: the store refused the batch.
    pub(crate) fn refused(detail: String) -> Self {
        Self {
            detail,
            connection_lost: false,
        }
    }
}

/// What applying a batch changed, kept aside until the transaction commits.
#[derive(Default)]
pub(crate) struct BatchEffects {
    pub(crate) started: Vec<(RunId, i64, Run, Arc<AtomicU64>)>,
    pub(crate) max_seq: HashMap<RunId, u64>,
    pub(crate) totals: HashMap<RunId, Totals>,
    pub(crate) finished: Vec<RunId>,
    /// Runs not started because their id is already in the store.
    pub(crate) duplicates: Vec<RunId>,
}

impl WriterThread {
    pub(super) fn new(sink: Sink, path: PathBuf, options: WriterOptions, shared: Shared) -> Self {
        Self {
            sink,
            path,
            options,
            failure: shared.failure,
            owner: owner::current(),
            active: HashMap::new(),
            queued: shared.queued,
            spool: shared.spool,
            next_renewal: Instant::now(),
        }
    }

    /// Whether the active runs' leases are due for renewal.
    fn renewal_due(&self, now: Instant) -> bool {
        !self.active.is_empty() && now >= self.next_renewal
    }

    pub(super) fn run(mut self, rx: Receiver<Op>) {
        let mut batch: Vec<Op> = Vec::with_capacity(self.options.batch_size);
        let mut deadline = Instant::now();
        loop {
            // Idle, the thread blocks on the channel: the first operation wakes it. With a batch
            // open it takes what has arrived and otherwise sleeps until the batch's deadline;
            // senders wake it early for an urgent operation or a full batch (`Writer::send`).
            // While runs are active, an idle thread also wakes to renew their leases.
            let received = if batch.is_empty() && self.active.is_empty() {
                rx.recv().map_err(|_| TryRecvError::Disconnected)
            } else if batch.is_empty() {
                let left = self.next_renewal.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(op) => Ok(op),
                    Err(RecvTimeoutError::Timeout) => {
                        self.heartbeat();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => Err(TryRecvError::Disconnected),
                }
            } else {
                rx.try_recv()
            };
            match received {
                Ok(Op::Shutdown) => {
                    self.commit(&mut batch);
                    return;
                }
                Ok(op) => {
                    if batch.is_empty() {
                        deadline = Instant::now() + self.options.flush_interval;
                    }
                    let urgent = op.is_urgent();
                    batch.push(op);
                    if urgent || batch.len() >= self.options.batch_size {
                        self.commit(&mut batch);
                    }
                }
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    let left = deadline.saturating_duration_since(now);
                    // A renewal due commits the open batch early and goes with it.
                    if left.is_zero() || self.renewal_due(now) {
                        self.commit(&mut batch);
                    } else if self.active.is_empty() {
                        std::thread::park_timeout(left);
                    } else {
                        std::thread::park_timeout(
                            left.min(self.next_renewal.saturating_duration_since(now)),
                        );
                    }
                }
                Err(TryRecvError::Disconnected) => {
                    self.commit(&mut batch);
                    return;
                }
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<Op>) {
        if batch.is_empty() {
            return;
        }
        self.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        let failed = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let renew = self.renewal_due(Instant::now());
        let result = match failed {
            Some(detail) => Err(detail),
            None => self.apply_or_recover(batch, renew).inspect_err(|detail| {
                *self
                    .failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(detail.clone());
            }),
        };
        if renew && result.is_ok() {
            self.next_renewal = Instant::now() + self.options.renew_every();
        }
        let (result, duplicates) = match result {
            Ok(mut effects) => {
                let duplicates = std::mem::take(&mut effects.duplicates);
                self.settle(effects);
                (Ok(()), duplicates)
            }
            Err(detail) => (Err(Refusal::Failed(detail)), Vec::new()),
        };
        for op in batch.drain(..) {
            let (reply, started) = match op {
                Op::Start { reply, run, .. } => (reply, Some(run.id)),
                Op::Finish { reply, .. } | Op::Flush { reply } => (reply, None),
                _ => continue,
            };
            let answer = match started {
                Some(id) if result.is_ok() && duplicates.contains(&id) => {
                    Err(Refusal::Duplicate(id))
                }
                _ => result.clone(),
            };
            let _ = reply.send(answer);
        }
    }

    /// Renews the active runs' leases on its own, when no batch has done it in time. A failure
    /// is the writer's failure, as a batch's would be: the next batch would meet it too.
    fn heartbeat(&mut self) {
        let failed = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        if !failed && let Err(detail) = self.apply_or_recover(&[], true) {
            *self
                .failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(detail);
        }
        self.next_renewal = Instant::now() + self.options.renew_every();
    }

    /// [`apply`](Self::apply), and when the connection to a PostgreSQL store is lost, the
    /// same batch again once reconnected; if the store stays unreachable for
    /// [`WriterOptions::spool_after`], into a spool from then on. The engine's words when the
    /// batch could not be stored anywhere.
    fn apply_or_recover(&mut self, batch: &[Op], renew: bool) -> Result<BatchEffects, String> {
        let failure = match self.apply(batch, renew, false) {
            Ok(effects) => return Ok(effects),
            Err(failure) if failure.connection_lost => failure,
            Err(failure) => return Err(failure.detail),
        };
        let lost_at = Timestamp::now();
        let give_up = Instant::now() + self.options.spool_after;
        let mut wait = FIRST_RECONNECT_WAIT;
        let mut detail = failure.detail;
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(wait.min(left));
            wait = (wait * 2).min(MAX_RECONNECT_WAIT);
            let Sink::Postgres(pg) = &mut self.sink else {
                break;
            };
            if let Err(error) = pg.reconnect() {
                detail = error.to_string();
                continue;
            }
            // The lost transaction may have committed before the connection went (its reply
            // lost): applied again, it must not refuse the runs and events it already stored.
            match self.apply(batch, renew, true) {
                Ok(effects) => return Ok(effects),
                Err(failure) if failure.connection_lost => detail = failure.detail,
                Err(failure) => return Err(failure.detail),
            }
        }
        self.start_spool(lost_at, &detail)?;
        self.apply(batch, renew, false).map_err(|f| f.detail)
    }

    /// Moves recording into a new spool: a SQLite store in [`WriterOptions::spool_dir`] holding
    /// the active runs as this thread last knew them (totals as of their last committed batch),
    /// leased to this process like any run it records; every later batch goes there. Says so
    /// through [`WriterOptions::notify`].
    fn start_spool(&mut self, lost_at: Timestamp, detail: &str) -> Result<(), String> {
        let host: String = owner::hostname()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stem = format!(
            "{host}-{}-{}",
            std::process::id(),
            Timestamp::now().as_micros() / 1_000_000
        );
        // Two writers of this process (two stores) spooling in the same second get two files.
        let path = (1..)
            .map(|n| match n {
                1 => self.options.spool_dir.join(format!("{stem}.db")),
                n => self.options.spool_dir.join(format!("{stem}-{n}.db")),
            })
            .find(|path| !path.exists())
            .unwrap_or_default();
        let fail = |what: String| {
            format!(
                "{detail}; the store stayed unreachable and the spool could not be opened: {what}"
            )
        };
        std::fs::create_dir_all(&self.options.spool_dir).map_err(|e| {
            fail(format!(
                "cannot create `{}`: {e}",
                self.options.spool_dir.display()
            ))
        })?;
        let conn = open_connection(&path).map_err(|e| fail(e.to_string()))?;
        let lease_until = Timestamp::now()
            .as_micros()
            .saturating_add(self.options.lease_micros());
        let keys = retry_busy(|| {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let keys = self
                .active
                .iter()
                .map(|(id, active)| {
                    insert_run(&conn, &active.run, Some(&self.owner), Some(lease_until))
                        .map(|key| (*id, key))
                })
                .collect::<Result<Vec<_>, _>>();
            commit_or_rollback(&conn, keys, std::convert::identity)
        })
        .map_err(|e| fail(StoreError::from_sqlite(&path, e).to_string()))?;
        for (id, key) in keys {
            if let Some(active) = self.active.get_mut(&id) {
                active.key = key;
            }
        }
        let url = self.path.display().to_string();
        self.sink = Sink::Sqlite(conn);
        self.path = path.clone();
        *self
            .spool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(path.clone());
        (self.options.notify)(&spool_notice(&url, lost_at, &path, detail));
        Ok(())
    }

    /// Applies a batch in one transaction, renewing the active runs' leases in it when `renew`;
    /// on failure, the engine's own words (the errors built from them name the store already).
    /// `again` says the batch is a retry after a lost connection (PostgreSQL: see
    /// [`PgSink::apply`](crate::pg::PgSink::apply)).
    fn apply(&mut self, batch: &[Op], renew: bool, again: bool) -> Result<BatchEffects, Failure> {
        let lease = self.options.lease_micros();
        let renewed: Vec<i64> = if renew {
            self.active.values().map(|a| a.key).collect()
        } else {
            Vec::new()
        };
        match &mut self.sink {
            Sink::Sqlite(conn) => {
                let conn = &*conn;
                retry_busy(|| {
                    conn.execute_batch("BEGIN IMMEDIATE")?;
                    let result = apply_sqlite(conn, &self.owner, &self.active, batch, lease)
                        .and_then(|effects| {
                            renew_sqlite(conn, &renewed, lease)?;
                            Ok(effects)
                        });
                    commit_or_rollback(conn, result, std::convert::identity)
                })
                .map_err(|e| {
                    Failure::refused(match StoreError::from_sqlite(&self.path, e) {
                        StoreError::Sqlite { source, .. } => source.to_string(),
                        other => other.to_string(),
                    })
                })
            }
            Sink::Postgres(pg) => {
                pg.apply(batch, &self.owner, &self.active, lease, &renewed, again)
            }
        }
    }

    /// Publishes a committed batch: committed sequence numbers, run state.
    fn settle(&mut self, effects: BatchEffects) {
        // The first run of an idle writer got its lease from its insert: renew a third later.
        if self.active.is_empty() && !effects.started.is_empty() {
            self.next_renewal = Instant::now() + self.options.renew_every();
        }
        for (id, key, run, committed) in effects.started {
            self.active.insert(
                id,
                ActiveRun {
                    key,
                    run,
                    committed,
                },
            );
        }
        for (id, totals) in effects.totals {
            if let Some(active) = self.active.get_mut(&id) {
                active.run.totals = totals;
            }
        }
        for (id, seq) in effects.max_seq {
            if let Some(active) = self.active.get(&id) {
                active.committed.fetch_max(seq, Ordering::AcqRel);
            }
        }
        for id in effects.finished {
            self.active.remove(&id);
        }
    }
}

/// The one line that says a writer moved into a spool: since when, why, where, and how to
/// bring the spool in.
pub(super) fn spool_notice(url: &str, lost_at: Timestamp, spool: &Path, detail: &str) -> String {
    format!(
        "PostgreSQL store {url} unreachable since {lost_at} ({detail}): recording into {spool}; \
         `tapedeck --store {url} merge {spool}` brings it in",
        spool = spool.display()
    )
}
