//! End-to-end tests of `tapedeck record -- CMD` and `tapedeck replay RUN -- CMD`: a real client
//! (the official `openai`, `anthropic` Python SDKs, the `openai` npm package) talks
//! to the proxy, which forwards to a fake upstream on 127.0.0.1; the run is read back with
//! `show RUN --json`, then replayed with the upstream gone.

mod anthropic;
mod bounds;
mod exits;
mod identity;
mod long_lived;
mod node;
mod openai;
mod responses;
mod robust;
mod runtime;
mod sessions;
mod storage;
mod weather;
use tapedeck_testkit::fake_http as server;

use assert_cmd::Command;
use serde_json::Value;

/// The API key the clients send: it must appear nowhere in the store.
pub const KEY: &str = "sk-test-VERYSECRET-0123456789";

/// A temporary folder holding the client script and the store `t.db` ([`TestDir`]); its
/// commands get the test key.
pub struct Env(TestDir);

pub use tapedeck_testkit::cli::{Backend, Outcome, TestDir};

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
    /// An empty folder.
    pub fn new() -> Self {
        Self::on(Backend::Sqlite)
    }

    /// An empty folder, its store on `backend`.
    pub fn on(backend: Backend) -> Self {
        Self(TestDir::on(backend).with_setup(|cmd| {
            cmd.env("OPENAI_API_KEY", KEY).env("ANTHROPIC_API_KEY", KEY);
        }))
    }

    /// Runs a command to its end (a minute at most).
    pub fn exec(&self, cmd: &mut Command) -> Outcome {
        Outcome::of(cmd.timeout(std::time::Duration::from_secs(60)))
    }

    /// `tapedeck record FLAGS… -- CMD…` to its end.
    pub fn record(&self, flags: &[&str], command: &[&str]) -> Outcome {
        self.exec(
            self.tapedeck()
                .arg("record")
                .args(flags)
                .arg("--")
                .args(command),
        )
    }

    /// `tapedeck replay RUN -- CMD…`, which must exit 0 with the client printing what it printed
    /// in `recorded`; returns how it ended.
    pub fn replay_same(&self, run: &str, command: &[&str], recorded: &Outcome) -> Outcome {
        let rep = self.exec(self.tapedeck().args(["replay", run, "--"]).args(command));
        rep.expect_code(0);
        assert_eq!(rep.stdout, recorded.stdout, "the client printed otherwise");
        rep
    }
}

/// The events of a recorded tool conversation: a model call asking for a tool, the tool's
/// result in the next request, the answer, and the agent's identity.
pub const TOOL_CONVERSATION: [&str; 10] = [
    "llm_request",
    "llm_response",
    "tool_call",
    "http_exchange",
    "tool_result",
    "llm_request",
    "llm_response",
    "http_exchange",
    "agent_identity",
    "run_finished",
];

/// The event kinds of a `show --json` document, in order.
pub fn kinds(show: &Value) -> Vec<String> {
    show["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Whether a test of the `openai` Python SDK runs ([`tapedeck_testkit::clients::require`]).
pub fn require_openai_sdk() -> bool {
    tapedeck_testkit::clients::require(
        "the openai Python SDK",
        tapedeck_testkit::clients::python_imports("openai"),
        "python3 -m pip install openai",
    )
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
