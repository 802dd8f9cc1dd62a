//! Bad input to `tapedeck run`: configs that cannot run exit 2 with a message that says what
//! and where (and record nothing); tools that misbehave while a run goes on (output that is not
//! JSON, a non-zero exit, a hang) become clean recorded outcomes fed back to the model.

use std::time::Duration;

use crate::{Env, decision, process_alive};

/// A minimal runnable agent, for configs that break one thing of it.
const MINIMAL: &str = r#"
    name: bot
    model: {provider: scripted, name: test-model, script: script.yaml}
    "#;

fn minimal(env: &Env, extra: &str) {
    env.write("script.yaml", "[{content: hi}]\n");
    env.write("agent.yaml", &format!("{}{extra}", crate::dedent(MINIMAL)));
}

#[test]
fn invalid_yaml_names_file_line_and_column() {
    let env = Env::new();
    // A tab cannot indent YAML.
    minimal(&env, "\tbudgets: {max_steps: 3}\n");
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(
        stderr.starts_with("error: agent.yaml:3:1: found character that cannot start any token"),
        "{stderr}"
    );
    // A flow mapping left open: the error is found on the next line, and says where the
    // mapping was opened (that location used to be cut from the message).
    minimal(
        &env,
        "writes: {approvals_file: a.yaml\nbudgets: {max_steps: 3}\n",
    );
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert_eq!(
        stderr.trim_end(),
        "error: agent.yaml:4:8: did not find expected ',' or '}', while parsing a flow mapping \
         at line 3 column 9"
    );
    // A value of the wrong type is named by its path.
    minimal(&env, "budgets:\n  max_steps: many\n");
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(
        stderr.starts_with(
            "error: agent.yaml:4:14: budgets.max_steps: invalid type: string \"many\""
        ),
        "{stderr}"
    );
    assert!(env.ls().is_empty(), "nothing ran");
}

#[test]
fn unknown_field_suggests_the_nearest() {
    let env = Env::new();
    minimal(&env, "budgts:\n  max_steps: 3\n");
    let out = env.run("hi");
    let stderr = out.expect_input_error();
    assert!(stderr.starts_with("error: agent.yaml:3:1: "), "{stderr}");
    assert!(
        stderr.contains("unknown field `budgts`: did you mean `budgets`?"),
        "{stderr}"
    );
    // The same check works inside a section.
    minimal(&env, "budgets:\n  max_step: 3\n");
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(stderr.contains("agent.yaml:4:"), "{stderr}");
    assert!(
        stderr.contains("unknown field `max_step`: did you mean `max_steps`?"),
        "{stderr}"
    );
    // `config check` says the same.
    let out = env.exec(env.tapedeck().args(["config", "check", "agent.yaml"]));
    assert!(
        out.expect_input_error()
            .contains("did you mean `max_steps`?")
    );
}

#[test]
fn tool_command_that_does_not_exist() {
    let env = Env::new();
    minimal(
        &env,
        r#"tools:
  allow: [db.read]
  defs:
    - name: db.read
      command: [tapedeck-no-such-program, --query]
"#,
    );
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(
        stderr.contains("tool `db.read`: command `tapedeck-no-such-program` not found"),
        "{stderr}"
    );
    // A path is taken relative to the config's folder.
    minimal(
        &env,
        r#"tools:
  allow: [db.read]
  defs:
    - name: db.read
      command: [./tools/db.py]
"#,
    );
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(
        stderr.contains("tool `db.read`: command `./tools/db.py` not found"),
        "{stderr}"
    );
    assert!(env.ls().is_empty(), "nothing ran");
}

#[test]
fn run_without_a_model() {
    let env = Env::new();
    env.write("agent.yaml", "name: bot\ntools: {allow: [kb.read]}\n");
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(
        stderr.contains("agent.yaml: no `model`: a run needs one"),
        "{stderr}"
    );
    assert!(!env.store().exists(), "nothing ran, no store was made");
    // Valid to check, though.
    let out = env.exec(env.tapedeck().args(["config", "check", "agent.yaml"]));
    out.expect_code(0);
    assert!(out.stdout.contains("no model"), "{}", out.stdout);
}

#[test]
fn config_file_that_does_not_exist() {
    let env = Env::new();
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(
        stderr.contains("cannot read the agent config `agent.yaml`"),
        "{stderr}"
    );
}

#[test]
fn approvals_file_that_does_not_exist() {
    let env = Env::new();
    minimal(&env, "writes: {approvals_file: approvals.yaml}\n");
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(stderr.contains("approvals.yaml"), "{stderr}");
    assert!(
        stderr.contains("cannot read the approvals file"),
        "{stderr}"
    );
}

#[test]
fn broken_script_is_an_input_error() {
    let env = Env::new();
    env.scripted("[{content: hi, malformed: oops}]", &[]);
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(stderr.contains("responses[0]"), "{stderr}");
}

#[test]
fn invalid_input_schema_is_an_input_error() {
    let env = Env::new();
    minimal(
        &env,
        r#"tools:
  allow: [kb.read]
  defs:
    - name: kb.read
      input_schema: {type: objekt}
      builtin: mock
      mock: [{output: {}}]
"#,
    );
    let stderr = env.run("hi").expect_input_error().to_owned();
    assert!(
        stderr.contains("tool `kb.read`: input_schema is not a valid JSON Schema"),
        "{stderr}"
    );
}

#[test]
fn misbehaving_subprocess_tools_are_fed_back() {
    let env = Env::new();
    env.write("chatty.py", "print('hello, I am not JSON')\n");
    env.write(
        "fails.py",
        r#"
        import sys
        print("connecting...", file=sys.stderr)
        print("boom: the database is down", file=sys.stderr)
        sys.exit(3)
        "#,
    );
    env.write(
        "hangs.py",
        r#"
        import os, time
        with open("hangs.pid", "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)
        "#,
    );
    env.scripted(
        r#"
        responses:
          - tool_calls: [{name: chatty.read}]
          - tool_calls: [{name: fails.read}]
          - tool_calls: [{name: hangs.read}]
          - content: "None of the tools worked."
        "#,
        &[r#"
            tools:
              allow: [chatty.read, fails.read, hangs.read]
              defs:
                - {name: chatty.read, command: [python3, chatty.py]}
                - {name: fails.read, command: [python3, fails.py]}
                - {name: hangs.read, command: [python3, hangs.py], timeout_s: 2}
            "#],
    );
    let out = env.run("try the tools");
    out.expect_code(0);
    // The hang costs its timeout, not the minute it would sleep.
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
    let run = env.last_run();
    run.expect_stop("ok", "ok");
    assert_eq!(
        run.decisions(),
        [
            decision("chatty.read", "allowed", "tools.allow"),
            decision("fails.read", "allowed", "tools.allow"),
            decision("hangs.read", "allowed", "tools.allow"),
        ]
    );
    let errors: Vec<&str> = run
        .data("tool_result")
        .iter()
        .map(|r| r["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        errors,
        [
            "output is not JSON: hello, I am not JSON",
            "exit status 3: connecting...\nboom: the database is down",
            "timed out after 2s",
        ]
    );
    let told = run.tool_messages();
    assert_eq!(told[0], "error: output is not JSON: hello, I am not JSON");
    assert_eq!(told[2], "error: timed out after 2s");
    let pid: u32 = std::fs::read_to_string(env.path("hangs.pid"))
        .expect("the hanging tool started")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        !process_alive(pid),
        "the timed-out tool (pid {pid}) still runs"
    );
}

#[test]
fn tool_with_neither_command_nor_backend_is_denied() {
    let env = Env::new();
    env.scripted(
        "[{tool_calls: [{name: kb.read}]}]",
        &[r#"
            tools:
              allow: [kb.read]
              defs:
                - name: kb.read
            "#],
    );
    let out = env.run("read");
    out.expect_code(1);
    assert!(
        out.stderr
            .contains("tool `kb.read` has neither `command` nor `builtin`"),
        "{}",
        out.stderr
    );
    let run = env.last_run();
    run.expect_stop("tool_denied:kb.read", "stopped");
    assert_eq!(
        run.decisions(),
        [decision("kb.read", "denied", "tools.defs")]
    );
}

/// `record --pricing FILE` took negative and NaN prices as they were (a run's cost came out
/// negative or unknown); they obey the rules of an agent's own `pricing` now, refused before
/// the client starts or the store is made.
#[test]
fn record_pricing_file_with_a_bad_price() {
    let env = Env::new();
    for (prices, expected) in [
        (
            "gpt-4.1: {input_per_mtok: -2, output_per_mtok: 8}\n",
            "error: pricing.yaml:1:27: gpt-4.1.input_per_mtok must be a finite number of US \
             dollars per million tokens in 0 <= x <= 1000000, got -2",
        ),
        (
            "gpt-4.1:\n  input_per_mtok: 2\n  output_per_mtok: .nan\n",
            "error: pricing.yaml:3:20: gpt-4.1.output_per_mtok must be a finite number of US \
             dollars per million tokens in 0 <= x <= 1000000, got .nan",
        ),
    ] {
        env.write("pricing.yaml", prices);
        let out = env.exec(env.tapedeck().args([
            "record",
            "--pricing",
            "pricing.yaml",
            "--",
            "touch",
            "client-ran",
        ]));
        assert_eq!(out.expect_input_error().trim_end(), expected);
        assert!(!env.path("client-ran").exists(), "the client ran");
        assert!(!env.store().exists(), "a store was made");
    }
}

// `run --label repeat=3` would move a scripted model's seed when the run is replayed, as the
// golden repetitions' label does.
#[test]
fn the_repeat_label_is_refused() {
    let env = Env::new();
    minimal(&env, "");
    let out = env.run_with(&["agent.yaml", "--input", "hi", "--label", "repeat=3"], &[]);
    assert_eq!(
        out.expect_input_error(),
        "error: the label `repeat` is kept for golden repetitions (a replay moves a scripted model's seed by it); choose another name"
    );
    assert!(!env.store().exists());
}
