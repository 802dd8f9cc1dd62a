//! The store: one SQLite file, or a PostgreSQL database for a team, holding runs, their events
//! and content-addressed blobs.
//!
//! [`Store`] opens (and migrates) the file and answers queries; [`Writer`] owns the one writer
//! thread of a process, which batches inserts into transactions; a [`Recorder`] records one run
//! through it. Tapes (portable JSONL) are read and written by [`Store::import_tape`] and
//! [`Store::export_tape`]; OpenTelemetry (OTLP/JSON) spans by [`Store::import_otel`] and
//! [`Store::export_otel`].
//!
//! The same `Store` can be a PostgreSQL database, the team store ([`Store::open_location`] with
//! a [`StoreLocation`], module [`pg`]; its design and what is left of it: `POSTGRES.md`), with
//! the same behaviour through the same methods. A writer that loses its PostgreSQL store reconnects, then records
//! into a local SQLite spool that [`Store::merge_from`] brings back (module `writer`).
//!
//! Crash safety comes from SQLite's WAL: a transaction the writer has committed survives the
//! process being killed, and [`Recorder::committed_seq`] says how far that is. Several
//! processes may record into one file at once: each waits its turn for the write lock, and a
//! busy database is retried inside, never reported.

//!
//! ```
//! use serde_json::json;
//! use tapedeck_store::Store;
//! use tapedeck_trace::{Ending, Run, Source, StopReason};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("tapedeck.db"))?;
//! let writer = store.writer()?;
//! let mut recorder = writer.start_run(Run::new(Source::Runtime))?;
//! let id = recorder.id();
//! // A blob is stored once per content, however often a run refers to it.
//! let question = json!({"role": "user", "content": "Is the payments API up?"});
//! assert_eq!(recorder.blob(&question)?, recorder.blob(&question)?);
//! let run = recorder.end(Ending {
//!     stop_reason: StopReason::Ok,
//!     answer: Some("Yes.".into()),
//!     error: None,
//! })?;
//! assert_eq!(run.answer.as_deref(), Some("Yes."));
//! assert_eq!(store.runs(&Default::default())?.len(), 1);
//!
//! let mut tape = Vec::new();
//! store.export_tape(&id, &mut tape)?;
//! assert!(tape.starts_with(br#"{"format":"tapedeck-tape""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod codec;
mod error;
mod location;
mod maintenance;
mod monitor;
mod otel;
mod owner;
pub mod pg;
mod query;
mod schema;
mod tape;
mod workers;
mod writer;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use error::{RunCandidate, StoreError};
pub use location::StoreLocation;
pub use maintenance::{GcReport, MergeReport};
pub use monitor::{AgentStats, Distribution, MonitorReport, ToolShare};
pub use query::{RunFilter, StoredEvent};
pub use schema::SCHEMA_VERSION;
pub use tape::ImportOutcome;
pub use tapedeck_trace::Ending;
pub use workers::on_workers;
pub use writer::{DEFAULT_SPOOL_DIR, Recorder, Writer, WriterOptions};

/// The default store path, relative to the working directory.
pub const DEFAULT_STORE_PATH: &str = ".tapedeck/tapedeck.db";

/// How long one statement waits for another process's write lock before SQLite reports busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open store: a SQLite file or a PostgreSQL database.
pub struct Store {
    location: StoreLocation,
    backend: Backend,
}

/// The engine behind a [`Store`]: every method of `Store` is written once over the engines'
/// primitives (POSTGRES.md, "The seam").
enum Backend {
    Sqlite(Connection),
    Postgres(Box<pg::PgStore>),
}

impl Store {
    /// Opens the store at `path`, creating the file (and its folder) if needed and migrating it
    /// to the current schema. Runs left `running` by a process that has since died, or whose
    /// lease lapsed, are marked `incomplete`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let conn = open_connection(&path)?;
        let store = Self {
            location: StoreLocation::File(path),
            backend: Backend::Sqlite(conn),
        };
        store.expire_leases()?;
        Ok(store)
    }

    /// Opens the PostgreSQL store `url` names (`postgres://USER@HOST:PORT/DATABASE`, resolved
    /// with this process's environment as libpq would: [`pg::PgTarget`]). Nothing is created:
    /// a database without a store, or at another schema version, is refused with the command
    /// to run ([`pg::migrate`]).
    ///
    /// Runs left `running` whose lease lapsed (by the server's clock) are marked `incomplete`.
    /// What is not built for PostgreSQL yet is listed in `POSTGRES.md`.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        Self::open_postgres(pg::PgTarget::from_env(url)?)
    }

    /// [`open_url`](Store::open_url) with a target already resolved.
    pub fn open_postgres(target: pg::PgTarget) -> Result<Self, StoreError> {
        let store = pg::PgStore::open_target(target)?;
        let store = Self {
            location: StoreLocation::Postgres(store.target().clone()),
            backend: Backend::Postgres(Box::new(store)),
        };
        store.expire_leases()?;
        Ok(store)
    }

    /// Opens the store at `location`: [`open`](Store::open) for a file (created if needed),
    /// [`open_postgres`](Store::open_postgres) for a PostgreSQL database (never created).
    pub fn open_location(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::File(path) => Self::open(path),
            StoreLocation::Postgres(target) => Self::open_postgres(target.clone()),
        }
    }

    /// Opens an existing store without creating it; `Ok(None)` when there is no file.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Option<Self>, StoreError> {
        if !path.as_ref().exists() {
            return Ok(None);
        }
        Self::open(path).map(Some)
    }

    /// Where this store is.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The file this store lives in; for a PostgreSQL store, its URL as a path, for messages
    /// (use [`location`](Store::location) to tell the two apart).
    pub fn path(&self) -> &Path {
        match &self.location {
            StoreLocation::File(path) => path,
            StoreLocation::Postgres(target) => Path::new(target.url()),
        }
    }

    /// Starts (or joins) this process's writer for this store.
    pub fn writer(&self) -> Result<Writer, StoreError> {
        self.writer_with(WriterOptions::default())
    }

    /// [`writer`](Store::writer) with other batching options.
    pub fn writer_with(&self, options: WriterOptions) -> Result<Writer, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Writer::start(self.path(), options),
            Backend::Postgres(pg) => Writer::start_postgres(pg.target(), options),
        }
    }

    /// The SQLite connection, for what is not yet written for PostgreSQL.
    pub(crate) fn conn(&self) -> Result<&Connection, StoreError> {
        match &self.backend {
            Backend::Sqlite(conn) => Ok(conn),
            Backend::Postgres(pg) => Err(StoreError::PgNotYet {
                url: pg.target().url().to_owned(),
            }),
        }
    }

    /// The PostgreSQL backend, when this store is one.
    pub(crate) fn pg(&self) -> Option<&pg::PgStore> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg),
        }
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(self.path(), source)
    }
}

/// Opens a connection with the settings every connection to a store uses.
pub(crate) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| StoreError::from_sqlite(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| StoreError::from_sqlite(path, e))?;
    // Reading the schema is the first statement that touches the file: it is what tells a
    // SQLite store from anything else.
    schema::check_readable(&conn, path)?;
    // Switching to WAL rewrites the file header: only do it to a file that is (or will be) ours,
    // never to another program's database or a store from a newer tapedeck.
    let version = schema::check_ours(&conn, path)?;
    writer::retry_busy(|| {
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.pragma_update(None, "synchronous", "normal")?;
        conn.pragma_update(None, "foreign_keys", "on")
    })
    .map_err(|e| StoreError::from_sqlite(path, e))?;
    schema::migrate(&conn, path, version)?;
    Ok(conn)
}
