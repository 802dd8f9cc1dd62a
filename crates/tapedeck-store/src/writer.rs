//! Recording: the per-process [`Writer`] thread and the per-run [`Recorder`].
//!
//! Recorders serialize events on their own thread (canonical JSON, hashing, compression) and
//! hand them to the writer over a bounded channel, so a slow disk slows recording down instead
//! of growing memory. The writer inserts them in batched transactions: when a batch is full,
//! when the flush interval has passed, or at once when a recorder starts, flushes or finishes a
//! run.
//!
//! While a run is being recorded, its row holds a lease (`runs.lease_until`): the writer thread
//! renews the leases of all its runs every third of [`WriterOptions::lease`], with the next
//! batch or, when idle, on its own. A run whose lease lapsed has lost its recorder (killed, or
//! on a host that lost the store) and is marked `incomplete` (`Store::expire_leases`).
//!
//! A PostgreSQL store can go away under a writer (a restart, a failover, a network cut). A batch
//! that fails because the connection is lost is kept, and the thread reconnects with backoff for
//! up to [`WriterOptions::spool_after`], recorders waiting on the bounded channel meanwhile. If
//! the server is still gone then, the thread moves recording into a **spool**: a SQLite store of
//! its own ([`WriterOptions::spool_dir`]), where it inserts its active runs as it last knew them
//! and applies the kept batch and every later one; it says so once ([`WriterOptions::notify`]),
//! and `tapedeck merge SPOOL` brings the spool into the PostgreSQL store later
//! (`Store::merge_from` appends what a run lacks). [`Recorder::committed_seq`] then counts
//! what the spool committed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, params};
use serde_json::Value;
use tapedeck_trace::{
    AgentInfo, ContentHash, Ending, EventData, EventSink, HistoryCompactor, Run, RunFinished,
    RunId, RunRecorder, RunStatus, RunWriter, SinkError, StopReason, Timestamp, Totals,
    canonical_json, hash_value, write_canonical,
};

use crate::codec::{self, EncodedBlob, StoredPayload};
use crate::{StoreError, open_connection, owner};

/// The environment variable that sets [`WriterOptions::lease`] for `WriterOptions::default()`,
/// in seconds (fractions allowed).
pub(crate) const LEASE_VAR: &str = "TAPEDECK_LEASE_SECS";

/// The lease of a run being recorded, when [`LEASE_VAR`] does not set one.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// How long a writer tries to reach a PostgreSQL store it lost before spooling, by default.
const DEFAULT_SPOOL_AFTER: Duration = Duration::from_secs(30);

/// Where spools go by default, relative to the working directory.
pub const DEFAULT_SPOOL_DIR: &str = ".tapedeck/spool";

/// The first wait between two attempts to reconnect to a lost PostgreSQL store; it doubles up
/// to [`MAX_RECONNECT_WAIT`].
const FIRST_RECONNECT_WAIT: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to reconnect.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);

/// How the writer batches, how long a run it records stays `running` without news from it, and
/// what it does when it loses a PostgreSQL store.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Commit at least this often while events arrive.
    pub flush_interval: Duration,
    /// Commit once a batch holds this many operations.
    pub batch_size: usize,
    /// How long a run's lease lasts (default 60 s, or `TAPEDECK_LEASE_SECS` seconds when that
    /// is set to a positive number). The writer renews it every third of this; a run whose
    /// recorder stopped renewing is marked `incomplete` once the lease lapses, by the next
    /// process to open the store or list its runs. Shorter notices a lost recorder sooner;
    /// longer survives longer stalls (a paused VM, a slow database) without a live run being
    /// marked `incomplete`.
    pub lease: Duration,
    /// How long a writer that lost its PostgreSQL store's connection keeps reconnecting (with
    /// backoff from 100 ms to 5 s) before it records into a spool instead (default 30 s).
    /// Recorders wait meanwhile. Unused on SQLite.
    pub spool_after: Duration,
    /// The folder of spools (default [`DEFAULT_SPOOL_DIR`], relative to the working
    /// directory): a spool is `<host>-<pid>-<unix seconds>.db` in it.
    pub spool_dir: PathBuf,
    /// Told, once, in one line, when the writer starts recording into a spool: where, since
    /// when, and the command that merges it back. By default it is printed on stderr.
    pub notify: fn(&str),
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(100),
            batch_size: 8192,
            lease: lease_from(std::env::var(LEASE_VAR).ok().as_deref()),
            spool_after: DEFAULT_SPOOL_AFTER,
            spool_dir: PathBuf::from(DEFAULT_SPOOL_DIR),
            notify: notify_stderr,
        }
    }
}

/// The default [`WriterOptions::notify`]: the writer has no caller to return it to, and the
/// person running the command must learn that recording left the team store.
fn notify_stderr(message: &str) {
    eprintln!("tapedeck: {message}");
}

/// The lease `TAPEDECK_LEASE_SECS` asks for; the default when it is unset or not a positive
/// number of seconds (a default cannot fail, and a lease of 0 would mark every run `incomplete`
/// at once).
fn lease_from(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .unwrap_or(DEFAULT_LEASE)
}

impl WriterOptions {
    /// How often the writer renews its runs' leases: a third of the lease, so that a renewal
    /// may be late twice before the lease lapses.
    fn renew_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(10))
    }

    /// The lease in microseconds, as the store's columns count time.
    pub(crate) fn lease_micros(&self) -> i64 {
        i64::try_from(self.lease.as_micros()).unwrap_or(i64::MAX / 2)
    }
}

pub(crate) enum Op {
    Start {
        run: Box<Run>,
        committed: Arc<AtomicU64>,
        reply: SyncSender<Result<(), Refusal>>,
    },
    Event {
        run: RunId,
        seq: u64,
        at: i64,
        kind: &'static str,
        payload: StoredPayload,
        totals: Option<Box<Totals>>,
    },
    Blob {
        run: RunId,
        blob: EncodedBlob,
    },
    Finish {
        run: Box<Run>,
        reply: SyncSender<Result<(), Refusal>>,
    },
    Flush {
        reply: SyncSender<Result<(), Refusal>>,
    },
    Shutdown,
}

/// Why the writer thread did not do what a recorder asked.
#[derive(Clone, Debug)]
pub(crate) enum Refusal {
    /// The writer failed; nothing since its last commit was stored.
    Failed(String),
    /// A run with this id is already in the store; nothing else was affected.
    Duplicate(RunId),
}

impl Op {
    fn is_urgent(&self) -> bool {
        matches!(
            self,
            Self::Start { .. } | Self::Finish { .. } | Self::Flush { .. } | Self::Shutdown
        )
    }
}

/// This process's writer for one store file. Cloning it is cheap; the thread stops (after
/// committing everything) when the last clone and the last [`Recorder`] are gone.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<WriterInner>,
}

struct WriterInner {
    path: PathBuf,
    tx: SyncSender<Op>,
    /// Operations sent and not yet committed (in the channel or in the open batch).
    queued: Arc<AtomicUsize>,
    /// How many queued operations make a batch: reaching it wakes the writer thread.
    batch_size: usize,
    /// The writer thread, to wake (see [`Writer::send`]).
    waker: std::thread::Thread,
    failure: Arc<Mutex<Option<String>>>,
    /// The spool the thread records into since it lost its PostgreSQL store.
    spool: Arc<Mutex<Option<PathBuf>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for WriterInner {
    fn drop(&mut self) {
        let _ = self.tx.send(Op::Shutdown);
        self.waker.unpark();
        if let Some(handle) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = handle.join();
        }
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<WriterInner>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<WriterInner>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl Writer {
    /// Starts the writer for the store at `path`, or joins the one this process already runs
    /// for it (one writer per file per process keeps inserts in one queue).
    pub fn start(path: &Path, options: WriterOptions) -> Result<Self, StoreError> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Self::start_with(key, path.to_path_buf(), options, || {
            open_connection(path).map(Sink::Sqlite)
        })
    }

    /// Starts (or joins) this process's writer for the PostgreSQL store `target` names; the
    /// writer has a connection of its own. The schema must be this build's ([`crate::pg::check`]).
    pub fn start_postgres(
        target: &crate::pg::PgTarget,
        options: WriterOptions,
    ) -> Result<Self, StoreError> {
        // Until `StoreLocation` replaces paths (POSTGRES.md), a PostgreSQL store's "path" is
        // its URL: what its errors name.
        let key = PathBuf::from(format!("postgres-writer:{target}"));
        Self::start_with(key, PathBuf::from(target.url()), options, || {
            crate::pg::PgSink::connect(target).map(|sink| Sink::Postgres(Box::new(sink)))
        })
    }

    fn start_with(
        key: PathBuf,
        path: PathBuf,
        options: WriterOptions,
        open: impl FnOnce() -> Result<Sink, StoreError>,
    ) -> Result<Self, StoreError> {
        let mut writers = registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(inner) = writers.get(&key).and_then(Weak::upgrade) {
            return Ok(Self { inner });
        }
        let sink = open()?;
        let batch_size = options.batch_size.max(1);
        let (tx, rx) = mpsc::sync_channel(options.batch_size * 2);
        let failure = Arc::new(Mutex::new(None));
        let queued = Arc::new(AtomicUsize::new(0));
        let spool = Arc::new(Mutex::new(None));
        let thread = {
            let shared = Shared {
                failure: Arc::clone(&failure),
                queued: Arc::clone(&queued),
                spool: Arc::clone(&spool),
            };
            let path = path.clone();
            std::thread::Builder::new()
                .name("tapedeck-writer".to_owned())
                .spawn(move || WriterThread::new(sink, path, options, shared).run(rx))
                .map_err(StoreError::Io)?
        };
        let inner = Arc::new(WriterInner {
            path,
            tx,
            queued,
            batch_size,
            waker: thread.thread().clone(),
            failure,
            spool,
            thread: Mutex::new(Some(thread)),
        });
        writers.insert(key, Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    /// Starts recording `run` (its status is set to `running`). Returns once the run is in
    /// the store, so that a failure to record is known before the agent does anything.
    pub fn start_run(&self, mut run: Run) -> Result<Recorder, StoreError> {
        run.status = RunStatus::Running;
        run.ended_at = None;
        run.stop_reason = None;
        let committed = Arc::new(AtomicU64::new(0));
        let (reply, wait) = mpsc::sync_channel(1);
        self.send(Op::Start {
            run: Box::new(run.clone()),
            committed: Arc::clone(&committed),
            reply,
        })?;
        self.wait(wait)?;
        Ok(Recorder {
            writer: self.clone(),
            run,
            next_seq: 1,
            committed,
            sent_blobs: HashSet::new(),
            history: HistoryCompactor::default(),
            finished: false,
        })
    }

    /// The spool this writer records into since it lost its PostgreSQL store (the module's
    /// documentation says when); `None` while it records into its store.
    pub fn spool(&self) -> Option<PathBuf> {
        self.inner
            .spool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until everything sent so far is committed.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (reply, wait) = mpsc::sync_channel(1);
        self.send(Op::Flush { reply })?;
        self.wait(wait)
    }

    /// Queues an operation. The writer thread is woken only when it must act at once (an
    /// urgent operation, a full batch): while a batch is open it sleeps until the flush
    /// interval, so that recording an event costs no context switch.
    fn send(&self, op: Op) -> Result<(), StoreError> {
        self.check()?;
        let urgent = op.is_urgent();
        let queued = self.inner.queued.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner
            .tx
            .send(op)
            .map_err(|_| self.failed("the writer thread stopped"))?;
        if urgent || queued >= self.inner.batch_size {
            self.inner.waker.unpark();
        }
        Ok(())
    }

    fn wait(&self, wait: Receiver<Result<(), Refusal>>) -> Result<(), StoreError> {
        match wait.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Refusal::Failed(detail))) => Err(self.failed(&detail)),
            Ok(Err(Refusal::Duplicate(id))) => Err(StoreError::DuplicateRun(id.to_string())),
            Err(_) => Err(self.failed("the writer thread stopped")),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        let failure = self
            .inner
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match failure.as_ref() {
            Some(detail) => Err(self.failed(detail)),
            None => Ok(()),
        }
    }

    fn failed(&self, detail: &str) -> StoreError {
        StoreError::WriterFailed {
            path: self.inner.path.clone(),
            detail: detail.to_owned(),
        }
    }
}

/// Records one run. Events get consecutive sequence numbers from 1.
///
/// Dropping a recorder without [`finish`](Recorder::finish) commits what it has and leaves
/// the run `running`, its lease renewed while the process's writer lives; once the process is
/// gone (seen at once on its own host) or its lease lapsed, the run shows as `incomplete`.
pub struct Recorder {
    writer: Writer,
    /// The run, its totals up to the last appended event.
    run: Run,
    next_seq: u64,
    committed: Arc<AtomicU64>,
    sent_blobs: HashSet<ContentHash>,
    history: HistoryCompactor,
    finished: bool,
}

impl Recorder {
    /// The run's id.
    pub fn id(&self) -> RunId {
        self.run.id
    }

    /// The run as it stands (totals up to the last appended event).
    pub fn run(&self) -> Run {
        self.run.clone()
    }

    /// Totals over the events appended so far.
    pub fn totals(&self) -> &Totals {
        &self.run.totals
    }

    /// The store file the run is recorded into.
    pub fn path(&self) -> &Path {
        &self.writer.inner.path
    }

    /// Sets the agent version of the run, stored with its ending. A run recorded from outside
    /// tapedeck's runtime (by the HTTP proxy) learns its agent's fingerprint only from what the
    /// agent sent, so only at its end; until then `ls --agent` does not find it.
    pub fn set_agent(&mut self, agent: AgentInfo) {
        self.run.agent = Some(agent);
    }

    /// The error for a write that failed: a failed writer thread loses every event of this run
    /// since its last commit (and the `attempted` one, not yet counted), and says so with the
    /// run and the count — not as the writer's failure alone.
    fn not_written(&self, error: StoreError, attempted: u64) -> StoreError {
        let StoreError::WriterFailed { path, detail } = error else {
            return error;
        };
        let appended = self.next_seq.saturating_sub(1);
        let count = appended.saturating_sub(self.committed_seq()) + attempted;
        if count == 0 {
            return StoreError::WriterFailed { path, detail };
        }
        StoreError::EventsNotWritten {
            run: self.run.id.to_string(),
            count,
            path,
            detail,
        }
    }

    /// Stores a JSON value as a blob (once per run, whatever the number of calls) and
    /// returns the hash events refer to it by.
    pub fn blob(&mut self, value: &Value) -> Result<ContentHash, StoreError> {
        let (hash, canonical) = hash_value(value)?;
        if self.sent_blobs.insert(hash) {
            let blob = codec::encode_blob(hash, canonical);
            self.writer
                .send(Op::Blob {
                    run: self.run.id,
                    blob,
                })
                .map_err(|e| self.not_written(e, 0))?;
        }
        Ok(hash)
    }

    /// Appends an event that happens now; returns its sequence number.
    pub fn append(&mut self, data: EventData) -> Result<u64, StoreError> {
        self.append_at(data, Timestamp::now())
    }

    /// Appends an event with an explicit time (importers, fixtures).
    ///
    /// An `llm_request` that resends the previous request's messages is stored as extending
    /// it (see [`HistoryCompactor`]), so a run's size stays linear in its length.
    pub fn append_at(&mut self, mut data: EventData, at: Timestamp) -> Result<u64, StoreError> {
        if self.finished {
            return Err(StoreError::RunFinished(self.run.id.to_string()));
        }
        if let EventData::LlmRequest(request) = &mut data {
            self.history.compact(self.next_seq, request);
        }
        let payload = StoredPayload::encode(payload_json(&data)?);
        let totals = self
            .run
            .totals
            .observe(&data)
            .then(|| Box::new(self.run.totals.clone()));
        let seq = self.next_seq;
        self.writer
            .send(Op::Event {
                run: self.run.id,
                seq,
                at: at.as_micros(),
                kind: data.kind(),
                payload,
                totals,
            })
            .map_err(|e| self.not_written(e, 1))?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// The highest sequence number known to be committed: it survives the process dying.
    pub fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Waits until every appended event is committed; returns the committed sequence number.
    pub fn flush(&self) -> Result<u64, StoreError> {
        self.writer.flush().map_err(|e| self.not_written(e, 0))?;
        Ok(self.committed_seq())
    }

    /// Ends the run: appends `run_finished`, stores the outcome and waits for it to commit.
    pub fn finish(
        mut self,
        stop_reason: StopReason,
        answer: Option<String>,
    ) -> Result<Run, StoreError> {
        self.finish_at(stop_reason, answer, Timestamp::now())
    }

    /// [`finish`](Recorder::finish) at an explicit time (importers, fixtures).
    pub fn finish_at(
        &mut self,
        stop_reason: StopReason,
        answer: Option<String>,
        at: Timestamp,
    ) -> Result<Run, StoreError> {
        self.end_at(
            Ending {
                stop_reason,
                answer,
                error: None,
            },
            at,
        )
    }

    /// Ends the run with a full [`Ending`] (an error message included).
    pub fn end(mut self, ending: Ending) -> Result<Run, StoreError> {
        self.end_at(ending, Timestamp::now())
    }

    /// [`end`](Recorder::end) at an explicit time.
    pub fn end_at(&mut self, ending: Ending, at: Timestamp) -> Result<Run, StoreError> {
        let Ending {
            stop_reason,
            answer,
            error,
        } = ending;
        let status = RunStatus::for_stop_reason(&stop_reason);
        self.append_at(
            EventData::RunFinished(RunFinished {
                status,
                stop_reason: stop_reason.clone(),
                answer: answer.clone(),
                error: error.clone(),
            }),
            at,
        )?;
        let mut run = self.run();
        run.status = status;
        run.stop_reason = Some(stop_reason);
        run.answer = answer;
        run.error = error;
        run.ended_at = Some(at);
        run.totals.latency_ms = Some(run.started_at.millis_until(at));
        let (reply, wait) = mpsc::sync_channel(1);
        self.writer
            .send(Op::Finish {
                run: Box::new(run.clone()),
                reply,
            })
            .and_then(|()| self.writer.wait(wait))
            .map_err(|e| self.not_written(e, 0))?;
        self.finished = true;
        Ok(run)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.writer.flush();
        }
    }
}

/// The agent loop records through these; the [`SinkError`]s they return hold the
/// [`StoreError`].
impl RunWriter for Writer {
    type Recorder = Recorder;

    fn start_run(&self, run: Run) -> Result<Recorder, SinkError> {
        Writer::start_run(self, run).map_err(SinkError::new)
    }
}

impl RunRecorder for Recorder {
    fn end(self, ending: Ending) -> Result<Run, SinkError> {
        Recorder::end(self, ending).map_err(SinkError::new)
    }
}

impl EventSink for Recorder {
    fn blob(&mut self, value: &Value) -> Result<ContentHash, SinkError> {
        Recorder::blob(self, value).map_err(SinkError::new)
    }

    fn append(&mut self, data: EventData) -> Result<u64, SinkError> {
        Recorder::append(self, data).map_err(SinkError::new)
    }
}

/// The canonical text of an event's payload, as the `events.data` column holds it.
pub(crate) fn payload_json(data: &EventData) -> Result<String, StoreError> {
    let mut out = String::with_capacity(128);
    write_canonical(&data.payload(), &mut out)?;
    Ok(out)
}

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

struct WriterThread {
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
struct Shared {
    failure: Arc<Mutex<Option<String>>>,
    queued: Arc<AtomicUsize>,
    spool: Arc<Mutex<Option<PathBuf>>>,
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
    fn new(sink: Sink, path: PathBuf, options: WriterOptions, shared: Shared) -> Self {
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

    fn run(mut self, rx: Receiver<Op>) {
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
fn spool_notice(url: &str, lost_at: Timestamp, spool: &Path, detail: &str) -> String {
    format!(
        "PostgreSQL store {url} unreachable since {lost_at} ({detail}): recording into {spool}; \
         `tapedeck --store {url} merge {spool}` brings it in",
        spool = spool.display()
    )
}

/// Sets the leases of the runs `keys` to end `lease` microseconds from now (this host's clock:
/// a SQLite file is shared by the processes of one machine). Runs no longer `running` (ended,
/// or marked `incomplete` by another process after a stall) are left as they are.
fn renew_sqlite(conn: &Connection, keys: &[i64], lease: i64) -> Result<(), rusqlite::Error> {
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
fn apply_sqlite(
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{DEFAULT_LEASE, lease_from};

    #[test]
    fn the_lease_variable_takes_positive_seconds_else_the_default() {
        assert_eq!(lease_from(Some("2")), Duration::from_secs(2));
        assert_eq!(lease_from(Some(" 0.5 ")), Duration::from_millis(500));
        for bad in [
            None,
            Some(""),
            Some("0"),
            Some("-3"),
            Some("1m"),
            Some("inf"),
            Some("NaN"),
        ] {
            assert_eq!(lease_from(bad), DEFAULT_LEASE, "{bad:?}");
        }
    }
}
