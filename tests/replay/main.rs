//! End-to-end tests of `tapedeck replay`: agent versions (scripted models, `builtin: mock` and
//! small `sh` tools) written into a temporary folder, run by the binary to record a run, then
//! replayed — exactly, against a new version's model with recorded tools, forked at a step, or
//! a folder of tapes at once — and both runs read back with `show --json`.
//!
//! One module per area. Every command runs through [`Env::tapedeck`]: in the test's folder,
//! with the store `t.db` there, without a terminal (so nobody can approve a write), with
//! `NO_COLOR=1` and no store or colour settings inherited from the environment.

mod bad_input;
mod exact;
mod fork;
mod tapes;
mod tools_only;

use serde_json::Value;

pub use tapedeck_testkit::cli::{Backend, Outcome, STORE, TestDir};

/// The support bot's password question: `kb.search`, `kb.read`, then the answer.
pub const PASSWORD: &str = "How do I reset my password?";
/// The support bot's refund: `kb.read`, then `orders.refund` (a write, approved by the
/// approvals file), then the answer.
pub const REFUND: &str = "Please refund order A-1234";
/// The support bot's webhook: it calls `http.post`, which is not allowed.
pub const WEBHOOK: &str = "Send a test webhook";

/// A temporary folder holding agent files and the store `t.db`; the working directory of its
/// commands, which get no API keys ([`TestDir`]).
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
            cmd.env_remove("OPENAI_API_KEY")
                .env_remove("ANTHROPIC_API_KEY");
        }))
    }

    /// A folder holding the fixture agents (`support-bot.yaml`, `research-bot.yaml`, their
    /// scripts and `approvals.yaml`).
    pub fn with_fixture_agents() -> Self {
        Self::with_fixture_agents_on(Backend::Sqlite)
    }

    /// [`Env::with_fixture_agents`], its store on `backend`.
    pub fn with_fixture_agents_on(backend: Backend) -> Self {
        let env = Self::on(backend);
        let agents = tapedeck_testkit::fixtures_dir().join("agents");
        for entry in std::fs::read_dir(&agents).expect("fixtures/agents") {
            let path = entry.expect("a fixture agent file").path();
            let name = path.file_name().expect("a file name");
            std::fs::copy(&path, env.dir.path().join(name)).expect("copy a fixture agent file");
        }
        env
    }

    /// A file of the folder with every `from` replaced by `to`, written as `name`.
    pub fn edit(&self, from_file: &str, name: &str, edits: &[(&str, &str)]) {
        let mut text = std::fs::read_to_string(self.path(from_file)).expect("read the file");
        for (from, to) in edits {
            assert!(
                text.contains(from),
                "`{from_file}` does not contain `{from}`"
            );
            text = text.replace(from, to);
        }
        self.write(name, &text);
    }

    /// Removes a file of the folder.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.path(name)).expect("remove the file");
    }

    /// Runs `tapedeck ARGS…` to its end.
    pub fn exec(&self, args: &[&str]) -> Outcome {
        Outcome::of(self.tapedeck().args(args))
    }

    /// Runs a command that must succeed quietly and returns its stdout.
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        out.expect_code(0);
        assert_eq!(out.stderr, "", "expected nothing on stderr");
        out.stdout
    }

    /// `tapedeck run AGENT --input INPUT`, which must end with `code`; returns the run's short
    /// id (from the `run XXXXXXXX` line it prints).
    pub fn record(&self, agent: &str, input: &str, code: i32) -> String {
        let out = self.exec(&["run", agent, "--input", input]);
        out.expect_code(code);
        out.run_id()
    }

    /// `tapedeck replay ARGS… --json`, which must end with `code`; returns the report.
    pub fn replay_json(&self, args: &[&str], code: i32) -> Value {
        let mut all = vec!["replay"];
        all.extend_from_slice(args);
        all.push("--json");
        let out = self.exec(&all);
        out.expect_code(code);
        out.json()
    }
}

/// The short id of a full run id in a report (`run.id`, `parent.id`).
pub fn short(id: &Value) -> String {
    id.as_str()
        .expect("a run id")
        .parse::<tapedeck_trace::RunId>()
        .expect("a run id")
        .short()
}

/// The events of a `show --json` with everything a replay may change taken out: times,
/// latencies and retry waits (a replay serves recorded failures at once), the model provider
/// (`replay` instead of `scripted`) and tool results' origin (`recorded` instead of `live`). What is left — every kind, payload and blob hash, in order
/// — must be the recording's.
pub fn normalized_events(shown: &Value) -> Vec<Value> {
    let events = shown["events"].as_array().expect("`events` is a list");
    events
        .iter()
        .map(|event| {
            let mut event = event.clone();
            let object = event.as_object_mut().expect("an event is an object");
            object.remove("at");
            if let Some(data) = object.get_mut("data").and_then(Value::as_object_mut) {
                data.remove("latency_ms");
                data.remove("wait_ms");
                data.remove("provider");
                data.remove("origin");
            }
            event
        })
        .collect()
}

/// The `kind` of every event, in order.
pub fn kinds(shown: &Value) -> Vec<String> {
    events_of(shown)
        .iter()
        .map(|e| e["kind"].as_str().expect("a kind").to_owned())
        .collect()
}

/// The events of a `show --json`.
pub fn events_of(shown: &Value) -> &Vec<Value> {
    shown["events"].as_array().expect("`events` is a list")
}

/// The `data` of every event of this kind, in order.
pub fn data_of<'a>(shown: &'a Value, kind: &str) -> Vec<&'a Value> {
    events_of(shown)
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| &e["data"])
        .collect()
}

/// The content of a blob a `show --json` carries.
pub fn blob<'a>(shown: &'a Value, hash: &Value) -> &'a Value {
    let hash = hash.as_str().expect("a blob hash");
    shown["blobs"]
        .get(hash)
        .unwrap_or_else(|| panic!("blob {hash} is not in the output"))
}

/// `(origin, output)` of every tool result of a `show --json`, in order.
pub fn results(shown: &Value) -> Vec<(String, Value)> {
    data_of(shown, "tool_result")
        .into_iter()
        .map(|r| {
            let output = match &r["output"] {
                Value::Null => Value::Null,
                hash => blob(shown, hash).clone(),
            };
            (r["origin"].as_str().expect("an origin").to_owned(), output)
        })
        .collect()
}
