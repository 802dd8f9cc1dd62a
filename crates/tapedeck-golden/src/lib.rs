//! Golden suites run: [`record`] runs each task with an agent version or the suite's command
//! and keeps the runs as the baseline tapes and behaviour snapshots; [`Check`] runs a candidate
//! — an agent version replayed tools-only, or a command rerun in a session against its
//! baselines — and judges it into a [`SuiteJudgement`] that the command line renders. The
//! suite's files and the judging rules are `tapedeck_diff::golden`'s.
//!
//! ```
//! use tapedeck_golden::{Candidate, Check, GoldenError, Observer};
//! use tapedeck_diff::golden::Suite;
//!
//! // A suite with a task but no baseline yet cannot be checked: the check says what to run,
//! // before anything is written.
//! let dir = std::env::temp_dir().join(format!("tapedeck-golden-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(
//!     dir.join("suite.yaml"),
//!     "name: weather\ncommand: [sh, agent.sh, \"{input}\"]\ntasks:\n  - id: paris\n    input: Weather in Paris?\n",
//! )?;
//! let suite = Suite::load(&dir)?;
//! let command = suite.command().expect("a command suite");
//! let candidate = Candidate::Command {
//!     argv: command.argv.clone(),
//!     command,
//!     model: tapedeck_replay::session::ModelSource::Recorded,
//!     interrupts: tapedeck_proxy::http::no_interrupts,
//! };
//! struct Quiet;
//! impl Observer for Quiet {}
//! let tasks = suite.tasks.iter().collect();
//! let refused = Check::prepare(&suite, tasks, 1, candidate, false, &Quiet);
//! # std::fs::remove_dir_all(&dir)?;
//! match refused {
//!     Err(GoldenError::NoBaseline { task, .. }) => assert_eq!(task, "paris"),
//!     _ => panic!("a missing baseline is refused"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod check;
mod command;
mod error;
mod files;
mod record;

pub use check::{Candidate, Check};
pub use error::GoldenError;
pub use files::{export_tape, import_tape, write_snapshot};
pub use record::{Recorder, TaskRecording, record};
pub use tapedeck_diff::golden::check::SuiteJudgement;

/// What a suite's runs tell while they work: how many task runs a check will make, each one
/// done, and warnings (a baseline whose tools changed, a candidate command that failed).
pub trait Observer: Sync {
    /// A check is about to make `runs` task runs.
    fn runs_planned(&self, runs: usize) {
        let _ = runs;
    }
    /// A task run is done.
    fn run_done(&self) {}
    /// Something worth a look that does not stop the work.
    fn warning(&self, message: &str) {
        let _ = message;
    }
}
