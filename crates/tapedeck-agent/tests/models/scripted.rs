//! The scripted model: responses by step, rules, seeded choices, scripted failures, usage
//! estimates and script checking.

use std::time::Duration;

use serde_json::{Value, json};
use tapedeck_agent::model::scripted::Scripted;
use tapedeck_agent::{
    FinishReason, Message, ModelBackend, ModelError, ModelRequest, ModelResponse, ToolCallRequest,
};
use tapedeck_trace::Usage;

use crate::later;

fn model(script: &Value) -> Scripted {
    Scripted::new(script).expect("a valid script")
}

fn request(step: u64, messages: Vec<Message>) -> ModelRequest {
    ModelRequest {
        model: "scripted".into(),
        messages,
        tools: vec![],
        temperature: None,
        max_output_tokens: 100,
        step,
    }
}

fn user(text: &str) -> Vec<Message> {
    vec![Message::User {
        content: text.into(),
    }]
}

/// A conversation whose last tool message is `tool` with `content`.
fn after_tool(tool: &str, content: &str, is_error: bool) -> Vec<Message> {
    vec![
        Message::User {
            content: "check the status".into(),
        },
        Message::Assistant {
            content: None,
            tool_calls: vec![ToolCallRequest {
                id: "c1".into(),
                name: tool.into(),
                arguments: json!({}),
            }],
        },
        Message::Tool {
            tool_call_id: "c1".into(),
            name: tool.into(),
            content: content.into(),
            is_error,
        },
    ]
}

fn ask(
    model: &mut Scripted,
    step: u64,
    messages: Vec<Message>,
) -> Result<ModelResponse, ModelError> {
    model.complete(&request(step, messages), later())
}

fn text_of(response: &ModelResponse) -> &str {
    response.text().expect("a text answer")
}

#[test]
fn responses_are_served_by_step() {
    let mut m = model(&json!({
        "responses": [
            {"tool_calls": [{"name": "kb.read", "arguments": {"article": "password-reset"}}]},
            {"content": "Go to Settings > Security."}
        ]
    }));
    assert_eq!(m.provider(), "scripted");
    let first = ask(&mut m, 1, user("reset?")).expect("step 1");
    assert_eq!(first.finish, FinishReason::ToolCalls);
    assert_eq!(first.raw_finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(first.text(), None);
    assert_eq!(
        first.tool_calls(),
        &[ToolCallRequest {
            id: "call_1_1".into(),
            name: "kb.read".into(),
            arguments: json!({"article": "password-reset"}),
        }]
    );
    assert!(!first.streamed && !first.truncated);
    let second = ask(&mut m, 2, user("reset?")).expect("step 2");
    assert_eq!(text_of(&second), "Go to Settings > Security.");
    assert_eq!(second.finish, FinishReason::Stop);
    // The same step asked again gets the same answer.
    assert_eq!(ask(&mut m, 2, user("reset?")).expect("again"), second);

    let error = ask(&mut m, 3, user("reset?")).expect_err("past the end");
    assert!(
        matches!(&error, ModelError::Script(msg) if msg.contains("2 responses") && msg.contains("repeat_last")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[test]
fn repeat_last_keeps_giving_the_last_response() {
    let mut m = model(&json!({
        "responses": [{"content": "one"}, {"content": "again"}],
        "repeat_last": true
    }));
    assert_eq!(text_of(&ask(&mut m, 1, user("x")).expect("1")), "one");
    for step in 2..6 {
        assert_eq!(text_of(&ask(&mut m, step, user("x")).expect("n")), "again");
    }
}

#[test]
fn a_bare_list_is_a_list_of_responses() {
    let mut m = model(&json!([
        {"content": "a"},
        {"tool_calls": [{"name": "t", "id": "my-id"}, {"name": "u", "arguments": {"x": 1}}]}
    ]));
    assert_eq!(text_of(&ask(&mut m, 1, user("x")).expect("1")), "a");
    let second = ask(&mut m, 2, user("x")).expect("2");
    let calls = second.tool_calls();
    assert_eq!(calls[0].id, "my-id");
    assert_eq!(calls[0].arguments, json!({}));
    assert_eq!(calls[1].id, "call_2_2");
}

#[test]
fn rules_match_on_step_and_last_tool_result() {
    let script = json!({
        "rules": [
            {"when": {"step": 1},
             "respond": {"tool_calls": [{"name": "browser.open", "arguments": {"url": "https://status.example.com"}}]}},
            {"when": {"last_tool": "browser.open", "last_result_contains": "503"},
             "respond": {"content": "The status page is down."}},
            {"when": {"last_result_error": true},
             "respond": {"content": "The tool failed."}},
            {"when": {"last_tool": "kb.read"},
             "respond": {"content": "From the knowledge base."}},
            {"respond": {"content": "fallback"}}
        ]
    });
    let mut m = model(&script);
    let first = ask(&mut m, 1, user("status?")).expect("step 1");
    assert_eq!(first.tool_calls()[0].name, "browser.open");
    let r = ask(
        &mut m,
        2,
        after_tool("browser.open", "HTTP 503 Service Unavailable", false),
    );
    assert_eq!(text_of(&r.expect("503")), "The status page is down.");
    let r = ask(&mut m, 2, after_tool("browser.open", "HTTP 200", false));
    assert_eq!(text_of(&r.expect("200")), "fallback");
    let r = ask(
        &mut m,
        2,
        after_tool("browser.open", "connection refused", true),
    );
    assert_eq!(text_of(&r.expect("error")), "The tool failed.");
    let r = ask(&mut m, 3, after_tool("kb.read", "{}", false));
    assert_eq!(text_of(&r.expect("kb")), "From the knowledge base.");
    // No tool message at all: the `last_*` rules do not match.
    let r = ask(&mut m, 2, user("hello"));
    assert_eq!(text_of(&r.expect("no tool")), "fallback");
    // `last_result_error: false` needs a tool message too.
    let mut m = model(&json!({"rules": [
        {"when": {"last_result_error": false}, "respond": {"content": "ok result"}}
    ]}));
    let r = ask(&mut m, 2, after_tool("kb.read", "{}", false));
    assert_eq!(text_of(&r.expect("ok")), "ok result");
    let error = ask(&mut m, 1, user("hello")).expect_err("nothing matches");
    assert!(
        matches!(&error, ModelError::Script(msg) if msg.contains("no rule matches step 1")),
        "{error:?}"
    );
}

fn choices(seed: u64, steps: std::ops::RangeInclusive<u64>) -> Vec<String> {
    let options: Vec<Value> = (0..4)
        .map(|i| json!({"content": format!("option {i}")}))
        .collect();
    let mut m = model(&json!({"seed": seed, "rules": [{"one_of": options}]}));
    steps
        .map(|step| text_of(&ask(&mut m, step, user("x")).expect("an option")).to_owned())
        .collect()
}

#[test]
fn one_of_is_deterministic_for_a_seed() {
    let a = choices(42, 1..=12);
    assert_eq!(a, choices(42, 1..=12), "same seed, same choices");
    // Asking the same step twice gives the same choice.
    assert_eq!(choices(42, 3..=3), choices(42, 3..=3));
    assert_eq!(a[2], choices(42, 3..=3)[0]);
    // The steps do not all pick the same option, and seeds change the picks.
    assert!(a.iter().any(|c| *c != a[0]), "{a:?}");
    let per_seed: Vec<Vec<String>> = (0..8).map(|seed| choices(seed, 1..=6)).collect();
    assert!(
        per_seed.iter().any(|c| *c != per_seed[0]),
        "different seeds can differ: {per_seed:?}"
    );
    // No seed given means seed 0.
    let options: Vec<Value> = (0..4)
        .map(|i| json!({"content": format!("option {i}")}))
        .collect();
    let mut m = model(&json!({"rules": [{"one_of": options}]}));
    let unseeded: Vec<String> = (1..=6)
        .map(|s| text_of(&ask(&mut m, s, user("x")).expect("an option")).to_owned())
        .collect();
    assert_eq!(unseeded, per_seed[0]);
}

#[test]
fn an_error_n_times_then_the_answer() {
    let mut m = model(&json!({"responses": [
        {"error": {"status": 429, "message": "slow down", "retry_after_ms": 5},
         "times": 2,
         "then": {"content": "finally"}},
        {"content": "step two"}
    ]}));
    for _ in 0..2 {
        let error = ask(&mut m, 1, user("x")).expect_err("a 429");
        assert_eq!(
            error,
            ModelError::Status {
                status: 429,
                message: "slow down".into(),
                retry_after: Some(Duration::from_millis(5)),
            }
        );
        assert!(error.is_retryable());
    }
    assert_eq!(
        text_of(&ask(&mut m, 1, user("x")).expect("third try")),
        "finally"
    );
    assert_eq!(
        text_of(&ask(&mut m, 1, user("x")).expect("fourth")),
        "finally"
    );
    assert_eq!(
        text_of(&ask(&mut m, 2, user("x")).expect("next step")),
        "step two"
    );
}

#[test]
fn a_rule_error_n_times_falls_through_to_the_rule_below() {
    let mut m = model(&json!({"rules": [
        {"respond": {"error": {"status": 503}, "times": 1}},
        {"respond": {"content": "recovered"}}
    ]}));
    for step in 1..=2 {
        let error = ask(&mut m, step, user("x")).expect_err("first attempt of the step");
        assert_eq!(
            error,
            ModelError::Status {
                status: 503,
                message: "scripted error 503".into(),
                retry_after: None
            }
        );
        let r = ask(&mut m, step, user("x")).expect("second attempt");
        assert_eq!(text_of(&r), "recovered");
    }
}

#[test]
fn failures_without_times_repeat() {
    let mut m = model(&json!({"responses": [
        {"error": {"status": 400, "message": "bad request"}},
        {"malformed": "not JSON at all"}
    ]}));
    for _ in 0..3 {
        let error = ask(&mut m, 1, user("x")).expect_err("always");
        assert_eq!(error.status(), Some(400));
        assert!(!error.is_retryable());
    }
    let error = ask(&mut m, 2, user("x")).expect_err("malformed");
    assert_eq!(error, ModelError::Malformed("not JSON at all".into()));
}

#[test]
fn usage_is_estimated_from_characters() {
    let mut m = model(&json!({"responses": [
        {"content": "12345678"},
        {"tool_calls": [{"name": "kb.read", "arguments": {"a": 1}}]},
        {"content": "x", "usage": {"input_tokens": 1000, "output_tokens": 7}},
        {"content": "x", "usage": {"output_tokens": 7}, "finish_reason": "length"}
    ]}));
    let messages = || {
        vec![
            Message::System {
                content: "abcd".into(),
            },
            Message::User {
                content: "hello world!".into(),
            },
        ]
    };
    // 4 + 12 characters in; 8 out.
    let r = ask(&mut m, 1, messages()).expect("1");
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 5,
            output_tokens: 3
        })
    );
    // The call: `kb.read` (7) and `{"a":1}` (7).
    let r = ask(&mut m, 2, messages()).expect("2");
    assert_eq!(r.usage.map(|u| u.output_tokens), Some(4));
    // Tool calls and results in the request count as well: 16 + (7 + 2) + 2.
    let mut longer = messages();
    longer.extend(vec![
        Message::Assistant {
            content: None,
            tool_calls: vec![ToolCallRequest {
                id: "c".into(),
                name: "kb.read".into(),
                arguments: json!({}),
            }],
        },
        Message::Tool {
            tool_call_id: "c".into(),
            name: "kb.read".into(),
            content: "ok".into(),
            is_error: false,
        },
    ]);
    let r = ask(&mut m, 2, longer).expect("2 again");
    assert_eq!(r.usage.map(|u| u.input_tokens), Some(27 / 4 + 1));
    let r = ask(&mut m, 3, messages()).expect("3");
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 1000,
            output_tokens: 7
        })
    );
    let r = ask(&mut m, 4, messages()).expect("4");
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 5,
            output_tokens: 7
        })
    );
    assert_eq!(r.finish, FinishReason::Length);
    assert_eq!(r.raw_finish_reason.as_deref(), Some("length"));
}

#[test]
fn the_documented_yaml_example_loads() {
    let yaml = r#"
rules:
  - when: {step: 1}
    respond: {tool_calls: [{name: browser.open, arguments: {url: "https://status.example.com"}}]}
  - when: {last_tool: browser.open, last_result_contains: "503"}
    respond: {content: "The status page is down."}
  - when: {last_result_error: true}
    one_of: [{content: a}, {content: b}]
  - respond: {content: "fallback"}
seed: 42
"#;
    let script: Value = yaml_serde::from_str(yaml).expect("YAML");
    let mut m = model(&script);
    let r = ask(&mut m, 2, after_tool("browser.open", "boom", true)).expect("one_of");
    assert!(["a", "b"].contains(&text_of(&r)));
}

fn refused(script: &Value) -> String {
    Scripted::new(script)
        .expect_err("an invalid script")
        .to_string()
}

#[test]
fn bad_scripts_are_refused_with_the_entry_named() {
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({"responses": [{"content": "ok"}, {"contnet": "typo"}]}),
            &["responses[1]", "unknown field `contnet`"],
        ),
        (
            json!({"rules": [{"respond": {"content": "a"}}, {"when": {"stp": 1}, "respond": {"content": "b"}}]}),
            &["rules[1].when", "unknown field `stp`"],
        ),
        (
            json!({"rules": [{"one_of": [{"content": "a"}, {"tool_calls": [{"nam": "x"}]}]}]}),
            &["rules[0].one_of[1]", "unknown field `nam`"],
        ),
        (
            json!({"rules": [{"respnd": {"content": "a"}}]}),
            &["rules[0]", "unknown field `respnd`"],
        ),
        (json!({"responses": [], "sed": 1}), &["unknown field `sed`"]),
        (
            json!({"responses": [{"content": "a"}], "rules": []}),
            &["not both"],
        ),
        (json!({}), &["needs `responses` or `rules`"]),
        (json!("text"), &["must be a map"]),
        (
            json!({"responses": [{}]}),
            &["responses[0]", "needs `content`"],
        ),
        (
            json!({"responses": [{"error": {"status": 500}, "times": 2}]}),
            &["responses[0]", "`times` needs `then`"],
        ),
        (
            json!({"responses": [{"error": {"status": 500}, "content": "x"}]}),
            &["responses[0]", "do not go with"],
        ),
        (
            json!({"responses": [{"content": "x", "times": 1}]}),
            &["responses[0]", "go with `error` or `malformed`"],
        ),
        (
            json!({"responses": [{"error": {"status": 42}}]}),
            &["responses[0].error.status", "not an HTTP status"],
        ),
        (
            json!({"responses": [{"error": {"status": 500}, "times": 1, "then": {"error": {"status": 500}, "times": 1, "then": {"content": "x"}}}]}),
            &["responses[0].then", "cannot be nested"],
        ),
        (
            json!({"responses": [{"content": "x", "finish_reason": "done"}]}),
            &["responses[0]", "unknown variant `done`"],
        ),
        (
            json!({"responses": [{"tool_calls": [{"name": ""}]}]}),
            &["responses[0].tool_calls[0]", "empty"],
        ),
        (
            json!({"rules": [{"when": {"step": 1}}]}),
            &["rules[0]", "needs `respond` or `one_of`"],
        ),
        (
            json!({"rules": [{"respond": {"content": "x"}}], "repeat_last": true}),
            &["`repeat_last` goes with `responses`"],
        ),
    ];
    for (script, needles) in cases {
        let message = refused(&script);
        for needle in needles {
            assert!(
                message.contains(needle),
                "`{message}` should contain `{needle}` (script {script})"
            );
        }
    }
}

#[test]
fn input_contains_looks_at_the_run_input() {
    let mut m = model(&json!({"rules": [
        {"when": {"step": 1, "input_contains": "password"}, "respond": {"content": "password help"}},
        {"respond": {"content": "other"}}
    ]}));
    let r = ask(&mut m, 1, user("I forgot my password"));
    assert_eq!(text_of(&r.expect("match")), "password help");
    let r = ask(&mut m, 1, user("refund please"));
    assert_eq!(text_of(&r.expect("no match")), "other");
    let r = ask(&mut m, 2, user("I forgot my password"));
    assert_eq!(text_of(&r.expect("other step")), "other");
}

/// Every script the repository's fixtures use is valid.
#[test]
fn the_fixture_scripts_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/agents");
    let entries = std::fs::read_dir(&dir).expect("fixtures/agents is part of the repository");
    let mut checked = 0;
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".script.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("the script");
        let script: Value = yaml_serde::from_str(&text).expect("YAML");
        if let Err(e) = Scripted::new(&script) {
            panic!("{name}: {e}");
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} scripts in {}", dir.display());
}

/// A script read from its file is checked as the backend checks it, and its errors name the
/// file and where in it: an unknown key in a script used to pass `config check` and fail
/// only at `run`, with an error that named neither the file nor the line.
#[test]
fn script_files_are_checked_with_their_file_and_line() {
    use std::path::Path;
    use tapedeck_agent::model::scripted::check_script;

    let path = Path::new("bot.script.yaml");
    let refused = |text: &str| {
        check_script(text, path)
            .expect_err("an invalid script")
            .to_string()
    };
    assert_eq!(
        refused("responses:\n  - content: hi\n    replys: x\n"),
        "bot.script.yaml:3:5: responses[0]: unknown field `replys` (valid here: content, \
         tool_calls, usage, finish_reason, error, malformed, times, then)"
    );
    // A bare list names its entries as the `responses` it is short for.
    let message = refused("- content: hi\n- {content: x, finish_reason: done}\n");
    assert!(
        message.starts_with("bot.script.yaml:2:")
            && message.contains("responses[1].finish_reason: unknown variant `done`"),
        "{message}"
    );
    let message = refused("rules:\n  - when: {stp: 1}\n    respond: {content: b}\n");
    assert!(
        message.starts_with("bot.script.yaml:2:")
            && message.contains("rules[0].when: unknown field `stp`: did you mean `step`?"),
        "{message}"
    );
    // What only the whole entry shows has no line, but still the file and the entry.
    assert_eq!(
        refused("responses: [{error: {status: 500}, times: 2}]\n"),
        "bot.script.yaml: responses[0]: `times` needs `then` here (the response served after \
         the failures); only rules fall through to the next entry"
    );
    assert!(refused("just text\n").contains("must be a map"));
    // A valid script comes back as the value the agent version holds.
    let script = check_script("[{content: hi}]\n", path).expect("valid");
    assert_eq!(script, json!([{"content": "hi"}]));
    model(&script);
}
