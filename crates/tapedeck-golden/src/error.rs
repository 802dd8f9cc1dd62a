//! [`GoldenError`]: why a suite could not be recorded or checked.

use std::path::PathBuf;

use tapedeck_agent::AgentError;
use tapedeck_diff::DiffError;
use tapedeck_proxy::command_line::CommandLineError;
use tapedeck_proxy::http::ClientError;
use tapedeck_replay::ReplayError;
use tapedeck_store::StoreError;
use tapedeck_trace::Source;

/// Why a golden suite could not be recorded or checked. The variants up to [`Self::Store`] are
/// found in the input, before a check writes anything.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// A task has no baseline tape.
    #[error("{}: no baseline tape for task `{task}`: record it with `tapedeck golden record {}`", tape.display(), suite_dir.display())]
    NoBaseline {
        /// The tape looked for.
        tape: PathBuf,
        /// The task.
        task: String,
        /// The suite's folder.
        suite_dir: PathBuf,
    },
    /// A task has fewer baseline runs than the check's repetitions.
    #[error("{}: task `{task}` has {recorded} baseline run{} but the check needs {repeat}: record them with `tapedeck golden record {} --repeat {repeat}`", tapes.display(), if *recorded == 1 { "" } else { "s" }, suite_dir.display())]
    TooFewBaselines {
        /// The task's tape folder.
        tapes: PathBuf,
        /// The task.
        task: String,
        /// Runs recorded.
        recorded: usize,
        /// Runs the check needs.
        repeat: usize,
        /// The suite's folder.
        suite_dir: PathBuf,
    },
    /// A baseline tape to read is not there.
    #[error("{}: no baseline tape for task `{task}`: record it with `tapedeck golden record`", tape.display())]
    TapeNotFound {
        /// The tape.
        tape: PathBuf,
        /// The task.
        task: String,
    },
    /// A baseline tape cannot be read.
    #[error("{}: cannot read the tape of task `{task}`: {error}", tape.display())]
    UnreadableTape {
        /// The tape.
        tape: PathBuf,
        /// The task.
        task: String,
        /// Why.
        error: std::io::Error,
    },
    /// A baseline tape is not a tape.
    #[error("{}: the tape of task `{task}`", tape.display())]
    BadTape {
        /// The tape.
        tape: PathBuf,
        /// The task.
        task: String,
        /// What is wrong with it.
        #[source]
        error: Box<StoreError>,
    },
    /// A command suite's baseline was not recorded by a command.
    #[error("{}: the baseline of task `{task}` was recorded by the {recorded_by}, not by a command: suite `{suite}` runs a command (`command:` in suite.yaml), which cannot replay it; record the task again with `tapedeck golden record {}`", tape.display(), suite_dir.display())]
    NotACommandBaseline {
        /// The tape.
        tape: PathBuf,
        /// The task.
        task: String,
        /// What recorded it.
        recorded_by: Source,
        /// The suite's name.
        suite: String,
        /// The suite's folder.
        suite_dir: PathBuf,
    },
    /// A task's snapshot does not parse.
    #[error("the snapshot of task `{task}`")]
    Snapshot {
        /// The task.
        task: String,
        /// What is wrong with it.
        #[source]
        error: Box<DiffError>,
    },
    /// The repetitions can never reach significance.
    #[error(
        "suite `{suite}`, {repeat} runs per task: {error} (record and check with --repeat {needed}, or raise `alpha` in suite.yaml)"
    )]
    TooFewRuns {
        /// The suite's name.
        suite: String,
        /// Runs per task.
        repeat: usize,
        /// The smallest number of runs that can.
        needed: usize,
        /// The power check's own words.
        error: Box<DiffError>,
    },
    /// A command suite's working folder is not a folder.
    #[error("the suite's `cwd` `{}` is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// A command cannot start.
    #[error(transparent)]
    CommandLine(#[from] CommandLineError),
    /// A file of the suite could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// A run could not be written as a tape.
    #[error("cannot write `{}`", path.display())]
    Export {
        /// The tape.
        path: PathBuf,
        /// Why.
        #[source]
        error: Box<StoreError>,
    },
    /// A recorded baseline's command failed.
    #[error("the command exited with {code} (run {run}); the end of its output:\n{tail}")]
    CommandFailed {
        /// Its exit code, or "no code".
        code: String,
        /// The run's short id.
        run: String,
        /// The end of its output.
        tail: String,
    },
    /// A worker could not open its own connection to the store.
    #[error("cannot open the store: {0}")]
    WorkerStore(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A comparison or a suite file failed.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// A replay failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The agent failed to build or run.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// A command's run behind the proxy failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The proxy's HTTP client could not be set up.
    #[error("cannot set up the HTTP client")]
    HttpClient(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl GoldenError {
    /// The store error inside, if the store is what failed (not the input).
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            Self::Export { error, .. } => Some(error),
            Self::Replay(e) => e.store_error(),
            Self::Agent(AgentError::Record(e)) => e.downcast_ref(),
            Self::Client(ClientError::Store(e)) => Some(e),
            _ => None,
        }
    }
}
