//! The conformance test of the session protocol (`clients/PROTOCOL.md`): every client — the
//! Python and JavaScript libraries, and `tapedeck mcp` (driven by the official MCP client, the
//! tools served by an MCP server) — runs the same driver: three calls of a read tool, a write
//! tool, a tool that fails, under `tapedeck record`, then under `tapedeck replay` with the read
//! tool's live data changed and one call the recording never saw.

use serde_json::{Value, json};

use crate::{Env, arg, events_of, repo, tool_events};

/// A client library's conformance driver.
#[derive(Clone, Copy)]
enum Client {
    Python,
    Node,
    Mcp,
}

impl Client {
    fn command(self) -> Vec<String> {
        match self {
            Self::Python => vec![
                "python3".to_owned(),
                arg(&repo().join("clients/python/conformance.py")),
            ],
            Self::Node => vec![
                "node".to_owned(),
                arg(&repo().join("clients/js/conformance.mjs")),
            ],
            Self::Mcp => vec![
                "python3".to_owned(),
                arg(&repo().join("tests/session/fixtures/conformance_mcp.py")),
            ],
        }
    }

    /// How the driver caught the failing tool in a replay: a library raises the recorded
    /// error again; through MCP the client gets the recorded `isError` result, as recorded.
    fn caught_in_replay(self) -> &'static str {
        match self {
            Self::Python | Self::Node => "RecordedToolError",
            Self::Mcp => "isError",
        }
    }
}

/// What the driver printed last: one JSON line.
fn report(stdout: &str) -> Value {
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {stdout}"))
}

fn conformance(client: Client) {
    let env = Env::new();
    env.write("data.txt", "v1");
    let command = client.command();
    let driver = |cmd: &mut assert_cmd::Command| {
        cmd.env("CONFORMANCE_DATA", env.path("data.txt"))
            .env("CONFORMANCE_SINK", env.path("sink.txt"));
    };

    // Record: every tool runs, and every call is an event of the run.
    let mut cmd = env.tapedeck();
    cmd.arg("record").arg("--").args(&command);
    driver(&mut cmd);
    let rec = env.exec(&mut cmd);
    rec.expect_code(0);
    let recorded = report(&rec.stdout);
    assert_eq!(recorded["lookups"][0], json!({"key": "a", "value": "v1"}));
    assert_eq!(recorded["error"]["type"], "ValueError");
    assert_eq!(recorded["error"]["message"], "boom");
    assert_eq!(env.read("sink.txt"), "hello\n", "the write tool ran once");
    let run = rec.run_id();
    let show = env.show(&run);
    let pairs: Vec<(String, String)> = ["lookup", "lookup", "lookup", "append_line", "fail"]
        .iter()
        .flat_map(|t| {
            [
                ("tool_call".to_owned(), (*t).to_owned()),
                ("tool_result".to_owned(), (*t).to_owned()),
            ]
        })
        .collect();
    assert_eq!(tool_events(&show), pairs);
    let results = events_of(&show, "tool_result");
    match client {
        Client::Python | Client::Node => assert_eq!(results[4]["error"], "ValueError: boom"),
        // The MCP result, `isError` and all, is what the client gets again.
        Client::Mcp => {
            let output = &show["blobs"][results[4]["output"].as_str().expect("an output")];
            assert_eq!(output["isError"], true, "{output}");
        }
    }
    assert!(
        results
            .iter()
            .all(|r| r["origin"].is_null() || r["origin"] == "live")
    );

    // Exact replay with the live data changed: the recorded answers, no tool runs.
    env.write("data.txt", "v2");
    let mut cmd = env.tapedeck();
    cmd.args(["replay", &run, "--"]).args(&command);
    driver(&mut cmd);
    let rep = env.exec(&mut cmd);
    rep.expect_code(0);
    let replayed = report(&rep.stdout);
    assert_eq!(
        replayed["lookups"], recorded["lookups"],
        "served as recorded"
    );
    assert_eq!(replayed["append"], recorded["append"]);
    assert_eq!(replayed["error"]["type"], "ValueError");
    assert_eq!(replayed["error"]["message"], "boom");
    assert_eq!(
        replayed["error"]["caught"],
        client.caught_in_replay(),
        "the recorded failure is given again"
    );
    assert_eq!(env.read("sink.txt"), "hello\n", "the write tool never ran");
    assert!(
        rep.stderr.contains("the trajectory matches the recording"),
        "{}",
        rep.stderr
    );
    let replay = env.show(&rep.run_id());
    assert_eq!(tool_events(&replay), pairs);
    assert!(
        events_of(&replay, "tool_result")
            .iter()
            .all(|r| r["origin"] == "recorded"),
        "{replay}"
    );

    // A call the recording never saw: a miss naming the closest call, and the run says so.
    let mut cmd = env.tapedeck();
    cmd.args(["replay", &run, "--"]).args(&command);
    driver(&mut cmd);
    cmd.env("CONFORMANCE_EXTRA", "1");
    let miss = env.exec(&mut cmd);
    miss.expect_code(1);
    let missed = report(&miss.stdout);
    let message = missed["miss"].as_str().expect("ReplayMiss was raised");
    assert!(message.contains("zzz-unrecorded"), "{message}");
    assert!(message.contains("closest recorded"), "{message}");
    let replay = env.show(&miss.run_id());
    assert_eq!(replay["run"]["stop_reason"], "replay_miss:lookup");
    assert_eq!(env.read("sink.txt"), "hello\n", "the write tool never ran");
}

#[test]
fn python_client_conforms() {
    conformance(Client::Python);
}

#[test]
fn node_client_conforms() {
    if !crate::require_node() {
        return;
    }
    conformance(Client::Node);
}

#[test]
fn mcp_client_conforms() {
    if !tapedeck_testkit::clients::require(
        "the `mcp` Python SDK",
        tapedeck_testkit::clients::python_imports("mcp"),
        "python3 -m pip install mcp",
    ) {
        return;
    }
    conformance(Client::Mcp);
}

// A session variable that points nowhere: one warning, and the tools run as outside a session.
#[test]
fn a_session_that_cannot_be_reached_runs_the_tools() {
    for client in [Client::Python, Client::Node] {
        let env = Env::new();
        env.write("data.txt", "v1");
        let command = client.command();
        let out = env.exec(
            assert_cmd::Command::new(&command[0])
                .args(&command[1..])
                .current_dir(env.dir.path())
                .env("TAPEDECK_SESSION", "http://127.0.0.1:9/tapedeck/session/v1")
                .env("CONFORMANCE_DATA", env.path("data.txt"))
                .env("CONFORMANCE_SINK", env.path("sink.txt")),
        );
        out.expect_code(0);
        assert_eq!(report(&out.stdout)["lookups"][0]["value"], "v1");
        assert_eq!(env.read("sink.txt"), "hello\n");
        let warnings = out
            .stderr
            .lines()
            .filter(|l| l.contains("TAPEDECK_SESSION"))
            .count();
        assert_eq!(warnings, 1, "one warning:\n{}", out.stderr);
    }
}

// `--on-miss live --live-allow TOOL`: an unrecorded call of an allowed read tool runs for real
// (the replay still reports the extra call as a divergence) — through MCP too, on the server
// `tapedeck mcp` starts for it.
#[test]
fn an_allowed_read_tool_runs_live_on_a_miss() {
    live_on_a_miss(Client::Python);
    if tapedeck_testkit::clients::require(
        "the `mcp` Python SDK",
        tapedeck_testkit::clients::python_imports("mcp"),
        "python3 -m pip install mcp",
    ) {
        live_on_a_miss(Client::Mcp);
    }
}

fn live_on_a_miss(client: Client) {
    let env = Env::new();
    env.write("data.txt", "v1");
    let command = client.command();
    let run_with = |args: &[&str], extra: bool| {
        let mut cmd = env.tapedeck();
        cmd.args(args)
            .arg("--")
            .args(&command)
            .env("CONFORMANCE_DATA", env.path("data.txt"))
            .env("CONFORMANCE_SINK", env.path("sink.txt"));
        if extra {
            cmd.env("CONFORMANCE_EXTRA", "1");
        }
        env.exec(&mut cmd)
    };
    let rec = run_with(&["record"], false);
    rec.expect_code(0);
    env.write("data.txt", "v2");
    let run = rec.run_id();
    let live = run_with(
        &[
            "replay",
            &run,
            "--on-miss",
            "live",
            "--live-allow",
            "lookup",
        ],
        true,
    );
    live.expect_code(1);
    let report = report(&live.stdout);
    assert_eq!(
        report["miss"],
        Value::Null,
        "no miss: {}\n{}",
        live.stdout,
        live.stderr
    );
    assert_eq!(
        report["lookups"][0]["value"], "v1",
        "recorded calls are served"
    );
    assert!(live.stderr.contains("first divergence"), "{}", live.stderr);
    let replay = env.show(&live.run_id());
    let last = events_of(&replay, "tool_result")
        .last()
        .map(|r| r["origin"].clone())
        .expect("a result");
    assert_eq!(last, "live", "the unrecorded lookup ran");
    assert_eq!(
        env.read("sink.txt"),
        "hello\n",
        "the write tool never ran again"
    );
}
