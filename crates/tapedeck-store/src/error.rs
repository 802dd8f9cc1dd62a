//! The one error type of the store, [`StoreError`].

use std::path::{Path, PathBuf};

use tapedeck_trace::{ContentHash, Timestamp, TraceError};

/// A run an ambiguous id could mean, as the error names it: `…5f3a9c2e1a4b (started
/// 2026-11-03 09:15:00 UTC, task password-reset)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunCandidate {
    /// The full id.
    pub id: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Its golden task, if any.
    pub task: Option<String>,
}

impl std::fmt::Display for RunCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let started = self.started_at.to_string();
        // Seconds are enough to tell runs apart by eye: `2026-11-03T09:15:00`.
        let started = started.get(..19).unwrap_or(&started).replace('T', " ");
        write!(f, "{} (started {started} UTC", self.id)?;
        if let Some(task) = &self.task {
            write!(f, ", task {task}")?;
        }
        f.write_str(")")
    }
}

/// What can go wrong with a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder for the store file could not be created.
    #[error("cannot create the folder `{path}` for the store: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a SQLite database.
    #[error("`{path}` is not a tapedeck store (not a SQLite database); pass another --store")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is a damaged SQLite database.
    #[error(
        "the store `{path}` is corrupted ({detail}); restore it from a backup or `sqlite3 {path} .recover`"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        detail: String,
    },
    /// The store was written by a newer tapedeck.
    #[error(
        "the store `{path}` has schema version {found}, newer than this tapedeck reads ({supported}); upgrade tapedeck"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build reads.
        supported: i64,
    },
    /// The file is a SQLite database but not one of ours.
    #[error("`{path}` is a SQLite database but not a tapedeck store (it has no `runs` table)")]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// A `--store` written as a URL of an engine tapedeck has no backend for.
    #[error(
        "`{scheme}://` stores are not supported; --store takes a SQLite file path or a postgres:// URL"
    )]
    UnsupportedScheme {
        /// The URL's scheme, lowercased.
        scheme: String,
    },
    /// A `postgres://` store URL that cannot be used as it is.
    #[error("store `{url}`: {detail}")]
    PgUrl {
        /// The URL, any password in it replaced by `***`.
        url: String,
        /// What is wrong, and what to do.
        detail: String,
    },
    /// A PostgreSQL failure: connecting, or a statement.
    #[error("store `{url}`: {detail}")]
    Postgres {
        /// The URL (it never holds a password).
        url: String,
        /// The server's or the driver's message.
        detail: String,
    },
    /// A PostgreSQL database without a store, or with an older schema: never created or
    /// upgraded on open, so that one upgraded runner cannot lock older ones out.
    #[error(
        "the store `{url}` has schema version {found} and this tapedeck needs {supported}{}; run `tapedeck --store {url} store migrate` (once every tapedeck writing to it is this version)",
        if *found == 0 { " (the database holds no store yet)" } else { "" }
    )]
    PgNeedsMigration {
        /// The URL.
        url: String,
        /// Its schema version (0: none).
        found: i64,
        /// The version this build uses.
        supported: i64,
    },
    /// A PostgreSQL store written by a newer tapedeck.
    #[error(
        "the store `{url}` has schema version {found}, newer than this tapedeck reads ({supported}); upgrade tapedeck"
    )]
    PgNewerSchema {
        /// The URL.
        url: String,
        /// Its schema version.
        found: i64,
        /// The newest this build reads.
        supported: i64,
    },
    /// A PostgreSQL database with a `runs` table that is not ours.
    #[error(
        "the database of `{url}` has a `runs` table but no tapedeck schema version: it is not a tapedeck store; use another database (or schema, in the URL's `options=-csearch_path=…`)"
    )]
    PgForeign {
        /// The URL.
        url: String,
    },
    /// A SQLite-only code path reached with a PostgreSQL store (#17: every public method has
    /// its PostgreSQL branch; this is the guard of the SQLite connection's accessor).
    #[error(
        "store `{url}`: this does not work on a PostgreSQL store yet (see #17); use a SQLite store file"
    )]
    PgNotYet {
        /// The URL.
        url: String,
    },
    /// Any other SQLite failure.
    #[error("store `{path}`: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// No run matches the id given.
    #[error("no run matches `{0}` (see `tapedeck ls`)")]
    RunNotFound(String),
    /// Several runs match the id prefix given.
    #[error(
        "`{prefix}` matches several runs: {}; type more of the id, or its last 12 hex digits",
        candidates.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousRun {
        /// What was typed.
        prefix: String,
        /// Some of the matching runs, newest first.
        candidates: Vec<RunCandidate>,
    },
    /// A run id that is already in the store.
    #[error("run {0} is already in the store")]
    DuplicateRun(String),
    /// An event was appended to a run that has finished.
    #[error("run {0} has finished; no more events can be recorded into it")]
    RunFinished(String),
    /// An event refers to a blob the store does not have.
    #[error(
        "run {run}: blob {hash} is missing from the store (the store is incomplete; re-import the run)"
    )]
    MissingBlob {
        /// The run.
        run: String,
        /// The blob.
        hash: ContentHash,
    },
    /// Data in the store that does not parse as the trace model.
    #[error("run {run}: stored data is invalid: {detail}")]
    InvalidData {
        /// The run.
        run: String,
        /// What is wrong.
        detail: String,
    },
    /// A run that two stores hold and that cannot be merged: their copies disagree.
    #[error("cannot merge run {run}: {detail}")]
    MergeConflict {
        /// The run.
        run: String,
        /// How the two copies disagree.
        detail: String,
    },
    /// A tape that is not valid.
    #[error(transparent)]
    Tape(#[from] TraceError),
    /// Reading or writing a tape failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The writer thread failed; the events since its last commit were not stored.
    #[error("recording into `{path}` failed: {detail}")]
    WriterFailed {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Some of a run's events were not stored: the writer failed, or an event could not be
    /// encoded. The events before them are kept.
    #[error(
        "run {run}: {count} event{} could not be written to `{path}`: {detail}",
        if *count == 1 { "" } else { "s" }
    )]
    EventsNotWritten {
        /// The run.
        run: String,
        /// How many of its events are missing from the store.
        count: u64,
        /// The store file.
        path: PathBuf,
        /// Why (SQLite's message, or the encoding error).
        detail: String,
    },
}

impl StoreError {
    /// Classifies a SQLite error met on `path`.
    pub(crate) fn from_sqlite(path: &Path, source: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Self::NotADatabase { path },
            Some(ErrorCode::DatabaseCorrupt) => Self::Corrupt {
                path,
                detail: source.to_string(),
            },
            _ => Self::Sqlite { path, source },
        }
    }

    /// Whether this error is about bad input (a wrong file, an unknown id, a bad tape) rather
    /// than a failure of the machine.
    pub fn is_input_error(&self) -> bool {
        !matches!(
            self,
            Self::WriterFailed { .. } | Self::EventsNotWritten { .. }
        )
    }
}
