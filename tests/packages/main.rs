//! End-to-end tests of the `tapedeck` packages, the npm ones in [`node`]. The Python package: the wheel built from the binary this test
//! build produced (`clients/python/build_wheel.py`, no second compile), installed with
//! `pip install --no-index` into a fresh virtualenv whose PATH has no Rust, and the sample
//! pytest suite of `tests/packages/pytest_suite` (an agent on the official `openai` SDK)
//! recorded and replayed by the package's pytest plugin against a fake upstream on 127.0.0.1.

mod node;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use tapedeck_testkit::cli::TestDir;
use tapedeck_testkit::fake_http::{FakeServer, Reply};

/// The API key the suite's client sends: it must appear in no tape.
const KEY: &str = "sk-test-PACKAGES-0123456789";

/// The repository's root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The wheels `pip install --no-index` takes pytest and openai from (`.ci/test` downloads them).
fn wheelhouse() -> PathBuf {
    repo().join(".venv/wheelhouse")
}

/// Whether the wheels are there, else fails naming `.ci/test` ([`tapedeck_testkit::clients`]).
fn require_wheels() -> bool {
    let has = |prefix: &str| {
        std::fs::read_dir(wheelhouse()).is_ok_and(|dir| {
            dir.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    tapedeck_testkit::clients::require(
        ".venv/wheelhouse (the pytest and openai wheels)",
        has("pytest-") && has("openai-"),
        "python3 -m pip download -d .venv/wheelhouse pytest openai",
    )
}

/// A chat completion asking for `get_weather` in Paris.
fn asks_weather() -> Reply {
    asks_weather_as("call_w")
}

/// [`asks_weather`] with the tool call's id.
fn asks_weather_as(id: &str) -> Reply {
    Reply::json(
        200,
        &json!({
            "id": "chatcmpl-t", "object": "chat.completion", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "tool_calls": [{"id": id,
                "type": "function", "function": {"name": "get_weather",
                "arguments": "{\"city\": \"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }),
    )
}

/// A chat completion answering `text`.
fn answers(text: &str) -> Reply {
    Reply::json(
        200,
        &json!({
            "id": "chatcmpl-a", "object": "chat.completion", "created": 2, "model": "gpt-test",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}
        }),
    )
}

/// The fresh virtualenv with the wheel installed, and the suite copied into the test's folder.
struct Installed {
    dir: TestDir,
    venv: PathBuf,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Installed {
    fn new() -> Self {
        let dir = TestDir::new();
        let binary = assert_cmd::cargo::cargo_bin("tapedeck");
        let out = run(Command::new("python3")
            .arg(repo().join("clients/python/build_wheel.py"))
            .arg("--binary")
            .arg(&binary)
            .arg("--out")
            .arg(dir.path("dist"))
            .arg("--store-binary"));
        let wheel = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(wheel.ends_with(".whl"), "build_wheel printed {wheel}");
        // Without pip of its own: the project's pip installs into it (`--python`), which
        // saves seconds.
        let venv = dir.path("venv");
        run(Command::new("python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv));
        run(Command::new("python3")
            .args(["-m", "pip", "--python"])
            .arg(venv.join("bin/python"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-index",
                "--find-links",
            ])
            .arg(wheelhouse())
            .arg(&wheel)
            .args(["pytest", "openai"]));
        for file in [
            "agent.py",
            "conftest.py",
            "test_agent.py",
            "test_check.py",
            "test_leak.py",
            "test_network.py",
            "test_mcp.py",
            "clock_server.py",
        ] {
            std::fs::create_dir_all(dir.path("suite")).expect("the suite's folder");
            std::fs::copy(
                repo().join("tests/packages/pytest_suite").join(file),
                dir.path("suite").join(file),
            )
            .expect("copy the sample suite");
        }
        Self { dir, venv }
    }

    fn tape(&self, test: &str) -> PathBuf {
        self.dir
            .path(&format!("suite/tapes/test_agent/{test}.jsonl"))
    }

    /// `python -m pytest ARGS` in the suite's folder, the model's base URL `upstream`, with
    /// only the virtualenv and the system's folders on PATH (no cargo, no `tapedeck` but the
    /// wheel's).
    fn pytest(&self, upstream: &str, args: &[&str]) -> Output {
        self.pytest_with(upstream, args, &[])
    }

    /// [`Installed::pytest`] with more variables.
    fn pytest_with(&self, upstream: &str, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(self.venv.join("bin/python"));
        cmd.args(["-m", "pytest", "-p", "no:cacheprovider", "-q"])
            .args(args)
            .current_dir(self.dir.path("suite"))
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.venv.join("bin").display()),
            )
            .env("HOME", self.dir.path(""))
            .env("OPENAI_API_KEY", KEY)
            .env("OPENAI_BASE_URL", format!("{upstream}/v1"))
            .env("NO_COLOR", "1")
            .envs(vars.iter().copied());
        cmd.output().expect("pytest starts")
    }
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tape_run(path: &Path) -> Value {
    let tape = std::fs::read_to_string(path).expect("the tape");
    assert!(!tape.contains(KEY), "the API key is in {}", path.display());
    let header: Value = serde_json::from_str(tape.lines().next().expect("a header")).expect("JSON");
    header["run"].clone()
}

/// The README's Python workflow: the first run records a tape per test, the second replays
/// them with the upstream gone and `--tapedeck-mode none`; a changed question is a miss, which
/// `new_episodes` records; `none` with a tape missing fails naming it; and a tape that would
/// hold a secret fails its test. One test, so the wheel is
/// built and installed once.
#[test]
fn pytest_plugin_records_replays_and_refuses() {
    if !require_wheels() {
        return;
    }
    let env = Installed::new();
    assert!(
        Command::new("sh")
            .args(["-c", "command -v cargo"])
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", env.venv.join("bin").display())
            )
            .output()
            .is_ok_and(|o| !o.status.success()),
        "cargo must not be on the suite's PATH"
    );

    // Record: no tapes yet, so `once` records both tests through the live (fake) model.
    let upstream = FakeServer::start(vec![
        asks_weather(),
        answers("It is sunny in Paris."),
        answers("Paris."),
    ]);
    let out = env.pytest(
        &upstream.base,
        &["test_agent.py", "test_network.py", "test_mcp.py"],
    );
    assert!(
        out.status.success(),
        "the recording failed:\n{}",
        text(&out)
    );
    assert_eq!(upstream.requests().len(), 3, "{}", text(&out));
    let weather = tape_run(&env.tape("test_weather"));
    assert_eq!(weather["stop_reason"], "ok");
    assert_eq!(weather["task"], "test_agent.py::test_weather");
    assert_eq!(tape_run(&env.tape("test_capital"))["stop_reason"], "ok");

    // Replay: the upstream is gone (it served its three replies and stopped), and `none`
    // refuses anything but the loopback (test_network checks); the tool is answered from the
    // tape, and the MCP server's tool too, without starting it (test_mcp checks).
    drop(upstream);
    let gone = "http://127.0.0.1:9";
    let out = env.pytest(
        gone,
        &[
            "test_agent.py",
            "test_network.py",
            "test_mcp.py",
            "--tapedeck-mode",
            "none",
        ],
    );
    assert!(out.status.success(), "the replay failed:\n{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 passed"),
        "{}",
        text(&out)
    );

    // A request the tape does not hold fails the test as a miss, naming the tape and the
    // field that differs.
    let out = env.pytest_with(
        gone,
        &["test_agent.py", "--tapedeck-mode", "none"],
        &[("SAMPLE_COUNTRY", "Spain")],
    );
    assert!(!out.status.success(), "a miss passed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "tapedeck: the replay of {} missed (replay_miss:llm)",
            env.tape("test_capital").display()
        )),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("Spain"), "{}", text(&out));
    assert!(stdout.contains("1 failed, 1 passed"), "{}", text(&out));

    // New episodes: the weather from its tape, the new question from the model; the capital's
    // tape is rewritten with it, and replays offline.
    let upstream = FakeServer::start(vec![answers("Madrid.")]);
    let spain = [("SAMPLE_COUNTRY", "Spain")];
    let out = env.pytest_with(
        &upstream.base,
        &["test_agent.py", "--tapedeck-mode", "new_episodes"],
        &spain,
    );
    assert!(out.status.success(), "new episodes failed:\n{}", text(&out));
    assert_eq!(upstream.requests().len(), 1, "{}", text(&out));
    drop(upstream);
    let out = env.pytest_with(gone, &["test_agent.py", "--tapedeck-mode", "none"], &spain);
    assert!(
        out.status.success(),
        "the new episode did not replay:\n{}",
        text(&out)
    );

    // `none` with a tape missing fails that test, naming the tape.
    let missing = env.tape("test_capital");
    std::fs::remove_file(&missing).expect("remove the tape");
    let out = env.pytest(gone, &["test_agent.py", "--tapedeck-mode", "none"]);
    assert!(
        !out.status.success(),
        "a missing tape passed:\n{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("no tape at {}", missing.display())),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("1 failed, 1 passed"), "{}", text(&out));
    assert!(!missing.exists());

    // `--tapedeck-check`: the model live, the tool from the tape. The same model passes; a
    // candidate that calls the tool once more drifts, and the failure is the diff, unless the
    // marker's tolerances allow it.
    let same = || vec![asks_weather(), answers("It is sunny in Paris.")];
    let upstream = FakeServer::start(same().into_iter().chain(same()).collect());
    let out = env.pytest(&upstream.base, &["test_check.py"]);
    assert!(
        out.status.success(),
        "the recording failed:\n{}",
        text(&out)
    );
    let upstream = FakeServer::start(same().into_iter().chain(same()).collect());
    let out = env.pytest(&upstream.base, &["test_check.py", "--tapedeck-check"]);
    assert!(
        out.status.success(),
        "the same model drifted:\n{}",
        text(&out)
    );
    assert_eq!(upstream.requests().len(), 4, "the model is live in a check");
    let more = || {
        vec![
            asks_weather(),
            asks_weather_as("call_again"),
            answers("It is sunny in Paris."),
        ]
    };
    let upstream = FakeServer::start(more().into_iter().chain(more()).collect());
    let out = env.pytest(&upstream.base, &["test_check.py", "--tapedeck-check"]);
    assert!(
        !out.status.success(),
        "an extra tool call passed:\n{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tape = env.dir.path("suite/tapes/test_check/test_forecast.jsonl");
    assert!(
        stdout.contains(&format!(
            "tapedeck: the run drifted from {}",
            tape.display()
        )),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("tool_calls") && stdout.contains("DRIFT"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("1 failed, 1 passed"), "{}", text(&out));

    // A recording that holds a secret the proxy never saw on the wire (a token of the
    // environment put into a prompt) fails its test, and its tape is removed.
    let upstream = FakeServer::start(vec![answers("Noted.")]);
    let out = env.pytest_with(
        &upstream.base,
        &["test_leak.py"],
        &[("SAMPLE_SERVICE_TOKEN", "tok-sample-5e3f9a1c")],
    );
    assert!(!out.status.success(), "the leak passed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the recording held the value of SAMPLE_SERVICE_TOKEN"),
        "{}",
        text(&out)
    );
    assert!(
        !env.dir
            .path("suite/tapes/test_leak/test_token_in_prompt.jsonl")
            .exists()
    );
}
