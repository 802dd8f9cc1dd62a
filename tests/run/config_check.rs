//! `tapedeck config check`: the safe default config of DESIGN.md loads exactly as written
//! (warning about the tools it allows but does not define), `--json` prints the fingerprint,
//! and the fingerprint identifies an agent version: equal for equal configs, different when a
//! prompt file changes.

use serde_json::Value;
use tapedeck_testkit::snapshot::insta_settings;

use crate::Env;

/// The safe default config, exactly as DESIGN.md ("Agent version") writes it.
pub const SAFE_DEFAULT: &str = r#"tools:
  allow: ["search.read", "kb.read", "http.get"]
budgets:
  max_steps: 30
  max_seconds: 90
  max_tool_calls: 15
writes:
  require_approval: true
monitoring:
  track: ["tool_calls_per_run", "tokens_per_request", "stop_reason", "latency_p95"]
kill_switch:
  mode_when_enabled: "disable_writes"
"#;

/// `config check FILE --json`, parsed.
fn check_json(env: &Env, file: &str) -> Value {
    let out = env.stdout(&["config", "check", file, "--json"]);
    serde_json::from_str(&out).expect("`config check --json` prints JSON")
}

#[test]
fn safe_default_config_loads_as_written() {
    let env = Env::new();
    env.write("safe.yaml", SAFE_DEFAULT);
    let out = env.exec(env.tapedeck().args(["config", "check", "safe.yaml"]));
    out.expect_code(0);
    let warnings: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(warnings.len(), 3, "{}", out.stderr);
    for tool in ["search.read", "kb.read", "http.get"] {
        assert!(
            out.stderr.contains(&format!(
                "warning: safe.yaml: tool `{tool}` is allowed but not defined under tools.defs"
            )),
            "{}",
            out.stderr
        );
    }
    insta_settings().bind(|| {
        insta::assert_snapshot!("config_check_safe_default", out.stdout);
        insta::assert_snapshot!("config_check_safe_default_warnings", out.stderr);
    });
    // It does not touch the store.
    assert!(!env.store().exists());
}

#[test]
fn safe_default_config_json() {
    let env = Env::new();
    env.write("safe.yaml", SAFE_DEFAULT);
    let report = check_json(&env, "safe.yaml");
    let fingerprint = report["fingerprint"].as_str().expect("a fingerprint");
    assert_eq!(fingerprint.len(), 64, "{fingerprint}");
    assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(report["warnings"].as_array().map(Vec::len), Some(3));
    let config = &report["config"];
    assert_eq!(config["budgets"]["max_steps"], 30);
    assert_eq!(config["budgets"]["max_seconds"], 90.0);
    assert_eq!(config["budgets"]["max_tool_calls"], 15);
    assert!(config["budgets"]["max_usd"].is_null());
    assert_eq!(config["writes"]["require_approval"], true);
    assert_eq!(config["kill_switch"]["enabled"], false);
    assert_eq!(config["kill_switch"]["mode_when_enabled"], "disable_writes");
    assert_eq!(config["on_tool_error"], "feed_back");
    assert_eq!(config["on_invalid_output"], "stop");
    assert_eq!(config["degrade"]["after_errors"], 3);
    assert_eq!(config["dedupe"]["read_window_s"], 60.0);
    assert!(config.get("model").is_none());
    // The text form prints the same fingerprint.
    let text = env.exec(env.tapedeck().args(["config", "check", "safe.yaml"]));
    assert!(
        text.stdout
            .contains(&format!("# fingerprint {fingerprint}\n")),
        "{}",
        text.stdout
    );
}

#[test]
fn fingerprint_is_the_agent_version() {
    let env = Env::new();
    let agent = "name: bot\nsystem_prompt_file: prompt.md\ntools: {allow: [kb.read]}\n";
    for dir in ["a", "b"] {
        env.write(&format!("{dir}/agent.yaml"), agent);
        env.write(&format!("{dir}/prompt.md"), "You are a help desk.\n");
    }
    let a = check_json(&env, "a/agent.yaml")["fingerprint"].clone();
    let b = check_json(&env, "b/agent.yaml")["fingerprint"].clone();
    assert_eq!(a, b, "identical configs in two folders: one agent version");

    // The prompt file is part of the version.
    env.write("b/prompt.md", "You are a very terse help desk.\n");
    let changed = check_json(&env, "b/agent.yaml")["fingerprint"].clone();
    assert_ne!(a, changed, "a changed prompt file is another agent version");

    // Writing the same prompt inline is the same version as reading it from a file.
    env.write(
        "c/agent.yaml",
        "name: bot\nsystem_prompt: \"You are a help desk.\\n\"\ntools: {allow: [kb.read]}\n",
    );
    let inline = check_json(&env, "c/agent.yaml")["fingerprint"].clone();
    assert_eq!(a, inline);

    // A default written out is still the same version.
    env.write(
        "d/agent.yaml",
        "name: bot\nsystem_prompt_file: prompt.md\ntools: {allow: [kb.read]}\nbudgets: {max_steps: 30}\n",
    );
    env.write("d/prompt.md", "You are a help desk.\n");
    assert_eq!(a, check_json(&env, "d/agent.yaml")["fingerprint"]);
}

#[test]
fn fingerprint_covers_the_script() {
    let env = Env::new();
    env.scripted("[{content: hi}]", &[]);
    let before = check_json(&env, "agent.yaml")["fingerprint"].clone();
    env.write("script.yaml", "[{content: hello}]\n");
    let after = check_json(&env, "agent.yaml")["fingerprint"].clone();
    assert_ne!(before, after);
}

#[test]
fn runs_record_the_fingerprint() {
    let env = Env::new();
    env.scripted("[{content: hi}]", &[]);
    let fingerprint = check_json(&env, "agent.yaml")["fingerprint"].clone();
    env.run("hi").expect_code(0);
    assert_eq!(env.ls()[0]["agent"]["fingerprint"], fingerprint);
}

#[test]
fn invalid_config_is_an_input_error() {
    let env = Env::new();
    env.write(
        "bad.yaml",
        "tools: {allow: [kb.read]}\nmonitoring: {track: [tokens_per_second]}\n",
    );
    let out = env.exec(env.tapedeck().args(["config", "check", "bad.yaml"]));
    let stderr = out.expect_input_error();
    assert!(
        stderr.contains("monitoring.track: unknown figure `tokens_per_second`"),
        "{stderr}"
    );
}

/// What the bad configs below are built on: a runnable scripted agent.
const RUNNABLE: &str =
    "name: bot\nmodel: {provider: scripted, name: test-model, script: script.yaml}\n";

/// Configs that `config check` accepted and `run` then broke on. `max_seconds: 1e300` (or
/// `.inf`, `1e19`) and a tool's `timeout_s: 1e300` made `run` panic ("cannot convert float
/// seconds to Duration", exit 101) and leave an `incomplete` run; `max_usd: .nan` was ignored;
/// `max_usd: -1`, `max_seconds: 0` or `-5`, `max_steps: 0`, negative or NaN prices and
/// `read_window_s: -1` ran oddly; an unknown key in the script and a missing approvals file
/// failed only at `run` (the script's error without its file). Each is now refused the same
/// way by `config check` and by `run`: exit 2, one `error:` line with file:line:column and
/// the allowed range, and no store made.
#[test]
fn configs_that_check_accepted_and_run_broke_on_are_refused_by_both() {
    let cases: &[(&str, &str, &str)] = &[
        ("max_seconds 1e300", "budgets:\n  max_seconds: 1e300\n", ""),
        ("max_seconds .inf", "budgets:\n  max_seconds: .inf\n", ""),
        ("max_seconds 1e19", "budgets:\n  max_seconds: 1e19\n", ""),
        ("max_seconds 0", "budgets:\n  max_seconds: 0\n", ""),
        ("max_seconds -5", "budgets:\n  max_seconds: -5\n", ""),
        (
            "timeout_s 1e300",
            "tools:\n  allow: [kb.read]\n  defs:\n    - name: kb.read\n      builtin: mock\n      mock: [{output: {}}]\n      timeout_s: 1e300\n",
            "",
        ),
        ("max_usd .nan", "budgets:\n  max_usd: .nan\n", ""),
        ("max_usd -1", "budgets:\n  max_usd: -1\n", ""),
        ("max_steps 0", "budgets:\n  max_steps: 0\n", ""),
        ("max_tokens 0", "budgets:\n  max_tokens: 0\n", ""),
        (
            "negative price",
            "pricing:\n  test-model: {input_per_mtok: -1, output_per_mtok: 1}\n",
            "",
        ),
        (
            "NaN price",
            "pricing:\n  test-model: {input_per_mtok: 1, output_per_mtok: .nan}\n",
            "",
        ),
        ("read_window_s -1", "dedupe:\n  read_window_s: -1\n", ""),
        (
            "negative cost_usd",
            "tools:\n  defs:\n    - {name: kb.read, builtin: mock, mock: [{output: {}}], cost_usd: -0.5}\n",
            "",
        ),
        (
            "temperature 3",
            "",
            "name: bot\nmodel: {provider: scripted, name: test-model, script: script.yaml, temperature: 3}\n",
        ),
        (
            "max_output_tokens 0",
            "",
            "name: bot\nmodel:\n  provider: scripted\n  name: test-model\n  script: script.yaml\n  max_output_tokens: 0\n",
        ),
        (
            "unknown key in the script",
            "",
            "script: responses:\n  - content: hi\n    replys: x\n",
        ),
        (
            "unknown key in a bare-list script",
            "",
            "script: - content: hi\n  replys: x\n",
        ),
        (
            "impossible script entry",
            "",
            "script: - {content: hi, malformed: oops}\n",
        ),
        (
            "missing approvals_file",
            "writes: {approvals_file: approvals.yaml}\n",
            "",
        ),
        (
            "malformed approvals_file",
            "writes: {approvals_file: approvals.yaml}\n",
            "approvals: approvals:\n  - tool: crm.update\n    decison: approve\n",
        ),
        (
            "missing system_prompt_file",
            "system_prompt_file: prompt.md\n",
            "",
        ),
    ];
    let mut shown = String::new();
    for (name, extra, special) in cases {
        let env = Env::new();
        env.write("script.yaml", "[{content: hi}]\n");
        let mut agent = format!("{RUNNABLE}{extra}");
        if let Some(script) = special.strip_prefix("script: ") {
            env.write("script.yaml", script);
        } else if let Some(approvals) = special.strip_prefix("approvals: ") {
            env.write("approvals.yaml", approvals);
        } else if !special.is_empty() {
            agent = format!("{special}{extra}");
        }
        env.write("agent.yaml", &agent);

        let check = env.exec(env.tapedeck().args(["config", "check", "agent.yaml"]));
        let check = check.expect_input_error().trim_end().to_owned();
        let run = env.run("hi");
        let run = run.expect_input_error().trim_end();
        assert_eq!(check, run, "{name}: `config check` and `run` say the same");
        assert!(!env.store().exists(), "{name}: `run` made a store");
        shown.push_str(&format!("{name}:\n  {check}\n"));
    }
    insta_settings().bind(|| insta::assert_snapshot!("config_check_refused", shown));
}

/// The ends of every range are allowed: a year of `max_seconds`, no tool calls at all, no
/// deduplication, a day of `timeout_s`, free tools and models, temperature 0 and 2.
#[test]
fn the_ends_of_the_ranges_are_allowed() {
    let env = Env::new();
    env.write("script.yaml", "[{content: hi}]\n");
    for temperature in ["0", "2"] {
        env.write(
            "agent.yaml",
            &format!(
                "name: bot\nmodel: {{provider: scripted, name: test-model, script: script.yaml, temperature: {temperature}, max_output_tokens: 1}}\n\
                 budgets: {{max_steps: 1, max_seconds: 31536000, max_tool_calls: 0, max_usd: 0.000001, max_tokens: 1}}\n\
                 dedupe: {{read_window_s: 0}}\n\
                 tools:\n  defs:\n    - {{name: kb.read, builtin: mock, mock: [{{output: {{}}, latency_ms: 0}}], timeout_s: 86400, cost_usd: 0}}\n\
                 pricing:\n  test-model: {{input_per_mtok: 0, output_per_mtok: 0}}\n"
            ),
        );
        let report = check_json(&env, "agent.yaml");
        assert_eq!(report["config"]["budgets"]["max_seconds"], 31_536_000.0);
        assert_eq!(report["config"]["budgets"]["max_tool_calls"], 0);
    }
    env.run("hi").expect_code(0);
}
