//! End-to-end tests of sessions: agents written as code — the Python and JavaScript client
//! libraries of `clients/`, `tapedeck mcp`, and fixture agents on the official SDKs — recorded
//! with `tapedeck record -- CMD` and replayed with `tapedeck replay RUN … -- CMD`, against fake
//! upstreams on 127.0.0.1.

mod agents;
mod clients;
mod conformance;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
pub use tapedeck_testkit::cli::{Backend, Outcome, TestDir};
pub use tapedeck_testkit::fake_http as server;

/// The API key the agents send: it must appear nowhere in the store.
pub const KEY: &str = "sk-test-SESSION-0123456789";

/// The repository's root (where `clients/` and `tests/session/` are).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary folder holding the store `t.db` and the files the agents read and write
/// ([`TestDir`]); its commands get the test key and `TAPEDECK_BIN` (how the fixture agents
/// start `tapedeck mcp`), outside any session.
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
    /// An empty folder.
    pub fn new() -> Self {
        Self::on(Backend::Sqlite)
    }

    /// An empty folder, its store on `backend`.
    pub fn on(backend: Backend) -> Self {
        Self(TestDir::on(backend).with_setup(|cmd| {
            cmd.env("OPENAI_API_KEY", KEY)
                .env("ANTHROPIC_API_KEY", KEY)
                .env("TAPEDECK_BIN", assert_cmd::cargo::cargo_bin("tapedeck"))
                .env_remove("TAPEDECK_SESSION");
        }))
    }

    /// Runs a command to its end (two minutes at most).
    pub fn exec(&self, cmd: &mut Command) -> Outcome {
        Outcome::of(cmd.timeout(std::time::Duration::from_secs(120)))
    }
}

/// The `(kind, tool)` of every tool event of a `show --json` document, in order.
pub fn tool_events(show: &Value) -> Vec<(String, String)> {
    show["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| matches!(e["kind"].as_str(), Some("tool_call" | "tool_result")))
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["data"]["tool"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The `data` of every event of `kind`.
pub fn events_of<'a>(show: &'a Value, kind: &str) -> Vec<&'a Value> {
    show["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| &e["data"])
        .collect()
}

/// A path as a string for a command line.
pub fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// Whether Node is there ([`tapedeck_testkit::clients::require`]).
pub fn require_node() -> bool {
    tapedeck_testkit::clients::require(
        "node",
        std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "apt-get install nodejs",
    )
}

/// Whether Node and the npm packages of `tests/session/node` are there (`npm ci` installs
/// them; `.ci/test` does).
pub fn require_node_packages() -> bool {
    let installed = repo()
        .join("tests/session/node/node_modules/openai")
        .is_dir()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    tapedeck_testkit::clients::require(
        "node with the `openai` and `@modelcontextprotocol/sdk` npm packages",
        installed,
        "cd tests/session/node && npm ci",
    )
}
