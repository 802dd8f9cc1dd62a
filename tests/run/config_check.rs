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
