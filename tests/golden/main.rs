//! End-to-end tests of `tapedeck golden`: the shipped suites (`golden/support`,
//! `golden/research`) copied into a temporary folder, recorded, checked against themselves and
//! against the drift candidate `fixtures/agents/support-bot-drift.yaml`, reviewed, sharded, and
//! fed bad input; and the suite of a command, `golden/weather-py`, against its fake upstream
//! (`commands`).
//!
//! One module per area. Every command runs through [`Env::tapedeck`]: in the temporary folder
//! (so paths print relative to it), with a store of its own, no terminal and `NO_COLOR=1`.

mod bad_input;
mod check;
mod commands;
mod help;
mod html;
mod record;
mod repeat;
mod review;
mod verdicts;

use std::process::Output;

use serde_json::Value;
pub use tapedeck_testkit::cli::{Backend, TestDir};

/// The tasks of `golden/support` the drift candidate changes: three password questions (a
/// second `kb.search`) and the shipping answer.
pub const DRIFTING: [&str; 4] = [
    "password-reset",
    "password-forgot",
    "password-link-expired",
    "shipping-times",
];

/// The drift candidate, relative to a test's folder.
pub const CANDIDATE: &str = "candidates/support-bot-drift.yaml";

pub use tapedeck_testkit::{copy_dir, workspace_root as root};

/// A temporary folder holding copies of the shipped suites under `golden/`, the drift
/// candidate under `candidates/`, and the store `t.db` ([`TestDir`]).
pub struct Env(TestDir);

impl std::ops::Deref for Env {
    type Target = TestDir;
    fn deref(&self) -> &TestDir {
        &self.0
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    /// An empty folder (for a suite of its own).
    pub fn empty() -> Self {
        Self::empty_on(Backend::Sqlite)
    }

    /// An empty folder, its store on `backend`.
    pub fn empty_on(backend: Backend) -> Self {
        Self(TestDir::on(backend))
    }

    /// The folder with both suites and the candidate.
    pub fn new() -> Self {
        Self::on(Backend::Sqlite)
    }

    /// [`Env::new`], its store on `backend`.
    pub fn on(backend: Backend) -> Self {
        let env = Self::empty_on(backend);
        for suite in ["support", "research"] {
            copy_dir(
                &root().join("golden").join(suite),
                &env.path("golden").join(suite),
            );
        }
        let candidates = env.path("candidates");
        std::fs::create_dir_all(&candidates).expect("create candidates/");
        for file in [
            "support-bot-drift.yaml",
            "support-bot-drift.script.yaml",
            "approvals.yaml",
        ] {
            std::fs::copy(
                tapedeck_testkit::fixtures_dir().join("agents").join(file),
                candidates.join(file),
            )
            .expect("copy the candidate");
        }
        env
    }

    /// `tapedeck golden ARGS…`: its exit code, stdout and stderr.
    pub fn golden(&self, args: &[&str]) -> (i32, String, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self
            .tapedeck()
            .arg("golden")
            .args(args)
            .output()
            .expect("tapedeck runs");
        (
            status.code().expect("an exit code"),
            String::from_utf8(stdout).expect("stdout is UTF-8"),
            String::from_utf8(stderr).expect("stderr is UTF-8"),
        )
    }

    /// The tasks of a suite with a pending snapshot, sorted.
    pub fn pending(&self, suite: &str) -> Vec<String> {
        let dir = self.path(&format!("golden/{suite}/snapshots"));
        let mut tasks: Vec<String> = std::fs::read_dir(dir)
            .expect("read snapshots/")
            .filter_map(|e| {
                let name = e
                    .expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                name.strip_suffix(".snap.new").map(str::to_owned)
            })
            .collect();
        tasks.sort();
        tasks
    }

    /// The task ids of a suite, in file order (from `check --json`'s view of suite.yaml).
    pub fn task_ids(&self, suite: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.path(&format!("golden/{suite}/suite.yaml")))
            .expect("read suite.yaml");
        text.lines()
            .filter_map(|l| l.strip_prefix("- id: "))
            .map(|id| id.trim().to_owned())
            .collect()
    }
}

/// The task results of a `golden check --json` report (a `tapedeck-golden-check` document).
pub fn task_results(report: &str) -> Vec<Value> {
    let report: Value = serde_json::from_str(report).expect("the JSON report is JSON");
    assert_eq!(report["format"], "tapedeck-golden-check", "{report}");
    match &report["tasks"] {
        Value::Array(tasks) => tasks.clone(),
        other => panic!("the JSON report has {other} under `tasks`, not a list"),
    }
}

/// The runs of what `ls --json` printed (a `tapedeck-runs` document).
pub fn runs_listed(stdout: &[u8]) -> Vec<Value> {
    let listing: Value = serde_json::from_slice(stdout).expect("`ls --json` prints JSON");
    assert_eq!(listing["format"], "tapedeck-runs", "{listing}");
    match &listing["runs"] {
        Value::Array(runs) => runs.clone(),
        other => panic!("`ls --json` has {other} under `runs`, not a list"),
    }
}

/// Asserts an exit code, showing the output when it differs.
#[track_caller]
pub fn assert_exit(result: &(i32, String, String), code: i32) {
    assert_eq!(
        result.0, code,
        "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
        result.1, result.2
    );
}

/// Asserts an input error: exit 2, one `error:` line on stderr containing every `needle`.
#[track_caller]
pub fn assert_input_error(result: &(i32, String, String), needles: &[&str]) {
    assert_exit(result, 2);
    let line = result.2.trim_end();
    assert!(
        line.starts_with("error: ") && !line.contains('\n'),
        "expected one `error:` line, got:\n{line}"
    );
    assert!(!line.contains("panicked"), "tapedeck panicked:\n{line}");
    for needle in needles {
        assert!(line.contains(needle), "`{needle}` is not in:\n{line}");
    }
}
