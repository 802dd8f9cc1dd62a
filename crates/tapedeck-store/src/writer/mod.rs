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

mod recorder;
mod sqlite;
mod thread;

pub use recorder::Recorder;
pub(crate) use recorder::payload_json;
use sqlite::{apply_sqlite, renew_sqlite};
pub(crate) use sqlite::{commit_or_rollback, insert_run, retry_busy, update_run};
pub(crate) use thread::{ActiveRun, BatchEffects, Failure, Sink};
use thread::{Shared, WriterThread};

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

/// The agent loop records through these; the [`SinkError`]s they return hold the
/// [`StoreError`].
impl RunWriter for Writer {
    type Recorder = Recorder;

    fn start_run(&self, run: Run) -> Result<Recorder, SinkError> {
        Writer::start_run(self, run).map_err(SinkError::new)
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
