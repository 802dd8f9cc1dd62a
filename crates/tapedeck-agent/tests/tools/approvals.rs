//! Approvals: the file (matching, order, rejections, errors), the y/N prompt, and which
//! approver a run gets.

use std::io::Cursor;
use std::path::Path;

use serde_json::json;
use tapedeck_agent::AgentError;
use tapedeck_agent::approvals::{
    ApprovalAnswer, ApprovalSource, Approvals, Approver, Prompt, RULE_NO_ENTRY, RULE_NOBODY,
    RULE_TERMINAL, nobody, source,
};

use crate::write;

const FILE: &str = r#"
approvals:
  - tool: crm.update
    decision: reject
    args: {customer: 7}
    by: bob
  - tool: crm.update
    decision: approve
    args: {customer: 42, address: {country: NL}}
    by: alice
  - tool: refund.create
    decision: approve
    key: "refund-123"
  - tool: refund.create
    decision: reject
  - tool: crm.update
    decision: approve
    args: {customer: 42}
    by: carol
"#;

fn load(text: &str) -> Approvals {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "approvals.yaml", text);
    Approvals::load(&path).expect("approvals load")
}

fn answer(approved: bool, rule: &str, by: Option<&str>) -> Option<ApprovalAnswer> {
    Some(ApprovalAnswer {
        approved,
        rule: rule.to_owned(),
        by: by.map(str::to_owned),
    })
}

#[test]
fn the_first_matching_entry_decides() {
    let approvals = load(FILE);
    assert_eq!(approvals.len(), 5);
    // args are a subset match; extra arguments do not matter.
    assert_eq!(
        approvals.decide("crm.update", &json!({"customer": 7, "note": "x"}), None),
        answer(false, "approvals_file:1", Some("bob"))
    );
    // Nested subset, numbers by value.
    assert_eq!(
        approvals.decide(
            "crm.update",
            &json!({"customer": 42.0, "address": {"country": "NL", "city": "Utrecht"}}),
            Some("k1")
        ),
        answer(true, "approvals_file:2", Some("alice"))
    );
    // Entry 2 needs the address; entry 5 does not.
    assert_eq!(
        approvals.decide("crm.update", &json!({"customer": 42}), None),
        answer(true, "approvals_file:5", Some("carol"))
    );
    assert_eq!(
        approvals.decide("crm.update", &json!({"customer": "42"}), None),
        None,
        "a string is not the number"
    );
    // Keys.
    assert_eq!(
        approvals.decide("refund.create", &json!({"amount": 10}), Some("refund-123")),
        answer(true, "approvals_file:3", None)
    );
    assert_eq!(
        approvals.decide("refund.create", &json!({"amount": 10}), Some("refund-999")),
        answer(false, "approvals_file:4", None)
    );
    assert_eq!(
        approvals.decide("refund.create", &json!({"amount": 10}), None),
        answer(false, "approvals_file:4", None)
    );
    // Other tools.
    assert_eq!(
        approvals.decide("crm.delete", &json!({"customer": 42}), None),
        None
    );
}

#[test]
fn a_file_source_rejects_calls_without_an_entry() {
    let mut source = ApprovalSource::File(load(FILE));
    let got = source.ask("crm.delete", &json!({}), None);
    assert_eq!(Some(got), answer(false, RULE_NO_ENTRY, None));
    assert_eq!(RULE_NO_ENTRY, "approvals_file: no entry");
    let got = source.ask("crm.update", &json!({"customer": 42}), None);
    assert_eq!(Some(got), answer(true, "approvals_file:5", Some("carol")));

    let mut empty = ApprovalSource::File(load("approvals: []\n"));
    assert!(!empty.ask("crm.update", &json!({}), None).approved);
}

#[test]
fn a_json_file_works_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "approvals.json",
        r#"{"approvals": [{"tool": "t", "decision": "approve", "args": {"a": [1, 2]}}]}"#,
    );
    let approvals = Approvals::load(&path).expect("loads");
    assert!(
        approvals
            .decide("t", &json!({"a": [1, 2], "b": 0}), None)
            .is_some()
    );
    assert!(
        approvals
            .decide("t", &json!({"a": [1, 2, 3]}), None)
            .is_none(),
        "arrays match whole"
    );
}

fn load_err(name: &str, text: &str) -> (AgentError, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), name, text);
    let err = Approvals::load(&path).expect_err("bad file");
    (err, path.display().to_string())
}

#[test]
fn a_bad_file_is_an_error_with_its_place() {
    let (err, path) = load_err(
        "approvals.yaml",
        "approvals:\n  - tool: crm.update\n    decison: approve\n",
    );
    let text = err.to_string();
    assert!(text.starts_with(&format!("{path}:3:")), "{text}");
    assert!(text.contains("decison"), "{text}");

    let (err, path) = load_err(
        "approvals.yaml",
        "approvals:\n  - tool: crm.update\n    decision: maybe\n",
    );
    let text = err.to_string();
    assert!(text.starts_with(&format!("{path}:3:")), "{text}");
    assert!(text.contains("maybe"), "{text}");

    let (err, path) = load_err("approvals.json", "{\"approvals\": [\n  {\"tool\": 1}\n]}");
    assert!(
        matches!(err, AgentError::ParseConfig { line: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with(&format!("{path}:2:")), "{err}");

    let (err, _) = load_err(
        "approvals.yaml",
        "approvals:\n  - {tool: a, decision: approve}\n  - {tool: b, decision: approve, args: [1]}\n",
    );
    assert!(
        err.to_string()
            .contains("approvals entry 2 (tool `b`): `args` must be a mapping"),
        "{err}"
    );

    let err = Approvals::load(Path::new("/nonexistent/approvals.yaml")).expect_err("missing");
    assert!(
        err.to_string().contains("cannot read the approvals file"),
        "{err}"
    );
}

fn prompt(input: &str, key: Option<&str>) -> (ApprovalAnswer, String) {
    let mut prompt = Prompt::new(Cursor::new(input.as_bytes().to_vec()), Vec::new());
    let got = prompt.ask(
        "crm.update",
        &json!({"customer": 42, "note": "\u{1b}[2Jhi"}),
        key,
    );
    let shown = String::from_utf8(prompt.output().clone()).expect("utf-8 prompt");
    (got, shown)
}

#[test]
fn the_terminal_prompt_approves_only_on_yes() {
    let (got, shown) = prompt("y\n", Some("refund-123"));
    assert!(got.approved);
    assert_eq!(got.rule, RULE_TERMINAL);
    assert!(shown.contains("\"crm.update\""), "{shown}");
    assert!(shown.contains("\"customer\": 42"), "{shown}");
    assert!(shown.contains("refund-123"), "{shown}");
    assert!(shown.trim_end().ends_with("approve? [y/N]"), "{shown}");
    assert!(
        !shown.contains('\u{1b}'),
        "escape sequences from arguments reach the terminal"
    );

    for (input, approved) in [
        ("YES\n", true),
        (" yes \n", true),
        ("n\n", false),
        ("\n", false),
        ("yess\n", false),
        ("", false),
    ] {
        let (got, _) = prompt(input, None);
        assert_eq!(got.approved, approved, "input {input:?}");
        assert_eq!(got.rule, RULE_TERMINAL);
    }
    let (_, shown) = prompt("", None);
    assert!(shown.contains("no answer"), "{shown}");

    // Several questions in a row read one line each.
    let mut prompt =
        Prompt::new(Cursor::new(b"y\nn\n".to_vec()), Vec::new()).by(Some("dana".to_owned()));
    let first = prompt.ask("a", &json!({}), None);
    let second = prompt.ask("a", &json!({}), None);
    assert!(first.approved && !second.approved);
    assert_eq!(first.by.as_deref(), Some("dana"));
}

#[test]
fn nobody_rejects_everything() {
    let mut source = ApprovalSource::Nobody;
    let got = source.ask("crm.update", &json!({}), Some("k"));
    assert_eq!(
        Some(got),
        answer(false, "writes.require_approval: nobody to approve", None)
    );
    assert_eq!(RULE_NOBODY, "writes.require_approval: nobody to approve");
}

/// An approver that says yes to everything, as a person at a terminal might.
struct Yes;

impl Approver for Yes {
    fn ask(
        &mut self,
        _tool: &str,
        _args: &serde_json::Value,
        _key: Option<&str>,
    ) -> ApprovalAnswer {
        ApprovalAnswer {
            approved: true,
            rule: "yes".into(),
            by: None,
        }
    }
}

fn yes() -> Box<dyn Approver> {
    Box::new(Yes)
}

#[test]
fn the_approver_is_the_file_else_whoever_ask_gives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "approvals.yaml", FILE);
    let call = || json!({"customer": 7});
    // The file decides, whoever there is to ask.
    let mut from_file = source(Some(path.clone()), yes).expect("the file loads");
    assert_eq!(
        Some(from_file.ask("crm.update", &call(), None)),
        answer(false, "approvals_file:1", Some("bob"))
    );
    let mut asked = source(None, yes).expect("no file, no error");
    assert_eq!(
        Some(asked.ask("crm.update", &call(), None)),
        answer(true, "yes", None)
    );
    let mut nobody_there = source(None, nobody).expect("no file, no error");
    assert_eq!(
        Some(nobody_there.ask("crm.update", &call(), None)),
        answer(false, RULE_NOBODY, None)
    );
    assert!(source(Some(dir.path().join("missing.yaml")), nobody).is_err());
}
