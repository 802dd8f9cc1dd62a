//! The exit-code contract of the commands that run a client (`record -- CMD`, `replay RUN --
//! CMD`): a non-zero client code passes through; a client that exits 0 while its run failed
//! or missed gives 1; a command that cannot be run is an input error that records nothing;
//! SIGTERM and SIGINT end the run `cancelled` with 143 / 130.

use std::time::Duration;

use serde_json::json;
use tapedeck_testkit::cli::{Interrupt, interrupt, process_in, wait_for_file};

use crate::server::{FakeServer, Reply};
use crate::{Env, KEY};

/// `ask.py CONTENT`: one chat completion through the proxy with `CONTENT` as the user's
/// message; prints the status and exits 0 whatever it was (as a client that catches errors).
/// With `ASK_THEN_WAIT=FILE` it then touches FILE and sleeps, to be interrupted.
const ASK: &str = r#"
import http.client, json, os, sys, time, urllib.parse
base = urllib.parse.urlparse(os.environ["OPENAI_BASE_URL"])
conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
body = json.dumps({"model": "m", "messages": [{"role": "user", "content": sys.argv[1]}]})
conn.request("POST", "/v1/chat/completions", body=body, headers={
    "content-type": "application/json", "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
print(conn.getresponse().status, flush=True)
if os.environ.get("ASK_THEN_WAIT"):
    open(os.environ["ASK_THEN_WAIT"], "w").close()
    time.sleep(60)
"#;

fn answer(text: &str) -> Reply {
    Reply::json(
        200,
        &json!({
            "id": "c1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }),
    )
}

/// A folder with `ask.py` and the run of `ask.py hello` recorded (answered "Hi."), and its id.
fn recorded_hello() -> (Env, String) {
    let env = Env::new();
    env.write("ask.py", ASK);
    let server = FakeServer::start(vec![answer("Hi.")]);
    let recorded = env.record(
        &["--upstream-openai", &upstream(&server)],
        &["python3", "ask.py", "hello"],
    );
    recorded.expect_code(0);
    let run = recorded.run_id();
    (env, run)
}

fn upstream(server: &FakeServer) -> String {
    format!("{}/v1", server.base)
}

// `record -- /nonexistent/cmd` recorded an `error` run and exited 2: exit 2 must mean nothing
// was written.
#[test]
fn record_of_a_command_that_cannot_run_is_an_input_error_that_records_nothing() {
    let env = Env::new();
    let out = env.record(&[], &["/nonexistent/cmd", "--flag"]);
    let line = out.expect_input_error();
    assert_eq!(
        line,
        "error: cannot run `/nonexistent/cmd`: no such executable file"
    );
    let out = env.record(&[], &["no-such-client-tapedeck-test"]);
    assert_eq!(
        out.expect_input_error(),
        "error: cannot run `no-such-client-tapedeck-test`: no such command on PATH"
    );
    assert!(!env.path("t.db").exists(), "the store was created");
}

// A client that catches the upstream's 500 and exits 0 left `record` exiting 0 although the
// run ended `model_error`.
#[test]
fn record_exits_1_when_the_client_exits_0_but_the_run_failed() {
    let env = Env::new();
    env.write("ask.py", ASK);
    let server = FakeServer::start(vec![Reply::json(
        500,
        &json!({"error": {"message": "boom"}}),
    )]);
    let out = env.record(
        &["--upstream-openai", &upstream(&server)],
        &["python3", "ask.py", "hello"],
    );
    out.expect_code(1);
    assert_eq!(out.stdout, "500\n");
    let show = env.show(&out.run_id());
    assert_eq!(show["run"]["stop_reason"], "model_error");
}

// `replay RUN -- CMD` exited 0 when the client caught the replay's 400 and exited 0, although
// the run stopped `replay_miss:llm`.
#[test]
fn replay_exits_1_when_the_client_swallows_a_replay_miss() {
    let (env, run) = recorded_hello();
    let out = env.exec(env.tapedeck().args([
        "replay",
        &run,
        "--",
        "python3",
        "ask.py",
        "something else",
    ]));
    out.expect_code(1);
    assert_eq!(out.stdout, "400\n", "the client got the miss");
    let show = env.show(&out.run_id());
    assert_eq!(show["run"]["stop_reason"], "replay_miss:llm");
    // The recording had no prices, so its cost is unknown, and so is the replay's: it showed
    // $0.00.
    assert_eq!(
        show["run"]["totals"]["cost_usd"],
        serde_json::Value::Null,
        "{show}"
    );
    // The same client, the same request: 0.
    env.exec(
        env.tapedeck()
            .args(["replay", &run, "--", "python3", "ask.py", "hello"]),
    )
    .expect_code(0);
}

// A client that fails passes its own code through, whatever the run.
#[test]
fn record_passes_a_failing_clients_code_through() {
    let env = Env::new();
    let out = env.record(&[], &["sh", "-c", "exit 7"]);
    out.expect_code(7);
}

// `--agent`, `--from-step` and `--on-miss` were silently ignored with `-- CMD`: now a flag
// applies to a command's replay or is refused.
#[test]
fn replay_with_a_client_refuses_the_runtimes_flags() {
    let (env, run) = recorded_hello();
    for (flags, says) in [
        (
            &["--agent", "new.yaml"][..],
            "--agent does not apply to `replay RUN -- CMD`",
        ),
        (
            &["--strict"],
            "--strict does not apply to `replay RUN -- CMD`",
        ),
        (&["--json"], "--json does not apply to `replay RUN -- CMD`"),
        (
            &["--from-step", "2"],
            "--from-step with `-- CMD` needs --live-model",
        ),
        (
            &["--upstream-openai", "http://127.0.0.1:9/v1"],
            "--upstream-openai needs --live-model",
        ),
    ] {
        let out = env.exec(
            env.tapedeck()
                .args(["replay", &run])
                .args(flags)
                .args(["--", "python3", "ask.py", "hello"]),
        );
        let line = out.expect_input_error();
        assert!(line.contains(says), "{line}");
    }
    let out = env.exec(env.tapedeck().args(["replay", &run, "--live-model"]));
    assert!(
        out.expect_input_error().contains("--live-model applies to"),
        "{}",
        out.stderr
    );
    let out = env.exec(env.tapedeck().args(["replay", &run, "--ignore", "x"]));
    assert!(
        out.expect_input_error().contains("--ignore applies to"),
        "{}",
        out.stderr
    );
    let ls = env.exec(env.tapedeck().args(["ls", "--json"]));
    assert_eq!(ls.runs_listed().len(), 1, "only the recording");
}

/// Records `ask.py` against `server`, interrupts tapedeck with `signal` once the client has
/// made its call, and returns the exit code and the run's `show --json`.
fn record_interrupted(
    env: &Env,
    server: &FakeServer,
    signal: Interrupt,
) -> (Option<i32>, serde_json::Value) {
    env.write("ask.py", ASK);
    let started = env.path("started");
    let child = process_in(env.dir.path())
        .args(["--store", "t.db", "record", "--upstream-openai"])
        .arg(upstream(server))
        .args(["--", "python3", "ask.py", "hello"])
        .env("OPENAI_API_KEY", KEY)
        .env("ASK_THEN_WAIT", &started)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tapedeck record");
    wait_for_file(&started, Duration::from_secs(30));
    interrupt(&child, signal);
    let output = child.wait_with_output().expect("tapedeck ends");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let ls = env.exec(env.tapedeck().args(["ls", "--json"]));
    let id = ls.runs_listed()[0]["id"]
        .as_str()
        .expect("a run")
        .to_owned();
    (output.status.code(), env.show(&id))
}

// SIGTERM during `record` left the run `incomplete` (exit 143); it is passed on to the client
// and the run ends `cancelled` with what it recorded.
#[test]
fn record_interrupted_by_sigterm_ends_its_run_cancelled() {
    let env = Env::new();
    let server = FakeServer::start(vec![answer("Hi.")]);
    let (code, show) = record_interrupted(&env, &server, Interrupt::Term);
    assert_eq!(code, Some(143));
    assert_eq!(show["run"]["stop_reason"], "cancelled", "{show}");
    assert_eq!(show["run"]["status"], "stopped");
    assert!(
        show["run"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("interrupted by SIGTERM")),
        "{show}"
    );
    let kinds = crate::kinds(&show);
    assert!(kinds.contains(&"llm_response".to_owned()), "{kinds:?}");
}

/// `drop.py`: one chat completion, then the store's `events` table dropped under the running
/// recorder (a store failing mid-run), then a second call.
const DROP: &str = r#"
import http.client, json, os, sqlite3
def ask():
    base = __import__("urllib.parse").parse.urlparse(os.environ["OPENAI_BASE_URL"])
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"})
    print(conn.getresponse().status, flush=True)
ask()
db = sqlite3.connect("t.db", timeout=30)
db.execute("DROP TABLE events")
db.commit()
db.close()
ask()
"#;

// A store that failed while `record` was writing made it exit 2, which promises that nothing
// was written; it is a failure found after the command started: 1.
#[test]
fn a_store_that_fails_mid_run_exits_1_not_2() {
    let env = Env::new();
    env.write("drop.py", DROP);
    let server = FakeServer::start(vec![answer("one"), answer("two")]);
    let out = env.record(
        &["--upstream-openai", &upstream(&server)],
        &["python3", "drop.py"],
    );
    assert_eq!(out.stdout, "200\n200\n", "the client was served throughout");
    out.expect_code(1);
    assert!(
        out.stderr.contains("could not be written"),
        "{}",
        out.stderr
    );
}
