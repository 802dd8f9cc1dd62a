//! Suites of commands, end to end, with the shipped `golden/weather-py` (a Python agent on the
//! `openai` SDK with a read tool, a write tool and mcp-server-time) copied into a temporary
//! folder and its own `fake_upstream.py` on 127.0.0.1 as the model: the shipped baselines pass
//! an exact check, a new model that makes one more tool call drifts, a new recording checks
//! against itself, repetitions tell a noisy model from a drifting one, shards split the tasks,
//! `golden add` takes a recorded command's run, and bad input is refused before anything is
//! written. The write tool's tickets file is the same after every check as before it.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{Env, assert_exit, assert_input_error, copy_dir, root, runs_listed, task_results};

/// The suite, relative to a test's folder (as in the repository).
const SUITE: &str = "golden/weather-py";

/// Its tasks, in file order.
const TASKS: [&str; 3] = ["paris-weather", "lyon-ticket", "tokyo-time"];

/// The candidate: the same agent asking for another model.
const NEW_MODEL: &str = "python3 agent.py --model gpt-5-mini {input}";

/// The API key the agent's SDK insists on; the fake ignores it.
const KEY: &str = "sk-test-WEATHER-0123456789";

/// Whether the agent can run: a test that needs it fails without it, unless the machine opted
/// out of the clients it cannot install.
fn agent_available() -> bool {
    tapedeck_testkit::clients::require(
        "the `openai` and `mcp` Python SDKs and mcp-server-time",
        tapedeck_testkit::clients::python_imports("openai, mcp, mcp_server_time"),
        "python3 -m pip install openai mcp mcp-server-time",
    )
}

/// A temporary folder laid out as the repository is where the suite needs it: the suite under
/// `golden/weather-py`, and the Python client library under `clients/python`, where
/// `agent.py` looks for it. The store is `t.db`, the write tool's file `tickets.txt`.
struct Weather {
    env: Env,
}

impl Weather {
    fn new() -> Self {
        let env = Env::empty();
        copy_dir(&root().join(SUITE), &env.path(SUITE));
        copy_dir(
            &root().join("clients/python/tapedeck"),
            &env.path("clients/python/tapedeck"),
        );
        Self { env }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.env.path(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// `tapedeck --store t.db ARGS…` in the folder, with the agent's key, `TAPEDECK_BIN` (how
    /// the agent starts `tapedeck mcp`) and the tickets file of this folder.
    fn tapedeck(&self, args: &[&str]) -> (i32, String, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self
            .env
            .tapedeck()
            .args(args)
            .env("OPENAI_API_KEY", KEY)
            .env("TAPEDECK_BIN", assert_cmd::cargo::cargo_bin("tapedeck"))
            .env("TICKETS_FILE", self.path("tickets.txt"))
            .env_remove("TAPEDECK_SESSION")
            .env_remove("WEATHER_DATA")
            .timeout(Duration::from_secs(100))
            .output()
            .expect("tapedeck runs");
        (
            status.code().expect("an exit code"),
            String::from_utf8(stdout).expect("stdout is UTF-8"),
            String::from_utf8(stderr).expect("stderr is UTF-8"),
        )
    }

    /// `tapedeck golden ARGS…`.
    fn golden(&self, args: &[&str]) -> (i32, String, String) {
        let args: Vec<&str> = ["golden"].into_iter().chain(args.iter().copied()).collect();
        self.tapedeck(&args)
    }

    /// What the write tool has written (empty: nothing).
    fn tickets(&self) -> String {
        std::fs::read_to_string(self.path("tickets.txt")).unwrap_or_default()
    }

    /// The suite's fake upstream, playing `behaviour`.
    fn fake(&self, behaviour: &str) -> Fake {
        Fake::start(&self.path(SUITE).join("fake_upstream.py"), behaviour)
    }

    /// Every file of the suite with its content, to see that a refused command wrote nothing.
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).expect("read the folder") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    let bytes = std::fs::read(&path).expect("read a file");
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path(SUITE), &mut out);
        out.sort();
        out
    }

    /// The JSON report `name`: its tasks and their verdicts, in order.
    fn verdicts(&self, name: &str) -> Vec<(String, String)> {
        let results = task_results(&self.read(name));
        results
            .iter()
            .map(|r| {
                (
                    r["task"].as_str().expect("a task").to_owned(),
                    r["verdict"].as_str().expect("a verdict").to_owned(),
                )
            })
            .collect()
    }
}

/// `golden/weather-py/fake_upstream.py`, started on a free port of 127.0.0.1; stopped when
/// dropped.
struct Fake {
    child: Child,
    /// Its base URL, `/v1` included.
    url: String,
}

impl Fake {
    fn start(script: &Path, behaviour: &str) -> Self {
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .args(["--port", "0", "--model-behaviour", behaviour])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fake upstream");
        // It prints its URL once it listens.
        let mut url = String::new();
        std::io::BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut url)
            .expect("read the fake's URL");
        let url = url.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "the fake upstream did not start: {url:?}"
        );
        Self { child, url }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tasks and failures of a JUnit report, read by an XML parser: `(task, failure message)`.
fn junit_cases(xml: &str) -> Vec<(String, Option<String>)> {
    let doc = roxmltree::Document::parse(xml).expect("the JUnit report is XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|case| {
            let failure = case
                .children()
                .find(|c| c.has_tag_name("failure"))
                .map(|f| f.attribute("message").unwrap_or_default().to_owned());
            (
                case.attribute("name").unwrap_or_default().to_owned(),
                failure,
            )
        })
        .collect()
}

#[test]
fn shipped_baselines_pass_exactly_and_a_new_model_with_an_extra_call_drifts() {
    if !agent_available() {
        return;
    }
    let weather = Weather::new();

    // The model from the baselines too: offline, and the same requests as recorded.
    let exact = weather.golden(&["check", SUITE, "--exact"]);
    assert_exit(&exact, 0);
    let _guard = crate::check::settings().bind_to_scope();
    insta::assert_snapshot!("commands_exact_text", exact.1);
    assert_eq!(weather.tickets(), "", "no ticket opened by a check");

    // A new model that looks up the Paris weather twice: that task drifts, and says where.
    let fake = weather.fake("extra-call");
    let drift = weather.golden(&[
        "check",
        SUITE,
        "--command",
        NEW_MODEL,
        "--upstream-openai",
        &fake.url,
        "-j",
        "2",
        "--markdown",
        "comment.md",
        "--junit",
        "junit.xml",
    ]);
    assert_exit(&drift, 1);
    assert!(
        drift
            .1
            .contains("drift in 1 of 3 tasks of suite `weather-py`"),
        "{}",
        drift.1
    );
    let markdown = weather.read("comment.md");
    assert!(
        markdown.contains("| `paris-weather` | **drift** |")
            && markdown.contains("First divergence at tool call 2"),
        "{markdown}"
    );
    insta::assert_snapshot!(
        "commands_extra_call_markdown",
        crate::check::stable(&markdown)
    );
    let cases = junit_cases(&weather.read("junit.xml"));
    assert_eq!(
        cases.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        TASKS
    );
    let failed: Vec<_> = cases.iter().filter(|(_, f)| f.is_some()).collect();
    assert_eq!(failed.len(), 1, "{cases:?}");
    assert_eq!(failed[0].0, "paris-weather");
    assert!(
        failed[0]
            .1
            .as_deref()
            .is_some_and(|m| m.contains("tool_calls: 1 → 2")),
        "{failed:?}"
    );
    assert_eq!(weather.tickets(), "", "no ticket opened by a check");
}

#[test]
fn recording_against_the_fake_checks_against_itself() {
    if !agent_available() {
        return;
    }
    let weather = Weather::new();
    let fake = weather.fake("baseline");
    let record = weather.golden(&["record", SUITE, "--upstream-openai", &fake.url]);
    assert_exit(&record, 0);
    assert!(
        record.1.contains("recorded 3 tasks of suite `weather-py`"),
        "{}",
        record.1
    );
    // Recording runs the write tool for real, once.
    assert_eq!(weather.tickets(), "Lyon weather service degraded\n");
    // The shipped baselines are those of the fake and the agent as they are (the time in
    // Tokyo aside, which is the clock's).
    for task in ["paris-weather", "lyon-ticket"] {
        let snap = format!("{SUITE}/snapshots/{task}.snap");
        assert_eq!(
            weather.read(&snap),
            std::fs::read_to_string(root().join(&snap)).expect("the shipped snapshot"),
            "{task}: record the shipped baselines again (golden/weather-py/README.md)"
        );
    }

    let exact = weather.golden(&["check", SUITE, "--exact", "--json", "exact.json"]);
    assert_exit(&exact, 0);
    let live = weather.golden(&[
        "check",
        SUITE,
        "--upstream-openai",
        &fake.url,
        "--json",
        "live.json",
    ]);
    assert_exit(&live, 0);
    for report in ["exact.json", "live.json"] {
        assert_eq!(
            weather.verdicts(report),
            TASKS.map(|t| (t.to_owned(), "pass".to_owned()))
        );
    }
    assert_eq!(
        weather.tickets(),
        "Lyon weather service degraded\n",
        "the checks opened no ticket"
    );
}

#[test]
fn repetitions_let_a_noisy_model_pass_and_catch_the_extra_call() {
    if !agent_available() {
        return;
    }
    let weather = Weather::new();
    // One task, the one the new model changes, keeps the test short: five runs per side of
    // an agent that starts an MCP server each time. `--shard 1/3` checks it alone.
    let noisy = weather.fake("noisy");
    let record = weather.golden(&[
        "record",
        SUITE,
        "paris-weather",
        "--repeat",
        "5",
        "--upstream-openai",
        &noisy.url,
    ]);
    assert_exit(&record, 0);
    assert!(
        weather
            .path(&format!("{SUITE}/tapes/paris-weather/5.jsonl"))
            .is_file()
    );
    let check = |url: &str, command: &str, report: &str| {
        weather.golden(&[
            "check",
            SUITE,
            "--shard",
            "1/3",
            "--repeat",
            "5",
            "-j",
            "2",
            "--command",
            command,
            "--upstream-openai",
            url,
            "--json",
            report,
        ])
    };

    // The same noisy model, its answers now phrased the other way round from the baselines'.
    let same = check(&noisy.url, "python3 agent.py {input}", "same.json");
    assert_exit(&same, 0);
    assert!(same.1.contains("no drift:"), "{}", same.1);
    let verdict = &weather.verdicts("same.json")[0];
    assert_eq!(verdict.0, "paris-weather");
    assert_ne!(verdict.1, "drift");

    let extra = weather.fake("extra-call");
    let drift = check(&extra.url, NEW_MODEL, "drift.json");
    assert_exit(&drift, 1);
    assert_eq!(
        weather.verdicts("drift.json"),
        [("paris-weather".to_owned(), "drift".to_owned())]
    );
    assert!(
        drift.1.lines().any(|l| l.contains("paris-weather")
            && l.contains("tool_calls")
            && l.contains("0.0079")),
        "the drifting test is listed with its p-value:\n{}",
        drift.1
    );
    assert_eq!(weather.tickets(), "", "no ticket opened");
}

#[test]
fn shards_cover_every_task_once() {
    if !agent_available() {
        return;
    }
    let weather = Weather::new();
    let mut seen = Vec::new();
    for (shard, report) in [("1/2", "1.json"), ("2/2", "2.json")] {
        let result = weather.golden(&[
            "check", SUITE, "--exact", "--shard", shard, "--json", report,
        ]);
        assert_exit(&result, 0);
        seen.extend(weather.verdicts(report).into_iter().map(|(task, _)| task));
    }
    seen.sort();
    let mut all = TASKS.map(str::to_owned).to_vec();
    all.sort();
    assert_eq!(seen, all);
}

#[test]
fn golden_add_takes_a_recorded_command_run_and_refuses_a_runtime_run() {
    if !agent_available() {
        return;
    }
    let weather = Weather::new();
    let fake = weather.fake("baseline");
    let question = "What is the weather in Lyon this morning?";
    let agent = weather.path(&format!("{SUITE}/agent.py"));
    let record = weather.tapedeck(&[
        "record",
        "--input",
        question,
        "--upstream-openai",
        &fake.url,
        "--",
        "python3",
        agent.to_str().expect("a UTF-8 path"),
        question,
    ]);
    assert_exit(&record, 0);
    let run = run_id(&weather, question);
    drop(fake);

    let add = weather.golden(&["add", SUITE, "--from-run", &run, "--task", "lyon-morning"]);
    assert_exit(&add, 0);
    let suite = weather.read(&format!("{SUITE}/suite.yaml"));
    assert!(
        suite.contains("- id: lyon-morning") && suite.contains(question),
        "{suite}"
    );
    // The suite's command replays the added run: its input is the task's `{input}`.
    let tickets = weather.tickets();
    let check = weather.golden(&["check", SUITE, "--exact", "--json", "r.json"]);
    assert_exit(&check, 0);
    assert!(
        weather
            .verdicts("r.json")
            .contains(&("lyon-morning".to_owned(), "pass".to_owned()))
    );
    assert_eq!(weather.tickets(), tickets, "no ticket opened by the check");

    // A run of the runtime (a YAML agent version) cannot be replayed by a command.
    let tape = root().join("fixtures/tapes/clean.jsonl");
    let import = weather.tapedeck(&["import", tape.to_str().expect("a UTF-8 path")]);
    assert_exit(&import, 0);
    let first = std::fs::read_to_string(&tape).expect("read the tape");
    let header: Value =
        serde_json::from_str(first.lines().next().expect("a header")).expect("JSON");
    let runtime = header["run"]["id"].as_str().expect("a run id").to_owned();
    let before = weather.files();
    let refused = weather.golden(&["add", SUITE, "--from-run", &runtime[..8]]);
    assert_input_error(&refused, &["suite `weather-py` runs a command"]);
    assert_eq!(weather.files(), before, "nothing written");
}

/// The id of the stored run whose input is `input`.
fn run_id(weather: &Weather, input: &str) -> String {
    let (code, stdout, stderr) = weather.tapedeck(&["ls", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    runs_listed(stdout.as_bytes())
        .iter()
        .find(|r| r["input"] == input)
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("no run with input {input:?} in {stdout}"))
        .to_owned()
}

/// Edits the suite's `suite.yaml`: `from` must be there.
fn edit_suite(weather: &Weather, from: &str, to: &str) {
    let path = weather.path(&format!("{SUITE}/suite.yaml"));
    let text = std::fs::read_to_string(&path).expect("read suite.yaml");
    assert!(text.contains(from), "`{from}` is not in suite.yaml");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write suite.yaml");
}

/// Asserts that `result` is an input error naming every needle, and that nothing was written:
/// no store, the suite's files as they were.
#[track_caller]
fn assert_refused(
    weather: &Weather,
    before: &[(PathBuf, Vec<u8>)],
    result: &(i32, String, String),
    needles: &[&str],
) {
    assert_input_error(result, needles);
    assert!(!weather.path("t.db").exists(), "no store was created");
    assert_eq!(weather.files(), before, "the suite's files are unchanged");
}

// Bad input needs neither the agent's SDKs nor an upstream: it is refused before anything runs.
// The upstream given to `record` is a closed port of 127.0.0.1, never contacted.

#[test]
fn suite_with_both_agent_and_command_is_refused() {
    let weather = Weather::new();
    edit_suite(
        &weather,
        "name: weather-py\n",
        "name: weather-py\nagent: agent.yaml\n",
    );
    let before = weather.files();
    let needles = ["golden/weather-py/suite.yaml", "both `agent` and `command`"];
    let check = weather.golden(&["check", SUITE, "--exact"]);
    assert_refused(&weather, &before, &check, &needles);
    let record = weather.golden(&[
        "record",
        SUITE,
        "--upstream-openai",
        "http://127.0.0.1:9/v1",
    ]);
    assert_refused(&weather, &before, &record, &needles);
}

#[test]
fn command_that_does_not_exist_is_refused() {
    let weather = Weather::new();
    let before = weather.files();
    // A candidate that names a script the suite's folder does not hold.
    let candidate = weather.golden(&[
        "check",
        SUITE,
        "--exact",
        "--command",
        "./agent-v2.py {input}",
    ]);
    assert_refused(
        &weather,
        &before,
        &candidate,
        &["golden/weather-py/./agent-v2.py", "no such executable file"],
    );

    edit_suite(
        &weather,
        "command: [python3, agent.py",
        "command: [weather-agent-not-installed, agent.py",
    );
    let before = weather.files();
    let needles = ["`weather-agent-not-installed`", "no such command on PATH"];
    let record = weather.golden(&[
        "record",
        SUITE,
        "--upstream-openai",
        "http://127.0.0.1:9/v1",
    ]);
    assert_refused(&weather, &before, &record, &needles);
    let check = weather.golden(&["check", SUITE, "--exact"]);
    assert_refused(&weather, &before, &check, &needles);
}

#[test]
fn baseline_of_a_yaml_suite_is_refused_in_a_command_suite() {
    let weather = Weather::new();
    std::fs::copy(
        root().join("golden/support/tapes/password-reset/1.jsonl"),
        weather.path(&format!("{SUITE}/tapes/paris-weather/1.jsonl")),
    )
    .expect("copy the tape");
    let before = weather.files();
    let check = weather.golden(&["check", SUITE, "--exact"]);
    assert_refused(
        &weather,
        &before,
        &check,
        &[
            "golden/weather-py/tapes/paris-weather/1.jsonl",
            "task `paris-weather`",
            "recorded by the runtime",
            "record the task again",
        ],
    );
}

/// Regression: with `--store t.db` (no folder), the output of a candidate that failed went to
/// the system's temporary folder, not beside the store as the warning's reader expects.
#[test]
fn failed_candidate_keeps_its_output_beside_the_store() {
    let weather = Weather::new();
    let result = weather.golden(&[
        "check",
        SUITE,
        "--exact",
        "--shard",
        "1/3",
        "--command",
        "python3 -c \"import sys; print('no model today'); sys.exit(3)\" {input}",
    ]);
    assert_exit(&result, 1);
    let warning = result
        .2
        .lines()
        .find(|l| l.contains("task `paris-weather`: the command exited with code 3"))
        .unwrap_or_else(|| panic!("no warning:\n{}", result.2));
    let (_, log) = warning
        .split_once("its output is in ")
        .expect("the warning names the log");
    let log = weather.path(log.trim());
    assert!(
        log.starts_with(weather.env.dir.path()) && log.is_file(),
        "{}",
        log.display()
    );
    assert_eq!(
        std::fs::read_to_string(&log).expect("read the log"),
        "no model today\n"
    );
}
