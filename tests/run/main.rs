//! End-to-end tests of `tapedeck run AGENT.yaml` and `tapedeck config check`: agent versions
//! written into a temporary folder (scripted models, `builtin: mock` tools, small python3
//! tools, fake OpenAI and Anthropic servers on 127.0.0.1), run by the binary as a user runs it,
//! and the recorded run read back with `ls --json` and `show RUN --json`.
//!
//! One module per area. Every command runs through [`Env::tapedeck`]: in the test's folder,
//! with the store `t.db` there, without a terminal (so nobody can approve a write), with
//! `NO_COLOR=1` and no store or colour settings inherited from the environment.

mod bad_input;
mod config_check;
mod gateway;
mod http;
mod interrupted;
mod kill_switch;
mod output;
mod policy;
use tapedeck_testkit::fake_http as server;
mod stop_reasons;

use std::path::PathBuf;

use serde_json::Value;

pub use tapedeck_testkit::cli::{Backend, Outcome, STORE, TestDir};

/// A temporary folder holding agent files and the store `t.db`; the working directory of its
/// commands ([`TestDir`]).
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
        Self(TestDir::on(backend))
    }

    /// Writes `text` (its common indentation removed) to `name` in the folder; returns the path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        self.0.write(name, &dedent(text))
    }

    /// An agent `agent.yaml` on the scripted model `script` (written to `script.yaml`); `rest`
    /// is the rest of the config (tools, budgets, policy), in parts each indented as it likes.
    pub fn scripted(&self, script: &str, rest: &[&str]) {
        self.write("script.yaml", script);
        let mut config = "name: test-bot\nmodel:\n  provider: scripted\n  name: test-model\n  script: script.yaml\n".to_owned();
        for part in rest {
            config.push_str(&dedent(part));
        }
        self.write("agent.yaml", &config);
    }

    /// `tapedeck run agent.yaml --input INPUT`.
    pub fn run(&self, input: &str) -> Outcome {
        self.run_with(&["agent.yaml", "--input", input], &[])
    }

    /// `tapedeck run ARGS…` with extra environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let mut cmd = self.tapedeck();
        cmd.arg("run").args(args);
        for (name, value) in env {
            cmd.env(name, value);
        }
        self.exec(&mut cmd)
    }

    /// Runs a command that must succeed quietly and returns its stdout.
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.exec(self.tapedeck().args(args));
        out.expect_code(0);
        assert_eq!(out.stderr, "", "expected nothing on stderr");
        out.stdout
    }

    /// The newest run's short id.
    pub fn last_id(&self) -> String {
        let runs = self.ls();
        let run = runs.first().expect("a recorded run");
        run["short_id"].as_str().expect("a short id").to_owned()
    }

    /// `tapedeck run agent.yaml --input INPUT`, which must exit with `code` and stop with
    /// `stop_reason` and `status`; returns the run.
    pub fn run_expecting(&self, input: &str, code: i32, stop_reason: &str, status: &str) -> Shown {
        self.run(input).expect_code(code);
        let run = self.last_run();
        run.expect_stop(stop_reason, status);
        run
    }

    /// `show --json` of the newest run.
    pub fn last_run(&self) -> Shown {
        let id = self.last_id();
        let out = self.stdout(&["show", &id, "--json"]);
        Shown(serde_json::from_str(&out).expect("`show --json` prints JSON"))
    }
}

/// What `show RUN --json` printed.
pub struct Shown(pub Value);

impl Shown {
    /// The run record.
    pub fn run(&self) -> &Value {
        &self.0["run"]
    }

    /// The run's stop reason.
    pub fn stop_reason(&self) -> &str {
        self.run()["stop_reason"].as_str().unwrap_or("")
    }

    /// The run's status.
    pub fn status(&self) -> &str {
        self.run()["status"].as_str().unwrap_or("")
    }

    /// The run's `error`, if any.
    pub fn error(&self) -> &str {
        self.run()["error"].as_str().unwrap_or("")
    }

    /// Every event.
    pub fn events(&self) -> &[Value] {
        self.0["events"].as_array().map_or(&[], Vec::as_slice)
    }

    /// The kinds of the events, in order.
    pub fn kinds(&self) -> Vec<&str> {
        self.events()
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or(""))
            .collect()
    }

    /// The data of every event of `kind`, in order.
    pub fn data(&self, kind: &str) -> Vec<&Value> {
        self.events()
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| &e["data"])
            .collect()
    }

    /// The policy decisions as `(tool, decision, rule)`, in order.
    pub fn decisions(&self) -> Vec<(String, String, String)> {
        self.data("policy_decision")
            .iter()
            .map(|d| {
                let s = |k: &str| d[k].as_str().unwrap_or("").to_owned();
                (s("tool"), s("decision"), s("rule"))
            })
            .collect()
    }

    /// The one `budget_exceeded` event's data.
    pub fn budget_exceeded(&self) -> &Value {
        let exceeded = self.data("budget_exceeded");
        assert_eq!(exceeded.len(), 1, "one budget_exceeded event");
        exceeded[0]
    }

    /// A blob the events refer to.
    pub fn blob(&self, hash: &Value) -> &Value {
        let hash = hash.as_str().expect("a blob reference");
        &self.0["blobs"][hash]
    }

    /// The content of every tool message the model was sent, in order of the requests (the
    /// last request's history holds them all).
    pub fn tool_messages(&self) -> Vec<String> {
        self.data("llm_request")
            .iter()
            .flat_map(|r| r["messages"].as_array().cloned().unwrap_or_default())
            .map(|hash| self.blob(&hash).clone())
            .filter(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Checks the stop reason and status, showing the events when they differ.
    pub fn expect_stop(&self, stop_reason: &str, status: &str) -> &Self {
        assert_eq!(
            (self.stop_reason(), self.status()),
            (stop_reason, status),
            "events: {:?}\nrun: {}",
            self.kinds(),
            self.run()
        );
        let finished = self.data("run_finished");
        assert_eq!(finished.len(), 1, "one run_finished event");
        assert_eq!(finished[0]["stop_reason"], stop_reason);
        assert_eq!(self.kinds().last(), Some(&"run_finished"));
        assert_eq!(self.kinds().first(), Some(&"run_started"));
        self
    }
}

/// `(tool, decision, rule)` for comparing with [`Shown::decisions`].
pub fn decision(tool: &str, decision: &str, rule: &str) -> (String, String, String) {
    (tool.to_owned(), decision.to_owned(), rule.to_owned())
}

/// `text` without the indentation its non-empty lines share, and without a first empty line:
/// configs can be written indented in the test's code.
pub fn dedent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let text = text.trim_end_matches([' ', '\t']);
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line.get(indent..).unwrap_or("").trim_end());
        out.push('\n');
    }
    out
}

/// Whether a process with this id is running (Linux: `/proc/<pid>` exists and is no zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[test]
fn dedent_removes_the_shared_indentation() {
    assert_eq!(
        dedent("\n    a:\n      b: 1\n\n    c: 2\n  "),
        "a:\n  b: 1\n\nc: 2\n"
    );
}
