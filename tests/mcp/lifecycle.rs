//! How a `tapedeck mcp` process ends: the server's exit code passed on, a server that exits
//! early or cannot start, a client that goes away in a replay, a server that lingers.

use super::*;

#[test]
fn record_exits_with_the_server_code() {
    let env = Env::new();
    let session = env.session(
        &["mcp", "record", "--", "python3", "server.py", "3"],
        &[request(json!(1), "tools/list", Value::Null)],
    );
    assert_eq!(session.code, Some(3), "stderr: {}", session.stderr);
    assert_eq!(
        session.responses[0]["result"]["tools"][0]["name"],
        json!("echo")
    );
    let run = run_id_of(&session.stderr, "recorded MCP run ");
    let show = env.show(&run);
    assert_eq!(
        show["run"]["error"],
        json!("the MCP server exited with code 3")
    );
    // A server that exits non-zero failed, even after a session.
    assert_eq!(show["run"]["status"], json!("error"));
    assert_eq!(show["run"]["stop_reason"], json!("tool_error:mcp_server"));
}

/// Regression: a server that failed to start — it exits 1 at once, before any message, as
/// `python3 -m` of a module that is not installed does — was recorded `ok`, its exit code only
/// a note in the run's error.
#[test]
fn a_server_that_exits_before_any_message_ends_the_run_as_an_error() {
    let env = Env::new();
    let session = env.session(
        &[
            "mcp",
            "record",
            "--",
            "python3",
            "-m",
            "tapedeck_no_such_mcp_server",
        ],
        &[],
    );
    assert_eq!(session.code, Some(1), "stderr: {}", session.stderr);
    assert!(session.lines.is_empty(), "{:?}", session.lines);
    let run = run_id_of(&session.stderr, "recorded MCP run ");
    let show = env.show(&run);
    assert_eq!(show["run"]["status"], json!("error"));
    assert_eq!(show["run"]["stop_reason"], json!("tool_error:mcp_server"));
    assert_eq!(
        show["run"]["error"],
        json!(
            "the MCP server exited with code 1 before sending any message (did it start? see its stderr)"
        )
    );
    // `ls` shows it failed.
    let ls = env
        .tapedeck()
        .args(["ls", "--stop-reason", "tool_error:mcp_server", "--json"])
        .output()
        .expect("ls runs");
    let listed: Value = serde_json::from_slice(&ls.stdout).expect("ls --json is JSON");
    assert_eq!(listed["runs"].as_array().map(Vec::len), Some(1), "{listed}");
}

#[test]
fn a_server_that_cannot_start_is_an_input_error() {
    let env = Env::new();
    let output = env
        .tapedeck()
        .args(["mcp", "record", "--", "./no-such-server"])
        .stdin(Stdio::null())
        .output()
        .expect("tapedeck runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        "error: cannot start the MCP server `./no-such-server`: no such executable file\n"
    );
    assert!(!env.path("t.db").exists(), "nothing is written on exit 2");
}

// `mcp replay` whose client stopped reading left its run `incomplete` in half of the trials:
// the failed write ended the command before the run.
#[test]
fn a_replay_whose_client_goes_away_ends_its_run_cancelled() {
    let env = Env::new();
    let (run, _) = env.record(&legacy_requests([json!(1), json!(2), json!(3), json!(4)]));
    let mut child = env
        .tapedeck()
        .args(["mcp", "replay", &run])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tapedeck starts");
    // The client closes its reading end before asking anything: every answer fails to go out.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().expect("stdin");
    for request in legacy_requests([json!(1), json!(2), json!(3), json!(4)]) {
        // tapedeck may have ended already; what matters is how its run ended.
        if writeln!(stdin, "{request}").is_err() {
            break;
        }
    }
    drop(stdin);
    let output = child.wait_with_output().expect("tapedeck ends");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let replay = run_id_of(&stderr, &format!("replayed MCP run {run} as "));
    let show = env.show(&replay);
    assert_eq!(show["run"]["stop_reason"], json!("cancelled"), "{show}");
    assert!(
        show["run"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("the client went away")),
        "{show}"
    );
}

#[test]
fn a_server_that_lingers_after_the_client_closed_is_stopped() {
    let env = Env::new();
    std::fs::write(
        env.path("linger.py"),
        "import sys, time\nfor line in sys.stdin:\n    pass\ntime.sleep(120)\n",
    )
    .expect("the script");
    let started = std::time::Instant::now();
    let session = env.session(
        &["mcp", "record", "--", "python3", "linger.py"],
        &[notification("notifications/initialized")],
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "the server was not stopped"
    );
    assert_ne!(session.code, Some(0), "stderr: {}", session.stderr);
    let run = run_id_of(&session.stderr, "recorded MCP run ");
    let show = env.show(&run);
    assert_eq!(
        show["run"]["error"],
        json!("the MCP server was killed by a signal")
    );
}
