//! The diff engine: a run reduced to a [`RunSummary`], two summaries compared
//! ([`diff_runs`]) — metric deltas against [`Tolerances`], the tool-call trajectories aligned
//! with their first divergence, a word-level answer diff, what changed between the agent
//! versions of two proxy runs ([`agent`]) — and the result written for people
//! ([`report`]: text, Markdown, HTML) or tools (JSON, via serde). [`golden`] holds the files
//! of golden suites (suite.yaml, behaviour snapshots in insta's `.snap` format) and their CI
//! reports.

//!
//! ```
//! use tapedeck_diff::{RunSummary, Tolerances, diff_runs};
//! use tapedeck_store::{ImportOutcome, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("tapedeck.db"))?;
//! let mut import = |task: &str| -> Result<_, Box<dyn std::error::Error>> {
//!     let path = format!("{}/../../golden/support/tapes/{task}/1.jsonl", env!("CARGO_MANIFEST_DIR"));
//!     match store.import_tape(&mut std::fs::read(path)?.as_slice())? {
//!         ImportOutcome::Imported { id, .. } => Ok(id),
//!         ImportOutcome::AlreadyPresent(id) => Ok(id),
//!     }
//! };
//! let (reset, refund) = (import("password-reset")?, import("refund-order")?);
//! let same = diff_runs(
//!     RunSummary::load(&store, &reset)?,
//!     RunSummary::load(&store, &reset)?,
//!     &Tolerances::default(),
//! );
//! assert!(!same.drift);
//! let other = diff_runs(
//!     RunSummary::load(&store, &reset)?,
//!     RunSummary::load(&store, &refund)?,
//!     &Tolerances::default(),
//! );
//! assert!(other.drift && other.first_divergence.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod agent;
pub mod compare;
pub mod distribution;
pub mod golden;
pub mod report;
pub mod stats;
pub mod summary;

pub use agent::{AgentDiff, AgentVersion, diff_agents};
pub use compare::{
    Aligned, AnswerDiff, FirstDivergence, MetricDelta, RunDiff, TOLERANCE_KEYS, Tolerances,
    Verdict, answer_diff, diff_runs,
};
pub use summary::{CallKey, RunSummary, ToolSpend, tool_spend};

/// Why a diff could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The store failed (unknown run, missing blob, …).
    #[error(transparent)]
    Store(#[from] tapedeck_store::StoreError),
    /// A value could not be written canonically.
    #[error(transparent)]
    Trace(#[from] tapedeck_trace::TraceError),
    /// A tolerance that is not valid.
    #[error("{0}")]
    Tolerance(String),
    /// Too few runs on a side for any test to reach the significance level. Says no more: how
    /// to get more runs depends on the command (`golden check --repeat N`, wider `compare`
    /// selectors).
    #[error(
        "{per_side} runs per side can never reach significance level {alpha} over {tests} tests: the smallest N that can is {needed}"
    )]
    TooFewRuns {
        /// The runs on the smallest side (of the smallest task).
        per_side: usize,
        /// The significance level.
        alpha: f64,
        /// How many tests the correction is over.
        tests: usize,
        /// The smallest number of runs per side that can reach `alpha`.
        needed: usize,
    },
    /// A golden suite's file (suite.yaml, a tape, a snapshot) is missing or invalid.
    #[error("{}: {message}", path.display())]
    Golden {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, and how to fix it.
        message: String,
    },
}

/// `; did you mean `x`?` for the candidate closest to `word` (within 3 edits), else nothing.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map_or_else(String::new, |(_, c)| format!("; did you mean `{c}`?"))
}
