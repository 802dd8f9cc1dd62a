//! `agent_identity`'s fingerprint: pinned (computed with Python's `json` and `hashlib`, the
//! same way as `pinned_hashes.json`), the same whatever the order models and prompts were used
//! in, and changed by any model, prompt or tool.

use std::collections::BTreeMap;

use tapedeck_trace::{AgentIdentity, ContentHash, hash_bytes};

fn h(s: &str) -> ContentHash {
    hash_bytes(s.as_bytes())
}

fn identity(models: &[&str], prompts: &[&str], tools: &[(&str, &str)]) -> AgentIdentity {
    AgentIdentity::new(
        models.iter().map(|m| (*m).to_owned()).collect(),
        prompts.iter().map(|p| h(p)).collect(),
        tools
            .iter()
            .map(|(name, schema)| ((*name).to_owned(), h(schema)))
            .collect::<BTreeMap<_, _>>(),
        0,
    )
}

#[test]
fn the_fingerprint_is_pinned() {
    let id = identity(
        &["gpt-4.1", "claude-sonnet-4-5"],
        &["b", "a"],
        &[("get_weather", "w"), ("create_ticket", "t")],
    );
    assert_eq!(
        id.fingerprint,
        "abdbbbbc5f02280235f17c07dd482d8961ece666e1ccb6c2f4fecc1cbb4da8f2"
    );
    assert_eq!(
        identity(&[], &[], &[]).fingerprint,
        "cec8337ac047905637e06b3ae0a018abaaba620470f656897f55600db3aa200f"
    );
}

#[test]
fn order_of_first_use_does_not_change_the_fingerprint() {
    let a = identity(&["m1", "m2"], &["p1", "p2"], &[("t", "s")]);
    let b = identity(&["m2", "m1"], &["p2", "p1"], &[("t", "s")]);
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_ne!(a, b, "the event keeps the order of first use");
}

#[test]
fn a_model_prompt_or_tool_changes_the_fingerprint() {
    let base = identity(&["m"], &["p"], &[("t", "s")]);
    for other in [
        identity(&["m2"], &["p"], &[("t", "s")]),
        identity(&["m"], &["p2"], &[("t", "s")]),
        identity(&["m"], &["p"], &[("t", "s2")]),
        identity(&["m"], &["p"], &[("t2", "s")]),
        identity(&["m"], &["p"], &[("t", "s"), ("u", "s")]),
        identity(&["m"], &[], &[("t", "s")]),
    ] {
        assert_ne!(base.fingerprint, other.fingerprint, "{other:?}");
    }
    // The stored fingerprint is not an input of its own computation.
    let mut edited = base.clone();
    edited.fingerprint = "x".into();
    assert_eq!(edited.fingerprint_of(), base.fingerprint);
}
