//! Subprocess tools: JSON in on stdin, JSON out on stdout, failures, timeouts and kills.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_agent::tool::subprocess::Subprocess;
use tapedeck_agent::tool::{ToolBackend, ToolFailure, ToolSet};
use tapedeck_agent::{AgentError, LoadedConfig};

use crate::{python, write};

const ECHO: &str = r#"
import json, os, sys
args = json.load(sys.stdin)
print(json.dumps({"got": args, "cwd": os.getcwd()}))
"#;

/// A tool running `python3 <script>` with the script written into `dir`.
fn script_tool(dir: &Path, script: &str) -> Subprocess {
    write(dir, "tool.py", script);
    Subprocess::new("t", &[python().to_owned(), "tool.py".to_owned()], dir).expect("tool sets up")
}

fn call(tool: &Subprocess, args: Value, timeout: Duration) -> Result<Value, ToolFailure> {
    tool.call(&args, timeout)
}

const LONG: Duration = Duration::from_secs(20);

#[test]
fn echoes_its_arguments_and_runs_in_the_config_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tool = script_tool(dir.path(), ECHO);
    let args = json!({"q": "status", "n": 3, "nested": {"a": [1, 2]}, "text": "é\n\"x\""});
    let out = call(&tool, args.clone(), LONG).expect("tool answers");
    assert_eq!(out["got"], args);
    let cwd = std::fs::canonicalize(out["cwd"].as_str().expect("cwd")).expect("canonical cwd");
    assert_eq!(
        cwd,
        std::fs::canonicalize(dir.path()).expect("canonical tempdir")
    );
}

#[cfg(unix)]
#[test]
fn a_relative_command_is_resolved_from_the_config_folder() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "tools/echo.py",
        &format!("#!{}\n{ECHO}", python()),
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tool = Subprocess::new("echo", &["tools/echo.py".to_owned()], dir.path()).expect("found");
    assert!(tool.program().is_absolute(), "{}", tool.program().display());
    let out = call(&tool, json!({"x": 1}), LONG).expect("tool answers");
    assert_eq!(out["got"], json!({"x": 1}));
}

#[test]
fn output_that_is_not_json_is_refused_with_its_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tool = script_tool(dir.path(), "print('hello, not json')");
    assert_eq!(
        call(&tool, json!({}), LONG),
        Err(ToolFailure::NotJson("hello, not json".to_owned()))
    );

    let tool = script_tool(dir.path(), "print('x' * 1000)");
    match call(&tool, json!({}), LONG) {
        Err(ToolFailure::NotJson(start)) => {
            assert_eq!(start, format!("{}…", "x".repeat(200)));
        }
        other => panic!("expected NotJson, got {other:?}"),
    }

    let tool = script_tool(dir.path(), "pass");
    assert_eq!(
        call(&tool, json!({}), LONG),
        Err(ToolFailure::NotJson("(no output)".to_owned()))
    );
}

#[test]
fn a_non_zero_exit_is_a_failure_explained_by_the_end_of_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tool = script_tool(
        dir.path(),
        r#"
import sys
sys.stderr.write("noise\n" * 200)
sys.stderr.write("loading kb\n\nerror: customer 42 not found\n\n")
print('{"partial": true}')
sys.exit(3)
"#,
    );
    match call(&tool, json!({}), LONG) {
        Err(ToolFailure::Failed(message)) => {
            assert!(message.starts_with("exit status 3: "), "{message}");
            assert!(
                message.ends_with("loading kb\nerror: customer 42 not found"),
                "{message}"
            );
            assert!(
                message.chars().count() <= 330,
                "{} chars: {message}",
                message.len()
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }

    let tool = script_tool(dir.path(), "raise ValueError('boom')");
    match call(&tool, json!({}), LONG) {
        Err(ToolFailure::Failed(message)) => {
            assert!(message.starts_with("exit status 1: "), "{message}");
            assert!(message.ends_with("ValueError: boom"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }

    // No stderr: the end of stdout explains instead.
    let tool = script_tool(
        dir.path(),
        "print('bad request: missing q'); raise SystemExit(2)",
    );
    assert_eq!(
        call(&tool, json!({}), LONG),
        Err(ToolFailure::Failed(
            "exit status 2: bad request: missing q".to_owned()
        ))
    );
}

#[cfg(unix)]
#[test]
fn a_process_killed_by_a_signal_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tool = script_tool(
        dir.path(),
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    );
    assert_eq!(
        call(&tool, json!({}), LONG),
        Err(ToolFailure::Failed("killed by signal 9".to_owned()))
    );
}

#[test]
fn a_hanging_tool_is_killed_at_its_timeout_and_reaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tool = script_tool(
        dir.path(),
        r#"
import os, sys, time
with open("pid.txt", "w") as f:
    f.write(str(os.getpid()))
sys.stderr.write("working...\n")
sys.stderr.flush()
time.sleep(60)
print("{}")
"#,
    );
    let timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let result = call(&tool, json!({}), timeout);
    let took = started.elapsed();
    assert_eq!(result, Err(ToolFailure::Timeout(timeout)));
    assert!(took >= timeout, "returned before the timeout: {took:?}");
    assert!(took < timeout + Duration::from_secs(2), "took {took:?}");

    let pid =
        std::fs::read_to_string(dir.path().join("pid.txt")).expect("the script wrote its pid");
    let pid = pid.trim();
    assert!(!pid.is_empty());
    if Path::new("/proc/self").exists() {
        // Killed and reaped: not even a zombie entry is left.
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still there"
        );
    }
}

#[test]
fn megabytes_of_stderr_and_stdin_do_not_deadlock() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 1 MB of stderr before the answer: the child would block on a full pipe if nobody read it.
    let tool = script_tool(
        dir.path(),
        r#"
import json, sys
args = json.load(sys.stdin)
for _ in range(1024):
    sys.stderr.write("e" * 1023 + "\n")
sys.stderr.flush()
print(json.dumps({"len": len(args["blob"])}))
"#,
    );
    let blob = "b".repeat(1024 * 1024);
    let started = Instant::now();
    let out = call(&tool, json!({"blob": blob}), Duration::from_secs(30)).expect("answers");
    assert_eq!(out, json!({"len": 1024 * 1024}));
    assert!(started.elapsed() < Duration::from_secs(15));

    // A tool that never reads its (large) input and writes a lot before exiting.
    let tool = script_tool(
        dir.path(),
        r#"
import sys
sys.stderr.write("x" * (1024 * 1024))
sys.stderr.write("\nfatal: disk full\n")
sys.exit(4)
"#,
    );
    match call(
        &tool,
        json!({"blob": "c".repeat(1024 * 1024)}),
        Duration::from_secs(30),
    ) {
        Err(ToolFailure::Failed(message)) => {
            assert_eq!(message, "exit status 4: fatal: disk full");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn a_missing_command_is_an_error_before_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Subprocess::new(
        "kb.read",
        &["tapedeck-no-such-command-xyz".to_owned()],
        dir.path(),
    )
    .expect_err("not on PATH");
    let text = err.to_string();
    assert!(
        matches!(err, AgentError::Tool { ref tool, .. } if tool == "kb.read"),
        "{err:?}"
    );
    assert!(
        text.contains("command `tapedeck-no-such-command-xyz` not found (on PATH or relative to"),
        "{text}"
    );

    let err = Subprocess::new("kb.read", &["tools/missing.py".to_owned()], dir.path())
        .expect_err("no such file");
    assert!(
        err.to_string()
            .contains("command `tools/missing.py` not found"),
        "{err}"
    );

    let err = Subprocess::new("kb.read", &[], dir.path()).expect_err("empty");
    assert!(err.to_string().contains("empty"), "{err}");

    // Through the config, as `run` sets tools up.
    let config = write(
        dir.path(),
        "agent.yaml",
        r#"
tools:
  allow: [kb.read]
  defs:
    - name: kb.read
      command: ["tools/kb.py"]
"#,
    );
    let loaded = LoadedConfig::load(&config).expect("config loads");
    let err = ToolSet::from_config(&loaded)
        .err()
        .expect("tool set refuses");
    assert!(
        err.to_string()
            .starts_with("tool `kb.read`: command `tools/kb.py` not found"),
        "{err}"
    );
}

#[test]
fn the_tool_set_from_a_config_calls_a_subprocess() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "tools/echo.py", ECHO);
    let config = write(
        dir.path(),
        "agent.yaml",
        &format!(
            "tools:\n  allow: [echo]\n  defs:\n    - name: echo\n      command: [{:?}, \"tools/echo.py\"]\n",
            python()
        ),
    );
    let loaded = LoadedConfig::load(&config).expect("config loads");
    let set = ToolSet::from_config(&loaded).expect("tool set");
    let out = set
        .get("echo")
        .expect("echo is set up")
        .call(&json!({"a": 1}), LONG)
        .expect("answers");
    assert_eq!(out["got"], json!({"a": 1}));
}

#[cfg(unix)]
#[test]
fn a_command_that_is_not_executable_or_disappears_is_unavailable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "tools/plain.py", "print('{}')");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = Subprocess::new("t", &["tools/plain.py".to_owned()], dir.path()).expect_err("not +x");
    assert!(err.to_string().contains("is not executable"), "{err}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tool = Subprocess::new("t", &["tools/plain.py".to_owned()], dir.path()).expect("found");
    std::fs::remove_file(&path).expect("remove");
    match call(&tool, json!({}), LONG) {
        Err(ToolFailure::Unavailable(message)) => {
            assert!(
                message.starts_with("cannot start `tools/plain.py`: "),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
