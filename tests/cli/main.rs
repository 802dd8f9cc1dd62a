//! End-to-end tests of the `tapedeck` binary: every command run as a user runs it, against a
//! store in a temporary folder, mostly filled from the fixture tapes of `fixtures/tapes/`
//! (their ids and times are fixed, so their output snapshots are stable).
//!
//! One module per area. Every command runs through [`tapedeck_in`]: in a temporary working
//! directory (no test can touch a real `.tapedeck/` store), without a terminal, with
//! `NO_COLOR=1` and a fixed help width, and with no `TAPEDECK_STORE` from the environment.

mod bad_input;
mod bench;
mod compare;
mod demo;
mod diff;
mod help;
mod json;
mod ls;
mod show;
mod stats;
mod store;
mod tapes;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
pub use tapedeck_testkit::cli::{Backend, TestDir};
use tapedeck_trace::Timestamp;

/// The fixture tapes: file name in `fixtures/tapes/`, short id, start time.
pub const FIXTURES: [(&str, &str, &str); 4] = [
    ("clean.jsonl", CLEAN, "2026-11-03T09:15:00Z"),
    (
        "browser-retry-incident.jsonl",
        INCIDENT,
        "2026-11-12T03:14:07Z",
    ),
    ("tool-denied.jsonl", TOOL_DENIED, "2026-11-05T16:40:00Z"),
    ("long-run.jsonl", LONG_RUN, "2026-11-18T11:00:00Z"),
];

/// Short id of `clean.jsonl` (`support-bot`, one `kb.read`, stop reason `ok`).
pub const CLEAN: &str = "5a1c3e01";
/// Short id of `browser-retry-incident.jsonl` (`research-bot`, 15 × `browser.open`,
/// `max_tool_calls`).
pub const INCIDENT: &str = "b7e5d602";
/// Short id of `tool-denied.jsonl` (`support-bot`, `tool_denied:http.post`).
pub const TOOL_DENIED: &str = "c4f2a903";
/// Short id of `long-run.jsonl` (`research-bot`, 120 tool calls, `ok`).
pub const LONG_RUN: &str = "e9d8b104";

/// The name of the store file in a test's folder.
pub const STORE: &str = "t.db";

/// A fixture tape's path.
pub fn fixture(name: &str) -> PathBuf {
    tapedeck_testkit::fixtures_dir().join("tapes").join(name)
}

/// `tapedeck`, run in `dir`, with plain output ([`tapedeck_testkit::cli::tapedeck_in`]).
pub fn tapedeck_in(dir: &Path) -> Command {
    tapedeck_testkit::cli::tapedeck_in(dir)
}

/// `tapedeck --store <store>`, run in the store's folder. The store is named relative to that
/// folder, so what the command prints says `t.db`, not a temporary path.
pub fn tapedeck(store: &Path) -> Command {
    let dir = store.parent().expect("the store is a file in a folder");
    let name = store.file_name().expect("the store is a file");
    let mut cmd = tapedeck_in(dir);
    cmd.arg("--store").arg(name);
    cmd
}

/// Imports the four fixture tapes into `store` and checks that each was imported.
pub fn import_fixtures(store: &Path) {
    import_fixtures_with(&mut tapedeck(store));
}

/// Imports the four fixture tapes with `cmd` (`tapedeck --store …`).
fn import_fixtures_with(cmd: &mut Command) {
    cmd.arg("import");
    for (name, _, _) in FIXTURES {
        cmd.arg(fixture(name));
    }
    let out = stdout(cmd);
    for (_, short, _) in FIXTURES {
        assert!(
            out.contains(&format!("imported {short} (")),
            "{short} not imported:\n{out}"
        );
    }
}

/// A temporary folder, the working directory of its commands, with the store `t.db` in it
/// (the file exists once a command created it) ([`TestDir`]).
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
    /// An empty folder: no store yet.
    pub fn new() -> Self {
        Self(TestDir::new())
    }

    /// A store holding the four fixture runs.
    pub fn with_fixtures() -> Self {
        Self::with_fixtures_on(Backend::Sqlite)
    }

    /// An empty store on `backend`.
    pub fn on(backend: Backend) -> Self {
        Self(TestDir::on(backend))
    }

    /// A store on `backend` holding the four fixture runs.
    pub fn with_fixtures_on(backend: Backend) -> Self {
        let env = Self::on(backend);
        import_fixtures_with(&mut env.tapedeck());
        env
    }

    /// The runs `ls --json` lists with these extra arguments.
    pub fn ls_json(&self, args: &[&str]) -> Vec<Value> {
        runs_listed(&stdout(self.tapedeck().arg("ls").arg("--json").args(args)))
    }

    /// The short ids `ls --json` lists with these extra arguments, newest first.
    pub fn ls_ids(&self, args: &[&str]) -> Vec<String> {
        self.ls_json(args)
            .iter()
            .map(|run| {
                run["short_id"]
                    .as_str()
                    .expect("every run has a short_id")
                    .to_owned()
            })
            .collect()
    }

    /// How many runs the store holds.
    pub fn run_count(&self) -> usize {
        self.ls_json(&["-n", "100000"]).len()
    }
}

/// The runs of what `ls --json` printed (a `tapedeck-runs` document).
pub fn runs_listed(out: &str) -> Vec<Value> {
    let listing: Value = serde_json::from_str(out).expect("`ls --json` prints JSON");
    assert_eq!(listing["format"], "tapedeck-runs", "{out}");
    match &listing["runs"] {
        Value::Array(runs) => runs.clone(),
        other => panic!("`ls --json` has {other} under `runs`, not an array"),
    }
}

/// Runs the command, checks it exited 0 with nothing on stderr, and returns its stdout.
pub fn stdout(cmd: &mut Command) -> String {
    let output = cmd.output().expect("tapedeck runs");
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert_eq!(
        output.status.code(),
        Some(0),
        "expected exit 0\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert_eq!(stderr, "", "expected nothing on stderr");
    stdout
}

/// Runs the command and checks it failed as an input error: exit 2, nothing on stdout, and on
/// stderr exactly one line, starting with `error:`, with no panic and no backtrace. Returns
/// that line.
pub fn input_error(cmd: &mut Command) -> String {
    let output = cmd.output().expect("tapedeck runs");
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected exit 2\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert_eq!(stdout, "", "an input error prints nothing on stdout");
    assert!(
        !stderr.contains("panicked") && !stderr.to_lowercase().contains("backtrace"),
        "tapedeck panicked:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    assert!(
        lines[0].starts_with("error: "),
        "the line does not start with `error: `: {stderr}"
    );
    lines[0].to_owned()
}

/// How many fixture runs started at or after `cutoff`.
pub fn fixtures_since(cutoff: Timestamp) -> usize {
    FIXTURES
        .iter()
        .filter(|(_, _, started)| started_at(started) >= cutoff.as_micros())
        .count()
}

/// An RFC 3339 time, in microseconds since the epoch.
pub fn started_at(time: &str) -> i64 {
    time.parse::<Timestamp>()
        .expect("an RFC 3339 time")
        .as_micros()
}

/// Now minus `days`.
pub fn days_ago(days: i64) -> Timestamp {
    Timestamp::from_micros(Timestamp::now().as_micros() - days * 86_400_000_000)
}

/// A complete two-event-step tape of a made-up run with id `run_id` (its short id is the id's
/// last 8 hex digits), dated 2026-11-20: one model call, no tools, stop reason `ok`.
pub fn tiny_tape(run_id: &str) -> String {
    use tapedeck_testkit::{TapeBuilder, message};
    use tapedeck_trace::{StopReason, Usage};
    let mut tape = TapeBuilder::new(run_id, "2026-11-20T08:00:00Z")
        .task("ping")
        .input("ping")
        .agent("ping-bot", "00ff00ff");
    tape.run_started(
        None,
        serde_json::json!({ "max_steps": 1 }),
        serde_json::json!({}),
    );
    let usage = Usage {
        input_tokens: 3,
        output_tokens: 1,
    };
    tape.llm_step(
        &[message::user("ping")],
        &message::assistant("pong"),
        usage,
        10,
    );
    tape.finish(StopReason::Ok, Some("pong"))
}

#[test]
fn fixture_short_ids_are_those_of_the_scenarios() {
    use tapedeck_testkit::scenarios;
    for (id, short) in [
        (scenarios::CLEAN_RUN_ID, CLEAN),
        (scenarios::INCIDENT_RUN_ID, INCIDENT),
        (scenarios::TOOL_DENIED_RUN_ID, TOOL_DENIED),
        (scenarios::LONG_RUN_ID, LONG_RUN),
    ] {
        let id: tapedeck_trace::RunId = id.parse().expect("a run id");
        assert_eq!(id.short(), short);
    }
}
